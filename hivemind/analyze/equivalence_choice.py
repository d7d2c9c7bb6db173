"""The run's equivalence method, built from its config (`equivalence:`) and, for the methods decided pair by
pair before analysis (judge, classifier, imported), from the verdicts in its store.

- learned (the default): the shipped pair model, when the run embeds with the model it was trained on (the
  bundled MiniLM); with another embedder the pair model's cosine features mean something else, so the run
  falls back to `embedding` and says so.
- embedding: cosine >= `threshold`; absent, the floor-relative line floor + IDEA_RESCALED (1 - floor), its
  rescaled value chosen against NoveltyBench's labels (hivemind.analyze.diversity).
- judge, classifier, imported: VerdictEquivalence over the stored verdicts; a pair without one is an error that
  says which command decides it.
"""
from __future__ import annotations

from dataclasses import dataclass

from hivemind.analyze.diversity import idea_threshold
from hivemind.analyze.equivalence import (
    EmbeddingLine,
    Equivalence,
    LearnedEquivalence,
    VerdictEquivalence,
    shipped_model,
)
from hivemind.core.config import RunConfig
from hivemind.store import Store


@dataclass
class Chosen:
    equivalence: Equivalence
    note: str | None = None       # why the configured method was not the one used, for the warnings


def equivalence_for(config: RunConfig, store: Store, system_ids: list[str], floor: float | None) -> Chosen:
    """The equivalence the analysis partitions with. `floor`: the run's floor, used only by the fallback line
    of an embedder without a calibrated line."""
    wanted = config.equivalence
    if wanted.verdict_method is not None:
        return Chosen(stored_verdicts(store, wanted.verdict_method, system_ids, config.name))
    if wanted.method == "learned":
        model = shipped_model()
        if config.embedder.id == f"sentence-transformers:{model.embedder}":
            return Chosen(LearnedEquivalence(model, wanted.threshold))
        line = embedding_line(config, floor)
        return Chosen(line, f"equivalence 'learned' is trained on {model.embedder} vectors; this run embeds with "
                            f"{config.embedder.id}, so distinct ideas use the embedding line {line.threshold:.3f}")
    if wanted.threshold is not None:
        return Chosen(EmbeddingLine(wanted.threshold, "configured"))
    return Chosen(embedding_line(config, floor))


def embedding_line(config: RunConfig, floor: float | None) -> EmbeddingLine:
    return EmbeddingLine(idea_threshold(floor), "floor-relative")


def stored_verdicts(store: Store, method: str, system_ids: list[str], run: str) -> VerdictEquivalence:
    table = store.verdicts(method, system_ids)
    hint = ("run `hivemind import --partitions FILE` first" if method == "imported"
            else f"run `hivemind score {run}` first (it asks the {method.split(':')[0]} every pair the "
                 f"partition compares)")

    def verdict(a, b):
        (system, prompt, sample_a), (_, _, sample_b) = a, b
        return table.get((system, prompt), {}).get((min(sample_a, sample_b), max(sample_a, sample_b)))
    return VerdictEquivalence(method, verdict, hint)
