"""Which answers say the same thing: the equivalence methods behind distinct ideas and utility.

Every method partitions one (system, prompt) answer set by NoveltyBench's rule (Zhang et al. 2025): in sample
order, an answer joins the first earlier class whose *first* member (its representative) it is equivalent to,
else it opens a class. So the counts are comparable with NoveltyBench's published `distinct`. What differs is
the judge of "equivalent":

- `embedding`: cosine of the two answers' vectors >= a line (`EmbeddingLine`). Cheap, but on NoveltyBench's
  real generations a poor judge of sameness (pair AUC 0.84: many distinct poems are closer than two wordings of
  one joke).
- `learned` (the default with the bundled MiniLM embedder): a small pair model (`PairModel`, an MLP over
  `PAIR_FEATURES`) trained on NoveltyBench's 54,000 labelled pairs, shipped as `equivalence_model.json` and
  retrained by `python -m hivemind.studies.equivalence.train`. Its inputs are the stored vectors and the texts
  of the one answer set: cosine, cosine relative to the set's own spread, word/bigram/character overlap,
  overlap of the opening, of the first sentence and of emphasised (bold or heading) words, lengths. Nothing
  from another system enters, so a system's partition does not move when others join the run.
- `classifier` (NoveltyBench's DeBERTa) and `judge` (an LM through litellm) and `imported` (NoveltyBench's
  own partitions.jsonl) decide pairs outside this module; they reach the partition as stored verdicts
  (`VerdictEquivalence`).

All pair features are computed for the whole set at once as n x n matrices (sparse products of per-answer
token sets: |A & B| = (X X^T)_ab for binary rows X), so a 50-answer set costs a handful of small matrix
products, not 1,225 Python set operations; the model then scores only the pairs the greedy partition compares.
This module is a kernel: arithmetic on arrays and texts, no store, no files but its shipped weights.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable, Protocol, Sequence

import numpy as np
from scipy import sparse
from scipy.special import expit

from hivemind.analyze.phrases import fast_words
from hivemind.core.short_answers import SHORT_WORDS, short_answer_same  # noqa: F401  (re-exported)

MODEL_FILE = Path(__file__).with_name("equivalence_model.json")
HEAD_WORDS = 12             # content words of the opening
CHAR_PREFIX = 300           # characters whose 4-grams are compared
_EMPHASIS = re.compile(r"\*\*(.+?)\*\*|^#+\s*(.+)$", re.M)
_SENTENCE_END = re.compile(r"(?<=[.!?:])\s|\n")
STOPWORDS = frozenset(
    "a an the of to and or in on for with is are was be it its this that as at by from i you my your we our me "
    "can could would will one some any here s t not but so if what how which who there their they he she his her "
    "them than then".split())

PAIR_FEATURES = (
    "cosine",              # of the two answers' vectors
    "cosine_z",            # (cosine - the set's mean pair cosine) / its standard deviation
    "set_mean_cosine",     # how alike the whole set is (a set of poems on one theme is alike throughout)
    "words",               # Jaccard of content-word sets
    "bigrams",             # Jaccard of content-word bigram sets
    "containment",         # shared content words / the smaller set
    "opening",             # Jaccard of the first HEAD_WORDS content words
    "emphasis",            # Jaccard of bold / heading words; -1 when either has none
    "first_sentence",      # Jaccard of the first sentence's content words
    "length_gap",          # |log(1 + words_a) - log(1 + words_b)|
    "shorter_length",      # log(1 + words of the shorter answer)
    "short",               # 1 when the shorter answer has <= SHORT_WORDS words (NoveltyBench's rule)
    "nearest_gap_min",     # cosine minus the closer of the two answers' nearest-neighbour cosines in the set
    "nearest_gap_max",     # ... minus the farther of them
    "characters",          # Jaccard of character 4-gram sets of the first CHAR_PREFIX characters
    "words_z",             # (words - the set's mean) / its standard deviation
    "new_words",           # Jaccard of content words not in the prompt (restating the prompt is no idea)
    "new_opening",         # Jaccard of the first HEAD_WORDS content words not in the prompt
)


# Per-answer token sets --------------------------------------------------------------------------------
@dataclass
class Tokens:
    """The token sets of one answer that the pair features compare."""
    n_words: int
    words: set = field(default_factory=set)
    bigrams: set = field(default_factory=set)
    opening: set = field(default_factory=set)
    emphasis: set = field(default_factory=set)
    first_sentence: set = field(default_factory=set)
    characters: set = field(default_factory=set)
    new_words: set = field(default_factory=set)
    new_opening: set = field(default_factory=set)


def _content(text: str) -> list[str]:
    return [w for w in fast_words(text) if w not in STOPWORDS]


def character_grams(text: str) -> set:
    """The set of character 4-grams of the first CHAR_PREFIX characters (lowercased, whitespace runs as one
    space), each as one 64-bit integer of its four code points (16 bits each; a character outside the Basic
    Multilingual Plane, an emoji, counts as U+FFFF), computed in numpy."""
    prefix = " ".join(text[:CHAR_PREFIX].lower().split())
    if len(prefix) < 4:
        return set()
    c = np.minimum(np.frombuffer(prefix.encode("utf-32-le"), dtype=np.uint32), 0xFFFF).astype(np.uint64)
    grams = (c[:-3] << np.uint64(48)) | (c[1:-2] << np.uint64(32)) | (c[2:-1] << np.uint64(16)) | c[3:]
    return set(grams.tolist())


def tokens(text: str, prompt_words: frozenset = frozenset()) -> Tokens:
    """The sets of one answer; `prompt_words`: the prompt's content words (left out of new_words/opening)."""
    all_words = fast_words(text)
    content = [w for w in all_words if w not in STOPWORDS]
    emphasis = ({w for m in _EMPHASIS.finditer(text) for w in _content(m.group(1) or m.group(2))}
                if ("**" in text or "#" in text) else set())
    first = _SENTENCE_END.split(text.strip(), maxsplit=1)[0]
    new = [w for w in content if w not in prompt_words]
    return Tokens(n_words=len(all_words), words=set(content), bigrams=set(zip(content, content[1:])),
                  opening=set(content[:HEAD_WORDS]), emphasis=emphasis, first_sentence=set(_content(first)),
                  characters=character_grams(text), new_words=set(new), new_opening=set(new[:HEAD_WORDS]))


def shared_counts(sets: Sequence[set]) -> np.ndarray:
    """n x n: |A & B| for every pair of sets, from one sparse product of binary rows (items numbered by
    pandas.factorize, a hash table in C)."""
    import pandas as pd

    n = len(sets)
    sizes = np.fromiter((len(s) for s in sets), dtype=np.int64, count=n)
    items = [item for s in sets for item in s]
    if not items:
        return np.zeros((n, n), dtype=np.float32)
    codes, uniques = pd.factorize(pd.Series(items, dtype=object), sort=False)
    rows = np.repeat(np.arange(n), sizes)
    x = sparse.csr_matrix((np.ones(len(codes), dtype=np.float32), (rows, codes)), shape=(n, len(uniques)))
    return (x @ x.T).toarray()


def jaccard_matrix(sets: Sequence[set], empty: float = 1.0) -> np.ndarray:
    """n x n Jaccard index of every pair of sets (float32: the counts are exact, the ratio to 7 digits);
    `empty` where both are empty."""
    shared = shared_counts(sets)
    size = np.array([len(s) for s in sets], dtype=np.float32)
    union = size[:, None] + size[None, :] - shared
    out = np.full(shared.shape, empty, dtype=np.float32)
    np.divide(shared, union, out=out, where=union > 0)
    return out


def spread(values: np.ndarray) -> tuple[float, float]:
    """(mean, standard deviation + 1e-6) of the off-diagonal pairs of an n x n matrix; (1, 1) below 2 answers."""
    off = values[np.triu_indices(len(values), 1)]
    return (float(off.mean()), float(off.std()) + 1e-6) if len(off) else (1.0, 1.0)


JACCARD_KINDS = ("bigrams", "opening", "first_sentence", "characters", "new_words", "new_opening")


class PairFeatures:
    """PAIR_FEATURES of one answer set: every pair's overlaps as dense n x n matrices (one sparse product per
    kind of token set), the set-wide statistics (cosine spread, nearest neighbours, word-overlap spread) once;
    `rows(i, others)` is then indexing only. `toks`: the answers' Tokens when already made (a cache)."""

    def __init__(self, x: np.ndarray, texts: Sequence[str], prompt: str = "", toks: Sequence[Tokens] | None = None):
        self.x = np.asarray(x, dtype=np.float64)
        self.cos = np.clip(self.x @ self.x.T, -1.0, 1.0)
        if toks is None:
            prompt_words = frozenset(_content(prompt))
            toks = [tokens(t, prompt_words) for t in texts]
        size = np.array([len(t.words) for t in toks], dtype=np.float64)
        shared = shared_counts([t.words for t in toks]).astype(np.float64)
        union = size[:, None] + size[None, :] - shared
        smaller = np.minimum.outer(size, size)
        with np.errstate(divide="ignore", invalid="ignore"):
            self.words = np.where(union > 0, shared / union, 1.0)
            self.containment = np.where(smaller > 0, shared / np.maximum(smaller, 1), 0.0)
        emphasised = np.array([bool(t.emphasis) for t in toks])
        self.emphasis = np.where(np.logical_and.outer(emphasised, emphasised),
                                 jaccard_matrix([t.emphasis for t in toks]), -1.0)
        self.jaccard = {kind: jaccard_matrix([getattr(t, kind) for t in toks]) for kind in JACCARD_KINDS}
        self.n_words = np.array([t.n_words for t in toks], dtype=np.float64)
        self.log_words = np.log1p(self.n_words)
        self._set_statistics()

    def _set_statistics(self) -> None:
        """What depends on the whole set: the cosine spread, nearest neighbours, the word-overlap spread."""
        n = len(self.cos)
        self.mean, self.std = spread(self.cos)
        self.nearest = np.where(np.eye(n, dtype=bool), -np.inf, self.cos).max(axis=1) if n > 1 else np.ones(n)
        self.words_mean, self.words_std = spread(self.words)

    def subset(self, index: np.ndarray) -> PairFeatures:
        """The features of the set made of these answers alone (rows of this set): the pair matrices sliced,
        the set-wide statistics computed anew, so a system's set gets exactly the features it would get alone."""
        index = np.asarray(index, dtype=np.int64)
        if len(index) == len(self.cos) and np.array_equal(index, np.arange(len(self.cos))):
            return self
        out = object.__new__(PairFeatures)
        block = np.ix_(index, index)
        # the cosines computed from the set's own vectors, as they would be alone (a slice of a larger product
        # may differ in the last bit); overlaps are exact counts, so slicing them changes nothing
        out.x = self.x[index]
        out.cos = np.clip(out.x @ out.x.T, -1.0, 1.0)
        out.words, out.containment, out.emphasis = self.words[block], self.containment[block], self.emphasis[block]
        out.jaccard = {kind: matrix[block] for kind, matrix in self.jaccard.items()}
        out.n_words, out.log_words = self.n_words[index], self.log_words[index]
        out._set_statistics()
        return out

    def rows(self, i: int, others: np.ndarray) -> np.ndarray:
        """(len(others), len(PAIR_FEATURES)) features of the pairs (i, j), j in others."""
        others = np.asarray(others, dtype=np.int64)
        cos, jac, j = self.cos[i, others], self.words[i, others], self.jaccard
        gap_a, gap_b = cos - self.nearest[i], cos - self.nearest[others]
        columns = [
            cos, (cos - self.mean) / self.std, np.full(len(others), self.mean), jac, j["bigrams"][i, others],
            self.containment[i, others], j["opening"][i, others], self.emphasis[i, others],
            j["first_sentence"][i, others], np.abs(self.log_words[i] - self.log_words[others]),
            np.minimum(self.log_words[i], self.log_words[others]),
            (np.minimum(self.n_words[i], self.n_words[others]) <= SHORT_WORDS).astype(np.float64),
            np.minimum(gap_a, gap_b), np.maximum(gap_a, gap_b), j["characters"][i, others],
            (jac - self.words_mean) / self.words_std, j["new_words"][i, others], j["new_opening"][i, others],
        ]
        return np.stack(columns, axis=-1)


def pair_features(x: np.ndarray, texts: Sequence[str], prompt: str = "") -> np.ndarray:
    """(n, n, len(PAIR_FEATURES)) features of every pair of one answer set (symmetric in the pair; the
    diagonal is meaningless): what training and validation read."""
    features = PairFeatures(x, texts, prompt)
    n = len(texts)
    everyone = np.arange(n)
    return np.stack([features.rows(i, everyone) for i in range(n)]) if n else np.zeros((0, 0, len(PAIR_FEATURES)))


# The pair model -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class PairModel:
    """An ensemble of multilayer perceptrons over standardised PAIR_FEATURES -> P(same idea): each member has
    ReLU hidden layers and a logistic output, trained alike from another seed; P is the members' mean (five
    seeds agree with the labels better than any one: pair AUC 0.907 against 0.899, cross-validated).
    `threshold` is the probability line the training chose (best per-set class-count agreement under
    cross-validation by prompt)."""
    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    members: tuple[tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]], ...]   # (weights, biases) per member
    threshold: float
    embedder: str                      # the embedder whose vectors the cosine features came from
    trained_on: str = ""
    digest: str = ""                   # sha256 of the weights file: part of the method's id

    def predict(self, features: np.ndarray) -> np.ndarray:
        """P(same) for rows of features (..., F). For a few rows (most calls: one class representative against a
        set's later answers) every member at once, its layers stacked side by side (the first layer's weights
        concatenated, the later ones block-diagonal: one product per layer, 2x faster at 5 rows); for many rows
        member by member (the block-diagonal products' zeros cost 3x at 600 rows)."""
        shape = features.shape[:-1]
        h = (features.reshape(-1, features.shape[-1]) - self.mean) / self.scale
        if len(h) > 48:
            total = np.zeros(len(h))
            for weights, biases in self.members:
                g = h
                for w, b in zip(weights[:-1], biases[:-1]):
                    g = np.maximum(g @ w + b, 0.0)
                total += expit((g @ weights[-1] + biases[-1])[:, 0])
            return (total / len(self.members)).reshape(shape)
        for w, b in self._stacked[:-1]:
            h = np.maximum(h @ w + b, 0.0)
        w, b = self._stacked[-1]
        return expit(h @ w + b).mean(axis=1).reshape(shape)

    @property
    def _stacked(self) -> list[tuple[np.ndarray, np.ndarray]]:
        cached = self.__dict__.get("_stacked_layers")
        if cached is None:
            from scipy.linalg import block_diag

            layers = len(self.members[0][0])
            cached = [(np.hstack([m[0][0] for m in self.members]), np.concatenate([m[1][0] for m in self.members]))]
            cached += [(block_diag(*[m[0][k] for m in self.members]), np.concatenate([m[1][k] for m in self.members]))
                       for k in range(1, layers)]
            object.__setattr__(self, "_stacked_layers", cached)
        return cached

    def to_json(self) -> str:
        return json.dumps({"features": list(self.features), "mean": self.mean.tolist(), "scale": self.scale.tolist(),
                           "members": [{"weights": [w.tolist() for w in weights],
                                        "biases": [b.tolist() for b in biases]}
                                       for weights, biases in self.members],
                           "threshold": self.threshold, "embedder": self.embedder, "trained_on": self.trained_on})

    @classmethod
    def from_json(cls, text: str) -> PairModel:
        raw = json.loads(text)
        if tuple(raw["features"]) != PAIR_FEATURES:
            raise ValueError(f"the pair model's features {raw['features']} are not this version's {PAIR_FEATURES}")
        members = tuple((tuple(np.array(w) for w in m["weights"]), tuple(np.array(b) for b in m["biases"]))
                        for m in raw["members"])
        return cls(features=tuple(raw["features"]), mean=np.array(raw["mean"]), scale=np.array(raw["scale"]),
                   members=members, threshold=float(raw["threshold"]), embedder=raw["embedder"],
                   trained_on=raw.get("trained_on", ""), digest=hashlib.sha256(text.encode()).hexdigest()[:12])


@lru_cache(maxsize=4)
def shipped_model(path: Path = MODEL_FILE) -> PairModel:
    """The pair model shipped with the package (read once)."""
    return PairModel.from_json(path.read_text())


# The partition --------------------------------------------------------------------------------------
def greedy_partition(n: int, same: Callable[[int, np.ndarray], np.ndarray]) -> np.ndarray:
    """NoveltyBench's partition, one step per class: the first unassigned answer opens a class and claims
    every later unassigned answer `same(representative, candidates)` says is equivalent to it. An answer thus
    joins the first earlier class whose representative it matches, and `same` sees exactly the pairs
    NoveltyBench's loop compares (each answer against the representatives before its own class)."""
    labels = np.full(n, -1, dtype=np.int64)
    unassigned = np.ones(n, dtype=bool)
    classes = 0
    for i in range(n):
        if not unassigned[i]:
            continue
        unassigned[i] = False
        labels[i] = classes
        later = np.flatnonzero(unassigned)
        if len(later):
            members = later[np.asarray(same(i, later), dtype=bool)]
            labels[members] = classes
            unassigned[members] = False
        classes += 1
    return labels


class Equivalence(Protocol):
    """A judge of "these two answers say the same thing", applied by NoveltyBench's partition."""
    id: str

    def partition(self, x: np.ndarray, texts: Sequence[str], keys: Sequence | None = None,
                  prompt: str = "") -> np.ndarray:
        """Class labels of one answer set in sample order; `keys` name the answers (stored verdicts), `prompt`
        is the question they answer."""


@dataclass(frozen=True)
class EmbeddingLine:
    """Equivalent when the cosine of the two answers' vectors is >= `threshold`."""
    threshold: float
    source: str = "fixed"

    @property
    def id(self) -> str:
        return f"embedding:{self.threshold:.6g}"

    def partition(self, x: np.ndarray, texts: Sequence[str] = (), keys=None, prompt: str = "") -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        close = (x @ x.T) >= np.float32(self.threshold)
        return greedy_partition(len(x), lambda i, later: close[i, later])


@dataclass(frozen=True)
class LearnedEquivalence:
    """Equivalent when the shipped pair model's P(same) is >= its threshold (or `threshold`). Keeps the token
    sets of the current prompt's answers: analysis partitions each system's set, then the pooled set of every
    system, so each answer is read once."""
    model: PairModel
    threshold: float | None = None
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def line(self) -> float:
        return self.model.threshold if self.threshold is None else self.threshold

    @property
    def id(self) -> str:
        return f"learned:{self.model.digest}@{self.line:.6g}"

    def probabilities(self, x: np.ndarray, texts: Sequence[str], prompt: str = "") -> np.ndarray:
        """P(same) for every pair of the set (n x n; the diagonal is meaningless)."""
        return self.model.predict(pair_features(x, texts, prompt))

    def partition(self, x: np.ndarray, texts: Sequence[str], keys=None, prompt: str = "") -> np.ndarray:
        n = len(x)
        if n < 2:
            return np.zeros(n, dtype=np.int64)
        return self.partition_features(PairFeatures(x, texts, prompt, self.tokens(texts, prompt)))

    def prepare(self, x: np.ndarray, texts: Sequence[str], prompt: str = "") -> PairFeatures:
        """The features of every answer to one prompt at once; each set is then `partition_features(
        prepared.subset(rows))`: one sparse product per kind of token set per prompt, not per set."""
        return PairFeatures(x, texts, prompt, self.tokens(texts, prompt))

    def partition_features(self, features: PairFeatures) -> np.ndarray:
        n = len(features.cos)
        if n < 2:
            return np.zeros(n, dtype=np.int64)
        line = self.line
        return greedy_partition(n, lambda i, later: self.model.predict(features.rows(i, later)) >= line)

    def tokens(self, texts: Sequence[str], prompt: str) -> list[Tokens]:
        """Token sets of these answers, from the cache of the current prompt (emptied when the prompt changes)."""
        if self._cache.get("prompt") != prompt:
            self._cache.clear()
            self._cache.update(prompt=prompt, words=frozenset(_content(prompt)), sets={})
        sets, words = self._cache["sets"], self._cache["words"]
        out = []
        for text in texts:
            found = sets.get(text)
            if found is None:
                found = sets[text] = tokens(text, words)
            out.append(found)
        return out


@dataclass(frozen=True)
class VerdictEquivalence:
    """Equivalence decided elsewhere (an LM judge, NoveltyBench's classifier, an imported partition) and
    looked up per pair of answer keys: `verdicts(a, b)` -> True / False, or None when never decided (an
    error: the stage that decides them has not run)."""
    id: str
    verdicts: Callable[[object, object], bool | None]
    missing_hint: str = ""

    def partition(self, x: np.ndarray, texts: Sequence[str], keys: Sequence | None = None,
                  prompt: str = "") -> np.ndarray:
        if keys is None:
            raise ValueError(f"equivalence {self.id!r} needs the answers' keys")

        def same(i: int, later: np.ndarray) -> np.ndarray:
            out = []
            for j in later:
                verdict = self.verdicts(keys[i], keys[j])
                if verdict is None:
                    raise LookupError(f"equivalence {self.id!r}: no verdict for a pair of answers; {self.missing_hint}")
                out.append(bool(verdict))
            return np.array(out, dtype=bool)
        return greedy_partition(len(keys), same)
