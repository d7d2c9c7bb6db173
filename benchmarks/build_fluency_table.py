"""Count the bundled fluency table (hivemind/score/fluency_table.npz) from real answers.

    python benchmarks/build_fluency_table.py

Reads every answer in ../shared/data/alpaca_eval_outputs (16 models x 805 AlpacaEval instructions,
Apache-2.0) and stores only the FLUENCY_VOCAB most frequent tokens and the class-pair counts
(hivemind.score.fluency). NoveltyBench answers are not used, so benchmarks/quality_vs_reward.py validates the
table on answers it was not counted on.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hivemind.score.fluency import TABLE, FluencyTable  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "alpaca_eval_outputs"


def main() -> None:
    files = sorted(DATA.glob("*.json"))
    if not files:
        sys.exit(f"no AlpacaEval answers under {DATA}")
    texts = [r["output"] for f in files for r in json.loads(f.read_text(encoding="utf-8"))
             if isinstance(r.get("output"), str)]
    vocab, counts = FluencyTable.count(texts)
    np.savez_compressed(TABLE, vocab=np.array(vocab), counts=counts.astype(np.int32))
    print(f"{TABLE}: {len(vocab)} tokens, {int(counts.sum())} word-boundary pairs from {len(texts)} answers "
          f"of {len(files)} models ({TABLE.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
