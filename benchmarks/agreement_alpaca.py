"""Embedder agreement on real answers: the 16 AlpacaEval models on the first N instructions, embedded with
all-MiniLM-L6-v2 (chunked) and the static tokenlearn-static-model, compared with `hivemind agreement`.

    .venv/bin/python benchmarks/agreement_alpaca.py [--prompts 40]
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from hivemind.studies.agreement import agreement_run  # noqa: E402
from hivemind.core.config import DEFAULT_EMBEDDER  # noqa: E402
from hivemind.embed.stage import STATIC_EMBEDDER  # noqa: E402
from hivemind.runs.imports import import_files  # noqa: E402

ALPACA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "alpaca_eval_outputs"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for source in sorted(ALPACA.glob("*.json")):
            target = Path(tmp) / source.name
            target.write_text(json.dumps(json.loads(source.read_text())[:args.prompts]))
            files.append(target)
        config = import_files(files, "agreement", results_dir=Path(tmp) / "results")
        start = time.perf_counter()
        result = agreement_run(config, [DEFAULT_EMBEDDER, STATIC_EMBEDDER], progress=False)
        print(f"{len(files)} models x {args.prompts} prompts, {time.perf_counter() - start:.0f} s")
        print(result.summary())
        print(result.systems[["system", "inter_to_others_a", "inter_rank_a", "inter_to_others_b",
                              "inter_rank_b"]].to_string(index=False))


if __name__ == "__main__":
    main()
