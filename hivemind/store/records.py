"""The records a store holds and hands out: prompts, responses, scores, answers and prompt groups."""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field

import numpy as np

# The whitespace Python's str.strip() and SQLite's TRIM both remove here, so "blank" means one thing.
BLANKS = " \t\n\r\x0b\x0c"
SQL_BLANKS = "' ' || char(9) || char(10) || char(13) || char(11) || char(12)"


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class Prompt:
    id: str
    text: str
    category: str | None = None


@dataclass
class Response:
    system_id: str
    prompt_id: str
    sample: int
    text: str | None
    seed: int | None = None
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_s: float | None = None
    cost: float | None = None
    error: str | None = None
    reasoning: str | None = None      # a reasoning model's thinking: stored apart (Store.add_reasoning), never embedded


@dataclass
class Score:
    """One quality score of one stored answer. Higher is better for every scorer."""
    system_id: str
    prompt_id: str
    sample: int
    scorer: str
    score: float | None
    raw: str | None = None
    error: str | None = None
    cost: float | None = None


@dataclass
class Verdict:
    """Whether two answers of one (system, prompt) say the same thing, by one equivalence method."""
    system_id: str
    prompt_id: str
    sample_a: int               # the earlier answer (a class representative)
    sample_b: int
    method: str                 # the equivalence method's id
    same: bool | None           # None: no verdict could be read (see error)
    probability: float | None = None
    raw: str | None = None
    error: str | None = None
    cost: float | None = None


@dataclass
class Answer:
    """One stored answer with its prompt's text: what a scorer reads."""
    system_id: str
    prompt_id: str
    sample: int
    prompt: str
    text: str

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.system_id, self.prompt_id, self.sample)


@dataclass
class PromptGroup:
    """All embedded responses to one prompt, ready for measurement.

    `systems[i]` is an index into the list of system ids the group was built for."""
    prompt_id: str
    systems: np.ndarray                      # int32, shape (n,)
    vectors: np.ndarray                      # float32, shape (n, d), rows L2-normalised
    texts: list[str] = field(default_factory=list)
    samples: np.ndarray | None = None        # int32, shape (n,)

    @property
    def sample_numbers(self) -> np.ndarray:
        """`samples`, or 0..n-1 for a group built without them (synthetic groups in benchmarks and tests)."""
        return self.samples if self.samples is not None else np.arange(len(self.systems))


# Errors -------------------------------------------------------------------------------------------
# Every SQLite and file-system error met by a store becomes one HivemindError here, naming the file and


def is_empty(text: str | None) -> bool:
    """A blank answer (empty or whitespace only) or no text at all (a failed request)."""
    return text is None or not text.strip(BLANKS)


def drop_empty(group: PromptGroup) -> PromptGroup | None:
    """The group's real answers only, for the figures that measure embeddings and words alone (intra,
    inter, near duplicates, phrases, the relevance calibration, controls). The quality-gated figures see
    blank answers as failing answers instead (add_gated); None when no real answer is left."""
    keep = [i for i, t in enumerate(group.texts) if not is_empty(t)]
    if len(keep) == len(group.texts):
        return group
    if not keep:
        return None
    return PromptGroup(prompt_id=group.prompt_id, systems=group.systems[keep], vectors=group.vectors[keep],
                       texts=[group.texts[i] for i in keep],
                       samples=group.samples[keep] if group.samples is not None else None)
