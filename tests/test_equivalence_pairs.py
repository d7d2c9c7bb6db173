"""The equivalence pair deciders of the score stage: the LM judge on the fake OpenAI server (answering SAME when
two answers share their first word), and a sequence-pair classifier built here offline (a tiny BERT), both
checked against the partition analysis computes from the stored verdicts."""
from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import fake_openai
from conftest import COLLECT_KEY_VAR
from fake_openai import GARBAGE_MARK, FakeOpenAI
from hivemind import HivemindError
from hivemind.analyze.equivalence import greedy_partition
from hivemind.analyze.equivalence_choice import stored_verdicts
from hivemind.cli import main as cli_main
from hivemind.core.config import NOVELTYBENCH_CLASSIFIER, Equivalence
from hivemind.results.record import save_run_config
from hivemind.runs.imports import import_files
from hivemind.score.pair_judge import RUBRIC, pair_prompt, parse_verdict
from hivemind.score.pairs import SHORT_RAW, answer_sets, short_pair_same
from hivemind.score.stage import score_run
from hivemind.store import Store

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ["Write a metaphor about time.", "Suggest a name for a night bakery.", "Tell a joke about a lighthouse."]
HEADS = ["river", "clock", "candle", "river", "clock", "river", "harbor", "candle"]
ANSWER = re.compile(r"\[Answer A\]\n(.*)\n\n\[Answer B\]\n(.*)\n\nReply with", re.S)


def records() -> list[dict]:
    """Two systems x three prompts x eight samples: long answers whose first word decides the fake judge,
    one blank answer, a pair of short answers (the word-overlap rule), and one answer the judge cannot read."""
    out = []
    for model in ("alpha", "beta"):
        for p, prompt in enumerate(PROMPTS):
            shift = p + (model == "beta")
            answers = [f"{HEADS[(s + shift) % len(HEADS)].title()} is how {model} would answer number {p} "
                       f"in its own words, sample {s}." for s in range(len(HEADS))]
            if p == 1:
                answers[0], answers[1] = "Moonrise Bakery", "the Moonrise Bakery"   # same by the short rule
                answers[6] = "   "
            if model == "beta" and p == 2:
                answers[3] += f" {GARBAGE_MARK}"
            out.append({"prompt": prompt, "model": model, "response": answers})
    return out


def first_word_same(a: str, b: str) -> bool:
    """The fake judge's rule (and the expected verdict of a long pair)."""
    if GARBAGE_MARK in a or GARBAGE_MARK in b:
        return False          # unreadable twice: stored as different
    return a.split()[0].lower() == b.split()[0].lower()


def fake_pair_reply(prompt: str, judge_max: int) -> str:
    """Replaces the fake server's grade reply: SAME/DIFFERENT by the first-word rule, nonsense for the mark."""
    match = ANSWER.search(prompt)
    if match is None:
        return "I was not shown two answers."
    a, b = match.groups()
    if GARBAGE_MARK in a + b:
        return "Both answers have merit in their own way."
    return "SAME" if first_word_same(a, b) else "DIFFERENT"


def expected_rule(a: str, b: str) -> bool:
    short = short_pair_same(a, b)
    return first_word_same(a, b) if short is None else short


@pytest.fixture
def pair_judge(monkeypatch):
    monkeypatch.setattr(fake_openai, "judge_text", fake_pair_reply)


def make_run(tmp_path: Path, name: str = "pairs"):
    source = tmp_path / f"{name}.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in records()), encoding="utf-8")
    return import_files([source], name, results_dir=tmp_path / "results")


def with_judge(config, url: str, **settings):
    config.equivalence = Equivalence(method="judge", model="openai/gpt-4o-mini", api_base=url,
                                     api_key_env=COLLECT_KEY_VAR, concurrency=3)
    for key, value in settings.items():
        setattr(config, key, value)
    save_run_config(config)
    return config


def verdict_rows(config) -> list[tuple]:
    with sqlite3.connect(config.store_path) as db:
        return list(db.execute("SELECT system_id, prompt_id, sample_a, sample_b, method, same, probability, raw, "
                               "error, cost FROM equivalence_verdicts ORDER BY system_id, prompt_id, sample_a, "
                               "sample_b"))


def check_partitions(config, rule) -> int:
    """Analysis's partition from the stored verdicts equals NoveltyBench's greedy rule applied directly, for
    every answer set (so a verdict is stored for every compared pair); returns the compared long pairs."""
    ids = [s.identity for s in config.systems]
    long_pairs, classes, sizes = 0, 0, 0
    with Store(config.store_path, create=False) as store:
        cells = answer_sets(store, ids)
        equivalence = stored_verdicts(store, config.equivalence.verdict_method, ids, config.name)
    assert len(cells) == len(ids) * len(PROMPTS)
    for cell in cells:
        compared = []

        def same(i, later, texts=cell.texts, compared=compared):
            compared.extend((i, j) for j in later)
            return np.array([rule(texts[i], texts[j]) for j in later], dtype=bool)
        expected = greedy_partition(len(cell.texts), same)
        keys = [(cell.system_id, cell.prompt_id, s) for s in cell.samples]
        assert list(equivalence.partition(None, cell.texts, keys)) == list(expected)
        classes, sizes = classes + len(set(expected)), sizes + len(expected)
        long_pairs += sum(short_pair_same(cell.texts[i], cell.texts[j]) is None for i, j in compared)
    assert len(cells) < classes < sizes      # some answers merged, some apart
    return long_pairs


def answered(fake: FakeOpenAI) -> Counter:
    return Counter(r.prompt for r in fake.log if r.outcome == "answer")


# --- the rules --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("a, b, same", [
    ("Moonrise Bakery", "the Moonrise bakery!", False),       # 1 of 3 words shared ("bakery!" is its own word)
    ("Moonrise Bakery", "moonrise bakery", True),
    ("Blue.", "Blue!", False),
    ("Seven", "seven", True),
    ("a b c d e", "a b c x y", True),                          # 3 of 5: at least half
    ("a b c d e", "a b x y z", False),
    ("one two three four five six", "one two", None),          # the longer has 6 words: the model decides
])
def test_short_answer_rule_is_noveltybench_maybe_test_equality(a, b, same):
    assert short_pair_same(a, b) is same


@pytest.mark.parametrize("reply, same", [
    ("SAME", True), ("different", False), ("**Different.**", False), ("They match.\nSame", True),
    ("Same or different? Hard to say.", None), ("", None), ("I think so.", None),
])
def test_parse_verdict(reply, same):
    value, error = parse_verdict(reply)
    assert value is same and (error is None) == (same is not None)


def test_pair_prompt_keeps_braces_and_answer_order():
    text = pair_prompt(RUBRIC.read_text(), "Q {x}", "first {{answer_b}}", "second")
    assert ANSWER.search(text).groups() == ("first {{answer_b}}", "second") and "Q {x}" in text


# --- the judge on the fake server ---------------------------------------------------------------------

def test_judge_stores_the_partition_counts_cost_and_a_rerun_asks_nothing(tmp_path, collect_key, pair_judge):
    config = make_run(tmp_path)
    with FakeOpenAI(judge_max=1, expected_api_key=collect_key) as fake:
        with_judge(config, fake.url)
        summary = score_run(config, progress=False, raise_if_incomplete=False)
        part = summary.scorers["equivalence"]
        assert summary.complete and part.stored == 0
        long_pairs = check_partitions(config, expected_rule)
        rows = verdict_rows(config)
        assert len(rows) == part.scored == long_pairs + part.short and part.short > 0
        assert part.unreadable > 0 and fake.requests == long_pairs + part.unreadable   # unreadable: asked twice
        assert fake.auth_ok == fake.requests
        assert max(answered(fake).values()) == 2 and sum(v == 2 for v in answered(fake).values()) == part.unreadable
        for *_, method, same, probability, raw, error, cost in rows:
            assert method == "judge:openai/gpt-4o-mini" and probability is None
            if raw == SHORT_RAW:
                assert cost is None and error is None
            elif error:
                assert same == 0 and error.startswith("unreadable") and cost > 0
            else:
                assert raw in ("SAME", "DIFFERENT") and same == (raw == "SAME") and cost > 0
        with Store(config.store_path, create=False) as store:
            assert store.scoring_cost() == pytest.approx(sum(r[-1] or 0 for r in rows)) == pytest.approx(part.cost)
        assert part.cost > 0

        again = score_run(config, progress=False)
        assert fake.requests == long_pairs + part.unreadable          # nothing asked again
        assert again.scorers["equivalence"].scored == 0 and again.scorers["equivalence"].stored == len(rows)
        assert verdict_rows(config) == rows


def test_interrupted_judge_resumes_without_asking_a_stored_pair_twice(tmp_path, collect_key, pair_judge):
    config = make_run(tmp_path)
    with FakeOpenAI(judge_max=1, rate_500=0.35, seed=3) as fake:
        with_judge(config, fake.url, max_attempts=1)
        first = score_run(config, progress=False, raise_if_incomplete=False).scorers["equivalence"]
        assert not first.complete and first.failed_transient > 0 and first.unfinished > 0
        stored = verdict_rows(config)
        assert 0 < len(stored)
        fake.configure(rate_500=0.0)
        second = score_run(config, progress=False).scorers["equivalence"]
        assert second.complete and second.stored > 0
    long_pairs = check_partitions(config, expected_rule)
    rows = verdict_rows(config)
    assert [r for r in rows if r[:4] in {s[:4] for s in stored}] == stored     # kept as they were
    per_pair = answered(fake)
    # across both runs every long pair was answered once (the unreadable ones are asked again)
    unreadable = sum(1 for r in rows if r[8])
    assert unreadable and sum(n for p, n in per_pair.items() if GARBAGE_MARK not in p) == long_pairs - unreadable
    assert all(n == 1 or GARBAGE_MARK in prompt for prompt, n in per_pair.items())


def test_sigkilled_judge_resumes_and_asks_only_the_missing_pairs(tmp_path, collect_key, pair_judge):
    config = make_run(tmp_path)
    with FakeOpenAI(judge_max=1, delay=0.2) as fake:
        with_judge(config, fake.url)
        config.equivalence.concurrency = 1
        save_run_config(config)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "HIVEMIND_RESULTS": str(tmp_path / "results")}
        command = [sys.executable, "-m", "hivemind.cli", "score", config.name, "-q"]
        process = subprocess.Popen(command, env=env, start_new_session=True)
        deadline = time.monotonic() + 60
        while len(verdict_rows(config)) < 4 and time.monotonic() < deadline:
            time.sleep(0.1)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        stored = verdict_rows(config)
        assert 4 <= len(stored)
        fake.configure(delay=0.0)
        fake.reset_counts()
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    long_pairs = check_partitions(config, expected_rule)
    rows = verdict_rows(config)
    assert len(stored) < len(rows) and [r for r in rows if r[:4] in {s[:4] for s in stored}] == stored
    # the second run asked each long pair without a stored verdict once (the pair in flight at the kill too)
    resumed = answered(fake)
    assert all(n == 1 or GARBAGE_MARK in p for p, n in resumed.items())
    unreadable = sum(1 for r in rows if r[8])
    stored_long = sum(1 for r in stored if r[7] != SHORT_RAW and not r[8])
    assert sum(n for p, n in resumed.items() if GARBAGE_MARK not in p) == long_pairs - unreadable - stored_long


def test_max_cost_stops_the_judge_and_keeps_its_verdicts(tmp_path, collect_key, pair_judge):
    config = make_run(tmp_path)
    with FakeOpenAI(judge_max=1) as fake:
        with_judge(config, fake.url, max_cost=1e-9)
        with pytest.raises(HivemindError, match="max_cost"):
            score_run(config, progress=False)
        sent = fake.requests
        rows = verdict_rows(config)
        assert 1 <= sent <= 3 and len([r for r in rows if r[-1]]) == sent    # only the requests in flight
        with Store(config.store_path, create=False) as store:
            assert store.scoring_cost() > 1e-9
        again = score_run(config, progress=False, raise_if_incomplete=False).scorers["equivalence"]
        assert again.stopped_for_cost and fake.requests == sent        # the budget is spent: nothing sent
        with_judge(config, fake.url, max_cost=None)
        assert score_run(config, progress=False).complete
    check_partitions(config, expected_rule)
    assert all(n == 1 or GARBAGE_MARK in p for p, n in answered(fake).items())


def test_judge_with_a_missing_key_is_one_line_and_stores_nothing(tmp_path, monkeypatch, pair_judge, capsys):
    monkeypatch.delenv(COLLECT_KEY_VAR, raising=False)
    config = make_run(tmp_path)
    with FakeOpenAI(judge_max=1) as fake:
        with_judge(config, fake.url)
        code = cli_main(["score", str(config.store_path.parent), "--quiet"])
        assert code == 1 and fake.requests == 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and COLLECT_KEY_VAR in err
    assert all(r[7] == SHORT_RAW for r in verdict_rows(config))     # only the free short-answer verdicts


# --- the classifier, a tiny BERT built here ---------------------------------------------------------------

def tiny_classifier(folder: Path, texts: list[str]) -> Path:
    """A random 2-layer BERT sequence-pair classifier and a word-level tokenizer over these texts, saved."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    words = sorted({w for t in texts for w in re.findall(r"\w+|[^\w\s]", t.lower())})
    vocab = folder / "vocab.txt"
    folder.mkdir(parents=True, exist_ok=True)
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(vocab))
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(vocab_size=len(words) + 5, hidden_size=32, num_hidden_layers=2,
                                                     num_attention_heads=2, intermediate_size=64, num_labels=2,
                                                     max_position_embeddings=300))
    tokenizer.save_pretrained(folder)
    model.save_pretrained(folder)
    return folder


def direct_probability(tokenizer, model, a: str, b: str) -> float:
    """NoveltyBench's classifier_score written out again: one pair, no batch, no padding."""
    import torch

    ids = [tokenizer.cls_token_id]
    for s in (a, b):
        ids += tokenizer.encode(s, truncation=True, max_length=128, add_special_tokens=False)
        ids.append(tokenizer.sep_token_id)
    first = ids.index(tokenizer.sep_token_id) + 1
    types = [0] * first + [1] * (len(ids) - first)
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([ids]), token_type_ids=torch.tensor([types])).logits
    return float(logits.softmax(-1)[0, 1])


def classifier_run(tmp_path: Path):
    """A run whose equivalence is the tiny classifier, its line splitting the compared pairs near the middle:
    (config, the probability of a pair written out again, the line)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    config = make_run(tmp_path)
    texts = [t for r in records() for t in r["response"]] + PROMPTS
    folder = tiny_classifier(tmp_path / "tiny", texts)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    with Store(config.store_path, create=False) as store:
        cells = answer_sets(store, [s.identity for s in config.systems])
    probs = [direct_probability(tokenizer, model, c.texts[0], t) for c in cells for t in c.texts[1:]]
    probs = sorted(probs)
    line = (probs[len(probs) // 2 - 1] + probs[len(probs) // 2]) / 2     # splits the pairs, close to none
    config.equivalence = Equivalence(method="classifier", model=str(folder), threshold=line)
    save_run_config(config)
    return config, (lambda a, b: direct_probability(tokenizer, model, a, b)), line, cells


def test_classifier_verdicts_are_the_models_own_and_follow_the_threshold(tmp_path):
    config, probability_of, line, cells = classifier_run(tmp_path)
    folder = tmp_path / "tiny"
    part = score_run(config, progress=False).scorers["equivalence"]
    assert part.asked > 0 and part.short > 0
    rows = verdict_rows(config)
    texts_of = {(c.system_id, c.prompt_id, s): t for c in cells for s, t in zip(c.samples, c.texts)}
    for system_id, prompt_id, a, b, method, same, probability, raw, error, cost in rows:
        assert method == f"classifier:{folder}@{line:g}" and error is None and cost is None
        if raw == SHORT_RAW:
            continue
        p = probability_of(texts_of[(system_id, prompt_id, a)], texts_of[(system_id, prompt_id, b)])
        assert probability == pytest.approx(p, abs=1e-5)
        assert same == (p > line) or abs(p - line) < 1e-5

    def rule(a, b):
        short = short_pair_same(a, b)
        return probability_of(a, b) > line if short is None else short
    check_partitions(config, rule)
    assert score_run(config, progress=False).scorers["equivalence"].scored == 0
    assert verdict_rows(config) == rows


def test_scoring_on_ray_decides_the_pairs_too(tmp_path):
    """`hivemind score --engine ray` decides the classifier's pairs (on the driver), as the local engine does:
    the same verdicts, and a second run asks nothing."""
    from hivemind.engines.ray.scoring import score_run as score_on_ray

    config, probability_of, line, cells = classifier_run(tmp_path)
    part = score_on_ray(config, progress=False, workers=1).scorers["equivalence"]
    assert part.asked > 0
    rows = verdict_rows(config)
    (tmp_path / "local").mkdir()
    local, *_ = classifier_run(tmp_path / "local")
    score_run(local, progress=False)
    def decided(rows):      # each pair's verdict and probability (the method names the classifier's folder)
        return [row[:4] + row[5:8] for row in rows]
    assert decided(verdict_rows(local)) == decided(rows)
    assert score_on_ray(config, progress=False, workers=1).scorers["equivalence"].scored == 0


def test_classifier_offline_without_weights_is_one_line_naming_the_download(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))
    config = make_run(tmp_path)
    config.equivalence = Equivalence(method="classifier")
    save_run_config(config)
    before = verdict_rows(config)
    code = cli_main(["score", str(config.store_path.parent), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1
    assert f"huggingface-cli download {NOVELTYBENCH_CLASSIFIER}" in err and "model: /path" in err
    assert "HF_HUB_OFFLINE" in err
    # the free short-answer verdicts stored before the model was needed are kept; nothing else
    assert all(r[7] == SHORT_RAW for r in verdict_rows(config)) and len(verdict_rows(config)) >= len(before)
