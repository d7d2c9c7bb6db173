"""Shared verbatim phrases across systems, and lexical diversity, on hand-made texts."""
from __future__ import annotations

import numpy as np
import pytest

from hivemind.analyze.phrases import LexicalAccumulator, shared_phrases, words


def test_words_ignore_case_and_punctuation():
    assert words("The QUICK, brown fox -- isn't it?") == ["the", "quick", "brown", "fox", "isn't", "it"]


def test_maximal_phrase_shared_by_two_systems():
    texts = [
        "Well, the quick brown fox jumps over the lazy dog, every single day.",
        "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG!!! And then it sleeps.",
        "Nothing in common here at all, just a different answer.",
    ]
    phrases = shared_phrases(texts, [0, 1, 2])
    assert [(p.phrase, p.n_words, p.systems) for p in phrases] == [
        ("the quick brown fox jumps over the lazy dog", 9, (0, 1))]


def test_shorter_phrase_kept_when_more_systems_share_it():
    texts = [
        "in the end it was a quiet and peaceful night for everyone",    # system 0
        "yes in the end it was a quiet and peaceful night for all",     # system 1
        "so in the end it was a loud evening",                          # system 2
    ]
    phrases = shared_phrases(texts, [0, 1, 2])
    got = {(p.phrase, p.systems) for p in phrases}
    assert got == {("in the end it was a quiet and peaceful night for", (0, 1)),
                   ("in the end it was a", (0, 1, 2))}
    assert phrases[0].systems == (0, 1, 2)           # ranked by number of systems first


def test_repetition_within_one_system_is_not_shared():
    texts = ["one two three four five six", "one two three four five six", "seven eight nine ten eleven"]
    assert shared_phrases(texts, [0, 0, 1]) == []


def test_four_words_is_too_short():
    assert shared_phrases(["alpha beta gamma delta x", "y alpha beta gamma delta"], [0, 1]) == []


def test_limit_and_min_systems():
    base = [f"w{i}" for i in range(60)]
    # phrases of 5 words separated by unique words, each shared by systems 0 and 1
    a = " ".join(base[i] if i % 6 else f"a{i}" for i in range(60))
    b = " ".join(base[i] if i % 6 else f"b{i}" for i in range(60))
    assert len(shared_phrases([a, b], [0, 1], limit=None)) == 10
    assert len(shared_phrases([a, b], [0, 1], limit=3)) == 3
    assert shared_phrases([a, b], [0, 1], min_systems=3) == []


def test_long_identical_answers_give_one_phrase():
    text = " ".join(f"word{i}" for i in range(120))
    phrases = shared_phrases([text, text, "other"], [0, 1, 2])
    assert [(p.n_words, p.systems) for p in phrases] == [(120, (0, 1))]


def test_distinct_n_and_compression():
    acc = LexicalAccumulator(2)
    acc.add("a b a b", 0)                    # 1-grams: 2 of 4; 2-grams: ab ba ab -> 2 of 3; 3-grams: 2 of 2
    acc.add("a b", 0)                        # adds 2 more 1-grams (seen), 1 2-gram (seen)
    varied = "the cat sat on a mat while seven dogs barked loudly at passing cars"
    acc.add(varied, 1)
    stats = acc.finish()
    assert stats.distinct_1[0] == pytest.approx(2 / 6)
    assert stats.distinct_2[0] == pytest.approx(2 / 4)
    assert stats.distinct_3[0] == pytest.approx(2 / 2)
    assert stats.distinct_1[1] == pytest.approx(1.0)
    assert stats.mean_words[0] == pytest.approx(3.0)


def test_repetitive_system_compresses_better():
    acc = LexicalAccumulator(2)
    rng = np.random.default_rng(0)
    vocab = [f"token{i}" for i in range(5000)]
    for _ in range(30):
        acc.add("As an AI language model, I think the answer is clearly yes, for many reasons.", 0)
        acc.add(" ".join(rng.choice(vocab, size=15)), 1)
    stats = acc.finish()
    assert stats.compression_ratio[0] > 3 * stats.compression_ratio[1]
    assert stats.distinct_2[0] < stats.distinct_2[1]
