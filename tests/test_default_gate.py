"""The default offline gate: every config gets the fluency scorer (hivemind.score.fluency) unless it has a
fluency gate already, an import scores it at once, and on real NoveltyBench answers it puts the word-salad
control below every real model on the gated primary metric (with the relevance line alone it ranked above
two real models).

A few real NoveltyBench answers of four models are imported (ten samples per prompt, so the primary key is
effective diversity), embedded with the bundled embedder, and `analyze --controls` builds, embeds and scores
the controls with the run's own scorers.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import pandas as pd
import pytest

from hivemind.analyze.stage import analyze_run
from hivemind.core.config import DEFAULT_PASS_AT, RunConfig
from hivemind.embed.stage import embed_run
from hivemind.results.record import build_results
from hivemind.runs.imports import import_files
from hivemind.score.fluency import MIN_PAIRS, fluency
from test_quality_gate import per_answer

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "noveltybench_dev"
MODELS = ["openai__gpt-4o-2024-11-20", "anthropic__claude-3-5-sonnet-v2@20241022", "google__gemma-2-9b-it",
          "cohere__command-r-08-2024"]
N_PROMPTS = 6

needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"real data not found at {DATA}")


def real_lines(model: str) -> list[dict]:
    lines = (DATA / f"{model}.jsonl").read_text(encoding="utf-8").splitlines()[:N_PROMPTS]
    return [json.loads(line) for line in lines]


@pytest.fixture(scope="module")
def gated(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("default-gate")
    files = []
    for model in MODELS:
        path = tmp / f"{model}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in real_lines(model)), encoding="utf-8")
        files.append(path)
    config = import_files(files, "nb", results_dir=tmp / "results")   # scores the default gate too
    embed_run(config, progress=False)
    analyze_run(config, progress=False, controls=True)
    board = pd.read_csv(config.run_dir / "leaderboard.csv", dtype={"rank": str}).set_index("system")
    info = json.loads((config.run_dir / "analysis.json").read_text(encoding="utf-8"))
    return config, board, info


@needs_data
def test_an_import_is_gated_by_fluency_without_a_score_step(gated):
    config, _, info = gated
    assert [(s.name, s.kind, s.pass_at) for s in config.scorers] == [("fluency", "fluency", DEFAULT_PASS_AT["fluency"])]
    gate = info["quality_gate"]
    assert gate["gated_by"] == ["relevance", "fluency"] and gate["scored"]["fluency"] > 0
    assert "fluency >= 0" in gate["description"]
    assert build_results(config).gated_by == ["relevance", "fluency"]     # results.json names them too


@needs_data
def test_word_salad_ranks_below_every_real_model(gated):
    _, board, info = gated
    key = info["primary_key"]
    real = board[board["kind"] == "system"]
    assert len(real) == len(MODELS)
    for kind in ("salad", "babble", "off-topic"):
        assert board.at[f"control:{kind}", key] < real[key].min(), kind


@needs_data
def test_fluency_fails_the_controls_and_passes_real_answers(gated):
    config, _, _ = gated
    frame = per_answer(config, "fluency")
    judged = frame[frame["score"].notna()]
    passing = (judged["score"] >= DEFAULT_PASS_AT["fluency"]).groupby(judged["system"]).mean()
    for kind in ("salad", "babble"):
        assert passing[f"control:{kind}"] <= 0.05, kind
    # Real answers: at least 90% of each model's judged answers pass (the relevance line, calibrated per run
    # on these 6 prompts, is the stricter half of this run's gate).
    assert passing[[name for name in passing.index if not name.startswith("control:")]].min() >= 0.9


@needs_data
def test_fluency_reads_word_order_not_words():
    rng = random.Random(0)
    texts = [g for r in real_lines(MODELS[0]) for g in r["generations"] if len(g.split()) > 40][:10]
    assert len(texts) >= 5
    for text in texts:
        words = text.split()
        rng.shuffle(words)
        assert fluency(text) >= DEFAULT_PASS_AT["fluency"] > fluency(" ".join(words))
    assert fluency("Teal.") is None and fluency(" ".join(["word"] * (MIN_PAIRS - 1))) is None


def test_every_config_gets_a_fluency_gate_unless_it_has_one_or_opts_out():
    base = {"name": "r", "prompts": "p.jsonl", "systems": [{"name": "s", "model": "openai/m"}]}
    kinds = lambda scorers: [(s.name, s.kind) for s in RunConfig.model_validate({**base, **scorers}).scorers]  # noqa: E731
    assert kinds({}) == [("fluency", "fluency")]
    judge = {"name": "fluency", "kind": "judge", "model": "openai/j"}
    assert kinds({"scorers": [judge]}) == [("fluency", "judge"), ("default-fluency", "fluency")]
    assert kinds({"scorers": [{"name": "lp", "kind": "perplexity"}]}) == [("lp", "perplexity")]
    assert kinds({"scorers": []}) == []                       # no scorer at all, on purpose
    # A config written back and read again keeps exactly one.
    config = RunConfig.model_validate(base)
    again = RunConfig.model_validate(config.model_dump())
    assert [s.name for s in again.scorers] == ["fluency"]
