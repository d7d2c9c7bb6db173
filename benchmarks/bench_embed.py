"""Embed stage vs bare SentenceTransformer.encode on the same distinct texts, and the cost of duplicates.

Targets (issue 3): the stage reaches >= 90% of bare encode throughput; a corpus in which every text
appears five times costs the same as one copy (each distinct text is embedded once).

Since long answers are chunked rather than cut (issue 8), bare encode reads only the first 256 word
pieces of a long text while the stage reads all of it, so the stage does more work on long texts: the
script prints the share of texts over the window and the extra windows, beside the throughput ratio.
The stage also embeds the prompt texts (for relevance); here all prompts share one text, embedded once.

    .venv/bin/python benchmarks/bench_embed.py [--texts 1600] [--rounds 2] [--answers]
    .venv/bin/python benchmarks/bench_embed.py --share-only     # share of AlpacaEval answers over 256 pieces
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

from hivemind.core.config import RunConfig, System  # noqa: E402
from hivemind.embed.stage import embed_run, load_sentence_transformer  # noqa: E402
from hivemind.store import Prompt, Response, Store  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def real_texts(n: int, answers_only: bool = False) -> list[str]:
    wildchat = DATA / "wildchat_prompts" / "wildchat-1k.jsonl"
    texts = [json.loads(line)["prompt"] for line in wildchat.open()] if wildchat.exists() and not answers_only else []
    for path in sorted((DATA / "alpaca_eval_outputs").glob("*.json")):
        texts += [r["output"] for r in json.loads(path.read_text())]
        if len(texts) >= 2 * n:
            break
    distinct = list(dict.fromkeys(t for t in texts if t.strip()))
    if len(distinct) < n:
        raise SystemExit(f"only {len(distinct)} texts found under {DATA}")
    return distinct[:n]


def make_run(folder: Path, texts: list[str], copies: int) -> RunConfig:
    """A run whose `copies` systems each answered every prompt with the same texts."""
    systems = [System(name=f"s{i}", model=f"imported/s{i}") for i in range(copies)]
    config = RunConfig(name="bench", prompts="unused.jsonl", samples=1, systems=systems, results_dir=str(folder))
    with Store(config.store_path) as store:
        # one prompt text for all: the stage embeds it once, so both sides embed the same answers
        store.add_prompts(Prompt(f"p{i}", "prompt") for i in range(len(texts)))
        for system in systems:
            store.add_system(system.identity, system.name, system.model, None, {})
            store.add_responses(Response(system.identity, f"p{i}", 0, text) for i, text in enumerate(texts))
    return config


def time_bare(texts: list[str]) -> float:
    start = time.perf_counter()
    model = load_sentence_transformer("all-MiniLM-L6-v2")
    model.encode(texts, batch_size=64, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False)
    return time.perf_counter() - start


def time_stage(texts: list[str], copies: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        config = make_run(Path(tmp), texts, copies)
        start = time.perf_counter()
        summary = embed_run(config, progress=False)
        elapsed = time.perf_counter() - start
        assert summary.embedded == len(texts) + 1, summary   # + the prompt text
    return elapsed


def window_share(texts: list[str]) -> tuple[int, float, float]:
    """(window in word pieces, share of texts longer than it, windows per text after chunking)."""
    from hivemind.core.config import Embedder
    from hivemind.embed.stage import load_encoder

    encoder = load_encoder(Embedder())
    pieces = encoder.split(texts)
    over = sum(len(p.parts) > 1 for p in pieces)
    return encoder.window, over / len(texts), sum(len(p.parts) for p in pieces) / len(texts)


def alpaca_answers() -> list[str]:
    return [r["output"] for path in sorted((DATA / "alpaca_eval_outputs").glob("*.json"))
            for r in json.loads(path.read_text())]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--texts", type=int, default=1600)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--answers", action="store_true", help="AlpacaEval answers only (long texts)")
    parser.add_argument("--share-only", action="store_true")
    args = parser.parse_args()
    if args.share_only:
        answers = alpaca_answers()
        window, share, per_text = window_share(answers)
        print(f"AlpacaEval answers: {len(answers)}; over the {window}-piece window (+[CLS],[SEP]): "
              f"{share:.1%}; windows per answer after chunking: {per_text:.2f}")
        return
    texts = real_texts(args.texts, answers_only=args.answers)
    window, share, per_text = window_share(texts)
    load_sentence_transformer("all-MiniLM-L6-v2")  # warm the file cache for everyone
    bare, stage, dup = [], [], []
    for _ in range(args.rounds):  # alternate, so drift on a noisy machine hits all three alike
        bare.append(time_bare(texts))
        stage.append(time_stage(texts, copies=1))
        dup.append(time_stage(texts, copies=5))
    b, s, d = min(bare), min(stage), min(dup)
    print(f"distinct texts: {len(texts)}  (best of {args.rounds}, model load included on both sides); "
          f"{share:.1%} over the window, {per_text:.2f} windows per text in the stage")
    print(f"bare SentenceTransformer.encode : {b:7.2f} s  {len(texts) / b:7.1f} texts/s")
    print(f"hivemind embed stage (chunked)  : {s:7.2f} s  {len(texts) / s:7.1f} texts/s")
    print(f"stage, every text 5 times       : {d:7.2f} s  ({5 * len(texts)} responses)")
    print(f"throughput ratio stage/bare     : {b / s:.3f}  (target >= 0.90 on texts that fit; "
          f"chunking reads {per_text:.2f} windows per text where bare reads 1)")
    print(f"cost ratio 5 copies / 1 copy    : {d / s:.3f}  (target ~1.0)")


if __name__ == "__main__":
    main()
