"""The report's first screen (issue 19): findings written from the numbers, a compact ranking and the settings,
above the fold at 1366x768 in a real headless Chromium, and nothing on the page wider than the viewport.

Two real runs: one shaped like the demo (the packaged demo config: its 3 systems with their decoding
parameters, 8 prompts x 5 samples) filled with real NoveltyBench generations, and 16 AlpacaEval models imported
with hivemind's own importer (60 instructions, one answer each). Both are embedded by the embed stage with the
bundled MiniLM, analysed and reported as `hivemind run` would. Unit tests check the findings on a planted
store whose answer is known, the column folding and the settings text.

Screenshots for the docs (docs/img/report_demo.png, docs/img/report_alpaca16.png), at 1366 px:
    make demo        # results/demo/report.html
    PYTHONPATH=$PWD .venv/bin/python tests/test_report_screen.py docs/img results/demo
builds the 16-model import in a temporary folder and shoots both reports' first screens.
"""
from __future__ import annotations

import io
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from hivemind.analyze.stage import analyze_run
from hivemind.core.config import System
from hivemind.core.config_files import resolve_run
from hivemind.embed.stage import embed_run
from hivemind.report.load import load_tables
from hivemind.report.matrix import matrix_html
from hivemind.report.overview import (
    Folded,
    decoding_rows,
    findings,
    fold_columns,
    fold_note,
    ranking_table,
    settings_rows,
    system_pairs,
)
from hivemind.report.stage import report_run
from hivemind.report.tables import headline
from hivemind.results.record import save_run_config
from hivemind.runs.imports import import_files
from hivemind.score.stage import score_run
from hivemind.store import Prompt, Response, Store

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic_run import Answer, make_run  # noqa: E402
import test_browser  # noqa: E402
from browser_support import start_chromium  # noqa: E402
from test_browser import check_clean_page, needs_chromium, open_report  # noqa: E402

driver = test_browser.driver        # the shared headless Chromium fixture (its viewport is set per page here)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
ALPACA, NOVELTY = DATA / "alpaca_eval_outputs", DATA / "noveltybench_dev"
NOVELTY_MODELS = ["openai__gpt-4o-mini-2024-07-18", "google__gemma-2-9b-it", "meta-llama__Llama-3.2-1B-Instruct"]
WIDTH, HEIGHT, NARROW = 1366, 768, 390
ALPACA_PROMPTS = 60
TEST_CHARS = 700          # the tests embed each answer's start only (the screenshots embed them whole)


# Runs ------------------------------------------------------------------------------------------------
def demo_shaped_run(root: Path):
    """The packaged demo config (3 systems, their decoding parameters, 8 prompts x 5 samples) with real
    NoveltyBench generations of three chat models in place of the bundled local models' answers."""
    config = resolve_run("demo").model_copy(update={"results_dir": str(root), "prompts": "prompts.jsonl"})
    save_run_config(config)
    rows = {m: [json.loads(line) for line in (NOVELTY / f"{m}.jsonl").read_text(encoding="utf-8").splitlines()][:8]
            for m in NOVELTY_MODELS}
    with Store(config.store_path) as store:
        for s in config.systems:
            store.add_system(s.identity, s.name, s.model, s.api_base, s.params)
        store.add_prompts([Prompt(r["id"], r["prompt"]) for r in rows[NOVELTY_MODELS[0]]])
        store.add_responses(Response(s.identity, r["id"], j, text) for s, m in zip(config.systems, NOVELTY_MODELS)
                            for r in rows[m] for j, text in enumerate(r["generations"][:config.samples]))
    embed_run(config, progress=False)
    score_run(config, scorers=["relevance"], progress=False)    # the perplexity scorer needs the local server
    return finish(config)


def alpaca16_run(root: Path, n_prompts: int = ALPACA_PROMPTS, max_chars: int | None = None):
    """The 16 AlpacaEval models, the first n_prompts instructions each, imported as a user would; max_chars
    keeps the start of each answer (one embedding window each: a test's embedding stays short)."""
    subset = root / "subset"
    subset.mkdir()
    for path in sorted(ALPACA.glob("*.json")):
        records = json.loads(path.read_text(encoding="utf-8"))[:n_prompts]
        for record in records:
            record["output"] = record["output"][:max_chars]
        (subset / path.name).write_text(json.dumps(records), encoding="utf-8")
    config = import_files(sorted(subset.glob("*.json")), "alpaca16", results_dir=root / "results")
    return finish(config)


def finish(config):
    embed_run(config, progress=False)           # nothing left to embed where the caller embedded first
    analyze_run(config, progress=False)
    report_run(config, top_prompts=1)
    return config


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    if not NOVELTY.is_dir():
        pytest.skip(f"{NOVELTY} not present (CI clones beside shared/)")
    return demo_shaped_run(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="module")
def alpaca16(tmp_path_factory):
    if not ALPACA.is_dir():
        pytest.skip(f"{ALPACA} not present (CI clones beside shared/)")
    return alpaca16_run(tmp_path_factory.mktemp("alpaca16"), max_chars=TEST_CHARS)


# Findings on a store whose answer is known ------------------------------------------------------------
def planted_run(root: Path):
    """4 systems x 6 prompts x 3 samples of planted unit vectors: `wide` answers every sample far from the
    others (most diverse); `echo` repeats one answer almost exactly (least diverse); `echo` and `twin` answer
    with the same direction per prompt (the closest pair); `loner` answers apart from everyone."""
    rng = np.random.default_rng(5)
    prompts = [Prompt(f"p{k}", f"Prompt {k}: write something of your own.") for k in range(6)]
    answers = []
    for prompt in prompts:
        shared, apart = rng.standard_normal(64), rng.standard_normal(64)
        for x in range(3):
            planted = {"wide": rng.standard_normal(64), "echo": shared + 0.02 * rng.standard_normal(64),
                       "twin": shared + 0.25 * rng.standard_normal(64), "loner": apart + 0.6 * rng.standard_normal(64)}
            answers += [Answer(name, prompt.id, x, f"{name} says answer number {x} to {prompt.id} in its own words.",
                               vector) for name, vector in planted.items()]
    config = make_run(root, ["wide", "echo", "twin", "loner"], prompts, answers, samples=3)
    analyze_run(config, progress=False)
    return config


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    return planted_run(tmp_path_factory.mktemp("planted"))


def test_findings_name_the_right_systems(planted):
    t = load_tables(planted)
    found = findings(t, planted, headline(t))
    assert len(found) == 3
    ends, pair, line = found
    assert ends.startswith("Most diverse: wide (effective diversity ") and "least diverse: echo (" in ends
    assert "intervals do not overlap" in ends                     # planted far apart
    assert pair.startswith("Closest pair: echo and twin, mean cosine ")
    assert {system_pairs(t)[0].system_a, system_pairs(t)[0].system_b} == {"echo", "twin"}
    assert "(mean over systems, all top-p; the paper: 79.0%)" in line
    assert "this run: 3, sentence-transformers:all-MiniLM-L6-v2" in line
    print("\n".join(found))
    ranking = ranking_table(t)
    assert ranking["system"].tolist()[0] == "wide" and ranking["system"].tolist()[-1] == "echo"
    assert ranking["rank"].tolist()[0] == "1"


def test_findings_of_a_one_answer_run_use_the_inter_model_range(planted, tmp_path):
    t = load_tables(planted)
    t.buckets["above_0.8"] = np.nan                # as a one-answer run has it
    line = findings(t, planted, headline(t))[-1]
    assert line.startswith("One answer per system and prompt") and "the paper: 0.71 – 0.82" in line


# Column folding and settings --------------------------------------------------------------------------
def test_constant_and_undefined_columns_are_folded_with_a_note():
    frame = pd.DataFrame({"rank": ["1", "2", "3"], "system": ["a", "b", "c"], "Vendi": ["1.00"] * 3,
                          "intra": ["—", "—", "—"], "inter": ["0.61", "0.70", "—"], "cost": ["0", "0", "0"]})
    folded = fold_columns(frame)
    assert list(folded.shown.columns) == ["rank", "system", "inter"]
    assert folded.constant == {"Vendi": "1.00", "cost": "0"} and folded.undefined == ["intra"]
    note = fold_note(folded, one_answer=True)
    assert "the same for every system" in note and "Vendi 1.00; cost 0" in note
    assert "undefined for every system (one answer per system and prompt" in note and note.endswith("intra.")
    one_row = fold_columns(frame.head(1))                    # one system: nothing is "the same for every system"
    assert list(one_row.shown.columns) == list(frame.columns) and fold_note(one_row) is None
    assert fold_note(Folded(frame)) is None


def test_settings_name_every_decoding_parameter_and_max_tokens():
    systems = [System(name="a", model="m/a", params={"temperature": 1.0, "top_p": 0.9, "max_tokens": 64}),
               System(name="b", model="m/b", params={"top_p": 0.9, "temperature": 1.0, "max_tokens": 64}),
               System(name="c", model="m/c", params={"temperature": 2.0, "min_p": 0.1, "seed": 3}),
               System(name="d", model="m/d")]
    rows = dict(decoding_rows(systems, imported=False))
    assert rows == {"decoding: a, b": "temperature 1.0, top_p 0.9, max_tokens 64",
                    "decoding: c": "temperature 2.0, min_p 0.1, seed 3, max_tokens not set",
                    "decoding: d": "provider defaults; max_tokens not set"}
    assert decoding_rows(systems[:2], imported=False) == [("decoding (all 2 systems)",
                                                           "temperature 1.0, top_p 0.9, max_tokens 64")]
    assert decoding_rows([System(name="x", model="m/x")] * 3, imported=True) == [
        ("decoding (all 3 systems)", "not recorded (imported answers)")]


def test_demo_report_states_its_settings_and_findings(demo_run):
    t = load_tables(demo_run)
    settings = dict(settings_rows(t, demo_run, headline(t)))
    assert settings["prompts"].startswith("8 from prompts.jsonl") and settings["samples"].startswith("5 per system")
    assert "temperature 2.0, top_p 1.0, min_p 0.1, max_tokens 64" in settings.values()
    assert settings["embedder"].endswith("all-MiniLM-L6-v2") and settings["equivalence"].startswith("learned")
    assert "cut at max_tokens" not in settings                 # no answer stopped at the limit
    page = (demo_run.run_dir / "report.html").read_text(encoding="utf-8")
    md = (demo_run.run_dir / "report.md").read_text(encoding="utf-8")
    for text in findings(t, demo_run, headline(t)):
        assert text in md
    assert "## Settings" in md and "| samples | 5 per system and prompt" in md
    assert str(demo_run.run_dir.parent) not in page + md       # no folder of this machine (snapshots refuse one)
    assert page.index('id="hm-findings"') < page.index('id="hm-ranking"') < page.index('<nav class="toc"')


# In Chromium ------------------------------------------------------------------------------------------
OVERFLOW = """
const W = document.documentElement.clientWidth, bad = [];
for (const el of document.querySelectorAll('body *')) {
  let clipped = false;
  for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
    if (getComputedStyle(a).overflowX !== 'visible') { clipped = true; break; }
  }
  const r = el.getBoundingClientRect();
  if (clipped || (r.width === 0 && r.height === 0)) continue;
  if (r.right > W + 1 || r.left < -1) bad.push(`${el.tagName}.${el.className} ${Math.round(r.left)}..${Math.round(r.right)}`);
}
return {width: W, scroll: document.documentElement.scrollWidth, bad: bad.slice(0, 8)};
"""


def viewport(driver, width: int, height: int) -> None:
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})


def first_screen(driver, path: Path, width: int = WIDTH, height: int = HEIGHT) -> dict:
    """Open a report at width x height, scrolled to the top: where its first screen's parts end, in px."""
    from selenium.webdriver.support.ui import WebDriverWait

    viewport(driver, width, height)
    driver.get(path.as_uri())
    WebDriverWait(driver, 60).until(lambda d: d.execute_script(
        "const b = document.getElementById('hm-browser'); return !b || b.dataset.ready === '1'"))
    driver.execute_script("window.scrollTo(0, 0)")
    return driver.execute_script("""
        const box = s => { const e = document.querySelector(s); return e ? e.getBoundingClientRect() : null; };
        return {row: box('#hm-ranking tbody tr').bottom, findings: box('#hm-findings').bottom,
                settings_top: box('#hm-settings').top, toc: box('nav.toc').top,
                n_findings: document.querySelectorAll('#hm-findings li').length,
                viewport: [window.innerWidth, window.innerHeight]};""")


def check_report_page(driver, config, systems: list[str]) -> dict:
    where = first_screen(driver, config.run_dir / "report.html")
    assert where["viewport"] == [WIDTH, HEIGHT]
    assert where["row"] < HEIGHT, where                     # the ranking's first row above the fold
    assert where["findings"] < where["row"] and where["settings_top"] < HEIGHT and where["n_findings"] >= 2
    layout = driver.execute_script(OVERFLOW)
    assert layout["bad"] == [] and layout["scroll"] <= layout["width"], layout
    first_row = driver.find_element("css selector", "#hm-ranking tbody tr").text
    assert any(name in first_row for name in systems)
    settings = driver.find_element("id", "hm-settings").text
    for label in ("prompts", "samples", "decoding", "embedder", "equivalence", "quality gate"):
        assert label in settings
    for size in ((NARROW, 844),):                           # a phone: still nothing wider than the screen
        first_screen(driver, config.run_dir / "report.html", *size)
        layout = driver.execute_script(OVERFLOW)
        assert layout["bad"] == [] and layout["scroll"] <= layout["width"], (size, layout)
    viewport(driver, WIDTH, HEIGHT)
    open_report(driver, config)
    check_clean_page(driver)                                # no console error, no request leaving the page
    return where


def matrix_switch(driver) -> None:
    """Every cell says its value on hover; the scale switch recolours the cells (CSS only)."""
    cell = driver.find_element("css selector", "table.hm-matrix tbody tr:nth-child(1) td:nth-child(3)")
    assert "mean cosine" in cell.get_attribute("title")
    before = cell.value_of_css_property("background-color")
    fixed, ranged = (driver.find_element("id", f"hm-scale-{k}") for k in ("fixed", "range"))
    target = fixed if ranged.is_selected() else ranged
    driver.execute_script("arguments[0].click()", target)
    assert cell.value_of_css_property("background-color") != before


@needs_chromium
def test_demo_sized_report_first_screen(demo_run, driver):
    where = check_report_page(driver, demo_run, [s.name for s in demo_run.systems])
    matrix_switch(driver)
    print(f"demo-sized: first ranking row ends at {where['row']:.0f} px")


@needs_chromium
def test_sixteen_model_report_first_screen(alpaca16, driver):
    assert len(alpaca16.systems) == 16
    where = check_report_page(driver, alpaca16, [s.name for s in alpaca16.systems])
    page = (alpaca16.run_dir / "report.html").read_text(encoding="utf-8")
    assert "undefined for every system (one answer per system and prompt" in page   # intra folded, said why
    assert "own range is shown first" in page          # 16 close systems: the fixed scale is one colour
    assert driver.find_element("id", "hm-scale-range").is_selected()
    matrix_switch(driver)
    print(f"alpaca16: first ranking row ends at {where['row']:.0f} px")


def planted_matrix(n: int, low: float, high: float) -> pd.DataFrame:
    names = [f"family-{k % 5}-model-{k:02d}-instruct" for k in range(n)]
    values = np.random.default_rng(n).uniform(low, high, (n, n))
    values = (values + values.T) / 2
    np.fill_diagonal(values, 1.0)
    return pd.DataFrame(values, index=names, columns=names)


def test_the_range_view_comes_first_only_where_the_fixed_scale_is_uniform():
    close, spread = planted_matrix(6, 0.70, 0.85), planted_matrix(6, 0.10, 0.90)
    assert 'id="hm-scale-range" checked' in matrix_html(close, None)
    assert 'id="hm-scale-fixed" checked' in matrix_html(spread, None)
    page = matrix_html(close, pd.Series(0.9, index=close.index))
    assert page.count("<td") == 36 and page.count('class="d"') == 6              # diagonal: intra-model mean
    first, second = close.index[:2]
    assert f'title="{first} × {second}: mean cosine {close.at[first, second]:.3f}"' in page    # the value on hover


@needs_chromium
@pytest.mark.parametrize("n", [3, 16, 50])
def test_the_matrix_fits_a_laptop_screen_from_3_to_50_systems(n, driver, tmp_path):
    from hivemind.report.html import CSS

    page = tmp_path / "matrix.html"
    page.write_text(f'<!DOCTYPE html><html><head><meta charset="utf-8"><style>{CSS}</style></head><body><main>'
                    f"{matrix_html(planted_matrix(n, 0.6, 0.9), None)}</main></body></html>", encoding="utf-8")
    viewport(driver, WIDTH, HEIGHT)
    driver.get(page.as_uri())
    size = driver.execute_script("""const t = document.querySelector('table.hm-matrix'), b = t.parentElement;
        const c = t.querySelector('tbody td').getBoundingClientRect();
        return {table: t.scrollWidth, box: b.clientWidth, cell: [c.width, c.height]};""")
    assert size["table"] <= size["box"], size                  # no scrolling needed at 1366 px
    assert min(size["cell"]) >= 15, size                          # a cell stays big enough to point at
    cells = driver.find_elements("css selector", "table.hm-matrix tbody td")
    assert len(cells) == n * n and all(c.get_attribute("title") for c in cells[:: max(1, n // 3)])
    assert bool(cells[1].text) == (n <= 20)                        # values printed up to 20 systems, then on hover


# Screenshots for the docs ------------------------------------------------------------------------------
def screenshot(driver, report: Path, out: Path) -> None:
    """The report's first screen at 1366x768 as a PNG (palette-quantised: docs images stay small)."""
    first_screen(driver, report)
    shot = Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB")
    shot.quantize(colors=128).save(out, optimize=True)
    print(f"{out}: {out.stat().st_size // 1024} KB")


def main(argv: list[str]) -> None:
    """tests/test_report_screen.py OUT_DIR [DEMO_RUN_DIR]: screenshots of the 16-model import and the demo."""
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    profile = tempfile.mkdtemp(prefix="chromium-")
    browser = start_chromium(Path(profile), WIDTH, HEIGHT)
    try:
        if len(argv) > 1:
            screenshot(browser, Path(argv[1]) / "report.html", out / "report_demo.png")
        with tempfile.TemporaryDirectory() as folder:
            config = alpaca16_run(Path(folder))
            screenshot(browser, config.run_dir / "report.html", out / "report_alpaca16.png")
    finally:
        browser.quit()


if __name__ == "__main__":
    main(sys.argv[1:])
