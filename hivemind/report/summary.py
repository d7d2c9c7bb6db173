"""The run summary every `run`, `analyze` and `report` prints at the end: results.json
(hivemind.results.record) as a terminal table, one row per system, as wide as the terminal allows."""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from hivemind.core.config import RunConfig
from hivemind.results.contract import RESULTS_JSON, Estimate, RunResults
from hivemind.results.folder import REPORT_HTML
from hivemind.results.record import build_results, read_results

DEFAULT_WIDTH = 100


# The terminal table ------------------------------------------------------------------------------------

def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _ci(e: Estimate, digits: int, pct: bool = False) -> str:
    """'0.412 (.401-.423)': the CI without leading zeros, to fit 100 columns at 25 systems."""
    if e.value is None:
        return "-"
    if pct:
        text = _pct(e.value)
        if e.ci_low is not None and e.ci_high is not None:
            text += f" ({100 * e.ci_low:.0f}-{100 * e.ci_high:.0f})"
        return text
    text = _fmt(e.value, digits)
    if e.ci_low is not None and e.ci_high is not None:
        short = lambda v: f"{v:.{digits}f}".replace("0.", ".", 1) if 0 <= v < 1 else f"{v:.{digits}f}"
        text += f" ({short(e.ci_low)}-{short(e.ci_high)})"
    return text


def _cost(value: float | None) -> str:
    if value is None:
        return "-"
    return "$0" if value == 0 else f"${value:.2f}" if value >= 1 else f"${value:.4f}"


SHORT_NAMES = {"effective_diversity": "eff. diversity", "effective_distinctness": "eff. distinctness"}


def _columns(data: RunResults, level: int) -> list[tuple[str, list[str]]]:
    """The table's columns; level 0 shows every CI, 1 only the primary key's, 2 none."""
    rows = data.systems
    name = SHORT_NAMES.get(data.primary_key, data.primary_display)
    figure = lambda e, digits, pct, shown: (_ci(e, digits, pct) if shown else
                                            _pct(e.value) if pct else _fmt(e.value, digits))
    ci = lambda shown: " (CI)" if shown else ""
    return [
        ("rank", [r.rank or "ctl" for r in rows]),
        ("system", [r.system for r in rows]),
        (name + ci(level < 2), [figure(r.primary, 3, False, level < 2) for r in rows]),
        ("intra" + ci(level < 1), [figure(r.intra_mean, 2, False, level < 1) for r in rows]),
        (">0.8" + ci(level < 1), [figure(r.share_above_08, 0, True, level < 1) for r in rows]),
        ("inter", [_fmt(r.inter_mean_others.value, 2) for r in rows]),
        ("dup", [_pct(r.near_duplicate_rate) for r in rows]),
        ("pass", [_pct(r.pass_rate) for r in rows]),
        ("answers", [str(r.answers) if r.answers is not None else "-" for r in rows]),
        ("blank", [str(r.blank) if r.blank is not None else "-" for r in rows]),
        ("trunc", [_pct(r.truncated_share) for r in rows]),
        ("err", [_pct(r.error_share) for r in rows]),
        ("cost", [_cost(r.cost_usd) for r in rows]),
    ]


def _layout(columns: list[tuple[str, list[str]]], name_width: int) -> list[str]:
    columns = [(h, abbreviate(cells, name_width)) if h == "system" else (h, cells) for h, cells in columns]
    widths = [max(len(h), *(len(c) for c in cells)) if cells else len(h) for h, cells in columns]
    line = lambda cells: " ".join(c.ljust(w) if h == "system" else c.rjust(w)
                                  for (h, _), c, w in zip(columns, cells, widths)).rstrip()
    out = [line([h for h, _ in columns])]
    out += [line([cells[i] for _, cells in columns]) for i in range(len(columns[0][1]))]
    return out


# Dates in model names (gpt-4o-2024-11-20, claude-3-opus@20240229, command-r-08-2024, gemini-...-exp-02-05):
# the same model's snapshot, seldom what tells two systems of one run apart.
_DATE = re.compile(r"(?:[-_@]20\d\d-?[01]\d-?[0-3]\d|[-_@][01]\d-20\d\d|(?<=[A-Za-z])-[01]\d-[0-3]\d)"
                   r"(?=$|[-_@./: ])")
# Words that mark a released variant rather than tell models apart (Llama-3.2-1B-Instruct, gemma-2-9b-it).
_FILLER = re.compile(r"[-_](?:instruct|it|chat|turbo|maas|hf|preview|latest)(?=$|[-_@./: ])", re.I)
_SEPARATORS = "-_/:.@ "


def abbreviate(names: list[str], width: int) -> list[str]:
    """The system names, each at most `width` characters where possible, keeping what tells them apart
    (gpt-4o vs gpt-4o-mini, claude-3-5-sonnet vs claude-3-opus). Steps, each taken only while a name is still
    too long and only if the names stay distinct: drop the provider (`openai/`), drop dates, drop the prefix
    and suffix every name shares (at a separator), drop variant words (-instruct, -it, -chat, -turbo), then
    cut the middle of what is left ('~')."""
    steps = (lambda ns: [re.sub(r"^.*/", "", n) for n in ns],
             lambda ns: [_DATE.sub("", n) for n in ns],
             _drop_common_ends,
             lambda ns: [_FILLER.sub("", n) for n in ns])
    for step in steps:
        if all(len(n) <= width for n in names):
            return names
        shorter = step(names)
        if _distinct(shorter, names):
            names = shorter
    return _cut_middles(names, width)


def _distinct(shorter: list[str], names: list[str]) -> bool:
    return all(shorter) and len(set(shorter)) == len(set(names))


MIN_COMMON_END = 4     # characters, separator included


def _drop_common_ends(names: list[str]) -> list[str]:
    """'provider/model-family-07-instruct-top-p' and '...-12-instruct-top-p' -> '07', '12'."""
    if len(names) < 2:
        return names
    head = os.path.commonprefix(names)
    head = head[:max(head.rfind(c) for c in _SEPARATORS) + 1]
    tail = os.path.commonprefix([n[len(head):][::-1] for n in names])[::-1]
    tail = tail[min((i for i, c in enumerate(tail) if c in _SEPARATORS), default=len(tail)):]
    # a shared end of a few characters is part of a name ('top-p' and 'min-p' share '-p'), not a family
    head, tail = (head if len(head) >= MIN_COMMON_END else ""), (tail if len(tail) >= MIN_COMMON_END else "")
    return [n[len(head):len(n) - len(tail)] for n in names]


def _cut_middles(names: list[str], width: int) -> list[str]:
    """Each name too long loses its middle (marked '~'); where two would then read the same, more of their
    head is kept, and as a last resort their position is added: never two identical names."""
    for head_share in (1 / 3, 1 / 2, 2 / 3):
        cut = [_shorten(n, width, head_share) for n in names]
        if len(set(cut)) == len(set(names)):
            return cut
    seen: dict[str, int] = {}
    for n in cut:
        seen[n] = seen.get(n, 0) + 1
    return [c if seen[c] == 1 else _shorten(n, width - 3, 1 / 3) + f"#{i + 1}"
            for i, (n, c) in enumerate(zip(names, cut))]


def _shorten(name: str, width: int, head_share: float = 1 / 3) -> str:
    """'provider/model-family-07-instruct-top-p' -> 'provide~07-instruct-top-p': the middle goes, since
    names of one run share a provider prefix and differ in size, version and decoding suffix."""
    if len(name) <= width:
        return name
    head = int((width - 1) * head_share)
    return name[:head] + "~" + name[len(name) - (width - 1 - head):]


def table_lines(data: RunResults, width: int = DEFAULT_WIDTH) -> list[str]:
    """The per-system table, at most `width` columns where that is possible: long system names lose their
    middle (marked '~') down to 16 characters, then the CIs of the secondary figures go, then the primary key's,
    then names are cut further."""
    layouts = [(level, name_width) for level in (0, 1, 2) for name_width in (32, 24, 16)]
    layouts += [(2, 12), (2, 8)]
    for level, name_width in layouts:
        lines = _layout(_columns(data, level), name_width)
        if max(len(line) for line in lines) <= width:
            return lines
    return lines                                           # narrower than any layout: the narrowest one


def render(data: RunResults, run_dir: Path, width: int | None = None) -> str:
    """The summary a stage prints: the table, the report's location, the next command."""
    import textwrap

    width = width or terminal_width()
    wrap = lambda text: textwrap.wrap(text, width, subsequent_indent="  ", break_on_hyphens=False)
    h = data.headline
    lines = [*wrap(f"run {data.run}: {len(data.systems)} systems, {data.n_prompts} prompts, {data.n_responses} "
                   f"answers; embedder {data.embedder}"),
             *wrap(f"ranked by {data.primary_display} (rank 1 = most diverse; 95% bootstrap CIs over prompts)"),
             "", *table_lines(data, width), ""]
    lines += wrap("intra = mean cosine within a system per prompt; >0.8 = share of prompts above the paper's "
                  "line; inter = mean cosine to the others; dup = near-duplicate rate (inter and dup are relative: they "
                  "move when systems join or leave, the other figures do not); pass = quality pass rate; "
                  "blank = empty or whitespace answers (among answers); trunc / err = answers cut at the token "
                  "limit / failed samples. Blank answers and failed samples count as answers failing the gate")
    if h.get("share_above_0.8") is not None:
        lines += wrap(f"headline: {_pct(h.get('share_above_0.8'))} of prompts above 0.8 on average; "
                      f"inter-model cosine {_fmt(h.get('inter_min'), 2)} to {_fmt(h.get('inter_max'), 2)}")
    lines.append(f"results: {(Path(run_dir) / RESULTS_JSON).resolve()}")   # paths are never broken
    if data.report:
        report = (Path(run_dir) / data.report).resolve()
        lines += [f"report:  {report}", f"         {report.as_uri()}",
                  f"next:    open the report, or publish it: hivemind snapshot publish {data.run}"]
    else:
        lines.append(f"next:    hivemind report {data.run}")
    return "\n".join(lines)


def terminal_width() -> int:
    """The terminal's width (COLUMNS wins), 100 when not a terminal."""
    return shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns


def summary_text(config: RunConfig, width: int | None = None) -> str:
    """What `run`, `analyze` and `report` print last. A run analysed by an older hivemind (no results.json)
    is summarised from its tables."""
    data = read_results(config.run_dir)
    if data is None:
        if not (config.run_dir / "leaderboard.csv").is_file():
            return f"no analysis yet; next: hivemind analyze {config.name}"
        data = build_results(config)        # in memory: printing a summary writes nothing
        if (config.run_dir / REPORT_HTML).is_file():
            data.report = REPORT_HTML
    return render(data, config.run_dir, width)
