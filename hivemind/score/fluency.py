"""Fluency: does the answer's word order look like written English? Computed from the text alone.

The default offline gate of every run (config.DEFAULT_SCORERS): the perplexity scorer reads an answer in
about a second on one core, far too slow for a 12,000-answer import, while this reads 12,000 answers in
about a second and agrees with perplexity on what fails (benchmarks/quality_vs_reward.py;
docs/quality.md).

An answer is cut into tokens (words, each punctuation mark alone), and each token into a class: one of the
FLUENCY_VOCAB most frequent tokens of a reference corpus (case kept: "The" and "the" differ), else "number",
"Capitalised" or "other word". Only the pairs of tokens that meet across whitespace count (the last token of
one word and the first of the next): they are what a shuffle of the words changes, while "word." or "**Title:**"
keep their inner order in any shuffle. The score is the mean pointwise mutual information of those pairs under
the bundled table of class-pair counts (fluency_table.npz)

    score = (1/n) sum_i log( P(c_i | c_{i-1}) / P(c_i) )          (natural log; higher is better)

Written English scores above 0 (pairs such as "of the", ". The" are likelier than chance); shuffled words
and random-vocabulary babble score below it ("the ." or "and of" are rarer than chance). An answer with
fewer than MIN_PAIRS such pairs (a one-line answer, a name, a number) is too short to judge: its score is
NULL, so it is gated by the other scorers and relevance alone. Only the first MAX_TOKENS tokens are read.

The table was counted on the real AlpacaEval answers of 16 models in ../shared/data/alpaca_eval_outputs
(Apache-2.0; only class-pair counts are stored) by benchmarks/build_fluency_table.py; it is English-specific:
an answer in another language has few vocabulary classes and scores near 0 (docs/quality.md).
"""
from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

import numpy as np

from hivemind.core.config import Scorer
from hivemind.store import Answer, Score

TABLE = Path(__file__).with_name("fluency_table.npz")
TOKEN = re.compile(r"(\s*)([^\W_]+(?:'[^\W_]+)*|[^\w\s])")
FLUENCY_VOCAB = 300      # classes: the most frequent tokens of the reference corpus, + 3 for the rest
MAX_TOKENS = 200         # tokens read per answer (speed; the perplexity scorer reads 64 to 96)
MIN_PAIRS = 12           # fewer word-boundary pairs: too short to judge (NULL score)
SMOOTHING = 0.5          # added to every class-pair count


def tokens(text: str) -> list[tuple[bool, str]]:
    """(preceded by whitespace, token) for the first MAX_TOKENS tokens."""
    return [(bool(space), tok) for space, tok in TOKEN.findall(text[:MAX_TOKENS * 12])[:MAX_TOKENS]]


def classes(words: list[str], index: dict[str, int]) -> list[int]:
    k = len(index)
    return [index.get(w, k if w[0].isdigit() else k + 1 if w[0].isupper() else k + 2) for w in words]


def boundary_pairs(text: str, index: dict[str, int]) -> tuple[list[int], list[int]]:
    """The class pairs that meet across whitespace: (left classes, right classes)."""
    found = tokens(text)
    ids = classes([w for _, w in found], index)
    left = [ids[i - 1] for i in range(1, len(ids)) if found[i][0]]
    right = [ids[i] for i in range(1, len(ids)) if found[i][0]]
    return left, right


class FluencyTable:
    """Class-pair pointwise mutual information from counted class pairs."""

    def __init__(self, vocab: list[str], counts: np.ndarray):
        self.vocab = list(vocab)
        self.index = {w: i for i, w in enumerate(self.vocab)}
        smoothed = np.asarray(counts, dtype=np.float64) + SMOOTHING
        conditional = smoothed / smoothed.sum(axis=1, keepdims=True)
        marginal = smoothed.sum(axis=0) / smoothed.sum()
        self.pmi = (np.log(conditional) - np.log(marginal)[None, :]).astype(np.float32)

    def score(self, text: str) -> float | None:
        return self.judge(text)[0]

    def judge(self, text: str) -> tuple[float | None, int]:
        """(score, word-boundary pairs read); score None when there are fewer than MIN_PAIRS."""
        left, right = boundary_pairs(text, self.index)
        if len(left) < MIN_PAIRS:
            return None, len(left)
        return float(self.pmi[left, right].mean()), len(left)

    @staticmethod
    def count(texts, size: int = FLUENCY_VOCAB) -> tuple[list[str], np.ndarray]:
        """(vocab, class-pair counts) of a reference corpus: what build_fluency_table.py stores."""
        from collections import Counter

        frequency = Counter(w for text in texts for _, w in tokens(text))
        vocab = [w for w, _ in frequency.most_common(size)]
        index = {w: i for i, w in enumerate(vocab)}
        counts = np.zeros((size + 3, size + 3), dtype=np.int64)
        for text in texts:
            left, right = boundary_pairs(text, index)
            np.add.at(counts, (left, right), 1)
        return vocab, counts


@lru_cache(maxsize=1)
def bundled_table() -> FluencyTable:
    with np.load(TABLE) as data:
        return FluencyTable([str(w) for w in data["vocab"]], data["counts"])


def fluency(text: str) -> float | None:
    """The fluency score of one text under the bundled table (None: too short to judge)."""
    return bundled_table().score(text)


class FluencyScorer:
    batch = 2000

    def __init__(self, scorer: Scorer):
        self.name = scorer.name
        self.table = bundled_table()

    def score(self, answers: list[Answer]) -> list[Score]:
        out = []
        for answer in answers:
            value, pairs = self.table.judge(answer.text)
            if value is None:   # NULL, not an error: the answer is gated by the other scorers
                out.append(Score(*answer.key, self.name, None,
                                 raw=json.dumps({"pairs": pairs, "too_short": True})))
            else:
                out.append(Score(*answer.key, self.name, round(value, 6), raw=json.dumps({"pairs": pairs})))
        return out
