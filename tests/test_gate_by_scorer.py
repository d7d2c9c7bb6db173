"""Gate by scorer (issue 10, section 1): with two gating scorers, gate_by_scorer.csv gives per system the pass
rate and effective diversity under the run's gate and under each scorer alone, and the spread over scorers;
checked against direct computation from the stored vectors and scores (a real store, real analyze_run)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hivemind.analyze.stage import analyze_run
from hivemind.core.config import Scorer
from hivemind.report.stage import report_run
from hivemind.results.contract import OPTIONAL_TABLES
from hivemind.store import Prompt

from synthetic_run import Answer, make_run, unit

SYSTEMS = ["x", "y"]
PROMPTS = ["p1", "p2", "p3"]
SAMPLES = 4
LINES = {"judge": 3.0, "fluency": 0.5}


def scenario():
    rng = np.random.default_rng(5)
    answers, scores, vectors = [], [], {}
    for pid in PROMPTS:
        base = rng.standard_normal(12)
        for s in SYSTEMS:
            for x in range(SAMPLES):
                v = unit(base + rng.standard_normal(12))
                vectors[(s, pid, x)] = v
                answers.append(Answer(s, pid, x, f"{s} says {x} about {pid}, in words of its own.", v))
                # x is judged harshly, y leniently; fluency the other way round, so the gate depends on the scorer
                judge = rng.choice([2.0, 4.0], p=[0.6, 0.4] if s == "x" else [0.1, 0.9])
                fluency = rng.choice([0.2, 0.9], p=[0.1, 0.9] if s == "x" else [0.5, 0.5])
                if not (s == "y" and pid == "p2" and x == 0):     # one answer the judge could not score
                    scores.append((s, pid, x, "judge", judge))
                scores.append((s, pid, x, "fluency", fluency))
    return answers, scores, vectors


def expected(vectors, scores, gate: list[str]) -> dict[str, tuple[float, float]]:
    """(pass rate, effective diversity) per system, straight from the definitions: an answer passes when every
    scorer in `gate` that scored it gave >= its line; ED = sum_{i != j} g_i g_j (1 - cos_ij) / (n (n - 1)),
    both averaged over prompts."""
    table = {(s, p, x, name): v for s, p, x, name, v in scores}
    out = {}
    for s in SYSTEMS:
        rates, eds = [], []
        for pid in PROMPTS:
            g = np.array([all(table.get((s, pid, x, name), np.inf) >= LINES[name] for name in gate)
                          for x in range(SAMPLES)], dtype=float)
            X = np.array([vectors[(s, pid, x)] for x in range(SAMPLES)], dtype=np.float64)
            cos = X @ X.T
            total = sum(g[i] * g[j] * (1 - cos[i, j]) for i in range(SAMPLES) for j in range(SAMPLES) if i != j)
            rates.append(g.mean())
            eds.append(total / (SAMPLES * (SAMPLES - 1)))
        out[s] = (float(np.mean(rates)), float(np.mean(eds)))
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    answers, scores, vectors = scenario()
    config = make_run(tmp_path_factory.mktemp("gate"), SYSTEMS, [Prompt(p, f"Question {p}?") for p in PROMPTS],
                      answers, samples=SAMPLES, scores=scores,
                      scorers=[Scorer(name=n, kind="imported", pass_at=line) for n, line in LINES.items()])
    analyze_run(config, progress=False)
    report_run(config, top_prompts=0)
    return config, scores, vectors


def test_gate_by_scorer_matches_direct_computation(run):
    config, scores, vectors = run
    table = pd.read_csv(config.run_dir / "gate_by_scorer.csv")
    assert list(table.columns) == list(OPTIONAL_TABLES["gate_by_scorer.csv"].columns)
    assert set(table["gate"]) == {"all", "judge", "fluency"} and set(table["metric"]) == {"effective_diversity"}
    for gate, names in (("all", ["judge", "fluency"]), ("judge", ["judge"]), ("fluency", ["fluency"])):
        want = expected(vectors, scores, names)
        for s in SYSTEMS:
            row = table[(table.system == s) & (table.gate == gate)].iloc[0]
            assert row.pass_rate == pytest.approx(want[s][0], abs=1e-9), (gate, s)
            assert row.value == pytest.approx(want[s][1], abs=1e-5), (gate, s)
    for s in SYSTEMS:
        mine = table[(table.system == s) & (table.gate != "all")]
        assert mine.pass_rate_spread.iloc[0] == pytest.approx(mine.pass_rate.max() - mine.pass_rate.min())
        assert mine.value_spread.iloc[0] == pytest.approx(mine.value.max() - mine.value.min())
    assert table[(table.system == "x")].pass_rate_spread.iloc[0] > 0.2       # the planted dependence shows
    judged_y = table[(table.system == "y") & (table.gate == "judge")].n_scored.item()
    assert judged_y == len(PROMPTS) * SAMPLES - 1
    # The run's own gate is the leaderboard's.
    board = pd.read_csv(config.run_dir / "leaderboard.csv").set_index("system")
    for s in SYSTEMS:
        row = table[(table.system == s) & (table.gate == "all")].iloc[0]
        assert row.pass_rate == pytest.approx(board.at[s, "pass_rate"])
        assert row.value == pytest.approx(board.at[s, "effective_diversity"])


def test_report_shows_the_gate_by_scorer(run):
    config, _, _ = run
    page = (config.run_dir / "report.html").read_text(encoding="utf-8")
    md = (config.run_dir / "report.md").read_text(encoding="utf-8")
    assert "<h3>Quality gate by scorer</h3>" in page and "### Quality gate by scorer" in md
    section = page.split("<h3>Quality gate by scorer</h3>")[1].split("<h2>")[0]
    for header in ("pass rate: all scorers", "pass rate: judge", "pass rate: fluency", "pass rate spread",
                   "effective diversity spread"):
        assert f">{header}</th>" in section
    assert "judge &gt;= 3" in section and "fluency &gt;= 0.5" in section


def test_one_gating_scorer_writes_no_table(tmp_path):
    answers, scores, _ = scenario()
    config = make_run(tmp_path, SYSTEMS, [Prompt(p, f"Question {p}?") for p in PROMPTS], answers,
                      samples=SAMPLES, scores=scores,
                      scorers=[Scorer(name="judge", kind="imported", pass_at=3.0), Scorer(name="fluency", kind="imported")])
    analyze_run(config, progress=False)
    assert not (config.run_dir / "gate_by_scorer.csv").exists()
    report_run(config, top_prompts=0)
    assert "Quality gate by scorer" not in (config.run_dir / "report.html").read_text(encoding="utf-8")
