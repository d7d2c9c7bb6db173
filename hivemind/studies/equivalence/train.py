"""Train the shipped pair model (hivemind/analyze/equivalence_model.json) on labelled answer sets:

    python -m hivemind.studies.equivalence.train [--data ../shared/data/noveltybench_dev] [--out FILE]

Five multilayer perceptrons (scikit-learn's MLPClassifier, hidden layers 32 and 16, seeds 0-4), their
probabilities averaged, over PAIR_FEATURES of every pair of every set; the probability line is chosen on
out-of-fold probabilities (5 folds grouped by prompt), as the line whose class counts per set agree best with
the labels (Pearson minus 0.02 x mean absolute error: agreement first, counts on NoveltyBench's scale second). The same script, seed and
data give the same weights. The features are computed from the bundled MiniLM's vectors, so the model is used
only with that embedder (hivemind.analyze.equivalence_choice).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from hivemind.analyze.equivalence import MODEL_FILE, PAIR_FEATURES, PairModel, greedy_partition, pair_features
from hivemind.core.config import DEFAULT_EMBEDDER
from hivemind.studies.equivalence.labelled import LabelledSet, embed_sets, load_labelled

SEED = 0
SEEDS = (0, 1, 2, 3, 4)      # the ensemble's members
HIDDEN = (32, 16)
FOLDS = 5
DEFAULT_DATA = Path("../shared/data/noveltybench_dev")


def set_pairs(s: LabelledSet) -> tuple[np.ndarray, np.ndarray]:
    """(pairs x F features, pairs labels) of one set, upper-triangle pairs i < j."""
    upper = np.triu_indices(len(s.texts), 1)
    return pair_features(s.vectors, s.texts, s.prompt)[upper], s.same()[upper]


def fit(features: np.ndarray, labels: np.ndarray, seed: int = SEED, threshold: float = 0.5,
        trained_on: str = "", members: int = len(SEEDS)) -> PairModel:
    """The ensemble: `members` MLPs from seeds seed, seed + 1, ..., on the same standardised features."""
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(features)
    scaled = scaler.transform(features)
    fitted = []
    for member_seed in range(seed, seed + members):
        mlp = MLPClassifier(HIDDEN, alpha=1e-3, max_iter=300, early_stopping=True, random_state=member_seed)
        mlp.fit(scaled, labels)
        fitted.append((tuple(mlp.coefs_), tuple(mlp.intercepts_)))
    return PairModel(features=PAIR_FEATURES, mean=scaler.mean_, scale=scaler.scale_, members=tuple(fitted),
                     threshold=threshold, embedder=DEFAULT_EMBEDDER, trained_on=trained_on)


def folds(sets: list[LabelledSet], k: int = FOLDS, seed: int = SEED) -> dict[str, int]:
    """prompt id -> fold, prompts shuffled with a fixed seed: every set of one prompt in one fold."""
    prompts = sorted({s.prompt_id for s in sets})
    order = np.random.default_rng(seed).permutation(len(prompts))
    return {prompts[i]: rank % k for rank, i in enumerate(order)}


def counts_at(matrices: list[np.ndarray], line: float) -> np.ndarray:
    """Class counts of NoveltyBench's partition with 'same' = score >= line, per set."""
    return np.array([greedy_partition(len(m), lambda i, later, m=m: m[i, later] >= line).max() + 1
                     for m in matrices])


def choose_line(matrices: list[np.ndarray], truth: np.ndarray, candidates: np.ndarray) -> float:
    """The candidate line whose class counts agree best: Pearson - 0.02 x mean absolute error."""
    def agreement(line: float) -> float:
        counts = counts_at(matrices, line)
        if counts.std() == 0:
            return -np.inf
        return float(np.corrcoef(counts, truth)[0, 1] - 0.02 * np.abs(counts - truth).mean())
    return float(max(candidates, key=agreement))


def probability_matrices(model: PairModel, sets: list[LabelledSet]) -> list[np.ndarray]:
    return [model.predict(pair_features(s.vectors, s.texts, s.prompt)) for s in sets]


def out_of_fold(sets: list[LabelledSet], seed: int = SEED) -> list[np.ndarray]:
    """Each set's probability matrix from a model trained on the other folds' prompts."""
    fold = folds(sets, seed=seed)
    pairs = [set_pairs(s) for s in sets]
    out: list[np.ndarray | None] = [None] * len(sets)
    for k in range(FOLDS):
        train = [i for i, s in enumerate(sets) if fold[s.prompt_id] != k]
        model = fit(np.concatenate([pairs[i][0] for i in train]), np.concatenate([pairs[i][1] for i in train]), seed)
        for i, s in enumerate(sets):
            if fold[s.prompt_id] == k:
                out[i] = model.predict(pair_features(s.vectors, s.texts, s.prompt))
    return out


def train(data: Path, seed: int = SEED, progress: bool = True) -> PairModel:
    sets = load_labelled(data)
    embed_sets(sets, progress=progress)
    matrices = out_of_fold(sets, seed)
    truth = np.array([s.n_classes for s in sets])
    line = choose_line(matrices, truth, np.round(np.linspace(0.05, 0.95, 37), 3))
    pairs = [set_pairs(s) for s in sets]
    return fit(np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs]), seed, threshold=line,
               trained_on=f"{data.name}: {len(sets)} sets, {len({s.prompt_id for s in sets})} prompts, "
                          f"seeds {seed}-{seed + len(SEEDS) - 1}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=MODEL_FILE)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    model = train(args.data, args.seed)
    args.out.write_text(model.to_json() + "\n")
    print(f"wrote {args.out} (line {model.threshold})")


if __name__ == "__main__":
    main()
