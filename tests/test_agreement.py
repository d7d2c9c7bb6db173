"""Embedder agreement and threshold calibration on real imported AlpacaEval answers, checked against
direct numpy computations on the stored vectors."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hivemind import HivemindError
from hivemind.studies.agreement import (AGREEMENT_FILE, CALIBRATION_FILE, QUANTILES, agreement_run, compare_warning,
                                measure_embedder, threshold_table)
from hivemind.cli import main
from hivemind.core.config import DEFAULT_EMBEDDER, Embedder, RunConfig, System
from hivemind.embed.stage import STATIC_EMBEDDER, embed_run
from hivemind.runs.imports import import_files
from hivemind.store import Prompt, Response, Store

ALPACA = Path(__file__).resolve().parents[2] / "shared" / "data" / "alpaca_eval_outputs"
needs_alpaca = pytest.mark.skipif(not ALPACA.is_dir(), reason=f"{ALPACA} not present (CI clones beside shared/)")
MODELS = ["Meta-Llama-3-8B-Instruct", "Llama-3-Instruct-8B-SimPO", "gpt-4o-2024-05-13", "gpt-4o-mini-2024-07-18",
          "claude-3-opus-20240229", "gemma-7b-it", "Qwen1.5-7B-Chat", "mistral-large-2402"]


def alpaca_subset(folder: Path, n_prompts: int) -> list[Path]:
    paths = []
    for model in MODELS:
        target = folder / f"{model}.json"
        target.write_text(json.dumps(json.loads((ALPACA / f"{model}.json").read_text())[:n_prompts]))
        paths.append(target)
    return paths


@pytest.fixture(scope="module")
def alpaca_run(tmp_path_factory) -> RunConfig:
    folder = tmp_path_factory.mktemp("alpaca")
    return import_files(alpaca_subset(folder, 6), "alpaca", results_dir=folder / "results")


def direct_inter(store: Store, embedder: str, ids: list[str]) -> np.ndarray:
    """Pair-weighted mean cosine between systems over prompts, from the raw vectors (one answer each)."""
    k = len(ids)
    num, den = np.zeros((k, k)), np.zeros((k, k))
    for group in store.iter_prompt_groups(embedder, ids):
        v = group.vectors.astype(np.float64)
        cos = v @ v.T
        for a, sa in enumerate(group.systems):
            for b, sb in enumerate(group.systems):
                num[sa, sb] += cos[a, b]
                den[sa, sb] += 1
    return num / den


@needs_alpaca
def test_agreement_on_real_alpaca_matches_direct_matrices(alpaca_run):
    result = agreement_run(alpaca_run, [DEFAULT_EMBEDDER, STATIC_EMBEDDER], progress=False)
    assert -1 <= result.spearman_inter <= 1
    assert np.isnan(result.spearman_intra)                          # one answer per model and prompt
    ids = [s.identity for s in alpaca_run.systems]
    names = [s.name for s in alpaca_run.systems]
    with Store(alpaca_run.store_path, create=False) as store:
        ma = direct_inter(store, Embedder().id, ids)
        mb = direct_inter(store, Embedder(model=STATIC_EMBEDDER).id, ids)
    cells = pd.read_csv(alpaca_run.run_dir / AGREEMENT_FILE)
    assert len(cells) == len(ids) * (len(ids) - 1) // 2
    for row in cells.itertuples():
        j, k = names.index(row.system_a), names.index(row.system_b)
        assert row.difference == pytest.approx(mb[j, k] - ma[j, k], abs=1e-6)
        assert row.cosine_a == pytest.approx(ma[j, k], abs=1e-6)
    # the rank correlation is the one of the direct per-system means to the others
    from scipy.stats import spearmanr
    off = ~np.eye(len(ids), dtype=bool)
    oa = np.array([ma[i, off[i]].mean() for i in range(len(ids))])
    ob = np.array([mb[i, off[i]].mean() for i in range(len(ids))])
    assert result.spearman_inter == pytest.approx(spearmanr(oa, ob).statistic, abs=1e-9)
    calib = pd.read_csv(alpaca_run.run_dir / CALIBRATION_FILE)
    assert set(calib["embedder"]) == {Embedder().id, Embedder(model=STATIC_EMBEDDER).id}


@needs_alpaca
def test_agreement_cli_prints_a_summary(alpaca_run, capsys, monkeypatch):
    monkeypatch.setenv("HIVEMIND_RESULTS", alpaca_run.results_dir)
    code = main(["agreement", "alpaca", "-q", "--embedder", DEFAULT_EMBEDDER, "--embedder", STATIC_EMBEDDER])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "Spearman" in out and "different scales" in out
    assert main(["agreement", "alpaca", "--embedder", DEFAULT_EMBEDDER]) == 1
    assert "two different embedders" in capsys.readouterr().err


def multi_sample_run(tmp_path, n_prompts: int = 8) -> RunConfig:
    """Two systems with several real answers per prompt: system 'llama' answers with the Llama family's
    answers, 'closed' with GPT and Claude's, so intra similarity is defined and real."""
    answers = {m: json.loads((ALPACA / f"{m}.json").read_text())[:n_prompts] for m in MODELS}
    systems = [System(name="llama", model="imported/llama"), System(name="closed", model="imported/closed")]
    sources = [MODELS[:2] + ["Qwen1.5-7B-Chat"], MODELS[2:5]]
    config = RunConfig(name="multi", prompts="unused.jsonl", samples=3, systems=systems,
                       results_dir=str(tmp_path / "results"))
    with Store(config.store_path) as store:
        store.add_prompts(Prompt(f"p{i}", answers[MODELS[0]][i]["instruction"]) for i in range(n_prompts))
        for system, models in zip(systems, sources):
            store.add_system(system.identity, system.name, system.model, None, {})
            store.add_responses(Response(system.identity, f"p{i}", s, answers[m][i]["output"])
                                for i in range(n_prompts) for s, m in enumerate(models))
    return config


@needs_alpaca
def test_calibration_against_direct_numpy(tmp_path):
    config = multi_sample_run(tmp_path)
    embed_run(config, progress=False)
    ids = [s.identity for s in config.systems]
    with Store(config.store_path, create=False) as store:
        measured = measure_embedder(store, config.embedder.id, ids)
        groups = list(store.iter_prompt_groups(config.embedder.id, ids))
    v = np.vstack([g.vectors for g in groups]).astype(np.float64)
    labels = np.concatenate([[p] * len(g.vectors) for p, g in enumerate(groups)])
    cross = [v[i] @ v[j] for i in range(len(v)) for j in range(i + 1, len(v)) if labels[i] != labels[j]]
    c = measured.calibration
    assert c.exact and c.n_pairs == len(cross)
    assert c.floor == pytest.approx(np.mean(cross), abs=1e-6)
    for q in QUANTILES:
        assert c.quantiles[q] == pytest.approx(np.quantile(cross, q), abs=1e-6)
    assert c.line_quantile(0.8) == pytest.approx(np.mean(np.array(cross) <= 0.8))
    assert c.calibrated_line(0.8) == pytest.approx(c.floor + 0.8 * (1 - c.floor))
    assert c.rescale(c.calibrated_line(0.9)) == pytest.approx(0.9)
    # per system, share of prompts whose intra mean cosine is above the line: raw and rescaled
    table = threshold_table(measured.stats, c, ["llama", "closed"], line=0.5)
    for k in range(2):
        intra = []
        for g in groups:
            x = g.vectors[g.systems == k].astype(np.float64)
            gram = x @ x.T
            intra.append((gram.sum() - np.trace(gram)) / (len(x) * (len(x) - 1)))
        intra = np.array(intra)
        assert table.loc[k, "share_above_0.5_raw"] == pytest.approx(np.mean(intra > 0.5))
        assert table.loc[k, "share_above_0.5_calibrated"] == pytest.approx(np.mean((intra - c.floor) / (1 - c.floor) > 0.5))
    # a sampled floor (max_pairs below the number of pairs) lands near the exact one
    with Store(config.store_path, create=False) as store:
        sampled = measure_embedder(store, config.embedder.id, ids, max_pairs=500).calibration
    assert not sampled.exact and sampled.n_pairs == 500
    assert sampled.floor == c.floor                                 # the mean is always exact
    assert abs(sampled.quantiles[0.5] - c.quantiles[0.5]) < 0.05
    with Store(config.store_path, create=False) as store:       # and a sample of answers, too many to keep
        few = measure_embedder(store, config.embedder.id, ids, max_pairs=100, max_answers=12).calibration
    assert not few.exact and 0 < few.n_pairs <= 12 * 11 // 2 and few.floor == c.floor
    # every sampled cosine is one of the real cross-prompt pairs' cosines
    assert np.abs(few.cosines[:, None] - np.array(cross)[None, :]).min(axis=1).max() < 1e-5


def test_compare_warning_only_across_embedders():
    assert compare_warning("sentence-transformers:a", "sentence-transformers:a") is None
    warning = compare_warning("sentence-transformers:a", "sentence-transformers:b")
    assert "sentence-transformers:a" in warning and "different scales" in warning


def test_agreement_needs_two_different_embedders(tmp_path):
    config = RunConfig(name="x", prompts="unused.jsonl", systems=[System(name="a", model="m")],
                       results_dir=str(tmp_path))
    with pytest.raises(HivemindError, match="two different embedders"):
        agreement_run(config, [DEFAULT_EMBEDDER, DEFAULT_EMBEDDER], progress=False)
