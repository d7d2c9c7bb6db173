"""NoveltyBench's rule for short answers, used by every equivalence method (the analysis kernel and the score
stage's pair deciders), declared once here where both layers can import it."""
from __future__ import annotations

SHORT_WORDS = 5     # NoveltyBench: pairs whose longer answer has at most 5 words are compared by word overlap


def short_answer_same(a: str, b: str) -> bool | None:
    """NoveltyBench's `maybe_test_equality` (src/partition.py): lower-cased whitespace words; when the longer
    answer has at most SHORT_WORDS words, the two are the same when they share at least half of its word count
    in distinct words; None when either is longer (the method decides)."""
    wa, wb = a.strip().lower().split(), b.strip().lower().split()
    longer = max(len(wa), len(wb))
    if longer > SHORT_WORDS:
        return None
    return len(set(wa) & set(wb)) * 2 >= longer
