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
from hivemind.report.load import Tables
from hivemind.report.matrix import MATRIX_CSS, matrix_html
from hivemind.report.overview import (
    categories_too_small,
    fig8_note,
    findings,
    fold_columns,
    fold_note,
    one_answer_run,
    ranking_table,
    settings_rows,
)
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
)
from hivemind.results import contract as results
from hivemind.results.record import is_imported
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
main{max-width:1280px;margin:0 auto;padding:14px 32px 64px;background:#fff;box-sizing:border-box}
h1{font-size:24px;margin:4px 0 2px}h2{font-size:20px;margin:36px 0 8px;border-bottom:1px solid #dde1e7;padding-bottom:4px}
h3.fs{font-size:15px;margin:12px 0 4px}
.meta{color:#5b6473;font-size:13px}.note{color:#5b6473;font-size:13px;margin:4px 0 12px}
.first{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,330px);gap:6px 24px;margin-top:8px}
.findings{margin:6px 0 4px;padding-left:20px;font-size:14px;line-height:1.4}.findings li{margin:2px 0}
.settings{border:1px solid #dde1e7;border-radius:8px;background:#fbfcfd;padding:4px 12px 8px;align-self:start}
.settings table{font-size:12px;margin:4px 0;table-layout:fixed}.settings th{background:none;position:static;width:34%;
 color:#5b6473;font-weight:500;padding:3px 8px 3px 0;overflow-wrap:anywhere}.settings td{padding:3px 0;overflow-wrap:anywhere}
.settings tr:nth-child(even) td{background:none}
#hm-ranking table{margin:4px 0}#hm-ranking td,#hm-ranking th{padding:3px 7px}#hm-ranking th{white-space:normal}
nav.toc{font-size:13px;margin:14px 0 0;padding:8px 12px;border:1px solid #dde1e7;border-radius:8px;line-height:1.7}
nav.toc a{color:#2a5db0;text-decoration:none;margin-right:14px;display:inline-block;max-width:100%}
@media (max-width:900px){.first{grid-template-columns:minmax(0,1fr)}main{padding:10px 12px 40px}}
.hm-scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;font-size:13px;margin:8px 0;width:100%}
th,td{border-bottom:1px solid #e4e7ec;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#f0f2f5;position:sticky;top:0}tr:nth-child(even) td{background:#fafbfc}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}td.s{white-space:nowrap}
img{max-width:100%;height:auto;display:block;margin:8px auto}
.warn{background:#fff6e0;border:1px solid #f0d48a;border-radius:6px;padding:8px 12px;font-size:13px;margin:12px 0}
.pair{border:1px solid #dde1e7;border-radius:8px;margin:14px 0;overflow:hidden}
.pair .head{background:#f0f2f5;padding:6px 12px;font-size:13px}
.pair .cols{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr)}
.pair .col{padding:8px 12px;font-size:13px;white-space:pre-wrap;overflow-wrap:anywhere;max-height:320px;overflow:auto}
.pair .col+.col{border-left:1px solid #dde1e7}.pair .sys{font-weight:600;margin-bottom:4px;white-space:normal}
mark{background:#ffe37a;padding:0 1px}
.maps img{max-width:min(100%,1100px);margin:12px auto 28px}
""" + MATRIX_CSS


def html_table(frame: pd.DataFrame, numeric: set[str] = frozenset(), nowrap: set[str] = frozenset()) -> str:
    """A table in its own horizontally scrolling box: a wide table never widens the page."""
    def cls(column) -> str:
        return ' class="n"' if column in numeric else (' class="s"' if column in nowrap else "")
    head = "".join(f"<th{cls(c)}>{html.escape(str(c))}</th>" for c in frame.columns)
    body = []
    for row in frame.itertuples(index=False):
        cells = "".join(f"<td{cls(c)}>{html.escape(str(v))}</td>" for c, v in zip(frame.columns, row))
        body.append(f"<tr>{cells}</tr>")
    return f'<div class="hm-scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def folded_table(frame: pd.DataFrame, numeric: set[str], one_answer: bool, nowrap: set[str] = frozenset()) -> str:
    """The table without its columns that cannot tell systems apart, and a one-line note naming them."""
    folded = fold_columns(frame)
    note = fold_note(folded, one_answer)
    return html_table(folded.shown, numeric, nowrap) + (f'<p class="note">{html.escape(note)}</p>' if note else "")


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


def heading(title: str, anchor: str) -> str:
    """A section heading the table of contents links to (the anchor sits just before the plain <h2>)."""
    return f'<span class="anchor" id="{anchor}"></span><h2>{html.escape(title)}</h2>'


ANCHORED = re.compile(r'<span class="anchor" id="([^"]+)"></span><h2>(.*?)</h2>')


def contents(parts: list[str]) -> str:
    """The table of contents: a link to every anchored section of the page, in order (and the answer browser,
    a section of its own)."""
    links = [f'<a href="#{anchor}">{title.split(" (")[0]}</a>'           # "Near-duplicate answers (cosine ...)"
             for part in parts for anchor, title in ANCHORED.findall(part)]
    if any('id="hm-browser"' in part for part in parts):
        links.append('<a href="#hm-browser">Answer browser</a>')
    return f'<nav class="toc" aria-label="contents"><b>Contents:</b> {" ".join(links)}</nav>'


def first_screen(config: RunConfig, t: Tables, h: Headline, imported: bool, toc: str) -> str:
    """What did this run find: the findings, the compact ranking and the table of contents beside the
    settings box (below it on a narrow screen)."""
    e = html.escape
    ranking = ranking_table(t)
    numeric = set(ranking.columns) - {"rank", "system"}
    items = "".join(f"<li>{e(text)}</li>" for text in findings(t, config, h))
    settings = "".join(f'<tr><th scope="row">{e(k)}</th><td>{e(v)}</td></tr>'
                       for k, v in settings_rows(t, config, h, imported))
    return (f'<div class="first"><div><ul class="findings" id="hm-findings">{items}</ul>'
            f'<h3 class="fs">Ranking <span class="meta">(1 = most diverse; every metric and the controls: '
            f'<a href="#s-leaderboard">leaderboard</a>)</span></h3>'
            f'<div id="hm-ranking">{folded_table(ranking, numeric, one_answer_run(t), {"system"})}</div>{toc}</div>'
            f'<aside class="settings" id="hm-settings"><h3 class="fs">Settings</h3><table>{settings}</table></aside>'
            f"</div>")


def build_html(run: Run | RunConfig, t: Tables, h: Headline, folder: Path, maps: list[PromptMap],
               map_note: str | None) -> str:
    config = Run.config_of(run)
    e = html.escape
    info = t.info
    level = pct((info.get("bootstrap") or {}).get("level", 0.95), 0)
    one_answer = one_answer_run(t)
    head = [
        f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>Hivemind report: {e(config.name)}</title><style>{CSS}</style></head><body><main>",
        f"<h1>Hivemind report: {e(config.name)}</h1>",
        f'<div class="meta">{len(t.systems)} systems · {h.n_prompts} prompts · {h.n_responses} answers · '
        f"analysed {e(str(info.get('created_at', '')))} · hivemind {e(str(info.get('hivemind_version', '')))}</div>",
    ]
    parts = []
    warnings = info.get("warnings") or []
    if warnings:
        parts.append('<div class="warn">' + "<br>".join(e(str(w)) for w in warnings) + "</div>")
    parts.append(heading("Headline figures", "s-headline"))
    parts.append(html_table(rows_table(("figure", "value", "rescaled"), headline_rows(h) + diversity_rows(t)),
                            {"value", "rescaled"}))
    if t.reference:
        parts.append(heading("This run vs the paper", "s-paper"))
        parts.append(f'<p class="note">{e(str(t.reference.get("source", "Jiang et al. 2025")))}. The paper used '
                     f"{e(str(t.reference.get('samples', 50)))} samples per prompt and another embedder, so the "
                     f"levels are comparable in shape more than in value.</p>")
        parts.append(html_table(rows_table(("figure", "this run", "paper"), paper_rows(t, config, h)),
                                {"this run", "paper"}))
    per_setting = setting_rows(t)
    if per_setting is not None and len(per_setting) > 1:
        parts.append(heading("Headline figures per decoding setting", "s-settings"))
        parts.append(html_table(per_setting, set(per_setting.columns) - {"setting"}))
    parts += category_html(t)
    board = leaderboard_table(t)
    parts += [
        heading("Intra-model repetition", "s-intra"),
        '<p class="note">For every system and prompt, the mean cosine similarity among the system\'s answers; '
        "each cell is the % of prompts in that similarity bucket (the paper's Fig. 4).</p>",
        image_tag(folder / "intra_model_heatmap.png", "intra-model similarity buckets by system"),
        heading("Inter-model homogeneity", "s-inter"),
        f'<p class="note">{e(MATRIX_CAPTION)}</p>',
        matrix_html(t.inter, t.buckets["mean"]),
        heading("Leaderboard", "s-leaderboard"),
        f'<p class="note">{e(gate_note(t))} Brackets: {level} bootstrap confidence intervals over prompts. '
        f"Near-dup rate: share of answers with a near duplicate (similarity ≥ "
        f"{e(str(info.get('threshold', '')))}) from another system. Rows marked <i>control</i> are synthetic "
        "systems made from this run's answers (hivemind analyze --controls); they show where known cases land "
        "and are not ranked.</p>",
        folded_table(board, numeric_columns(board), one_answer, {"system", "model"}),
        *gate_scorer_html(t),
        heading("Distinct systems among the nearest answers (Fig. 8)", "s-fig8"),
        *fig8_html(t, folder),
        heading(near_heading(t), "s-near"),
        f'<p class="note">The {TOP_PAIRS} most similar pairs, at most {PAIRS_PER_PROMPT} per prompt, taken '
        "round-robin over prompts (every prompt's best pair first, then the second best), both answers "
        f"at least {e(str(info.get('near_duplicate_min_words', 5)))} words long; highlighted: runs of "
        f"{MIN_SHARED_WORDS} or more words found in both answers.</p>",
        pairs_html(cross_system_pairs(t)),
        "<h3>Short-answer agreement</h3>",
        '<p class="note">Pairs where an answer is shorter than the minimum length ("Yes.", a single name): '
        "agreeing on a short correct answer is not homogeneity of ideas.</p>",
        pairs_html(shown_pairs(t, short=True)),
        heading("Shared phrases", "s-phrases"),
        f'<p class="note">{e(phrases_note(t))}</p>',
        html_table(phrases_table(t), {"words", "systems"}) if len(phrases_table(t))
        else '<p class="note">No shared phrases found.</p>',
        heading("Lexical diversity", "s-lexical"),
        '<p class="note">distinct-n: distinct n-grams / all n-grams over a system\'s answers (higher = more varied); '
        "compression ratio: raw / gzip size (higher = more repetitive).</p>",
        html_table(lexical_table(t), {"distinct-1", "distinct-2", "distinct-3", "compression ratio", "mean words"}),
        heading("Prompt maps", "s-maps"),
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
    first = first_screen(config, t, h, is_imported(config), contents(parts))
    return "\n".join([*head, first, *parts, "</main></body></html>"])


MATRIX_CAPTION = (
    "Mean cosine similarity between the answers of two systems to the same prompt (the paper's Fig. 6, here the "
    "full matrix). Diagonal (outlined, bold): each system's intra-model mean, the mean similarity of two "
    "different answers of that system to the same prompt. Rows and columns in average-linkage clustering order "
    "on 1 - similarity, so systems that answer alike form blocks. The fixed colour scale (cosine 0–1) is the same "
    "for every run; the figures inter_model_heatmap.png and .svg beside this report draw it for papers.")


# Sections ------------------------------------------------------------------------------------------
# Each returns a list of HTML parts (empty when the run has no data for it); build_html splices them in.
def category_html(t: Tables) -> list[str]:
    table = category_table(t)
    if table is None:
        return []
    small = categories_too_small(t)
    if small:
        return [heading("Headline figures by prompt category", "s-categories"), f'<p class="note">{html.escape(small)}</p>']
    parts = [heading("Headline figures by prompt category", "s-categories"),
             f'<p class="note">{html.escape(category_note(t))}</p>',
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


def fig8_html(t: Tables, folder: Path) -> list[str]:
    """Fig. 8 where it says something; one line where N is capped everywhere (every box would repeat)."""
    note = fig8_note(t.by_n)
    path = folder / "fig8_neighbors.png"
    parts = [image_tag(path, "Fig. 8 box plot")] if path.is_file() else []
    if note:
        parts.append(f'<p class="note">{html.escape(note)}</p>')
    return parts or ['<p class="note">No per-prompt neighbour table (re-run hivemind analyze).</p>']
