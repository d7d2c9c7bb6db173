"""results.json and the run summary: the file validates against its schema, its numbers equal the CSV
tables and the store, and `analyze` / `report` print every system with those numbers."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from fake_openai import FakeOpenAI  # noqa: E402

from hivemind import HivemindError  # noqa: E402
from hivemind import cli
from hivemind.report import summary
from hivemind.results import record
from hivemind.core.config_files import load_config  # noqa: E402
from hivemind.results.contract import RESULTS_JSON, RunResults  # noqa: E402
from hivemind.store import Prompt, Response, Store  # noqa: E402

KEY_VAR = "HIVEMIND_SUMMARY_TEST_KEY"
SECRET = "sk-planted-summary-9f8e7d6c5b4a"
PROMPTS = ["Write a haiku about rain", "Give me a startup idea", "Describe the sea in one sentence",
           "Name a colour for a sleepy cat"]
SYSTEMS = ["alpha", "beta-with-a-rather-long-system-name", "gamma"]


def write_run(tmp_path: Path, url: str, systems=SYSTEMS, name: str = "small") -> Path:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"q{i}", "prompt": t}) + "\n" for i, t in enumerate(PROMPTS)))
    lines = [f"name: {name}", f"prompts: {prompts}", "samples: 3", f"results_dir: {tmp_path / 'results'}",
             "systems:"]
    for s in systems:
        lines += [f"  - name: {s}", f"    model: openai/model-{s}", f"    api_base: {url}",
                  f"    api_key_env: {KEY_VAR}", "    params: {temperature: 1.0, top_p: 0.9}"]
    path = tmp_path / f"{name}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """A real run: answers from the fake OpenAI server over HTTP, embedded by the real default embedder."""
    tmp_path = tmp_path_factory.mktemp("summary")
    mp = pytest.MonkeyPatch()
    mp.setenv(KEY_VAR, SECRET)
    mp.chdir(tmp_path)
    with FakeOpenAI(expected_api_key=SECRET) as server:
        config_path = write_run(tmp_path, server.url)
        assert cli.main(["collect", str(config_path), "-q"]) == 0
    assert cli.main(["embed", str(config_path), "-q"]) == 0
    yield load_config(config_path)
    mp.undo()


def test_analyze_writes_results_json_equal_to_the_tables(small_run, capsys):
    config = small_run
    assert cli.main(["analyze", str(config.run_dir), "-q"]) == 0     # named by its folder
    out = capsys.readouterr().out
    path = config.run_dir / RESULTS_JSON
    data = RunResults.model_validate_json(path.read_text())          # the declared schema
    assert data.run == "small" and data.report is None and data.schema_version >= 1

    board = pd.read_csv(config.run_dir / "leaderboard.csv", dtype={"rank": str})
    buckets = pd.read_csv(config.run_dir / "intra_model_buckets.csv", index_col=0)
    assert [s.system for s in data.systems] == list(board["system"])
    assert data.primary_key == board.columns[0]
    with Store.open_readonly(config.store_path) as store:
        frame = store.responses_frame()
    for s, row in zip(data.systems, board.to_dict("records")):
        assert s.primary.value == row[data.primary_key]
        assert s.primary.ci_low == row[f"{data.primary_key}_ci_low"]
        assert s.primary.ci_high == row[f"{data.primary_key}_ci_high"]
        assert s.rank == str(row["rank"])
        assert s.intra_mean.value == row["intra_mean"]
        assert s.intra_mean.ci_low == buckets.loc[s.system, "mean_ci_low"]
        assert s.share_above_08.value == row["share_above_0.8"]
        assert s.share_above_08.ci_high == buckets.loc[s.system, "above_0.8_ci_high"]
        assert s.inter_mean_others.value == row["inter_mean_others"]
        mine = frame[frame["system"] == s.system]
        assert s.answers == int(mine["text"].notna().sum()) == 12
        assert s.errors == 0 and s.truncated == 0 and s.error_share == 0.0
        for key, value in row.items():                                 # every leaderboard.csv cell
            stored = s.metrics[key]
            assert (stored is None and pd.isna(value)) or stored == value or str(stored) == str(value), key

    # The terminal: every system, its primary key as printed from results.json, and the next command.
    for s in data.systems:
        line = next(line for line in out.splitlines() if line.split()[:1] == [s.rank] and s.system[:4] in line
                    and s.system[-6:] in line)                     # long names lose their middle
        assert f"{s.primary.value:.3f}" in line and str(s.answers) in line
    assert f"next:    hivemind report {config.name}" in out
    assert str(path.resolve()) in out


def test_report_records_a_relative_path_and_prints_the_link(small_run, capsys):
    config = small_run
    assert cli.main(["report", str(config.run_dir) + "/", "-q"]) == 0      # a folder path, trailing slash
    out = capsys.readouterr().out
    data = record.read_results(config.run_dir)
    assert data.report == "report.html"                      # relative: snapshots never name this machine
    report = (config.run_dir / "report.html").resolve()
    assert f"report:  {report}" in out and report.as_uri() in out
    assert "hivemind snapshot publish small" in out
    for s in data.systems:
        assert s.system[:4] in out and s.system[-6:] in out


def test_the_report_reads_outcomes_from_results_json(small_run):
    """The report's ranking takes truncated and failed shares and cost from results.json, not the store."""
    config = small_run
    assert cli.main(["analyze", config.name, "-q"]) == 0
    path = config.run_dir / RESULTS_JSON
    data = RunResults.model_validate_json(path.read_text())
    planted = data.model_copy(update={"systems": [
        s.model_copy(update={"truncated_share": 0.375, "error_share": 0.125}) if s.system == "gamma" else s
        for s in data.systems]})
    path.write_text(planted.model_dump_json())
    assert cli.main(["report", config.name, "-q"]) == 0
    rows = [line for line in (config.run_dir / "report.md").read_text().splitlines() if "| gamma |" in line]
    assert rows and "37.5%" in rows[0] and "12.5%" in rows[0]
    others = [line for line in (config.run_dir / "report.md").read_text().splitlines() if "| alpha |" in line]
    assert others and "37.5%" not in others[0]


@pytest.mark.parametrize("width", [100, 120])
def test_the_table_fits_the_terminal_at_25_systems(small_run, width):
    """25 systems with long names: every line of the summary fits; names are cut, never wrapped."""
    data = record.read_results(small_run.run_dir) or record.build_results(small_run)
    template = data.systems[0]
    data.systems = [template.model_copy(update={"system": f"provider/model-family-{i:02d}-instruct-top-p",
                                                "rank": str(i + 1), "cost_usd": 12.3456})
                    for i in range(25)]
    text = summary.render(data, small_run.run_dir, width=width)
    table = [line for line in text.splitlines() if line and line.split()[0].isdigit()]
    assert len(table) == 25
    assert all(len(line) <= width for line in text.splitlines() if not line.lstrip().startswith(("file:", "/",
                                                                                                "results:", "report:")))
    assert all(f"{template.primary.value:.3f}" in line for line in table)
    assert "$12.35" in table[0]
    ci = f"({template.primary.ci_low:.3f}-".replace("0.", ".", 1)
    assert all(ci in line for line in table)          # the primary key keeps its CI at 100 columns


REAL_NAMES = ["openai/gpt-4o-2024-11-20", "openai/gpt-4o-mini-2024-07-18", "anthropic/claude-3-5-sonnet-v2@20241022",
              "anthropic/claude-3-opus@20240229", "meta-llama/Llama-3.2-1B-Instruct", "meta-llama/Llama-3.2-3B-Instruct",
              "gemini/gemini-2.0-flash-lite-preview-02-05", "gemini/gemini-2.0-flash", "cohere/command-r-plus-08-2024",
              "cohere/command-r-08-2024", "google/gemma-3-27b-it", "google/gemma-2-27b-it"]


def test_long_names_keep_what_tells_them_apart(small_run):
    """Not a terminal (100 columns), 12 real model names: each row keeps the part that tells it from the others
    (gpt-4o vs gpt-4o-mini, sonnet vs opus, 1B vs 3B), none is cut to the same text as another, and every line fits."""
    data = record.read_results(small_run.run_dir) or record.build_results(small_run)
    template = data.systems[0]
    data.systems = [template.model_copy(update={"system": name, "rank": str(i + 1)}) for i, name in enumerate(REAL_NAMES)]
    text = summary.render(data, small_run.run_dir, width=100)
    rows = [line.split() for line in text.splitlines() if line and line.split()[0].isdigit()]
    shown = [row[1] for row in rows]
    assert len(shown) == len(set(shown)) == len(REAL_NAMES), shown
    assert shown[:2] == ["gpt-4o", "gpt-4o-mini"]
    assert "sonnet" in shown[2] and "opus" in shown[3] and "1B" in shown[4] and "3B" in shown[5], shown
    assert "command-r-plus" in shown and "command-r" in shown and "lite" in shown[6], shown
    assert all(len(line) <= 100 for line in text.splitlines() if line[:1].isdigit() or line.startswith("rank"))


def test_abbreviated_names_are_never_identical():
    """Every width down to 4: the real NoveltyBench model names, and names differing only in their middle."""
    data = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "noveltybench_dev"
    real = sorted(json.loads(path.open().readline())["model"] for path in data.glob("*.jsonl")) or REAL_NAMES
    middles = [f"provider/family-{size}b-instruct-2024-01-0{i % 9 + 1}" for i, size in enumerate((1, 3, 8, 70, 405))]
    for names in (real, REAL_NAMES, middles, ["same-prefix-a", "same-prefix-b"]):
        for width in range(4, 41):
            short = summary.abbreviate(names, width)
            assert len(set(short)) == len(names), (width, short)
            assert all(n == s for n, s in zip(names, short)) or any(len(s) < len(n) for n, s in zip(names, short))
    assert summary.abbreviate(["gpt-4o", "o1"], 16) == ["gpt-4o", "o1"]     # names that fit stay as they are


def test_outcome_counts_come_from_the_store(tmp_path):
    """answers, errors, truncated answers and cost per system, read from real SQLite rows."""
    with Store(tmp_path / "store.sqlite") as store:
        store.add_prompts([Prompt("p", "a prompt")])
        store.add_system("s1", "one", "m", None, {})
        store.add_system("s2", "two", "m", None, {})
        store.add_responses([
            Response("s1", "p", 0, text="a", finish_reason="stop", cost=0.25),
            Response("s1", "p", 1, text="b", finish_reason="length", cost=0.5),
            Response("s1", "p", 2, text=None, error="400 bad request"),
            Response("s2", "p", 0, text="c", finish_reason="length"),
        ])
        outcomes = store.system_outcomes(["s1", "s2", "s3"])
    assert outcomes == {"s1": (2, 1, 1, 0.75), "s2": (1, 0, 1, 0.0), "s3": (0, 0, 0, 0.0)}


def test_a_damaged_results_file_is_a_clear_error(tmp_path):
    (tmp_path / RESULTS_JSON).write_text(json.dumps({"schema_version": 1}))
    with pytest.raises(HivemindError, match="not a valid results file.*hivemind analyze"):
        record.read_results(tmp_path)
    assert record.read_results(tmp_path / "elsewhere") is None


def test_snapshot_gets_a_default_name_and_carries_results_json(small_run, capsys):
    import datetime

    config = small_run
    assert cli.main(["snapshot", "create", config.name, "--results", config.results_dir, "-q"]) == 0
    today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    folder = Path(config.results_dir) / "snapshots" / f"small-{today}"
    assert f"snapshot written: {folder}" in capsys.readouterr().out
    copied = json.loads((folder / RESULTS_JSON).read_text())
    assert copied == json.loads((config.run_dir / RESULTS_JSON).read_text())
    assert copied["report"] == "report.html"
    assert str(Path(config.results_dir).resolve()) not in (folder / RESULTS_JSON).read_text()
    assert cli.main(["snapshot", "verify", f"small-{today}", "--results", config.results_dir]) == 0


def test_leaderboard_and_list_read_the_run(small_run, capsys, tmp_path):
    import shutil

    config = small_run
    results_dir = Path(config.results_dir)
    assert cli.main(["list", "--results", str(results_dir)]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("small "))
    assert row.split()[1:5] == ["reported", "3", "36", "0"]

    # results.json is what the leaderboard reads: a value changed there shows up in leaderboard.csv
    copy = tmp_path / "results"
    shutil.copytree(config.run_dir, copy / "small", ignore=shutil.ignore_patterns("snapshots"))
    data = record.read_results(copy / "small")
    data.systems[0].metrics[data.primary_key] = 0.999
    (copy / "small" / RESULTS_JSON).write_text(data.model_dump_json())
    assert cli.main(["leaderboard", "show", "--results", str(copy)]) == 0
    board = pd.read_csv(copy / "leaderboard.csv")
    assert board.loc[board["system"] == data.systems[0].system, "primary"].item() == 0.999
    assert "Older runs" not in capsys.readouterr().out

    # an older run without results.json: read from leaderboard.csv, with a note saying so
    (copy / "small" / RESULTS_JSON).unlink()
    assert cli.main(["leaderboard", "show", "--results", str(copy)]) == 0
    out = capsys.readouterr().out
    assert "## Older runs" in out and "read from leaderboard.csv" in out
    board = pd.read_csv(copy / "leaderboard.csv")
    assert board.loc[board["system"] == data.systems[0].system, "primary"].item() == data.systems[0].primary.value


def test_a_short_shared_end_is_part_of_the_names_not_a_family():
    """'-p' ends top-p and min-p alike: dropping it would make the decoding names unreadable."""
    names = ["smollm2-top-p", "smollm2-min-p", "gemma3-270m-base-top-p"]
    abbreviate = summary.abbreviate
    assert abbreviate(names, 16)[:2] == ["smollm2-top-p", "smollm2-min-p"]
    assert abbreviate(names, 16)[2].endswith("top-p") and len(abbreviate(names, 16)[2]) == 16
