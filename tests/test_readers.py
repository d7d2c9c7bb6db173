"""The one reader for data files (hivemind.core.readers): every format gives the same records, every bad file one
line naming the file and line or row."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hivemind import HivemindError
from hivemind.core.readers import read_records

RECORDS = [{"prompt": "Name a colour.", "model": "m1", "response": "Blue, or red"},
           {"prompt": "Name a fruit.", "model": "m2", "response": "Pear"}]


def write(path: Path, records: list[dict]) -> Path:
    suffix = path.suffix
    if suffix == ".json":
        path.write_text(json.dumps(records, indent=1))
    elif suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
    elif suffix == ".csv":
        path.write_text("prompt,model,response\n" + "".join(f'"{r["prompt"]}",{r["model"]},"{r["response"]}"\n'
                                                            for r in records))
    else:
        pq.write_table(pa.Table.from_pylist(records), path)
    return path


@pytest.mark.parametrize("suffix, places", [
    (".json", ["(record 1)", "(record 2)"]),
    (".jsonl", [":1", ":2"]),
    (".csv", [":2", ":3"]),
    (".parquet", ["(row 1)", "(row 2)"]),
])
def test_every_format_gives_the_same_records(tmp_path, suffix, places):
    path = write(tmp_path / f"data{suffix}", RECORDS)
    found = list(read_records(path))
    assert [record for _where, record in found] == RECORDS
    assert [str(where) for where, _record in found] == [f"{path}{' ' if p.startswith('(') else ''}{p}"
                                                        for p in places]


def test_json_variants_an_object_of_lists_and_json_lines_saved_as_json(tmp_path):
    grouped = tmp_path / "grouped.json"
    grouped.write_text(json.dumps({"train": RECORDS[:1], "test": RECORDS[1:]}))
    assert [str(w) for w, _ in read_records(grouped)] == [f"{grouped} (train[0])", f"{grouped} (test[0])"]
    lines = tmp_path / "lines.json"
    lines.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    assert [r for _w, r in read_records(lines)] == RECORDS


@pytest.mark.parametrize("name, content, part", [
    ("latin.jsonl", b'{"prompt": "caf\xe9"}\n', ": not UTF-8 text"),
    ("latin.csv", b"prompt\ncaf\xe9\n", ": not UTF-8 text"),
    ("png.json", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", ": not UTF-8 text"),
    ("nul.jsonl", b'{"prompt": "fine"}\n{"prompt": "a\x00b"}\n', ":2: a NUL byte"),
    ("bad.jsonl", b'{"prompt": "ok"}\n\n{"prompt": \n', ":3: malformed JSON"),
    ("bad.json", b'[{"prompt": "ok"},\n {"prompt": }]', ":2: malformed JSON"),
    ("scalars.json", b'[{"prompt": "ok"}, 3]', "(record 2): expected a JSON object, found a number"),
    ("string.json", b'"text"', "expected a JSON list of records"),
    ("list.jsonl", b'{"prompt": "ok"}\n[1]\n', ":2: each line must be a JSON object, not a list"),
    ("bad.csv", b'prompt,model\n"open,m\nnext,m\n', ":2: malformed CSV"),
    ("wide.csv", b"prompt,model\np,m,extra\n", ":2: 3 fields, the header has 2"),
    ("empty.jsonl", b"", ": no records found (empty file)"),
    ("blank.json", b" \n\n", ": no records found (empty file)"),
    ("header.csv", b"prompt,model\n", ": no records found (the file holds no records)"),
    ("none.json", b"[]", ": no records found (the file holds no records)"),
    ("data.txt", b'{"prompt": "p"}\n', ": unknown file type '.txt'"),
    ("noext", b'{"prompt": "p"}\n', ": unknown file type '(no extension)'"),
    ("garbage.parquet", b"PAR1 this is not parquet at all", ": not a readable Parquet data file"),
    ("text.parquet", b'{"prompt": "p"}\n', ": not a readable Parquet data file"),
])
def test_bad_files_are_one_line_errors_naming_the_file(tmp_path, name, content, part):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(HivemindError) as raised:
        list(read_records(path))
    message = str(raised.value)
    assert "\n" not in message and message.startswith(str(path)), message
    assert part in message, message


def test_parquet_under_a_text_name_says_what_it_is(tmp_path):
    real = write(tmp_path / "data.parquet", RECORDS)
    renamed = tmp_path / "data.jsonl"
    renamed.write_bytes(real.read_bytes())
    with pytest.raises(HivemindError, match=r"data.jsonl: a Parquet file, not text; name it \.parquet"):
        list(read_records(renamed))


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(HivemindError, match=r"absent.jsonl: prompt file not found"):
        list(read_records(tmp_path / "absent.jsonl", "prompt file"))
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(HivemindError, match=r"dir.csv: is a folder; expected a data file"):
        list(read_records(tmp_path / "dir.csv"))
