"""Honest examples: one prompt with ten near-duplicate pairs does not fill the near-duplicate table, and a
phrase that is the prompt's own wording (the most widely shared phrase of the run) is marked in
shared_phrases.csv and left out of the report's phrase table. A real store with hand-made vectors,
real analyze_run and report_run."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hivemind.analyze.stage import analyze_run
from hivemind.analyze.neighbors import spread_examples
from hivemind.analyze.phrases import in_prompt, prompt_overlap
from hivemind.report.stage import load_tables, report_run
from hivemind.report.tables import phrases_table, shown_pairs
from hivemind.results.contract import TABLES
from hivemind.store import Prompt

from synthetic_run import Answer, make_run, unit

SYSTEMS = ["a", "b", "c", "d", "e"]
ECHO_PROMPT = "Write a metaphor about time and rivers for my poetry class."
ECHO = "a metaphor about time and rivers"            # 6 of the prompt's words, repeated by every answer
IDEA = "the clock hands sweep the dust of our afternoons"   # the answers' own idea, shared by 3 systems
D = 32
VOCABULARY = ("amber basalt cedar delta ember fjord garnet harbor indigo jasper kelp lichen marble nectar onyx "
              "pebble quartz russet saffron tundra umber velvet willow xylem yarrow zephyr").split()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    rng = np.random.default_rng(7)
    prompts = [Prompt("echo", ECHO_PROMPT)] + [Prompt(f"q{i}", f"Describe object number {i} in a new way.")
                                               for i in range(1, 6)]
    answers = []
    # "echo": every system's first answer has the same vector: C(5, 2) = 10 near-duplicate pairs.
    same = rng.standard_normal(D)
    nouns = dict(zip(SYSTEMS, ["lantern", "harvest", "compass", "glacier", "chorus"]))
    for s in SYSTEMS:
        answers.append(Answer(s, "echo", 0, f"Here is {ECHO}: system {s} sees time as a {nouns[s]} today.", same))
        answers.append(Answer(s, "echo", 1, f"Sure, {ECHO}, from system {s}: time is a thief of summers {s}.",
                              rng.standard_normal(D)))
    # q1..q5: one near-duplicate pair each (a and b, cosine about 0.95), the rest unrelated.
    for i in range(1, 6):
        base = rng.standard_normal(D)
        for k, s in enumerate(SYSTEMS):
            for x in range(2):
                idea = f" {IDEA}." if (i == 1 and x == 0 and k < 3) else ""
                own = " ".join(rng.choice(VOCABULARY, size=8))      # no five words in common by chance
                text = f"Answer {x} of {s}: {own}.{idea}"
                if x == 0 and s in ("a", "b"):
                    vector = unit(base) + 0.3 * unit(rng.standard_normal(D)) * (1 if s == "a" else -1)
                else:
                    vector = rng.standard_normal(D)
                answers.append(Answer(s, f"q{i}", x, text, vector))
    config = make_run(tmp_path_factory.mktemp("examples"), SYSTEMS, prompts, answers)
    analyze_run(config, progress=False)
    report_run(config, top_prompts=1)
    return config


def test_one_prompt_cannot_fill_the_near_duplicate_examples(run):
    near = pd.read_csv(run.run_dir / "near_duplicates.csv")
    assert (near["prompt_id"] == "echo").sum() == 10                  # analyze keeps every pair
    assert near.groupby("prompt_id")["similarity"].max()["echo"] > near[near.prompt_id != "echo"]["similarity"].max()
    shown = shown_pairs(load_tables(run), short=False)
    counts = shown["prompt_id"].value_counts()
    assert counts.max() <= 2 and counts["echo"] == 2
    assert set(counts.index) == {"echo", "q1", "q2", "q3", "q4", "q5"}  # every prompt with a pair is shown
    # Round-robin: every prompt's best pair comes before any prompt's second pair.
    assert list(shown["prompt_id"]).index("echo", 1) == len(shown) - 1


def test_spread_examples_round_robin_by_similarity():
    pairs = pd.DataFrame({"prompt_id": ["x"] * 10 + ["y", "y", "z"],
                          "similarity": [0.99] * 10 + [0.95, 0.94, 0.91]})
    shown = spread_examples(pairs, per_prompt=2, n=10)
    assert list(shown["prompt_id"]) == ["x", "y", "z", "x", "y"]
    assert list(spread_examples(pairs, per_prompt=1, n=2)["prompt_id"]) == ["x", "y"]


def test_prompt_wording_is_marked_and_left_out_of_the_phrase_table(run):
    phrases = pd.read_csv(run.run_dir / "shared_phrases.csv")
    assert set(TABLES["shared_phrases.csv"].columns) <= set(phrases.columns)
    top = phrases.sort_values(["n_systems", "n_words"], ascending=False).iloc[0]
    assert ECHO in top["phrase"] and top["n_systems"] == 5 and bool(top["in_prompt"])
    idea = phrases[phrases["phrase"].str.contains("clock hands sweep")]
    assert len(idea) == 1 and not bool(idea["in_prompt"].iloc[0])
    shown = phrases_table(load_tables(run))
    assert not shown["phrase"].str.contains("metaphor about time").any()
    assert shown["phrase"].str.contains("clock hands sweep").any()
    page = (run.run_dir / "report.html").read_text(encoding="utf-8")
    assert "mostly made of the prompt" in page and "Left out:" in page
    md = (run.run_dir / "report.md").read_text(encoding="utf-8")
    assert "| the clock hands sweep" in md and f"| {ECHO}" not in md


def test_prompt_overlap():
    assert prompt_overlap(ECHO, ECHO_PROMPT) == 1.0
    assert prompt_overlap(IDEA, ECHO_PROMPT) == 0.0
    # Half the words restate the prompt: marked; a stray common word or two: not.
    assert in_prompt("a metaphor about time is a river that flows", "Write a metaphor about time.") is False
    assert prompt_overlap("a metaphor about time is a river that flows", "Write a metaphor about time.") == 4 / 9
    assert in_prompt("here is a metaphor about time for you", "Write a metaphor about time.")
    assert prompt_overlap("time and the sea are one", "Write about time and the sea.") == 4 / 6
    assert prompt_overlap("Time, and the SEA!", "Write about time and the sea.") == 1.0      # words, not characters
    assert prompt_overlap("anything", "") == 0.0
