"""Shared verbatim phrases across systems, and lexical diversity per system.

Words are lower-cased runs of letters and digits (apostrophes inside a word kept), so punctuation and
spacing never split or join a phrase. A *shared phrase* for a prompt is a word n-gram (n >= min_words)
that at least `min_systems` systems produced in their answers to that prompt. We keep only maximal
phrases: an n-gram is dropped when a longer shared n-gram containing it has the same set of systems
(checking the two one-word extensions suffices: every n-gram between the short and the long one has a
system set squeezed between theirs, hence the same one).

How shared_phrases finds them exactly, level by level (n = 1, 2, ...), with numpy arrays of integers:
- One prompt's answers become one array of word ids, each answer followed by -1. Level n holds, for
  every start position still worth growing, the *number* of the n-gram starting there: numbers are dense
  ranks (np.unique) and equal iff the word sequences are equal. Level 1 numbers words; the (n+1)-gram at i
  is numbered by ranking the pairs (number of the n-gram at i, word i + n), which is injective because
  the n-gram number is. No hashing, so no collision can change a result.
- A gram's systems are the distinct (gram, system) pairs; it is shared when it has >= min_systems.
- Pruning (the only shortcut): an (n+1)-gram at i can be shared only if the n-grams at i and at i + 1,
  both part of it, are shared; so level n+1 keeps only such starts. Whether a start survives depends
  only on the words of its gram (by induction on n), so every occurrence of a kept gram is kept and its
  system count is the true one. Starting this at n = 1 rather than at min_words is exact for the same
  reason (every sub-gram of a shared gram is shared) and drops most positions before min_words.
- Maximality: an (n+1)-gram's systems are a subset of those of its first and of its last n words (each of
  its occurrences contains one of theirs), so "same system set" is "same count"; a shared n-gram is
  dropped when an (n+1)-gram with it as prefix or suffix has as many systems (that (n+1)-gram is then
  shared too). Grams of max_words words are all kept, and levels stop at max_words or when none is shared.
Every level sorts only the surviving starts, so the cost is the total length of shared runs, not
(positions x n) tuple slicing and hashing as growing Python tuples costs.
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
    if min_words < 1:
        raise ValueError(f"shared_phrases: min_words must be at least 1, got {min_words}")
    docs = [(words(t), int(s)) for t, s in zip(texts, systems)]
    labels, doc_system = np.unique(np.array([s for _, s in docs], dtype=np.int64), return_inverse=True)
    if len(labels) < min_systems or max_words < min_words:
        return []
    corpus = Corpus(docs, doc_system)
    level = corpus.unigrams(min_systems)
    while level.n < min_words and level.any_shared():
        level = corpus.extend(level, min_systems)
    result: list[SharedPhrase] = []
    while level.n >= min_words and level.any_shared():
        longer = corpus.extend(level, min_systems) if level.n < max_words else None
        result += corpus.maximal(level, longer, labels)
        if longer is None:
            break
        level = longer
    result.sort(key=lambda ph: (-ph.n_systems, -ph.n_words, ph.phrase))
    return result if limit is None else result[:limit]


@dataclass
class Level:
    """The n-grams at the positions still worth growing. `gram[j]` numbers the n-gram starting at corpus
    position `start[j]` (0..n_grams-1, equal numbers iff equal word sequences); `pairs` lists each
    distinct (gram, system) once, as gram * n_systems + system, ascending; `owners[g]` counts g's systems."""
    n: int
    start: np.ndarray
    gram: np.ndarray
    pairs: np.ndarray
    owners: np.ndarray
    min_systems: int
    prefix: np.ndarray | None = None    # the (n-1)-gram numbers of gram[j]'s first and last n-1 words
    suffix: np.ndarray | None = None

    def shared(self) -> np.ndarray:
        return self.owners >= self.min_systems

    def any_shared(self) -> bool:
        return bool(self.shared().any())


def distinct(values: np.ndarray) -> np.ndarray:
    """np.unique by sorting: numpy 2.3's np.unique hashes integers first, several times slower here."""
    values = np.sort(values)
    return values[np.concatenate(([True], values[1:] != values[:-1]))] if len(values) else values


class Corpus:
    """One prompt's answers as one array of word ids, answers separated by a -1 that no window crosses."""

    def __init__(self, docs: list[tuple[list[str], int]], doc_system: np.ndarray):
        flat = [w for toks, _ in docs for w in toks + [""]]      # "" (never a word) ends each answer
        self.vocab = list(dict.fromkeys(flat))
        ids = {w: i for i, w in enumerate(self.vocab)}
        ids[""] = -1
        self.tokens = np.fromiter(map(ids.__getitem__, flat), dtype=np.int64, count=len(flat))
        self.n_vocab = max(len(self.vocab), 1)
        lengths = np.array([len(toks) + 1 for toks, _ in docs], dtype=np.int64)
        self.system = np.repeat(doc_system.astype(np.int64), lengths)     # per position, dense 0..S-1
        self.n_systems = int(doc_system.max()) + 1 if len(doc_system) else 1

    def level(self, n: int, start: np.ndarray, keys: np.ndarray, min_systems: int, **links) -> Level:
        """Number the distinct keys 0..G-1 (np.unique ranks them) and count each one's systems."""
        ranked, gram = np.unique(keys, return_inverse=True)
        gram = gram.reshape(-1).astype(np.int64)
        pairs = distinct(gram * self.n_systems + self.system[start])
        owners = np.bincount(pairs // self.n_systems, minlength=len(ranked))
        return Level(n, start, gram, pairs, owners, min_systems, **links)

    def unigrams(self, min_systems: int) -> Level:
        start = np.flatnonzero(self.tokens >= 0)
        return self.level(1, start, self.tokens[start], min_systems)

    def extend(self, level: Level, min_systems: int) -> Level:
        """The (n+1)-grams starting where the n-grams at i and i + 1 are both shared: only there can an
        (n+1)-gram be shared, since both are part of it. Its number comes from (number of its first n
        words, its last word): exact, no hashing."""
        keep = level.shared()[level.gram]
        start, gram = level.start[keep], level.gram[keep]
        both = start[1:] == start[:-1] + 1          # sorted starts: i + 1 kept too (never across a -1)
        start, prefix, suffix = start[:-1][both], gram[:-1][both], gram[1:][both]
        keys = prefix * self.n_vocab + self.tokens[start + level.n]
        return self.level(level.n + 1, start, keys, min_systems, prefix=prefix, suffix=suffix)

    def maximal(self, level: Level, longer: Level | None, labels: np.ndarray) -> list[SharedPhrase]:
        """The shared n-grams that no shared (n+1)-gram extends with the same systems. The (n+1)-gram's
        systems are a subset of its prefix's and its suffix's (each occurrence of it is one of them), so
        "same set" is "same count"; and equal counts >= min_systems make the (n+1)-gram shared itself."""
        keep = level.shared()
        if longer is not None:
            same = longer.owners[longer.gram]
            keep[longer.prefix[same == level.owners[longer.prefix]]] = False
            keep[longer.suffix[same == level.owners[longer.suffix]]] = False
        grams = np.flatnonzero(keep)
        if not len(grams):
            return []
        first = np.empty(len(level.owners), dtype=np.int64)
        first[level.gram] = level.start         # an occurrence of each gram (any: all spell it alike)
        pair_gram = level.pairs // self.n_systems
        pairs = level.pairs[keep[pair_gram]]
        bounds = np.searchsorted(pairs // self.n_systems, grams, side="right")
        owners = np.split(labels[pairs % self.n_systems], bounds[:-1])
        out = []
        for g, who in zip(grams.tolist(), owners):
            i = int(first[g])
            phrase = " ".join(self.vocab[t] for t in self.tokens[i:i + level.n].tolist())
            out.append(SharedPhrase(phrase, level.n, tuple(who.tolist())))
        return out


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


_ASCII_WORD_BYTES = bytes(c if (chr(c).isalnum() or c == ord("'")) else 32 for c in range(128)) + b" " * 128


def fast_words(text: str) -> list[str]:
    r"""phrases.words(text) (the regex [^\W_]+(?:'[^\W_]+)* on lowercased text), several times faster on ASCII
    text: bytes.translate maps non-word characters to spaces, then split and trim apostrophes; the rare token
    with a doubled or edge apostrophe, and any non-ASCII text, go through the regex itself, so the result is
    identical (tested on every AlpacaEval answer)."""
    if not text.isascii():
        return WORD.findall(text.lower())
    spaced = text.lower().encode("ascii").translate(_ASCII_WORD_BYTES).decode("ascii")
    if "''" in spaced:
        return WORD.findall(text.lower())
    if "'" not in spaced:
        return spaced.split()
    # no "''" here, so every apostrophe stands alone: one at a token's edge touches a space (or the text's
    # edge); dropping those two kinds leaves exactly the apostrophes between word characters, as the regex does
    return f" {spaced} ".replace(" '", " ").replace("' ", " ").split()
