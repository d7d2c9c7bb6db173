"""`hivemind site` and `hivemind view` over three small real runs (NoveltyBench's and AlpacaEval's published
answers, imported, embedded with the bundled MiniLM and analysed by hivemind itself): the pages, their links,
readable group headings, ranks among the runs shown, the closest pair opening the side-by-side page, bad input in
one line; then the served site in a real headless Chromium at 1366 and 390 px wide: every page reachable from the
index loads, nothing is wider than the window, no console error, no request leaving 127.0.0.1."""
from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

import pandas as pd
import pytest

from browser_support import console_errors, needs_chromium, requested, start_chromium

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
NOVELTYBENCH, ALPACA = DATA / "noveltybench_dev", DATA / "alpaca_eval_outputs"
NB_OPENAI = ["openai__gpt-4o-2024-11-20", "openai__gpt-4o-mini-2024-07-18", "google__gemma-2-9b-it"]
NB_OTHERS = ["anthropic__claude-3-5-haiku@20241022", "google__gemma-2-9b-it"]
ALPACA_MODELS = ["gpt-4o-2024-05-13", "claude-3-5-sonnet-20240620", "Meta-Llama-3-8B-Instruct"]
ENV = {"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True",
       "TOKENIZERS_PARALLELISM": "false"}
pytestmark = pytest.mark.skipif(not NOVELTYBENCH.is_dir() or not ALPACA.is_dir(), reason=f"{DATA} not present")


def cli(*args, timeout: int = 600) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "hivemind.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **ENV}, cwd=ROOT)


def imported_run(root: Path, name: str, files: dict[str, list]) -> None:
    """Import the records (model file stem -> records) as run `name`, embed and analyse it (no report: the
    site draws the missing reports itself)."""
    from hivemind.analyze.stage import analyze_run
    from hivemind.embed.stage import embed_run
    from hivemind.runs.imports import import_files

    paths = []
    for stem, records in files.items():
        path = root / f"{name}-{stem}.json"
        path.write_text(json.dumps(records), encoding="utf-8")
        paths.append(path)
    config = import_files(paths, name, results_dir=root / "results")
    embed_run(config, progress=False)
    analyze_run(config, progress=False)


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    """nb-openai and nb-claude: 2 NoveltyBench prompts x 10 samples (one group: same prompts, gemma-2-9b in
    both); alpaca: 3 AlpacaEval instructions, one answer each (a group of its own)."""
    root = tmp_path_factory.mktemp("site")
    nb = lambda stem: [json.loads(line) for line in (NOVELTYBENCH / f"{stem}.jsonl").read_text().splitlines()[:2]]
    imported_run(root, "nb-openai", {m: nb(m) for m in NB_OPENAI})
    imported_run(root, "nb-claude", {m: nb(m) for m in NB_OTHERS})
    imported_run(root, "alpaca", {m: json.loads((ALPACA / f"{m}.json").read_text())[:3] for m in ALPACA_MODELS})
    return root / "results"


@pytest.fixture(scope="module")
def site(results) -> Path:
    done = cli("site", "--results", results, "--out", results.parent / "site", "-q")
    assert done.returncode == 0, done.stderr
    assert "report redrawn first" in done.stdout        # none of the runs had a report yet
    return results.parent / "site"


def links(page: Path) -> list[str]:
    return re.findall(r'(?:href|src)="([^"]*)"', page.read_text(encoding="utf-8"))


def closest_pair(run_dir: Path) -> set[str]:
    """The two different systems with the highest inter-model similarity, read from the run's table."""
    matrix = pd.read_csv(run_dir / "inter_model_similarity.csv", index_col=0)
    pairs = [(float(matrix.loc[a, b]), a, b) for a in matrix.index for b in matrix.columns if a != b]
    _, a, b = max(pairs)
    return {str(a), str(b)}


# Without a browser ----------------------------------------------------------------------------------------
def test_the_site_has_every_page_and_every_link_stays_inside_it(site, results):
    pages = sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html"))
    from hivemind.core.config_files import resolve_run

    systems = {s.name for run in ("nb-openai", "nb-claude", "alpaca")
               for s in resolve_run(run, results_dir=results).systems}
    assert len(systems) == 7                                      # gemma-2-9b is in two runs, one page
    assert len([p for p in pages if p.startswith("systems/")]) == 7
    assert {p for p in pages if not p.startswith("systems/")} == {
        "index.html", *(f"{kind}/{run}.html" for kind in ("runs", "compare") for run in ("alpaca", "nb-claude", "nb-openai"))}
    manifest = json.loads((site / "site.json").read_text())
    assert sorted(manifest["pages"]) == pages and sorted(manifest["runs"]) == ["alpaca", "nb-claude", "nb-openai"]
    for page in pages:
        for link in links(site / page):
            assert not urlparse(link).scheme or link.startswith("data:"), (page, link)     # relative or inline
            if link.startswith(("data:", "#")):
                continue
            target = (site / page).parent / unquote(link.split("#")[0])
            assert target.resolve().is_file(), (page, link)
        text = (site / page).read_text(encoding="utf-8")
        assert "<script src" not in text and "@import" not in text and "url(http" not in text


def test_groups_are_headed_in_words_and_ranked_among_the_runs_shown(site, results):
    index = (site / "index.html").read_text(encoding="utf-8")
    headings = [re.sub(r"<[^>]+>", "", h) for h in re.findall(r'<h2 id="group-[^"]*">(.*?)</h2>', index)]
    assert headings == ["2 prompts: imported (nb-claude, nb-openai)", "3 prompts: imported (alpaca)"]
    assert index.count("embedder all-MiniLM-L6-v2 (sentence-transformers) · equivalence learned") == 2
    assert "|sentence-transformers" not in index                    # never the raw group key
    assert "ranked by effective diversity" in index and "ranked by effective distinctness" in index
    # the one-answer group folds what no system has, and says why
    assert re.search(r"Not shown: intra mean \(no value for any system here", index)

    # a site over two of the runs ranks the NoveltyBench systems among those of nb-openai only: 1, 2, 3
    done = cli("site", "nb-openai", "alpaca", "--results", results, "--out", results.parent / "two", "-q")
    assert done.returncode == 0, done.stderr
    two = (results.parent / "two" / "index.html").read_text(encoding="utf-8")
    table = two.split("<h2", 2)[1]
    ranks = re.findall(r"<tr><td>([0-9=]+)</td>", table)
    values = [float(v) for v in re.findall(r"<td class=n>([0-9.]+) <span class=\"ci\">", table)]
    assert [r.rstrip("=") for r in ranks][0] == "1" and len(ranks) == 3 and "nb-claude" not in two
    assert values == sorted(values, reverse=True)                    # most diverse first


def test_system_pages_span_runs_and_the_comparison_opens_on_the_closest_pair(site, results):
    gemma = next(site.glob("systems/google-gemma-2-9b-it-*.html")).read_text(encoding="utf-8")
    assert "../runs/nb-openai.html" in gemma and "../runs/nb-claude.html" in gemma and "alpaca" not in gemma
    assert re.search(r"\d=? of 5", gemma)                           # ranked among the 5 rows of its group
    for run in ("nb-openai", "alpaca"):
        page = (site / "compare" / f"{run}.html").read_text(encoding="utf-8")
        pair = json.loads(re.search(r'data-pair="([^"]*)"', page).group(1).replace("&quot;", '"'))
        assert set(pair) == closest_pair(results / run)
    report = (site / "runs" / "nb-openai.html").read_text(encoding="utf-8")
    assert report.index('<nav class="hm-site"') < report.index("<h1>") and 'href="../index.html"' in report


def test_a_rebuild_over_fewer_runs_removes_their_pages_and_nothing_else(results):
    out = results.parent / "results-site"              # the default: named after the results folder, beside it
    done = cli("site", "--results", results, "-q")
    assert done.returncode == 0 and f"site written to {out}/" in done.stdout, done.stderr
    (out / "runs" / "notes.txt").write_text("mine")
    done = cli("site", "nb-openai", "nb-claude", "--results", results, "-q")
    assert done.returncode == 0, done.stderr
    assert not (out / "runs" / "alpaca.html").exists() and not (out / "compare" / "alpaca.html").exists()
    assert not (out / "systems" / "Meta-Llama-3-8B-Instruct.html").exists()
    assert (out / "runs" / "nb-openai.html").is_file() and (out / "runs" / "notes.txt").read_text() == "mine"
    assert list(out.rglob(".staging-*")) == []


@pytest.mark.parametrize("args, named", [
    (["site", "no-such-run"], "no-such-run"),
    (["site", "nb-openai", "--out", "{results}"], "results folder"),
    (["site", "--out", "{results}/nb-openai/site"], "inside the run folder"),
    (["view", "no-such-run", "--port", "0"], "no-such-run"),
])
def test_bad_input_is_one_line_naming_it(results, args, named):
    done = cli(*[a.replace("{results}", str(results)) for a in args], "--results", results)
    assert done.returncode == 1 and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and named in done.stderr, done.stderr
    assert not (results / "nb-openai" / "site").exists()


def test_a_port_in_use_is_one_line(site):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = cli("view", "--no-build", "--out", site, "--port", port, timeout=60)
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1
    assert f"--port {port}" in done.stderr


# In Chromium, served by `hivemind view` -----------------------------------------------------------------------
WIDE_ELEMENTS = """
const W = window.innerWidth, bad = [];
for (const el of document.querySelectorAll('body *')) {
  const r = el.getBoundingClientRect();
  if ((r.width === 0 && r.height === 0) || r.right <= W + 1) continue;
  let p = el.parentElement, clipped = false;        // inside a scroll box that fits: scrolled, not too wide
  for (; p && p !== document.documentElement; p = p.parentElement) {
    if (getComputedStyle(p).overflowX !== 'visible' && p.getBoundingClientRect().right <= W + 1) { clipped = true; break; }
  }
  if (!clipped) bad.push(el.tagName + '.' + el.className + ' right ' + Math.round(r.right));
}
return {scroll: document.documentElement.scrollWidth, width: W, bad: bad.slice(0, 5)};
"""


@pytest.fixture(scope="module")
def served(site, results):
    import os

    view = subprocess.Popen([sys.executable, "-m", "hivemind.cli", "view", "--results", str(results), "--out",
                             str(site), "--port", "0", "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, **ENV}, cwd=ROOT)
    try:
        url = None
        for line in view.stdout:                       # the site is built again, then served
            found = re.search(r"at (http://127\.0\.0\.1:\d+/index\.html)", line)
            if found:
                url = found.group(1)
                break
        assert url, view.stderr.read()
        yield url
    finally:
        view.send_signal(signal.SIGINT)                # Ctrl-C: a clean stop
        out, err = view.communicate(timeout=30)
    assert view.returncode == 0 and "stopped serving" in out, err


def crawl(driver, start: str) -> list[str]:
    """Every page of the site reachable from the index, each checked as it is opened."""
    origin = start.rsplit("/", 1)[0] + "/"
    seen, queue = set(), [start]
    while queue:
        url = queue.pop(0)
        if url in seen:
            continue
        seen.add(url)
        driver.get(url)
        check_page(driver, url, origin)
        for link in driver.execute_script("return [...document.querySelectorAll('a[href]')].map(a => a.href)"):
            page = link.split("#")[0]
            if page.startswith(origin) and page not in seen:
                queue.append(page)
    return sorted(seen)


def check_page(driver, url: str, origin: str) -> None:
    assert driver.find_elements("css selector", "main h1"), url           # loaded, not an error page
    if driver.find_elements("id", "hm-browser"):
        from selenium.webdriver.support.ui import WebDriverWait

        WebDriverWait(driver, 60).until(lambda d: d.execute_script(
            "return document.getElementById('hm-browser').dataset.ready === '1'"))
    wide = driver.execute_script(WIDE_ELEMENTS)
    assert wide["scroll"] <= wide["width"] and wide["bad"] == [], (url, wide)
    assert console_errors(driver) == [], url
    outside = [n for n in requested(driver) if not n.startswith(origin) and n.split(":", 1)[0] not in {"data", "blob"}]
    assert outside == [], (url, outside)


@needs_chromium
@pytest.mark.parametrize("width, height", [(1366, 900), (390, 844)])
def test_every_page_fits_and_stays_local_in_chromium(served, tmp_path, width, height):
    driver = start_chromium(tmp_path / "profile", width, height)
    try:
        pages = crawl(driver, served)
    finally:
        driver.quit()
    kinds = {urlparse(p).path.split("/")[1] for p in pages}
    assert kinds == {"index.html", "runs", "systems", "compare"} and len(pages) == 1 + 3 + 7 + 3


@needs_chromium
def test_two_systems_side_by_side(served, results, tmp_path):
    from selenium.webdriver.support.ui import Select

    driver = start_chromium(tmp_path / "profile", 1366, 900)
    try:
        driver.get(served.replace("index.html", "compare/nb-openai.html"))
        check_page(driver, driver.current_url, served.rsplit("/", 1)[0] + "/")
        shown = lambda: [c.get_attribute("data-system") for c in driver.find_elements("css selector", ".hm-col")
                         if c.is_displayed()]
        assert set(shown()) == closest_pair(results / "nb-openai") and len(shown()) == 2
        assert not driver.find_element("id", "hm-systems").is_displayed()     # the ticks give way to the pair
        third = ({"gpt-4o-2024-11-20", "gpt-4o-mini-2024-07-18", "google/gemma-2-9b-it"} - set(shown())).pop()
        Select(driver.find_element("id", "hm-pair-b")).select_by_visible_text(third)
        assert shown()[1] == third and len(shown()) == 2
        assert "#pair=" in driver.current_url and third.replace("/", "%2F") in driver.current_url
        assert " vs " in driver.find_element("id", "hm-summary").text
        driver.find_element("id", "hm-pair-on").click()                       # back to every system
        assert len(shown()) == 3 and driver.find_element("id", "hm-systems").is_displayed()
        assert console_errors(driver) == []
    finally:
        driver.quit()


def test_a_pair_the_run_does_not_have_is_named(results):
    from hivemind import HivemindError
    from hivemind.core.config_files import resolve_run
    from hivemind.report.browser import browser_section

    config = resolve_run("alpaca", results_dir=results)
    with pytest.raises(HivemindError, match="no system named 'gpt-5'"):
        browser_section(config, pair=(ALPACA_MODELS[0], "gpt-5"))
    assert 'data-pair="' in browser_section(config, pair=(ALPACA_MODELS[0], ALPACA_MODELS[2]))
