"""The human-rated records of the calibration study: absolute ratings, pairs with a preference, what was
excluded and why, and the rating entropy the high-disagreement subsets sort by (statistics.py's docstring has
the formulas)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SCALE = (1, 5)


@dataclass
class AbsoluteRecord:
    line: int
    query: str
    response: str
    ratings: list[int]

    @property
    def mean(self) -> float:
        return float(np.mean(self.ratings))

    @property
    def entropy(self) -> float:
        return rating_entropy(self.ratings)


@dataclass
class PairRecord:
    line: int
    query: str
    response_a: str
    response_b: str
    preference: str                       # "A", "B" or "tie"
    ratings_a: list[int] | None = None
    ratings_b: list[int] | None = None
    votes: list[str] | None = None
    scale: list[int] | None = None        # 5-point votes, +2 (A much better) .. -2 (B much better)

    @property
    def difference(self) -> float | None:
        if not self.ratings_a or not self.ratings_b:
            return None
        return abs(float(np.mean(self.ratings_a)) - float(np.mean(self.ratings_b)))

    def _sides(self) -> tuple[int, int, int] | None:
        """(votes for A, votes for B, 'similar' votes), or None without votes."""
        if self.scale:
            return (sum(v > 0 for v in self.scale), sum(v < 0 for v in self.scale), self.scale.count(0))
        if self.votes:
            return self.votes.count("A"), self.votes.count("B"), self.votes.count("tie")
        return None

    @property
    def similar_votes(self) -> int | None:
        sides = self._sides()
        return None if sides is None else sides[2]

    @property
    def agreement(self) -> float | None:
        """The authors' percent agreement: max(n_A + n_tie/2, n_B + n_tie/2) / n."""
        sides = self._sides()
        if sides is None:
            return None
        a, b, tie = sides
        return max(a + tie / 2, b + tie / 2) / (a + b + tie)

    @property
    def margin(self) -> float | None:
        """How much the annotators preferred A over B (positive: A)."""
        if self.scale:
            return float(np.mean(self.scale))
        if self.votes:
            return (self.votes.count("A") - self.votes.count("B")) / len(self.votes)
        if self.ratings_a and self.ratings_b:
            return float(np.mean(self.ratings_a)) - float(np.mean(self.ratings_b))
        return None


@dataclass
class Exclusion:
    source: str
    line: int
    reason: str


@dataclass
class HumanData:
    absolute: list[AbsoluteRecord] = field(default_factory=list)
    pairwise: list[PairRecord] = field(default_factory=list)
    exclusions: list[Exclusion] = field(default_factory=list)
    dropped_missing_ratings: int = 0      # empty ratings (missing annotators) dropped from kept records


def rating_entropy(ratings: list[int]) -> float:
    """Shannon entropy in bits of the 1-5 rating distribution."""
    counts = np.array([ratings.count(s) for s in range(SCALE[0], SCALE[1] + 1)], dtype=float)
    return _entropy(counts)


def _entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    # Rounded so that equal distributions compare equal at a percentile cut, whatever the summation order.
    return round(float(-(p * np.log2(p)).sum()), 10) + 0.0


def exclusion_summary(exclusions: list[Exclusion]) -> str:
    """The exclusions counted by reason, as one line: '2 duplicate (query, response); 1 empty query or response'."""
    counts: dict[str, int] = {}
    for e in exclusions:
        reason = e.reason.split(" of line")[0].split(":")[0]
        counts[reason] = counts.get(reason, 0) + 1
    return "; ".join(f"{n} {reason}" for reason, n in counts.items())
