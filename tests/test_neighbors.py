"""Near-duplicates (planted at known cosines), exact duplicates, clusters, neighbour diversity, templates."""
from __future__ import annotations

import numpy as np
import pytest

from hivemind.analyze.neighbors import NearDuplicateFinder, build_template_index, normalise_text
from hivemind.store import PromptGroup
from test_similarity import needs_data, real_groups

DIM = 64
BASIS = np.linalg.qr(np.random.default_rng(0).standard_normal((DIM, DIM)))[0].T   # orthonormal rows


def at_cosine(a: np.ndarray, c: float, other: np.ndarray) -> np.ndarray:
    """A unit vector whose cosine with unit vector `a` is exactly c (other is orthogonal to a)."""
    return c * a + np.sqrt(1 - c * c) * other


def planted_group() -> tuple[PromptGroup, set[tuple[int, int]]]:
    e = BASIS
    rows = [
        (0, e[0]), (1, at_cosine(e[0], 0.95, e[1])),        # 0-1: found
        (2, e[2]), (3, at_cosine(e[2], 0.9005, e[3])),      # 2-3: just above the threshold, found
        (0, e[4]), (1, at_cosine(e[4], 0.8995, e[5])),      # 4-5: just below, not found
        (2, e[6]), (2, at_cosine(e[6], 0.99, e[7])),        # 6-7: same system, not a cross-system pair
        (3, e[8]), (1, at_cosine(e[8], 0.85, e[9])),        # 8-9: below
    ]
    r11 = at_cosine(e[10], 0.95, e[11])
    rows += [(0, e[10]), (1, r11), (2, at_cosine(r11, 0.93, e[12]))]   # chain: 10-11, 11-12 (10-12 = 0.8835)
    rows += [(0, e[13]), (3, e[14]), (1, e[15])]            # same text after normalisation, unrelated vectors
    texts = [f"answer {i}" for i in range(len(rows))]
    texts[13:16] = ["Hello   World", "hello world", "HELLO world\n"]
    group = PromptGroup("p0", np.array([s for s, _ in rows], dtype=np.int32),
                        np.array([v for _, v in rows], dtype=np.float32), texts,
                        np.arange(len(rows), dtype=np.int32))
    expected = {(0, 1), (2, 3), (10, 11), (11, 12), (13, 14), (13, 15), (14, 15)}
    return group, expected


def run_finder(groups, n_systems, **kwargs):
    finder = NearDuplicateFinder(n_systems, **kwargs)
    for g in groups:
        finder.add(g)
    return finder.finish()


def found_pairs(result) -> set[tuple[int, int]]:
    d = result.near_duplicates
    return set(zip(d.sample_a.tolist(), d.sample_b.tolist()))


def test_planted_near_duplicates_found_and_nothing_below_threshold():
    group, expected = planted_group()
    result = run_finder([group], 4, threshold=0.9)
    assert found_pairs(result) == expected
    d = result.near_duplicates
    sims = dict(zip(zip(d.sample_a.tolist(), d.sample_b.tolist()), d.similarity.tolist()))
    assert sims[(0, 1)] == pytest.approx(0.95, abs=1e-6) and sims[(2, 3)] == pytest.approx(0.9005, abs=1e-6)
    near = d.similarity[~d.exact]
    assert np.all(near >= 0.9)
    exact = dict(zip(zip(d.sample_a.tolist(), d.sample_b.tolist()), d.exact.tolist()))
    assert exact[(13, 14)] and exact[(14, 15)] and not exact[(0, 1)]
    assert d.text_a[list(zip(d.sample_a, d.sample_b)).index((0, 1))] == "answer 0"


def test_threshold_equal_to_a_cosine_counts():
    e = BASIS
    group = PromptGroup("p", np.array([0, 1], dtype=np.int32), np.array([e[0], e[0]], dtype=np.float32), [])
    cos = float(group.vectors[0] @ group.vectors[1])
    assert found_pairs(run_finder([group], 2, threshold=cos)) == {(0, 1)}


def test_clusters_are_connected_components_with_their_systems():
    group, _ = planted_group()
    result = run_finder([group], 4, threshold=0.9)
    clusters = {(c.size, tuple(c.systems)) for c in result.clusters}
    assert clusters == {(2, (0, 1)), (2, (2, 3)), (3, (0, 1, 2)), (3, (0, 1, 3))}
    assert len({c.cluster for c in result.clusters}) == 4
    d = result.near_duplicates
    chain = {c for a, b, c in zip(d.sample_a, d.sample_b, d.cluster) if (a, b) in {(10, 11), (11, 12)}}
    assert len(chain) == 1


def test_near_duplicate_rate_per_system():
    group, _ = planted_group()
    result = run_finder([group], 4, threshold=0.9)
    assert result.responses.tolist() == [4, 5, 4, 3]
    np.testing.assert_allclose(result.near_duplicate_rate, [3 / 4, 3 / 5, 2 / 4, 2 / 3])


def test_normalise_text():
    assert normalise_text("  Hello\n\tWORLD ") == normalise_text("hello world") == "hello world"


def brute_force_diversity(groups, n_systems, n_neighbors):
    total, count = np.zeros(n_systems), np.zeros(n_systems)
    for g in groups:
        sims = g.vectors.astype(np.float64) @ g.vectors.astype(np.float64).T
        n = len(sims)
        k = min(n_neighbors, (n - 1) // 2)
        for i in range(n):
            order = [j for j in np.argsort(-sims[i], kind="stable") if j != i][:k]
            total[g.systems[i]] += len(set(g.systems[order].tolist()))
            count[g.systems[i]] += 1
    return total / count


def test_neighbor_diversity_matches_brute_force():
    rng = np.random.default_rng(5)
    groups = []
    for p, n in enumerate([40, 9, 25]):
        systems = rng.integers(0, 6, size=n).astype(np.int32)
        v = rng.standard_normal((n, 24)) + rng.standard_normal(6)[systems][:, None] * 0.5
        v = (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
        groups.append(PromptGroup(f"p{p}", systems, v, []))
    result = run_finder(groups, 6, threshold=0.9, n_neighbors=10)
    np.testing.assert_allclose(result.mean_distinct_neighbors, brute_force_diversity(groups, 6, 10))
    # N = min(10, (n - 1) // 2): 10 on the big prompts, 4 on the 9-response one
    assert np.all(result.mean_n_neighbors <= 10) and np.any(result.mean_n_neighbors < 10)


def test_fig8_curve_per_prompt_matches_brute_force_and_caps_n():
    rng = np.random.default_rng(7)
    groups = []
    for p, n in enumerate([60, 12]):
        systems = rng.integers(0, 8, size=n).astype(np.int32)
        v = rng.standard_normal((n, 24)) + rng.standard_normal(8)[systems][:, None] * 0.5
        groups.append(PromptGroup(f"p{p}", systems, (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32), []))
    result = run_finder(groups, 8, threshold=0.9, n_neighbors=50)
    rows = {(pid, n): (used, value) for pid, n, used, value in result.by_n}
    assert sorted({n for _, n in rows}) == list(range(5, 51, 5))
    for g in groups:
        sims = g.vectors.astype(np.float64) @ g.vectors.astype(np.float64).T
        for big_n in range(5, 51, 5):
            used = min(big_n, len(sims) - 1)
            brute = np.mean([len(set(g.systems[[j for j in np.argsort(-sims[i], kind="stable") if j != i][:used]]
                                     .tolist())) for i in range(len(sims))])
            assert rows[(g.prompt_id, big_n)] == (used, pytest.approx(brute))
    assert result.n_capped == 1                       # the 12-answer prompt: N capped at 11


def test_per_system_neighbours_are_not_a_constant_on_small_prompts():
    """With N >= n - 1 every answer sees all others and the figure is the number of systems for everyone."""
    rng = np.random.default_rng(8)
    centres = rng.standard_normal((3, 16)) * 3
    groups = []
    for p in range(5):
        systems = np.repeat(np.arange(3), 6).astype(np.int32)
        v = centres[systems] + rng.standard_normal((18, 16)) * np.array([0.3, 0.3, 3.0])[systems][:, None]
        groups.append(PromptGroup(f"p{p}", systems, (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32), []))
    result = run_finder(groups, 3, threshold=0.99, n_neighbors=50)
    assert len(set(np.round(result.mean_distinct_neighbors, 6))) > 1
    assert np.all(result.mean_n_neighbors == 8)


def test_neighbor_diversity_with_identical_vectors_excludes_self():
    v = np.tile(BASIS[0], (5, 1)).astype(np.float32)
    group = PromptGroup("p", np.array([0, 0, 1, 2, 3], dtype=np.int32), v, [])
    result = run_finder([group], 4, threshold=0.9, n_neighbors=4)
    # Fig. 8 at N = 5, capped at the 4 other answers: system 0's two samples see its other sample + 3
    # systems (4), the others see systems 0 and the two remaining (3).
    used, value = [(u, m) for _, n, u, m in result.by_n if n == 5][0]
    assert used == 4 and value == pytest.approx((4 + 4 + 3 + 3 + 3) / 5)


def test_cross_prompt_templates_from_the_first_sample_of_each_system():
    e = BASIS
    groups = []
    for p in range(4):
        # system s, samples 0 and 1, all mutually orthogonal ...
        vectors = [e[8 * p + 2 * s + j] for s in range(2) for j in range(2)]
        systems = [0, 0, 1, 1]
        samples = [0, 1, 0, 1]
        groups.append([vectors, systems, samples])
    groups[2][0][2] = at_cosine(e[0], 0.97, e[60])     # prompt 2 system 1 sample 0 ~ prompt 0 system 0 sample 0
    groups[3][0][3] = at_cosine(e[1], 0.99, e[61])     # a template on sample 1: outside the indexed sample
    groups = [PromptGroup(f"p{p}", np.array(s, dtype=np.int32), np.array(v, dtype=np.float32), [],
                          np.array(x, dtype=np.int32)) for p, (v, s, x) in enumerate(groups)]
    result = run_finder(groups, 2, threshold=0.9, template_samples=1)
    t = result.templates
    assert len(t.similarity) == 1 and t.similarity[0] == pytest.approx(0.97, abs=1e-6)
    assert {(t.prompt_a[0], t.system_a[0]), (t.prompt_b[0], t.system_b[0])} == {(0, 0), (2, 1)}
    assert "exact" in result.template_index


def test_approximate_template_index_finds_planted_pairs_at_scale():
    rng = np.random.default_rng(7)
    n_prompts, n_systems = 900, 25              # 22,500 indexed vectors -> the IVF index
    planted = {(int(a), int(b)) for a, b in rng.choice(n_prompts, size=(6, 2), replace=False)}
    template = {a: rng.standard_normal(DIM) for a, _ in planted}
    groups = []
    for p in range(n_prompts):
        v = rng.standard_normal((n_systems, DIM))
        for a, b in planted:
            if p in (a, b):
                v[3 if p == a else 7] = template[a] + 0.05 * rng.standard_normal(DIM)
        v = (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
        groups.append(PromptGroup(f"p{p}", np.arange(n_systems, dtype=np.int32), v, []))
    result = run_finder(groups, n_systems, threshold=0.9, n_neighbors=5)
    assert result.template_index.startswith("IndexIVF")
    t = result.templates
    found = {(min(a, b), max(a, b)) for a, b in zip(t.prompt_a.tolist(), t.prompt_b.tolist())}
    assert found == {(min(a, b), max(a, b)) for a, b in planted}
    assert np.all(t.similarity >= 0.9)


def test_index_choice_by_size():
    x = np.random.default_rng(1).standard_normal((1000, 16)).astype(np.float32)
    assert "exact" in build_template_index(x)[1]


@needs_data
def test_real_text_pairs_equal_brute_force():
    groups = real_groups()
    threshold = 0.8
    result = run_finder(groups, 5, threshold=threshold)
    expected = set()
    for p, g in enumerate(groups):
        sims = g.vectors @ g.vectors.T
        for i in range(len(sims)):
            for j in range(i + 1, len(sims)):
                if g.systems[i] != g.systems[j] and sims[i, j] >= threshold:
                    expected.add((p, i, j))
    d = result.near_duplicates
    assert set(zip(d.prompt.tolist(), d.sample_a.tolist(), d.sample_b.tolist())) == expected
    assert expected, "threshold 0.8 should find some real near-duplicates among 16 models' answers"
