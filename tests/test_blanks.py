"""Blank answers and failed requests count as answers failing the quality gate (hivemind.analyze.diversity derives
where each enters every metric), on a real SQLite store, the real analysis and the CLI.

The tiny run is built by hand so every number can be derived on paper: 2 prompts, 2 systems, 3 samples.
Vectors are exact unit vectors in 10 dimensions (stored in the real store's embedding cache, keyed by the
texts' hashes, as the embed stage stores them); the prompts' own texts are embedded too, so the real
relevance gate is calibrated from them.

- prompt p's vector is e_p (p = 0, 1).
- a real answer to prompt p is 0.6 e_p + 0.8 e_w, each answer of a prompt its own w >= 3, so two real
  answers to one prompt have cosine 0.6 * 0.6 = 0.36 (distance 0.64) and relevance 0.6 to their prompt.
- system "offtopic" answers its sample 1 with an answer to the *next* prompt q: 0.5 e_q + (sqrt 0.75) e_w,
  relevance 0 to its own prompt and 0.5 to the other one.
- system "blanks" leaves its sample 1 blank (or whitespace, or a failed request).

The relevance line is the 95th percentile of cosines between the sampled (real) answers and the other
prompt: per prompt 4 real answers at 0 and the off-topic one at 0.5, so the 10 values are eight 0s and two
0.5s and the percentile is 0.5. Real answers (0.6) pass, the off-topic one (0) fails, and the blank fails
because it is blank. Per prompt and system, with n = 3 and the passing pair at distance 0.64:
    pass rate = 2/3
    effective diversity = 2 * 0.64 / (3 * 2) = 0.21333 (before: the blank dropped, n = 2, 0.64: 3x)
    utility (p = 0.8; the real answers are distinct ideas, samples 0 and 2 pass, sample 1 fails)
            = (1 - 0.8) / (1 - 0.8^3) * (1 + 0.8^2) = 0.2 / 0.488 * 1.64 = 0.67213
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hivemind import cli
from hivemind.analyze.stage import analyze_run
from hivemind.core.config_files import load_config
from hivemind.results.contract import RESULTS_JSON, RunResults
from hivemind.store import Prompt, Response, Store, text_hash

DIM = 10
PROMPTS = ["Name a bird.", "Name a tree."]
SYSTEMS = ["blanks", "offtopic"]
PASSING_DISTANCE = 1 - 0.6 * 0.6
ED = 2 * PASSING_DISTANCE / (3 * 2)
UTILITY = (1 - 0.8) / (1 - 0.8 ** 3) * (1 + 0.8 ** 2)
FAILURES = {"empty": "", "whitespace": " \n\t \r\x0b\x0c ", "error": None}


def unit(*pairs) -> np.ndarray:
    v = np.zeros(DIM, dtype=np.float32)
    for axis, value in pairs:
        v[axis] = value
    return v / np.linalg.norm(v)


def write_config(tmp_path: Path, name: str = "blanks-run", prompts=PROMPTS) -> Path:
    """A run config with two systems (never called: their answers are stored directly)."""
    prompt_file = tmp_path / "prompts.jsonl"
    prompt_file.write_text("".join(json.dumps({"id": f"p{i}", "prompt": t}) + "\n" for i, t in enumerate(prompts)))
    # hand-placed vectors, not MiniLM's: ideas are told apart by the cosine line these vectors were built for
    lines = [f"name: {name}", f"prompts: {prompt_file}", "samples: 3", f"results_dir: {tmp_path / 'results'}",
             "equivalence: embedding", "systems:"]
    for system in SYSTEMS:
        lines += [f"  - name: {system}", f"    model: openai/{system}", "    api_base: http://127.0.0.1:9/v1"]
    path = tmp_path / f"{name}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def build_store(config, failure: str = "empty", answerless: tuple[int, ...] = (), prompts=PROMPTS) -> None:
    """The hand-built run of the module docstring. Prompts in `answerless` get only failed requests."""
    blanks, offtopic = (s.identity for s in config.systems)
    rows, vectors, w = [], {}, 3

    def answer(system_id, p, sample, text, vector):
        rows.append(Response(system_id, f"p{p}", sample, text))
        vectors[text_hash(text)] = vector

    with Store(config.store_path) as store:
        for s in config.systems:
            store.add_system(s.identity, s.name, s.model, s.api_base, s.params)
        store.add_prompts([Prompt(f"p{i}", t) for i, t in enumerate(prompts)])
        for p in range(len(prompts)):
            if p in answerless:
                for system_id in (blanks, offtopic):
                    rows += [Response(system_id, f"p{p}", j, None, error="400 bad request") for j in range(3)]
                continue
            for system_id in (blanks, offtopic):
                for sample in (0, 2):
                    answer(system_id, p, sample, f"real answer {sample} of {system_id} to prompt {p}",
                           unit((p, 0.6), (w, 0.8)))
                    w = 3 + (w - 2) % (DIM - 3)
            text = FAILURES[failure]
            rows.append(Response(blanks, f"p{p}", 1, text, error="400 bad request" if text is None else None))
            if text:                                              # whitespace: embedded like any text
                vectors[text_hash(text)] = unit((w, 1.0))
            q = (p + 1) % len(prompts)
            answer(offtopic, p, 1, f"an answer to prompt {q}", unit((q, 0.5), (w, math.sqrt(0.75))))
        for p, prompt in enumerate(prompts):
            vectors[text_hash(prompt)] = unit((p, 1.0))
        store.add_responses(rows)
        hashes = sorted(vectors)
        store.add_embeddings(config.embedder.id, hashes, np.vstack([vectors[h] for h in hashes]))


@pytest.fixture
def run(tmp_path):
    def make(failure="empty", answerless=(), prompts=PROMPTS):
        config = load_config(write_config(tmp_path, prompts=prompts))
        build_store(config, failure, answerless, prompts)
        return config
    return make


def board_of(config) -> pd.DataFrame:
    return pd.read_csv(config.run_dir / "leaderboard.csv", dtype={"rank": str}).set_index("system")


@pytest.mark.parametrize("failure", list(FAILURES))
def test_a_blank_or_failed_answer_is_a_failing_answer_not_a_missing_one(run, failure):
    """The exact scenario: 2 real + 1 blank per prompt against 2 real + 1 off-topic. Before, the blank
    vanished: 100% pass rate and 3x the other system's effective diversity, so it ranked first."""
    config = run(failure)
    analyze_run(config, progress=False)
    board = board_of(config)
    info = json.loads((config.run_dir / "analysis.json").read_text())
    assert info["quality_gate"]["relevance_line"] == pytest.approx(0.5, abs=1e-6)
    for system in SYSTEMS:
        row = board.loc[system]
        assert row["pass_rate"] == pytest.approx(2 / 3)
        assert row["effective_diversity"] == pytest.approx(ED, abs=1e-6)
        assert row["utility"] == pytest.approx(UTILITY, abs=1e-6)
    assert board.loc["blanks", "rank"] == board.loc["offtopic", "rank"] == "1="     # equal, not ranked above
    assert board.loc["blanks", "n_failed"] == 2 and board.loc["offtopic", "n_failed"] == 0
    assert board.loc["blanks", "n_responses"] == 4 and board.loc["offtopic", "n_responses"] == 6
    # the blank is no idea; the off-topic answer is one (it is a real answer, only gated)
    assert board.loc["blanks", "distinct_ideas"] == 2 and board.loc["offtopic", "distinct_ideas"] == 3
    # the similarity figures use only real answers: the blank system's two answers per prompt, cosine 0.36
    assert board.loc["blanks", "intra_mean"] == pytest.approx(0.36, abs=1e-6)
    assert board.loc["offtopic", "intra_mean"] == pytest.approx(0.36 / 3, abs=1e-6)
    cells = pd.read_csv(config.run_dir / "diversity_per_prompt.csv").set_index(["system", "prompt_id"])
    assert list(cells.loc["blanks", "n_samples"]) == [3, 3] and list(cells.loc["blanks", "n_failed"]) == [1, 1]
    pooled = pd.read_csv(config.run_dir / "pooled_diversity.csv")
    assert list(pooled["n_answers"]) == [6, 6] and list(pooled["n_failed"]) == [1, 1]
    # pooled: 4 passing answers of 6, pairs between systems at distance 0.64, within a system too
    assert pooled["pooled_effective_diversity"].tolist() == pytest.approx([12 * PASSING_DISTANCE / 30] * 2, abs=1e-6)
    assert info["n_failed"] == {"blanks": 2, "offtopic": 0}
    assert any("2 blank answer(s) or failed request(s)" in w for w in info["warnings"])


def test_effective_distinctness_counts_a_failure_in_its_own_system_only(run):
    """|A| includes A's blank (g = 0); B holds the other system's real answers, off-topic one included."""
    config = run("empty")
    analyze_run(config, progress=False)
    board = board_of(config)
    # blanks: 2 passing answers x (2 real of offtopic at 0.64 + the off-topic one at 1) / (3 x 3)
    assert board.loc["blanks", "effective_distinctness"] == pytest.approx(2 * (2 * PASSING_DISTANCE + 1) / 9,
                                                                          abs=1e-6)
    # offtopic: 2 passing answers x (2 real of blanks at 0.64; the blank is not an answer to differ from) / (3 x 2)
    assert board.loc["offtopic", "effective_distinctness"] == pytest.approx(2 * 2 * PASSING_DISTANCE / 6, abs=1e-6)


def test_the_summary_and_report_show_the_blank_count(run, tmp_path, capsys):
    config = run("whitespace")
    assert cli.main(["analyze", str(tmp_path / "blanks-run.yaml"), "-q"]) == 0
    out = capsys.readouterr().out
    data = RunResults.model_validate_json((config.run_dir / RESULTS_JSON).read_text())
    by_name = {s.system: s for s in data.systems}
    assert by_name["blanks"].blank == 2 and by_name["blanks"].failed == 2
    assert by_name["offtopic"].blank == 0 and by_name["offtopic"].failed == 0
    assert by_name["blanks"].pass_rate == pytest.approx(2 / 3)
    header = next(line for line in out.splitlines() if line.split()[:2] == ["rank", "system"])
    end = header.index(" blank") + len(" blank")                  # columns are right-aligned under their header
    for name, blank in (("blanks", "2"), ("offtopic", "0")):
        line = next(line for line in out.splitlines() if name in line.split())
        assert line[:end].split()[-1] == blank and "67%" in line.split()      # pass rate 2/3, not 100%
    assert cli.main(["report", str(tmp_path / "blanks-run.yaml"), "-q"]) == 0
    lines = (config.run_dir / "report.md").read_text().splitlines()
    start = lines.index("## Leaderboard")
    table = [line for line in lines[start:] if line.startswith("|")]
    header = [c.strip() for c in table[0].strip("|").split("|")]
    for name, blank in (("blanks", "2"), ("offtopic", "0")):
        cells = [c.strip() for c in next(line for line in table if f"| {name} |" in line).strip("|").split("|")]
        assert cells[header.index("blank")] == blank
        assert cells[header.index("quality pass rate")] == "66.7%"


def test_an_answerless_prompt_is_not_blamed_on_missing_embeddings(run):
    """Prompt p1 has only failed requests: the relevance line cannot be calibrated (it needs real answers
    to two prompts), and the warning says so instead of claiming the prompts have no embeddings; p1
    still counts, as failing answers."""
    config = run("empty", answerless=(1,))
    analyze_run(config, progress=False)
    info = json.loads((config.run_dir / "analysis.json").read_text())
    text = " ".join(info["warnings"]) + info["quality_gate"]["description"]
    assert "no embeddings" not in text and "hivemind embed" not in text
    assert "only 1 prompt(s) have a real answer" in text
    board = board_of(config)
    assert board.loc["blanks", "n_failed"] == 1 + 3 and board.loc["offtopic", "n_failed"] == 3
    # without a relevance line every real answer passes: p0 2/3 (blanks) and 3/3 (offtopic); p1 0/3
    assert board.loc["blanks", "pass_rate"] == pytest.approx((2 / 3 + 0) / 2)
    assert board.loc["offtopic", "pass_rate"] == pytest.approx((1 + 0) / 2)


def test_a_prompt_without_embedded_prompt_text_is_still_named_as_such(run):
    """The other reason stays true: prompt texts not embedded -> run `hivemind embed`."""
    config = run("empty")
    with Store(config.store_path, create=False) as store:
        store.db.execute("DELETE FROM embeddings WHERE text_hash IN (?, ?)", [text_hash(p) for p in PROMPTS])
    analyze_run(config, progress=False)
    info = json.loads((config.run_dir / "analysis.json").read_text())
    assert any("the prompts have no embeddings: run `hivemind embed`" in w for w in info["warnings"])


def test_the_cli_in_a_subprocess_counts_failed_requests(run, tmp_path):
    """`python -m hivemind.cli analyze` on a store whose failures are 400 errors: exit 0, pass rate 2/3."""
    config = run("error")
    done = subprocess.run([sys.executable, "-m", "hivemind.cli", "analyze", str(tmp_path / "blanks-run.yaml"), "-q"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    data = RunResults.model_validate_json((config.run_dir / RESULTS_JSON).read_text())
    blanks = next(s for s in data.systems if s.system == "blanks")
    assert blanks.errors == 2 and blanks.blank == 0 and blanks.failed == 2 and blanks.pass_rate == pytest.approx(2 / 3)


def test_the_ray_engine_counts_failures_alike(run):
    """The Ray analysis maps the same passes over prompt shards: with an answer-less prompt between two
    shards, blanks and failed requests, every table equals the single-process one."""
    ray = pytest.importorskip("ray")
    from hivemind.engines.ray.analysis import analyze_run as analyze_on_ray

    config = run("whitespace", answerless=(1,), prompts=[*PROMPTS, "Name a fish."])
    analyze_run(config, progress=False)
    names = ["leaderboard.csv", "diversity_per_prompt.csv", "pooled_diversity.csv", "intra_model_per_prompt.csv"]
    local = {name: pd.read_csv(config.run_dir / name) for name in names}
    local_info = json.loads((config.run_dir / "analysis.json").read_text())
    assert local["leaderboard.csv"].set_index("system").loc["blanks", "n_failed"] == 2 + 3
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        analyze_on_ray(config, progress=False, shards=2)
    finally:
        ray.shutdown()
    for name in names:
        pd.testing.assert_frame_equal(pd.read_csv(config.run_dir / name), local[name], check_exact=False,
                                      rtol=0, atol=1e-9, obj=name)
    info = json.loads((config.run_dir / "analysis.json").read_text())
    assert info["engine"].startswith("ray") and info["n_failed"] == local_info["n_failed"]
    assert info["warnings"] == local_info["warnings"]
