"""Human calibration: do LM judges, reward models and perplexity agree with people, and where do they not?

The paper's third finding (Jiang et al. 2025, Sec. 5): scorers track the mean human rating on the whole set
but lose it exactly where answers are of similar quality or where annotators disagree. This module repeats
that study for every scorer a config names, on the paper's human data or on your own.

Data
----
Absolute records: (query, response, ratings), ratings the individual 1-5 scores of several annotators.
Pairwise records: (query, response A, response B) with a human preference, given directly
(`preference`: A, B or tie), as annotator votes (`votes`: a list of A/B/tie), or derived from per-response
ratings (`ratings_a`, `ratings_b`: the higher mean wins, equal means are a tie).

Local files (JSONL, one object a line, or CSV with a header):
  absolute:  {"query": ..., "response": ..., "ratings": [4, 5, 3, ...]}
  pairwise:  {"query": ..., "response_a": ..., "response_b": ..., "preference": "A"}
             or "votes": ["A", "B", "A"], or "ratings_a": [...], "ratings_b": [...]
  (`prompt` is accepted for `query`; in CSV a list is JSON `[4,5,3]` or `4;5;3`.)
The Hub sets `liweijiang/infinite-chats-human-absolute` and `liweijiang/infinite-chats-human-pairwise` load
through `datasets`; their columns are mapped to these roles by name (HUB_FIELDS), and a set whose columns
match none of the names stops with a message listing the columns it has.

Bad input never silently changes n: a rating outside 1-5 excludes its record, an empty rating (a missing
annotator) is dropped and counted, a (query, response) row seen before is excluded as a duplicate, a pair
without any preference is excluded; every exclusion is written to calibration_exclusions.csv with its line.
A scorer that gives no score (a judge that refuses or answers off-scale) leaves that record out of that
scorer's numbers only, and the tables say how many it left out.

Statistics
----------
mean rating  r_i = (1/k_i) sum_j rating_ij
entropy      H_i = -sum_{s=1..5} p_is log2 p_is,  p_is = share of record i's ratings equal to s  (0 to log2 5 bits)
absolute:    Spearman's rho between a scorer's score and r_i (scipy.stats.spearmanr)
pairwise:    agreement = share of pairs where the scorer's higher-scored response is the human-preferred
             one; human ties and scorer ties (equal scores) are left out and counted.
bootstrap:   percentile interval of the statistic over `bootstrap` resamples of the subset's records
             (with replacement, seeded); resamples where the statistic is undefined are skipped.

Subsets (parameters on the command line; the paper's exact cut-offs were not available to us, so these
defaults are ours and documented here):
  similar_middle     r_i between the (50 - m/2)th and (50 + m/2)th percentiles of r  (m = --middle-pct, 30)
  similar_iqr        r_i within Tukey's hinges [Q1, Q3]
  similar_z          |r_i - mean(r)| / sd(r) <= z                                      (z = --z-max, 0.5)
  high_disagreement  H_i at or above the (100 - d)th percentile of H                    (d = --disagreement-pct, 25)
  pairwise similar   |r_A - r_B| < t                                                   (t = --pair-threshold, 0.5)
  pairwise high_disagreement  entropy of the votes (A/B/tie) or, with ratings, (H_A + H_B) / 2, top d%
Percentiles are numpy's linear interpolation.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hivemind import HivemindError

HUB_ABSOLUTE = "liweijiang/infinite-chats-human-absolute"
HUB_PAIRWISE = "liweijiang/infinite-chats-human-pairwise"
SCALE = (1, 5)

# Column names accepted for each role, local files and Hub sets alike (first match wins).
HUB_FIELDS: dict[str, tuple[str, ...]] = {
    "query": ("query", "prompt", "user_query", "question", "instruction"),
    "response": ("response", "answer", "output", "model_response", "completion"),
    "ratings": ("ratings", "human_ratings", "scores", "annotations", "labels", "rating_list"),
    "response_a": ("response_a", "response_1", "response1", "responseA", "answer_a", "output_a"),
    "response_b": ("response_b", "response_2", "response2", "responseB", "answer_b", "output_b"),
    "preference": ("preference", "human_preference", "winner", "label", "choice"),
    "votes": ("votes", "preferences", "human_preferences", "pairwise_ratings"),
    "ratings_a": ("ratings_a", "ratings_1", "scores_a", "ratings1"),
    "ratings_b": ("ratings_b", "ratings_2", "scores_b", "ratings2"),
}


@dataclass
class Params:
    middle_pct: float = 30.0
    z_max: float = 0.5
    disagreement_pct: float = 25.0
    pair_threshold: float = 0.5
    bootstrap: int = 1000
    seed: int = 0


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

    @property
    def difference(self) -> float | None:
        if not self.ratings_a or not self.ratings_b:
            return None
        return abs(float(np.mean(self.ratings_a)) - float(np.mean(self.ratings_b)))

    @property
    def entropy(self) -> float | None:
        if self.votes:
            counts = np.array([self.votes.count(v) for v in ("A", "B", "tie")], dtype=float)
            return _entropy(counts)
        if self.ratings_a and self.ratings_b:
            return (rating_entropy(self.ratings_a) + rating_entropy(self.ratings_b)) / 2
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
    """(line number, row) from a JSONL or CSV file; a malformed line is an error naming it."""
    if not path.is_file():
        raise HivemindError(f"{path}: no such file (human ratings: JSONL or CSV, see `hivemind calibrate --help`)")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        return [(i + 2, dict(row)) for i, row in enumerate(reader)]
    if path.suffix.lower() not in {".jsonl", ".json"}:
        raise HivemindError(f"{path}: human ratings must be .jsonl or .csv")
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise HivemindError(f"{path}:{number}: not a JSON object ({err.msg})") from None
        if not isinstance(row, dict):
            raise HivemindError(f"{path}:{number}: not a JSON object")
        rows.append((number, row))
    return rows


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
    columns = _columns(rows, ["query", "response_a", "response_b"], ["preference", "votes", "ratings_a", "ratings_b"],
                       source)
    if not {"preference", "votes"} & set(columns) and not {"ratings_a", "ratings_b"} <= set(columns):
        raise HivemindError(f"{source}: no human preference: needs a `preference` (A/B/tie), `votes` or "
                            f"`ratings_a` and `ratings_b` column")
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
    preference = _side(row.get(columns["preference"])) if "preference" in columns else None
    if preference is None and votes:
        a_votes, b_votes = votes.count("A"), votes.count("B")   # the majority of A over B; equal: a tie
        preference = "A" if a_votes > b_votes else "B" if b_votes > a_votes else "tie"
    if preference is None and ratings_a and ratings_b:
        mean_a, mean_b = np.mean(ratings_a), np.mean(ratings_b)
        preference = "A" if mean_a > mean_b else "B" if mean_b > mean_a else "tie"
    if preference is None:
        return None, "no human preference (no preference, votes or ratings for both responses)"
    return PairRecord(line, query, a, b, preference, ratings_a, ratings_b, votes), None


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

def absolute_subsets(records: list[AbsoluteRecord], params: Params) -> dict[str, np.ndarray]:
    """subset name -> boolean mask over records (definitions in the module docstring)."""
    means = np.array([r.mean for r in records])
    entropies = np.array([r.entropy for r in records])
    low, high = np.percentile(means, [50 - params.middle_pct / 2, 50 + params.middle_pct / 2])
    q1, q3 = np.percentile(means, [25, 75])
    sd = means.std()
    z = np.abs(means - means.mean()) / sd if sd > 0 else np.zeros_like(means)
    cut = np.percentile(entropies, 100 - params.disagreement_pct)
    return {
        "full": np.ones(len(records), dtype=bool),
        "similar_middle": (means >= low) & (means <= high),
        "similar_iqr": (means >= q1) & (means <= q3),
        "similar_z": z <= params.z_max,
        "high_disagreement": entropies >= cut,
    }


def pairwise_subsets(records: list[PairRecord], params: Params) -> dict[str, np.ndarray]:
    differences = [r.difference for r in records]
    entropies = [r.entropy for r in records]
    similar = np.array([d is not None and d < params.pair_threshold for d in differences])
    known = [e for e in entropies if e is not None]
    cut = np.percentile(known, 100 - params.disagreement_pct) if known else np.inf
    return {
        "full": np.ones(len(records), dtype=bool),
        "similar": similar,
        "high_disagreement": np.array([e is not None and e >= cut for e in entropies]),
    }


# Statistics ------------------------------------------------------------------------------------------

def spearman(x: np.ndarray, y: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(spearmanr(x, y).statistic)


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
    n_subset: int      # records in the subset
    n: int             # records the statistic used (scored; for pairwise: decided and untied)
    value: float       # Spearman rho (absolute) or agreement (pairwise)
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
            rows.append(Row("absolute", scorer, name, int(mask.sum()), int(use.sum()), rho, low, high,
                            int((mask & np.isnan(values)).sum())))
    return rows


def pairwise_table(records: list[PairRecord], scores: dict[str, dict[tuple[str, str], float | None]],
                   params: Params) -> list[Row]:
    subsets = pairwise_subsets(records, params)
    human = np.array([r.preference for r in records])
    rows = []
    for scorer, by_key in scores.items():
        a = np.array([_num(by_key.get((r.query, r.response_a))) for r in records])
        b = np.array([_num(by_key.get((r.query, r.response_b))) for r in records])
        scored = ~np.isnan(a) & ~np.isnan(b)
        for name, mask in subsets.items():
            use = mask & scored
            value, n, scorer_ties = agreement(a[use], b[use], human[use])
            low, high = bootstrap_ci(lambda x, y, h: agreement(x, y, h)[0], [a[use], b[use], human[use]],
                                     params.bootstrap, params.seed)
            human_ties = int((human[use] == "tie").sum())
            rows.append(Row("pairwise", scorer, name, int(mask.sum()), n, value, low, high,
                            int((mask & ~scored).sum()), human_ties + scorer_ties))
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
    from hivemind.config import RunConfig, System
    from hivemind.prompts import Prompt
    from hivemind.score import score_run
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
            stat = "rho" if row.kind == "absolute" else "agreement"
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
    from hivemind.config import Scorer, resolve_run

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
              results_dir: str | Path = "results", params: Params | None = None,
              progress: bool = False) -> Calibration:
    params = params or Params()
    _check_params(params)
    if not scorers:
        raise HivemindError("no scorers to calibrate: pass --config with a `scorers:` list, or --perplexity")
    data = load_human_data(absolute, pairwise)
    scores, summary = score_responses(data, scorers, name, Path(results_dir) / name / SCORING_DIR, progress)
    rows = []
    if data.absolute:
        rows += absolute_table(data.absolute, scores, params)
    if data.pairwise:
        rows += pairwise_table(data.pairwise, scores, params)
    out_dir = Path(results_dir) / name
    write_tables(out_dir, data, rows, params)
    return Calibration(out_dir, data, rows, params, summary)


def _check_params(params: Params) -> None:
    for label, value in (("--middle-pct", params.middle_pct), ("--disagreement-pct", params.disagreement_pct)):
        if not 0 < value <= 100:
            raise HivemindError(f"{label} must be in (0, 100], got {value}")
    if params.z_max <= 0 or params.pair_threshold <= 0:
        raise HivemindError("--z-max and --pair-threshold must be positive")
    if params.bootstrap < 0:
        raise HivemindError("--bootstrap must be 0 or more")


def write_tables(out_dir: Path, data: HumanData, rows: list[Row], params: Params) -> None:
    import pandas as pd

    from hivemind.config import write_text_atomic

    out_dir.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame([r.as_dict() for r in rows])
    for kind in ("absolute", "pairwise"):
        part = frame[frame["kind"] == kind] if len(frame) else frame
        if len(part):
            write_text_atomic(out_dir / f"calibration_{kind}.csv", part.to_csv(index=False))
    exclusions = pd.DataFrame([e.__dict__ for e in data.exclusions], columns=["source", "line", "reason"])
    write_text_atomic(out_dir / "calibration_exclusions.csv", exclusions.to_csv(index=False))
    meta = {"params": params.__dict__, "absolute_records": len(data.absolute), "pairs": len(data.pairwise),
            "excluded": len(data.exclusions), "missing_ratings_dropped": data.dropped_missing_ratings}
    write_text_atomic(out_dir / "calibration.json", json.dumps(meta, indent=2) + "\n")
    if len(frame):
        _figure(out_dir, frame)


def _figure(out_dir: Path, frame) -> None:
    """One panel per kind: the statistic per subset and scorer, with its bootstrap interval and n."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = [k for k in ("absolute", "pairwise") if (frame["kind"] == k).any()]
    fig, axes = plt.subplots(1, len(kinds), figsize=(6 * len(kinds), 4), squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        part = frame[frame["kind"] == kind]
        subsets = list(dict.fromkeys(part["subset"]))
        scorers = list(dict.fromkeys(part["scorer"]))
        width = 0.8 / len(scorers)
        for j, scorer in enumerate(scorers):
            rows = part[part["scorer"] == scorer].set_index("subset").reindex(subsets)
            x = np.arange(len(subsets)) + j * width
            values = rows["value"].astype(float).to_numpy()
            err = np.abs(np.vstack([values - rows["ci_low"].astype(float), rows["ci_high"].astype(float) - values]))
            ax.bar(x, np.nan_to_num(values), width, label=scorer,
                   yerr=np.nan_to_num(err), capsize=3)
        counts = ["/".join(str(n) for n in part[part["subset"] == subset]["n"]) for subset in subsets]
        ticks = [f"{subset}\nn={n}" for subset, n in zip(subsets, counts)]   # n per scorer, in legend order
        ax.set_xticks(np.arange(len(subsets)) + 0.4 - width / 2, ticks, fontsize=8)
        ax.set_ylabel("Spearman rho with mean human rating" if kind == "absolute" else "agreement with humans")
        ax.set_title(kind)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "calibration.png", dpi=120)
    plt.close(fig)
