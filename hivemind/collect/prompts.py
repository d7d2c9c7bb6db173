"""Prompt sets: JSONL or CSV files, or a Hugging Face dataset loaded through `datasets`.

Every prompt gets a stable id (the file's `id`, else a hash of its text) so that a run can be resumed and
imports from different files meet on the same prompt.
"""
from __future__ import annotations

import hashlib
import random
from pathlib import Path

from hivemind.core.config import DatasetSource, RunConfig
from hivemind.core.errors import HivemindError
from hivemind.core.readers import Where, read_records
from hivemind.core.taxonomy import canonical
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
    """Prompts from a JSONL, JSON, CSV or Parquet file (hivemind.core.readers: the same one-line errors as every
    other data file). An id used twice is an error naming both lines."""
    path = Path(path)
    prompts: list[Prompt] = []
    seen: dict[str, Where] = {}
    for where, record in read_records(path, "prompt file", "prompts"):
        prompt = _to_prompt(record, str(where))
        if prompt.id in seen:
            raise HivemindError(f"{where}: prompt id {prompt.id!r} already used on {seen[prompt.id].unit} "
                                f"{seen[prompt.id].number}")
        seen[prompt.id] = where
        prompts.append(prompt)
    return prompts


def _to_prompt(record: dict, where: str) -> Prompt:
    text = next((record[f] for f in TEXT_FIELDS if isinstance(record.get(f), str)), None)
    if text is None or not text.strip():
        raise HivemindError(f"{where}: no prompt text (expected a non-empty field: {', '.join(TEXT_FIELDS)})")
    raw_id = record.get("id")
    pid = str(raw_id) if raw_id not in (None, "") else prompt_id(text)
    category = record.get("category")
    return Prompt(id=pid, text=text, category=taxonomy_form(str(category)) if category not in (None, "") else None)


def taxonomy_form(category: str) -> str:
    """A category that names a label of the paper's taxonomy (hivemind.core.taxonomy: the full label or a fine
    name alone, any case) in its "Top > Fine" form, so it counts at both levels; any other kept as given."""
    return canonical(category) or category


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
        return taxonomy_form(str(names[0])) if names else None
    return taxonomy_form(str(value))
