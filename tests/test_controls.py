"""Controls on real answers: the quality-gated ranking must put babble, word salad and off-topic answers
below every real system, and verbatim copies at the homogeneous end.

Real AlpacaEval answers of five models to a few instructions are imported (one answer per model and
prompt, so the primary key is effective distinctness), embedded with the bundled embedder, scored by the
score stage's perplexity scorer (mean log-probability per answer token under the bundled SmolLM2, its
calibrated default gate), and the controls are built, embedded and scored by `analyze --controls`.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hivemind.results import contract as results
from hivemind.analyze.stage import analyze_run
from hivemind.core.config import DEFAULT_PASS_AT, Scorer
from hivemind.analyze.controls import KINDS
from hivemind.embed.stage import embed_run
from hivemind.runs.imports import import_files
from hivemind.score.stage import score_run
from hivemind.store import Store
from test_quality_gate import per_answer

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "alpaca_eval_outputs"
MODELS = ["gpt-4o-2024-05-13", "claude-3-5-sonnet-20240620", "Meta-Llama-3.1-70B-Instruct-Turbo",
          "Qwen2-72B-Instruct", "mistral-large-2402"]
N_PROMPTS = 12
FLUENCY_TOKENS = 64        # the perplexity scorer reads the first 64 answer tokens, as in the demo

needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"real data not found at {DATA}")


@pytest.fixture(scope="module")
def controlled(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("controls")
    files = []
    for model in MODELS:
        rows = json.loads((DATA / f"{model}.json").read_text(encoding="utf-8"))[:N_PROMPTS]
        path = tmp / f"{model}.json"
        path.write_text(json.dumps(rows), encoding="utf-8")
        files.append(path)
    config = import_files(files, "ctl", results_dir=tmp / "results")
    config.scorers = [Scorer(name="perplexity", kind="perplexity", params={"max_tokens": FLUENCY_TOKENS})]
    embed_run(config, progress=False)
    assert score_run(config, progress=False).complete
    analyze_run(config, progress=False, controls=True)   # builds, embeds and scores the controls too
    board = pd.read_csv(config.run_dir / "leaderboard.csv", dtype={"rank": str})
    info = json.loads((config.run_dir / "analysis.json").read_text(encoding="utf-8"))
    return config, board, info


@needs_data
def test_gated_ranking_puts_every_failure_control_below_every_real_system(controlled):
    _, board, info = controlled
    key = info["primary_key"]
    assert key == results.PRIMARY_ONE_SAMPLE == board.columns[0]          # one answer per model and prompt
    real = board[board["kind"] == "system"]
    control = board[board["kind"] == "control"].set_index("system")
    assert len(real) == len(MODELS) and sorted(control.index) == sorted(f"control:{k}" for k in KINDS)
    worst_real = real[key].min()
    for kind in ("babble", "salad", "off-topic"):
        assert control.at[f"control:{kind}", key] < worst_real, kind
    # Copies of the most typical answer: the homogeneous end, below every real system too.
    assert control.at["control:copies", key] < worst_real
    # The rows are sorted most diverse first; controls carry no rank.
    assert list(board[key]) == sorted(board[key], reverse=True)
    assert control["rank"].isna().all() and real["rank"].notna().all()


@needs_data
def test_each_failure_is_caught_by_the_gate_that_should_catch_it(controlled):
    """Per answer, not only per system: the verdict of each half of the gate, worked out here from the stored
    perplexity scores, the stored vectors and the run's relevance line, then compared with the pass rates."""
    config, board, info = controlled
    rate = board.set_index("system")["pass_rate"]
    frame = per_answer(config, "perplexity")
    line = info["quality_gate"]["relevance_line"]
    assert line is not None        # the prompts are embedded: relevance gates alongside perplexity
    assert f"perplexity >= {DEFAULT_PASS_AT['perplexity']}" in info["quality_gate"]["description"]
    fluent = frame["score"] >= DEFAULT_PASS_AT["perplexity"]
    relevant = frame["cosine"] >= line
    system = frame["system"]

    def share(verdict, name):
        return verdict[system == name].mean()

    assert len(frame) == (len(MODELS) + len(KINDS)) * N_PROMPTS and frame["score"].notna().all()
    # The salad keeps its topic (relevance passes it) but not its fluency: perplexity is what catches it.
    assert share(relevant, "control:salad") >= 0.75 and share(fluent, "control:salad") == 0.0
    # Babble: random words, no sentences: perplexity fails every one.
    assert share(fluent, "control:babble") == 0.0
    # Off-topic answers are real, fluent answers to the next prompt: relevance must be what fails them.
    assert share(fluent, "control:off-topic") >= 0.75 and share(relevant, "control:off-topic") <= 0.25
    real = ~system.str.startswith("control:")
    assert (fluent & relevant)[real].mean() >= 0.9
    # The reported pass rates are exactly these verdicts (one answer per system and prompt).
    expected = (fluent & relevant).groupby(system).mean()
    np.testing.assert_allclose(rate[expected.index], expected, atol=1e-9)
    assert rate["control:salad"] <= 0.1 and rate["control:babble"] <= 0.1 and rate["control:off-topic"] <= 0.25
    assert (rate[[m for m in rate.index if not m.startswith("control:")]] >= 0.75).all()


@needs_data
def test_copies_are_verbatim_real_answers_at_the_homogeneous_end(controlled):
    config, board, info = controlled
    with Store.open_readonly(config.store_path) as store:
        names = {s["id"]: s["name"] for s in store.systems()}
        texts: dict[tuple[str, str], str] = {}
        for row in store.db.execute("SELECT system_id, prompt_id, text FROM responses"):
            texts[(names[row[0]], row[1])] = row[2]
    prompts = {prompt for _, prompt in texts}
    for prompt in prompts:   # each copy is one real system's own answer to that prompt, word for word
        assert texts[("control:copies", prompt)] in {texts[(m, prompt)] for m in MODELS}, prompt
    # Not the gate's case: every copy passes it (a real, fluent, relevant answer) ...
    key = info["primary_key"]
    rows = board.set_index("system")
    assert rows.at["control:copies", "pass_rate"] == 1.0
    # ... but copying puts it at the homogeneous end: less distinct than every real system and than the
    # paraphrase ensemble, which also answers with real answers but from different systems.
    assert rows.at["control:copies", key] < rows.loc[MODELS, key].min()
    assert rows.at["control:copies", key] < rows.at["control:paraphrase-ensemble", key]


@needs_data
def test_controls_do_not_change_the_real_systems_figures(controlled, tmp_path):
    config, board, _ = controlled
    before = board[board["kind"] == "system"].set_index("system")
    config = config.model_copy(update={"results_dir": config.results_dir})
    analyze_run(config, progress=False, controls=False)          # same store, controls left out
    after = pd.read_csv(config.run_dir / "leaderboard.csv").set_index("system")
    assert sorted(after.index) == sorted(before.index)
    for column in ("effective_distinctness", "inter_mean_others", "near_duplicate_rate", "vendi", "pass_rate"):
        np.testing.assert_allclose(after.loc[before.index, column], before[column], atol=1e-9, err_msg=column)
