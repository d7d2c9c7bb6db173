"""One reader for data files: JSON, JSON Lines, CSV and Parquet, with the same one-line errors everywhere.

`read_records(path)` yields (where, record) for every record of a file, the format told by its extension:
- .jsonl / .ndjson: one JSON object per non-blank line; where = the line.
- .json: a JSON list of objects, or an object of lists of objects (e.g. {"train": [...]}); where = the
  record's position. A .json file holding JSON Lines (several objects, one per line) is read as JSON Lines.
- .csv: a header row, then one record per row (a quoted field may span lines); where = the line it starts on.
- .parquet: one record per row (pyarrow); where = the row number, from 1.
Every problem is one HivemindError line naming the file and, where there is one, the line or row: a missing
file, a folder, a file that is not UTF-8, a NUL byte (a binary file), malformed JSON or CSV, an unknown
extension, an unreadable Parquet file, an empty file. Callers (imports, calibrate, prompts) add what a record
must contain; the file-level checks live here once.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from hivemind.core.errors import HivemindError

JSONL_SUFFIXES = (".jsonl", ".ndjson")
SUFFIXES = (".json", *JSONL_SUFFIXES, ".csv", ".parquet")
CSV_FIELD_LIMIT = 16 * 1024 * 1024  # characters; the csv module's default (128 KiB) is below a long prompt
PARQUET_MAGIC = b"PAR1"


@dataclass(frozen=True)
class Where:
    """A record's place in its file: line N of a text file, record N of a JSON list, row N of a Parquet file."""
    path: Path
    number: int          # from 1
    unit: str = "line"   # "line", "record" or "row"
    group: str | None = None   # the key of an object of lists

    def __str__(self) -> str:
        if self.unit == "line":
            return f"{self.path}:{self.number}"
        inside = f"{self.group}[{self.number - 1}]" if self.group is not None else f"{self.unit} {self.number}"
        return f"{self.path} ({inside})"


def read_records(path: str | Path, what: str = "data file", records: str = "records") -> Iterator[tuple[Where, dict]]:
    """(where, record) for each record of a JSON, JSONL, CSV or Parquet file. `what` names the file in errors
    ("prompt file"), `records` what it holds ("prompts"): an empty file is "PATH: no prompts found (empty file)"."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise HivemindError(f"{path}: unknown file type {suffix or '(no extension)'!r} for a {what}; "
                            f"expected .json, .jsonl, .csv or .parquet")
    check_file(path, what)
    if suffix == ".parquet":
        found = _parquet_records(path, what)
    elif suffix == ".csv":
        found = _csv_records(path, what)
    elif suffix == ".json":
        found = _json_records(path, what)
    else:
        found = _jsonl_records(path, what)
    count = 0
    for where, record in found:
        count += 1
        yield where, record
    if count == 0:
        empty = not path.read_bytes().strip(b" \t\r\n\xef\xbb\xbf")
        raise HivemindError(f"{path}: no {records} found ({'empty file' if empty else 'the file holds no records'})")


def check_file(path: Path, what: str) -> None:
    if path.is_dir():
        raise HivemindError(f"{path}: is a folder; expected a {what}")
    if not path.is_file():
        raise HivemindError(f"{path}: {what} not found")


def _open(path: Path, what: str):
    """The file opened as UTF-8 text (a BOM is skipped), or a one-line HivemindError saying why not."""
    try:
        with path.open("rb") as raw:
            head = raw.read(len(PARQUET_MAGIC))
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as err:
        raise HivemindError(f"{path}: cannot read the {what} ({err.strerror})") from None
    if head == PARQUET_MAGIC:
        handle.close()
        raise HivemindError(f"{path}: a Parquet file, not text; name it .parquet to read it as one")
    return handle


def _utf8_lines(handle, path: Path):
    """The handle's lines; a byte that is not UTF-8 is a HivemindError naming the file (the decoder reads
    ahead in blocks, so the line it fails on is not the line of the byte). A NUL byte means a binary file."""
    number = 0
    while True:
        try:
            line = next(handle)
        except StopIteration:
            return
        except UnicodeDecodeError as err:
            raise HivemindError(f"{path}: not UTF-8 text ({err.reason}); save it as UTF-8") from None
        except OSError as err:
            raise HivemindError(f"{path}: cannot read it ({err.strerror})") from None
        number += line.count("\n") or 1
        if "\0" in line:
            raise HivemindError(f"{path}:{number}: a NUL byte; is this a binary file?")
        yield line


def _kind(value) -> str:
    return {list: "a list", str: "a string", int: "a number", float: "a number", bool: "true/false",
            type(None): "null", dict: "an object"}.get(type(value), type(value).__name__)


def _json_value(text: str, path: Path, number: int | None = None):
    """json.loads, with errors as one line naming the file and line (`number`: the line `text` is on)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        line = number if number is not None else err.lineno
        raise HivemindError(f"{path}:{line}: malformed JSON: {err.msg} (column {err.colno})") from None
    except RecursionError:
        where = f"{path}:{number}" if number is not None else str(path)
        raise HivemindError(f"{where}: malformed JSON: nested too deeply") from None


def _jsonl_records(path: Path, what: str):
    with _open(path, what) as handle:
        for number, raw in enumerate(_utf8_lines(handle, path), start=1):
            if not raw.strip():
                continue
            record = _json_value(raw, path, number)
            if not isinstance(record, dict):
                raise HivemindError(f"{path}:{number}: each line must be a JSON object, not {_kind(record)}")
            yield Where(path, number), record


def _json_records(path: Path, what: str):
    with _open(path, what) as handle:
        text = "".join(_utf8_lines(handle, path))
    if not text.strip():
        return
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        if err.msg == "Extra data" and text.lstrip().startswith("{"):
            yield from _jsonl_records(path, what)   # JSON Lines saved as .json
            return
        value = _json_value(text, path)  # raises the one-line error
    except RecursionError:
        value = _json_value(text, path)
    if isinstance(value, list):
        yield from ((Where(path, i, "record"), r) for i, r in enumerate(_objects(value, path), start=1))
    elif isinstance(value, dict) and value and all(isinstance(v, list) for v in value.values()):
        for key, items in value.items():
            yield from ((Where(path, i, "record", key), r) for i, r in enumerate(_objects(items, path, key), start=1))
    else:
        raise HivemindError(f"{path}: expected a JSON list of records (or an object of lists of records), "
                            f"found a JSON {_kind(value).split()[-1]}")


def _objects(items: list, path: Path, key: str | None = None):
    for i, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            where = Where(path, i, "record", key)
            raise HivemindError(f"{where}: expected a JSON object, found {_kind(item)}")
        yield item


class _LineCounter:
    """Lines handed to the csv reader so far: the line a record starts on is the count before reading it."""

    def __init__(self, lines):
        self.lines = lines
        self.count = 0

    def __iter__(self):
        for line in self.lines:
            self.count += 1
            yield line


def _csv_records(path: Path, what: str):
    """Strict: a quote left open (which would swallow the rows after it into one record), text after a
    closing quote, or more fields than the header is an error naming the line."""
    csv.field_size_limit(max(csv.field_size_limit(), CSV_FIELD_LIMIT))
    with _open(path, what) as handle:
        lines = _LineCounter(_utf8_lines(handle, path))
        reader = csv.DictReader(lines, strict=True)
        start = 1
        try:
            reader.fieldnames  # reads the header
            start = lines.count + 1
            for record in reader:
                if None in record:
                    raise HivemindError(f"{path}:{start}: {len(reader.fieldnames or []) + len(record[None])} "
                                        f"fields, the header has {len(reader.fieldnames or [])}; quote fields "
                                        f"that contain commas")
                yield Where(path, start), record
                start = lines.count + 1
        except csv.Error as err:
            raise HivemindError(f"{path}:{start}: "
                                f"malformed CSV ({err}); a quote opened on this line is never closed or is "
                                f"followed by text: close it, or double quotes inside a quoted field (\"\")") from None


def _parquet_records(path: Path, what: str):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(path)
        batches = table.iter_batches()
        row = 0
        for batch in batches:
            for record in batch.to_pylist():
                row += 1
                yield Where(path, row, "row"), record
    except (pa.ArrowException, OSError, ValueError) as err:
        raise HivemindError(f"{path}: not a readable Parquet {what} ({' '.join(str(err).split())[:200]})") from None
