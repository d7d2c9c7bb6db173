"""Run configs: validation messages, YAML errors, secrets kept out of params, identities, resolve_run."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError
import yaml

from hivemind import HivemindError
from hivemind.core.config import PACKAGED_CONFIGS, RunConfig, System, require_keys
from hivemind.core.config_files import load_config, resolve_run
from hivemind.results.record import save_run_config

ROOT = Path(__file__).resolve().parents[1]
SYSTEM = {"name": "s", "model": "openai/s", "api_base": "http://127.0.0.1:9/v1", "params": {"temperature": 1.0}}


def base(**changes) -> dict:
    data = {"name": "cfg-test", "prompts": "prompts.jsonl", "samples": 2, "systems": [dict(SYSTEM)]}
    data.update(changes)
    return data


def write(tmp_path: Path, data, name: str = "run.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


# --- validation -----------------------------------------------------------------------------------

@pytest.mark.parametrize("changes, setting", [
    ({"samples": 0}, "samples"),
    ({"sampels": 3}, "sampels"),                                      # typo: extra keys are refused
    ({"systems": []}, "systems"),
    ({"systems": [{**SYSTEM, "concurrency": 0}]}, "systems.0.concurrency"),
    ({"systems": [{**SYSTEM, "temperature": 1}]}, "systems.0.temperature"),
    ({"systems": [{"name": "s", "api_base": "http://x"}]}, "systems.0.model"),
    ({"embedder": {"provider": "magic"}}, "embedder.provider"),
    ({"name": "has space"}, "name"),
    ({"max_cost": -1}, "max_cost"),
    ({"near_duplicate_threshold": 1.5}, "near_duplicate_threshold"),
    ({"max_attempts": 0}, "max_attempts"),
])
def test_validation_errors_name_the_file_and_the_setting(tmp_path, changes, setting):
    path = write(tmp_path, base(**changes))
    with pytest.raises(HivemindError) as raised:
        load_config(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: invalid config:")
    assert f"  {setting}: " in message


def test_duplicate_system_names_are_refused(tmp_path):
    path = write(tmp_path, base(systems=[SYSTEM, {**SYSTEM, "params": {"temperature": 0.1}}]))
    with pytest.raises(HivemindError, match="system name 's' appears twice"):
        load_config(path)


def test_systems_with_one_identity_are_refused(tmp_path):
    # Answers are keyed by identity: two names for one identity would pool every answer under one of them.
    path = write(tmp_path, base(systems=[SYSTEM, {**SYSTEM, "name": "t", "concurrency": 2}]))
    with pytest.raises(HivemindError, match="systems 's' and 't' have the same model, api_base and params"):
        load_config(path)


def test_yaml_errors_name_the_line(tmp_path):
    text = "name: cfg-test\nprompts: p.jsonl\nsamples: 2\nsystems:\n  - name: s\n    model: [openai/s\n"
    path = write(tmp_path, text)
    with pytest.raises(HivemindError, match=rf"^{re.escape(str(path))}:\d+: malformed YAML") as raised:
        load_config(path)
    line = int(str(raised.value).split(":")[1])
    assert 6 <= line <= 7     # the unclosed list (PyYAML reports where it noticed: that line or the next)

    tab = write(tmp_path, "name: x\n\tsamples: 2\n", "tab.yaml")
    with pytest.raises(HivemindError, match=rf"^{re.escape(str(tab))}:2: malformed YAML"):
        load_config(tab)


def test_a_config_that_is_not_utf8_is_an_error(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(HivemindError, match=rf"{re.escape(str(path))}: not UTF-8 text"):
        load_config(path)


def test_not_a_mapping_and_missing_file(tmp_path):
    with pytest.raises(HivemindError, match="must be a YAML mapping"):
        load_config(write(tmp_path, "- just\n- a list\n"))
    with pytest.raises(HivemindError, match="config file not found"):
        load_config(tmp_path / "absent.yaml")


@pytest.mark.parametrize("key", ["api_key", "API_KEY", "token", "Authorization", "key"])
def test_keys_in_params_are_refused(tmp_path, key):
    path = write(tmp_path, base(systems=[{**SYSTEM, "params": {"temperature": 1.0, key: "sk-oops"}}]))
    with pytest.raises(HivemindError) as raised:
        load_config(path)
    assert f"params.{key}" in str(raised.value) and "api_key_env" in str(raised.value)
    assert "sk-oops" not in str(raised.value)


def test_require_keys_names_the_missing_variable(monkeypatch):
    monkeypatch.delenv("HIVEMIND_CFG_TEST_KEY", raising=False)
    system = System(name="s", model="openai/s", api_key_env="HIVEMIND_CFG_TEST_KEY")
    with pytest.raises(HivemindError, match="'s'.*HIVEMIND_CFG_TEST_KEY.*not set"):
        require_keys([system])
    monkeypatch.setenv("HIVEMIND_CFG_TEST_KEY", "sk-x")
    require_keys([system])


# --- identity -------------------------------------------------------------------------------------

def test_identity_follows_what_shapes_answers_only():
    one = System(**SYSTEM)
    assert one.identity == System(**{**SYSTEM, "name": "renamed", "concurrency": 64}).identity
    assert one.identity == System(**SYSTEM, api_key_env="OTHER_KEY").identity
    assert one.identity == System(**{**SYSTEM, "params": {"temperature": 1.0}}).identity
    two_params = System(**{**SYSTEM, "params": {"top_p": 0.9, "temperature": 1.0}})
    assert two_params.identity == System(**{**SYSTEM, "params": {"temperature": 1.0, "top_p": 0.9}}).identity
    different = [
        System(**{**SYSTEM, "params": {"temperature": 0.7}}),
        System(**{**SYSTEM, "params": {}}),
        two_params,
        System(**{**SYSTEM, "model": "openai/other"}),
        System(**{**SYSTEM, "api_base": "http://127.0.0.1:10/v1"}),
    ]
    assert len({one.identity, *(s.identity for s in different)}) == 1 + len(different)


# --- resolve_run ----------------------------------------------------------------------------------

def test_resolve_run_by_packaged_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)           # no results/demo here: the packaged config is the one found
    monkeypatch.delenv("HIVEMIND_RESULTS", raising=False)
    config = resolve_run("demo")
    assert config.name == "demo" and len(config.systems) >= 2
    assert Path(config.prompts).resolve() == (ROOT / "prompts" / "demo.jsonl").resolve()   # shipped in the package
    assert config.results_dir == "results"
    assert resolve_run("demo", results_dir=tmp_path / "elsewhere").results_dir == str(tmp_path / "elsewhere")
    assert {p.stem for p in PACKAGED_CONFIGS.glob("*.yaml")} >= {"demo", "paper"}


def test_resolve_run_by_file_resolves_prompts_beside_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "configs"
    folder.mkdir()
    (folder / "prompts.jsonl").write_text('{"prompt": "hi"}\n', encoding="utf-8")
    path = write(folder, base(results_dir=str(tmp_path / "out")))

    config = resolve_run(str(path))

    assert config.name == "cfg-test" and config.prompts == str(folder / "prompts.jsonl")
    assert config.run_dir == tmp_path / "out" / "cfg-test"
    assert config.store_path == tmp_path / "out" / "cfg-test" / "store.sqlite"
    with pytest.raises(HivemindError, match="config file not found"):
        resolve_run(str(folder / "typo.yaml"))


def test_resolve_run_by_run_name_reads_the_saved_copy(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HIVEMIND_RESULTS", raising=False)
    results = tmp_path / "my-results"
    original = RunConfig(name="saved-run", prompts=str(tmp_path / "p.jsonl"), samples=5, results_dir=str(results),
                         systems=[System(**SYSTEM, api_key_env="SOME_KEY_VAR")])
    saved = save_run_config(original)

    assert saved == results / "saved-run" / "config.yaml" and not list(saved.parent.glob("*.tmp"))
    assert "results_dir" not in yaml.safe_load(saved.read_text())
    by_name = resolve_run("saved-run", results_dir=results)
    assert by_name.results_dir == str(results) and by_name.run_dir == results / "saved-run"
    assert by_name.samples == 5 and by_name.systems[0].identity == original.systems[0].identity
    assert by_name.systems[0].api_key_env == "SOME_KEY_VAR"

    monkeypatch.setenv("HIVEMIND_RESULTS", str(results))
    assert resolve_run("saved-run").results_dir == str(results)
    with pytest.raises(HivemindError, match="no run 'no-such-run': it is not a config file, a packaged config .*demo"):
        resolve_run("no-such-run")
    with pytest.raises(HivemindError, match="did you mean 'saved-run'"):      # a run under the results folder
        resolve_run("saved-rnu")
    with pytest.raises(HivemindError, match="did you mean 'paper'"):          # a packaged config
        resolve_run("papre")


def test_secrets_nested_in_params_are_refused():
    with pytest.raises(ValidationError, match=r"params\.extra_headers\.Authorization"):
        System(name="s", model="openai/s", params={"extra_headers": {"Authorization": "Bearer sk-abcdefghijkl"}})
    System(name="s", model="openai/s", params={"max_tokens": 16, "extra_body": {"min_p": 0.1}})  # fine


def test_a_misspelt_parameter_is_not_taken_for_a_secret():
    """`max_token: 64` ends in "token" like a credential's name, but it is max_tokens mistyped and 64 cannot be a
    key: accepted (and warned about, below). A value that can be a key under such a name is still refused, and a
    credential's own name (api_key, token) is refused whatever its value."""
    from hivemind.core.secrets import config_problems, scrub

    System(name="s", model="openai/s", params={"max_token": 64})
    assert scrub({"max_token": 64}) == {"max_token": 64}
    for params in ({"max_token": "a9Fk2LmQ7xZp3Rt8"}, {"max_token": {"nested": 1}}, {"token": 64},
                   {"auth_token": 12345678}, {"api_key": 7}):
        with pytest.raises(ValidationError, match="keys come only from the environment"):
            System(name="s", model="openai/s", params=params)
    assert config_problems({"params": {"max_token": "sk-abcdefghijklmnopqrst"}})      # key-shaped anywhere


def test_misspelt_parameters_are_named_with_the_likely_one():
    from hivemind.core.config_params import misspelt_param

    config = RunConfig.model_validate(base(systems=[{**SYSTEM, "params": {
        "max_token": 64, "temprature": 0.7, "top-p": 0.9, "top_k": 40, "min_p": 0.1, "repeat_penalty": 1.1,
        "my_provider_flag": True}}], scorers=[{"name": "j", "kind": "judge", "model": "openai/j",
                                                "params": {"temperatur": 0}}]))
    warnings = config.param_warnings()
    assert len(warnings) == 4, warnings
    assert "params.max_token is not a decoding parameter litellm knows; did you mean max_tokens?" in warnings[0]
    assert "did you mean temperature?" in warnings[1] and "did you mean top_p?" in warnings[2]
    assert warnings[3].startswith("scorer 'j': params.temperatur")
    assert [misspelt_param(k) for k in ("top_k", "top_p", "min_p", "max_tokens", "seed")] == [None] * 5


def test_the_known_parameters_cover_litellms_list():
    """The copy of litellm's OpenAI parameter list (kept so that reading a config never imports litellm) still
    holds every name the installed litellm knows."""
    from litellm.constants import OPENAI_CHAT_COMPLETION_PARAMS

    from hivemind.core.config_params import KNOWN_PARAMS

    assert set(OPENAI_CHAT_COMPLETION_PARAMS) <= KNOWN_PARAMS, set(OPENAI_CHAT_COMPLETION_PARAMS) - KNOWN_PARAMS
