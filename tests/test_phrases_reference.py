"""shared_phrases (numpy, level by level) against a brute-force reference written from the definition, on
real AlpacaEval answers and on adversarial groups, for several min_words / min_systems / max_words / limit."""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from hivemind.analyze.phrases import SharedPhrase, shared_phrases, words

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "alpaca_eval_outputs"
SETTINGS = [  # (min_words, min_systems, max_words, limit)
    (5, 2, 200, None), (5, 2, 200, 20), (1, 2, 200, None), (3, 3, 8, None), (5, 2, 5, None),
    (2, 1, 12, 7), (4, 4, 200, 20), (6, 2, 3, None),
]


def reference(texts, systems, min_words, min_systems, max_words, limit) -> list[SharedPhrase]:
    """Every n-gram of every answer, per n; its set of systems; shared if >= min_systems; maximal unless
    adding one word on the left or on the right gives a shared gram with the same systems."""
    docs = [(tuple(words(t)), int(s)) for t, s in zip(texts, systems)]
    shared: dict[int, dict[tuple, frozenset]] = {}
    for n in range(min_words, max_words + 1):
        owners = defaultdict(set)
        for toks, s in docs:
            for i in range(len(toks) - n + 1):
                owners[toks[i:i + n]].add(s)
        shared[n] = {g: frozenset(o) for g, o in owners.items() if len(o) >= min_systems}
        if not shared[n]:
            break    # a shared (n+1)-gram would make its first n words a shared n-gram
    found = []
    for n, grams in shared.items():
        longer = shared.get(n + 1, {})
        extended = {G[:-1] for G, o in longer.items() if grams.get(G[:-1]) == o}
        extended |= {G[1:] for G, o in longer.items() if grams.get(G[1:]) == o}
        found += [SharedPhrase(" ".join(g), n, tuple(sorted(o))) for g, o in grams.items() if g not in extended]
    found.sort(key=lambda ph: (-ph.n_systems, -ph.n_words, ph.phrase))
    return found if limit is None else found[:limit]


def assert_same(texts, systems):
    for min_words, min_systems, max_words, limit in SETTINGS:
        args = dict(min_words=min_words, min_systems=min_systems, max_words=max_words, limit=limit)
        assert shared_phrases(texts, systems, **args) == reference(texts, systems, **args), args


def seq(prefix: str, n: int) -> str:
    return " ".join(f"{prefix}{i}" for i in range(n))


ADVERSARIAL = {
    "identical answers": (["The cat sat on the mat, and then it slept all day."] * 4, [0, 1, 2, 2]),
    "prefixes of each other": ([seq("w", 20), seq("w", 12), seq("w", 6), seq("w", 3), seq("w", 5)],
                               [0, 1, 2, 3, 4]),
    "one long repeated word": (["la " * 250, "la " * 230, "la " * 7, "la la la la"], [0, 1, 2, 3]),
    "runs of exactly min_words": (
        [" ".join(f"w{i}" if i % 6 else f"{s}{i}" for i in range(60)) for s in "abc"], [0, 1, 2]),
    "runs longer than max_words": ([seq("x", 260) + " tail a", "head " + seq("x", 260), seq("x", 201), "x0 x1"],
                                   [0, 1, 2, 3]),
    "empty answers": (["", "   ", "!!! ...", "one two three four five six", "", "one two three four five"],
                      [0, 1, 2, 1, 3, 2]),
    "a single system": (["one two three four five six", "one two three four five six seven"], [5, 5]),
    "no answers": ([], []),
    "sparse unsorted system ids": (["a b c d e f g h", "b c d e f g h i", "a b c d e f", "c d e f g h"],
                                   np.array([42, 7, 42, 3])),
    "repeats inside one answer": (["a b a b a b a b a b a b", "b a b a b a b a", "a b a b a"], [0, 1, 2]),
}


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_equals_reference_on_adversarial_groups(name):
    texts, systems = ADVERSARIAL[name]
    assert_same(texts, systems)


@pytest.mark.parametrize("seed", range(12))
def test_equals_reference_on_random_small_vocabulary_groups(seed):
    """Few distinct words, so long and overlapping shared runs, answers repeated inside a system."""
    rng = np.random.default_rng(seed)
    vocab = ["a", "b", "c", "d"][:int(rng.integers(1, 5))]
    n_answers = int(rng.integers(1, 12))
    texts = [" ".join(rng.choice(vocab, size=int(rng.integers(0, 40)))) for _ in range(n_answers)]
    systems = rng.integers(0, 5, size=n_answers).tolist()
    assert_same(texts, systems)


@pytest.mark.skipif(not DATA.is_dir(), reason=f"real AlpacaEval outputs not found at {DATA}")
@pytest.mark.parametrize("prompt", [0, 1, 2, 3])
def test_equals_reference_on_real_alpaca_answers(prompt):
    """The 16 models' answers to one instruction, plus a second 'sample' per system: 300 characters from
    the middle of another model's answer (so systems share verbatim runs of some 50 words, as samples of
    one model do; longer copies only slow the reference down)."""
    outputs = [json.loads(f.read_text(encoding="utf-8"))[prompt]["output"] for f in sorted(DATA.glob("*.json"))]
    middles = [out[len(out) // 2:len(out) // 2 + 300] for out in outputs]
    texts = outputs + [middles[(k + 3) % len(outputs)] for k in range(len(outputs))]
    systems = list(range(len(outputs))) * 2
    assert_same(texts, systems)
