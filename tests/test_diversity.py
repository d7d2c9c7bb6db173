"""The diversity metrics against direct computation (brute force, written independently of the fast paths)."""
from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest

from hivemind.analyze.diversity import (DiversityAccumulator, effective_diversity, idea_threshold, lexical, partition,
                                utility, vendi_batch, vendi_score)
from hivemind.analyze.phrases import words
from hivemind.store import PromptGroup


def unit(rng, n, d, spread=1.0, base=None):
    v = rng.standard_normal((n, d)) * spread + (0 if base is None else base)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def vendi_brute(x):
    """Friedman & Dieng's definition on the n x n kernel: exp(-sum lambda log lambda), lambda of K / n."""
    k = x @ x.T
    lam = np.linalg.eigvals(k / len(x)).real
    lam = lam[lam > 1e-12]
    return float(np.exp(-np.sum(lam * np.log(lam))))


@pytest.mark.parametrize("n,d", [(5, 16), (40, 8), (16, 16), (60, 384)])
def test_vendi_matches_the_n_by_n_kernel_either_way(n, d):
    rng = np.random.default_rng(n * d)
    x = unit(rng, n, d, base=rng.standard_normal(d))
    assert vendi_score(x) == pytest.approx(vendi_brute(x), rel=1e-8)
    assert vendi_batch([x, x[:3], x])[0] == pytest.approx(vendi_brute(x), rel=1e-8)


def test_vendi_limits():
    rng = np.random.default_rng(1)
    one = unit(rng, 1, 8)
    assert vendi_score(np.repeat(one, 7, axis=0)) == pytest.approx(1.0)
    assert vendi_score(np.eye(6)) == pytest.approx(6.0)
    # Two tight clusters of equal size: about 2 distinct things.
    a, b = np.eye(8)[0], np.eye(8)[1]
    x = np.vstack([np.repeat([a], 10, 0), np.repeat([b], 10, 0)])
    assert vendi_score(x) == pytest.approx(2.0)


def partition_brute(x, t):
    """NoveltyBench's loop: each unassigned answer opens a class; later unassigned ones equivalent to its
    first member join it."""
    labels = [-1] * len(x)
    classes = 0
    for i in range(len(x)):
        if labels[i] >= 0:
            continue
        labels[i] = classes
        for j in range(i + 1, len(x)):
            if labels[j] == -1 and float(x[i] @ x[j]) >= t:
                labels[j] = classes
        classes += 1
    return np.array(labels)


def test_partition_is_noveltybench_partition():
    rng = np.random.default_rng(2)
    centres = unit(rng, 4, 32)
    x = np.vstack([unit(rng, 1, 32, spread=0.03, base=centres[i % 4]) for i in range(30)])
    for t in (0.5, 0.8, 0.95):
        np.testing.assert_array_equal(partition(x, t), partition_brute(x, t))
    assert partition(x, 0.8).max() + 1 == 4          # four well separated ideas


def test_utility_by_hand():
    labels = np.array([0, 0, 1, 2, 1])
    quality = np.array([1, 1, 0, 1, 1])
    p = 0.8
    expected = (1 - p) / (1 - p ** 5) * (1 * 1 + p ** 2 * 0 + p ** 3 * 1)
    assert utility(labels, quality, p) == pytest.approx(expected)
    assert utility(np.arange(4), np.ones(4), p) == pytest.approx(1.0)     # all new, all good
    assert utility(np.zeros(4, int), np.zeros(4), p) == 0.0


def effective_brute(x, g):
    n = len(x)
    total = sum((1 - float(x[i] @ x[j])) for i in range(n) for j in range(n) if i != j and g[i] and g[j])
    return total / (n * (n - 1))


def test_effective_diversity_pairs_and_gate():
    rng = np.random.default_rng(3)
    x = unit(rng, 12, 16)
    g = rng.random(12) > 0.3
    assert effective_diversity(x, g) == pytest.approx(effective_brute(x, g), abs=1e-12)
    assert effective_diversity(x, np.zeros(12, bool)) == 0.0                 # all failing: 0
    assert effective_diversity(np.repeat(x[:1], 5, 0), np.ones(5, bool)) == pytest.approx(0.0, abs=1e-12)


def test_lexical_within_a_set_is_length_controlled():
    texts = ["the cat sat on the mat", "the cat sat on the hat"]
    grams = [("the", "cat"), ("cat", "sat"), ("sat", "on"), ("on", "the"), ("the", "mat"),
             ("the", "cat"), ("cat", "sat"), ("sat", "on"), ("on", "the"), ("the", "hat")]
    d2, comp = lexical(texts)
    assert d2 == pytest.approx(len(set(grams)) / len(grams))
    raw = "\n".join(" ".join(words(t)) for t in texts).encode()
    assert comp == pytest.approx(len(raw) / len(zlib.compress(raw, 9)))
    # Words past the cut do not count: a long tail of new words changes nothing.
    long = [t + " " + " ".join(f"w{i}" for i in range(200)) for t in ["a b c d", "a b c e"]]
    assert lexical(long, n_words=4) == lexical(["a b c d", "a b c e"], n_words=4)


def test_accumulator_cells_pooled_and_controls_isolated():
    rng = np.random.default_rng(4)
    d, n_real = 24, 3
    base = rng.standard_normal(d)
    per_system = [unit(rng, 5, d, spread=0.6, base=base) for _ in range(n_real)]
    control = np.repeat(per_system[0][:1], 5, axis=0)                 # copies of one answer
    x = np.vstack(per_system + [control]).astype(np.float32)
    systems = np.repeat(np.arange(4), 5).astype(np.int32)
    texts = [f"answer {i} about things number {i % 3}" for i in range(20)]
    passed = np.ones(20, bool)
    passed[[1, 7]] = False
    group = PromptGroup("p0", systems, x, texts, samples=np.tile(np.arange(5), 4).astype(np.int32))
    t = idea_threshold(0.1)
    acc = DiversityAccumulator(4, n_real, threshold=t)
    acc.add(group, passed)
    stats = acc.finish()
    x64 = x.astype(np.float64)
    for s in range(4):
        xs, gs = x64[systems == s], passed[systems == s]
        assert stats.cells["vendi"][0, s] == pytest.approx(vendi_brute(xs), rel=1e-6)
        assert stats.cells["effective_diversity"][0, s] == pytest.approx(effective_brute(xs, gs), abs=1e-6)
        assert stats.cells["distinct_ideas"][0, s] == partition_brute(xs, t).max() + 1
        others = x64[(systems != s) & (systems < n_real)]
        brute = sum(gs[i] * (1 - xs[i] @ others[j]) for i in range(5) for j in range(len(others)))
        assert stats.cells["effective_distinctness"][0, s] == pytest.approx(brute / (5 * len(others)), abs=1e-6)
    assert stats.cells["effective_diversity"][0, 3] == pytest.approx(0.0, abs=1e-6)   # copies
    assert stats.cells["vendi"][0, 3] == pytest.approx(1.0, abs=1e-5)
    real = systems < n_real
    assert stats.pooled["pooled_vendi"][0] == pytest.approx(vendi_brute(x64[real]), rel=1e-6)
    assert stats.pooled["pooled_effective_diversity"][0] == pytest.approx(
        effective_brute(x64[real], passed[real]), abs=1e-6)
    assert stats.pooled["pooled_n"][0] == 15                           # the control is not pooled


def test_a_failure_is_a_failing_answer_whatever_its_vector():
    """Failed rows (blank answers, failed requests) count in n with g = 0 and their vectors are ignored:
    the cells equal the brute-force definitions written out per metric in hivemind.analyze.diversity."""
    rng = np.random.default_rng(5)
    d, n = 16, 6
    x = unit(rng, 2 * n, d, spread=0.5, base=rng.standard_normal(d)).astype(np.float32)
    systems = np.repeat([0, 1], n).astype(np.int32)
    failed = np.zeros(2 * n, bool)
    failed[[1, 4, 7]] = True                                         # system 0: samples 1, 4; system 1: 1
    texts = ["" if f else f"answer {i} with words {i % 4}" for i, f in enumerate(failed)]
    group = PromptGroup("p0", systems, x, texts, samples=np.tile(np.arange(n), 2).astype(np.int32))
    garbage = PromptGroup("p0", systems, np.where(failed[:, None], x[::-1], x), texts, samples=group.samples)
    t = idea_threshold(0.1)
    cells = []
    for g in (group, garbage):                    # what a failed row's vector holds changes nothing
        acc = DiversityAccumulator(2, 2, threshold=t)
        acc.add(g, np.ones(2 * n, bool), failed)
        cells.append(acc.finish())
    stats = cells[0]
    for name in stats.cells:
        np.testing.assert_allclose(cells[1].cells[name], stats.cells[name], rtol=0, atol=1e-9, err_msg=name)
    x64 = x.astype(np.float64)
    for s in (0, 1):
        mine = systems == s
        xs, ok = x64[mine], ~failed[mine]
        assert stats.counts[0, s] == n and stats.failed[0, s] == (~ok).sum()
        assert stats.cells["pass_rate"][0, s] == pytest.approx(ok.mean())
        assert stats.cells["effective_diversity"][0, s] == pytest.approx(effective_brute(xs, ok), abs=1e-6)
        assert stats.cells["vendi"][0, s] == pytest.approx(vendi_brute(xs[ok]), rel=1e-6)
        ideas = partition_brute(xs[ok], t)
        assert stats.cells["distinct_ideas"][0, s] == ideas.max() + 1
        new, seen, j = [], set(), 0               # utility: a failure keeps its place, earns 0
        for keep in ok:
            new.append(keep and ideas[j] not in seen)
            if keep:
                seen.add(ideas[j])
                j += 1
        brute = (1 - 0.8) / (1 - 0.8 ** n) * sum(0.8 ** i for i, is_new in enumerate(new) if is_new)
        assert stats.cells["utility"][0, s] == pytest.approx(brute, abs=1e-9)
        other = x64[~mine][~failed[~mine]]        # B: the other system's real answers only
        brute = sum(ok[i] * (1 - xs[i] @ other[j]) for i in range(n) for j in range(len(other)))
        assert stats.cells["effective_distinctness"][0, s] == pytest.approx(brute / (n * len(other)), abs=1e-6)
    assert stats.pooled["pooled_n"][0] == 2 * n and stats.pooled["pooled_failed"][0] == 3
    assert stats.pooled["pooled_vendi"][0] == pytest.approx(vendi_brute(x64[~failed]), rel=1e-6)
    assert stats.pooled["pooled_effective_diversity"][0] == pytest.approx(effective_brute(x64, ~failed), abs=1e-6)


def test_bootstrap_ci_brackets_the_mean():
    rng = np.random.default_rng(5)
    acc = DiversityAccumulator(2, 2, threshold=0.8)
    for p in range(30):
        x = np.vstack([unit(rng, 4, 8, spread=s) for s in (1.0, 0.2)]).astype(np.float32)
        acc.add(PromptGroup(f"p{p}", np.repeat([0, 1], 4).astype(np.int32), x, [], None), np.ones(8, bool))
    stats = acc.finish()
    low, high = stats.bootstrap("effective_diversity", n=200, seed=0)
    mean = stats.system_means()["effective_diversity"]
    assert np.all(low <= mean) and np.all(mean <= high) and np.all(low < high)


def test_fast_words_equal_the_reference_tokenizer_on_real_and_tricky_text():
    """The per-prompt lexical metrics use diversity.fast_words for speed; it must give phrases.words exactly."""
    import glob
    import json as _json

    from hivemind.analyze.diversity import fast_words
    from hivemind.analyze.phrases import words

    texts = ["don't 'quoted' a''b rock'n'roll it's_x naïve x_y __init__ ''' 'a 12'34 e.g. ' '' end'",
             "ÉCOLE 東京 mixed with ascii", "", "'''", "tabs\tand\nnewlines; punctuation!?"]
    data = Path(__file__).resolve().parents[2] / "shared" / "data" / "alpaca_eval_outputs"
    for path in sorted(glob.glob(str(data / "*.json")))[:4]:
        texts += [r["output"] for r in _json.loads(Path(path).read_text(encoding="utf-8"))]
    assert [fast_words(t) for t in texts] == [words(t) for t in texts]
