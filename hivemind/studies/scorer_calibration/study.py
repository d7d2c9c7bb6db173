"""`hivemind calibrate`: score the human-rated responses, compare per subset, write results/<name>/."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hivemind.core.errors import HivemindError
from hivemind.studies.scorer_calibration.load import load_human_data
from hivemind.studies.scorer_calibration.records import HumanData, exclusion_summary
from hivemind.studies.scorer_calibration.scoring import SCORING_DIR, score_responses
from hivemind.studies.scorer_calibration.statistics import Row, absolute_table, pairwise_table
from hivemind.studies.scorer_calibration.subsets import Params, value_tag


@dataclass
class ScorerCalibration:
    """One calibration: the human data, every (scorer, subset, statistic) row and where the tables went."""
    out_dir: Path
    data: HumanData
    rows: list[Row]
    params: Params
    score_summary: Any = None

    def text(self) -> str:
        lines = [f"human ratings: {len(self.data.absolute)} absolute records, {len(self.data.pairwise)} pairs; "
                 f"{len(self.data.exclusions)} excluded ({exclusion_summary(self.data.exclusions) or 'none'}); "
                 f"{self.data.dropped_missing_ratings} missing ratings dropped"]
        for row in self.rows:
            stat = "rho" if row.statistic == "spearman" else "agreement"
            value = "n/a" if math.isnan(row.value) else f"{row.value:.3f}"
            ci = "" if math.isnan(row.ci_low) else f" [{row.ci_low:.3f}, {row.ci_high:.3f}]"
            extra = f", {row.unscored} unscored" if row.unscored else ""
            extra += f", {row.excluded_ties} ties left out" if row.excluded_ties else ""
            lines.append(f"  {row.kind} {row.scorer} {row.subset}: {stat} {value}{ci} (n={row.n} of "
                         f"{row.n_subset}{extra})")
        if self.score_summary is not None and not self.score_summary.complete:
            lines.append("scoring incomplete:\n" + self.score_summary.text())
        lines.append(f"tables in {self.out_dir}")
        return "\n".join(lines)


def scorers_for(config: str | None, names: list[str] | None = None) -> list:
    """The scorers of a config (optionally some of them), or the local perplexity scorer."""
    from hivemind.core.config import Scorer
    from hivemind.core.config_files import resolve_run

    if config is None:
        if names:
            raise HivemindError("--scorer picks scorers of --config; pass --config too")
        return [Scorer(name="logprob", kind="perplexity", params={"max_tokens": 256})]
    run = resolve_run(config)
    chosen = [run.scorer(name) for name in names] if names else [s for s in run.scorers if s.kind != "imported"]
    if not chosen:
        raise HivemindError(f"{config}: no computed scorers; add a `scorers:` list")
    return chosen


def calibrate_scorers(absolute: str | None, pairwise: str | None, scorers: list, name: str = "calibration",
              results_dir: str | Path | None = None, params: Params | None = None,
                      progress: bool = False, wait: bool = False) -> ScorerCalibration:
    """Score the human-rated responses, compare, write results/<name>/ (under that folder's lock)."""
    from hivemind.core.config import check_name
    from hivemind.results.folder import folder_locked, results_root

    check_name(name, "calibration name")      # before anything is created under the results folder
    params = params or Params()
    _check_params(params)
    if not scorers:
        raise HivemindError("no scorers to calibrate: pass --config with a `scorers:` list, or --perplexity")
    data = load_human_data(absolute, pairwise)
    out_dir = results_root(results_dir) / name
    with folder_locked(out_dir, "calibrate", wait, name):
        scores, summary = score_responses(data, scorers, name, out_dir / SCORING_DIR, progress)
        rows = []
        if data.absolute:
            rows += absolute_table(data.absolute, scores, params)
        if data.pairwise:
            rows += pairwise_table(data.pairwise, scores, params)
        write_tables(out_dir, data, rows, params)
    return ScorerCalibration(out_dir, data, rows, params, summary)


def _check_params(params: Params) -> None:
    for label, values in (("--middle-pct", params.middle_pct), ("--disagreement-pct", params.disagreement_pct),
                          ("--pair-similar-pct", params.pair_similar_pct),
                          ("--pair-disagreement-pct", params.pair_disagreement_pct)):
        if not values or not all(0 < v <= 100 for v in values):
            raise HivemindError(f"{label} must be in (0, 100], got {' '.join(value_tag(v) for v in values) or 'none'}")
    for label, values in (("--tukey-k", params.tukey_k), ("--z-max", params.z_max),
                          ("--pair-threshold", params.pair_threshold)):
        if not values or not all(v > 0 for v in values):
            raise HivemindError(f"{label} must be positive, got {' '.join(value_tag(v) for v in values) or 'none'}")
    if params.bootstrap < 0:
        raise HivemindError("--bootstrap must be 0 or more")


def write_tables(out_dir: Path, data: HumanData, rows: list[Row], params: Params) -> None:
    """The calibration tables, calibration.json and the figure, together through the results folder's write
    path (staged, scanned for secrets, renamed into place)."""
    import pandas as pd

    from hivemind.results.folder import writing

    frame = pd.DataFrame([r.as_dict() for r in rows])
    with writing(out_dir, "calibrate") as out:
        for kind in ("absolute", "pairwise"):
            part = frame[frame["kind"] == kind] if len(frame) else frame
            if len(part):
                out.csv(f"calibration_{kind}.csv", part)
        exclusions = pd.DataFrame([e.__dict__ for e in data.exclusions], columns=["source", "line", "reason"])
        out.csv("calibration_exclusions.csv", exclusions)
        meta = {"params": params.__dict__, "absolute_records": len(data.absolute), "pairs": len(data.pairwise),
                "excluded": len(data.exclusions), "missing_ratings_dropped": data.dropped_missing_ratings}
        out.json("calibration.json", meta)
        if len(frame):
            _figure(out, frame)


def _figure(out, frame) -> None:
    """One panel per (kind, statistic): the statistic per subset and scorer, with its bootstrap interval and n."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(k, st) for k, st in (("absolute", "spearman"), ("pairwise", "spearman"), ("pairwise", "agreement"))
              if ((frame["kind"] == k) & (frame["statistic"] == st)).any()]
    widest = max(frame[(frame["kind"] == k) & (frame["statistic"] == st)]["subset"].nunique() for k, st in panels)
    fig, axes = plt.subplots(len(panels), 1, figsize=(max(8, 0.55 * widest + 2), 3.6 * len(panels)),
                             squeeze=False)
    labels = {("absolute", "spearman"): "Spearman rho with mean human rating",
              ("pairwise", "spearman"): "Spearman rho, score difference vs human margin",
              ("pairwise", "agreement"): "agreement with the human preference"}
    for ax, (kind, statistic) in zip(axes[:, 0], panels):
        part = frame[(frame["kind"] == kind) & (frame["statistic"] == statistic)]
        subsets = list(dict.fromkeys(part["subset"]))
        scorers = list(dict.fromkeys(part["scorer"]))
        width = 0.8 / len(scorers)
        for j, scorer in enumerate(scorers):
            rows = part[part["scorer"] == scorer].set_index("subset").reindex(subsets)
            x = np.arange(len(subsets)) + j * width
            values = rows["value"].astype(float).to_numpy()
            err = np.abs(np.vstack([values - rows["ci_low"].astype(float), rows["ci_high"].astype(float) - values]))
            ax.bar(x, np.nan_to_num(values), width, label=scorer, yerr=np.nan_to_num(err), capsize=2)
        counts = ["/".join(str(n) for n in part[part["subset"] == subset]["n"]) for subset in subsets]
        ticks = [f"{subset}\nn={n}" for subset, n in zip(subsets, counts)]   # n per scorer, in legend order
        ax.set_xticks(np.arange(len(subsets)) + 0.4 - width / 2, ticks, fontsize=6, rotation=60, ha="right")
        ax.set_ylabel(labels[(kind, statistic)], fontsize=8)
        ax.set_title(f"{kind}: {statistic}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    out.figure("calibration.png", fig, dpi=120)
    plt.close(fig)
