"""The quality gate: which answers count when diversity is measured.

An answer passes when
1. it is relevant: cosine(answer, its own prompt) >= the run's relevance line, calibrated per run and
   embedder as the RELEVANCE_QUANTILE (95th) percentile of the cosines of answers with *other* prompts
   (a floor distribution: 95% of answers are less similar to an unrelated prompt than the line), and
2. every gating scorer (a configured scorer with `pass_at`) that scored it gave score >= pass_at
   (scores are higher-is-better for every scorer). An answer a scorer could not score (NULL score) is
   gated by the other scorers and relevance alone; the report names the scorers that gated.
A blank answer (empty or whitespace) or a request that failed for good never passes: it is an answer that
was asked for and failed, so it stays in every gated figure's denominator (hivemind.analyze.diversity derives each
metric; analyze.passes.add_gated applies it for every engine and gate).

Relevance alone cannot catch a shuffled word salad of a good answer (same words, same embedding
neighbourhood); only a fluency scorer does: the default `fluency` scorer every config gets
(hivemind.score.fluency), or perplexity.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

RELEVANCE_QUANTILE = 95.0
CALIBRATION_ANSWERS = 20_000    # answers sampled to calibrate the relevance line
MAX_OTHER_PROMPTS = 200         # other prompts each sampled answer is compared with


@dataclass
class Gate:
    relevance_line: float | None                  # None: no prompt vectors, relevance not gated
    scorers: dict[str, float]                     # gating scorer name -> pass_at
    scores: dict[tuple[str, str, int], dict[str, float]] = field(default_factory=dict)  # key -> scorer -> score
    prompt_vectors: dict[str, np.ndarray] = field(default_factory=dict)
    n_scored: dict[str, int] = field(default_factory=dict)    # gating scorer -> answers it scored
    no_line_reason: str | None = None             # why relevance_line is None (relevance_gap), in words

    def relevance(self, prompt_id: str, vectors: np.ndarray) -> np.ndarray:
        """cos(answer, prompt) per row; NaN when the prompt has no vector."""
        p = self.prompt_vectors.get(prompt_id)
        if p is None:
            return np.full(len(vectors), np.nan)
        return np.asarray(vectors, dtype=np.float32) @ p

    def passes(self, prompt_id: str, system_ids: list[str], samples: np.ndarray, vectors: np.ndarray) -> np.ndarray:
        ok = np.ones(len(vectors), dtype=bool)
        if self.relevance_line is not None:
            rel = self.relevance(prompt_id, vectors)
            ok &= ~(rel < self.relevance_line)          # NaN (no prompt vector): not gated by relevance
        if self.scorers:
            for i, (sid, sample) in enumerate(zip(system_ids, samples.tolist())):
                got = self.scores.get((sid, prompt_id, int(sample)))
                if got and any(got[name] < line for name, line in self.scorers.items() if name in got):
                    ok[i] = False
        return ok

    def gated_by(self) -> list[str]:
        """What gated this run's answers: "relevance" when the line exists, then every gating scorer that
        scored at least one answer (a configured scorer with no scores gated nothing)."""
        return (["relevance"] if self.relevance_line is not None else []) + \
            [name for name in self.scorers if self.n_scored.get(name, 0) > 0]

    def describe(self) -> str:
        parts = []
        if self.relevance_line is not None:
            parts.append(f"relevance (cosine to own prompt >= {self.relevance_line:.3f}, the "
                         f"{RELEVANCE_QUANTILE:.0f}th percentile of cosines to other prompts)")
        else:
            parts.append(f"no relevance gate ({self.no_line_reason or 'no relevance line'})")
        for name, line in self.scorers.items():
            scored = self.n_scored.get(name, 0)
            parts.append(f"{name} >= {line:g} ({scored} answers scored)" if scored else
                         f"{name} >= {line:g} (no answer scored, so it gated nothing: run `hivemind score`)")
        return "; ".join(parts)


def calibrate_relevance(sample_vectors: np.ndarray, sample_prompts: list[str],
                        prompt_vectors: dict[str, np.ndarray], seed: int = 0) -> float | None:
    """The RELEVANCE_QUANTILE percentile of cos(answer, another prompt) over sampled answers."""
    ids = [p for p in dict.fromkeys(sample_prompts) if p in prompt_vectors]
    if len(ids) < 2 or len(sample_vectors) == 0:
        return None
    rng = np.random.default_rng(seed)
    chosen = ids if len(ids) <= MAX_OTHER_PROMPTS else list(rng.choice(ids, MAX_OTHER_PROMPTS, replace=False))
    pv = np.vstack([prompt_vectors[p] for p in chosen]).astype(np.float32)
    cos = np.asarray(sample_vectors, dtype=np.float32) @ pv.T
    own = np.array(sample_prompts)[:, None] == np.array(chosen)[None, :]
    return float(np.percentile(cos[~own], RELEVANCE_QUANTILE))


def relevance_gap(sample_prompts: list[str], prompt_vectors: dict[str, np.ndarray]) -> str | None:
    """Why calibrate_relevance has no line for these sampled answers' prompts (None: it has one, or
    would). The line is the percentile of cosines between answers and *other* prompts, so it needs real
    answers to two or more prompts whose own text is embedded; an answer-less prompt is no reason to
    blame the embeddings."""
    answered = list(dict.fromkeys(sample_prompts))
    embedded = [p for p in answered if p in prompt_vectors]
    if len(embedded) >= 2:
        return None
    if not prompt_vectors:
        return "the prompts have no embeddings: run `hivemind embed`"
    if len(answered) < 2:
        return (f"only {len(answered)} prompt(s) have a real answer, the others none or only blank answers and "
                f"failed requests; the line is calibrated on answers to other prompts, so it needs real answers "
                f"to 2 or more prompts")
    return (f"only {len(embedded)} of the {len(answered)} answered prompts have an embedded prompt text: run "
            f"`hivemind embed`")


def build_gate(scorers, scores_frame, prompt_vectors: dict[str, np.ndarray], relevance_line: float | None,
               no_line_reason: str | None = None) -> Gate:
    """scorers: config.Scorer list; scores_frame: Store.scores_frame(). Only scorers with pass_at gate."""
    lines = {s.name: float(s.pass_at) for s in scorers if s.pass_at is not None}
    scores: dict[tuple[str, str, int], dict[str, float]] = {}
    n_scored = dict.fromkeys(lines, 0)
    if lines and scores_frame is not None and len(scores_frame):
        frame = scores_frame[scores_frame["scorer"].isin(list(lines)) & scores_frame["score"].notna()]
        for sid, pid, sample, scorer, score in zip(frame["system_id"], frame["prompt_id"], frame["sample"],
                                                   frame["scorer"], frame["score"]):
            scores.setdefault((sid, pid, int(sample)), {})[scorer] = float(score)
            n_scored[scorer] += 1
    return Gate(relevance_line=relevance_line, scorers=lines, scores=scores, prompt_vectors=prompt_vectors,
                n_scored=n_scored, no_line_reason=None if relevance_line is not None else no_line_reason)


# How much the gate depends on the scorer (gate_by_scorer.csv) ----------------------------------------
GATE_BY_SCORER_COLUMNS = ["system", "gate", "pass_at", "n_scored", "pass_rate", "metric", "value",
                          "pass_rate_spread", "value_spread"]
ALL_SCORERS = "all"


def single_scorer_gates(gate: Gate) -> dict[str, Gate]:
    """For each gating scorer that scored anything, the run's gate with that scorer alone (the relevance
    line kept: it is part of every gate, and the question is which *scorer* gated); empty unless two or
    more scorers gate, since with one there is nothing to compare."""
    scored = {name: line for name, line in gate.scorers.items() if gate.n_scored.get(name, 0) > 0}
    if len(scored) < 2:
        return {}
    return {name: replace(gate, scorers={name: line}) for name, line in scored.items()}


def spread(values) -> float:
    """max - min over the defined values; NaN when none is."""
    values = np.asarray(values, dtype=np.float64)
    return float(np.nanmax(values) - np.nanmin(values)) if np.any(~np.isnan(values)) else float("nan")


def gate_by_scorer(names: list[str], ids: list[str], gate: Gate, run_means: dict[str, np.ndarray],
                   scorer_means: dict[str, dict[str, np.ndarray]], primary: str) -> pd.DataFrame:
    """Per system, the pass rate and the primary metric under the run's gate ("all") and under each
    single-scorer gate; the spread (max - min over the single-scorer gates) says how much the system's
    figure depends on which scorer gated it (0: not at all).

    run_means / scorer_means[name]: DiversityStats.system_means() of the run's gate and of each
    single-scorer gate (means over prompts, as in leaderboard.csv); only the first len(names) systems."""
    scored: dict[str, dict[str, int]] = {sid: {} for sid in ids}    # answers each scorer scored
    any_scored = dict.fromkeys(ids, 0)                               # answers any gating scorer scored
    for (sid, _, _), got in gate.scores.items():
        if sid in scored:
            for name in got:
                scored[sid][name] = scored[sid].get(name, 0) + 1
            any_scored[sid] += any(name in gate.scorers for name in got)
    rows = []
    for i, (system, sid) in enumerate(zip(names, ids)):
        single = [(name, means["pass_rate"][i], means[primary][i]) for name, means in scorer_means.items()]
        pass_spread, value_spread = spread([p for _, p, _ in single]), spread([v for _, _, v in single])
        rows.append([system, ALL_SCORERS, float("nan"), any_scored[sid], run_means["pass_rate"][i],
                     primary, run_means[primary][i], pass_spread, value_spread])
        for name, pass_rate, value in single:
            rows.append([system, name, gate.scorers[name], scored[sid].get(name, 0), pass_rate, primary, value,
                         pass_spread, value_spread])
    return pd.DataFrame(rows, columns=GATE_BY_SCORER_COLUMNS)
