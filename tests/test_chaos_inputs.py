"""Chaos: hostile and careless inputs give one clear line naming the file and line, never a traceback or
silent data loss. Prompt files (CSV, JSONL), configs (YAML), names, import files (JSON, JSONL, CSV) and
snapshot imports (verified against the manifest unless --no-verify)."""
from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from hivemind import HivemindError
from hivemind.core.config import PACKAGED_CONFIGS
from hivemind.core.config_files import load_config
from hivemind.results.record import PROVENANCE_FILE
from hivemind.runs.imports import import_files
from hivemind.collect.prompts import load_prompt_file
from hivemind.store import Store

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True", "PYTHONPATH": str(ROOT)}


def cli(*args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hivemind.cli", *map(str, args)], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=300)


def one_line_error(raised, *parts: str) -> str:
    message = str(raised.value)
    assert "\n" not in message, message
    for part in parts:
        assert part in message, (part, message)
    return message


# --- prompt files --------------------------------------------------------------------------------------

def test_an_unterminated_csv_quote_is_an_error_not_merged_rows(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text('id,prompt\na,first\nb,"second, never closed\nc,third\nd,fourth\n', encoding="utf-8")
    with pytest.raises(HivemindError) as raised:
        load_prompt_file(path)
    one_line_error(raised, f"{path}:3:", "malformed CSV", "never closed")


@pytest.mark.parametrize("body, line, part", [
    ('id,prompt\na,"quoted" and more\n', 2, "malformed CSV"),        # text after a closing quote
    ('id,prompt\na,one\nb,two,three\n', 3, "3 fields, the header has 2"),  # a shifted row
])
def test_malformed_csv_rows_name_the_line(tmp_path, body, line, part):
    path = tmp_path / "p.csv"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(HivemindError) as raised:
        load_prompt_file(path)
    one_line_error(raised, f"{path}:{line}:", part)


def test_quoted_multiline_csv_prompts_still_load_and_keep_their_line(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text('id,prompt\na,"two\nlines"\nb,plain\na,again\n', encoding="utf-8")
    with pytest.raises(HivemindError, match=rf"{re.escape(str(path))}:5: prompt id 'a' already used on line 2"):
        load_prompt_file(path)
    path.write_text('id,prompt\na,"two\nlines"\nb,plain\n', encoding="utf-8")
    assert [p.text for p in load_prompt_file(path)] == ["two\nlines", "plain"]


@pytest.mark.parametrize("name", ["p.csv", "p.jsonl"])
def test_a_bom_is_ignored(tmp_path, name):
    path = tmp_path / name
    body = "prompt\nhello there\n" if name.endswith(".csv") else '{"prompt": "hello there"}\n'
    path.write_bytes(b"\xef\xbb\xbf" + body.encode())
    assert [p.text for p in load_prompt_file(path)] == ["hello there"]


def test_huge_lines_and_fields_load(tmp_path):
    long = "word " * 200_000                                 # 1 MB: above the csv module's 128 KiB field limit
    csv_path = tmp_path / "p.csv"
    csv_path.write_text(f'prompt\n"{long}"\n', encoding="utf-8")
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text(json.dumps({"prompt": long}) + "\n", encoding="utf-8")
    assert load_prompt_file(csv_path)[0].text == long and load_prompt_file(jsonl)[0].text == long


@pytest.mark.parametrize("name", ["p.csv", "p.jsonl"])
@pytest.mark.parametrize("content, part", [
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not UTF-8 text"),
    (b'{"prompt": "fine"}\n{"prompt": "a\x00b"}\n', ":2: a NUL byte"),
])
def test_binary_files_are_named(tmp_path, name, content, part):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(HivemindError) as raised:
        load_prompt_file(path)
    one_line_error(raised, str(path), part)


def test_a_folder_where_a_file_is_expected(tmp_path):
    folder = tmp_path / "prompts.jsonl"
    folder.mkdir()
    with pytest.raises(HivemindError) as raised:
        load_prompt_file(folder)
    one_line_error(raised, f"{folder}: is a folder")
    config = tmp_path / "run.yaml"
    config.mkdir()
    with pytest.raises(HivemindError, match="is a folder; expected a config file"):
        load_config(config)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_file_says_so(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "x"}\n')
    path.chmod(0)
    with pytest.raises(HivemindError, match="cannot read"):
        load_prompt_file(path)


# --- YAML configs --------------------------------------------------------------------------------------

CONFIG_HEAD = "name: yaml-chaos\nprompts: p.jsonl\nsamples: 2\n"
SYSTEMS = "systems:\n  - {name: s, model: openai/s, api_base: 'http://127.0.0.1:9/v1'}\n"
BOMB = CONFIG_HEAD + SYSTEMS + "".join(
    [f"x0: &a0 [{', '.join(['lol'] * 9)}]\n"]
    + [f"x{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 10)])


@pytest.mark.parametrize("text, line, part", [
    (BOMB, 11, "expands to more than 100,000 values"),  # billion laughs: x5 (line 11) alone expands to 9^6
    (CONFIG_HEAD + SYSTEMS + "extra: &loop [1, *loop]\n", 6, "inside its own anchor"),
    (CONFIG_HEAD + "samples: 3\n" + SYSTEMS, 4, "key 'samples' appears twice (first on line 3)"),
    (CONFIG_HEAD + SYSTEMS + "limit: !!python/object/apply:os.system ['true']\n", 6, "constructor"),
    (CONFIG_HEAD + SYSTEMS + "limit: !Ref other\n", 6, "constructor"),
    (CONFIG_HEAD + SYSTEMS + "limit: !!int 'twelve'\n", 6, "cannot read this int value"),
    (CONFIG_HEAD + SYSTEMS + "seed: !!timestamp 'not a date'\n", 6, "cannot read this timestamp value"),
    (CONFIG_HEAD + SYSTEMS + "limit: " + "[" * 5000 + "]" * 5000 + "\n", None, "nested too deeply"),
])
def test_hostile_yaml_is_a_one_line_error_naming_the_line(tmp_path, text, line, part):
    path = tmp_path / "run.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(HivemindError) as raised:
        load_config(path)
    message = one_line_error(raised, str(path), "malformed YAML", part)
    if line is not None:
        assert message.startswith(f"{path}:{line}: "), message


def test_a_config_with_nul_bytes_or_bom(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_bytes(CONFIG_HEAD.encode() + b"seed: 1\x00\n" + SYSTEMS.encode())
    with pytest.raises(HivemindError, match=rf"{re.escape(str(path))}:4: a NUL byte"):
        load_config(path)
    path.write_bytes(b"\xef\xbb\xbf" + (CONFIG_HEAD + SYSTEMS).encode())
    assert load_config(path).name == "yaml-chaos"


def test_small_anchors_still_work_as_in_the_paper_config():
    paper = load_config(PACKAGED_CONFIGS / "paper.yaml")
    shared = [s.params for s in paper.systems if s.params.get("top_p") == 0.9]
    assert len(shared) >= 10                           # one anchor, many aliases: fine under the cap


# --- names ---------------------------------------------------------------------------------------------

BAD_NAMES = ["run\n", "run\r", "a\x1bb", "tab\tname", "", " lead", "../up", "a/b", "snapshots", "x" * 101,
             "caf\u00e9", "rlo\u202ename"]


@pytest.mark.parametrize("name", BAD_NAMES, ids=[repr(n)[:20] for n in BAD_NAMES])
def test_bad_run_names_are_refused_everywhere(tmp_path, name):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"name": name, "prompts": "p.jsonl", "samples": 1, "systems": [
        {"name": "s", "model": "openai/s", "api_base": "http://127.0.0.1:9/v1"}]}), encoding="utf-8")
    with pytest.raises(HivemindError, match=r"\bname: "):
        load_config(path)
    good = tmp_path / "g.jsonl"
    good.write_text(json.dumps({"prompt": "p", "model": "m", "response": "r"}) + "\n")
    with pytest.raises(HivemindError, match="run name"):
        import_files([good], name, results_dir=tmp_path / "results")
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("name", ["sys\n", "a\x00b", " padded ", "bell\x07"])
def test_bad_system_names_are_refused(tmp_path, name):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"name": "ok", "prompts": "p.jsonl", "samples": 1, "systems": [
        {"name": name, "model": "openai/s", "api_base": "http://127.0.0.1:9/v1"}]}), encoding="utf-8")
    with pytest.raises(HivemindError, match=r"systems\.0\.name: "):
        load_config(path)


def test_a_snapshot_name_with_a_trailing_newline_is_refused(tmp_path):
    from hivemind.runs import snapshot

    config = load_config(PACKAGED_CONFIGS / "demo.yaml")
    with pytest.raises(HivemindError, match="snapshot name 'snap\\\\n'"):
        snapshot.publish(config, "snap\n", results_dir=tmp_path)


# --- import files --------------------------------------------------------------------------------------

IMPORT_CASES = [
    ("empty.json", b"", "empty file"),
    ("ws.json", b"  \n", "empty file"),
    ("obj.json", b'{"instruction": "i", "output": "o", "generator": "g"}', "found a JSON object"),
    ("bad.json", b'[{"instruction": "i",\n "output": }]', ":2: malformed JSON"),
    ("strs.json", b'["just", "strings"]', "(record 1): expected a JSON object"),
    ("num.json", b'[{"instruction": "i", "output": 5, "generator": "g"}]', "field 'output' must be a string"),
    ("gen.json", b'[{"instruction": "i", "output": "o", "generator": {"n": 1}}]', "field 'generator' must be a string"),
    ("badname.json", b'[{"instruction": "i", "output": "o", "generator": "a\\nb"}]', "not a usable system name"),
    ("noprompt.json", b'[{"instruction": "", "output": "o", "generator": "g"}]', "non-empty string"),
    ("deep.json", b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ("latin.json", b'[{"instruction": "caf\xe9"}]', "not UTF-8 text"),
    ("nul.json", b'[{"instruction": "a\x00"}]', "a NUL byte"),
    ("empty.jsonl", b"", "no generations found"),
    ("bad.jsonl", b'{"prompt": "p", "model": "m", "response": "r"}\nnot json\n', ":2: malformed JSON"),
    ("list.jsonl", b'[1, 2]\n', ":1: each line must be a JSON object, not a list"),
    ("types.jsonl", b'{"prompt": 3, "model": "m", "response": "r"}\n', ":1: field 'prompt' must be a non-empty"),
    ("emptylist.jsonl", b'{"prompt": "p", "model": "m", "response": []}\n', "non-empty list of strings"),
    ("bad.csv", b'prompt,model,response\np,m,"never closed\nq,m,r\n', ":2: malformed CSV"),
    ("short.csv", b"prompt,model\np,m\n", ":2: missing field(s) response"),
    ("empty.csv", b"", "no generations found"),
]


@pytest.mark.parametrize("name, content, part", IMPORT_CASES, ids=[c[0] for c in IMPORT_CASES])
def test_bad_import_files_are_one_line_errors_and_write_nothing(tmp_path, name, content, part):
    path = tmp_path / name
    path.write_bytes(content)
    results = tmp_path / "results"
    with pytest.raises(HivemindError) as raised:
        import_files([path], "imp", results_dir=results)
    one_line_error(raised, part)
    assert not (results / "imp").exists()


def test_a_csv_import_file_works(tmp_path):
    path = tmp_path / "answers.csv"
    path.write_text('prompt,model,response\n"Name a colour.",m1,Blue\n"Name a colour.",m2,"Red, or blue"\n')
    config = import_files([path], "from-csv", results_dir=tmp_path / "results")
    assert [s.name for s in config.systems] == ["m1", "m2"]
    with Store(config.store_path, create=False) as store:
        assert sorted(store.responses_frame().text) == ["Blue", "Red, or blue"]


def test_bad_import_through_the_cli_prints_no_traceback(tmp_path):
    path = tmp_path / "outputs.json"
    path.write_text('{"not": "a list"}')
    proc = cli("import", path, "--name", "x", "--results", tmp_path / "results", cwd=tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"error: {path}: expected a JSON list") and proc.stderr.count("\n") == 1


# --- verified snapshot imports ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def published(tmp_path_factory) -> Path:
    """A real snapshot: imported generations, embedded with the bundled model, analysed, published."""
    from hivemind.analyze import stage as analyze
    from hivemind.embed import stage as embed
    from hivemind.runs import snapshot

    folder = tmp_path_factory.mktemp("verified")
    source = folder / "generations.jsonl"
    rows = [{"prompt": p, "model": m, "generations": [f"{m} says {p} {i}" for i in range(2)]}
            for p in ("Name a colour.", "Name a fruit.", "Name a tree.") for m in ("m1", "m2")]
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = import_files([source], "base", results_dir=folder / "results")
    embed.embed_run(config, progress=False)
    analyze.analyze_run(config, progress=False)
    return snapshot.publish(config, "snap")


def copy_snapshot(published: Path, to: Path) -> Path:
    shutil.copytree(published, to)
    for path in [to, *to.rglob("*")]:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)
    return to


def forge_an_answer(folder: Path) -> None:
    path = folder / "responses.parquet"
    frame = pd.read_parquet(path)
    frame.loc[0, "text"] = "a forged answer"
    frame.to_parquet(path, index=False)


def test_a_clean_snapshot_imports_verified(published, tmp_path):
    config = import_files([published], "clean", results_dir=tmp_path)
    provenance = json.loads((config.run_dir / PROVENANCE_FILE).read_text())
    assert provenance["verified"] is True and provenance["problems"] == []


def test_a_tampered_snapshot_is_refused_naming_the_file(published, tmp_path):
    folder = copy_snapshot(published, tmp_path / "tampered")
    forge_an_answer(folder)
    with pytest.raises(HivemindError) as raised:
        import_files([folder], "forged", results_dir=tmp_path / "results")
    one_line_error(raised, "changed: responses.parquet", "--no-verify")
    assert not (tmp_path / "results" / "forged").exists()

    (folder / "manifest.json").unlink()                 # no manifest at all: cannot be verified either
    with pytest.raises(HivemindError, match="manifest.json: missing.*--no-verify"):
        import_files([folder], "forged", results_dir=tmp_path / "results")


def test_no_verify_imports_loudly_and_records_it(published, tmp_path):
    folder = copy_snapshot(published, tmp_path / "tampered")
    forge_an_answer(folder)
    results = tmp_path / "results"
    refused = cli("import", folder, "--name", "forged", "--results", results, cwd=tmp_path)
    assert refused.returncode == 1 and "changed: responses.parquet" in refused.stderr
    assert "Traceback" not in refused.stderr and not (results / "forged").exists()

    forced = cli("import", folder, "--name", "forged", "--results", results, "--no-verify", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert "WARNING" in forced.stderr and "WITHOUT verification" in forced.stderr
    provenance = json.loads((results / "forged" / PROVENANCE_FILE).read_text())
    assert provenance["verified"] is False and provenance["problems"] == ["changed: responses.parquet"]
    with Store(results / "forged" / "store.sqlite", create=False) as store:
        assert "a forged answer" in set(store.responses_frame().text)   # imported as asked, and marked


def test_a_corrupt_snapshot_parquet_is_a_clear_error_even_unverified(published, tmp_path):
    folder = copy_snapshot(published, tmp_path / "corrupt")
    (folder / "responses.parquet").write_bytes(b"PAR1 this is not parquet PAR1")
    with pytest.raises(HivemindError) as raised:
        import_files([folder], "corrupt", results_dir=tmp_path / "results", verify=False)
    one_line_error(raised, "responses.parquet: not a readable Parquet file")
    assert not (tmp_path / "results" / "corrupt").exists()


def test_an_undiagnosed_file_system_error_is_one_line_not_a_traceback(tmp_path, capsys):
    """A results_dir below a regular file makes the first write fail with NotADirectoryError somewhere no stage
    wrapped it: the CLI still prints one line naming the path."""
    from hivemind import cli

    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder", encoding="utf-8")
    config = tmp_path / "c.yaml"
    config.write_text(f"name: x\nprompts: {tmp_path / 'p.jsonl'}\nresults_dir: {blocker / 'deeper'}\n"
                      "systems: [{name: a, model: openai/a, api_base: 'http://127.0.0.1:9/v1'}]\n", encoding="utf-8")
    (tmp_path / "p.jsonl").write_text('{"prompt": "hi"}\n', encoding="utf-8")
    assert cli.main(["collect", str(config), "-q"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err and str(blocker) in err
