"""Scoring the human-rated responses with each scorer, through the score stage (its cache, its resume)."""
from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

from hivemind.studies.scorer_calibration.records import HumanData

HUMAN_SYSTEM = "human-rated"
SCORING_DIR = ".scoring"


def prompt_id(query: str) -> str:
    return "q" + hashlib.sha256(query.encode("utf-8")).hexdigest()[:16]


def score_responses(data: HumanData, scorers: list, name: str, results_dir: str | Path,
                    progress: bool = False) -> tuple[dict[str, dict[tuple[str, str], float | None]], Any]:
    """Score every distinct (query, response) with each scorer through the score stage.

    The responses go into a store of their own as answers of one pseudo-system, so the score stage's caching
    applies: a re-run scores nothing twice and a killed run resumes. It lives in results/<name>/.scoring/
    (a hidden folder), so the leaderboard never mistakes the calibration for a run."""
    from hivemind.collect.prompts import Prompt
    from hivemind.core.config import RunConfig, System
    from hivemind.score.stage import score_run
    from hivemind.store import Response, Store

    system = System(name=HUMAN_SYSTEM, model="human/rated-responses")
    pairs: dict[tuple[str, str], tuple[str, int]] = {}
    for query, response in _distinct(data):
        pid = prompt_id(query)
        sample = sum(1 for (q, _r) in pairs if q == query)
        pairs[(query, response)] = (pid, sample)
    config = RunConfig(name=name, prompts="human-ratings", systems=[system], scorers=scorers,
                       results_dir=str(results_dir), samples=max(s for _p, s in pairs.values()) + 1)
    with Store(config.store_path) as store:
        store.add_system(system.identity, system.name, system.model, system.api_base, system.params)
        queries = {q: prompt_id(q) for q, _r in pairs}
        store.add_prompts([Prompt(id=pid, text=q) for q, pid in queries.items()])
        done = store.done_keys(system.identity)
        store.add_responses([Response(system_id=system.identity, prompt_id=pid, sample=s, text=r)
                             for (q, r), (pid, s) in pairs.items() if (pid, s) not in done])
    summary = score_run(config, progress=progress, raise_if_incomplete=False)
    with Store(config.store_path) as store:
        frame = store.scores_frame([system.identity])
    by_key = {(pid, s): key for key, (pid, s) in pairs.items()}
    scores: dict[str, dict[tuple[str, str], float | None]] = {s.name: {} for s in scorers}
    for row in frame.itertuples():
        key = by_key.get((row.prompt_id, int(row.sample)))
        if key is not None and row.scorer in scores:
            scores[row.scorer][key] = None if row.score is None or math.isnan(row.score) else float(row.score)
    return scores, summary


def _distinct(data: HumanData) -> list[tuple[str, str]]:
    seen: dict[tuple[str, str], None] = {}
    for r in data.absolute:
        seen[(r.query, r.response)] = None
    for p in data.pairwise:
        seen[(p.query, p.response_a)] = None
        seen[(p.query, p.response_b)] = None
    return list(seen)
