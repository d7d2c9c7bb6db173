"""The inter-model similarity matrix in report.html as an HTML table, legible from 3 to 50 systems.

A PNG cannot say a cell's value when the cells are too small to print it, and one fixed colour scale paints a
run whose values sit close together in one colour. So the page draws the matrix itself: each cell carries its
value in a title attribute (shown on hover) and two colours, the fixed scale (results.SIMILARITY_SCALE, runs
compare by eye) and this run's own range between systems. A pair of radio buttons and one CSS rule switch
between them (no script, no network); the range is checked first where the fixed scale would look uniform.
Rows and columns follow the figure's clustering order, the diagonal is each system's intra-model mean.
The PNG and SVG figures are still written beside report.html, for papers.
"""
from __future__ import annotations

import html

import matplotlib
import numpy as np
import pandas as pd

from hivemind.report.figures import (
    SIMILARITY_CMAP,
    cluster_order,
    inter_matrix_with_diagonal,
    similarity_limits,
    text_color,
)
from hivemind.results.contract import SIMILARITY_SCALE

# The range view is shown first when the values between systems span less than this share of the fixed
# scale: viridis over 0-1 then gives every cell nearly one colour.
UNIFORM_SHARE = 0.35
VALUES_UP_TO = 20         # cells print their value up to this many systems; above, hover shows it
FEW = 8                   # up to this many systems, larger cells
LEGEND_STOPS = 9

MATRIX_CSS = """
.hm-scale{font-size:13px;margin:6px 0}.hm-scale label{margin-right:14px;cursor:pointer}
table.hm-matrix{width:auto;border-collapse:separate;border-spacing:1px;font-size:11px;margin:8px 0}
table.hm-matrix td{background:var(--f);color:var(--ft);text-align:center;padding:0;height:24px;min-width:34px;
 border:0;font-variant-numeric:tabular-nums}
table.hm-matrix.few td{height:34px;min-width:54px;font-size:13px}
table.hm-matrix.wide td{height:16px;min-width:16px;width:16px}
table.hm-matrix td.d{font-weight:700;outline:1px solid #1d2330;outline-offset:-1px}
table.hm-matrix th{background:#fff;position:static;font-weight:400;border:0;padding:0 6px 0 0;white-space:nowrap;
 text-align:right}
table.hm-matrix thead th{vertical-align:bottom;padding:0 0 4px 0;text-align:left}
table.hm-matrix thead th span{writing-mode:vertical-rl;transform:rotate(180deg);display:inline-block}
table.hm-matrix tr:nth-child(even) td{background:var(--f)}
#hm-scale-range:checked~.hm-scroll table.hm-matrix td{background:var(--r);color:var(--rt)}
.hm-legend{display:flex;align-items:center;gap:8px;font-size:12px;color:#5b6473;margin:4px 0}
.hm-legend .bar{width:220px;height:10px;border-radius:2px}
.hm-legend.r{display:none}#hm-scale-range:checked~.hm-legend.r{display:flex}#hm-scale-range:checked~.hm-legend.f{display:none}
"""


def hex_colour(rgba) -> str:
    r, g, b = (int(round(255 * float(c))) for c in rgba[:3])
    return f"#{r:02x}{g:02x}{b:02x}"


def range_first(values: np.ndarray) -> bool:
    """Whether the fixed scale would paint these values (between systems) in nearly one colour."""
    finite = values[np.isfinite(values)]
    if len(finite) == 0:
        return False
    fixed_low, fixed_high = SIMILARITY_SCALE
    return float(finite.max() - finite.min()) < UNIFORM_SHARE * (fixed_high - fixed_low)


def cell_style(value: float, low: float, high: float, cmap) -> tuple[str, str]:
    """(background, text colour) of a value on a scale low..high; grey for a missing value."""
    if np.isnan(value):
        return "#d9d9d9", "#1d2330"
    rgba = cmap(float(np.clip((value - low) / (high - low), 0.0, 1.0)))
    return hex_colour(rgba), ("#ffffff" if text_color(rgba) == "white" else "#000000")


def legend(kind: str, low: float, high: float, cmap, what: str) -> str:
    stops = ", ".join(hex_colour(cmap(x)) for x in np.linspace(0, 1, LEGEND_STOPS))
    return (f'<div class="hm-legend {kind}"><span>{low:.3f}</span><span class="bar" '
            f'style="background:linear-gradient(to right, {stops})"></span><span>{high:.3f}</span>'
            f"<span>{html.escape(what)}</span></div>")


def matrix_html(inter: pd.DataFrame, intra: pd.Series | None) -> str:
    """The scale switch, the two colour legends and the matrix table (in its own scrolling box)."""
    names = [str(s) for s in inter.index]
    n = len(names)
    if n < 2:
        return '<p class="note">The matrix needs at least two systems.</p>'
    full = inter_matrix_with_diagonal(inter, intra)
    order = cluster_order(full.to_numpy())
    values = full.to_numpy()[np.ix_(order, order)]
    labels = [names[i] for i in order]
    between = values[~np.eye(n, dtype=bool)]
    fixed, ranged = similarity_limits(between, "fixed"), similarity_limits(between, "range")
    first_range = range_first(between)
    cmap = matplotlib.colormaps[SIMILARITY_CMAP]
    e = html.escape
    head = "".join(f'<th scope="col"><span>{e(name)}</span></th>' for name in labels)
    rows = []
    for i, row_name in enumerate(labels):
        cells = []
        for j, col_name in enumerate(labels):
            v = values[i, j]
            f_bg, f_fg = cell_style(v, *fixed, cmap)
            r_bg, r_fg = cell_style(v, *ranged, cmap)
            shown = "–" if np.isnan(v) else f"{v:.2f}"
            if i == j:
                title = (f"{row_name}: intra-model mean {shown} (two different answers of this system to the "
                         f"same prompt)" if not np.isnan(v) else f"{row_name}: intra-model mean undefined "
                         f"(one answer per prompt)")
            else:
                title = f"{row_name} × {col_name}: mean cosine {'—' if np.isnan(v) else f'{v:.3f}'}"
            text = shown if n <= VALUES_UP_TO else ""
            diagonal = ' class="d"' if i == j else ""
            cells.append(f'<td{diagonal} style="--f:{f_bg};--ft:{f_fg};--r:{r_bg};--rt:{r_fg}" '
                         f'title="{e(title)}">{text}</td>')
        rows.append(f'<tr><th scope="row">{e(row_name)}</th>{"".join(cells)}</tr>')
    checked = ("", " checked") if first_range else (" checked", "")
    size = "few" if n <= FEW else ("wide" if n > VALUES_UP_TO else "")
    why = ("the values between systems span less than "
           f"{UNIFORM_SHARE:.0%} of the fixed scale, so this run's own range is shown first" if first_range
           else "the fixed scale is shown first; this run's own range gives finer contrast")
    return (f'<p class="note">Colours: {e(why)}. Hover a cell for its value.</p>'
            f'<div class="hm-scale">'
            f'<input type="radio" name="hm-scale" id="hm-scale-fixed"{checked[0]}>'
            f'<label for="hm-scale-fixed">fixed scale {fixed[0]:g}–{fixed[1]:g} (compares across runs)</label>'
            f'<input type="radio" name="hm-scale" id="hm-scale-range"{checked[1]}>'
            f'<label for="hm-scale-range">this run\'s range {ranged[0]:.3f}–{ranged[1]:.3f} between systems</label>'
            + legend("f", *fixed, cmap, "mean cosine, fixed scale")
            + legend("r", *ranged, cmap, "mean cosine, this run's range (a diagonal above it saturates)")
            + f'<div class="hm-scroll"><table class="hm-matrix {size}">'
            f"<thead><tr><th></th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div></div>")
