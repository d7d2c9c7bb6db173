"""A CLI that explains itself: help everywhere, one resolver for RUN, `hivemind list`, nested actions,
did-you-mean for misspelt settings, and -q hiding every progress bar."""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from fake_openai import FakeOpenAI  # noqa: E402

from hivemind import HivemindError  # noqa: E402
from hivemind import cli
from hivemind.core.config_files import resolve_run  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
KEY_VAR = "HIVEMIND_CLI_TEST_KEY"
SECRET = "sk-planted-cli-test-1a2b3c4d5e6f"


def hivemind(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    full = dict(os.environ, HF_HUB_OFFLINE="1", LITELLM_LOCAL_MODEL_COST_MAP="True",
                PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run([sys.executable, "-m", "hivemind.cli", *args], cwd=cwd, env=full,
                          capture_output=True, text=True, timeout=600)


def write_config(tmp_path: Path, url: str, name: str = "clirun", extra: str = "") -> Path:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"q{i}", "prompt": t}) + "\n"
                               for i, t in enumerate(["Write a haiku about rain", "Name a boat"])))
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"name: {name}\nprompts: {prompts}\nsamples: 2\nresults_dir: {tmp_path / 'results'}\n"
                    f"systems:\n" + "".join(
                        f"  - name: {s}\n    model: openai/model-{s}\n    api_base: {url}\n"
                        f"    api_key_env: {KEY_VAR}\n    params: {{temperature: 1.0}}\n{extra}"
                        for s in ("one", "two")))
    return path


# Help --------------------------------------------------------------------------------------------------

def walk(parser: argparse.ArgumentParser, path: str = "hivemind"):
    """Every (command path, action) in the parser tree, subcommands included."""
    for action in parser._actions:
        yield path, action
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                yield f"{path} {name}", argparse.Action([name], name, help=helps.get(name))
                yield from walk(sub, f"{path} {name}")


def test_every_command_and_argument_has_help():
    missing = [f"{path}: {action.option_strings or action.dest}" for path, action in walk(cli.build_parser())
               if not isinstance(action, argparse._HelpAction) and not (action.help or "").strip()]
    assert missing == []
    commands = {path for path, _ in walk(cli.build_parser())}
    for nested in ("hivemind snapshot create", "hivemind snapshot publish", "hivemind snapshot verify",
                   "hivemind snapshot push", "hivemind leaderboard show", "hivemind leaderboard add",
                   "hivemind leaderboard update", "hivemind list"):
        assert nested in commands


def test_top_level_help_says_what_the_tool_does(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    text = capsys.readouterr().out
    first = text.split("\n\n")[1]                       # the paragraph after the usage line
    assert first.startswith("hivemind measures how alike language models answer")
    assert "developer" not in text.lower()


def test_old_spellings_still_parse():
    parse = cli.build_parser().parse_args
    args = parse(["leaderboard", "add", "my.yaml", "--system", "new"])
    assert (args.action, args.config, args.system) == ("add", "my.yaml", "new")
    assert parse(["leaderboard"]).action == "update"
    assert parse(["leaderboard", "--results", "elsewhere"]).results == "elsewhere"
    assert parse(["leaderboard", "--results", "elsewhere", "show"]).results == "elsewhere"
    args = parse(["snapshot", "publish", "demo", "--name", "demo-1"])
    assert (args.action, args.target, args.name) == ("publish", "demo", "demo-1")
    assert parse(["snapshot", "verify", "demo-1"]).action == "verify"


@pytest.mark.parametrize("argv, wanted", [(["reprot", "demo"], "'report'"), (["leaderboard", "ad", "x.yaml"], "'add'"),
                                          (["export", "inspcet", "demo"], "'inspect'"),
                                          (["snapshot", "verfy", "x"], "'verify'")])
def test_a_misspelt_command_gets_a_suggestion_in_one_line(argv, wanted, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"did you mean {wanted}?" in err, err


def test_a_misspelt_run_name_gets_a_suggestion(tmp_path, monkeypatch, capsys):
    """`hivemind report dmeo` names the run it could not find and the closest one there is, in one line."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HIVEMIND_RESULTS", raising=False)
    assert cli.main(["report", "dmeo"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: no run 'dmeo'") and "did you mean 'demo'?" in err
    assert cli.main(["report", "zzzzqqq"]) == 1
    assert "did you mean" not in capsys.readouterr().err     # nothing close: no guess


def test_the_notebooks_hints_are_commands_that_parse(capsys):
    """Every `hivemind ...` the notebook tells its reader to run is a command of today's CLI, with arguments
    it takes (placeholders such as RUN or OWNER/NAME filled in)."""
    import re as re_

    notebook = json.loads((ROOT / "notebooks" / "explore_snapshot.ipynb").read_text(encoding="utf-8"))
    text = "".join("".join(cell["source"]) for cell in notebook["cells"])
    commands = re_.findall(r"`hivemind ([^`]+)`", text)
    assert len(commands) >= 4, commands
    parser = cli.build_parser()
    for command in commands:
        argv = re_.sub(r"\b[A-Z][A-Z-]*\b", "x", command).split()
        try:
            parser.parse_args(argv)
        except SystemExit:
            pytest.fail(f"the notebook's `hivemind {command}` does not parse: {capsys.readouterr().err.strip()}")


def test_an_empty_results_folder_has_no_leaderboard(tmp_path, capsys):
    (tmp_path / "results").mkdir()
    assert cli.main(["leaderboard", "--results", str(tmp_path / "results")]) == 1
    err = capsys.readouterr().err
    assert "no analysed runs to rank" in err and "hivemind analyze RUN" in err
    assert not (tmp_path / "results" / "leaderboard.csv").exists()


# RUN: one resolver for names, folders and config files ----------------------------------------------

def test_a_run_is_named_by_name_folder_or_config(tmp_path, monkeypatch):
    config_path = write_config(tmp_path, "http://127.0.0.1:9")
    folder = tmp_path / "results" / "clirun"
    folder.mkdir(parents=True)
    from hivemind.core.config_files import load_config
    from hivemind.results.record import save_run_config

    save_run_config(load_config(config_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HIVEMIND_RESULTS", raising=False)
    wanted = folder.resolve()
    for spelling in ("clirun", "results/clirun", "results/clirun/", str(folder), str(config_path)):
        assert resolve_run(spelling).run_dir.resolve() == wanted, spelling
    monkeypatch.chdir(tmp_path / "results")                       # a run folder in the working directory
    assert resolve_run("clirun").run_dir.resolve() == wanted
    with pytest.raises(HivemindError, match="hivemind list"):
        resolve_run("no-such-run")
    with pytest.raises(HivemindError, match="not a run folder"):
        resolve_run(str(tmp_path))


def test_a_misspelt_setting_gets_a_suggestion(tmp_path, capsys):
    config_path = write_config(tmp_path, "http://127.0.0.1:9", extra="    max_token: 24\n")
    assert cli.main(["plan", str(config_path)]) == 1
    err = capsys.readouterr().err
    assert (f"unknown setting 'max_token' in systems[0] of {config_path}; did you mean 'max_tokens'" in err)
    assert "Traceback" not in err
    config_path.write_text(config_path.read_text().replace("max_token: 24", "modle: x")
                           .replace("samples: 2", "sample: 2"))
    assert cli.main(["plan", str(config_path)]) == 1
    err = capsys.readouterr().err
    assert "unknown setting 'modle' in systems[0]" in err and "did you mean 'model'?" in err
    assert "unknown setting 'sample' in the top level" in err and "did you mean 'samples'?" in err


def test_plan_and_collect_warn_of_a_misspelt_parameter(tmp_path, monkeypatch, capsys):
    """`params: {max_token: 64, temprature: 0.7}`: plan and collect both name the likely parameter (never a
    secret), and the run goes ahead with the params as written."""
    monkeypatch.setenv(KEY_VAR, SECRET)
    with FakeOpenAI(expected_api_key=SECRET) as server:
        config_path = write_config(tmp_path, server.url)
        config_path.write_text(config_path.read_text().replace("params: {temperature: 1.0}",
                                                               "params: {max_token: 64, temprature: 0.7}"))
        for argv in (["plan", str(config_path)], ["collect", str(config_path), "-q"]):
            assert cli.main(argv) == 0
            err = capsys.readouterr().err
            assert "params.max_token is not a decoding parameter litellm knows; did you mean max_tokens?" in err
            assert "did you mean temperature?" in err and "api_key_env" not in err and "secret" not in err
            import hivemind.core.config_files as config_files
            config_files._WARNED.clear()           # one process, two commands: each warns as a fresh one would


# hivemind list and -q, on a real collected run ----------------------------------------------------------

@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("cli")
    mp = pytest.MonkeyPatch()
    mp.setenv(KEY_VAR, SECRET)
    with FakeOpenAI(expected_api_key=SECRET) as server:
        config_path = write_config(tmp_path, server.url)
        assert cli.main(["collect", str(config_path), "-q"]) == 0
    yield tmp_path, config_path
    mp.undo()


def test_list_shows_each_run_and_its_state(collected, capsys):
    tmp_path, _ = collected
    results = tmp_path / "results"
    (results / "broken").mkdir(exist_ok=True)
    (results / "broken" / "config.yaml").write_text("name: [unclosed\n")
    (results / "snapshots" / "s").mkdir(parents=True, exist_ok=True)      # not a run
    before = {p: p.stat().st_mtime_ns for p in results.rglob("*") if p.is_file()}
    assert cli.main(["list", "--results", str(results)]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("clirun"))
    assert row.split()[:5] == ["clirun", "collected", "2", "8", "0"]
    assert "hivemind embed clirun" in row
    assert any(line.startswith("broken") for line in out.splitlines()) and "unreadable config" in out
    assert not any(line.startswith("s ") for line in out.splitlines())
    assert {p: p.stat().st_mtime_ns for p in results.rglob("*") if p.is_file()} == before   # read only
    assert cli.main(["list", "--results", str(tmp_path / "nowhere")]) == 1


def test_quiet_hides_every_progress_bar(collected):
    """Embedding loads sentence-transformers in a fresh process: under -q stderr has no bar at all."""
    tmp_path, config_path = collected
    loud = hivemind("embed", str(config_path), cwd=tmp_path)
    assert loud.returncode == 0, loud.stderr
    assert "it/s" in loud.stderr or "%|" in loud.stderr              # without -q there is a bar to hide
    (tmp_path / "results" / "clirun" / "store.sqlite").unlink()       # so the second run embeds again
    with FakeOpenAI(expected_api_key=SECRET) as server:
        fresh = write_config(tmp_path, server.url)
        done = hivemind("collect", str(fresh), "-q", cwd=tmp_path, env={KEY_VAR: SECRET})
        assert done.returncode == 0, done.stderr
    quiet = hivemind("embed", str(config_path), "-q", cwd=tmp_path)
    assert quiet.returncode == 0, quiet.stderr
    assert re.match(r"embedded [1-9]\d* new texts", quiet.stdout), quiet.stdout
    for mark in ("%|", "it/s", "s/it", "\r", "Batches", "Loading"):
        assert mark not in quiet.stderr, (mark, quiet.stderr)


def loud_and_quiet(script: str, folder: Path) -> tuple[subprocess.CompletedProcess, subprocess.CompletedProcess]:
    """The script run in a fresh interpreter with argv[1] "loud", then "quiet" (no quieting variable inherited)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1")
    for name in cli.QUIET_ENV:
        env.pop(name, None)
    loud, quiet = (subprocess.run([sys.executable, "-c", script, mode], env=env, capture_output=True, text=True,
                                  timeout=300, cwd=folder) for mode in ("loud", "quiet"))
    assert loud.returncode == 0 and quiet.returncode == 0, (loud.stderr, quiet.stderr)
    return loud, quiet


def test_quiet_switches_off_library_bars_that_hivemind_does_not_draw(tmp_path):
    """The bars a library draws while loading a model (a bare tqdm, huggingface_hub's and transformers'
    own tqdm) are off once -q has run; without it the same code draws them."""
    script = ("import sys\nfrom hivemind import cli\nif sys.argv[1] == 'quiet':\n    cli.quiet_libraries()\n"
              "from tqdm import tqdm\nfrom huggingface_hub.utils import tqdm as hf_tqdm\n"
              "from transformers.utils import logging\n"
              "for bar in (tqdm, hf_tqdm, logging.tqdm):\n    for _ in bar(range(3), desc='Loading'):\n        pass\n")
    loud, quiet = loud_and_quiet(script, tmp_path)
    assert loud.stderr.count("Loading: 100%") == 3                 # each of the three kinds draws a bar
    assert "Loading" not in quiet.stderr and "%|" not in quiet.stderr, quiet.stderr


def test_quiet_silences_loading_weights_when_transformers_came_first(tmp_path):
    """transformers' "Loading weights" bar (drawn by every model load) is decided when transformers is
    imported: a process that imported it before -q ran (a notebook, a script) loads the bundled embedder
    without the bar once -q has run, and with it otherwise."""
    script = ("import sys\nimport transformers.utils.logging\nfrom hivemind import cli\n"
              "if sys.argv[1] == 'quiet':\n    cli.quiet_libraries()\n"
              "from hivemind.embed.stage import load_sentence_transformer\n"
              "load_sentence_transformer('all-MiniLM-L6-v2')\n")
    loud, quiet = loud_and_quiet(script, tmp_path)
    assert "Loading weights" in loud.stderr                        # the bar this test is about exists
    assert "Loading weights" not in quiet.stderr and "%|" not in quiet.stderr, quiet.stderr
