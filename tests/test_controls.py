"""Controls on real answers: the quality-gated ranking must put babble, word salad and off-topic answers
below every real system, and verbatim copies at the homogeneous end.

Real AlpacaEval answers of five models to a few instructions are imported (one answer per model and
prompt, so the primary key is effective distinctness), embedded with the bundled embedder, and the
controls are built from them by `analyze --controls` machinery. Fluency: a real perplexity score, the mean
log-probability per token of the first FLUENCY_TOKENS tokens of an answer under the bundled SmolLM2, computed
here in-process with llama.cpp (the score stage will replace this) for the real answers and the word salad;
babble and off-topic answers get no score, so the relevance gate alone must catch them.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hivemind import results
from hivemind.analyze import analyze_run
from hivemind.config import Scorer
from hivemind.controls import KINDS, add_controls
from hivemind.embed import embed_run
from hivemind.imports import import_files
from hivemind.store import Score, Store

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "alpaca_eval_outputs"
MODELS = ["gpt-4o-2024-05-13", "claude-3-5-sonnet-20240620", "Meta-Llama-3.1-70B-Instruct-Turbo",
          "Qwen2-72B-Instruct", "mistral-large-2402"]
N_PROMPTS = 12
FLUENCY_TOKENS = 16
# Mean log-probability per token under SmolLM2: real answers score about -1.5 to -3, shuffled words about
# -6 to -8 (measured on these answers); the line sits between, nearer the real ones' low tail.
PASS_AT = -4.5

needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"real data not found at {DATA}")


def fluency_scorer():
    from llama_cpp import Llama

    from hivemind.local_server import SMOLLM2, model_path

    llm = Llama(model_path=str(model_path(SMOLLM2)), n_ctx=128, logits_all=True, verbose=False, n_threads=2)

    def score(text: str) -> float:
        tokens = llm.tokenize(text.encode("utf-8"), add_bos=True)[:FLUENCY_TOKENS + 1]
        if len(tokens) < 2:
            return float("nan")
        llm.reset()
        llm.eval(tokens)
        logits = np.asarray(llm.scores[:len(tokens) - 1], dtype=np.float64)
        top = logits.max(axis=1, keepdims=True)
        log_z = (top + np.log(np.exp(logits - top).sum(axis=1, keepdims=True)))[:, 0]
        return float(np.mean(logits[np.arange(len(tokens) - 1), tokens[1:]] - log_z))
    return score


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
    embed_run(config, progress=False)
    with Store(config.store_path) as store:
        controls = add_controls(config, store, progress=False)
        salad = next(c.identity for c in controls if c.kind == "salad")
        score = fluency_scorer()
        frame = store.responses_frame([s.identity for s in config.systems] + [salad])
        store.add_scores(Score(r.system_id, r.prompt_id, int(r.sample), "perplexity", score(r.text))
                         for r in frame.itertuples())
    config.scorers = [Scorer(name="perplexity", kind="perplexity", pass_at=PASS_AT)]
    analyze_run(config, progress=False, controls=True)
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
    _, board, info = controlled
    rate = board.set_index("system")["pass_rate"]
    # The salad keeps its topic (relevance passes) but not its fluency; babble and off-topic have no fluency
    # score, so relevance alone fails them.
    assert rate["control:salad"] <= 0.1
    assert rate["control:babble"] <= 0.1 and rate["control:off-topic"] <= 0.25
    assert (rate[[m for m in rate.index if not m.startswith("control:")]] >= 0.75).all()
    assert "perplexity >= -4.5" in info["quality_gate"]["description"]


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
