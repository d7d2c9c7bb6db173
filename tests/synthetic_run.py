"""A real run folder (config.yaml + store.sqlite) with hand-made answers and hand-made unit vectors, for
report tests that need exact control of similarities (no embedder involved). Written for the tests."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hivemind.core.config import RunConfig, Scorer, System
from hivemind.results.record import save_run_config
from hivemind.store import Prompt, Response, Score, Store, text_hash


@dataclass
class Answer:
    system: str
    prompt_id: str
    sample: int
    text: str
    vector: np.ndarray


def unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return (v / np.linalg.norm(v)).astype(np.float32)


def make_run(root: Path, systems: list[str], prompts: list[Prompt], answers: list[Answer], samples: int = 2,
             scorers: list[Scorer] | None = None, scores: list[tuple[str, str, int, str, float]] = (),
             name: str = "synthetic") -> RunConfig:
    """scores: (system, prompt_id, sample, scorer, score)."""
    config = RunConfig(name=name, prompts="prompts.jsonl", samples=samples, results_dir=str(root),
                       systems=[System(name=s, model=f"test/{s}") for s in systems], scorers=scorers or [])
    save_run_config(config)
    ids = {s.name: s.identity for s in config.systems}
    vectors: dict[str, np.ndarray] = {}
    with Store(config.store_path) as store:
        for s in config.systems:
            store.add_system(s.identity, s.name, s.model, s.api_base, s.params)
        store.add_prompts(prompts)
        store.add_responses(Response(ids[a.system], a.prompt_id, a.sample, a.text) for a in answers)
        for a in answers:
            key = text_hash(a.text)
            assert key not in vectors or np.allclose(vectors[key], unit(a.vector)), f"one text, two vectors: {a.text!r}"
            vectors[key] = unit(a.vector)
        keys = sorted(vectors)
        store.add_embeddings(config.embedder.id, keys, np.array([vectors[k] for k in keys], dtype=np.float32))
        if scores:
            store.add_scores(Score(ids[s], p, x, scorer, float(v)) for s, p, x, scorer, v in scores)
    return config
