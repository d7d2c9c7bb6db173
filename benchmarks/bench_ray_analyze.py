"""Ray analyze vs the single-process engine, side by side in one run, and embedding on Ray vs local.

1. Synthetic at INFINITY-CHAT scale (default 2,607 prompts x 25 systems x 50 samples = 3.26 M answers,
   384 dims; the data of bench_scale.py, but every prompt seeded on its own so a shard can make its
   prompts alone). 3.26 M vectors are 5 GB of float32, so, as in bench_scale.py, groups are generated
   prompt by prompt instead of read from a store: both engines run the same two passes (similarity,
   near-duplicates, Fig. 8 neighbours, template sample; then the diversity cells and pooled view) over
   the same groups; the Ray engine maps them over prompt shards on a local cluster of --workers CPUs and
   reduces on the driver (hivemind.engines.ray.analysis). Checked: every per-prompt array, the pooled
   matrices, the floor, the bootstrap intervals, near-duplicate pairs and clusters, templates: equal to
   1e-6, counts exactly.
2. A real store, end to end (--store-prompts x 25 systems x 20 samples, synthetic answers and vectors
   written into SQLite): hivemind.analyze.stage.analyze_run vs the Ray analyze_run; every CSV compared.
3. Embedding throughput (--embed N real AlpacaEval answers, all-MiniLM-L6-v2): the local engine vs Ray
   with 1 and 2 workers, wall time including the workers' start (model load).

Measured on the shared 2-core machine (2026-11-25), Ray with 2 local workers vs one process:
  default threads   synthetic 625,000 answers 323.1 s vs 93.0 s (3.47x); store 50,000 answers 65.9 s vs 15.3 s
                    (4.31x): mostly BLAS/OpenMP oversubscription in the single process, not Ray;
  OMP/OPENBLAS/MKL_NUM_THREADS=1   synthetic 187,500 answers 25.8 s vs 35.7 s (0.72x); store 50,000 answers
                    20.5 s vs 16.6 s (1.23x); the full 3,258,750 synthetic answers (both passes) 346.3 s vs
                    215.1 s (1.61x, 31 result arrays equal, 493 near-duplicate pairs). Tables equal in every run.
  embedding 204 AlpacaEval texts (MiniLM, incl. model load): local 2.2 texts/s, Ray 1 worker 2.7, 2 workers 2.4.

Run: .venv/bin/python benchmarks/bench_ray_analyze.py [--prompts 2607] [--workers 2] [--store-prompts 100]
     [--embed 200]   (--prompts 0 / --store-prompts 0 / --embed 0 skip a part)
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from hivemind.analyze.similarity import resample_weights  # noqa: F401  (the bootstrap both engines use)
from hivemind.store import PromptGroup

K, S, D = 25, 50, 384
TEMPLATE_PROMPTS = 60
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "alpaca_eval_outputs"


# Synthetic groups, one prompt at a time --------------------------------------------------------------------
def template_prompts(n_prompts: int, seed: int = 0) -> set[int]:
    rng = np.random.default_rng(seed)
    return set(rng.choice(n_prompts, size=min(TEMPLATE_PROMPTS, n_prompts), replace=False).tolist())


def group(p: int, templates: set[int], seed: int = 0, samples: int = S) -> PromptGroup:
    """bench_scale.py's prompt p: a shared direction, a per-(prompt, system) direction, per-sample noise;
    on 20% of prompts one system's first sample nearly copies another's; template prompts share an answer."""
    rng = np.random.default_rng([seed, p])
    template = np.random.default_rng([seed, 10**9]).standard_normal(D, dtype=np.float32)
    systems = np.repeat(np.arange(K, dtype=np.int32), samples)
    sample_ids = np.tile(np.arange(samples, dtype=np.int32), K)
    base = rng.standard_normal(D, dtype=np.float32)
    per_system = rng.standard_normal((K, D), dtype=np.float32) * 0.8
    v = rng.standard_normal((K * samples, D), dtype=np.float32) * 0.9
    v += per_system[systems]
    v += base
    if rng.random() < 0.2:
        a, b = rng.choice(K, size=2, replace=False)
        v[a * samples] = v[b * samples] + 0.05 * rng.standard_normal(D, dtype=np.float32)
    if p in templates:
        v[0] = template * 4 + rng.standard_normal(D, dtype=np.float32) * 0.3
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return PromptGroup(f"p{p}", systems, v, [], sample_ids)


class PassAll:
    """No relevance line and no scorers (synthetic answers have no prompt vectors): every answer passes."""

    def passes(self, prompt_id, system_ids, samples, vectors):
        return np.ones(len(vectors), dtype=bool)


def first_pass(prompts: range, n_prompts: int):
    from hivemind.engines.ray.analysis import measure_groups

    templates = template_prompts(n_prompts)
    return measure_groups((group(p, templates) for p in prompts), K, 0.9, {})


def second_pass(prompts: range, n_prompts: int, threshold: float):
    from hivemind.engines.ray.analysis import diversity_groups

    templates = template_prompts(n_prompts)
    return diversity_groups((group(p, templates) for p in prompts), [f"s{k}" for k in range(K)], K, threshold,
                            PassAll())


def finish(part, diversity, seed: int = 0) -> dict:
    """The figures analyze builds tables from, as plain arrays."""
    from hivemind.analyze.passes import MAX_TEMPLATES

    sim = part.similarity.finish()
    near = part.near.finish(max_templates=MAX_TEMPLATES, seed=seed)
    div = diversity.finish()
    ci = sim.bootstrap(n=1000, seed=seed)
    d = near.near_duplicates
    out = {"floor": np.array([sim.floor]), "intra": sim.intra, "inter": sim.inter_matrix(),
           "homogeneity": sim.prompt_homogeneity(), "inter_ci_low": ci.inter_low, "inter_ci_high": ci.inter_high,
           "mean_ci_low": ci.mean_low, "near_rate": near.near_duplicate_rate,
           "distinct_neighbors": near.mean_distinct_neighbors,
           "by_n": np.array([r[3] for r in near.by_n]), "pairs": np.column_stack([d.prompt, d.system_a, d.system_b,
                                                                                  d.sample_a, d.sample_b, d.cluster]),
           "pair_similarity": d.similarity, "clusters": np.array([(c.prompt, c.cluster, c.size) for c in near.clusters]),
           "templates": np.column_stack([near.templates.prompt_a, near.templates.prompt_b, near.templates.system_a,
                                         near.templates.system_b]),
           "template_similarity": near.templates.similarity, "counts": div.counts}
    for name, values in div.cells.items():
        out[f"cell_{name}"] = values
    for name, values in div.pooled.items():
        out[f"pooled_{name}"] = values
    for name in ("effective_diversity", "vendi"):
        out[f"ci_{name}"] = np.vstack(div.bootstrap(name, n=1000, seed=seed))
    return out


def compare(a: dict, b: dict) -> list[str]:
    problems = []
    for name in a:
        x, y = np.asarray(a[name]), np.asarray(b[name])
        if x.shape != y.shape:
            problems.append(f"{name}: shape {x.shape} vs {y.shape}")
        elif x.dtype.kind in "iub":
            if not np.array_equal(x, y):
                problems.append(f"{name}: counts differ")
        elif not np.allclose(x, y, rtol=0, atol=1e-6, equal_nan=True):
            problems.append(f"{name}: max difference {np.nanmax(np.abs(x - y)):.2e}")
    return problems


def synthetic(n_prompts: int, workers: int) -> None:
    import ray

    from hivemind.analyze.diversity import idea_threshold
    from hivemind.analyze.passes import FirstPass
    from hivemind.engines.ray.analysis import merge_diversity, merge_near, merge_similarity

    print(f"1. synthetic: {n_prompts:,} prompts x {K} systems x {S} samples x {D} dims = {n_prompts * K * S:,} answers")
    start = time.perf_counter()
    part = first_pass(range(n_prompts), n_prompts)
    threshold = idea_threshold(part.similarity.finish().floor)
    local = finish(part, second_pass(range(n_prompts), n_prompts, threshold))
    t_local = time.perf_counter() - start
    print(f"   single process: {t_local:.1f} s")

    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    try:
        start = time.perf_counter()
        n_shards = 4 * workers
        bounds = np.linspace(0, n_prompts, n_shards + 1).astype(int)
        shards = [range(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]
        one = ray.remote(num_cpus=1)(first_pass)
        parts = ray.get([one.remote(s, n_prompts) for s in shards])
        merged = FirstPass(merge_similarity([p.similarity for p in parts], K),
                           merge_near([p.near for p in parts], K, 0.9))
        threshold = idea_threshold(merged.similarity.finish().floor)
        two = ray.remote(num_cpus=1)(second_pass)
        div = merge_diversity(ray.get([two.remote(s, n_prompts, threshold) for s in shards]), K, K, threshold)
        ours = finish(merged, div)
        t_ray = time.perf_counter() - start
    finally:
        ray.shutdown()
    problems = compare(local, ours)
    print(f"   ray, {workers} local workers, {len(shards)} prompt shards: {t_ray:.1f} s (cluster start not counted)")
    print(f"   wall time ratio single/ray: {t_local / t_ray:.2f}x; {len(local)} result arrays "
          f"({len(local['pairs']):,} near-duplicate pairs, {len(local['clusters']):,} clusters, "
          f"{len(local['templates']):,} template pairs): "
          f"{'all equal (1e-6, counts exact)' if not problems else 'DIFFER: ' + '; '.join(problems)}")


# A real store, end to end -------------------------------------------------------------------------------------
def synthetic_store(folder: Path, n_prompts: int, samples: int = 20):
    from hivemind.core.config import Embedder, System
    from hivemind.runs.imports import _build
    from hivemind.store import Prompt, Response, text_hash

    templates = template_prompts(n_prompts)
    words = np.array("the a model answer idea list first second story poem code plan many few".split())
    prompts = [Prompt(f"p{p}", f"prompt number {p}: write something") for p in range(n_prompts)]
    systems = [System(name=f"s{k}", model=f"imported/s{k}") for k in range(K)]

    def fill(store) -> None:
        rng = np.random.default_rng(1)
        for p in range(n_prompts):
            g = group(p, templates, samples=samples)
            texts = [" ".join(rng.choice(words, size=12)) + f" {p}-{k}" for k in range(len(g.systems))]
            store.add_responses(Response(systems[s].identity, f"p{p}", int(x), text=t)
                                for s, x, t in zip(g.systems.tolist(), g.samples.tolist(), texts))
            store.add_chunked_embeddings(Embedder().id, [text_hash(t) for t in texts], g.vectors,
                                         np.ones(len(texts)), np.full(len(texts), 12))
    return _build("storebench", folder, prompts, systems, samples, fill, base=None)


def end_to_end(n_prompts: int, workers: int) -> None:
    import pandas as pd
    import ray

    from hivemind.analyze.stage import TABLES, analyze_run
    from hivemind.engines.ray.analysis import analyze_run as analyze_on_ray

    tmp = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    try:
        start = time.perf_counter()
        config = synthetic_store(tmp, n_prompts)
        n = n_prompts * K * 20
        print(f"2. a store: {n_prompts} prompts x {K} systems x 20 samples = {n:,} answers with texts "
              f"(written in {time.perf_counter() - start:.0f} s, {config.store_path.stat().st_size / 1e6:.0f} MB)")
        start = time.perf_counter()
        analyze_run(config, progress=False)
        t_local = time.perf_counter() - start
        keep = tmp / "local"
        keep.mkdir()
        for name in TABLES:
            shutil.copy(config.run_dir / name, keep / name)
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        try:
            start = time.perf_counter()
            analyze_on_ray(config, progress=False)
            t_ray = time.perf_counter() - start
        finally:
            ray.shutdown()
        differ = []
        for name in TABLES:
            if not name.endswith(".csv"):
                continue
            a = pd.read_csv(keep / name, keep_default_na=False, na_values=[""])
            b = pd.read_csv(config.run_dir / name, keep_default_na=False, na_values=[""])
            for column in a.columns:
                x, y = a[column], b[column]
                same = (np.allclose(x.to_numpy(float), y.to_numpy(float), atol=1e-6, rtol=0, equal_nan=True)
                        if pd.api.types.is_float_dtype(x) else x.tolist() == y.tolist())
                if not same:
                    differ.append(f"{name}:{column}")
        print(f"   analyze_run single process {t_local:.1f} s | ray, {workers} workers {t_ray:.1f} s | ratio "
              f"{t_local / t_ray:.2f}x | {sum(n.endswith('.csv') for n in TABLES)} tables: "
              f"{'identical (1e-6)' if not differ else 'DIFFER: ' + ', '.join(differ)}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# Embedding throughput -----------------------------------------------------------------------------------------
def embedding(n_texts: int) -> None:
    import ray

    from hivemind.engines.ray.embedding import embed_run as embed_on_ray
    from hivemind.embed.stage import embed_run
    from hivemind.runs.imports import import_files

    tmp = Path(tempfile.mkdtemp(prefix="bench-ray-embed-"))
    try:
        models = sorted(p.stem for p in DATA.glob("*.json"))
        per_model = max(1, n_texts // len(models))
        path = tmp / "answers.jsonl"
        with path.open("w", encoding="utf-8") as out:
            for model in models:
                for r in json.loads((DATA / f"{model}.json").read_text(encoding="utf-8"))[:per_model]:
                    out.write(json.dumps({"prompt": r["instruction"], "model": model, "response": r["output"]}) + "\n")
        print(f"3. embedding {per_model * len(models)} real AlpacaEval answers (+ {per_model} prompts), all-MiniLM-L6-v2")
        rows = []
        for label, workers in (("local engine", 0), ("ray, 1 worker", 1), ("ray, 2 workers", 2)):
            config = import_files([path], f"e{workers}", results_dir=tmp / "results")
            start = time.perf_counter()
            if workers:
                ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
                try:
                    s = embed_on_ray(config, progress=False, workers=workers)
                finally:
                    ray.shutdown()
            else:
                s = embed_run(config, progress=False)
            seconds = time.perf_counter() - start
            rows.append((label, s.embedded, seconds))
        base = rows[0][1] / rows[0][2]
        for label, n, seconds in rows:
            print(f"   {label:16s} {n} texts in {seconds:6.1f} s = {n / seconds:5.1f} texts/s ({n / seconds / base:.2f}x local)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=2607)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--store-prompts", type=int, default=100)
    parser.add_argument("--embed", type=int, default=200)
    args = parser.parse_args()
    import os
    threads = {v: os.environ.get(v, "unset") for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    print(f"threads: {threads} (Ray workers default to OMP_NUM_THREADS=1; on a busy machine a single process "
          f"with default BLAS/OpenMP threads can be several times slower, so compare both settings)")
    if args.prompts:
        synthetic(args.prompts, args.workers)
    if args.store_prompts:
        end_to_end(args.store_prompts, args.workers)
    if args.embed and DATA.is_dir():
        embedding(args.embed)


if __name__ == "__main__":
    main()
