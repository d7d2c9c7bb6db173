"""Labelled answer sets in NoveltyBench's format: one JSONL line per (model, prompt) with `generations` and
their `partition` (class labels from NoveltyBench's classifier), optionally `generation_scores` and `utility`.
The shared set (`../shared/data/noveltybench_dev`) is 24 models x 50 prompts x 10 samples; a user's own labels
in the same format work alike."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hivemind.core.errors import HivemindError


@dataclass
class LabelledSet:
    """One (model, prompt) answer set with its labels."""
    system: str
    prompt_id: str
    prompt: str
    texts: list[str]
    partition: np.ndarray                     # class per answer, NoveltyBench's greedy order
    scores: list[float] | None = None         # generation_scores (a repeat scores 0)
    utility: float | None = None
    vectors: np.ndarray | None = field(default=None, repr=False)

    @property
    def n_classes(self) -> int:
        return len(set(self.partition.tolist()))

    def same(self) -> np.ndarray:
        """n x n: True where two answers share a class."""
        return self.partition[:, None] == self.partition[None, :]


def load_labelled(folder: Path) -> list[LabelledSet]:
    """Every *.jsonl in `folder` (or one file). A line without `generations` and `partition` of equal length
    is refused naming file and line."""
    folder = Path(folder)
    files = sorted(folder.glob("*.jsonl")) if folder.is_dir() else [folder]
    if not files:
        raise HivemindError(f"{folder}: no .jsonl files with labelled generations (NoveltyBench's format)")
    sets = []
    for path in files:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                texts, partition = row["generations"], row["partition"]
            except (json.JSONDecodeError, KeyError, TypeError) as err:
                raise HivemindError(f"{path}:{number}: not a labelled NoveltyBench line ({err}); each line needs "
                                    f"`generations` and `partition`") from None
            if len(texts) != len(partition) or not texts:
                raise HivemindError(f"{path}:{number}: {len(texts)} generations but {len(partition)} partition labels")
            sets.append(LabelledSet(system=str(row.get("model", path.stem)).split("/")[-1],
                                    prompt_id=str(row.get("id", row.get("prompt", ""))), prompt=row.get("prompt", ""),
                                    texts=[str(t) for t in texts], partition=np.asarray(partition),
                                    scores=row.get("generation_scores"), utility=row.get("utility")))
    return sets


def embed_sets(sets: list[LabelledSet], embedder=None, progress: bool = True) -> None:
    """Fill each set's `vectors` with the embedder's (default: the bundled MiniLM), cached on disk by the
    texts' hash (12,000 answers take about 5 minutes on 2 cores the first time)."""
    from hivemind.core.config import Embedder
    from hivemind.embed.backends import _atomic, cache_dir
    from hivemind.embed.stage import load_encoder

    embedder = embedder or Embedder()
    texts = [t for s in sets for t in s.texts]
    digest = hashlib.sha256(json.dumps([embedder.id, texts]).encode()).hexdigest()[:20]
    path = cache_dir() / "labelled" / f"{digest}.npy"
    if path.is_file():
        vectors = np.load(path)
    else:
        encode = load_encoder(embedder)
        unique = sorted(set(texts))
        found = {}
        batch = 256
        from tqdm import tqdm
        for start in tqdm(range(0, len(unique), batch), desc="embed labelled answers", disable=not progress):
            part = unique[start:start + batch]
            found.update(zip(part, encode(part)))
        vectors = np.stack([found[t] for t in texts]).astype(np.float32)
        path.parent.mkdir(parents=True, exist_ok=True)
        with _atomic(path) as tmp, open(tmp, "wb") as out:   # the cache's one atomic write (embed.backends)
            np.save(out, vectors)
    start = 0
    for s in sets:
        s.vectors = vectors[start:start + len(s.texts)]
        start += len(s.texts)
