"""`hivemind site` and `hivemind view`: one static folder over every analysed run, and a local server for it.

The folder (default: `<results>-site/` beside the results folder, so `results/` gives `results-site/`, and never
MkDocs' own `site/`) holds

    index.html             the cross-run leaderboard, a section per group of comparable runs headed in words
                           (prompt set, embedder, equivalence), then the runs and the systems
    runs/<run>.html        each run's report.html (redrawn first when missing or older than its analysis)
    systems/<system>.html  a system in every run: its rank there, its figures, its closest neighbour
    compare/<run>.html     the run's answer browser opened on two systems side by side (the closest pair)
    site.json              what was built, so the next build removes the pages of runs no longer on it

Every page is self-contained and links only relatively, with no request leaving the page: a static site to
open from disk or host anywhere (GitHub Pages, a Hugging Face Space). It is written through the results
folder's one writer (hivemind.results.folder.writing: staged, scanned for secrets, renamed into place), wherever
it lies. `view` serves the folder on 127.0.0.1 with the standard library's HTTP server until Ctrl-C."""
from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd

from hivemind import __version__
from hivemind.core.config import RUN_CONFIG_NAME, STORE_NAME
from hivemind.core.config_files import load_config, resolve_run
from hivemind.core.errors import HivemindError
from hivemind.results import contract as results
from hivemind.results.folder import REPORT_HTML, results_root, writing
from hivemind.runs.leaderboard import Skipped, build_leaderboard, nearest_systems, rank_in_groups, run_folders
from hivemind.runs.site_pages import Group, SiteRun, compare_page, index_page, report_page, slug, system_page

MANIFEST = "site.json"
PAGE_FOLDERS = ("runs", "systems", "compare")


@dataclass
class Site:
    """What `build_site` wrote."""
    folder: Path
    runs: list[str]
    systems: int
    compared: int
    redrawn: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def index(self) -> Path:
        return self.folder / "index.html"

    def __str__(self) -> str:
        lines = [f"site written to {self.folder}/: index.html (the leaderboard), {len(self.runs)} run reports, "
                 f"{self.systems} system pages, {self.compared} side-by-side answer pages"]
        lines += [f"report redrawn first (missing or older than its analysis): {name}" for name in self.redrawn]
        lines += [f"not on the site: {line}" for line in self.skipped]
        lines.append(f"open {self.index} in a browser, or serve it: hivemind view --out {self.folder}")
        return "\n".join(lines)


# Choosing the runs --------------------------------------------------------------------------------------
def chosen_folders(names: list[str] | None, results_dir: str | Path | None) -> tuple[Path, list[Path]]:
    """The results folder and the run folders to show: every run in it, or those named (RUN as every command
    reads it: a name, a run folder or a config file), all from one results folder."""
    if not names:
        base = results_root(results_dir)
        if not base.is_dir():
            raise HivemindError(f"{base}: no results folder here; run `hivemind run demo` first, or name the "
                                "folder with --results")
        return base, run_folders(base)
    folders = []
    for name in dict.fromkeys(names):
        config = resolve_run(name, results_dir=results_dir)
        folder = config.run_dir
        if not (folder / RUN_CONFIG_NAME).is_file() and not (folder / STORE_NAME).is_file():
            raise HivemindError(f"run {name!r} has no run folder at {folder}; `hivemind list` shows the runs")
        folders.append(folder.resolve())
    bases = {f.parent for f in folders}
    if len(bases) > 1:
        raise HivemindError(f"runs {', '.join(names)} lie in different results folders "
                            f"({', '.join(sorted(map(str, bases)))}); a site shows one results folder")
    return bases.pop(), folders


def default_out(base: Path) -> Path:
    """`results/` -> `results-site/`: beside the folder it shows, named after it."""
    return base.resolve().parent / f"{base.resolve().name}-site"


def check_out(out: Path, base: Path) -> Path:
    """The site folder: not the results folder itself, nor inside a run."""
    out = out.resolve()
    if out == base.resolve():
        raise HivemindError(f"--out {out}: that is the results folder; write the site beside it (e.g. --out site)")
    for folder in [out, *out.parents]:
        if (folder / RUN_CONFIG_NAME).is_file() or (folder / STORE_NAME).is_file():
            raise HivemindError(f"--out {out}: inside the run folder {folder}; write the site elsewhere")
    return out


# Gathering ----------------------------------------------------------------------------------------------
def prompt_source(folder: Path) -> str:
    """Where a run's prompts came from, in words: the prompt file's name, or "imported" for imported runs."""
    from hivemind.results.record import is_imported

    config = load_config(folder / RUN_CONFIG_NAME)
    if is_imported(config, folder):
        return "imported"
    return Path(str(config.prompts)).stem if isinstance(config.prompts, (str, Path)) else "inline prompts"


def nearest(folder: Path, systems: list[str]) -> dict[str, tuple[str, float]]:
    """Each system's closest other system by the run's inter-model similarity (empty when it has no matrix)."""
    if len(systems) < 2:
        return {}
    found = {name: nearest_systems(folder, name, n=1, among=systems) for name in systems}
    return {name: closest[0] for name, closest in found.items() if closest}


def site_run(folder: Path, rows: pd.DataFrame) -> SiteRun:
    analysis = json.loads((folder / "analysis.json").read_text(encoding="utf-8"))
    systems = [str(s) for s in rows["system"]]
    near = nearest(folder, systems)
    pair = None
    if near:
        a = max(near, key=lambda s: near[s][1])
        pair = (a, near[a][0])
    elif len(systems) >= 2:
        pair = (systems[0], systems[1])
    return SiteRun(name=str(rows["run"].iloc[0]), slug=slug(folder.name), folder=folder,
                   group=str(rows["group"].iloc[0]), prompts=prompt_source(folder),
                   n_prompts=int(analysis.get("n_prompts") or 0), n_answers=int(analysis.get("n_responses") or 0),
                   date=str(rows["date"].iloc[0]), systems=systems, nearest=near, pair=pair)


def group_of(key: str, rows: pd.DataFrame, runs: list[SiteRun]) -> Group:
    """A group headed in words: its prompts, embedder and equivalence; the hash and calibration below."""
    members = [r for r in runs if r.group == key]
    sources = sorted({r.prompts for r in members})
    n_prompts = max((r.n_prompts for r in members), default=0)
    provider, _, model = str(rows["embedder"].iloc[0]).partition(":")
    embedder = f"{model} ({provider})" if model else provider
    metric = results.METRICS[rows["primary_key"].iloc[0]]
    heading = f"{n_prompts} prompts: {', '.join(sources)}"
    measured = (f"embedder {embedder} · equivalence {rows['equivalence'].iloc[0]} · ranked by {metric.display} "
                f"({metric.direction} when higher)")
    calibrations = sorted({str(c) for c in rows["calibration"].dropna() if str(c)})
    detail = (f"{metric.display}: {metric.reference}. Prompt set {str(rows['prompt_set'].iloc[0])[:10]}"
              + (f"; calibration {', '.join(calibrations)}" if calibrations else "") + ".")
    return Group(key=key, heading=heading, runs=members, measured=measured, detail=detail, rows=rows.reset_index(drop=True))


def current_report(folder: Path, wait: bool) -> bool:
    """Draw the run's report when it is missing or older than its analysis, as `hivemind report` does (under
    the run's lock, through the results folder's writer); True when it was drawn."""
    from hivemind.results.fingerprint import report_is_current

    if (folder / REPORT_HTML).is_file() and report_is_current(folder):
        return False
    from hivemind import pipeline

    pipeline.report(resolve_run(str(folder)), wait=wait)
    return True


# Building -----------------------------------------------------------------------------------------------
def build_site(runs: list[str] | None = None, results_dir: str | Path | None = None, out: str | Path | None = None,
               wait: bool = False) -> Site:
    """Write the static site over the runs named (default: every analysed run in the results folder)."""
    from hivemind.report.browser import browser_section
    from hivemind.store.run import Run

    base, folders = chosen_folders(runs, results_dir)
    out = check_out(Path(out) if out is not None else default_out(base), base)
    skipped: list[Skipped] = []
    frame = build_leaderboard(base, skipped)
    wanted = {f.name for f in folders}
    problems = [s for s in skipped if s.folder.name in wanted]
    if runs and problems:
        raise HivemindError(f"run {problems[0].folder.name!r}: {problems[0].reason}")
    frame = rank_in_groups(frame[frame["run"].astype(str).isin(wanted)])
    if frame.empty:
        raise HivemindError(f"{base}: no analysed runs to show"
                            + "".join(f"; {s.folder.name}: {s.reason}" for s in problems)
                            + "; run `hivemind analyze RUN` first")
    site_runs = [site_run(base / name, rows) for name, rows in frame.groupby("run", sort=True)]
    groups = [group_of(key, rows, site_runs) for key, rows in frame.groupby("group", sort=True)]
    redrawn = [r.name for r in site_runs if current_report(r.folder, wait)]
    built = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    pages: list[str] = []
    with writing(out, "site") as staged:
        def put(name: str, text: str) -> None:
            staged.text(name, text)
            pages.append(name)

        put("index.html", index_page(groups, site_runs, [f"{s.folder.name}: {s.reason}" for s in problems],
                                     built, __version__))
        for run in site_runs:
            put(f"runs/{run.slug}.html", report_page((run.folder / REPORT_HTML).read_text(encoding="utf-8"), run))
            if run.pair:
                put(f"compare/{run.slug}.html",
                    compare_page(run, browser_section(Run.config_of(resolve_run(str(run.folder))), pair=run.pair)))
        for system, rows in frame.groupby("system", sort=True):
            put(f"systems/{slug(str(system))}.html", system_page(str(system), rows, site_runs, groups))
        old = read_manifest(out)
        staged.json(MANIFEST, {"format": 1, "built_at": built, "hivemind_version": __version__,
                               "results": str(base), "runs": [r.name for r in site_runs], "pages": pages})
    remove_old_pages(out, old, set(pages))
    return Site(folder=out, runs=[r.name for r in site_runs], systems=frame["system"].nunique(),
                compared=sum(1 for r in site_runs if r.pair), redrawn=redrawn,
                skipped=[f"{s.folder.name}: {s.reason}" for s in problems])


def read_manifest(out: Path) -> dict:
    try:
        data = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def remove_old_pages(out: Path, old: dict, kept: set[str]) -> None:
    """Pages the previous build wrote and this one did not (a run or system no longer shown); only names
    that site.json lists, inside the site's page folders, are ever removed."""
    for name in old.get("pages") or []:
        if not isinstance(name, str) or name in kept or name.split("/")[0] not in PAGE_FOLDERS:
            continue
        path = (out / name).resolve()
        if out in path.parents:
            path.unlink(missing_ok=True)


# Serving ------------------------------------------------------------------------------------------------
class QuietHandler(SimpleHTTPRequestHandler):
    """The site's files, no request log on the terminal."""

    def log_message(self, format, *args) -> None:  # noqa: A002 (the base class's name)
        pass


def serve(folder: Path, port: int = 8000, announce: Callable[[str], None] = print) -> str:
    """Serve `folder` on 127.0.0.1:port (0: any free port) until Ctrl-C; `announce` gets the address line."""
    handler = functools.partial(QuietHandler, directory=str(folder))
    try:
        server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError as err:
        raise HivemindError(f"--port {port}: cannot listen on 127.0.0.1 ({err.strerror}); choose another port, "
                            "or --port 0 for any free one") from None
    url = f"http://127.0.0.1:{server.server_address[1]}/index.html"
    thread = threading.Thread(target=server.serve_forever, name="hivemind-view", daemon=True)
    thread.start()
    announce(f"serving {folder} at {url} (Ctrl-C stops)")
    try:
        while thread.is_alive():
            thread.join(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        server.server_close()
    return f"stopped serving {url}"


def view(runs: list[str] | None = None, results_dir: str | Path | None = None, out: str | Path | None = None,
         port: int = 8000, build: bool = True, announce: Callable[[str], None] = print, wait: bool = False) -> str:
    """Build the site (or, build=False, reuse the one in `out`) and serve it on 127.0.0.1."""
    if build:
        site = build_site(runs, results_dir, out, wait=wait)
        announce(str(site))
        folder = site.folder
    else:
        folder = Path(out) if out is not None else default_out(results_root(results_dir))
        if not (folder / MANIFEST).is_file():
            raise HivemindError(f"{folder}: no site built there; run `hivemind site` first, or drop --no-build")
    return serve(folder.resolve(), port, announce)
