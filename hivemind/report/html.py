"""report.html: one self-contained page (figures embedded as PNG data URIs, no network)."""
from __future__ import annotations

import base64
import html
import re
import textwrap
from pathlib import Path

import pandas as pd

from hivemind.core.config import RunConfig
from hivemind.report.browser import browser_section
from hivemind.report.figures import inter_caption
from hivemind.report.load import Tables
from hivemind.report.prompt_maps import PromptMap
from hivemind.report.tables import (
    MIN_SHARED_WORDS,
    PAIRS_PER_PROMPT,
    TOP_PAIRS,
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
    numeric_columns,
    paper_rows,
    pct,
    phrases_note,
    phrases_table,
    primary_of,
    rows_table,
    setting_rows,
    shown_pairs,
    span,
)
from hivemind.results import contract as results
from hivemind.store.run import Run


# Shared phrases in two texts -----------------------------------------------------------------------
def _words(text: str) -> list[tuple[int, int, str]]:
    """(start, end, normalised word): lower case, punctuation at the edges ignored."""
    return [(m.start(), m.end(), re.sub(r"^\W+|\W+$", "", m.group().lower())) for m in re.finditer(r"\S+", text)]


def _shared_positions(words: list[str], other: set[tuple[str, ...]], n: int) -> list[bool]:
    marked = [False] * len(words)
    for i in range(len(words) - n + 1):
        if tuple(words[i:i + n]) in other:
            marked[i:i + n] = [True] * n
    return marked


def highlight_shared(text_a: str, text_b: str, n: int = MIN_SHARED_WORDS) -> tuple[str, str]:
    """Both texts as escaped HTML, with every run of words that is part of an n-gram (n words or more)
    found in the other text wrapped in <mark>."""
    wa, wb = _words(text_a), _words(text_b)
    grams = lambda ws: {tuple(w[2] for w in ws[i:i + n]) for i in range(len(ws) - n + 1)}
    ga, gb = grams(wa), grams(wb)
    return (_marked_html(text_a, wa, _shared_positions([w[2] for w in wa], gb, n)),
            _marked_html(text_b, wb, _shared_positions([w[2] for w in wb], ga, n)))


def _marked_html(text: str, words: list[tuple[int, int, str]], marked: list[bool]) -> str:
    out, pos, i = [], 0, 0
    while i < len(words):
        if not marked[i]:
            i += 1
            continue
        j = i
        while j + 1 < len(words) and marked[j + 1]:
            j += 1
        start, end = words[i][0], words[j][1]
        out.append(html.escape(text[pos:start]))
        out.append(f"<mark>{html.escape(text[start:end])}</mark>")
        pos, i = end, j + 1
    out.append(html.escape(text[pos:]))
    return "".join(out)


# HTML ----------------------------------------------------------------------------------------------
CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
main{max-width:1280px;margin:0 auto;padding:24px 32px 64px;background:#fff}
h1{font-size:26px;margin:8px 0 4px}h2{font-size:20px;margin:36px 0 8px;border-bottom:1px solid #dde1e7;padding-bottom:4px}
.meta{color:#5b6473;font-size:14px}.note{color:#5b6473;font-size:13px;margin:4px 0 12px}
.cards{display:flex;flex-wrap:wrap;gap:14px;margin:18px 0}
.card{flex:1 1 220px;border:1px solid #dde1e7;border-radius:8px;padding:12px 16px;background:#fbfcfd}
.card .v{font-size:26px;font-weight:600}.card .l{font-size:13px;color:#5b6473}.card .r{font-size:13px;color:#2a5db0}
table{border-collapse:collapse;font-size:13px;margin:8px 0;width:100%}
th,td{border-bottom:1px solid #e4e7ec;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#f0f2f5;position:sticky;top:0}tr:nth-child(even) td{background:#fafbfc}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
img{max-width:100%;height:auto;display:block;margin:8px auto}
.warn{background:#fff6e0;border:1px solid #f0d48a;border-radius:6px;padding:8px 12px;font-size:13px}
.pair{border:1px solid #dde1e7;border-radius:8px;margin:14px 0;overflow:hidden}
.pair .head{background:#f0f2f5;padding:6px 12px;font-size:13px}
.pair .cols{display:grid;grid-template-columns:1fr 1fr}
.pair .col{padding:8px 12px;font-size:13px;white-space:pre-wrap;overflow-wrap:anywhere;max-height:320px;overflow:auto}
.pair .col+.col{border-left:1px solid #dde1e7}.pair .sys{font-weight:600;margin-bottom:4px;white-space:normal}
mark{background:#ffe37a;padding:0 1px}
.maps img{max-width:min(100%,1100px);margin:12px auto 28px}
"""


def html_table(frame: pd.DataFrame, numeric: set[str] = frozenset()) -> str:
    head = "".join(f'<th class="n">{html.escape(str(c))}</th>' if c in numeric else f"<th>{html.escape(str(c))}</th>"
                   for c in frame.columns)
    body = []
    for row in frame.itertuples(index=False):
        cells = "".join(f'<td class="n">{html.escape(str(v))}</td>' if c in numeric
                        else f"<td>{html.escape(str(v))}</td>" for c, v in zip(frame.columns, row))
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def image_tag(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def pairs_html(pairs: pd.DataFrame) -> str:
    if pairs.empty:
        return '<p class="note">No near-duplicate answers from different systems at this threshold.</p>'
    blocks = []
    for r in pairs.itertuples(index=False):
        a, b = highlight_shared(str(r.text_a), str(r.text_b))
        kind = "identical text" if str(r.exact).lower() in {"true", "1"} else "near duplicate"
        blocks.append(
            f'<div class="pair"><div class="head"><b>{html.escape(str(r.prompt_id))}</b>: '
            f'{html.escape(textwrap.shorten(str(r.prompt), 240, placeholder=" …"))} '
            f'<span class="meta">— similarity {num(r.similarity)}, {kind}</span></div>'
            f'<div class="cols"><div class="col"><div class="sys">{html.escape(str(r.system_a))}</div>{a}</div>'
            f'<div class="col"><div class="sys">{html.escape(str(r.system_b))}</div>{b}</div></div></div>')
    return "".join(blocks)


def build_html(run: Run | RunConfig, t: Tables, h: Headline, folder: Path, maps: list[PromptMap],
               map_note: str | None) -> str:
    config = Run.config_of(run)
    e = html.escape
    info = t.info
    level = pct((info.get("bootstrap") or {}).get("level", 0.95), 0)
    cards = [
        (pct(h.share_above_08), "of prompts: a system's answers are > 0.8 similar (mean over systems)", ""),
        (span(h.inter_min, h.inter_max), "inter-model similarity between different systems",
         f"rescaled {span(h.inter_min_rescaled, h.inter_max_rescaled)}"),
        (num(h.floor) if h.floor is not None else "—", "floor: similarity of answers to different prompts",
         "rescaled = (x − floor) / (1 − floor)"),
        (num(h.intra_mean), "mean intra-model similarity", f"rescaled {num(h.intra_mean_rescaled)}"),
    ]
    parts = [
        f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>Hivemind report: {e(config.name)}</title><style>{CSS}</style></head><body><main>",
        f"<h1>Hivemind report: {e(config.name)}</h1>",
        f'<div class="meta">{len(t.systems)} systems · {h.n_prompts} prompts · {h.n_responses} answers · '
        f"embedder {e(h.embedder)} · near-duplicate threshold {e(str(info.get('threshold', '')))} · "
        f"analysed {e(str(info.get('created_at', '')))} · hivemind {e(str(info.get('hivemind_version', '')))}</div>",
        '<div class="cards">' + "".join(
            f'<div class="card"><div class="v">{e(v)}</div><div class="l">{e(lab)}</div>'
            f'<div class="r">{e(r)}</div></div>' for v, lab, r in cards) + "</div>",
    ]
    warnings = info.get("warnings") or []
    if warnings:
        parts.append('<div class="warn">' + "<br>".join(e(str(w)) for w in warnings) + "</div>")
    parts.append("<h2>Headline figures</h2>")
    parts.append(html_table(rows_table(("figure", "value", "rescaled"), headline_rows(h) + diversity_rows(t)),
                            {"value", "rescaled"}))
    if t.reference:
        parts.append("<h2>This run vs the paper</h2>")
        parts.append(f'<p class="note">{e(str(t.reference.get("source", "Jiang et al. 2025")))}. The paper used '
                     f"{e(str(t.reference.get('samples', 50)))} samples per prompt and another embedder, so the "
                     f"levels are comparable in shape more than in value.</p>")
        parts.append(html_table(rows_table(("figure", "this run", "paper"), paper_rows(t, config, h)),
                                {"this run", "paper"}))
    per_setting = setting_rows(t)
    if per_setting is not None and len(per_setting) > 1:
        parts.append("<h2>Headline figures per decoding setting</h2>")
        parts.append(html_table(per_setting, set(per_setting.columns) - {"setting"}))
    parts += category_html(t)
    parts += [
        "<h2>Intra-model repetition</h2>",
        '<p class="note">For every system and prompt, the mean cosine similarity among the system\'s answers; '
        "each cell is the % of prompts in that similarity bucket (the paper's Fig. 4).</p>",
        image_tag(folder / "intra_model_heatmap.png", "intra-model similarity buckets by system"),
        "<h2>Inter-model homogeneity</h2>",
        f'<p class="note">{e(inter_caption(None))}</p>',
        image_tag(folder / "inter_model_heatmap.png", "inter-model similarity matrix, fixed colour scale"),
        "<details><summary>The same matrix on this run's own range between systems (finer contrast, not "
        "comparable across runs)</summary>",
        image_tag(folder / "inter_model_heatmap_range.png", "inter-model similarity matrix, data range"),
        "</details>",
        "<h2>Leaderboard</h2>",
        f'<p class="note">{e(gate_note(t))} Brackets: {level} bootstrap confidence intervals over prompts. '
        f"Near-dup rate: share of answers with a near duplicate (similarity ≥ "
        f"{e(str(info.get('threshold', '')))}) from another system. Rows marked <i>control</i> are synthetic "
        "systems made from this run's answers (hivemind analyze --controls); they show where known cases land "
        "and are not ranked.</p>",
        html_table(leaderboard_table(t), numeric_columns(leaderboard_table(t))),
        *gate_scorer_html(t),
        "<h2>Distinct systems among the nearest answers (Fig. 8)</h2>",
        (image_tag(folder / "fig8_neighbors.png", "Fig. 8 box plot") if (folder / "fig8_neighbors.png").is_file()
         else '<p class="note">No per-prompt neighbour table (re-run hivemind analyze).</p>'),
        f"<h2>{e(near_heading(t))}</h2>",
        f'<p class="note">The {TOP_PAIRS} most similar pairs, at most {PAIRS_PER_PROMPT} per prompt, taken '
        "round-robin over prompts (every prompt's best pair first, then the second best), both answers "
        f"at least {e(str(info.get('near_duplicate_min_words', 5)))} words long; highlighted: runs of "
        f"{MIN_SHARED_WORDS} or more words found in both answers.</p>",
        pairs_html(cross_system_pairs(t)),
        "<h3>Short-answer agreement</h3>",
        '<p class="note">Pairs where an answer is shorter than the minimum length ("Yes.", a single name): '
        "agreeing on a short correct answer is not homogeneity of ideas.</p>",
        pairs_html(shown_pairs(t, short=True)),
        "<h2>Shared phrases</h2>",
        f'<p class="note">{e(phrases_note(t))}</p>',
        html_table(phrases_table(t), {"words", "systems"}) if len(phrases_table(t))
        else '<p class="note">No shared phrases found.</p>',
        "<h2>Lexical diversity</h2>",
        '<p class="note">distinct-n: distinct n-grams / all n-grams over a system\'s answers (higher = more varied); '
        "compression ratio: raw / gzip size (higher = more repetitive).</p>",
        html_table(lexical_table(t), {"distinct-1", "distinct-2", "distinct-3", "compression ratio", "mean words"}),
        "<h2>Prompt maps</h2>",
        '<p class="note">The most homogeneous prompts: every answer projected on the first two principal '
        "components of its embedding, one colour per system.</p>",
    ]
    if maps:
        parts.append('<div class="maps">' + "".join(image_tag(folder / m.file, f"prompt map {m.prompt_id}")
                                                   for m in maps) + "</div>")
    else:
        parts.append(f'<p class="note">{e(map_note or "No prompt maps.")}</p>')
    # Further sections go here, each a function returning its HTML parts; the answer browser comes last.
    parts.append(browser_section(run))
    parts.append("</main></body></html>")
    return "\n".join(parts)


# Sections ------------------------------------------------------------------------------------------
# Each returns a list of HTML parts (empty when the run has no data for it); build_html splices them in.
def category_html(t: Tables) -> list[str]:
    table = category_table(t)
    if table is None:
        return []
    parts = ["<h2>Headline figures by prompt category</h2>", f'<p class="note">{html.escape(category_note(t))}</p>',
             html_table(table, set(table.columns) - {"category", "level", "note"})]
    by_system = category_by_system(t)
    if by_system is not None:
        parts += [f"<h3>{html.escape(results.METRICS[primary_of(t)].display)} by system and category</h3>",
                  html_table(by_system, set(by_system.columns) - {"system"})]
    return parts


def gate_scorer_html(t: Tables) -> list[str]:
    table = gate_scorer_table(t)
    if table is None:
        return []
    return ["<h3>Quality gate by scorer</h3>", f'<p class="note">{html.escape(gate_scorer_note(t))}</p>',
            html_table(table, set(table.columns) - {"system"})]
