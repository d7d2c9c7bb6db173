"""Reading the human ratings of the calibration study: local files or the paper's Hub sets.

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
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from hivemind.core.errors import HivemindError
from hivemind.core.readers import read_records
from hivemind.studies.scorer_calibration.records import (
    SCALE,
    AbsoluteRecord,
    Exclusion,
    HumanData,
    PairRecord,
    exclusion_summary,
)

HUB_ABSOLUTE = "liweijiang/infinite-chats-human-absolute"
HUB_PAIRWISE = "liweijiang/infinite-chats-human-pairwise"

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
            f"every record was excluded ({exclusion_summary(data.exclusions)})" if data.exclusions
            else "pass --absolute and/or --pairwise (a JSONL/CSV file, or 'hub')"))
    return data
