"""The report: figures, one self-contained report.html and a report.md, rendered from the analysed tables.

A small package: `load` (reading and checking the analysed tables), `tables` (the headline and the tables
shown), `prompt_maps` (the prompt maps' vectors from the store), `figures` (matplotlib), `html` (report.html),
`markdown` (report.md), `browser` (the answer browser in report.html) and `summary` (the terminal summary).
Everything is checked before anything is drawn, rendered into a temporary folder and only then renamed into
place, so a failed render never leaves half a report.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hivemind.core.config import RunConfig
from hivemind.report.figures import (
    cluster_order,
    fig8_figure,
    inter_matrix_with_diagonal,
    pca_2d,
    placeholder,
    plot_inter_heatmap,
    plot_intra_heatmap,
    plot_prompt_map,
    save_figure,
    system_style,
)
from hivemind.report.html import build_html, highlight_shared
from hivemind.report.load import Tables, load_tables, read_table
from hivemind.report.markdown import build_markdown
from hivemind.report.overview import fig8_ns
from hivemind.report.prompt_maps import PromptMap, file_stem, load_prompt_maps, top_prompts_frame
from hivemind.report.tables import Headline, headline
from hivemind.results.fingerprint import REPORT_RECORD, report_info
from hivemind.results.folder import REPORT_HTML, REPORT_MD, writing
from hivemind.store import check_folder
from hivemind.store.run import Run

__all__ = ["DrawnFigures", "Headline", "PromptMap", "Tables", "build_html", "build_markdown", "cluster_order",
           "draw_figures", "fig8_figure", "file_stem", "headline", "highlight_shared",
           "inter_matrix_with_diagonal", "load_prompt_maps", "load_tables", "pca_2d", "placeholder",
           "plot_inter_heatmap", "plot_intra_heatmap", "plot_prompt_map", "read_table", "report_run",
           "save_figure", "system_style", "top_prompts_frame"]


def report_run(run: Run | RunConfig, top_prompts: int = 3) -> Path:
    """Write the figures, report.html and report.md into the run folder; returns report.html's path.

    Through the results folder's one write path: drawn into a staging folder, scanned for secrets, renamed
    into place together; a refused or failed render leaves the previous report as it was. The store (prompt
    maps, the answer browser) is only read."""
    with Run.of(run, read_only=True) as run:
        return _report(run, top_prompts)


def _report(run: Run, top_prompts: int) -> Path:
    config = run.config
    check_folder(config.run_dir)              # a file where a folder should be: named, not "never analysed"
    tables = load_tables(config)              # every check before anything is written
    h = headline(tables)
    run_dir = config.run_dir
    with writing(run_dir, "report", config=config) as out:
        figures = draw_figures(run, tables, out.dir, top_prompts)
        maps, note = figures.maps, figures.map_note
        out.text(REPORT_HTML, build_html(run, tables, h, out.dir, maps, note))
        out.text(REPORT_MD, build_markdown(config, tables, h, maps))
        # which analysis this report drew, so `list` and `snapshot publish` can tell a stale report
        out.json(REPORT_RECORD, report_info(run_dir))
    kept = {path.name for path in out.written}
    for old in [*run_dir.glob("prompt_map_*.png"), *run_dir.glob("prompt_map_*.svg"),
                *run_dir.glob("fig8_neighbors.*")]:
        if old.name not in kept:                           # maps of prompts no longer in the top, a Fig. 8 not drawn
            old.unlink(missing_ok=True)
    return run_dir / REPORT_HTML


@dataclass
class DrawnFigures:
    files: list[Path]               # every file written (PNG and SVG), in the folder given
    maps: list[PromptMap]
    map_note: str | None


def draw_figures(run: Run | RunConfig, tables: Tables, folder: Path, top_prompts: int = 3) -> DrawnFigures:
    """Every figure of the report into `folder`, each as PNG and SVG."""
    files = [*save_figure(plot_intra_heatmap(tables.buckets), folder / "intra_model_heatmap.png"),
             *save_figure(plot_inter_heatmap(tables.inter, tables.buckets["mean"]), folder / "inter_model_heatmap.png"),
             *save_figure(plot_inter_heatmap(tables.inter, tables.buckets["mean"], scale="range"),
                          folder / "inter_model_heatmap_range.png")]
    if tables.by_n is not None and len(tables.by_n):
        ns = fig8_ns(tables.by_n)      # the Ns whose boxes differ; one alone would be noise (fig8_note says why)
        if len(ns) > 1:
            files += save_figure(fig8_figure(tables.by_n[tables.by_n["n"].isin(ns)]), folder / "fig8_neighbors.png")
    maps, note = load_prompt_maps(run, top_prompts_frame(tables.homogeneity, top_prompts))
    for m in maps:
        files += save_figure(plot_prompt_map(m.vectors, m.systems, tables.systems, m.prompt, m.similarity),
                             folder / m.file)
    return DrawnFigures(files=files, maps=maps, map_note=note)
