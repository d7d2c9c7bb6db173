"""Human calibration: do LM judges, reward models and perplexity agree with people, and where do they not?

The paper's third finding (Jiang et al. 2025, Sec. 5): scorers track the mean human rating on the whole set
but lose it exactly where answers are of similar quality or where annotators disagree. This module repeats
that study for every scorer a config names, on the paper's human data or on your own.

Data
----
Absolute records: (query, response, ratings), ratings the individual 1-5 scores of several annotators.
Pairwise records: (query, response A, response B) with a human preference, given as the paper's 5-point
votes (`human_labels`: one integer per annotator, +2 "response 1 is much better" ... 0 "similar / hard to tell"
... -2 "response 2 is much better"; the sign of their mean decides), directly (`preference`: A, B or tie), as
annotator votes (`votes`: a list of A/B/tie), or derived from per-response ratings (`ratings_a`, `ratings_b`:
the higher mean wins, equal means are a tie).

Local files (JSONL, one object a line, or CSV with a header):
  absolute:  {"query": ..., "response": ..., "ratings": [4, 5, 3, ...]}
  pairwise:  {"query": ..., "response_a": ..., "response_b": ..., "preference": "A"}
             or "human_labels": [2, 0, -1, ...] (5-point votes), or "votes": ["A", "B", "A"],
             or "ratings_a": [...], "ratings_b": [...]
  (`prompt` or `user_query` is accepted for `query`; in CSV a list is JSON `[4,5,3]` or `4;5;3`.)
The Hub sets `liweijiang/infinite-chats-human-absolute` and `liweijiang/infinite-chats-human-pairwise` load
through `datasets`; their columns are mapped to these roles by name (HUB_FIELDS), and a set whose columns
match none of the names stops with a message listing the columns it has.

SOURCES (field names): the authors' compile script, liweijiang/artificial-hiveminds
src/human_annotations/compile_human_annotations.py, writes absolute records as {user_query, response,
human_labels (1-5 per annotator), human_labels_raw, form_id, question_id} and pairwise records as {user_query,
response_1, response_2, human_labels (+2..-2 per annotator), human_labels_raw (the answer texts), form_id,
question_id}; a third-party loader in the code corpus describes the Hub absolute set as "750 rows: user_query,
response, human_labels (23-26 raters each)". The script compiles 50 forms x 15 absolute questions = 750 and
50 forms x 10 pairwise questions = 500 records, the Hub sets' row counts. The Hub dataset cards themselves (README.md, 522 bytes for the
pairwise set) were not in the stored material, so the loader stays tolerant of the other names below.

Bad input never silently changes n: a rating outside 1-5 excludes its record, an empty rating (a missing
annotator) is dropped and counted, a (query, response) row seen before is excluded as a duplicate, a pair
without any preference is excluded; every exclusion is written to calibration_exclusions.csv with its line.
A scorer that gives no score (a judge that refuses or answers off-scale) leaves that record out of that
scorer's numbers only, and the tables say how many it left out.

Statistics
----------
mean rating  r_i = (1/k_i) sum_j rating_ij
entropy      H_i = -sum_{s=1..5} p_is log2 p_is,  p_is = share of record i's ratings equal to s  (0 to log2 5 bits)
absolute:    Spearman's rho between a scorer's score and r_i (scipy.stats.spearmanr), as the authors do
pairwise:    spearman: rho between the scorer's score difference (A - B) and the human margin, as the authors do
             (main_analysis_rel.py); the margin is the mean 5-point vote, else (n_A - n_B)/n of A/B/tie votes,
             else r_A - r_B;
             agreement: share of pairs where the scorer's higher-scored response is the human-preferred one;
             human ties and scorer ties (equal scores) are left out and counted.
bootstrap:   percentile interval of the statistic over `bootstrap` resamples of the subset's records
             (with replacement, seeded); resamples where the statistic is undefined are skipped.

Subsets, as the authors' analysis code defines them (liweijiang/artificial-hiveminds,
src/human_annotations/main_analysis_abs.py get_all_human_scores_sim_cluster and main_analysis_rel.py). The
paper's figures sweep each parameter rather than fix one value, so every parameter takes a list and the
defaults are the authors' sweeps; each value gives one subset, named with it (e.g. similar_z_1.5):
  similar_middle_m    r_i between the (50 - m/2)th and (50 + m/2)th percentiles of r      m: 40 50 60 70 80 90
  similar_tukey_k     r_i inside Tukey's fences [Q1 - k IQR, Q3 + k IQR]                  k: 0.5 1 1.5 2 2.5 3
  similar_z_z         |r_i - mean(r)| / sd(r) <= z  (population sd, numpy's std)          z: 0.5 1 1.5 2 2.5 3
  similar_pairs_t     responses to the same query with another response whose r differs by less than t
                      (the authors' "sim_threshold"; their single-value call uses t = 0.15)      t: 0.15
  high_disagreement_d H_i at or above the (100 - d)th percentile of H                     d: 2 4 6 ... 16
pairwise:
  similar_ties_p      the p% of pairs with the most "similar / hard to tell" votes (0 on the 5-point scale,
                      tie among A/B/tie votes): sorted by that count, the first int(n p / 100) kept   p: 60 65 ... 95
  similar_ratings_t   |r_A - r_B| < t, for pairs with per-response ratings (not in the Hub set)  t: 0.15
  high_disagreement_p the p% of pairs with the lowest annotator agreement, agreement = max(n_A + n_tie/2,
                      n_B + n_tie/2) / n, sorted ascending, the first int(n p / 100) kept   p: 60 65 ... 95
Sorting is stable, as Python's sort in the authors' code; equal keys keep the order their loader yields: records
grouped by query (in order of first appearance), file order within a query.
Percentiles are numpy's linear interpolation. A pair without votes is not eligible for the vote-based subsets,
and a pair without ratings not for similar_ratings; the tables give every subset's n.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hivemind.core.errors import HivemindError
from hivemind.core.readers import read_records
from hivemind.core.stats import spearman

HUB_ABSOLUTE = "liweijiang/infinite-chats-human-absolute"
HUB_PAIRWISE = "liweijiang/infinite-chats-human-pairwise"
SCALE = (1, 5)

# Column names accepted for each role, local files and Hub sets alike (first match wins).
HUB_FIELDS: dict[str, tuple[str, ...]] = {
    "query": ("user_query", "query", "prompt", "question", "instruction"),
    "response": ("response", "answer", "output", "model_response", "completion"),
    "ratings": ("human_labels", "ratings", "human_ratings", "scores", "annotations", "labels", "rating_list"),
    "response_a": ("response_a", "response_1", "response1", "responseA", "answer_a", "output_a"),
    "response_b": ("response_b", "response_2", "response2", "responseB", "answer_b", "output_b"),
    "preference": ("preference", "human_preference", "winner", "label", "choice"),
    "votes": ("votes", "preferences", "human_preferences", "pairwise_ratings"),
    "scale": ("human_labels", "scale_votes", "human_labels_raw"),   # 5-point votes, +2 (1 much better) .. -2
    "ratings_a": ("ratings_a", "ratings_1", "scores_a", "ratings1"),
    "ratings_b": ("ratings_b", "ratings_2", "scores_b", "ratings2"),
}


# The 5-point pairwise answers as the authors' forms wrote them (compile_human_annotations.py result_key_map).
SCALE_TEXT = {
    "response 1 is much better than response 2": 2,
    "response 1 is slightly better than response 2": 1,
    "response 1 and response 2 are similar / it's hard to tell which one is better": 0,
    "response 2 is slightly better than response 1": -1,
    "response 2 is much better than response 1": -2,
}


def _values(*numbers: float) -> tuple[float, ...]:
    return tuple(float(n) for n in numbers)


@dataclass
class Params:
    """Subset parameters; each is a list, one subset per value. Defaults: the authors' sweeps (module docstring;
    main_analysis_abs.py main_abs_analysis_combined_by_judge_types[_disagreement], main_analysis_rel.py)."""
    middle_pct: tuple[float, ...] = _values(40, 50, 60, 70, 80, 90)
    tukey_k: tuple[float, ...] = _values(0.5, 1.0, 1.5, 2.0, 2.5, 3.0)
    z_max: tuple[float, ...] = _values(0.5, 1.0, 1.5, 2.0, 2.5, 3.0)
    disagreement_pct: tuple[float, ...] = _values(2, 4, 6, 8, 10, 12, 14, 16)
    pair_threshold: tuple[float, ...] = _values(0.15)      # main_analysis_abs.py: sim_method_param=0.15
    pair_similar_pct: tuple[float, ...] = _values(60, 65, 70, 75, 80, 85, 90, 95)
    pair_disagreement_pct: tuple[float, ...] = _values(60, 65, 70, 75, 80, 85, 90, 95)
    bootstrap: int = 1000
    seed: int = 0

    def __post_init__(self):  # a single number is a list of one
        for name in ("middle_pct", "tukey_k", "z_max", "disagreement_pct", "pair_threshold", "pair_similar_pct",
                     "pair_disagreement_pct"):
            value = getattr(self, name)
            setattr(self, name, _values(value) if isinstance(value, (int, float)) else _values(*value))


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


# Loading ---------------------------------------------------------------------------------------------

def read_rows(path: Path) -> list[tuple[int, dict]]:
    """(line or row number, row) from a JSONL, JSON, CSV or Parquet file; a malformed, binary or empty file is
    one error naming the file and line (hivemind.core.readers, the one reader for data files)."""
    if not path.exists():
        raise HivemindError(f"{path}: no such file (human ratings: JSONL or CSV, see `hivemind calibrate --help`)")
    return [(where.number, row) for where, row in read_records(path, "human ratings file", "human ratings")]


def load_hub(dataset: str, split: str = "train") -> list[tuple[int, dict]]:
    """Rows of a Hub dataset (row number, row); offline or missing: one message naming the dataset."""
    try:
        import datasets
    except ImportError:
        raise HivemindError("loading human ratings from the Hub needs the `datasets` package") from None
    try:
        table = datasets.load_dataset(dataset, split=split)
    except Exception as err:  # offline, unknown name, no access: datasets raises many types
        raise HivemindError(f"could not load the human ratings {dataset} (split {split!r}) from the Hugging Face "
                            f"Hub: {type(err).__name__}: {str(err)[:200]}. Offline (HF_HUB_OFFLINE) it must be in "
                            f"the datasets cache; or export it to a local JSONL/CSV file and pass that "
                            f"(--absolute FILE / --pairwise FILE)") from None
    return [(i + 1, dict(row)) for i, row in enumerate(table)]


def _columns(rows: list[tuple[int, dict]], roles: list[str], optional: list[str], source: str) -> dict[str, str]:
    """role -> column, by name (HUB_FIELDS); a missing required role is an error listing the columns seen."""
    seen = list(dict.fromkeys(column for _line, row in rows for column in row))  # every row's columns
    mapping = {}
    for role in roles + optional:
        column = next((name for name in HUB_FIELDS[role] if name in seen), None)
        if column is not None:
            mapping[role] = column
        elif role in roles:
            raise HivemindError(f"{source}: no column for {role!r} (looked for {', '.join(HUB_FIELDS[role])}); "
                                f"its columns are {', '.join(seen) or 'none'}. Rename the column, or export the "
                                f"data to the local format in `hivemind calibrate --help`")
    return mapping


def _ratings(value: Any) -> tuple[list[int] | None, int, str | None]:
    """(ratings, missing, problem): a list of 1-5 integers; empty entries are missing annotators."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                return None, 0, f"ratings {text[:40]!r} are not a list"
        else:
            value = [part.strip() for part in text.split(";")] if text else []
    if not isinstance(value, (list, tuple)):
        return None, 0, f"ratings must be a list, got {type(value).__name__}"
    kept, missing = [], 0
    for item in value:
        if item is None or (isinstance(item, str) and not item.strip()) or \
                (isinstance(item, float) and math.isnan(item)):
            missing += 1
            continue
        try:
            number = float(item)
        except (TypeError, ValueError):
            return None, missing, f"rating {item!r} is not a number"
        if not SCALE[0] <= number <= SCALE[1]:
            return None, missing, f"rating {item!r} outside {SCALE[0]}-{SCALE[1]}"
        if number != int(number):
            return None, missing, f"rating {item!r} is not a whole number ({SCALE[0]}-{SCALE[1]} scale)"
        kept.append(int(number))
    if not kept:
        return None, missing, "no ratings (every annotator missing)"
    return kept, missing, None


def parse_absolute(rows: list[tuple[int, dict]], source: str, data: HumanData) -> None:
    columns = _columns(rows, ["query", "response", "ratings"], [], source)
    seen: dict[tuple[str, str], int] = {}
    for line, row in rows:
        query, response = str(row.get(columns["query"]) or ""), str(row.get(columns["response"]) or "")
        if not query.strip() or not response.strip():
            data.exclusions.append(Exclusion(source, line, "empty query or response"))
            continue
        ratings, missing, problem = _ratings(row.get(columns["ratings"]))
        if problem:
            data.exclusions.append(Exclusion(source, line, problem))
            continue
        key = (query, response)
        if key in seen:
            data.exclusions.append(Exclusion(source, line, f"duplicate (query, response) of line {seen[key]}"))
            continue
        seen[key] = line
        data.dropped_missing_ratings += missing
        data.absolute.append(AbsoluteRecord(line, query, response, ratings))


def parse_pairwise(rows: list[tuple[int, dict]], source: str, data: HumanData) -> None:
    columns = _columns(rows, ["query", "response_a", "response_b"],
                       ["preference", "votes", "scale", "ratings_a", "ratings_b"], source)
    if not {"preference", "votes", "scale"} & set(columns) and not {"ratings_a", "ratings_b"} <= set(columns):
        raise HivemindError(f"{source}: no human preference: needs a `human_labels` (5-point votes, +2..-2), "
                            f"`preference` (A/B/tie), `votes` or `ratings_a` and `ratings_b` column")
    seen: dict[tuple[str, str, str], int] = {}
    for line, row in rows:
        query = str(row.get(columns["query"]) or "")
        a, b = str(row.get(columns["response_a"]) or ""), str(row.get(columns["response_b"]) or "")
        if not query.strip() or not a.strip() or not b.strip():
            data.exclusions.append(Exclusion(source, line, "empty query or response"))
            continue
        record, problem = _pair(row, columns, line, query, a, b, data)
        if problem:
            data.exclusions.append(Exclusion(source, line, problem))
            continue
        key = (query, a, b)
        if key in seen:
            data.exclusions.append(Exclusion(source, line, f"duplicate pair of line {seen[key]}"))
            continue
        seen[key] = line
        data.pairwise.append(record)


def _pair(row: dict, columns: dict, line: int, query: str, a: str, b: str, data: HumanData):
    ratings_a = ratings_b = votes = None
    for side in ("ratings_a", "ratings_b"):
        if side in columns and row.get(columns[side]) not in (None, ""):
            ratings, missing, problem = _ratings(row.get(columns[side]))
            if problem:
                return None, f"{side}: {problem}"
            data.dropped_missing_ratings += missing
            ratings_a, ratings_b = (ratings, ratings_b) if side == "ratings_a" else (ratings_a, ratings)
    if "votes" in columns and row.get(columns["votes"]) not in (None, ""):
        raw = row.get(columns["votes"])
        raw = json.loads(raw) if isinstance(raw, str) and raw.strip().startswith("[") else raw
        raw = raw.split(";") if isinstance(raw, str) else raw
        votes = [_side(v) for v in raw]
        if None in votes:
            return None, f"votes must be A, B or tie, got {raw!r}"
    scale = None
    if "scale" in columns and row.get(columns["scale"]) not in (None, ""):
        scale, problem = _scale(row.get(columns["scale"]))
        if problem:
            return None, problem
    preference = _side(row.get(columns["preference"])) if "preference" in columns else None
    if preference is None and scale:
        mean = float(np.mean(scale))           # the authors' human score of a pair: the mean vote
        preference = "A" if mean > 0 else "B" if mean < 0 else "tie"
    if preference is None and votes:
        a_votes, b_votes = votes.count("A"), votes.count("B")   # the majority of A over B; equal: a tie
        preference = "A" if a_votes > b_votes else "B" if b_votes > a_votes else "tie"
    if preference is None and ratings_a and ratings_b:
        mean_a, mean_b = np.mean(ratings_a), np.mean(ratings_b)
        preference = "A" if mean_a > mean_b else "B" if mean_b > mean_a else "tie"
    if preference is None:
        return None, "no human preference (no preference, votes or ratings for both responses)"
    return PairRecord(line, query, a, b, preference, ratings_a, ratings_b, votes, scale), None


def _scale(value: Any) -> tuple[list[int] | None, str | None]:
    """5-point votes: integers -2..2, or the forms' answer texts (SCALE_TEXT); empty entries dropped."""
    if isinstance(value, str):
        value = json.loads(value) if value.strip().startswith("[") else value.split(";")
    if not isinstance(value, (list, tuple)):
        return None, f"5-point votes must be a list, got {type(value).__name__}"
    kept = []
    for item in value:
        if item is None or (isinstance(item, str) and not item.strip()):
            continue
        text = str(item).strip()
        number = SCALE_TEXT.get(text.lower())
        if number is None:
            try:
                number = float(text)
            except ValueError:
                return None, f"5-point vote {text[:60]!r} is neither -2..2 nor a form answer"
            if number != int(number) or not -2 <= number <= 2:
                return None, f"5-point vote {text!r} outside -2..2"
        kept.append(int(number))
    if not kept:
        return None, "no 5-point votes (every annotator missing)"
    return kept, None


def _side(value: Any) -> str | None:
    text = str(value).strip().lower() if value is not None else ""
    return {"a": "A", "1": "A", "response_a": "A", "b": "B", "2": "B", "response_b": "B",
            "tie": "tie", "0": "tie", "equal": "tie"}.get(text)


def load_human_data(absolute: str | None = None, pairwise: str | None = None) -> HumanData:
    """Each argument: a local .jsonl/.csv path, or 'hub' for the paper's Hub set; None skips that kind."""
    data = HumanData()
    if absolute:
        source = HUB_ABSOLUTE if absolute == "hub" else absolute
        rows = load_hub(HUB_ABSOLUTE) if absolute == "hub" else read_rows(Path(absolute))
        parse_absolute(rows, source, data)
    if pairwise:
        source = HUB_PAIRWISE if pairwise == "hub" else pairwise
        rows = load_hub(HUB_PAIRWISE) if pairwise == "hub" else read_rows(Path(pairwise))
        parse_pairwise(rows, source, data)
    if not data.absolute and not data.pairwise:
        raise HivemindError("no usable human ratings: " + (
            f"every record was excluded ({_exclusion_summary(data.exclusions)})" if data.exclusions
            else "pass --absolute and/or --pairwise (a JSONL/CSV file, or 'hub')"))
    return data


def _exclusion_summary(exclusions: list[Exclusion]) -> str:
    counts: dict[str, int] = {}
    for e in exclusions:
        reason = e.reason.split(" of line")[0].split(":")[0]
        counts[reason] = counts.get(reason, 0) + 1
    return "; ".join(f"{n} {reason}" for reason, n in counts.items())


# Subsets ---------------------------------------------------------------------------------------------

def _tag(value: float) -> str:
    return f"{value:g}"


def absolute_subsets(records: list[AbsoluteRecord], params: Params) -> dict[str, np.ndarray]:
    """subset name -> boolean mask over records (definitions in the module docstring)."""
    means = np.array([r.mean for r in records])
    entropies = np.array([r.entropy for r in records])
    q1, q3 = np.percentile(means, [25, 75])
    sd = means.std()
    z = np.abs(means - means.mean()) / sd if sd > 0 else np.zeros_like(means)
    subsets = {"full": np.ones(len(records), dtype=bool)}
    for m in params.middle_pct:
        low, high = np.percentile(means, [(100 - m) / 2, (100 + m) / 2])
        subsets[f"similar_middle_{_tag(m)}"] = (means >= low) & (means <= high)
    for k in params.tukey_k:
        subsets[f"similar_tukey_{_tag(k)}"] = (means >= q1 - k * (q3 - q1)) & (means <= q3 + k * (q3 - q1))
    for limit in params.z_max:
        subsets[f"similar_z_{_tag(limit)}"] = z <= limit
    for t in params.pair_threshold:
        subsets[f"similar_pairs_{_tag(t)}"] = _close_to_another(records, means, t)
    for d in params.disagreement_pct:
        subsets[f"high_disagreement_{_tag(d)}"] = entropies >= np.percentile(entropies, 100 - d)
    return subsets


def _close_to_another(records: list[AbsoluteRecord], means: np.ndarray, threshold: float) -> np.ndarray:
    """Records with another response to the same query whose mean rating differs by less than threshold."""
    by_query: dict[str, list[int]] = {}
    for i, record in enumerate(records):
        by_query.setdefault(record.query, []).append(i)
    mask = np.zeros(len(records), dtype=bool)
    for members in by_query.values():
        for i in members:
            mask[i] = any(j != i and abs(means[i] - means[j]) < threshold for j in members)
    return mask


def _first_share(keys: list[float | None], queries: list[str], pct: float) -> np.ndarray:
    """The authors' top-p% cut: eligible records (key not None) sorted stably by key, the first
    int(n_eligible * pct / 100) kept. Equal keys keep the authors' order: records grouped by query (in order of
    the query's first appearance), file order within a query, as their dict-of-queries loader yields them."""
    first_seen: dict[str, int] = {}
    for i, query in enumerate(queries):
        first_seen.setdefault(query, i)
    eligible = sorted((i for i, key in enumerate(keys) if key is not None), key=lambda i: first_seen[queries[i]])
    order = sorted(eligible, key=lambda i: keys[i])       # Python's sort is stable, as in the authors' code
    mask = np.zeros(len(keys), dtype=bool)
    mask[order[:int(len(eligible) * pct / 100)]] = True
    return mask


def pairwise_subsets(records: list[PairRecord], params: Params) -> dict[str, np.ndarray]:
    differences = [r.difference for r in records]
    most_similar_first = [None if r.similar_votes is None else -r.similar_votes for r in records]
    least_agreed_first = [r.agreement for r in records]
    queries = [r.query for r in records]
    subsets = {"full": np.ones(len(records), dtype=bool)}
    for p in params.pair_similar_pct:
        subsets[f"similar_ties_{_tag(p)}"] = _first_share(most_similar_first, queries, p)
    for t in params.pair_threshold:
        subsets[f"similar_ratings_{_tag(t)}"] = np.array([d is not None and d < t for d in differences], dtype=bool)
    for p in params.pair_disagreement_pct:
        subsets[f"high_disagreement_{_tag(p)}"] = _first_share(least_agreed_first, queries, p)
    return subsets


# Statistics ------------------------------------------------------------------------------------------

def agreement(scorer_a: np.ndarray, scorer_b: np.ndarray, human: np.ndarray) -> tuple[float, int, int]:
    """(agreement, n compared, scorer ties) over pairs with a human A/B preference."""
    decided = human != "tie"
    ties = decided & (scorer_a == scorer_b)
    use = decided & ~ties
    if not use.any():
        return float("nan"), 0, int(ties.sum())
    picks = np.where(scorer_a[use] > scorer_b[use], "A", "B")
    return float((picks == human[use]).mean()), int(use.sum()), int(ties.sum())


def bootstrap_ci(statistic, arrays: list[np.ndarray], n_boot: int, seed: int) -> tuple[float, float]:
    """Percentile 95% interval of statistic(*arrays) over resamples of the rows (undefined ones skipped)."""
    n = len(arrays[0])
    if n < 3 or n_boot <= 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        index = rng.integers(0, n, n)
        value = statistic(*[a[index] for a in arrays])
        if not math.isnan(value):
            values.append(value)
    if not values:
        return float("nan"), float("nan")
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


@dataclass
class Row:
    kind: str          # absolute | pairwise
    scorer: str
    subset: str
    statistic: str     # spearman | agreement
    n_subset: int      # records in the subset
    n: int             # records the statistic used (scored; for pairwise: decided and untied)
    value: float       # Spearman rho, or agreement (share of decided pairs)
    ci_low: float
    ci_high: float
    unscored: int      # records the scorer gave no score (refused, off-scale, error)
    excluded_ties: int = 0   # pairwise: human ties plus scorer ties

    def as_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) and not math.isnan(v) else v)
                for k, v in self.__dict__.items()}


def absolute_table(records: list[AbsoluteRecord], scores: dict[str, dict[tuple[str, str], float | None]],
                   params: Params) -> list[Row]:
    """Spearman of each scorer with the mean human rating, per subset. scores: scorer -> (query, response) -> score."""
    subsets = absolute_subsets(records, params)
    means = np.array([r.mean for r in records])
    rows = []
    for scorer, by_key in scores.items():
        values = np.array([_num(by_key.get((r.query, r.response))) for r in records])
        for name, mask in subsets.items():
            use = mask & ~np.isnan(values)
            x, y = values[use], means[use]
            rho = spearman(x, y)
            low, high = bootstrap_ci(spearman, [x, y], params.bootstrap, params.seed)
            rows.append(Row("absolute", scorer, name, "spearman", int(mask.sum()), int(use.sum()), rho, low, high,
                            int((mask & np.isnan(values)).sum())))
    return rows


def pairwise_table(records: list[PairRecord], scores: dict[str, dict[tuple[str, str], float | None]],
                   params: Params) -> list[Row]:
    """Per scorer and subset: Spearman of the score difference with the human margin, and agreement."""
    subsets = pairwise_subsets(records, params)
    human = np.array([r.preference for r in records])
    margins = np.array([np.nan if r.margin is None else r.margin for r in records])
    rows = []
    for scorer, by_key in scores.items():
        a = np.array([_num(by_key.get((r.query, r.response_a))) for r in records])
        b = np.array([_num(by_key.get((r.query, r.response_b))) for r in records])
        scored = ~np.isnan(a) & ~np.isnan(b)
        for name, mask in subsets.items():
            use = mask & scored
            unscored = int((mask & ~scored).sum())
            both = use & ~np.isnan(margins)
            x, y = a[both] - b[both], margins[both]
            low, high = bootstrap_ci(spearman, [x, y], params.bootstrap, params.seed)
            rows.append(Row("pairwise", scorer, name, "spearman", int(mask.sum()), int(both.sum()), spearman(x, y),
                            low, high, unscored))
            value, n, scorer_ties = agreement(a[use], b[use], human[use])
            low, high = bootstrap_ci(lambda x, y, h: agreement(x, y, h)[0], [a[use], b[use], human[use]],
                                     params.bootstrap, params.seed)
            human_ties = int((human[use] == "tie").sum())
            rows.append(Row("pairwise", scorer, name, "agreement", int(mask.sum()), n, value, low, high, unscored,
                            human_ties + scorer_ties))
    return rows


def _num(value) -> float:
    return float("nan") if value is None else float(value)


# Scoring ---------------------------------------------------------------------------------------------

HUMAN_SYSTEM = "human-rated"
SCORING_DIR = ".scoring"


def prompt_id(query: str) -> str:
    return "q" + hashlib.sha256(query.encode("utf-8")).hexdigest()[:16]


def score_responses(data: HumanData, scorers: list, name: str, results_dir: str | Path,
                    progress: bool = False) -> tuple[dict[str, dict[tuple[str, str], float | None]], Any]:
    """Score every distinct (query, response) with each scorer through the score stage.

    The responses go into a store of their own as answers of one pseudo-system, so the score stage's caching
    applies: a re-run scores nothing twice and a killed run resumes. It lives in results/<name>/.scoring/
    (a hidden folder), so the leaderboard never mistakes the calibration for a run."""
    from hivemind.core.config import RunConfig, System
    from hivemind.collect.prompts import Prompt
    from hivemind.score.stage import score_run
    from hivemind.store import Response, Store

    system = System(name=HUMAN_SYSTEM, model="human/rated-responses")
    pairs: dict[tuple[str, str], tuple[str, int]] = {}
    for query, response in _distinct(data):
        pid = prompt_id(query)
        sample = sum(1 for (q, _r) in pairs if q == query)
        pairs[(query, response)] = (pid, sample)
    config = RunConfig(name=name, prompts="human-ratings", systems=[system], scorers=scorers,
                       results_dir=str(results_dir), samples=max(s for _p, s in pairs.values()) + 1)
    with Store(config.store_path) as store:
        store.add_system(system.identity, system.name, system.model, system.api_base, system.params)
        queries = {q: prompt_id(q) for q, _r in pairs}
        store.add_prompts([Prompt(id=pid, text=q) for q, pid in queries.items()])
        done = store.done_keys(system.identity)
        store.add_responses([Response(system_id=system.identity, prompt_id=pid, sample=s, text=r)
                             for (q, r), (pid, s) in pairs.items() if (pid, s) not in done])
    summary = score_run(config, progress=progress, raise_if_incomplete=False)
    with Store(config.store_path) as store:
        frame = store.scores_frame([system.identity])
    by_key = {(pid, s): key for key, (pid, s) in pairs.items()}
    scores: dict[str, dict[tuple[str, str], float | None]] = {s.name: {} for s in scorers}
    for row in frame.itertuples():
        key = by_key.get((row.prompt_id, int(row.sample)))
        if key is not None and row.scorer in scores:
            scores[row.scorer][key] = None if row.score is None or math.isnan(row.score) else float(row.score)
    return scores, summary


def _distinct(data: HumanData) -> list[tuple[str, str]]:
    seen: dict[tuple[str, str], None] = {}
    for r in data.absolute:
        seen[(r.query, r.response)] = None
    for p in data.pairwise:
        seen[(p.query, p.response_a)] = None
        seen[(p.query, p.response_b)] = None
    return list(seen)


# The study -------------------------------------------------------------------------------------------

@dataclass
class Calibration:
    out_dir: Path
    data: HumanData
    rows: list[Row]
    params: Params
    score_summary: Any = None

    def text(self) -> str:
        lines = [f"human ratings: {len(self.data.absolute)} absolute records, {len(self.data.pairwise)} pairs; "
                 f"{len(self.data.exclusions)} excluded ({_exclusion_summary(self.data.exclusions) or 'none'}); "
                 f"{self.data.dropped_missing_ratings} missing ratings dropped"]
        for row in self.rows:
            stat = "rho" if row.statistic == "spearman" else "agreement"
            value = "n/a" if math.isnan(row.value) else f"{row.value:.3f}"
            ci = "" if math.isnan(row.ci_low) else f" [{row.ci_low:.3f}, {row.ci_high:.3f}]"
            extra = f", {row.unscored} unscored" if row.unscored else ""
            extra += f", {row.excluded_ties} ties left out" if row.excluded_ties else ""
            lines.append(f"  {row.kind} {row.scorer} {row.subset}: {stat} {value}{ci} (n={row.n} of "
                         f"{row.n_subset}{extra})")
        if self.score_summary is not None and not self.score_summary.complete:
            lines.append("scoring incomplete:\n" + self.score_summary.text())
        lines.append(f"tables in {self.out_dir}")
        return "\n".join(lines)


def scorers_for(config: str | None, names: list[str] | None = None) -> list:
    """The scorers of a config (optionally some of them), or the local perplexity scorer."""
    from hivemind.core.config import Scorer
    from hivemind.core.config_files import resolve_run

    if config is None:
        if names:
            raise HivemindError("--scorer picks scorers of --config; pass --config too")
        return [Scorer(name="logprob", kind="perplexity", params={"max_tokens": 256})]
    run = resolve_run(config)
    chosen = [run.scorer(name) for name in names] if names else [s for s in run.scorers if s.kind != "imported"]
    if not chosen:
        raise HivemindError(f"{config}: no computed scorers; add a `scorers:` list")
    return chosen


def calibrate(absolute: str | None, pairwise: str | None, scorers: list, name: str = "calibration",
              results_dir: str | Path | None = None, params: Params | None = None,
              progress: bool = False, wait: bool = False) -> Calibration:
    """Score the human-rated responses, compare, write results/<name>/ (under that folder's lock)."""
    from hivemind.core.config import check_name
    from hivemind.results.folder import folder_locked, results_root

    check_name(name, "calibration name")      # before anything is created under the results folder
    params = params or Params()
    _check_params(params)
    if not scorers:
        raise HivemindError("no scorers to calibrate: pass --config with a `scorers:` list, or --perplexity")
    data = load_human_data(absolute, pairwise)
    out_dir = results_root(results_dir) / name
    with folder_locked(out_dir, "calibrate", wait, name):
        scores, summary = score_responses(data, scorers, name, out_dir / SCORING_DIR, progress)
        rows = []
        if data.absolute:
            rows += absolute_table(data.absolute, scores, params)
        if data.pairwise:
            rows += pairwise_table(data.pairwise, scores, params)
        write_tables(out_dir, data, rows, params)
    return Calibration(out_dir, data, rows, params, summary)


def _check_params(params: Params) -> None:
    for label, values in (("--middle-pct", params.middle_pct), ("--disagreement-pct", params.disagreement_pct),
                          ("--pair-similar-pct", params.pair_similar_pct),
                          ("--pair-disagreement-pct", params.pair_disagreement_pct)):
        if not values or not all(0 < v <= 100 for v in values):
            raise HivemindError(f"{label} must be in (0, 100], got {' '.join(_tag(v) for v in values) or 'none'}")
    for label, values in (("--tukey-k", params.tukey_k), ("--z-max", params.z_max),
                          ("--pair-threshold", params.pair_threshold)):
        if not values or not all(v > 0 for v in values):
            raise HivemindError(f"{label} must be positive, got {' '.join(_tag(v) for v in values) or 'none'}")
    if params.bootstrap < 0:
        raise HivemindError("--bootstrap must be 0 or more")


def write_tables(out_dir: Path, data: HumanData, rows: list[Row], params: Params) -> None:
    """The calibration tables, calibration.json and the figure, together through the results folder's write
    path (staged, scanned for secrets, renamed into place)."""
    import pandas as pd

    from hivemind.results.folder import writing

    frame = pd.DataFrame([r.as_dict() for r in rows])
    with writing(out_dir, "calibrate") as out:
        for kind in ("absolute", "pairwise"):
            part = frame[frame["kind"] == kind] if len(frame) else frame
            if len(part):
                out.csv(f"calibration_{kind}.csv", part)
        exclusions = pd.DataFrame([e.__dict__ for e in data.exclusions], columns=["source", "line", "reason"])
        out.csv("calibration_exclusions.csv", exclusions)
        meta = {"params": params.__dict__, "absolute_records": len(data.absolute), "pairs": len(data.pairwise),
                "excluded": len(data.exclusions), "missing_ratings_dropped": data.dropped_missing_ratings}
        out.json("calibration.json", meta)
        if len(frame):
            _figure(out, frame)


def _figure(out, frame) -> None:
    """One panel per (kind, statistic): the statistic per subset and scorer, with its bootstrap interval and n."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(k, st) for k, st in (("absolute", "spearman"), ("pairwise", "spearman"), ("pairwise", "agreement"))
              if ((frame["kind"] == k) & (frame["statistic"] == st)).any()]
    widest = max(frame[(frame["kind"] == k) & (frame["statistic"] == st)]["subset"].nunique() for k, st in panels)
    fig, axes = plt.subplots(len(panels), 1, figsize=(max(8, 0.55 * widest + 2), 3.6 * len(panels)),
                             squeeze=False)
    labels = {("absolute", "spearman"): "Spearman rho with mean human rating",
              ("pairwise", "spearman"): "Spearman rho, score difference vs human margin",
              ("pairwise", "agreement"): "agreement with the human preference"}
    for ax, (kind, statistic) in zip(axes[:, 0], panels):
        part = frame[(frame["kind"] == kind) & (frame["statistic"] == statistic)]
        subsets = list(dict.fromkeys(part["subset"]))
        scorers = list(dict.fromkeys(part["scorer"]))
        width = 0.8 / len(scorers)
        for j, scorer in enumerate(scorers):
            rows = part[part["scorer"] == scorer].set_index("subset").reindex(subsets)
            x = np.arange(len(subsets)) + j * width
            values = rows["value"].astype(float).to_numpy()
            err = np.abs(np.vstack([values - rows["ci_low"].astype(float), rows["ci_high"].astype(float) - values]))
            ax.bar(x, np.nan_to_num(values), width, label=scorer, yerr=np.nan_to_num(err), capsize=2)
        counts = ["/".join(str(n) for n in part[part["subset"] == subset]["n"]) for subset in subsets]
        ticks = [f"{subset}\nn={n}" for subset, n in zip(subsets, counts)]   # n per scorer, in legend order
        ax.set_xticks(np.arange(len(subsets)) + 0.4 - width / 2, ticks, fontsize=6, rotation=60, ha="right")
        ax.set_ylabel(labels[(kind, statistic)], fontsize=8)
        ax.set_title(f"{kind}: {statistic}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    out.figure("calibration.png", fig, dpi=120)
    plt.close(fig)
