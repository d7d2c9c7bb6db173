"""Control systems: synthetic "models" made from the run's own answers, to show where known cases land.

For every prompt, with S = the most samples one real system gave to one prompt (the run's design):
- salad: S word-shuffles of the prompt's most typical answer (its medoid: highest mean cosine to the other
  answers). Same words, same topic, no sentences: relevance cannot catch it, a fluency scorer can.
- babble: S strings of words drawn at random from the whole run's vocabulary (by frequency), each as long
  as the medoid answer. No topic, no sentences.
- off-topic: S real answers to the *next* prompt (fluent, wrong question).
- paraphrase-ensemble: one answer from each of S different real systems (rotating): what several distinct
  models look like when sampled as one system.
- copies: the medoid answer repeated S times (with S = 1, a verbatim copy of the most typical answer).

They are stored as systems named `control:<kind>` with model `control:<kind>` and params
{"control": kind, ...}; their identity hashes the kind, the seed and the number of real answers, so a run
with new answers gets fresh controls instead of stale ones. Controls are embedded like any answer and scored
when the score stage exists; analyze measures them beside the real systems but never lets them change a
real system's figures, and never ranks them.
"""
from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass

import numpy as np

from hivemind.analyze.phrases import words
from hivemind.core.config import RunConfig
from hivemind.store import Response, Store, text_hash
from hivemind.store.records import drop_empty
from hivemind.store.run import Run

KINDS = ("salad", "babble", "off-topic", "paraphrase-ensemble", "copies")
CONTROL_PREFIX = "control:"


@dataclass(frozen=True)
class ControlSystem:
    identity: str
    name: str
    model: str
    kind: str


def is_control(params) -> bool:
    if isinstance(params, str):
        try:
            params = json.loads(params)
        except json.JSONDecodeError:
            return False
    return isinstance(params, dict) and "control" in params


def control_systems(seed: int, n_answers: int) -> list[ControlSystem]:
    out = []
    for kind in KINDS:
        blob = json.dumps({"control": kind, "seed": seed, "answers": n_answers}, sort_keys=True)
        identity = "ctl-" + hashlib.sha256(blob.encode()).hexdigest()[:12]
        out.append(ControlSystem(identity, CONTROL_PREFIX + kind, CONTROL_PREFIX + kind, kind))
    return out


def add_controls(run: Run, progress: bool = True) -> tuple[list[ControlSystem], str | None]:
    """Build, store, embed (answers and prompts) and score the control systems with the run's scorers.

    Returns the controls and a note when a scorer could not score them (they are then gated by the rest)."""
    config, store = run.config, run.store()
    ids = [s.identity for s in config.systems]
    groups = [g for g in store.iter_prompt_groups(config.embedder.id, ids) if len(g.texts)]
    groups = [_non_empty(g) for g in groups]
    groups = [g for g in groups if g is not None]
    n_answers = sum(len(g.texts) for g in groups)
    controls = control_systems(config.seed, n_answers)
    samples = max(int(np.bincount(g.systems).max()) for g in groups) if groups else 1
    rng = np.random.default_rng(config.seed)
    vocabulary = Counter(w for g in groups for t in g.texts for w in words(t))
    vocab_words = np.array(list(vocabulary))
    vocab_p = np.array([vocabulary[w] for w in vocab_words], dtype=np.float64)
    vocab_p /= vocab_p.sum() if len(vocab_p) else 1.0
    by_kind = {c.kind: c for c in controls}
    responses = []
    for i, g in enumerate(groups):
        medoid = g.texts[_medoid(g.vectors)]
        medoid_words = medoid.split()
        nxt = groups[(i + 1) % len(groups)]
        first_of = [int(np.flatnonzero(g.systems == s)[0]) for s in np.unique(g.systems)]
        texts = {
            "salad": [" ".join(rng.permutation(medoid_words)) for _ in range(samples)],
            "babble": [" ".join(rng.choice(vocab_words, size=max(len(medoid_words), 1), p=vocab_p))
                       for _ in range(samples)],
            "off-topic": [nxt.texts[j % len(nxt.texts)] for j in range(samples)] if len(groups) > 1 else [],
            "paraphrase-ensemble": [g.texts[first_of[(i + j) % len(first_of)]] for j in range(samples)],
            "copies": [medoid] * samples,
        }
        for kind, answers in texts.items():
            for j, text in enumerate(answers):
                responses.append(Response(system_id=by_kind[kind].identity, prompt_id=g.prompt_id, sample=j,
                                          text=text, finish_reason="control"))
    for c in controls:
        store.add_system(c.identity, c.name, c.model, None, {"control": c.kind, "seed": config.seed,
                                                             "answers": n_answers})
    store.add_responses(responses)
    embed_missing(config, store, [c.identity for c in controls])
    return controls, score_controls(run, controls, progress)


def embed_missing(config: RunConfig, store: Store, system_ids: list[str]) -> None:
    """Vectors for the controls' texts and for the prompt texts (the relevance gate needs them)."""
    todo = store.texts_to_embed(config.embedder.id, system_ids)
    have = store.prompt_vectors(config.embedder.id)
    prompts = [(text_hash(p.text), p.text) for p in store.prompts() if p.id not in have]
    todo = list(dict(todo + prompts).items())
    if not todo:
        return
    from hivemind.embed.stage import load_encoder

    result = load_encoder(config.embedder).encode([t for _, t in todo])   # chunked like the embed stage
    store.add_chunked_embeddings(config.embedder.id, [h for h, _ in todo], result.vectors, result.chunks,
                                 result.tokens)


def score_controls(run: Run, controls: list[ControlSystem], progress: bool) -> str | None:
    """Score the controls' answers with the configured scorers, through the run's store.

    Returns a note when a scorer could not score them (then they are gated by the others and relevance)."""
    if not run.config.scorers:
        return None
    from hivemind.score.stage import score_run

    summary = score_run(run, system_ids=[c.identity for c in controls], progress=progress,
                        raise_if_incomplete=False)
    if not summary.complete:
        return "some scorers could not score the controls (gated by the rest):\n" + summary.text()
    return None


def _medoid(vectors: np.ndarray) -> int:
    x = np.asarray(vectors, dtype=np.float64)
    return int(np.argmax(x @ x.sum(axis=0)))


def _non_empty(group):
    return drop_empty(group)
