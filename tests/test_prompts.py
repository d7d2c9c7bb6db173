"""Prompt sets: JSONL and CSV files, ids and categories, seeded subsets, real prompt files, datasets offline."""
from __future__ import annotations

import json
import re
import os
from pathlib import Path

import pytest
import yaml

from hivemind import HivemindError
from hivemind.cli import main as cli_main
from hivemind.core.config import DatasetSource, RunConfig, System
from hivemind.collect.prompts import load_dataset_prompts, load_prompt_file, load_prompts, prompt_id, subset
from hivemind.store import Prompt

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
WILDCHAT = DATA / "wildchat_prompts" / "wildchat-1k.jsonl"


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records), encoding="utf-8")
    return path


def config_for(prompts, limit=None, seed=0) -> RunConfig:
    return RunConfig(name="t", prompts=prompts, limit=limit, seed=seed,
                     systems=[System(name="s", model="openai/s", api_base="http://127.0.0.1:9/v1")])


# --- files ----------------------------------------------------------------------------------------

def test_jsonl_ids_categories_text_fields_and_blank_lines(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [
        {"id": "a", "category": "poems", "prompt": "Write a poem."},
        "",
        {"query": "  Name a colour.  ", "category": ""},    # no id: a hash of the stripped text
        {"id": 7, "instruction": "Give advice.", "category": "advice"},
        {"id": "", "text": "Tell a joke."},
    ])

    prompts = load_prompt_file(path)

    assert [p.id for p in prompts] == ["a", prompt_id("Name a colour."), "7", prompt_id("Tell a joke.")]
    assert [p.text for p in prompts] == ["Write a poem.", "  Name a colour.  ", "Give advice.", "Tell a joke."]
    assert [p.category for p in prompts] == ["poems", None, "advice", None]
    assert prompt_id("Name a colour.") == prompt_id("  Name a colour.\n") and prompt_id("x") != prompt_id("y")


def test_csv_ids_and_categories(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text('id,category,prompt\nq1,poems,"Write a poem, short."\n,advice,Give advice.\n', encoding="utf-8")

    prompts = load_prompt_file(path)

    assert prompts == [Prompt("q1", "Write a poem, short.", "poems"), Prompt(prompt_id("Give advice."), "Give advice.",
                                                                             "advice")]


def test_duplicate_ids_name_both_lines(tmp_path):
    jsonl = write_jsonl(tmp_path / "p.jsonl", [{"id": "a", "prompt": "one"}, {"id": "b", "prompt": "two"}, "",
                                               {"id": "a", "prompt": "three"}])
    with pytest.raises(HivemindError, match=rf"{re.escape(str(jsonl))}:4: prompt id 'a' already used on line 1"):
        load_prompt_file(jsonl)

    same_text = write_jsonl(tmp_path / "q.jsonl", [{"prompt": "same"}, {"prompt": "same"}])
    with pytest.raises(HivemindError, match=rf"{re.escape(str(same_text))}:2: .* already used on line 1"):
        load_prompt_file(same_text)

    csv_path = tmp_path / "p.csv"
    csv_path.write_text("id,prompt\nx,one\ny,two\nx,three\n", encoding="utf-8")
    with pytest.raises(HivemindError, match=rf"{re.escape(str(csv_path))}:4: prompt id 'x' already used on line 2"):
        load_prompt_file(csv_path)


@pytest.mark.parametrize("line, message", [
    ('{"id": "b", "prompt": "unfinished', "malformed JSON"),
    ('["a", "list"]', "each line must be a JSON object"),
    ('{"id": "b", "answer": "no prompt field"}', "no prompt text"),
    ('{"id": "b", "prompt": "   "}', "no prompt text"),
])
def test_bad_lines_name_file_and_line(tmp_path, line, message):
    path = write_jsonl(tmp_path / "p.jsonl", [{"id": "a", "prompt": "fine"}, line])
    with pytest.raises(HivemindError, match=rf"{re.escape(str(path))}:2: {message}"):
        load_prompt_file(path)


@pytest.mark.parametrize("name", ["p.jsonl", "p.csv"])
def test_a_file_that_is_not_utf8_is_an_error(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b'{"prompt": "caf\xe9"}\n' if name.endswith(".jsonl") else b"prompt\ncaf\xe9\n")
    with pytest.raises(HivemindError, match=rf"{re.escape(str(path))}: not UTF-8 text"):
        load_prompt_file(path)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(HivemindError, match="prompt file not found"):
        load_prompt_file(tmp_path / "absent.jsonl")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(HivemindError, match=rf"{re.escape(str(empty))}: no prompts found"):
        load_prompts(config_for(str(empty)))


# --- limit and seeded subset ----------------------------------------------------------------------

def test_limit_takes_a_seeded_subset_in_file_order(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{"id": f"p{i:02d}", "prompt": f"prompt {i}"} for i in range(40)])
    order = [f"p{i:02d}" for i in range(40)]

    first = [p.id for p in load_prompts(config_for(str(path), limit=10, seed=3))]
    again = [p.id for p in load_prompts(config_for(str(path), limit=10, seed=3))]
    other = [p.id for p in load_prompts(config_for(str(path), limit=10, seed=4))]

    assert first == again and len(first) == len(set(first)) == 10
    assert first == sorted(first, key=order.index)        # file order kept
    assert other != first and other == sorted(other, key=order.index)
    assert first != order[:10]                            # a random subset, not the head of the file
    assert [p.id for p in load_prompts(config_for(str(path), limit=40))] == order
    assert [p.id for p in load_prompts(config_for(str(path)))] == order
    prompts = load_prompt_file(path)
    assert subset(prompts, 500, 0) == prompts


# --- real prompt files ----------------------------------------------------------------------------

@pytest.mark.skipif(not WILDCHAT.is_file(), reason=f"shared WildChat prompts not found at {WILDCHAT}")
def test_the_wildchat_prompts_load_whole_and_with_a_limit():
    everything = load_prompt_file(WILDCHAT)
    assert len(everything) == 1000 and len({p.id for p in everything}) == 1000
    assert all(p.id.startswith("WildChat-") and p.text.strip() for p in everything)

    some = load_prompts(config_for(str(WILDCHAT), limit=50, seed=0))
    assert len(some) == 50
    positions = {p.id: i for i, p in enumerate(everything)}
    assert [positions[p.id] for p in some] == sorted(positions[p.id] for p in some)


def test_the_bundled_demo_prompts_span_many_categories():
    prompts = load_prompt_file(ROOT / "prompts" / "demo.jsonl")
    categories = {p.category for p in prompts}
    assert len(prompts) >= 24 and len({p.id for p in prompts}) == len(prompts)
    assert None not in categories and len(categories) >= 8


# --- Hugging Face datasets, offline -----------------------------------------------------------------

def test_a_dataset_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HivemindError, match="'hivemind-test/no-such-prompts'.*JSONL/CSV"):
        load_dataset_prompts(DatasetSource(dataset="hivemind-test/no-such-prompts"))


def test_a_dataset_offline_through_the_cli_prints_an_error_and_no_traceback(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({
        "name": "hf", "prompts": {"dataset": "hivemind-test/no-such-prompts", "field": "query"},
        "results_dir": str(tmp_path / "results"),
        "systems": [{"name": "s", "model": "openai/s", "api_base": "http://127.0.0.1:9/v1"}],
    }), encoding="utf-8")

    assert cli_main(["collect", str(config), "-q"]) == 1

    err = capsys.readouterr().err
    assert err.startswith("error: could not load dataset 'hivemind-test/no-such-prompts'")
    assert "Traceback" not in err
    assert not (tmp_path / "results").exists()
    assert os.environ["HF_HUB_OFFLINE"] == "1"
