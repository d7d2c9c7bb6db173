"""Paper reproduction: the packaged config, the plan (keys, dataset, cost) and a tiny end-to-end run."""

import datetime
import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from fake_openai import FakeOpenAI  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import hivemind  # noqa: E402
from hivemind import HivemindError  # noqa: E402
from hivemind.studies import reproduce
from hivemind.collect import routes
from hivemind.core.config import Embedder  # noqa: E402
from hivemind.core.config_files import resolve_run

PAPER_YAML = Path(hivemind.__file__).parent / "configs" / "paper.yaml"   # the packaged config
SECRET = "sk-planted-reproduce-77aa88bb99cc"
MINI = "gpt-4o-mini-2024-07-18@top-p"
CLAUDE = "Qwen3-32B@top-p"  # a system whose key is not set
PAPER_MODELS = [
    "Llama-3.1-70B-Instruct", "Meta-Llama-3.1-405B-Instruct-Turbo", "Llama-3.3-70B-Instruct", "gemma-2-27b-it",
    "Qwen1.5-110B-Chat", "Qwen2-72B-Instruct", "Qwen2.5-72B-Instruct", "Qwen3-32B", "DeepSeek-V3",
    "Mistral-Large-Instruct-2411", "Mixtral-8x7B-Instruct-v0.1", "phi-4", "aya-expanse-32b",
    "c4ai-command-r-plus-08-2024", "OLMo-2-1124-13B-Instruct", "Llama-3.1-Tulu-3-70B", "gpt-4o-2024-11-20",
    "gpt-4o-mini-2024-07-18", "claude-3-5-sonnet-20241022", "claude-3-sonnet-20240229", "claude-3-opus-20240229",
    "gemini-1.5-pro", "gemini-2.0-flash", "qwen-max-2025-01-25", "qwen-plus-2025-01-25",
]


@pytest.fixture
def paper():
    return resolve_run("paper")


@pytest.fixture
def no_keys(monkeypatch, paper):
    variables = {s.api_key_env for s in paper.systems} | {paper.embedder.api_key_env}
    variables |= {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_ROLE_NAME"}  # Bedrock's own
    for var in variables - {None}:
        monkeypatch.delenv(var, raising=False)


TODAY = datetime.date(2026, 11, 25)   # the day paper.yaml was generated; retirements are judged on it


def test_paper_config_matches_the_paper(paper):
    import litellm

    assert paper.name == "paper" and paper.samples == 50
    assert paper.prompts.dataset == "liweijiang/infinite-chats-eval" and paper.prompts.field == "query"
    assert paper.embedder.id == "litellm:openai/text-embedding-3-small"
    assert paper.embedder.api_key_env == "OPENAI_API_KEY"
    top_p = [s for s in paper.systems if s.name.endswith("@top-p")]
    min_p = [s for s in paper.systems if s.name.endswith("@min-p")]
    assert [s.name for s in top_p] == [f"{m}@top-p" for m in PAPER_MODELS]
    assert len(paper.systems) == len(top_p) + len(min_p)
    assert len({s.identity for s in paper.systems}) == len(paper.systems)
    for system in paper.systems:
        litellm.get_llm_provider(system.model, api_base=system.api_base)  # a prefix litellm knows
        expected = ({"temperature": 1.0, "top_p": 0.9, "max_tokens": 2048} if system.name.endswith("@top-p")
                    else {"temperature": 2.0, "top_p": 1.0, "min_p": 0.1, "max_tokens": 2048})
        assert system.params == expected, system.name
    for system in min_p:  # min-p only where the provider takes it: no 400 by construction
        assert system.model.split("/", 1)[0] in routes.MIN_P_PROVIDERS, system.name
        assert reproduce._provider(system) not in reproduce.NO_MIN_P, system.name
    text = PAPER_YAML.read_text()
    assert text.count("\n  # ") >= len(paper.systems)  # a comment naming the route before every system


def test_packaged_config_is_the_generated_one():
    """paper.yaml is routes.paper_config_text on the day it was generated: edit routes.py, not the yaml."""
    text = PAPER_YAML.read_text()
    assert text == routes.paper_config_text(TODAY)


def test_every_model_has_a_default_route_or_is_retired_with_every_route_retired():
    assert [m.name for m in routes.PAPER_MODELS] == PAPER_MODELS
    for model in routes.PAPER_MODELS:
        default = routes.default_route(model, TODAY)
        if default is None:
            assert all(routes.retirement(r.model, TODAY) for r in model.routes), model.name
        else:
            assert routes.retirement(default.model, TODAY) is None
            earlier = model.routes[:model.routes.index(default)]
            assert all(routes.retirement(r.model, TODAY) for r in earlier), model.name  # first live route
    # A deprecation date in litellm's own map retires a route from that day on, not before.
    assert routes.retirement("together_ai/mistralai/Mixtral-8x7B-Instruct-v0.1", datetime.date(2026, 4, 15)) is None
    assert "2026-04-16" in routes.retirement("together_ai/mistralai/Mixtral-8x7B-Instruct-v0.1",
                                             datetime.date(2026, 4, 16))
    mixtral = routes.paper_model("Mixtral-8x7B-Instruct-v0.1@min-p")
    assert routes.default_route(mixtral, datetime.date(2026, 1, 1)).provider == "together_ai"
    assert routes.default_route(mixtral, TODAY).provider == "deepinfra"
    table = routes.routes_table(TODAY)
    assert "gemini-1.5-pro: RETIRED" in table and "* deepinfra/mistralai/Mixtral-8x7B-Instruct-v0.1" in table


def test_plan_without_keys_is_short_and_every_system_is_reachable_or_retired(paper, no_keys, capsys):
    the_plan = reproduce.reproduction_plan(paper, today=TODAY)
    assert the_plan.runnable == []
    for system in the_plan.systems:   # every system: a key to set, or explicitly retired; never silent
        assert bool(system.retired) != bool(the_plan.missing_keys.get(system.name)), system.name
    assert set(the_plan.retired) == {"claude-3-sonnet-20240229@top-p", "gemini-1.5-pro@top-p",
                                     "gemini-2.0-flash@top-p"}
    assert the_plan.missing_keys["Llama-3.3-70B-Instruct@min-p"] == "DEEPINFRA_API_KEY"
    assert "AWS_ACCESS_KEY_ID" in the_plan.missing_keys["claude-3-opus-20240229@top-p"]  # Bedrock's own variables
    assert not the_plan.dataset_ok and "liweijiang/infinite-chats-eval" in the_plan.dataset_error
    assert the_plan.embedder_key_missing == "OPENAI_API_KEY"
    assert not any(s.warnings for s in the_plan.systems if s.name.endswith("@min-p"))

    text = the_plan.describe()
    assert text.count("liweijiang/infinite-chats-eval") == 1          # the dataset named once
    assert text.count("DEEPINFRA_API_KEY") == 1                        # grouped by variable
    assert "Llama-3.3-70B-Instruct@{top-p,min-p}" in text
    assert len(text.splitlines()) < 30
    assert "100 prompts (published size" in text and "cost estimate" in text
    assert "price unknown to litellm" in text and "gemma-2-27b-it@{top-p,min-p}" in text
    assert "OLMo" not in text.split("price unknown")[1]               # self-hosted: no per-token price

    with pytest.raises(HivemindError) as err:
        reproduce.run(paper)
    message = str(err.value)
    assert "TOGETHER_API_KEY" in message and "liweijiang/infinite-chats-eval" in message
    printed = capsys.readouterr().out
    assert "missing keys (" in printed and "MISSING" in printed and "retired (3 systems" in printed


def test_a_retired_system_in_a_config_names_the_live_route(paper, no_keys, tmp_path):
    """A user config still pointing at Anthropic's retired claude-3-5-sonnet: the plan names Bedrock."""
    old = paper.system("claude-3-5-sonnet-20241022@top-p").model_copy(
        update={"model": "anthropic/claude-3-5-sonnet-20241022", "api_key_env": "ANTHROPIC_API_KEY"})
    config = paper.model_copy(update={"systems": [old]})
    the_plan = reproduce.reproduction_plan(config, today=TODAY)
    assert the_plan.runnable == [] and the_plan.missing_keys == {}
    why = the_plan.retired["claude-3-5-sonnet-20241022@top-p"]
    assert "2025-10-28" in why and "bedrock/anthropic.claude-3-5-sonnet-20241022-v2:0" in why


def test_every_documented_retirement_names_its_source_and_says_when_unverified():
    """A date read only in a secondary source is marked unverified in the plan; none is stated bare."""
    for model, retired in routes.RETIREMENTS.items():
        assert retired.source and datetime.date.fromisoformat(retired.date), model
        why = routes.retirement(model, datetime.date(2030, 1, 1))
        assert why.startswith(f"retired {retired.date} (") and ("unverified" in why) != retired.verified, model
    assert routes.RETIREMENTS["anthropic/claude-3-opus-20240229"].verified
    assert not routes.RETIREMENTS["gemini/gemini-1.5-pro"].verified
    # Announced but still ahead: the route stays the default and the table says when it goes.
    assert routes.retirement("openai/gpt-4o-2024-11-20", TODAY) is None
    assert "retires 2027-01-14 (unverified" in routes.routes_table(TODAY)


def test_reasoning_is_kept_apart_from_the_answer(tmp_path):
    import litellm

    from hivemind.collect.stage import _to_response, split_reasoning
    from hivemind.collect.prompts import Prompt
    from hivemind.store import Store

    assert split_reasoning("<think>\nplan it</think>\n\nThe answer.", None) == ("The answer.", "plan it")
    assert split_reasoning("Plain answer <think>not leading</think>", None)[1] is None
    reply = litellm.ModelResponse(choices=[{"index": 0, "finish_reason": "stop", "message": {
        "role": "assistant", "content": "Time is a river.", "reasoning_content": "The user wants a metaphor."}}])
    system = resolve_run("paper").system("Qwen3-32B@top-p")
    response = _to_response(reply, system, Prompt(id="q1", text="Write a metaphor about time"), 0, 7, 0.1)
    assert response.text == "Time is a river." and response.reasoning == "The user wants a metaphor."
    with Store(tmp_path / "store.sqlite") as store:
        store.add_system(system.identity, system.name, system.model, system.api_base, system.params)
        store.add_prompts([Prompt(id="q1", text="Write a metaphor about time")])
        store.add_response(response)
        store.add_reasoning(response.system_id, "q1", 0, response.reasoning)
        frame = store.responses_frame()
        assert list(frame["text"]) == ["Time is a river."]                 # what gets embedded
        assert store.reasoning(response.system_id, "q1", 0) == "The user wants a metaphor."
        assert store.reasoning(response.system_id, "q1", 1) is None


def local_paper(paper, tmp_path: Path, url: str):
    """The paper config pointed at a local prompt file, the fake server and the bundled embedder."""
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"q{i}", "prompt": text}) + "\n" for i, text in enumerate(
        ["Write a metaphor about time", "Suggest a name for a coffee shop", "Tell me a joke about the sea",
         "Describe autumn in one sentence", "Invent a new holiday"])))
    systems = [s.model_copy(update={"api_base": url}) if s.model.startswith("openai/") else s
               for s in paper.systems]
    return paper.model_copy(update={"prompts": str(prompts), "results_dir": str(tmp_path / "results"),
                                    "embedder": Embedder(), "systems": systems})


def test_cost_estimate_is_printed_and_the_yes_gate_stops_before_any_request(paper, no_keys, tmp_path,
                                                                         monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with FakeOpenAI() as server:
        config = local_paper(paper, tmp_path, server.url)
        the_plan = reproduce.reproduction_plan(config, systems=[MINI, CLAUDE], limit=2, samples=2)
        mini = the_plan.systems[0]
        assert the_plan.runnable == [MINI] and the_plan.missing_keys == {CLAUDE: "DEEPINFRA_API_KEY"}
        assert mini.samples_todo == 4 and mini.completion_tokens == 4 * 2048 and mini.completion_is_max
        assert mini.cost == pytest.approx(reproduce.price("openai/gpt-4o-mini-2024-07-18",
                                                          mini.prompt_tokens, 4 * 2048))
        assert mini.cost > 0 and the_plan.total_cost == pytest.approx(mini.cost)

        with pytest.raises(HivemindError, match="--yes"):
            reproduce.run(config, systems=[MINI], limit=2, samples=2, threshold_usd=mini.cost / 10)
        assert server.requests == 0
    printed = capsys.readouterr().out
    assert f"{MINI}: 4 answers" in printed and "estimated total for the runnable systems: $" in printed
    assert "upper bound" in printed


def test_unknown_price_is_said_per_system(paper, tmp_path):
    with FakeOpenAI() as server:
        config = local_paper(paper, tmp_path, server.url)
        config.systems[0] = config.systems[0].model_copy(update={"model": "openai/no-such-model-anywhere",
                                                                 "api_base": server.url,
                                                                 "api_key_env": None})
        the_plan = reproduce.reproduction_plan(config, systems=[config.systems[0].name], limit=1, samples=1)
    assert the_plan.unknown_price == [config.systems[0].name]
    assert "price unknown to litellm" in the_plan.describe()


def test_tiny_run_end_to_end(paper, no_keys, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with FakeOpenAI(expected_api_key=SECRET, enforce_api_key=True) as server:
        config = local_paper(paper, tmp_path, server.url)
        summary = reproduce.run(config, systems=[MINI, CLAUDE], limit=2, samples=2, yes=True, progress=False)
        assert dict(server.by_model) == {"gpt-4o-mini-2024-07-18": 4}
        assert server.auth_bad == 0

    run_dir = Path(tmp_path / "results" / "paper")
    assert summary.config.run_dir == run_dir
    assert [s.name for s in summary.config.systems] == [MINI]  # the system without a key was left out
    assert summary.collect.stored == 4
    for name in ("analysis.json", "intra_model_buckets.csv", "leaderboard.csv", "report.html", "paper_reference.json"):
        assert (run_dir / name).is_file(), name
    reference = json.loads((run_dir / "paper_reference.json").read_text())
    assert reference["share_above_0.8"] == {"top-p": 0.79, "min-p": 0.612}
    assert reference["inter_model_similarity_range"] == [0.71, 0.82]
    assert sum(reference["intra_model_buckets_average"].values()) == pytest.approx(1.0)
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path

    # The reproduced run, report and figures included, publishes as a snapshot that verifies.
    from hivemind.runs import snapshot

    published = snapshot.publish(summary.config, "paper-tiny")
    names = {p.relative_to(published).as_posix() for p in published.rglob("*") if p.is_file()}
    assert {"report.html", "paper_reference.json", "responses.parquet"} <= names
    assert any(name.endswith(".png") for name in names)
    assert snapshot.verify("paper-tiny", tmp_path / "results").ok
    assert "report.md" in names
    assert "79.0%" in (run_dir / "report.md").read_text()  # the paper's top-p share, shown beside the run's
    for path in published.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
