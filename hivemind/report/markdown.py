"""report.md: the same tables as report.html, in Markdown, figures linked beside it."""
from __future__ import annotations

import textwrap

import pandas as pd

from hivemind.core.config import RunConfig
from hivemind.report.figures import inter_caption
from hivemind.report.load import Tables
from hivemind.report.overview import (
    categories_too_small,
    fig8_note,
    fig8_ns,
    findings,
    settings_rows,
)
from hivemind.report.prompt_maps import PromptMap
from hivemind.report.tables import (
    Headline,
    category_by_system,
    category_note,
    category_table,
    cross_system_pairs,
    diversity_rows,
    gate_note,
    gate_scorer_note,
    gate_scorer_table,
    headline_rows,
    leaderboard_table,
    lexical_table,
    near_heading,
    num,
    paper_rows,
    phrases_note,
    phrases_table,
    primary_of,
    rows_table,
    shown_pairs,
)
from hivemind.results import contract as results
from hivemind.results.record import is_imported


def md_cell(value) -> str:
    return " ".join(str(value).split()).replace("|", "\\|")


def md_table(frame: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(md_cell(c) for c in frame.columns) + " |",
             "|" + "|".join("---" for _ in frame.columns) + "|"]
    lines += ["| " + " | ".join(md_cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def build_markdown(config: RunConfig, t: Tables, h: Headline, maps: list[PromptMap]) -> str:
    info = t.info
    pairs = cross_system_pairs(t)
    short_pairs = shown_pairs(t, short=True)

    def pair_frame(pairs: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({
            "prompt": pairs["prompt_id"], "system a": pairs["system_a"], "system b": pairs["system_b"],
            "similarity": pairs["similarity"].map(num),
            "answer a": pairs["text_a"].map(lambda s: textwrap.shorten(str(s), 160, placeholder=" …")),
            "answer b": pairs["text_b"].map(lambda s: textwrap.shorten(str(s), 160, placeholder=" …"))})
    shown, short_table = pair_frame(pairs), pair_frame(short_pairs)
    out = [f"# Hivemind report: {config.name}", "",
           f"{len(t.systems)} systems, {h.n_prompts} prompts, {h.n_responses} answers; embedder {h.embedder}; "
           f"analysed {info.get('created_at', '')}.", ""]
    # The ranking is the Leaderboard section below (one row per system: tools read its rows).
    out += ["## Findings", "", *(f"- {text}" for text in findings(t, config, h)), "",
            "## Settings", "", md_table(rows_table(("setting", "value"), settings_rows(t, config, h, is_imported(config)))),
            ""]
    out += [f"> {w}" for w in info.get("warnings") or []]
    out += ["", "## Headline figures", "",
            md_table(rows_table(("figure", "value", "rescaled"), headline_rows(h) + diversity_rows(t))), ""]
    if t.reference:
        out += ["## This run vs the paper", "",
                md_table(rows_table(("figure", "this run", "paper"), paper_rows(t, config, h))), ""]
    out += category_markdown(t)
    out += ["## Intra-model repetition", "", "![intra-model heatmap](intra_model_heatmap.png)", "",
            "## Inter-model homogeneity", "", inter_caption(), "", "![inter-model heatmap](inter_model_heatmap.png)",
            "", "Data-range view: ![inter-model heatmap, data range](inter_model_heatmap_range.png)", "",
            "## Leaderboard", "", gate_note(t), "", md_table(leaderboard_table(t)), "",
            *gate_scorer_markdown(t),
            "## Distinct systems among the nearest answers (Fig. 8)", "", *fig8_markdown(t),
            f"## {near_heading(t)}", "",
            md_table(shown) if not pairs.empty else "None at this threshold.", "",
            "### Short-answer agreement", "",
            md_table(short_table) if not short_pairs.empty else "None.", "",
            "## Shared phrases", "", phrases_note(t), "",
            md_table(phrases_table(t)) if len(phrases_table(t)) else "None.", "",
            "## Lexical diversity", "", md_table(lexical_table(t)), "", "## Prompt maps", ""]
    out += [f"![{m.prompt_id}]({m.file})" for m in maps] or ["None."]
    return "\n".join(out) + "\n"


def fig8_markdown(t: Tables) -> list[str]:
    drawn = t.by_n is not None and len(t.by_n) and len(fig8_ns(t.by_n)) > 1
    note = fig8_note(t.by_n)
    return [*(["![Fig. 8](fig8_neighbors.png)", ""] if drawn else []), *([note, ""] if note else [])]


def category_markdown(t: Tables) -> list[str]:
    table = category_table(t)
    if table is None:
        return []
    small = categories_too_small(t)
    if small:
        return ["## Headline figures by prompt category", "", small, ""]
    out = ["## Headline figures by prompt category", "", category_note(t), "", md_table(table), ""]
    by_system = category_by_system(t)
    if by_system is not None:
        out += [f"### {results.METRICS[primary_of(t)].display} by system and category", "", md_table(by_system), ""]
    return out


def gate_scorer_markdown(t: Tables) -> list[str]:
    table = gate_scorer_table(t)
    if table is None:
        return []
    return ["### Quality gate by scorer", "", gate_scorer_note(t), "", md_table(table), ""]
