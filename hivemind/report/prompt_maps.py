"""Prompt maps: the answers to the most homogeneous prompts, their vectors straight from the store."""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from hivemind.core.config import RunConfig
from hivemind.store.run import Run


@dataclass
class PromptMap:
    prompt_id: str
    prompt: str
    similarity: float
    file: str
    vectors: np.ndarray = field(repr=False)
    systems: np.ndarray = field(repr=False)


def file_stem(prompt_id: str) -> str:
    """A file-name-safe form of a prompt id; a hash suffix keeps altered ids apart."""
    safe = re.sub(r"[^A-Za-z0-9_-]+", "_", prompt_id).strip("_")[:60]
    if safe != prompt_id or not safe:
        safe = f"{safe or 'prompt'}-{hashlib.sha256(prompt_id.encode()).hexdigest()[:8]}"
    return safe


def top_prompts_frame(homogeneity: pd.DataFrame, n: int) -> pd.DataFrame:
    frame = homogeneity.dropna(subset=["mean_similarity"])
    return frame.sort_values("mean_similarity", ascending=False, kind="stable").head(max(n, 0))


def load_prompt_maps(run: Run | RunConfig, chosen: pd.DataFrame) -> tuple[list[PromptMap], str | None]:
    """Vectors of every answer to the chosen prompts; (maps, note) where the note says why maps are missing."""
    config = Run.config_of(run)
    if chosen.empty:
        return [], None
    if not config.store_path.is_file():
        return [], f"no store at {config.store_path}, so no prompt maps"
    ids = [s.identity for s in config.systems]
    index = {sid: k for k, sid in enumerate(ids)}
    with Run.of(run, read_only=True) as run:
        found = run.store().vectors_for_prompts(config.embedder.id, ids, chosen["prompt_id"].tolist())
    maps = []
    for _, row in chosen.iterrows():
        if row["prompt_id"] not in found:
            continue
        systems, vectors = found[row["prompt_id"]]
        maps.append(PromptMap(
            prompt_id=row["prompt_id"], prompt=row["prompt"], similarity=float(row["mean_similarity"]),
            file=f"prompt_map_{file_stem(row['prompt_id'])}.png", vectors=vectors,
            systems=np.array([index[s] for s in systems], dtype=np.int32)))
    return maps, None
