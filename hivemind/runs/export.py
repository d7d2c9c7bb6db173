"""Export a run to the evaluation ecosystem: Inspect AI eval logs (`hivemind export inspect RUN`).

One log per system, written with inspect_ai's own `write_eval_log`, so `inspect view --log-dir DIR` opens
them. A run maps onto Inspect as follows:

    task      hivemind/<run>                 model      the system's litellm model id
    sample    one prompt (id = prompt id)    input      the prompt text; target is empty (open-ended)
    messages  the prompt, then every answer of the system to it (one assistant message per sample)
    output    every answer as one choice (an n-sample completion), usage summed over the answers
    scores    per quality scorer the mean over the prompt's scored answers (per-answer values in its
              metadata), and `intra_similarity`: the system's mean pairwise cosine on the prompt
              (from intra_model_per_prompt.csv, when the run was analysed); shown rounded to SCORE_DIGITS
              decimals (the exact value in the score's metadata), each with the first answer as its `answer`,
              which `inspect view` shows in its Answer column

Decoding parameters Inspect knows go into `model_generate_config`; the rest (min_p) into its extra_body.
"""
from __future__ import annotations

import hashlib
import math
import re
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

from hivemind import __version__
from hivemind.core.errors import HivemindError
from hivemind.core.extras import missing_extra

INTRA = "intra_similarity"
SCORE_DIGITS = 3      # the figures a reader compares; 0.8734623 reads as noise in `inspect view`'s columns
GENERATE_FIELDS = {"temperature", "top_p", "max_tokens", "seed", "top_k", "frequency_penalty",
                   "presence_penalty", "logit_bias", "stop_seqs"}
STOP_REASONS = {"stop": "stop", "length": "max_tokens", "content_filter": "content_filter",
                "tool_calls": "tool_calls", "function_call": "tool_calls"}


def export_inspect(config, out: str | Path | None = None, wait: bool = False) -> list[Path]:
    """Write one Inspect AI log per system of the run into `out` (default RUN_DIR/inspect); their paths.

    Under the run lock, through the results folder's write path: the logs are staged, scanned for secrets with
    their zip containers decoded (an answer that echoes a key refuses the export), then renamed into place."""
    try:
        from inspect_ai.log import write_eval_log
    except ImportError:
        raise missing_extra("inspect", "exporting Inspect AI logs (inspect-ai)") from None
    from hivemind.results.folder import run_locked

    with run_locked(config, "export", wait):
        return _export(config, out, write_eval_log)


def _export(config, out: str | Path | None, write_eval_log) -> list[Path]:
    from hivemind.results.folder import INSPECT_DIR, writing
    from hivemind.store import Store

    if not config.store_path.is_file():
        raise HivemindError(f"{config.store_path}: no store for run {config.name!r}; collect it first")
    ids = [s.identity for s in config.systems]
    with Store.open_readonly(config.store_path) as store:
        prompts = store.prompts()
        responses = store.responses_frame(ids)
        scores = store.scores_frame(ids)
    if responses.empty:
        raise HivemindError(f"run {config.name!r} has no responses to export; run `hivemind collect "
                            f"{config.name}` first")
    intra = _intra(config.run_dir / "intra_model_per_prompt.csv")
    folder = Path(out) if out is not None else config.run_dir / INSPECT_DIR
    with writing(folder, "export", config=config) as staged:
        for system in config.systems:
            rows = responses[responses["system_id"] == system.identity]
            if rows.empty:
                continue
            log = system_log(config, system, prompts, rows, scores[scores["system_id"] == system.identity],
                             intra.get(system.name, {}))
            staged.with_writer(_log_name(log, system.name), lambda path: write_eval_log(log, str(path)))
    return staged.written


def system_log(config, system, prompts, rows, scores, intra: dict[str, float]):
    """The EvalLog of one system: one sample per prompt it answered."""
    from inspect_ai.log import EvalConfig, EvalDataset, EvalLog, EvalResults, EvalSpec, EvalStats
    from inspect_ai.model import GenerateConfig

    by_prompt = {pid: group for pid, group in rows.groupby("prompt_id", sort=False)}
    score_rows = {pid: group for pid, group in scores.groupby("prompt_id", sort=False)}
    samples = [_sample(system, p, by_prompt[p.id], score_rows.get(p.id), intra.get(p.id))
               for p in prompts if p.id in by_prompt]
    created = _times(rows)
    eval_id = _short_id(config.name, system.identity)
    usage = _usage(rows)
    spec = EvalSpec(
        eval_id=eval_id, run_id=_short_id(config.name), task_id=_short_id(config.name, "task"),
        created=created[1], task=f"hivemind/{config.name}", task_version=0,
        task_description="open-ended prompts answered several times; see hivemind's snapshot card",
        dataset=EvalDataset(name=config.name, samples=len(samples), sample_ids=[s.id for s in samples]),
        model=system.model, model_base_url=system.api_base,
        model_generate_config=GenerateConfig(**_generate_args(system.params)),
        model_args={"system": system.name, "identity": system.identity},
        config=EvalConfig(epochs=1), packages={"hivemind-bench": __version__},
        metadata={"hivemind_run": config.name, "system": system.name, "identity": system.identity,
                  "params": system.params, "embedder": config.embedder.id, "samples_per_prompt": config.samples},
        tags=["hivemind"],
    )
    return EvalLog(
        status="success", eval=spec, samples=samples,
        results=EvalResults(total_samples=len(samples), completed_samples=len(samples),
                            scores=_eval_scores(samples)),
        stats=EvalStats(started_at=created[0], completed_at=created[1],
                        model_usage={system.model: usage} if usage else {}),
    )


def _sample(system, prompt, rows, scores, intra: float | None):
    from inspect_ai.log import EvalSample
    from inspect_ai.model import ChatCompletionChoice, ChatMessageAssistant, ChatMessageUser, ModelOutput

    answers, failures = [], []
    for r in rows.sort_values("sample").itertuples():
        if r.text is None or (isinstance(r.text, float) and math.isnan(r.text)):
            failures.append({"sample": int(r.sample), "error": _str(r.error)})
            continue
        meta = {"sample": int(r.sample), "finish_reason": _str(r.finish_reason), "seed": _num(r.seed),
                "latency_s": _num(r.latency_s), "cost": _num(r.cost)}
        message = ChatMessageAssistant(content=r.text, model=system.model, source="generate",
                                       metadata={k: v for k, v in meta.items() if v is not None})
        answers.append(ChatCompletionChoice(message=message,
                                            stop_reason=STOP_REASONS.get(_str(r.finish_reason), "unknown")))
    output = ModelOutput(model=system.model, choices=answers,
                         completion=answers[0].message.text if answers else "", usage=_usage(rows),
                         error="; ".join(f["error"] or "no text" for f in failures) or None)
    return EvalSample(
        id=prompt.id, epoch=1, input=prompt.text, target="",
        messages=[ChatMessageUser(content=prompt.text), *(c.message for c in answers)],
        output=output, scores=_sample_scores(scores, intra, output.completion) or None,
        metadata={"category": prompt.category, "answers": len(answers), "failed": failures},
    )


def _sample_scores(scores, intra: float | None, answer: str) -> dict:
    """The prompt's scores, each carrying the first answer (`answer`: Inspect's Answer column) and its value
    rounded for display (the exact one in metadata)."""
    from inspect_ai.scorer import Score

    out = {}
    if intra is not None:
        out[INTRA] = Score(value=round(intra, SCORE_DIGITS), answer=answer or None, metadata={"exact": intra},
                           explanation="mean pairwise cosine among this system's answers to the prompt "
                                       "(higher: more repetitive)")
    if scores is None:
        return out
    for scorer, group in scores.groupby("scorer", sort=True):
        values = {int(r.sample): float(r.score) for r in group.itertuples() if r.score is not None
                  and not math.isnan(r.score)}
        if not values:
            continue
        mean = sum(values.values()) / len(values)
        out[str(scorer)] = Score(value=round(mean, SCORE_DIGITS), answer=answer or None,
                                 explanation=f"mean over {len(values)} scored answers (higher is better)",
                                 metadata={"per_sample": values, "exact": mean})
    return out


def _eval_scores(samples) -> list:
    """Per scorer the mean over the samples it scored: the figure Inspect shows beside the log."""
    from inspect_ai.log import EvalMetric, EvalScore

    values: dict[str, list[float]] = defaultdict(list)
    for sample in samples:
        for name, score in (sample.scores or {}).items():
            values[name].append(float((score.metadata or {}).get("exact", score.value)))
    return [EvalScore(name=name, scorer=name, scored_samples=len(v), unscored_samples=len(samples) - len(v),
                      metrics={"mean": EvalMetric(name="mean", value=round(sum(v) / len(v), SCORE_DIGITS))})
            for name, v in sorted(values.items())]


def _generate_args(params: dict) -> dict:
    known = {k: v for k, v in params.items() if k in GENERATE_FIELDS}
    extra = {k: v for k, v in params.items() if k not in GENERATE_FIELDS}
    return {**known, **({"extra_body": extra} if extra else {})}


def _usage(rows):
    from inspect_ai.model import ModelUsage

    prompt = int(rows["prompt_tokens"].fillna(0).sum())
    completion = int(rows["completion_tokens"].fillna(0).sum())
    cost = rows["cost"].dropna()
    if not (prompt or completion or len(cost)):
        return None
    return ModelUsage(input_tokens=prompt, output_tokens=completion, total_tokens=prompt + completion,
                      total_cost=float(cost.sum()) if len(cost) else None)


def _intra(path: Path) -> dict[str, dict[str, float]]:
    """system name -> prompt id -> intra-model similarity, from the analysed run (empty if not analysed)."""
    import pandas as pd

    if not path.is_file():
        return {}
    frame = pd.read_csv(path, dtype={"prompt_id": str})
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for r in frame.dropna(subset=["intra"]).itertuples():
        out[str(r.system)][str(r.prompt_id)] = float(r.intra)
    return out


def _times(rows) -> tuple[str, str]:
    stamps = rows["created_at"].dropna()
    if stamps.empty:
        stamp = datetime.now(timezone.utc).isoformat()
        return stamp, stamp
    return str(stamps.min()), str(stamps.max())


def _log_name(log, system_name: str) -> str:
    """Inspect's own pattern, {created}_{task}_{id}.eval, with the system in the task part."""
    created = datetime.fromisoformat(log.eval.created).strftime("%Y-%m-%dT%H-%M-%S+00-00")
    task = re.sub(r"[^A-Za-z0-9.-]+", "-", f"{log.eval.metadata['hivemind_run']}-{system_name}").strip("-")
    return f"{created}_{task}_{log.eval.eval_id}.eval"


def _short_id(*parts: str) -> str:
    """Stable ids: exporting the same run twice gives the same file names."""
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:22]


def _str(value) -> str | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def _num(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value) if isinstance(value, float) else int(value)
