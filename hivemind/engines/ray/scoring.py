"""Scoring on Ray, for the scorers that compute locally (perplexity, relevance, reward): the pattern of
embedding.py. The answers to score (Store.answers_to_score: those with no row for the scorer) go out as
Parquet shards, an actor pool holds one scorer backend per worker (hivemind.score.stage.load_backend, the local
engine's code), each finished batch comes back as an output shard of score rows that the driver imports
(keys the store has meanwhile are skipped) and deletes; shards a killed job left are imported first.

API judges stay on the local engine: their cost is in requests, which the local engine already sends
concurrently with retries and a cost limit, and a cluster would only multiply the rate limits.
"""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import numpy as np
import pandas as pd

from hivemind.core.config import RunConfig, Scorer
from hivemind.core.errors import HivemindError
from hivemind.engines.ray.cluster import connected, gpu_workers, n_cpus
from hivemind.engines.ray.pool import (
    FAULT_ENV,
    SHARDS_PER_WORKER,
    die_once,
    drain,
    map_actors,
    output_path,
    remove_empty,
)
from hivemind.results.folder import atomic_file
from hivemind.store import Answer, Score, Store
from hivemind.store.run import Run

WORK_FOLDER = ".ray-score"
SHARD_ANSWERS = 512
BATCH = 64
ANSWER_COLUMNS = ["system_id", "prompt_id", "sample", "prompt", "text"]
SCORE_COLUMNS = ["system_id", "prompt_id", "sample", "scorer", "score", "raw", "error", "cost"]


class ScoreActor:
    """One scorer backend per worker thread: Ray Data may call an actor from another thread than the one
    that built it, and a SQLite connection (relevance reads vectors from the store) stays in its thread."""

    def __init__(self, config: RunConfig, scorer: Scorer, fault_file: str | None = None):
        self.config, self.scorer, self.fault_file = config, scorer, fault_file
        self.local = threading.local()

    def backend(self):
        if not hasattr(self.local, "backend"):
            from hivemind.score.stage import load_backend

            self.local.store = Store.open_readonly(self.config.store_path)   # read only: nothing is written
            self.local.backend = load_backend(self.config, self.scorer, self.local.store)
        return self.local.backend

    def __call__(self, batch: dict) -> dict:
        die_once(self.fault_file)
        answers = [Answer(str(s), str(p), int(n), str(q), str(t)) for s, p, n, q, t in
                   zip(*(batch[c] for c in ANSWER_COLUMNS))]
        backend = self.backend()
        # the backend's own batch (8 pairs for a reward model, 16 answers for llama.cpp), as on the local
        # engine: a Ray batch of 64 in one forward pass could exhaust a worker's memory with a large model
        scores = [s for i in range(0, len(answers), backend.batch) for s in backend.score(answers[i:i + backend.batch])]
        return {"system_id": np.array([s.system_id for s in scores], dtype=object),
                "prompt_id": np.array([s.prompt_id for s in scores], dtype=object),
                "sample": np.array([s.sample for s in scores], dtype=np.int64),
                "scorer": np.array([s.scorer for s in scores], dtype=object),
                "score": np.array([np.nan if s.score is None else s.score for s in scores], dtype=np.float64),
                "raw": np.array([s.raw or "" for s in scores], dtype=object),
                "error": np.array([s.error or "" for s in scores], dtype=object),
                "cost": np.array([s.cost or 0.0 for s in scores], dtype=np.float64)}


def work_dir(config: RunConfig, scorer: Scorer) -> Path:
    return config.run_dir / WORK_FOLDER / scorer.name


def write_output(batch: dict, folder: Path) -> Path:
    path = output_path(folder)
    with atomic_file(path) as tmp:
        pd.DataFrame({c: batch[c] for c in SCORE_COLUMNS}).to_parquet(tmp, index=False)
    return path


def import_output(store: Store, path: Path) -> tuple[int, int, int]:
    """(scored, stored as errors, read in part) new rows from one output shard; a damaged shard is refused
    by name. "Read in part" is the `"truncated": true` the perplexity and reward scorers put in raw: the
    workers' own counters never reach the driver."""
    try:
        frame = pd.read_parquet(path)
    except Exception as err:
        raise HivemindError(f"{path}: not a readable score shard ({type(err).__name__}); nothing was imported "
                            f"from it. Delete it and score again: its answers are still unscored") from None
    missing = [c for c in SCORE_COLUMNS if c not in frame.columns]
    if missing:
        raise HivemindError(f"{path}: not a score shard (no column {', '.join(missing)}); nothing was imported "
                            f"from it. Delete it and score again")
    done = set()
    for scorer in frame["scorer"].unique():
        done |= {(s, p, n, scorer) for s, p, n in store.scored_keys(str(scorer))}
    rows = [Score(str(r.system_id), str(r.prompt_id), int(r.sample), str(r.scorer),
                  None if pd.isna(r.score) else float(r.score), r.raw or None, r.error or None, r.cost or None)
            for r in frame.itertuples() if (r.system_id, r.prompt_id, int(r.sample), r.scorer) not in done]
    store.add_scores(rows)
    path.unlink()
    return (sum(r.score is not None for r in rows), sum(r.score is None for r in rows),
            sum(_truncated(r.raw) for r in rows))


def _truncated(raw: str | None) -> bool:
    try:
        return bool(raw) and json.loads(raw).get("truncated") is True
    except (ValueError, AttributeError):     # raw of another scorer: not JSON, or not an object
        return False


def score_run(run: Run | RunConfig, scorers: list[str] | None = None, progress: bool = True,
              raise_if_incomplete: bool = True, address: str | None = None, workers: int | None = None,
              gpus: int | None = None, verbose: bool = False):
    """hivemind.score.stage.score_run with the local scorers on Ray; an API judge is refused with its name.
    The equivalence pairs a judge or classifier decides are decided on the driver, as the local engine does."""
    from hivemind.score.stage import (ScorerSummary, ScoreSummary, check_complete, count_answers,
                                      decide_equivalence, scoring_plan)

    config = Run.config_of(run)
    deciding, chosen = scoring_plan(config, scorers)
    judges = [s.name for s in chosen if s.kind == "judge"]
    if judges:
        raise HivemindError(f"scorer(s) {', '.join(judges)} are API judges: they run on the local engine "
                            f"(`hivemind score {config.name} --scorer {judges[0]}`, without --engine ray); "
                            f"--engine ray runs the perplexity, relevance and reward scorers")
    system_ids = [s.identity for s in config.systems]
    summary = ScoreSummary()
    with Run.of(run) as run:
        store = run.store()
        answers = count_answers(store, config, system_ids)
        if deciding:
            decide_equivalence(config, store, system_ids, summary, progress)
        for scorer in chosen:
            folder = work_dir(config, scorer)
            for path in sorted(folder.glob("part-*.parquet")) if folder.is_dir() else []:
                import_output(store, path)          # a killed job's finished batches
            todo = store.answers_to_score(scorer.name, system_ids)
            part = ScorerSummary(scorer.name, scorer.kind, todo=len(todo), skipped=answers - len(todo))
            summary.scorers[scorer.name] = part
            if todo:
                if scorer.kind == "relevance":      # embeds what is missing and the prompts, on the driver
                    from hivemind.score.stage import load_backend
                    load_backend(config, scorer, store, progress)
                try:
                    _run_pool(config, scorer, todo, store, part, address, workers, gpus, verbose, progress)
                except HivemindError as err:
                    part.stopped = str(err)
            remove_empty(folder, folder.parent)
    if raise_if_incomplete:
        check_complete(config, summary)
    return summary


def _run_pool(config, scorer, todo: list[Answer], store: Store, part, address, workers, gpus, verbose,
              progress) -> None:
    with connected(address, None, verbose) as ray:
        n_gpu = gpu_workers(ray, gpus) if gpus else 0     # GPUs only when asked: llama.cpp scores on CPU here
        size = n_gpu or workers or n_cpus(ray)
        frame = pd.DataFrame([(a.system_id, a.prompt_id, a.sample, a.prompt, a.text) for a in todo],
                             columns=ANSWER_COLUMNS)
        per_block = max(1, min(SHARD_ANSWERS, -(-len(frame) // (SHARDS_PER_WORKER * size))))
        blocks = [frame.iloc[i:i + per_block] for i in range(0, len(frame), per_block)]
        kwargs = {"config": config, "scorer": scorer, "fault_file": os.environ.get(FAULT_ENV)}
        ds = map_actors(ray, ray.data.from_pandas(blocks), ScoreActor, kwargs, BATCH, size, bool(n_gpu))

        def handle(batch: dict) -> int:
            scored, failed, truncated = import_output(store, write_output(batch, work_dir(config, scorer)))
            part.scored += scored
            part.failed_permanent += failed
            part.truncated += truncated
            return len(batch["sample"])

        drain(ds, handle, len(todo), f"score {scorer.name} (ray, {size} workers)", "answer", progress,
              "scoring on Ray failed", "every score stored so far is kept, run again to score the rest")
