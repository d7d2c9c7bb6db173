"""Prompt sets: JSONL or CSV files, or a Hugging Face dataset loaded through `datasets`.

Every prompt gets a stable id (the file's `id`, else a hash of its text) so that a run can be resumed and
imports from different files meet on the same prompt.
"""
from __future__ import annotations

import csv
import hashlib
import json
import random
from pathlib import Path

from hivemind import HivemindError
from hivemind.config import DatasetSource, RunConfig
from hivemind.store import Prompt

TEXT_FIELDS = ("prompt", "query", "instruction", "text")


def prompt_id(text: str) -> str:
    return "p" + hashlib.sha256(text.strip().encode("utf-8")).hexdigest()[:12]


def load_prompts(config: RunConfig) -> list[Prompt]:
    source = config.prompts
    if isinstance(source, DatasetSource):
        prompts = load_dataset_prompts(source)
        where = source.dataset
    else:
        prompts = load_prompt_file(source)
        where = source
    if not prompts:
        raise HivemindError(f"{where}: no prompts found")
    return subset(prompts, config.limit, config.seed)


def subset(prompts: list[Prompt], limit: int | None, seed: int) -> list[Prompt]:
    """A seeded random subset of `limit` prompts, kept in their original order."""
    if limit is None or limit >= len(prompts):
        return prompts
    keep = set(random.Random(seed).sample(range(len(prompts)), limit))
    return [p for i, p in enumerate(prompts) if i in keep]


def load_prompt_file(path: str | Path) -> list[Prompt]:
    path = Path(path)
    if path.suffix.lower() == ".csv":
        records = _csv_records(path, "prompt file")
    else:
        records = read_jsonl(path, "prompt file")
    prompts: list[Prompt] = []
    seen: dict[str, int] = {}
    for line, record in records:
        prompt = _to_prompt(record, f"{path}:{line}")
        if prompt.id in seen:
            raise HivemindError(f"{path}:{line}: prompt id {prompt.id!r} already used on line {seen[prompt.id]}")
        seen[prompt.id] = line
        prompts.append(prompt)
    return prompts


def _open(path: Path, what: str = "prompt file"):
    """The file opened as UTF-8 text (a BOM is skipped), or a one-line HivemindError saying why not."""
    if path.is_dir():
        raise HivemindError(f"{path}: is a folder; expected a {what}")
    if not path.is_file():
        raise HivemindError(f"{path}: {what} not found")
    try:
        return path.open(encoding="utf-8-sig", newline="")
    except OSError as err:
        raise HivemindError(f"{path}: cannot read the {what} ({err.strerror})") from None


def read_jsonl(path: Path, what: str = "JSONL file"):
    """Yield (line number, object) for each non-blank line; errors name the file and line."""
    path = Path(path)
    with _open(path, what) as handle:
        for number, raw in enumerate(_utf8_lines(handle, path), start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except json.JSONDecodeError as err:
                raise HivemindError(f"{path}:{number}: malformed JSON: {err.msg} (column {err.colno})") from None
            except RecursionError:
                raise HivemindError(f"{path}:{number}: malformed JSON: nested too deeply") from None
            if not isinstance(record, dict):
                raise HivemindError(f"{path}:{number}: each line must be a JSON object, not {_kind(record)}")
            yield number, record


def _kind(value) -> str:
    return {list: "a list", str: "a string", int: "a number", float: "a number", bool: "true/false",
            type(None): "null"}.get(type(value), type(value).__name__)


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


CSV_FIELD_LIMIT = 16 * 1024 * 1024  # characters; the csv module's default (128 KiB) is below a long prompt


class _LineCounter:
    """Lines handed to the csv reader so far: the line a record starts on is the count before reading it."""

    def __init__(self, lines):
        self.lines = lines
        self.count = 0

    def __iter__(self):
        for line in self.lines:
            self.count += 1
            yield line


def _csv_records(path: Path, what: str = "CSV file"):
    """Yield (line a record starts on, record). Strict: a quote left open (which would swallow the rows
    after it into one prompt), text after a closing quote, or more fields than the header is an error."""
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
                yield start, record
                start = lines.count + 1
        except csv.Error as err:
            raise HivemindError(f"{path}:{start}: "
                                f"malformed CSV ({err}); a quote opened on this line is never closed or is "
                                f"followed by text: close it, or double quotes inside a quoted field (\"\")") from None


def _to_prompt(record: dict, where: str) -> Prompt:
    text = next((record[f] for f in TEXT_FIELDS if isinstance(record.get(f), str)), None)
    if text is None or not text.strip():
        raise HivemindError(f"{where}: no prompt text (expected a non-empty field: {', '.join(TEXT_FIELDS)})")
    raw_id = record.get("id")
    pid = str(raw_id) if raw_id not in (None, "") else prompt_id(text)
    category = record.get("category")
    return Prompt(id=pid, text=text, category=str(category) if category not in (None, "") else None)


def load_dataset_prompts(source: DatasetSource) -> list[Prompt]:
    """Load a Hugging Face dataset. Offline, this fails with a message, not a traceback."""
    try:
        import datasets

        rows = datasets.load_dataset(source.dataset, source.subset, split=source.split)
    except Exception as err:  # datasets raises many types for "not reachable"; all mean the same here
        raise HivemindError(
            f"could not load dataset {source.dataset!r} (split {source.split!r}): {type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}. Loading from the Hugging Face hub needs network "
            f"access (HF_HUB_OFFLINE is set) or a local copy in the datasets cache; or point `prompts:` at a "
            f"JSONL/CSV file."
        ) from None
    for setting, name in (("field", source.field), ("id_field", source.id_field),
                          ("category_field", source.category_field)):
        if name is not None and name not in rows.column_names:
            raise HivemindError(f"dataset {source.dataset!r} has no {setting} {name!r}; "
                                f"fields: {', '.join(rows.column_names)}")
    prompts: dict[str, Prompt] = {}
    first_row: dict[str, int] = {}
    for index, row in enumerate(rows):
        text = dataset_text(row[source.field])
        if not isinstance(text, str) or not text.strip():
            continue
        pid = str(row[source.id_field]) if source.id_field else prompt_id(text)
        if pid in prompts:  # a repeated query would be asked (and paid for) twice under one key
            if prompts[pid].text != text:
                raise HivemindError(f"dataset {source.dataset!r}: rows {first_row[pid]} and {index} share the id "
                                    f"{pid!r} but not the text; choose another id_field")
            continue
        category = dataset_category(row[source.category_field]) if source.category_field else None
        prompts[pid] = Prompt(id=pid, text=text, category=category)
        first_row[pid] = index
    return list(prompts.values())


# The INFINITY-CHAT sets on the Hub. SOURCES: liweijiang/infinite-chats-eval's card (huggingface.co/datasets/
# liweijiang/infinite-chats-eval/blob/main/README.md): one string feature `query`, 100 rows in split `train`.
# liweijiang/infinite-chats-taxonomy (26.1k rows, card not in the stored material): the authors' code
# (liweijiang/artificial-hiveminds src/data_construction/main_analysis.py) gives each record `messages` (the
# conversation; the query is messages[0].content), `conversation_id`, `lm_judge_annotation` {original_query,
# revised_query} and `categories`, a list of {"category": name, "type": "predefined" or a new label}; third-party
# loaders read it the same way (`ex["messages"]`, `c["category"] for c in ex["categories"]`). So a config may say
# `field: messages, category_field: categories` for that set.

def dataset_text(value) -> str | None:
    """A prompt's text from a dataset cell: a string, or a chat (a list of {role, content}: its first user turn)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        for message in value:
            if isinstance(message, dict) and message.get("role") == "user" and isinstance(message.get("content"), str):
                return message["content"]
    return None


def dataset_category(value) -> str | None:
    """A category from a dataset cell: a string, or the taxonomy set's list of {category, type} labels, of which
    the first "predefined" one is kept (a prompt has one category here; the classifier listed them in order)."""
    if value is None or value == "":
        return None
    if isinstance(value, list):
        labels = [c for c in value if isinstance(c, dict) and c.get("category")]
        predefined = [c["category"] for c in labels if c.get("type") == "predefined"]
        names = predefined or [c["category"] for c in labels] or [v for v in value if isinstance(v, str) and v]
        return str(names[0]) if names else None
    return str(value)
