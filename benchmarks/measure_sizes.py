"""Bytes per answer and per vector in a real store, and per answer in the Parquet export (for hivemind plan).

All 16 x 805 AlpacaEval answers go into a fresh store through Store.add_responses, one 384-d float32
vector per distinct text through Store.add_embeddings (random unit vectors: the bytes of a vector do not
depend on its values), then Store.export_parquet writes the answers as the snapshot does.

    .venv/bin/python benchmarks/measure_sizes.py
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from hivemind.store import Prompt, Response, Store

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "alpaca_eval_outputs"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "store.sqlite"
        with Store(path) as store:
            prompts: dict[str, str] = {}
            responses = []
            for file in sorted(DATA.glob("*.json")):
                for row in json.loads(file.read_text()):
                    pid = prompts.setdefault(row["instruction"], f"p{len(prompts)}")
                    responses.append(Response(file.stem, pid, 0, row["output"]))
            store.add_prompts([Prompt(pid, text) for text, pid in prompts.items()])
            for system in sorted({r.system_id for r in responses}):
                store.add_system(system, system, system, None, {})
            store.add_responses(responses)
            store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            answers_bytes = path.stat().st_size
            rows = store.texts_to_embed("e", sorted({r.system_id for r in responses}))
            vectors = np.random.default_rng(0).normal(size=(len(rows), 384)).astype(np.float32)
            store.add_embeddings("e", [h for h, _ in rows], vectors)
            store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            vector_bytes = path.stat().st_size - answers_bytes
            parquet = store.export_parquet(Path(tmp) / "answers.parquet")
            chars = sum(len(r.text) for r in responses)
        n = len(responses)
        print(f"{n} answers, mean {chars / n:.0f} characters")
        print(f"store: {answers_bytes / n:.0f} bytes per answer (prompts included), "
              f"{vector_bytes / len(rows):.0f} bytes per 384-d vector; parquet: {parquet.stat().st_size / n:.0f} "
              f"bytes per answer")


if __name__ == "__main__":
    main()
