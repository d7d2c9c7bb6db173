"""The score stage: LM judge on the fake OpenAI server, perplexity under the bundled SmolLM2 on real text,
relevance on real AlpacaEval answers, imported scores (plain JSONL and NoveltyBench's scores.jsonl), and
the reward model's offline message."""
from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import COLLECT_KEY_VAR
from fake_openai import GARBAGE_MARK, OUT_OF_RANGE_MARK, FakeOpenAI, judge_text
from hivemind import HivemindError
from hivemind.cli import main as cli_main
from hivemind.core.config import Scorer
from hivemind.results.record import save_run_config
from hivemind.runs.imports import import_files, import_scores
from hivemind.score.stage import score_run
from hivemind.score.judge import judge_prompt, parse_score, rubric_path
from hivemind.store import Store

ROOT = Path(__file__).resolve().parents[1]
ALPACA = ROOT.parent / "shared" / "data" / "alpaca_eval_outputs"
needs_alpaca = pytest.mark.skipif(not ALPACA.is_dir(), reason=f"real data not found at {ALPACA}")

PROMPTS = ["Write a metaphor about time.", "Suggest a name for a night bakery.", "Tell a joke about a lighthouse."]


def make_run(tmp_path: Path, records: list[dict], name: str = "scored"):
    """An imported run from {prompt, model, response: [samples]} records."""
    source = tmp_path / f"{name}-answers.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return import_files([source], name, results_dir=tmp_path / "results")


def with_scorers(config, *scorers: Scorer, **settings):
    config.scorers = list(scorers)
    for key, value in settings.items():
        setattr(config, key, value)
    save_run_config(config)
    return config


def score_rows(config, scorer: str) -> list[tuple]:
    """(system id, prompt id, sample, score, error) rows of one scorer, read straight from SQLite."""
    with sqlite3.connect(config.store_path) as db:
        return list(db.execute("SELECT system_id, prompt_id, sample, score, error FROM scores WHERE scorer = ? "
                               "ORDER BY system_id, prompt_id, sample", (scorer,)))


def judge(name: str, url: str, **fields) -> Scorer:
    return Scorer(name=name, kind="judge", model="openai/judge", api_base=url, api_key_env=COLLECT_KEY_VAR,
                  **fields)


def judge_records() -> list[dict]:
    """Two systems, three prompts, two samples; two answers carry marks that make the fake judge misbehave."""
    records = []
    for model in ("alpha", "beta"):
        for i, prompt in enumerate(PROMPTS):
            answers = [f"{model} answer {i} sample {s}" for s in range(2)]
            if model == "beta" and i == 0:
                answers[1] += f" {GARBAGE_MARK}"
            if model == "beta" and i == 1:
                answers[0] += f" {OUT_OF_RANGE_MARK}"
            records.append({"prompt": prompt, "model": model, "response": answers})
    return records


# --- parsing --------------------------------------------------------------------------------------

@pytest.mark.parametrize("reply, expected", [
    ("Fine answer.\nScore: 4", 4.0),
    ("Fine answer.\n\n**Score: 5**\n", 5.0),
    ("score:3", 3.0),
    ("Score: 6", None),            # outside 1-5
    ("Score: 0", None),
    ("Score: 4.5", None),          # not a whole number
    ("Score: 4/5", None),
    ("Score: 4\nThanks!", None),   # not the last line
    ("I'd say 4 out of 5.", None),
    ("", None),
])
def test_parse_score_is_strict(reply, expected):
    value, error = parse_score(reply, 1, 5)
    assert value == expected
    assert (error is None) == (expected is not None)
    if error:
        assert error.startswith("unparseable:")


# --- judge on the fake server ----------------------------------------------------------------------

def test_judge_stores_scores_counts_unparseable_and_rerun_sends_nothing(tmp_path, collect_key):
    config = make_run(tmp_path, judge_records())
    with FakeOpenAI(judge_max=10, expected_api_key=collect_key) as fake:
        with_scorers(config, judge("judge10", fake.url, rubric="1-10"))
        summary = score_run(config, progress=False, raise_if_incomplete=False)
        part = summary.scorers["judge10"]
        assert (part.scored, part.unparseable, part.skipped) == (10, 2, 0)
        assert fake.requests == 12 and fake.auth_ok == 12
        template = rubric_path("1-10").read_text()
        with Store(config.store_path, create=False) as store:
            answers = {a.key: a for a in store.answers_to_score("none-yet", [s.identity for s in config.systems])}
        rows = score_rows(config, "judge10")
        assert len(rows) == 12
        for system_id, prompt_id, sample, score, error in rows:
            answer = answers[(system_id, prompt_id, sample)]
            if GARBAGE_MARK in answer.text or OUT_OF_RANGE_MARK in answer.text:
                assert score is None and error.startswith("unparseable:")   # no score, never guessed
            else:
                # the fake grades the exact rubric text it received: parsing recovers its number
                expected = judge_text(judge_prompt(template, answer), 10).rsplit("Score: ", 1)[1]
                assert (score, error) == (float(expected), None)
        again = score_run(config, progress=False, raise_if_incomplete=False)
        assert fake.requests == 12
        assert (again.scorers["judge10"].scored, again.scorers["judge10"].skipped) == (0, 12)


def test_judge_with_a_bad_key_stops_with_a_message_and_keeps_other_scores(tmp_path, collect_key, monkeypatch):
    config = make_run(tmp_path, judge_records())
    with FakeOpenAI(judge_max=5, expected_api_key=collect_key, enforce_api_key=True) as fake:
        with_scorers(config, judge("good", fake.url, rubric="1-5"))
        score_run(config, progress=False, raise_if_incomplete=False)
        kept = score_rows(config, "good")
        monkeypatch.setenv("HIVEMIND_OTHER_KEY", "sk-wrong-key-5678")
        bad = Scorer(name="bad", kind="judge", model="openai/judge", api_base=fake.url,
                     api_key_env="HIVEMIND_OTHER_KEY")
        with_scorers(config, config.scorers[0], bad)
        before = fake.requests
        with pytest.raises(HivemindError) as err:
            score_run(config, progress=False)
        message = str(err.value)
        assert "bad (judge)" in message and "401" in message and "STOPPED" in message
        assert "sk-wrong-key-5678" not in message
        assert fake.requests - before <= bad.concurrency   # stopped at once, not once per answer
        assert score_rows(config, "bad") == []
        assert score_rows(config, "good") == kept and len(kept) == 12


def test_unreachable_judge_stops_quickly_and_a_rerun_retries(tmp_path, collect_key):
    config = make_run(tmp_path, judge_records())
    with_scorers(config, judge("offline", "http://127.0.0.1:9/v1", concurrency=2),
                 max_attempts=2, retry_base_delay=0.0, request_timeout=5)
    with pytest.raises(HivemindError) as err:
        score_run(config, progress=False)
    assert "unreachable" in str(err.value) and "127.0.0.1:9" in str(err.value)
    assert score_rows(config, "offline") == []       # nothing stored: the next run tries every answer again


def test_killed_scoring_resumes_and_asks_only_for_what_is_missing(tmp_path, collect_key):
    config = make_run(tmp_path, judge_records())
    with FakeOpenAI(judge_max=5, delay=0.3) as fake:
        with_scorers(config, judge("slow", fake.url, concurrency=1))
        env = {**os.environ, "PYTHONPATH": str(ROOT), "HIVEMIND_RESULTS": str(tmp_path / "results")}
        command = [sys.executable, "-m", "hivemind.cli", "score", config.name, "-q"]
        process = subprocess.Popen(command, env=env, start_new_session=True)
        deadline = time.monotonic() + 60
        while len(score_rows(config, "slow")) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        stored = len(score_rows(config, "slow"))
        assert 3 <= stored < 12
        asked = fake.requests
        fake.configure(delay=0.0)
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert len(score_rows(config, "slow")) == 12
        assert fake.requests - asked == 12 - stored     # only the missing ones


# --- perplexity under SmolLM2 ----------------------------------------------------------------------

def shuffled(text: str, seed: int) -> str:
    words = text.split()
    random.Random(seed).shuffle(words)
    return " ".join(words)


@needs_alpaca
def test_perplexity_ranks_real_answers_above_their_word_salad_and_rerun_computes_nothing(tmp_path):
    real = json.loads((ALPACA / "gpt-4o-2024-05-13.json").read_text())[10:13]
    records = [{"prompt": r["instruction"], "model": "gpt-4o", "response": [r["output"], shuffled(r["output"], i)]}
               for i, r in enumerate(real)]
    config = with_scorers(make_run(tmp_path, records),
                          Scorer(name="logprob", kind="perplexity", params={"max_tokens": 48, "n_threads": 1}))
    summary = score_run(config, progress=False)
    assert summary.scorers["logprob"].scored == 6
    by_prompt: dict[str, dict[int, float]] = {}
    for _system, prompt_id, sample, score, error in score_rows(config, "logprob"):
        assert error is None and score < 0        # a mean log-probability
        by_prompt.setdefault(prompt_id, {})[sample] = score
    for scores in by_prompt.values():
        assert scores[0] > scores[1] + 1.0         # the real answer beats its own words shuffled
    with sqlite3.connect(config.store_path) as db:
        raw = [json.loads(r) for (r,) in db.execute("SELECT raw FROM scores WHERE scorer = 'logprob'")]
    assert all(r["tokens"] == 48 and r.get("truncated") for r in raw)   # long answers: read 48, said so
    again = score_run(config, progress=False)
    assert (again.scorers["logprob"].scored, again.scorers["logprob"].skipped) == (0, 6)
    # the prompt's KV cache, reused between samples, changes nothing: a fresh model gives the same score
    from hivemind.score.perplexity import LogProbScorer
    with Store(config.store_path, create=False) as store:
        last = [a for a in store.answers_to_score("fresh", [config.systems[0].identity]) if a.sample == 1][-1]
    fresh = LogProbScorer(config.scorer("logprob")).score_one(last)
    assert fresh.score == pytest.approx(by_prompt[last.prompt_id][1], abs=1e-3)


# --- relevance ---------------------------------------------------------------------------------------

@needs_alpaca
def test_relevance_prefers_the_answer_to_its_own_prompt(tmp_path):
    real = json.loads((ALPACA / "claude-3-opus-20240229.json").read_text())[20:26]
    n = len(real)
    records = [{"prompt": r["instruction"], "model": "own", "response": [r["output"]]} for r in real]
    records += [{"prompt": r["instruction"], "model": "offtopic", "response": [real[(i + 1) % n]["output"]]}
                for i, r in enumerate(real)]
    config = with_scorers(make_run(tmp_path, records), Scorer(name="relevance", kind="relevance"))
    score_run(config, progress=False)
    names = {s.identity: s.name for s in config.systems}
    by_prompt: dict[str, dict[str, float]] = {}
    for system_id, prompt_id, _sample, score, error in score_rows(config, "relevance"):
        assert error is None and -1 <= score <= 1
        by_prompt.setdefault(prompt_id, {})[names[system_id]] = score
    assert len(by_prompt) == n
    for scores in by_prompt.values():
        assert scores["own"] > scores["offtopic"]
    with Store(config.store_path, create=False) as store:
        assert len(store.prompt_vectors(config.embedder.id)) == n   # prompt vectors cached for next time


# --- imported scores ---------------------------------------------------------------------------------

def test_imported_jsonl_round_trip_and_unknown_answers_store_nothing(tmp_path):
    config = make_run(tmp_path, judge_records())
    with Store(config.store_path, create=False) as store:
        prompt_ids = {p.text: p.id for p in store.prompts()}
    lines = [{"prompt_id": prompt_ids[p], "system": m, "sample": s, "score": 0.25 * (i + s)}
             for i, p in enumerate(PROMPTS) for m in ("alpha", "beta") for s in range(2)]
    lines[0] = {"prompt": PROMPTS[0], "system": "alpha", "sample": 0, "score": 9}   # by prompt text
    good = tmp_path / "scores.jsonl"
    good.write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = import_scores(good, config, "human", pass_at=0.5)
    assert result.stored == 12
    identity = {s.name: s.identity for s in config.systems}
    stored = {(sid, pid, sample): score for sid, pid, sample, score, _ in score_rows(config, "human")}
    for line in lines[1:]:
        assert stored[(identity[line["system"]], line["prompt_id"], line["sample"])] == line["score"]
    assert stored[(identity["alpha"], prompt_ids[PROMPTS[0]], 0)] == 9
    reloaded = Scorer.model_validate(next(s for s in __import__("yaml").safe_load(
        (config.run_dir / "config.yaml").read_text())["scorers"] if s["name"] == "human"))
    assert (reloaded.kind, reloaded.pass_at) == ("imported", 0.5)

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt_id": prompt_ids[PROMPTS[1]], "system": "alpha", "sample": 1, "score": 1})
                   + "\n" + json.dumps({"prompt_id": prompt_ids[PROMPTS[1]], "system": "gamma", "sample": 0,
                                        "score": 2}) + "\n"
                   + json.dumps({"prompt_id": "p-nope", "system": "alpha", "sample": 7, "score": 3}) + "\n")
    with pytest.raises(HivemindError) as err:
        import_scores(bad, config, "other")
    assert "2 score(s) are for answers not in run" in str(err.value) and "'gamma'" in str(err.value)
    assert score_rows(config, "other") == []    # the good first line was not stored either
    # through the CLI: the message, exit 1, no traceback
    code = cli_main(["import", "--scores", str(bad), "--name", config.name, "--scorer", "other",
                     "--results", str(tmp_path / "results")])
    assert code == 1 and score_rows(config, "other") == []


def test_noveltybench_scores_jsonl_maps_repeats_to_their_class_score(tmp_path):
    generations = [{"id": "curated-1", "prompt": "Name a colour.", "model": "nb-model",
                    "generations": ["Blue.", "Blue!", "Crimson."]},
                   {"id": "curated-2", "prompt": "Pick a number.", "model": "nb-model",
                    "generations": ["Seven.", "Three.", "Seven."]}]
    source = tmp_path / "generations.jsonl"
    source.write_text("".join(json.dumps(g) + "\n" for g in generations))
    config = import_files([source], "nb", results_dir=tmp_path / "results")
    # NoveltyBench's score.py: the first member of each class is scored (1-10), later members get 0
    scored = [{**generations[0], "partition": [0, 0, 1], "generation_scores": [7, 0, 4], "partition_scores": [7, 4],
               "utility": 5.1},
              {**generations[1], "partition": [0, 1, 0], "generation_scores": [9, 2, 0], "partition_scores": [9, 2],
               "utility": 6.0}]
    path = tmp_path / "scores.jsonl"
    path.write_text("".join(json.dumps(s) + "\n" for s in scored))
    result = import_scores(path, config, "noveltybench")
    assert (result.stored, result.inherited) == (6, 2)
    with Store(config.store_path, create=False) as store:
        ids = {p.text: p.id for p in store.prompts()}
    stored = {(pid, sample): score for _sid, pid, sample, score, _ in score_rows(config, "noveltybench")}
    assert stored == {(ids["Name a colour."], 0): 7, (ids["Name a colour."], 1): 7, (ids["Name a colour."], 2): 4,
                      (ids["Pick a number."], 0): 9, (ids["Pick a number."], 1): 2, (ids["Pick a number."], 2): 9}
    # scores made for other generations are refused, not attached to the wrong text
    scored[0]["generations"] = ["Green.", "Blue!", "Crimson."]
    path.write_text(json.dumps(scored[0]) + "\n")
    with pytest.raises(HivemindError, match="differs from the stored answer"):
        import_scores(path, config, "noveltybench2")
    assert score_rows(config, "noveltybench2") == []


# --- reward model, offline ---------------------------------------------------------------------------

def test_reward_model_offline_is_a_clear_message_and_keeps_other_scores(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = make_run(tmp_path, judge_records())
    model_id = "OpenAssistant/reward-model-deberta-v3-large-v2"
    lines = [{"prompt": p, "system": "alpha", "sample": 0, "score": 1.0} for p in PROMPTS]
    (tmp_path / "s.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    import_scores(tmp_path / "s.jsonl", config, "kept")
    with_scorers(config, *config.scorers, Scorer(name="rm", kind="reward", model=model_id))
    with pytest.raises(HivemindError) as err:
        score_run(config, progress=False)
    message = str(err.value)
    assert model_id in message and "HF_HUB_OFFLINE" in message and "rm (reward)" in message
    assert score_rows(config, "rm") == [] and len(score_rows(config, "kept")) == 3


# --- config ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("scorers, problem", [
    ([{"name": "j", "kind": "judge"}], "needs a model"),
    ([{"name": "j", "kind": "judge", "model": "openai/x", "rubric": "1-7"}], "rubric must be one of"),
    ([{"name": "a", "kind": "relevance"}, {"name": "a", "kind": "perplexity"}], "appears twice"),
    ([{"name": "j", "kind": "judge", "model": "openai/x", "params": {"api_key": "sk-1"}}], "environment"),
    ([{"name": "x", "kind": "vibes"}], "must be one of"),
])
def test_bad_scorer_config_is_refused(tmp_path, scorers, problem):
    from hivemind.core.config_files import load_config

    path = tmp_path / "c.yaml"
    path.write_text(json.dumps({"name": "r", "prompts": "p.jsonl", "systems": [{"name": "s", "model": "openai/m"}],
                                "scorers": scorers}))
    with pytest.raises(HivemindError, match=problem):
        load_config(path)


def test_score_names_an_unknown_or_imported_scorer_clearly(tmp_path):
    config = with_scorers(make_run(tmp_path, judge_records()))     # `scorers: []`: not even the default gate
    with pytest.raises(HivemindError, match="no scorers"):
        score_run(config, progress=False)
    with_scorers(config, Scorer(name="ext", kind="imported"))
    with pytest.raises(HivemindError, match="hivemind import --scores"):
        score_run(config, scorers=["ext"], progress=False)
    with pytest.raises(HivemindError, match="no scorer named 'nope'"):
        score_run(config, scorers=["nope"], progress=False)


def test_default_gates_apply_only_where_they_were_calibrated():
    from hivemind.core.config import DEFAULT_PASS_AT, RunConfig

    base = {"name": "r", "prompts": "p.jsonl", "systems": [{"name": "s", "model": "openai/m"}]}
    scorers = [{"name": "lp", "kind": "perplexity"}, {"name": "other-lp", "kind": "perplexity", "model": "x.gguf"},
               {"name": "rel", "kind": "relevance"}, {"name": "mine", "kind": "relevance", "pass_at": 0.5}]
    config = RunConfig.model_validate({**base, "scorers": scorers})
    assert [s.pass_at for s in config.scorers] == [DEFAULT_PASS_AT["perplexity"], None,
                                                   DEFAULT_PASS_AT["relevance"], 0.5]
    other = RunConfig.model_validate({**base, "scorers": scorers, "embedder": "all-mpnet-base-v2"})
    assert other.scorer("rel").pass_at is None    # a gate is calibrated per embedder
