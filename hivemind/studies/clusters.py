"""The paper's cluster view: for one prompt, the pooled answers of every system grouped by k-means.

The paper shows, for "Write a metaphor about time", that 25 models' answers fall into a handful of ideas
("time is a river", "time is a weaver"). Here the answers' stored embeddings (unit vectors) are clustered
with spherical k-means (faiss.Kmeans, cosine: vectors are L2-normalised and centroids re-normalised), seeded
so the same run gives the same clusters. For each cluster: its size, the systems with an answer in it (and
how many), and its most central answer, the one with the highest cosine to the centroid.

Writes clusters_<prompt>.csv and clusters_<prompt>.png (a 2-D PCA projection of the answers, coloured by
cluster, the central answers labelled) into the run folder.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hivemind.core.errors import HivemindError


@dataclass
class AnswerCluster:
    """One k-means cluster of a prompt's pooled answers: its size, the systems in it, its most central answer."""
    cluster: int
    size: int
    systems: dict[str, int]        # system name -> answers in this cluster
    central_system: str
    central_text: str
    central_similarity: float      # cosine of the central answer to the centroid


def kmeans(vectors: np.ndarray, k: int, seed: int = 0, iterations: int = 50,
           restarts: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """(labels, unit centroids) of spherical k-means over unit vectors; the best of `restarts` seeded runs
    (k-means only finds a local optimum, and one start on a few answers often lands in a poor one)."""
    import faiss

    x = np.ascontiguousarray(vectors, dtype=np.float32)
    model = faiss.Kmeans(x.shape[1], k, niter=iterations, seed=seed, spherical=True, verbose=False,
                         min_points_per_centroid=1, nredo=restarts)
    model.train(x)
    _dist, labels = model.index.search(x, 1)
    return labels[:, 0], model.centroids


def cluster_answers(vectors: np.ndarray, systems: list[str], texts: list[str], k: int,
                    seed: int = 0) -> tuple[list[AnswerCluster], np.ndarray]:
    """Clusters, largest first and numbered 0.. in that order, and each answer's cluster number."""
    if k < 1:
        raise HivemindError(f"-k must be at least 1, got {k}")
    if len(vectors) < k:
        raise HivemindError(f"{len(vectors)} answers cannot form {k} clusters; lower -k")
    labels, centroids = kmeans(vectors, k, seed)
    clusters = []
    for c in range(k):
        members = np.flatnonzero(labels == c)
        if not len(members):
            continue
        similarity = vectors[members] @ centroids[c]
        best = members[int(np.argmax(similarity))]
        counts: dict[str, int] = {}
        for i in members:
            counts[systems[i]] = counts.get(systems[i], 0) + 1
        clusters.append(AnswerCluster(c, len(members), dict(sorted(counts.items(), key=lambda kv: -kv[1])),
                                      systems[best], texts[best], float(similarity.max())))
    clusters.sort(key=lambda cl: (-cl.size, cl.cluster))
    renumber = {cl.cluster: i for i, cl in enumerate(clusters)}
    for cl in clusters:
        cl.cluster = renumber[cl.cluster]
    return clusters, np.array([renumber[int(label)] for label in labels])


def clusters_run(config, prompt_id: str, k: int = 5, seed: int = 0,
                 wait: bool = False) -> tuple[Path, Path, list[AnswerCluster], np.ndarray]:
    """Cluster one prompt's pooled answers; write the table and the figure (under the run lock). Needs
    `hivemind embed` first."""
    from hivemind.results.folder import run_locked

    with run_locked(config, "clusters", wait):
        return _clusters(config, prompt_id, k, seed)


def _clusters(config, prompt_id: str, k: int, seed: int) -> tuple[Path, Path, list[AnswerCluster], np.ndarray]:
    import pandas as pd

    from hivemind.results.folder import writing
    from hivemind.store import Store

    ids = [s.identity for s in config.systems]
    names = [s.name for s in config.systems]
    with Store.open_readonly(config.store_path) as store:
        prompts = {p.id: p.text for p in store.prompts()}
        if prompt_id not in prompts:
            raise HivemindError(f"run {config.name!r} has no prompt {prompt_id!r} (see prompt_homogeneity.csv "
                                f"for the ids)")
        group = store.prompt_group(config.embedder.id, ids, prompt_id)
    if group is None:
        raise HivemindError(f"prompt {prompt_id!r} has no embedded answers; run `hivemind embed {config.name}`")
    systems = [names[i] for i in group.systems]
    clusters, labels = cluster_answers(group.vectors, systems, group.texts, k, seed)
    frame = pd.DataFrame([{"cluster": c.cluster, "size": c.size, "n_systems": len(c.systems),
                           "systems": ";".join(f"{name} ({n})" for name, n in c.systems.items()),
                           "central_system": c.central_system, "central_similarity": round(c.central_similarity, 4),
                           "central_text": c.central_text} for c in clusters])
    stem = "clusters_" + re.sub(r"[^A-Za-z0-9_.-]", "_", prompt_id)
    with writing(config.run_dir, "clusters", config=config) as out:
        table = out.csv(f"{stem}.csv", frame)
        figure = _figure(out, f"{stem}.png", group.vectors, labels, clusters, prompts[prompt_id])
    return table, figure, clusters, labels


def _figure(out, name: str, vectors: np.ndarray, labels: np.ndarray, clusters: list[AnswerCluster],
            prompt: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import textwrap

    import matplotlib.pyplot as plt

    centred = vectors - vectors.mean(axis=0)
    _u, _s, vt = np.linalg.svd(centred, full_matrices=False)
    xy = centred @ vt[:2].T if vt.shape[0] >= 2 else np.c_[centred @ vt[:1].T, np.zeros(len(vectors))]
    fig, ax = plt.subplots(figsize=(9, 6))
    for j, c in enumerate(clusters):
        mine = labels == j
        ax.scatter(xy[mine, 0], xy[mine, 1], s=14, alpha=0.7,
                   label=f"cluster {c.cluster}: {c.size} answers, {len(c.systems)} systems")
        centre = xy[mine].mean(axis=0) if mine.any() else (0, 0)
        ax.annotate(textwrap.fill(textwrap.shorten(c.central_text, 90), 36), centre, fontsize=7, ha="center",
                    va="center", bbox={"boxstyle": "round", "fc": "white", "alpha": 0.8})
    ax.margins(0.3)   # room for the central answers' labels inside the axes
    ax.set_title(textwrap.shorten(prompt, 90), fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    path = out.figure(name, fig, dpi=120)
    plt.close(fig)
    return path
