"""Per-category breakdown (issue 10, the taxonomy): analyze writes category_breakdown.csv when prompts carry
categories, with every headline metric checked against direct computation from the per-prompt tables, and
the report shows it (small categories flagged); a run without categories has neither table nor section."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from hivemind.analyze.stage import analyze_run
from hivemind.analyze.categories import DEFAULT_MIN_PROMPTS
from hivemind.report.stage import report_run
from hivemind.results.contract import OPTIONAL_TABLES, SIMILARITY_SCALE
from hivemind.store import Prompt

from synthetic_run import Answer, make_run

SYSTEMS = ["sys-a", "sys-b", "sys-c"]
STYLES, GENRES, CREATIVE = ("Alternative Styles", "Alternative Styles > Alternative Writing Genres",
                             "Creative Content Generation")     # the paper's taxonomy (hivemind.core.taxonomy)
CATEGORIES = {"h1": f"{STYLES} > Communication Styles", "h2": f"{STYLES} > Communication Styles",
              "h3": f"{STYLES} > Communication Styles", "po1": GENRES, "po2": GENRES, "c1": CREATIVE, "c2": CREATIVE}
SECTION = "Headline figures by prompt category"


def build(root, with_categories: bool):
    rng = np.random.default_rng(11)
    prompts = [Prompt(pid, f"Prompt {pid}: write something.", category if with_categories else None)
               for pid, category in CATEGORIES.items()]
    answers = []
    for pid in CATEGORIES:
        base = rng.standard_normal(16)
        for s in SYSTEMS:
            own = rng.standard_normal(16)
            for x in range(2):
                answers.append(Answer(s, pid, x, f"{s} answer {x} to {pid} with some words of its own here.",
                                      base * rng.uniform(0.5, 2) + own + 0.5 * rng.standard_normal(16)))
    config = make_run(root, SYSTEMS, prompts, answers)
    analyze_run(config, progress=False)
    report_run(config, top_prompts=0)
    return config


@pytest.fixture(scope="module")
def with_categories(tmp_path_factory):
    return build(tmp_path_factory.mktemp("cats"), True)


def test_analyze_writes_the_breakdown_matching_direct_computation(with_categories):
    run_dir = with_categories.run_dir
    table = pd.read_csv(run_dir / "category_breakdown.csv")
    info = json.loads((run_dir / "analysis.json").read_text(encoding="utf-8"))
    assert info["figure_similarity_scale"] == list(SIMILARITY_SCALE)      # the figures' fixed scale, recorded
    assert list(table.columns) == list(OPTIONAL_TABLES["category_breakdown.csv"].columns)
    intra = pd.read_csv(run_dir / "intra_model_per_prompt.csv")
    diversity = pd.read_csv(run_dir / "diversity_per_prompt.csv")
    pooled = pd.read_csv(run_dir / "pooled_diversity.csv").set_index("prompt_id")
    homogeneity = pd.read_csv(run_dir / "prompt_homogeneity.csv").set_index("prompt_id")
    groups = {("top", STYLES): ["h1", "h2", "h3", "po1", "po2"], ("fine", "Communication Styles"): ["h1", "h2", "h3"],
              ("fine", "Alternative Writing Genres"): ["po1", "po2"],
              ("top", CREATIVE): ["c1", "c2"], ("fine", CREATIVE): ["c1", "c2"]}   # no sub-category: fine = top
    assert len(table[table.system == "ALL"]) == len(groups)
    for (level, name), pids in groups.items():
        rows = table[(table.level == level) & (table.category == name)].set_index("system")
        cells, gated = intra[intra.prompt_id.isin(pids)], diversity[diversity.prompt_id.isin(pids)]
        assert rows.loc["ALL", "n_prompts"] == len(pids)
        assert bool(rows.loc["ALL", "few_prompts"]) == (len(pids) < DEFAULT_MIN_PROMPTS)
        assert rows.loc["ALL", "mean_intra"] == pytest.approx(cells.intra.mean())
        assert rows.loc["ALL", "share_above_0.8"] == pytest.approx((cells.intra > 0.8).mean())
        assert rows.loc["ALL", "mean_prompt_similarity"] == pytest.approx(homogeneity.loc[pids, "mean_similarity"].mean())
        assert rows.loc["ALL", "effective_diversity"] == pytest.approx(gated.effective_diversity.mean())
        assert rows.loc["ALL", "pooled_vendi"] == pytest.approx(pooled.loc[pids, "pooled_vendi"].mean())
        assert rows.loc["ALL", "pooled_distinct_ideas"] == pytest.approx(pooled.loc[pids, "pooled_distinct_ideas"].mean())
        for system in SYSTEMS:
            mine = gated[gated.system == system]
            assert rows.loc[system, "effective_diversity"] == pytest.approx(mine.effective_diversity.mean())
            assert rows.loc[system, "n_prompts"] == len(pids)


def test_report_shows_every_category_with_its_prompts_and_flags_small_ones(with_categories):
    page = (with_categories.run_dir / "report.html").read_text(encoding="utf-8")
    md = (with_categories.run_dir / "report.md").read_text(encoding="utf-8")
    assert f"<h2>{SECTION}</h2>" in page and f"## {SECTION}" in md
    section = page.split(f"<h2>{SECTION}</h2>")[1].split("<h2>")[0]
    for name in (STYLES, "Communication Styles", "Alternative Writing Genres", CREATIVE):
        assert f"<td>{name}</td>" in section
    assert section.count(f"<td>{CREATIVE}</td>") == 2                   # its top and its fine row
    assert f">{CREATIVE}</th>" in section and f">{STYLES}</th>" in section   # the by-system table's tops
    assert section.count("few prompts: too noisy to compare") == 4      # all but Alternative Styles (5 prompts)
    assert "4 categories have too few prompts" in section
    assert "by system and category" in section and "<td>sys-b</td>" in section
    styles = next(line for line in md.splitlines() if line.startswith(f"| {STYLES} | top |"))
    assert "| 5 |" in styles and "few prompts" not in styles


def test_no_categories_no_table_and_no_section(tmp_path):
    config = build(tmp_path, False)
    assert not (config.run_dir / "category_breakdown.csv").exists()
    assert SECTION not in (config.run_dir / "report.html").read_text(encoding="utf-8")
    assert SECTION not in (config.run_dir / "report.md").read_text(encoding="utf-8")
