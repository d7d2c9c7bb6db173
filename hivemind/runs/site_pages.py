"""The pages of `hivemind site` as HTML text: the index (the cross-run leaderboard), a page per system across
runs, a run's report with the site's navigation, and a run's answers with two systems side by side.

Every page is one self-contained file: its style inline, no script but the answer browser's own, no font, image
or request from elsewhere, and every link relative, so the folder works from a disk, GitHub Pages or a Hugging
Face Space alike. Wide tables scroll inside their own box, so no page is wider than a phone's screen. The data
is gathered by hivemind.runs.site; this module only writes it out."""
from __future__ import annotations

import hashlib
import html
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pandas as pd

from hivemind.report.tables import fmt_metric
from hivemind.results import contract as results

e = html.escape
# The figures shown for every system, after the primary key (all from the results contract).
SHOWN = ["pass_rate", "intra_mean", "inter_mean_others", "near_duplicate_rate", "n_responses"]


@dataclass
class SiteRun:
    """One analysed run on the site."""
    name: str
    slug: str
    folder: Path
    group: str                                   # its leaderboard group's key
    prompts: str                                 # where its prompts came from, in words
    n_prompts: int
    n_answers: int
    date: str
    systems: list[str]
    nearest: dict[str, tuple[str, float]] = field(default_factory=dict)   # system -> closest other, similarity
    pair: tuple[str, str] | None = None         # the closest two systems: the comparison page opens on them


@dataclass
class Group:
    """Runs ranked together: one prompt set, embedder, equivalence and primary key."""
    key: str
    heading: str                                 # its prompts, in words
    runs: list[SiteRun]
    measured: str                                # embedder, equivalence, primary key
    detail: str                                  # the primary key's reference, the prompt-set hash, calibration
    rows: pd.DataFrame                           # leaderboard rows, ranked within the group


def slug(name: str) -> str:
    """A file name for a run or system name ("google/gemma-2-9b-it" -> "google-gemma-2-9b-it-1a2b3c"): plain
    names stay as they are; others get a short hash so that two names never share a page."""
    plain = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "x"
    if plain == name:
        return name
    return f"{plain}-{hashlib.sha1(name.encode('utf-8')).hexdigest()[:6]}"


def pair_link(run_slug: str, a: str, b: str, up: str = "../") -> str:
    return f"{up}compare/{run_slug}.html#pair={quote(a, safe='')}|{quote(b, safe='')}"


# Formatting ---------------------------------------------------------------------------------------------
def blank(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def fmt(metric: str, value) -> str:
    """A metric as the report shows it (its format declared once, in hivemind.results.contract)."""
    return "—" if blank(value) else fmt_metric(metric, value)


def with_ci(row: dict) -> str:
    value = fmt(row["primary_key"], row.get("primary"))
    low, high = row.get("primary_ci_low"), row.get("primary_ci_high")
    if value != "—" and not blank(low) and not blank(high):
        value += f' <span class="ci">[{fmt(row["primary_key"], low)}, {fmt(row["primary_key"], high)}]</span>'
    return value


def table(header: list[str], rows: list[list[str]], numeric: set[int] = frozenset()) -> str:
    """An HTML table in its own horizontal scroll box; cells are HTML already (escaped by the caller)."""
    head = "".join(f'<th{" class=n" if i in numeric else ""}>{h}</th>' for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(f'<td{" class=n" if i in numeric else ""}>{c}</td>' for i, c in enumerate(r))
                   + "</tr>" for r in rows)
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


# The page shell -----------------------------------------------------------------------------------------
CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1f2933;background:#fff;
 line-height:1.45;overflow-wrap:anywhere}
main{max-width:1180px;margin:0 auto;padding:12px 16px 40px}
nav.hm-site{background:#1f2d3d;padding:8px 16px;display:flex;flex-wrap:wrap;gap:4px 18px;font-size:14px}
nav.hm-site a{color:#e6edf5;text-decoration:none}nav.hm-site a:hover{text-decoration:underline}
nav.hm-site .here{color:#9fb3c8}
h1{font-size:24px;margin:14px 0 4px}h2{font-size:19px;margin:26px 0 4px}h3{font-size:16px;margin:18px 0 4px}
.meta,.note,.ci{color:#52606d;font-size:13px}
.scroll{overflow-x:auto;max-width:100%;margin:6px 0}
table{border-collapse:collapse;font-size:13px}
th,td{padding:4px 8px;border-bottom:1px solid #e4e7eb;text-align:left;vertical-align:top;overflow-wrap:normal}
th{background:#f5f7fa;font-weight:600}td.n,th.n{text-align:right}td.n{white-space:nowrap}
a{color:#2457a6}
ul.systems{columns:3 220px;padding-left:18px}
"""

# Added to a run's report on the site: the navigation, and images and tables kept inside the screen's width
# whatever the report's own layout (a table too wide scrolls in place).
REPORT_CSS = """
nav.hm-site{background:#1f2d3d;padding:8px 16px;display:flex;flex-wrap:wrap;gap:4px 18px;font:14px system-ui,sans-serif}
nav.hm-site a{color:#e6edf5;text-decoration:none}nav.hm-site .here{color:#9fb3c8}
body{overflow-wrap:anywhere}
main img,main svg{max-width:100%;height:auto}
main table{display:block;max-width:100%;overflow-x:auto}
main pre{max-width:100%;overflow-x:auto}
"""


# No favicon request: a page asks the server for /favicon.ico unless it names one.
ICON = '<link rel="icon" href="data:,">'


def nav(up: str, here: str, run: SiteRun | None = None) -> str:
    links = [f'<a href="{up}index.html">Leaderboard</a>', f'<a href="{up}index.html#runs">Runs</a>',
             f'<a href="{up}index.html#systems">Systems</a>']
    if run is not None:
        links += [f'<a href="{up}runs/{run.slug}.html">Report: {e(run.name)}</a>']
        if run.pair:
            links += [f'<a href="{up}compare/{run.slug}.html">Answers side by side</a>']
    return f'<nav class="hm-site" aria-label="{e(here)}"><strong class="here">hivemind</strong>{"".join(links)}</nav>'


def page(title: str, body: str, up: str = "", run: SiteRun | None = None) -> str:
    return ('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{e(title)}</title>{ICON}<style>{CSS}</style></head><body>{nav(up, title, run)}"
            f"<main>{body}</main></body></html>\n")


# The index ----------------------------------------------------------------------------------------------
def index_page(groups: list[Group], runs: list[SiteRun], skipped: list[str], built: str, version: str) -> str:
    systems = sorted({s for r in runs for s in r.systems}, key=str.lower)
    parts = ["<h1>Hivemind results</h1>",
             f'<p class="meta">{len(runs)} run{"s" * (len(runs) != 1)} · {len(systems)} systems · built {e(built)} '
             f"· hivemind {e(version)}</p>",
             '<p class="note">Rank 1 = the <b>most diverse</b> system, by a quality-gated diversity; [CI]: 95% '
             "bootstrap interval over prompts; systems are ranked only among runs that asked the same prompts and "
             "were measured the same way (one table each).</p>"]
    for group in groups:
        parts += group_section(group, runs)
    parts += [f'<p class="note">{e(results.RELATIVE_NOTE)}. Answers failing the quality gate count as contributing '
              "nothing to a system's diversity.</p>"]
    parts += runs_section(groups, runs)
    parts += ['<h2 id="systems">Systems</h2>',
              '<p class="note">Each system\'s page shows it in every run, with its closest neighbour there.</p>',
              '<ul class="systems">' + "".join(f'<li><a href="systems/{slug(s)}.html">{e(s)}</a></li>'
                                               for s in systems) + "</ul>"]
    if skipped:
        parts += ['<h2 id="skipped">Runs not on this site</h2>',
                  "<ul>" + "".join(f"<li>{e(line)}</li>" for line in skipped) + "</ul>"]
    return page("Hivemind results", "\n".join(parts))


def shown_metrics(rows: pd.DataFrame) -> tuple[list[str], list[str]]:
    """The figures worth a column in this group, and those left out because no system has a value."""
    shown = [m for m in SHOWN if m in rows and rows[m].notna().any()]
    return shown, [m for m in SHOWN if m not in shown]


def group_section(group: Group, runs: list[SiteRun]) -> list[str]:
    by_name = {r.name: r for r in runs}
    rows = group.rows
    key = rows["primary_key"].iloc[0]
    metrics, left_out = shown_metrics(rows)
    several = rows["run"].nunique() > 1              # one run: its name is in the heading already
    header = ["rank", "system", *(["run"] if several else []), f"{e(results.labelled(key))} [CI]",
              *(e(results.labelled(m)) for m in metrics)]
    body = []
    for r in rows.to_dict("records"):
        run = by_name[str(r["run"])]
        body.append([e(str(r["rank"])), f'<a href="systems/{slug(str(r["system"]))}.html">{e(str(r["system"]))}</a>',
                     *([f'<a href="runs/{run.slug}.html">{e(run.name)}</a>'] if several else []), with_ci(r),
                     *(fmt(m, r.get(m)) for m in metrics)])
    note = ""
    if left_out:
        note = (f'<p class="note">Not shown: {e(", ".join(results.METRICS[m].display for m in left_out))} '
                "(no value for any system here; intra-model figures need several answers per prompt).</p>")
    named = ", ".join(f'<a href="runs/{r.slug}.html">{e(r.name)}</a>' for r in group.runs)
    return [f'<h2 id="group-{slug(group.key)}">{e(group.heading)} ({named})</h2>', f'<p class="meta">{e(group.measured)}</p>',
            table(header, body, numeric=set(range(2 + several, len(header)))), note, f'<p class="note">{e(group.detail)}</p>']


def runs_section(groups: list[Group], runs: list[SiteRun]) -> list[str]:
    heading = {g.key: f"{g.heading} ({', '.join(r.name for r in g.runs)})" for g in groups}
    body = [[f'<a href="runs/{r.slug}.html">{e(r.name)}</a>', str(len(r.systems)), f"{r.n_prompts:,}",
             f"{r.n_answers:,}", e(r.prompts), e(r.date[:10]),
             (f'<a href="compare/{r.slug}.html">{e(r.pair[0])} vs {e(r.pair[1])}</a>' if r.pair else "—"),
             f'<a href="#group-{slug(r.group)}">{e(heading.get(r.group, ""))}</a>'] for r in runs]
    return ['<h2 id="runs">Runs</h2>',
            '<p class="note">Each run\'s full report, and its answers with two systems side by side (opening on the '
            "closest pair).</p>",
            table(["run", "systems", "prompts", "answers", "prompts from", "analysed", "side by side", "group"], body,
                  numeric={1, 2, 3})]


# A system across runs -----------------------------------------------------------------------------------
def system_page(system: str, rows: pd.DataFrame, runs: list[SiteRun], groups: list[Group]) -> str:
    by_name = {r.name: r for r in runs}
    size = {g.key: len(g.rows) for g in groups}
    heading = {g.key: f"{g.heading} ({', '.join(r.name for r in g.runs)})" for g in groups}
    models = sorted({str(m) for m in rows["model"].dropna()})
    body = []
    for r in rows.to_dict("records"):
        run = by_name[str(r["run"])]
        near = run.nearest.get(system)
        closest = "—"
        if near:
            closest = (f'<a href="{e(pair_link(run.slug, system, near[0]))}">{e(near[0])}</a> '
                       f'<span class="ci">{near[1]:.3f}</span>')
        body.append([f'<a href="../runs/{run.slug}.html">{e(run.name)}</a>',
                     f"{e(str(r['rank']))} of {size[run.group]}",
                     f'{with_ci(r)}<br><span class="ci">{e(results.METRICS[r["primary_key"]].display)}</span>',
                     *(fmt(m, r.get(m)) for m in SHOWN), closest,
                     f'<a href="../index.html#group-{slug(run.group)}">{e(heading[run.group])}</a>'])
    header = ["run", "rank", "primary key [CI]", *(e(results.labelled(m)) for m in SHOWN),
              "closest system (similarity)", "ranked among"]
    parts = [f"<h1>{e(system)}</h1>",
             f'<p class="meta">model {e(", ".join(models) or "?")} · in {len(rows)} run{"s" * (len(rows) != 1)}</p>',
             '<p class="note">Its rank in each run\'s group (rank 1 = most diverse) and its closest neighbour there '
             "by inter-model similarity; the link opens both systems' answers side by side.</p>",
             table(header, body, numeric=set(range(1, 3 + len(SHOWN))))]
    return page(f"System {system}", "\n".join(parts), up="../")


# A run's pages ------------------------------------------------------------------------------------------
def report_page(report_html: str, run: SiteRun) -> str:
    """The run's own report.html with the site's navigation at the top and its layout kept within the screen."""
    head = f"{ICON}<style>{REPORT_CSS}</style>"
    report_html = report_html.replace("</head>", head + "</head>", 1) if "</head>" in report_html \
        else head + report_html
    bar = nav("../", f"run {run.name}", run)
    match = re.search(r"<body[^>]*>", report_html)
    if match is None:
        return bar + report_html
    return report_html[:match.end()] + bar + report_html[match.end():]


def compare_page(run: SiteRun, browser: str) -> str:
    a, b = run.pair
    body = [f"<h1>{e(run.name)}: answers side by side</h1>",
            f'<p class="meta">{len(run.systems)} systems · {run.n_prompts:,} prompts · {run.n_answers:,} answers · '
            f'opens on the closest pair, {e(a)} and {e(b)}; pick any two below, or untick "two systems" to see all '
            "of them.</p>", browser]
    return page(f"{run.name}: answers side by side", "\n".join(body), up="../", run=run)
