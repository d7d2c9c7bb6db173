"""The relevance half of the quality gate, on real answers with relevance on.

Real AlpacaEval answers of four models to twelve instructions are imported, plus an "off-topic" system
whose answer to each instruction is a real answer to another instruction (fluent text, wrong question).
Embedded with the bundled embedder, scored by the relevance scorer (answer-prompt cosine, default line
0.15) and analysed, the off-topic answers must fail the gate and the on-topic ones pass it. Each answer's
expected verdict is worked out here from the stored relevance scores and the run's calibrated relevance
line, independently of hivemind.analyze.quality_gate, and compared with the pass rates analysis reports.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hivemind.analyze.stage import analyze_run
from hivemind.core.config import DEFAULT_PASS_AT, Scorer
from hivemind.embed.stage import embed_run
from hivemind.runs.imports import import_files
from hivemind.score.stage import score_run
from hivemind.store import Store

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "alpaca_eval_outputs"
MODELS = ["gpt-4o-2024-05-13", "claude-3-5-sonnet-20240620", "Meta-Llama-3.1-70B-Instruct-Turbo",
          "Qwen2-72B-Instruct"]
FIRST, N_PROMPTS = 300, 12      # the instructions the default relevance line was calibrated beside
SHIFT = N_PROMPTS // 2          # the off-topic answer to instruction i is the answer to instruction i + 6
OFF_TOPIC = "off-topic"

pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"real data not found at {DATA} (shared data, "
                                "outside the project)")


def answers(model: str) -> list[dict]:
    return json.loads((DATA / f"{model}.json").read_text(encoding="utf-8"))[FIRST:FIRST + N_PROMPTS]


@pytest.fixture(scope="module")
def gated(tmp_path_factory):
    """The run analysed with the relevance scorer gating; returns (config, per-answer frame, leaderboard,
    analysis.json)."""
    tmp = tmp_path_factory.mktemp("gate")
    files = []
    for model in MODELS:
        path = tmp / f"{model}.json"
        path.write_text(json.dumps(answers(model)), encoding="utf-8")
        files.append(path)
    real = answers(MODELS[0])
    wrong = [{"instruction": row["instruction"], "generator": OFF_TOPIC,
              "output": real[(i + SHIFT) % N_PROMPTS]["output"]} for i, row in enumerate(real)]
    (tmp / "off.json").write_text(json.dumps(wrong), encoding="utf-8")
    config = import_files([*files, tmp / "off.json"], "gate", results_dir=tmp / "results")
    config.scorers = [Scorer(name="relevance", kind="relevance", pass_at=DEFAULT_PASS_AT["relevance"])]
    embed_run(config, progress=False)
    assert score_run(config, progress=False).complete
    analyze_run(config, progress=False)
    return config, per_answer(config), leaderboard(config), analysis(config)


def per_answer(config, scorer: str = "relevance") -> pd.DataFrame:
    """One row per answer with a `scorer` score: system name, prompt id, sample, score, error, and its cosine
    to its own prompt (recomputed here from the stored vectors). test_controls.py uses it too."""
    with Store.open_readonly(config.store_path) as store:
        names = {s["id"]: s["name"] for s in store.systems()}
        ids = list(names)
        scores = store.scores_frame()
        prompts = store.prompt_vectors(config.embedder.id)
        cosines = {}
        for group in store.iter_prompt_groups(config.embedder.id, ids):
            own = prompts[group.prompt_id]
            for system, sample, vector in zip(group.systems.tolist(), group.sample_numbers.tolist(), group.vectors):
                cosines[(ids[system], group.prompt_id, int(sample))] = float(np.dot(vector, own))
    scores = scores[scores["scorer"] == scorer].copy()
    scores["cosine"] = [cosines[key] for key in zip(scores["system_id"], scores["prompt_id"], scores["sample"])]
    scores["system"] = scores["system_id"].map(names)
    return scores


def leaderboard(config) -> pd.DataFrame:
    return pd.read_csv(config.run_dir / "leaderboard.csv").set_index("system")


def analysis(config) -> dict:
    return json.loads((config.run_dir / "analysis.json").read_text(encoding="utf-8"))


def test_relevance_scores_are_the_cosine_to_the_answers_own_prompt(gated):
    _, frame, _, _ = gated
    assert len(frame) == (len(MODELS) + 1) * N_PROMPTS and frame["error"].isna().all()
    np.testing.assert_allclose(frame["score"], frame["cosine"], atol=1e-4)


def test_off_topic_answers_fail_the_relevance_gate_and_on_topic_answers_pass(gated):
    _, frame, board, info = gated
    line = info["quality_gate"]["relevance_line"]
    assert line is not None and 0 < line < 0.5          # calibrated from this run's cross-prompt cosines
    assert "relevance" in info["quality_gate"]["description"]
    passes = (frame["score"] >= DEFAULT_PASS_AT["relevance"]) & (frame["cosine"] >= line)
    off = frame["system"] == OFF_TOPIC
    # The line lets a few off-topic answers through by design (config.py: 0.15 alone passes 13.5% of them;
    # with the calibrated line about 5%); here one of twelve, an answer that happens to share its topic.
    assert passes[off].sum() <= 1, frame[off & passes][["prompt_id", "score"]]
    assert (frame[off]["score"] < frame[~off]["score"].median()).all()   # all far below a real answer
    assert passes[~off].mean() >= 0.9, frame[~off & ~passes][["system", "prompt_id", "score"]]
    # The reported pass rates are exactly these verdicts (one answer per system and prompt).
    expected = passes.groupby(frame["system"]).mean()
    np.testing.assert_allclose(board.loc[expected.index, "pass_rate"], expected, atol=1e-9)
    assert board.at[OFF_TOPIC, "pass_rate"] <= 1 / N_PROMPTS
    assert board.drop(index=OFF_TOPIC)["pass_rate"].min() >= 0.75


def test_the_calibrated_line_alone_catches_most_off_topic_answers(gated):
    """With no relevance scorer the gate still has the run's relevance line (the 95th percentile of
    cosines to other prompts): it must fail most off-topic answers and pass most real ones."""
    config, frame, _, _ = gated
    plain = config.model_copy(update={"scorers": []})
    analyze_run(plain, progress=False)
    board, info = leaderboard(plain), analysis(plain)
    line = info["quality_gate"]["relevance_line"]
    passes = frame["cosine"] >= line
    expected = passes.groupby(frame["system"]).mean()
    np.testing.assert_allclose(board.loc[expected.index, "pass_rate"], expected, atol=1e-9)
    assert board.at[OFF_TOPIC, "pass_rate"] <= 0.25
    assert (board.drop(index=OFF_TOPIC)["pass_rate"] >= 0.9).all()
