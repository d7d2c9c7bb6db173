"""Homogeneity per prompt category: the breakdown analyze writes and `hivemind categories` rewrites (the INFINITY-CHAT taxonomy, or any categories the prompts carry).

Reads what `hivemind analyze` wrote (intra_model_per_prompt.csv: system, prompt_id, intra; and, when present,
prompt_homogeneity.csv: prompt_id, mean_similarity) and the prompts' categories from the run's store, and
writes category_breakdown.csv:

  category, level, system, n_prompts, mean_intra, share_above_0.8, mean_prompt_similarity,
  effective_diversity, effective_distinctness, pooled_vendi, pooled_distinct_ideas, few_prompts

- mean_intra: mean over the category's prompts of the system's intra-model similarity (the mean cosine among
  one system's answers to one prompt); system "ALL" pools every (system, prompt) cell.
- share_above_0.8: share of those prompts whose intra-model similarity exceeds 0.8 (the paper's headline).
- mean_prompt_similarity (ALL rows): mean over the category's prompts of the pooled similarity of all
  systems' answers to the prompt (prompt_homogeneity.csv), i.e. inter-model homogeneity by category.
- effective_diversity / effective_distinctness: the quality-gated primary keys (results/contract.py), mean over the
  category's (system, prompt) cells (diversity_per_prompt.csv); pooled_vendi / pooled_distinct_ideas (ALL
  rows): all systems' answers to a prompt pooled (pooled_diversity.csv), mean over the category's prompts.
- few_prompts: True when the category has fewer than `min_prompts` prompts; its figures are too noisy to
  compare, and the table says so rather than dropping the row.
A category written "Top > Fine" (the taxonomy's two levels, hivemind.core.taxonomy) gives a row for each level
(level "top" and "fine"). Creative Content Generation and Brainstorm & Ideation, written as the top alone, are
their own fine category too (the paper gives them no sub-category and counts them among its 17), so they give
both rows and the fine rows cover every taxonomy prompt; another top alone gives its "top" row only; any other
plain category is level "category". Prompts without a category are counted under "(none)".
"""
from __future__ import annotations

import pandas as pd

from hivemind.core.errors import HivemindError
from hivemind.core.taxonomy import FINES, TOPS, split

TABLE = "category_breakdown.csv"
DEFAULT_MIN_PROMPTS = 5
NONE = "(none)"


def levels(category: str | None) -> list[tuple[str, str]]:
    """(level, name) pairs of one prompt's category."""
    if not category:
        return [("category", NONE)]
    top, fine = split(category)
    if fine is not None:
        return [("top", top), ("fine", fine)]
    if top not in TOPS:
        return [("category", top)]
    return [("top", top), ("fine", top)] if top in FINES else [("top", top)]


COLUMNS = ["category", "level", "system", "n_prompts", "mean_intra", "share_above_0.8", "mean_prompt_similarity",
           "effective_diversity", "effective_distinctness", "pooled_vendi", "pooled_distinct_ideas", "few_prompts"]
SYSTEM_METRICS = ["effective_diversity", "effective_distinctness"]  # per (system, prompt): diversity_per_prompt
POOLED_METRICS = ["pooled_vendi", "pooled_distinct_ideas"]               # per prompt, pooled_diversity.csv


def breakdown(per_prompt: pd.DataFrame, categories: dict[str, str | None],
              prompt_similarity: pd.DataFrame | None = None, min_prompts: int = DEFAULT_MIN_PROMPTS,
              diversity: pd.DataFrame | None = None, pooled: pd.DataFrame | None = None) -> pd.DataFrame:
    """The category table (columns in the module docstring) from the per-prompt tables.

    diversity (diversity_per_prompt.csv, real systems only) adds the quality-gated metrics, each the mean over
    the category's (system, prompt) cells (ALL: every system's cells); pooled (pooled_diversity.csv) adds the
    pooled Vendi score and distinct ideas per prompt, averaged over the category's prompts (ALL rows only).
    A category's prompts are those with a defined cell in any of these tables."""
    missing = {"system", "prompt_id", "intra"} - set(per_prompt.columns)
    if missing:
        raise HivemindError(f"intra_model_per_prompt.csv lacks {', '.join(sorted(missing))}; "
                            f"run `hivemind analyze` again")
    cells = per_prompt.dropna(subset=["intra"]).assign(prompt_id=lambda f: f["prompt_id"].astype(str))
    gated = None
    if diversity is not None and len(diversity):
        gated = diversity.assign(prompt_id=diversity["prompt_id"].astype(str))
        gated = gated[gated[SYSTEM_METRICS].notna().any(axis=1)]
    per_prompt_values = {}
    if prompt_similarity is not None and {"prompt_id", "mean_similarity"} <= set(prompt_similarity.columns):
        per_prompt_values["mean_prompt_similarity"] = by_prompt(prompt_similarity, "mean_similarity")
    if pooled is not None:
        for name in POOLED_METRICS:
            if name in pooled:
                per_prompt_values[name] = by_prompt(pooled, name)
    prompt_ids = set(cells["prompt_id"]) | (set(gated["prompt_id"]) if gated is not None else set())
    by_group: dict[tuple[str, str], set[str]] = {}
    for pid in prompt_ids:
        for level, name in levels(categories.get(pid)):
            by_group.setdefault((level, name), set()).add(pid)
    rows = []
    for (level, name), pids in sorted(by_group.items()):
        few = len(pids) < min_prompts
        part = cells[cells["prompt_id"].isin(pids)]
        gpart = gated[gated["prompt_id"].isin(pids)] if gated is not None else None
        pooled_row = {"category": name, "level": level, "system": "ALL", "n_prompts": len(pids),
                      **intra_figures(part), **gated_figures(gpart), "few_prompts": few}
        for column, values in per_prompt_values.items():
            pooled_row[column] = values.reindex(sorted(pids)).mean()
        rows.append(pooled_row)
        systems = sorted(set(part["system"]) | (set(gpart["system"]) if gpart is not None else set()))
        for system in systems:
            mine = part[part["system"] == system]
            gmine = gpart[gpart["system"] == system] if gpart is not None else None
            n = len(set(mine["prompt_id"]) | (set(gmine["prompt_id"]) if gmine is not None else set()))
            rows.append({"category": name, "level": level, "system": system, "n_prompts": n,
                         **intra_figures(mine), **gated_figures(gmine), "few_prompts": few})
    return pd.DataFrame(rows, columns=COLUMNS)


def by_prompt(frame: pd.DataFrame, column: str) -> pd.Series:
    return frame.assign(prompt_id=frame["prompt_id"].astype(str)).set_index("prompt_id")[column]


def intra_figures(cells: pd.DataFrame) -> dict[str, float]:
    if cells.empty:
        return {"mean_intra": float("nan"), "share_above_0.8": float("nan")}
    return {"mean_intra": cells["intra"].mean(), "share_above_0.8": (cells["intra"] > 0.8).mean()}


def gated_figures(cells: pd.DataFrame | None) -> dict[str, float]:
    return {name: (cells[name].mean() if cells is not None and name in cells else float("nan"))
            for name in SYSTEM_METRICS}


def run_categories(store) -> dict[str, str | None]:
    """Every prompt's category: given with the prompt, else the classifier's label, else None."""
    categories = {p.id: p.category for p in store.prompts()}
    # A category given with the prompt wins; the classifier fills the prompts that have none.
    categories.update({pid: label for pid, label in store.prompt_labels().items() if not categories.get(pid)})
    return categories
