"""Near-duplicates, neighbour diversity, and templates reused across prompts, with FAISS.

Per prompt (exact, IndexFlatIP on normalised vectors, so inner product = cosine):
- near-duplicates: every pair of responses from *different* systems with cosine >= threshold (range
  search), plus exact duplicates (same text after lower-casing and collapsing whitespace, flagged
  `exact`, kept even if their vectors differ). Pairs are grouped into clusters = connected components.
- neighbour diversity (paper Fig 8): for each response, its N most similar *other* responses to the same
  prompt; we count the distinct systems among them. The response itself is excluded; its own system's
  other samples are neighbours like any other and count as one system. Fig. 8 as published: per prompt,
  the mean over its answers for N = 5, 10, ..., 50 (FIG8_NS), N capped at n - 1 where a prompt has fewer
  answers (counted in n_capped, reported). The per-system figure uses N = min(n_neighbors, (n - 1) // 2):
  with N = n - 1 every answer would see every other answer, and the figure would be the number of
  systems, a constant (a prompt with fewer than 3 answers gives none).

Across prompts (approximate): responses from different prompts with cosine >= threshold are template
answers (a canned refusal, a boilerplate intro). Indexing every response would cost P*K*samples
vectors; we index a bounded sample instead: the first `template_samples` samples (lowest sample index)
of each system for each prompt, i.e. at most P*K*template_samples vectors. Small sets use an exact flat
index; larger ones an IVF index (nprobe 8 of ~4 sqrt(n) lists; 8-bit scalar-quantised above `sq_above`
vectors), so a few
template pairs near the threshold can be missed. The output is capped at the `max_templates` most
similar pairs.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import faiss
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from hivemind.analyze.similarity import clip_cosine, ratio

FIG8_NS = tuple(range(5, 51, 5))
EXAMPLES_PER_PROMPT = 2     # near-duplicate pairs shown per prompt
N_EXAMPLES = 10


def spread_examples(pairs, per_prompt: int = EXAMPLES_PER_PROMPT, n: int = N_EXAMPLES, by: str = "prompt_id",
                    score: str = "similarity"):
    """The examples to show from a table of pairs (a pandas DataFrame): round-robin over prompts, most
    similar first. Round 1 takes each prompt's best pair, prompts ordered by that pair's score; round 2 each
    prompt's second best; at most `per_prompt` rounds, `n` rows in all. So one prompt with many near
    duplicates (ten identical answers give 45 pairs) shows at most `per_prompt` of them, and the examples
    come from as many prompts as there are."""
    if pairs.empty:
        return pairs.copy()
    ranked = pairs.sort_values(score, ascending=False, kind="stable")
    turn = ranked.groupby(by, sort=False).cumcount()
    ranked = ranked[turn < per_prompt].assign(_turn=turn[turn < per_prompt])
    return ranked.sort_values(["_turn", score], ascending=[True, False], kind="stable") \
        .head(n).drop(columns="_turn")

def normalise_text(text: str) -> str:
    """Whitespace and case do not make two answers different."""
    return " ".join(text.lower().split())


@dataclass
class NearDuplicates:
    prompt: np.ndarray          # int: index into prompt_ids
    system_a: np.ndarray
    system_b: np.ndarray
    sample_a: np.ndarray
    sample_b: np.ndarray
    similarity: np.ndarray
    exact: np.ndarray           # bool
    cluster: np.ndarray         # int: global cluster id
    text_a: list[str]
    text_b: list[str]


@dataclass
class NearDuplicateCluster:
    """Near-duplicate answers to one prompt, joined through their pairs (a row of near_duplicate_clusters.csv)."""
    prompt: int
    cluster: int
    size: int                   # responses in the cluster
    systems: list[int]          # distinct system indexes, ascending


@dataclass
class Templates:
    prompt_a: np.ndarray
    prompt_b: np.ndarray
    system_a: np.ndarray
    system_b: np.ndarray
    sample_a: np.ndarray
    sample_b: np.ndarray
    similarity: np.ndarray


@dataclass
class NeighborResults:
    prompt_ids: list[str]
    threshold: float
    n_neighbors: int
    near_duplicates: NearDuplicates
    clusters: list[NearDuplicateCluster]
    responses: np.ndarray               # (K,) responses seen per system
    with_near_duplicate: np.ndarray     # (K,) of those, how many have a near-duplicate from another system
    distinct_neighbors_sum: np.ndarray  # (K,) sum over responses of distinct systems among neighbours
    neighbors_sum: np.ndarray           # (K,) sum over responses of N used
    neighbor_responses: np.ndarray      # (K,) responses with at least one neighbour
    templates: Templates
    template_index: str                 # which FAISS index found the templates
    by_n: list[tuple[str, int, int, float]] = field(default_factory=list)  # (prompt, N, N used, mean distinct)
    n_capped: int = 0                   # prompts where N was capped below max(FIG8_NS)

    @property
    def near_duplicate_rate(self) -> np.ndarray:
        return ratio(self.with_near_duplicate, self.responses)

    @property
    def mean_distinct_neighbors(self) -> np.ndarray:
        return ratio(self.distinct_neighbors_sum, self.neighbor_responses)

    @property
    def mean_n_neighbors(self) -> np.ndarray:
        return ratio(self.neighbors_sum, self.neighbor_responses)


@dataclass
class _PromptPairs:
    rows: np.ndarray
    cols: np.ndarray
    sims: np.ndarray
    exact: np.ndarray


class NearDuplicateFinder:
    """Streams PromptGroups. Keeps the pairs found, per-system counters, and the template sample."""

    def __init__(self, n_systems: int, threshold: float = 0.9, n_neighbors: int = 50,
                 template_samples: int = 1, keep_texts: bool = True):
        self.n_systems = n_systems
        self.threshold = float(threshold)
        self.n_neighbors = n_neighbors
        self.template_samples = template_samples
        self.keep_texts = keep_texts
        self.prompt_ids: list[str] = []
        self.responses = np.zeros(n_systems, dtype=np.int64)
        self.with_near_duplicate = np.zeros(n_systems, dtype=np.int64)
        self.distinct_sum = np.zeros(n_systems, dtype=np.int64)
        self.neighbors_sum = np.zeros(n_systems, dtype=np.int64)
        self.neighbor_responses = np.zeros(n_systems, dtype=np.int64)
        self.pair_parts: list[dict] = []
        self.clusters: list[NearDuplicateCluster] = []
        self.template_vectors: list[np.ndarray] = []
        self.template_keys: list[np.ndarray] = []     # (m, 3): prompt, system, sample
        self._next_cluster = 0
        self.by_n: list[tuple[str, int, int, float]] = []
        self.n_capped = 0

    # One prompt ---------------------------------------------------------------------------------
    def add(self, group) -> None:
        p = len(self.prompt_ids)
        self.prompt_ids.append(group.prompt_id)
        vectors = np.ascontiguousarray(group.vectors, dtype=np.float32)
        systems = np.asarray(group.systems, dtype=np.int64)
        samples = np.asarray(group.sample_numbers, dtype=np.int64)
        n = len(systems)
        self.responses += np.bincount(systems, minlength=self.n_systems)
        self._keep_template_sample(p, vectors, systems, samples)
        if n < 2:
            return
        index = faiss.IndexFlatIP(vectors.shape[1])
        index.add(vectors)
        pairs = self._pairs(index, vectors, systems, group.texts)
        if len(pairs.rows):
            self._record_pairs(p, pairs, systems, samples, group.texts)
        self._neighbor_diversity(index, vectors, systems)

    def _pairs(self, index, vectors, systems, texts) -> _PromptPairs:
        # FAISS keeps inner products strictly above the radius; step one float below the threshold
        # and filter with >= ourselves so a cosine equal to the threshold counts.
        radius = float(np.nextafter(np.float32(self.threshold), np.float32(-np.inf)))
        lims, sims, cols = index.range_search(vectors, radius)
        rows = np.repeat(np.arange(len(vectors)), np.diff(lims.astype(np.int64)))
        keep = (rows < cols) & (sims >= np.float32(self.threshold)) & (systems[rows] != systems[cols])
        rows, cols, sims = rows[keep], cols[keep], sims[keep]
        exact = np.zeros(len(rows), dtype=bool)
        if texts:
            norm = [normalise_text(t) for t in texts]
            exact = np.array([norm[i] == norm[j] for i, j in zip(rows, cols)], dtype=bool)
            extra = self._exact_pairs_below(norm, systems, set(zip(rows.tolist(), cols.tolist())))
            if extra:
                er = np.array([e[0] for e in extra])
                ec = np.array([e[1] for e in extra])
                es = np.einsum("ij,ij->i", vectors[er], vectors[ec])
                rows, cols = np.concatenate([rows, er]), np.concatenate([cols, ec])
                sims = np.concatenate([sims, es])
                exact = np.concatenate([exact, np.ones(len(er), dtype=bool)])
        return _PromptPairs(rows, cols, clip_cosine(sims).astype(np.float32), exact)

    @staticmethod
    def _exact_pairs_below(norm: list[str], systems: np.ndarray, found: set) -> list[tuple[int, int]]:
        """Same normalised text from different systems that the range search did not already return
        (their vectors can differ when only case or spacing differs)."""
        by_text: dict[str, list[int]] = {}
        for i, t in enumerate(norm):
            by_text.setdefault(t, []).append(i)
        extra = []
        for idx in by_text.values():
            for a in range(len(idx)):
                for b in range(a + 1, len(idx)):
                    i, j = idx[a], idx[b]
                    if systems[i] != systems[j] and (i, j) not in found:
                        extra.append((i, j))
        return extra

    def _record_pairs(self, p, pairs: _PromptPairs, systems, samples, texts) -> None:
        n = len(systems)
        graph = coo_matrix((np.ones(len(pairs.rows)), (pairs.rows, pairs.cols)), shape=(n, n))
        _, labels = connected_components(graph, directed=False)
        nodes = np.unique(np.concatenate([pairs.rows, pairs.cols]))
        self.with_near_duplicate += np.bincount(systems[nodes], minlength=self.n_systems)
        # Renumber the components that have an edge as global cluster ids, in order of first node.
        local = {}
        for node in nodes:
            local.setdefault(labels[node], len(local))
        for label, offset in local.items():
            members = nodes[labels[nodes] == label]
            self.clusters.append(NearDuplicateCluster(prompt=p, cluster=self._next_cluster + offset,
                                                      size=len(members),
                                                      systems=sorted(set(systems[members].tolist()))))
        cluster = np.array([self._next_cluster + local[labels[r]] for r in pairs.rows], dtype=np.int64)
        self._next_cluster += len(local)
        self.pair_parts.append(dict(
            prompt=np.full(len(pairs.rows), p, dtype=np.int64),
            system_a=systems[pairs.rows], system_b=systems[pairs.cols],
            sample_a=samples[pairs.rows], sample_b=samples[pairs.cols],
            similarity=pairs.sims, exact=pairs.exact, cluster=cluster,
            text_a=[texts[i] for i in pairs.rows] if (self.keep_texts and texts) else [],
            text_b=[texts[j] for j in pairs.cols] if (self.keep_texts and texts) else [],
        ))

    def _neighbor_diversity(self, index, vectors, systems) -> None:
        n = len(systems)
        k = min(max(self.n_neighbors, max(FIG8_NS)), n - 1)
        _, labels = index.search(vectors, k + 1)
        # Drop the response itself. With exact ties it may sit anywhere in its row, or (rarely) fall
        # just outside the k + 1 returned; then the row's last entry is dropped instead.
        is_self = labels == np.arange(n)[:, None]
        drop = np.where(is_self.any(axis=1), is_self.argmax(axis=1), k)
        cols = np.arange(k)[None, :]
        cols = cols + (cols >= drop[:, None])
        neighbors = np.take_along_axis(labels, cols, axis=1)
        # distinct[i, j]: distinct systems among the j + 1 nearest neighbours of answer i.
        seen = np.zeros((n, k, self.n_systems), dtype=bool)
        seen[np.arange(n)[:, None], np.arange(k)[None, :], systems[neighbors]] = True
        distinct = np.logical_or.accumulate(seen, axis=1).sum(axis=2)
        prompt_id = self.prompt_ids[-1]
        if k < max(FIG8_NS):
            self.n_capped += 1
        for big_n in FIG8_NS:
            used = min(big_n, k)
            self.by_n.append((prompt_id, big_n, used, float(distinct[:, used - 1].mean())))
        per_system = min(self.n_neighbors, (n - 1) // 2)
        if per_system < 1:
            return
        self.distinct_sum += np.bincount(systems, weights=distinct[:, per_system - 1],
                                         minlength=self.n_systems).astype(np.int64)
        self.neighbors_sum += np.bincount(systems, minlength=self.n_systems) * per_system
        self.neighbor_responses += np.bincount(systems, minlength=self.n_systems)

    def _keep_template_sample(self, p, vectors, systems, samples) -> None:
        order = np.lexsort((samples, systems))
        sorted_systems = systems[order]
        first = np.searchsorted(sorted_systems, sorted_systems, side="left")
        rank = np.arange(len(order)) - first
        keep = order[rank < self.template_samples]
        self.template_vectors.append(vectors[keep])
        self.template_keys.append(np.column_stack([np.full(len(keep), p), systems[keep], samples[keep]]))

    # All prompts --------------------------------------------------------------------------------
    def finish(self, max_templates: int = 1000, sq_above: int = 2_000_000, seed: int = 0) -> NeighborResults:
        return NeighborResults(
            prompt_ids=list(self.prompt_ids), threshold=self.threshold, n_neighbors=self.n_neighbors,
            near_duplicates=self._concat_pairs(), clusters=self.clusters,
            responses=self.responses.copy(), with_near_duplicate=self.with_near_duplicate.copy(),
            distinct_neighbors_sum=self.distinct_sum.copy(), neighbors_sum=self.neighbors_sum.copy(),
            neighbor_responses=self.neighbor_responses.copy(), by_n=list(self.by_n), n_capped=self.n_capped,
            **self._templates(max_templates, sq_above, seed),
        )

    def _concat_pairs(self) -> NearDuplicates:
        def cat(key, dtype):
            parts = [part[key] for part in self.pair_parts]
            return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)
        return NearDuplicates(
            prompt=cat("prompt", np.int64), system_a=cat("system_a", np.int64), system_b=cat("system_b", np.int64),
            sample_a=cat("sample_a", np.int64), sample_b=cat("sample_b", np.int64),
            similarity=cat("similarity", np.float32), exact=cat("exact", bool), cluster=cat("cluster", np.int64),
            text_a=[t for part in self.pair_parts for t in part["text_a"]],
            text_b=[t for part in self.pair_parts for t in part["text_b"]],
        )

    def _templates(self, max_templates: int, sq_above: int, seed: int) -> dict:
        empty = Templates(*(np.zeros(0, dtype=np.int64) for _ in range(6)), similarity=np.zeros(0, np.float32))
        if not self.template_vectors:
            return dict(templates=empty, template_index="none")
        x = np.ascontiguousarray(np.vstack(self.template_vectors), dtype=np.float32)
        keys = np.vstack(self.template_keys)
        self.template_vectors, self.template_keys = [], []   # the index holds its own copy
        if len(self.prompt_ids) < 2 or len(x) < 2:
            return dict(templates=empty, template_index="none")
        index, name = build_template_index(x, sq_above=sq_above, seed=seed)
        # A prompt's own responses can fill the top of the list; ask for enough to see past them.
        per_prompt = int(np.bincount(keys[:, 0]).max())
        k = min(len(x), per_prompt + 10)
        sims, labels = index.search(x, k)
        rows = np.repeat(np.arange(len(x)), k)
        cols, sims = labels.ravel(), sims.ravel()
        keep = (cols >= 0) & (sims >= np.float32(self.threshold))
        rows, cols, sims = rows[keep], cols[keep], sims[keep]
        keep = keys[rows, 0] != keys[cols, 0]
        rows, cols, sims = rows[keep], cols[keep], sims[keep]
        # Each pair once (a, b) with a < b; both directions may have been found.
        a, b = np.minimum(rows, cols), np.maximum(rows, cols)
        _, first = np.unique(a * len(x) + b, return_index=True)
        a, b, sims = a[first], b[first], sims[first]
        top = np.argsort(-sims, kind="stable")[:max_templates]
        a, b, sims = a[top], b[top], clip_cosine(sims)
        return dict(templates=Templates(
            prompt_a=keys[a, 0], prompt_b=keys[b, 0], system_a=keys[a, 1], system_b=keys[b, 1],
            sample_a=keys[a, 2], sample_b=keys[b, 2], similarity=sims), template_index=name)


def build_template_index(x: np.ndarray, sq_above: int = 2_000_000, seed: int = 0):
    """Exact flat index below 20,000 vectors; IVF (8-bit scalar quantised above `sq_above`) otherwise.

    About 4 sqrt(n) inverted lists, nprobe = 8: a query scans ~0.2% of the vectors at 65k. A
    near-duplicate (cosine >= 0.9) almost always falls in one of the query's closest lists, and the
    k-means is trained on 40 points per list for 10 iterations to keep training to seconds."""
    n, d = x.shape
    nlist = min(int(4 * np.sqrt(n)), n // 40)
    if n < 20_000 or nlist < 32:
        index = faiss.IndexFlatIP(d)
        index.add(x)
        return index, "IndexFlatIP (exact)"
    quantizer = faiss.IndexFlatIP(d)
    nprobe = 8
    if n > sq_above:
        index = faiss.IndexIVFScalarQuantizer(quantizer, d, nlist, faiss.ScalarQuantizer.QT_8bit,
                                              faiss.METRIC_INNER_PRODUCT)
        name = f"IndexIVFScalarQuantizer(nlist={nlist}, SQ8, nprobe={nprobe})"
    else:
        index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
        name = f"IndexIVFFlat(nlist={nlist}, nprobe={nprobe})"
    index.cp.niter = 10
    index.cp.seed = seed
    rng = np.random.default_rng(seed)
    index.train(x[rng.choice(n, size=min(n, nlist * 40), replace=False)])
    index.add(x)
    index.nprobe = nprobe
    return index, name


