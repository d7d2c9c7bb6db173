"""Shared verbatim phrases across systems, and lexical diversity per system.

Words are lower-cased runs of letters and digits (apostrophes inside a word kept), so punctuation and
spacing never split or join a phrase. A *shared phrase* for a prompt is a word n-gram (n >= min_words)
that at least `min_systems` systems produced in their answers to that prompt. We keep only maximal
phrases: an n-gram is dropped when a longer shared n-gram containing it has the same set of systems
(checking the two one-word extensions suffices: every n-gram between the short and the long one has a
system set squeezed between theirs, hence the same one).
"""
from __future__ import annotations

import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


@dataclass
class SharedPhrase:
    phrase: str
    n_words: int
    systems: tuple[int, ...]        # system indexes, ascending

    @property
    def n_systems(self) -> int:
        return len(self.systems)


def shared_phrases(texts: Iterable[str], systems: Iterable[int], min_words: int = 5, min_systems: int = 2,
                   max_words: int = 200, limit: int | None = 20) -> list[SharedPhrase]:
    """Maximal phrases of >= min_words words that >= min_systems systems share in these answers.

    Ranked by number of systems, then length; at most `limit` returned (None: all)."""
    docs = [(tuple(words(t)), int(s)) for t, s in zip(texts, systems)]
    if len({s for _, s in docs}) < min_systems:
        return []
    shared: dict[int, dict[tuple, frozenset]] = {}
    # Start positions, per answer, of the grams still worth growing: an (n+1)-gram can be shared
    # only if the n-grams starting at i and at i + 1 both are.
    active = [range(len(toks) - min_words + 1) for toks, _ in docs]
    n = min_words
    while n <= max_words:
        owners: dict[tuple, set] = {}
        for (toks, s), starts in zip(docs, active):
            for i in starts:
                owners.setdefault(toks[i:i + n], set()).add(s)
        current = {g: frozenset(o) for g, o in owners.items() if len(o) >= min_systems}
        if not current:
            break
        shared[n] = current
        next_active = []
        for (toks, _), starts in zip(docs, active):
            ok = {i for i in starts if toks[i:i + n] in current}
            next_active.append([i for i in sorted(ok) if i + 1 in ok])
        active = next_active
        n += 1
    result = []
    for n, grams in shared.items():
        longer = shared.get(n + 1, {})
        extended = {}
        for gram, owners in longer.items():
            for part in (gram[:-1], gram[1:]):
                if grams.get(part) == owners:
                    extended[part] = True
        for gram, owners in grams.items():
            if gram not in extended:
                result.append(SharedPhrase(" ".join(gram), n, tuple(sorted(owners))))
    result.sort(key=lambda ph: (-ph.n_systems, -ph.n_words, ph.phrase))
    return result if limit is None else result[:limit]


ECHO_WORDS = 3          # a run of this many words found in the prompt is the prompt's own wording
ECHO_SHARE = 0.5        # a phrase at least this much made of the prompt's own wording is marked in_prompt


def prompt_overlap(phrase: str, prompt: str, n: int = ECHO_WORDS) -> float:
    """The share of the phrase's words that lie in a run of n consecutive words (n capped at the phrase's
    length) also found in the prompt: 1.0 for "a metaphor about time" under "Write a metaphor about time.",
    0 for a phrase of the answers' own. Answers that restate the question share its words without sharing
    an idea, so such phrases are marked (shared_phrases.csv, in_prompt) and left out of the report's table."""
    return PromptWording(prompt, n).overlap(phrase)


def in_prompt(phrase: str, prompt: str) -> bool:
    return PromptWording(prompt).echoes(phrase)


class PromptWording:
    """One prompt's word n-grams, built once and matched against each of its shared phrases."""

    def __init__(self, prompt: str, n: int = ECHO_WORDS):
        self.words, self.n = words(prompt), n
        self.grams: dict[int, set[tuple[str, ...]]] = {}

    def _grams(self, n: int) -> set[tuple[str, ...]]:
        if n not in self.grams:
            self.grams[n] = {tuple(self.words[i:i + n]) for i in range(len(self.words) - n + 1)}
        return self.grams[n]

    def overlap(self, phrase: str) -> float:
        tokens = words(phrase)
        if not tokens or not self.words:
            return 0.0
        n = min(self.n, len(tokens))
        grams = self._grams(n)
        covered = [False] * len(tokens)
        for i in range(len(tokens) - n + 1):
            if tuple(tokens[i:i + n]) in grams:
                covered[i:i + n] = [True] * n
        return sum(covered) / len(tokens)

    def echoes(self, phrase: str) -> bool:
        return self.overlap(phrase) >= ECHO_SHARE


@dataclass
class LexicalStats:
    distinct_1: np.ndarray
    distinct_2: np.ndarray
    distinct_3: np.ndarray
    compression_ratio: np.ndarray   # raw bytes / zlib-compressed bytes of all its answers, concatenated
    mean_words: np.ndarray


class LexicalAccumulator:
    """Distinct-n over all of a system's answers (distinct n-grams / all n-grams) and compressibility.

    n-grams are kept as Python hashes (64-bit) rather than tuples, to bound memory; a collision would
    undercount by one in ~2^-64. Compression is streamed through one zlib object per system."""

    def __init__(self, n_systems: int):
        self.n_systems = n_systems
        self.seen = [[set(), set(), set()] for _ in range(n_systems)]
        self.totals = np.zeros((n_systems, 3), dtype=np.int64)
        self.raw_bytes = np.zeros(n_systems, dtype=np.int64)
        self.compressed = np.zeros(n_systems, dtype=np.int64)
        self.compressors = [zlib.compressobj(9) for _ in range(n_systems)]
        self.responses = np.zeros(n_systems, dtype=np.int64)
        self.word_count = np.zeros(n_systems, dtype=np.int64)

    def add(self, text: str, system: int) -> None:
        toks = words(text)
        self.responses[system] += 1
        self.word_count[system] += len(toks)
        for n in (1, 2, 3):
            grams = [hash(tuple(toks[i:i + n])) for i in range(len(toks) - n + 1)]
            self.totals[system, n - 1] += len(grams)
            self.seen[system][n - 1].update(grams)
        raw = (text + "\n").encode("utf-8")
        self.raw_bytes[system] += len(raw)
        self.compressed[system] += len(self.compressors[system].compress(raw))

    def finish(self) -> LexicalStats:
        for k, comp in enumerate(self.compressors):
            self.compressed[k] += len(comp.flush())
        distinct = np.array([[len(s) for s in per] for per in self.seen], dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratios = distinct / self.totals
            return LexicalStats(
                distinct_1=ratios[:, 0], distinct_2=ratios[:, 1], distinct_3=ratios[:, 2],
                compression_ratio=np.where(self.responses > 0, self.raw_bytes / np.maximum(self.compressed, 1), np.nan),
                mean_words=np.where(self.responses > 0, self.word_count / np.maximum(self.responses, 1), np.nan),
            )
