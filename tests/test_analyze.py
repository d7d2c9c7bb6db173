"""analyze_run end to end on a real Store (SQLite) holding real answers embedded with the bundled model."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from hivemind import HivemindError
from hivemind.results import contract as results
from hivemind.analyze.stage import TABLES, analyze_run
from hivemind.core.config import RunConfig, System
from hivemind.analyze.similarity import pairwise_reference
from hivemind.store import Prompt, Response, Store, text_hash
from test_similarity import alpaca_answers, alpaca_vectors, needs_data

pytestmark = needs_data

# The results contract (hivemind.results.contract) is the one place columns are declared; here it is checked.
COLUMNS = {t.file: list(t.columns) for t in results.TABLES.values()
           if not t.file.startswith("inter_model") and t.file != "leaderboard.csv"}   # leaderboard: exact below
SQUARES = ["inter_model_similarity.csv", "inter_model_similarity_ci_low.csv", "inter_model_similarity_ci_high.csv",
           "inter_model_similarity_rescaled.csv"]
N_SYSTEMS = 3


def make_run(tmp_path, samples=(4, 3, 2), respond=True, embed=True, blank=True, duplicate=True) -> RunConfig:
    """Systems k take answers of models 4k .. 4k+samples[k]-1 as their samples (real, different texts)."""
    instructions, _, answers = alpaca_answers()
    vectors = alpaca_vectors()
    systems = [System(name=f"sys{k}", model=f"test/model-{k}") for k in range(N_SYSTEMS)]
    config = RunConfig(name="t", prompts="prompts.jsonl", samples=max(samples), systems=systems,
                       results_dir=str(tmp_path))
    with Store(config.store_path) as store:
        for s in systems:
            store.add_system(s.identity, s.name, s.model, s.api_base, s.params)
        store.add_prompts([Prompt(f"p{p}", instructions[p]) for p in range(len(answers))])
        if not respond:
            return config
        rows, vecs = [], {}
        for p in range(len(answers)):
            for k, s in enumerate(systems):
                for j in range(samples[k]):
                    m = 4 * k + j
                    text = answers[p][m]
                    if duplicate and p == 0 and k == 1 and j == 0:
                        text = answers[0][0]          # sys1 repeats sys0's first answer verbatim
                        m = 0
                    rows.append(Response(s.identity, f"p{p}", j, text))
                    vecs[text_hash(text)] = vectors[p, m]
        if blank:
            rows.append(Response(systems[2].identity, "p3", 9, "  \n "))   # an empty answer: skipped
        store.add_responses(rows)
        if embed:
            hashes = sorted(vecs)
            store.add_embeddings(config.embedder.id, hashes, np.array([vecs[h] for h in hashes]))
    return config


def listing(folder):
    return sorted(p.name for p in folder.iterdir())


def test_analyze_writes_every_table_with_the_contract_columns(tmp_path):
    config = make_run(tmp_path)
    summary = analyze_run(config, progress=False)
    assert sorted(p.name for p in summary.files) == sorted(TABLES)
    assert not [n for n in listing(config.run_dir) if n.startswith(".analyze")]   # temp folder gone
    for name, columns in COLUMNS.items():
        written = list(pd.read_csv(config.run_dir / name).columns)
        assert [c for c in written if c in columns] == columns, name      # every declared column, in order
    board = pd.read_csv(config.run_dir / "leaderboard.csv")
    info = json.loads((config.run_dir / "analysis.json").read_text())
    assert list(board.columns) == results.leaderboard_columns(info["primary_key"])
    assert board.columns[0] == info["primary_key"] == results.PRIMARY and info["format_version"] == results.FORMAT_VERSION
    names = [s.name for s in config.systems]
    for name in SQUARES:
        frame = pd.read_csv(config.run_dir / name, index_col="system")
        assert list(frame.index) == names and list(frame.columns) == names
    assert summary.n_empty_skipped == 1 and summary.n_prompts == 8 and summary.n_responses == 8 * 9


def test_analyze_values_equal_brute_force_on_the_stored_vectors(tmp_path):
    config = make_run(tmp_path)
    analyze_run(config, progress=False)
    with Store(config.store_path) as store:
        groups = list(store.iter_prompt_groups(config.embedder.id, [s.identity for s in config.systems]))
    for g in groups:       # the blank answer has no vector, so the store already leaves it out
        assert all(t.strip() for t in g.texts)
    intra, inter, floor = pairwise_reference(groups, N_SYSTEMS)
    got = pd.read_csv(config.run_dir / "inter_model_similarity.csv", index_col="system").to_numpy()
    np.testing.assert_allclose(got, inter, atol=1e-5)
    per_prompt = pd.read_csv(config.run_dir / "intra_model_per_prompt.csv")
    assert (per_prompt["n_samples"] >= 2).all() and len(per_prompt) == 8 * N_SYSTEMS
    for row in per_prompt.itertuples():
        k, p = int(row.system[3:]), int(row.prompt_id[1:])
        assert row.intra == pytest.approx(intra[p, k], abs=1e-5)
    buckets = pd.read_csv(config.run_dir / "intra_model_buckets.csv", index_col="system")
    np.testing.assert_allclose(buckets["mean"], np.nanmean(intra, axis=0), atol=1e-5)
    assert (buckets["mean_ci_low"] <= buckets["mean"]).all() and (buckets["mean"] <= buckets["mean_ci_high"]).all()
    np.testing.assert_allclose(buckets.filter(like="-").sum(axis=1), 1.0)
    info = json.loads((config.run_dir / "analysis.json").read_text())
    assert info["floor"] == pytest.approx(floor, abs=1e-5)
    assert info["systems"] == ["sys0", "sys1", "sys2"] and info["bootstrap"]["n"] == 1000
    assert info["embedder"] == config.embedder.id and info["n_responses"] == 72
    rescaled = pd.read_csv(config.run_dir / "inter_model_similarity_rescaled.csv", index_col="system").to_numpy()
    np.testing.assert_allclose(rescaled, (inter - floor) / (1 - floor), atol=1e-4)
    # The 0.8 line, calibrated to this embedder: the cosine with 0.8's rescaled value, floor + 0.8 (1 - floor).
    line = info["thresholds"]["intra_line_calibrated"]
    assert line == pytest.approx(floor + 0.8 * (1 - floor), abs=1e-5)
    expected = [(intra[:, k][~np.isnan(intra[:, k])] > line).mean() for k in range(N_SYSTEMS)]
    np.testing.assert_allclose(buckets["above_0.8_calibrated"], expected, atol=1e-9)
    assert info["thresholds"]["near_duplicate_calibrated"] == pytest.approx(
        floor + config.near_duplicate_threshold * (1 - floor), abs=1e-5)


def test_analyze_finds_the_planted_verbatim_duplicate(tmp_path):
    config = make_run(tmp_path)
    analyze_run(config, progress=False)
    dups = pd.read_csv(config.run_dir / "near_duplicates.csv")
    exact = dups[dups["exact"]]
    assert len(exact) == 1
    row = exact.iloc[0]
    assert (row.prompt_id, row.system_a, row.system_b) in {("p0", "sys0", "sys1"), ("p0", "sys1", "sys0")}
    assert row.similarity == pytest.approx(1.0, abs=1e-5) and row.text_a == row.text_b
    clusters = pd.read_csv(config.run_dir / "near_duplicate_clusters.csv")
    assert "sys0;sys1" in set(clusters[clusters["prompt_id"] == "p0"]["systems"])
    phrases = pd.read_csv(config.run_dir / "shared_phrases.csv")
    assert (phrases[phrases["prompt_id"] == "p0"]["systems"] == "sys0;sys1").any()
    board = pd.read_csv(config.run_dir / "leaderboard.csv")
    board = board.set_index("system").loc[["sys0", "sys1", "sys2"]]
    assert board["near_duplicate_rate"].iloc[0] > 0 and board["n_responses"].tolist() == [32, 24, 16]


def assert_fails_writing_nothing(config, match):
    before = listing(config.run_dir)
    with pytest.raises(HivemindError, match=match):
        analyze_run(config, progress=False)
    assert listing(config.run_dir) == before


def test_no_responses_is_an_error(tmp_path):
    assert_fails_writing_nothing(make_run(tmp_path, respond=False), "hivemind collect")


def test_not_embedded_is_an_error(tmp_path):
    assert_fails_writing_nothing(make_run(tmp_path, embed=False), "hivemind embed t")


def test_single_samples_everywhere_is_an_error(tmp_path):
    config = make_run(tmp_path, samples=(3, 1, 2), duplicate=False)
    assert_fails_writing_nothing(config, r"sys1 .*fewer than 2 .*samples")


def test_one_sample_by_design_gives_inter_model_tables_and_empty_intra(tmp_path):
    # `samples: 1` (e.g. imported one-answer-per-model outputs): no intra, loudly; inter still measured.
    config = make_run(tmp_path, samples=(1, 1, 1), duplicate=False, blank=False)
    assert config.samples == 1
    summary = analyze_run(config, progress=False)
    assert any("single sample" in w for w in summary.warnings)
    info = json.loads((config.run_dir / "analysis.json").read_text())
    assert info["warnings"] == summary.warnings
    assert pd.read_csv(config.run_dir / "intra_model_per_prompt.csv").empty
    buckets = pd.read_csv(config.run_dir / "intra_model_buckets.csv", index_col="system")
    assert (buckets["n_prompts"] == 0).all() and buckets["mean"].isna().all()
    inter = pd.read_csv(config.run_dir / "inter_model_similarity.csv", index_col="system")
    assert inter.notna().all().all() and inter.shape == (3, 3)


def test_a_system_with_only_empty_answers_is_an_error(tmp_path):
    config = make_run(tmp_path)
    with Store(config.store_path) as store:
        store.db.execute("UPDATE responses SET text = ' ' WHERE system_id = ?", (config.systems[2].identity,))
    assert_fails_writing_nothing(config, "sys2 is empty")


def test_missing_store_is_an_error(tmp_path):
    config = RunConfig(name="nothing", prompts="x.jsonl", systems=[System(name="a", model="m")],
                       results_dir=str(tmp_path))
    with pytest.raises(HivemindError, match="no store"):
        analyze_run(config, progress=False)
    assert not config.run_dir.exists()


def test_a_store_that_is_not_a_database_is_an_error(tmp_path):
    config = RunConfig(name="garbled", prompts="x.jsonl", systems=[System(name="a", model="m")],
                       results_dir=str(tmp_path))
    config.run_dir.mkdir(parents=True)
    config.store_path.write_bytes(b"not a database " * 100)
    with pytest.raises(HivemindError, match="unreadable store"):
        analyze_run(config, progress=False)


def test_rerun_replaces_the_tables(tmp_path):
    config = make_run(tmp_path)
    analyze_run(config, progress=False)
    first = (config.run_dir / "analysis.json").read_text()
    analyze_run(config, progress=False)
    assert listing(config.run_dir).count("analysis.json") == 1
    assert json.loads(first)["floor"] == json.loads((config.run_dir / "analysis.json").read_text())["floor"]
