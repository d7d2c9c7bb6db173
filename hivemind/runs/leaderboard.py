"""The cross-run leaderboard: every analysed run's systems in one table, ranked only among comparables.

Two runs are comparable when they asked the same prompts (same prompt-set hash over ids + texts, in
order), embedded with the same embedder and judged "same idea" by the same equivalence: the calibration key
(hivemind.results.calibration), under which every such run is measured against one pinned floor, idea line and
relevance line, so a system's own figures do not depend on which runs or systems sit beside it. The `group`
column names that key (and the primary key), and ranks restart in every group. Relative figures (inter-model
similarity, effective distinctness, near-duplicate rate, distinct neighbours) are marked as such. `add_system` grows a run by one system: it collects only that system's missing answers,
embeds only new texts (the cache does the rest), re-analyses, redraws the report, rewrites the leaderboard
and says where the new system ranks.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from hivemind.core.config import RUN_CONFIG_NAME, STORE_NAME
from hivemind.core.config_files import resolve_run
from hivemind.core.errors import HivemindError
from hivemind.results import contract as results
from hivemind.results.calibration import DEFAULT_EQUIVALENCE
from hivemind.results.fingerprint import prompt_set_hash
from hivemind.results.folder import ANALYSIS, LEADERBOARD_CSV, LEADERBOARD_MD, folder_locked, results_root, writing
from hivemind.runs.snapshot import SNAPSHOTS_DIR
from hivemind.store import Store, check_folder

# The ranking and its columns come from the results contract (hivemind.results.contract): the primary key first,
# rank 1 = most diverse, ties share a rank ("2="), bootstrap CIs beside the primary key.
PRIMARY_COLUMNS = ["primary_key", "primary", "primary_ci_low", "primary_ci_high"]
METRICS = [m for m in results.LEADERBOARD_METRICS]
COLUMNS = [*PRIMARY_COLUMNS, "group", "rank", "run", "system", "model", "setting", *METRICS,
           *[f"{m}_{side}" for m in results.WITH_CI for side in ("ci_low", "ci_high")],
           "embedder", "prompt_set", "equivalence", "calibration", "date"]


@dataclass
class RunEntry:
    run: str
    folder: Path
    embedder: str
    prompt_set: str
    date: str
    table: pd.DataFrame
    note: str = ""          # set when the run predates results.json and its leaderboard.csv was read instead
    equivalence: str = DEFAULT_EQUIVALENCE
    calibration: str = ""   # the pinned calibration it was measured against: file name and floor ("" before)


@dataclass
class Skipped:
    """A run folder left out of the leaderboard, and why."""
    folder: Path
    reason: str

    def __str__(self) -> str:
        return f"skipped {self.folder}: {self.reason}"


def run_folders(results_dir: str | Path) -> list[Path]:
    """Folders that hold a run (a config, a store or analysis files); snapshots and hidden folders are not runs."""
    base = Path(results_dir)
    if not base.is_dir():
        return []
    markers = (LEADERBOARD_CSV, ANALYSIS, RUN_CONFIG_NAME, STORE_NAME)
    return [p for p in sorted(base.iterdir())
            if p.is_dir() and p.name != SNAPSHOTS_DIR and not p.name.startswith(".")
            and any((p / marker).exists() for marker in markers)]


def stored_prompt_set_hash(store_path: Path) -> str | None:
    """Prompt-set hash of a run store, read without writing to it (another process may be collecting).

    None when there is no store; a store that cannot be read raises its HivemindError."""
    if not store_path.exists():
        return None
    with Store.open_readonly(store_path) as store:
        return prompt_set_hash(store.prompts())


def read_run(folder: Path) -> RunEntry:
    """One analysed run folder; a HivemindError saying what is wrong with it otherwise."""
    from hivemind.results.fingerprint import read_analysis

    analysis_path, config_path, table_path = folder / ANALYSIS, folder / RUN_CONFIG_NAME, folder / LEADERBOARD_CSV
    if not analysis_path.is_file() and not table_path.is_file():
        raise HivemindError(f"not analysed yet; run `hivemind analyze {folder.name}`")
    for path in (analysis_path, table_path):
        if not path.is_file():
            raise HivemindError(f"{path.name} is missing; run `hivemind analyze {folder.name}` again")
    try:
        analysis = json.loads(analysis_path.read_text(encoding="utf-8"))
        config = yaml.safe_load(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
        table = pd.read_csv(table_path)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise HivemindError(f"unreadable {analysis_path.name} or {table_path.name} ({err}); "
                            f"run `hivemind analyze {folder.name}` again") from None
    except yaml.YAMLError as err:
        raise HivemindError(f"{config_path.name} is not valid YAML ({' '.join(str(err).split())})") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise HivemindError(f"unreadable {table_path.name} ({err}); run `hivemind analyze {folder.name}` "
                            "again") from None
    except OSError as err:
        raise HivemindError(f"cannot read {err.filename or folder}: {err.strerror}") from None
    if not isinstance(analysis, dict):
        raise HivemindError(f"{analysis_path.name} is not a JSON object; run `hivemind analyze {folder.name}` again")
    if not isinstance(config, dict):
        raise HivemindError(f"{config_path.name} is not a mapping of settings")
    record = read_analysis(folder)
    if record is not None and not record.complete:   # a refused analysis never counts as analysed
        raise HivemindError(f"its last analysis did not finish ({record.why_incomplete}); "
                            f"run `hivemind analyze {folder.name}`")
    if "system" not in table.columns:
        raise HivemindError(f"{table_path.name} has no `system` column; run `hivemind analyze {folder.name}` again")
    table, note = _results_table(folder, table)
    stored = stored_prompt_set_hash(folder / STORE_NAME)   # also proves the store is readable
    embedder = analysis.get("embedder") or _embedder_id(config.get("embedder"))
    prompt_set = analysis.get("prompt_set_hash") or stored or "unknown"
    date = analysis.get("created_at") or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(table_path.stat().st_mtime))
    record = analysis.get("calibration") if isinstance(analysis.get("calibration"), dict) else {}
    return RunEntry(run=str(config.get("name") or folder.name), folder=folder, embedder=str(embedder),
                    prompt_set=str(prompt_set), date=str(date), table=table, note=note,
                    equivalence=str(record.get("equivalence") or DEFAULT_EQUIVALENCE),
                    calibration=calibration_label(record))


def calibration_label(record: dict) -> str:
    """The pinned record a run was measured against, as `<file> (floor 0.1234)`; "" for runs analysed before."""
    if not record.get("file"):
        return ""
    floor = record.get("floor")
    return f"{record['file']} (floor {floor:.6g})" if isinstance(floor, (int, float)) else str(record["file"])


def _results_table(folder: Path, csv_table: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The run's rows from results.json (the machine-readable summary analyze writes), or from
    leaderboard.csv with a note for a run analysed before results.json existed."""
    from hivemind.results.record import read_results

    data = read_results(folder)
    if data is None:
        return csv_table, (f"read from {LEADERBOARD_CSV} (analysed before results.json existed; "
                           f"`hivemind analyze {folder.name}` writes one)")
    return pd.DataFrame([s.metrics for s in data.systems]), ""


def _embedder_id(value: Any) -> str:
    if isinstance(value, str):
        return f"sentence-transformers:{value}"
    if isinstance(value, dict):
        return f"{value.get('provider', 'sentence-transformers')}:{value.get('model', '?')}"
    return "sentence-transformers:all-MiniLM-L6-v2"


def build_leaderboard(results_dir: str | Path, skipped: list[Skipped] | None = None,
                      notes: list[Skipped] | None = None) -> pd.DataFrame:
    """Every analysed run's real systems (controls left out), ranked within groups of comparable runs.

    A group is one prompt set, one embedder, one equivalence and one primary key (runs with one answer per prompt are ranked
    by effective distinctness, others by effective diversity: never mixed). A broken run folder is left out
    and added to `skipped`; a run read from its CSV (no results.json) is named in `notes`."""
    rows = []
    for folder in run_folders(results_dir):
        try:
            entry = read_run(folder)
            table = entry.table
            if "kind" in table:
                table = table[table["kind"] != "control"]
            primary = _primary(entry, table)
        except HivemindError as err:
            if skipped is not None:
                skipped.append(Skipped(folder, str(err)))
            continue
        if entry.note and notes is not None:
            notes.append(Skipped(folder, entry.note))
        group = f"{entry.prompt_set[:10]}|{entry.embedder}|{entry.equivalence}|{primary}"
        for record in table.to_dict("records"):
            row = {"primary_key": primary, "primary": record.get(primary),
                   "primary_ci_low": record.get(f"{primary}_ci_low"), "primary_ci_high": record.get(f"{primary}_ci_high"),
                   "group": group, "run": entry.run, "system": record.get("system"),
                   "model": record.get("model"), "setting": record.get("setting"), "embedder": entry.embedder,
                   "prompt_set": entry.prompt_set, "equivalence": entry.equivalence,
                   "calibration": entry.calibration, "date": entry.date}
            row.update({c: record.get(c) for c in COLUMNS if c not in row and c != "rank"})
            rows.append(row)
    frame = pd.DataFrame(rows, columns=[c for c in COLUMNS if c != "rank"])
    if frame.empty:
        return pd.DataFrame(columns=COLUMNS)
    frame["primary"] = pd.to_numeric(frame["primary"], errors="coerce")
    return rank_in_groups(frame)[COLUMNS]


def rank_in_groups(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows ranked within each comparable group (one prompt set, embedder, equivalence) by the group's primary
    key in its direction, ties marked; a site over some runs ranks again among the rows it keeps."""
    parts = []
    for _, rows in frame.groupby("group", sort=True):
        direction = results.METRICS[rows["primary_key"].iloc[0]].direction
        rows = rows.sort_values(["primary", "run", "system"], ascending=[direction == results.HOMOGENEOUS, True, True],
                                na_position="last", kind="mergesort")
        ranks, tied = results.rank_with_ties(rows["primary"], direction)
        parts.append(rows.assign(rank=[results.rank_label(r, t) for r, t in zip(ranks, tied)]))
    return pd.concat(parts).reset_index(drop=True) if parts else frame


def _primary(entry: RunEntry, table: pd.DataFrame) -> str:
    analysis = {}
    path = entry.folder / ANALYSIS
    if path.is_file():
        try:
            analysis = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            analysis = {}
    key = analysis.get("primary_key")
    if key in results.METRICS and key in table:
        return key
    if results.PRIMARY in table and table[results.PRIMARY].notna().any():
        return results.PRIMARY
    if results.PRIMARY_ONE_SAMPLE in table:
        return results.PRIMARY_ONE_SAMPLE
    raise HivemindError(f"{entry.folder / LEADERBOARD_CSV}: written by an older hivemind (no quality-gated "
                        f"diversity column); run `hivemind analyze {entry.folder.name}` again")


def update_leaderboard(results_dir: str | Path | None = None, warn=None, wait: bool = False) -> list[Path]:
    """Rewrite results/leaderboard.csv and results/leaderboard.md from every analysed run.

    A broken run folder is skipped: `warn` (default: print to stderr) gets one line naming it and why, and
    leaderboard.md lists it. No analysed run at all is an error, not an empty table."""
    base = results_root(results_dir)
    check_folder(base)
    warn = warn or (lambda line: print(f"warning: {line}", file=sys.stderr))
    # read and written under the results folder's lock: two updates never land an older table last
    with folder_locked(base, "leaderboard", wait, str(base)):
        skipped: list[Skipped] = []
        notes: list[Skipped] = []
        frame = build_leaderboard(base, skipped, notes)
        for item in skipped:
            warn(str(item))
        if frame.empty:
            why = "; ".join(str(item) for item in skipped)
            raise HivemindError(f"{base}: no analysed runs to rank{f' ({why})' if why else ''}; "
                                "run `hivemind analyze RUN` first")
        with writing(base, "leaderboard") as out:    # both files together, refused whole if either holds a key
            csv_path = out.csv(LEADERBOARD_CSV, frame)
            md_path = out.text(LEADERBOARD_MD, leaderboard_markdown(frame, skipped, notes))
    return [csv_path, md_path]


def leaderboard_markdown(frame: pd.DataFrame, skipped: list[Skipped] = (), notes: list[Skipped] = ()) -> str:
    lines = ["# Hivemind leaderboard", "",
             "Rows are ranked only within a group: runs that asked the same prompts (prompt-set hash), used the "
             "same embedder and equivalence, and share a primary key. Rank 1 = the MOST DIVERSE system by the primary "
             "key, a quality-gated diversity (answers failing the quality gate count as contributing nothing); equal "
             "values share a rank (\"2=\"). Brackets: 95% bootstrap confidence intervals over prompts. A group's "
             "runs are measured against one pinned calibration (floor, idea line, relevance line), so a system's "
             "own figures stay put when runs or systems are added.", "", results.RELATIVE_NOTE + ".", ""]
    if frame.empty:
        return "\n".join(lines + ["No analysed runs yet: run `hivemind analyze RUN` first.", ""])
    embedders = sorted(frame["embedder"].dropna().unique())
    if len(embedders) > 1:
        from hivemind.studies.agreement import compare_warning

        lines += [f"**Warning:** {compare_warning(embedders[0], embedders[1])}. Groups with different embedders "
                  f"({', '.join(f'`{e}`' for e in embedders)}) are ranked apart and never compared raw.", ""]
    shown = ["vendi", "distinct_ideas", "pass_rate", "intra_mean", "share_above_0.8", "inter_mean_others",
             "near_duplicate_rate", "n_responses", "n_prompts"]
    for group, rows in frame.groupby("group", sort=False):
        prompt_set, embedder, key = rows["prompt_set"].iloc[0], rows["embedder"].iloc[0], rows["primary_key"].iloc[0]
        metric = results.METRICS[key]
        header = [f"{results.labelled(key)} [CI]", "rank", "system", "run", *[results.labelled(m) for m in shown],
                  "date"]
        lines += [f"## Group `{group}`", "",
                  f"prompt set `{prompt_set}`, embedder `{embedder}`, {rows['run'].nunique()} run(s); primary key: "
                  f"{metric.display} ({metric.direction} when higher; {metric.reference})", "",
                  *calibration_lines(rows), "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for r in rows.to_dict("records"):
            primary = _cell(r.get("primary"))
            if primary and not pd.isna(r.get("primary_ci_low")):
                primary += f" [{_cell(r.get('primary_ci_low'))}, {_cell(r.get('primary_ci_high'))}]"
            cells = [primary, r.get("rank"), r.get("system"), r.get("run"), *[r.get(m) for m in shown], r.get("date")]
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
        lines.append("")
    if notes:
        lines += ["## Older runs", ""] + [f"- `{item.folder.name}`: {item.reason}" for item in notes] + [""]
    if skipped:
        lines += ["## Skipped run folders", ""] + [f"- `{item.folder.name}`: {item.reason}" for item in skipped] + [""]
    return "\n".join(lines)


def calibration_lines(rows: pd.DataFrame) -> list[str]:
    """The calibration a group's runs were measured against; a warning when they were not all measured against
    the same one (a run analysed before a recalibration, or before calibrations were pinned)."""
    used = {run: str(label or "") for run, label in zip(rows["run"], rows["calibration"].fillna(""))}
    labels = sorted(set(used.values()))
    if labels == [""]:
        return []
    if len(labels) == 1:
        return [f"calibration: `{labels[0]}`", ""]
    which = "; ".join(f"`{run}`: {label or 'none (analysed before calibrations were pinned)'}"
                      for run, label in sorted(used.items()))
    return [f"**Warning:** these runs were measured against different calibrations ({which}); analyse them again "
            f"(`hivemind analyze RUN`) so all use the one pinned now.", ""]


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value).replace("|", "\\|")


@dataclass
class Rank:
    """Where one system of one run stands in its leaderboard group, and who stands just above and below it."""
    system: str
    label: str          # "3", or "2=" for a tie; "" when the system has no value for the primary key
    of: int             # systems in the group
    metric: str         # the primary key's display name
    value: str = ""     # its primary key, "0.412"
    above: str = ""     # the system ranked just above it, "alpha (0.450)"; "" when it is first
    below: str = ""     # the system ranked just below it; "" when it is last

    def __str__(self) -> str:
        if not self.label:
            return f"{self.system} is not ranked (no value for {self.metric})"
        around = [f"{self.above} above" if self.above else "", f"{self.below} below" if self.below else ""]
        around = " and ".join(a for a in around if a)
        return (f"{self.system} ranks {self.label} of {self.of} by {self.metric} ({self.value})"
                + (f", between {around}" if " and " in around else f"; {around}" if around else ""))


def rank_of(frame: pd.DataFrame, run: str, system: str) -> Rank | None:
    """The rank of `system` of `run` in a leaderboard frame (build_leaderboard or leaderboard.csv, whose rows
    are in rank order within a group), with its neighbours in the ranking."""
    rows = frame[(frame["run"].astype(str) == run) & (frame["system"].astype(str) == system)]
    if rows.empty:
        return None
    row = rows.iloc[0]
    group = frame[frame["group"] == row["group"]].reset_index(drop=True)
    label = "" if pd.isna(row["rank"]) or pd.isna(row["primary"]) else str(row["rank"])
    at = int(group.index[(group["run"].astype(str) == run) & (group["system"].astype(str) == system)][0])

    def who(i: int) -> str:
        if not 0 <= i < len(group) or pd.isna(group.at[i, "primary"]):
            return ""
        name = str(group.at[i, "system"]) + ("" if str(group.at[i, "run"]) == run else f" of run {group.at[i, 'run']}")
        return f"{name} ({_cell(group.at[i, 'primary'])})"

    return Rank(system=system, label=label, of=len(group), metric=results.METRICS[row["primary_key"]].display,
                value=_cell(row["primary"]), above=who(at - 1), below=who(at + 1))


def nearest_systems(run_dir: Path, system: str, n: int = 3, among: list[str] | None = None
                    ) -> list[tuple[str, float]]:
    """The `n` systems of the run (of `among`, when given) whose answers are most alike `system`'s
    (inter_model_similarity.csv: mean cosine over pairs of their answers to the same prompt), closest first;
    [] before an analysis."""
    path = Path(run_dir) / "inter_model_similarity.csv"
    if not path.is_file():
        return []
    matrix = pd.read_csv(path, index_col=0)
    matrix.index = matrix.index.astype(str)
    if system not in matrix.index:
        return []
    row = pd.to_numeric(matrix.loc[system], errors="coerce").drop(labels=[system], errors="ignore").dropna()
    if among is not None:
        row = row[row.index.isin(among)]
    return [(str(name), float(value)) for name, value in row.sort_values(ascending=False).head(n).items()]


def nearest_text(neighbours: list[tuple[str, float]]) -> str:
    if not neighbours:
        return ""
    return ("closest systems (mean cosine of their answers to the same prompts): "
            + ", ".join(f"{name} {value:.3f}" for name, value in neighbours))


@dataclass
class AddSystemSummary:
    run: str
    system: str
    collect: Any = None
    embed: Any = None
    analysis: Any = None
    report: Path | None = None
    leaderboard: list[Path] = field(default_factory=list)
    rank: Rank | None = None
    nearest: list[tuple[str, float]] = field(default_factory=list)   # nearest_systems: its closest systems
    already: bool = False       # the system was present and analysed: nothing was added

    def __str__(self) -> str:
        rank = f"{self.rank}" if self.rank else f"{self.system} is not on the leaderboard"
        rank += f"\n{nearest_text(self.nearest)}" if self.nearest else ""
        if self.already:
            return (f"system {self.system!r} is already in run {self.run!r} and analysed on the store as it is: "
                    f"nothing added, nothing rewritten\n{rank}")
        stored = getattr(self.collect, "stored", "?")
        return (f"added system {self.system!r} to run {self.run!r}: {stored} answers collected, "
                f"{getattr(self.embed, 'embedded', '?')} texts embedded; report redrawn: {self.report}; "
                "leaderboard: " + ", ".join(str(p) for p in self.leaderboard) + f"\n{rank}")


def already_analysed(config, system_name: str) -> bool:
    """Is `system_name` in the run's last complete analysis, and does the store still hold exactly what
    that analysis read (same answers, vectors, scores and settings: hivemind.results.fingerprint)?"""
    from hivemind.results.fingerprint import read_analysis, run_fingerprint

    analysis = read_analysis(config.run_dir)
    if analysis is None or not analysis.complete or analysis.fingerprint is None:
        return False
    if system_name not in analysis.systems or not config.store_path.is_file():
        return False
    return analysis.fingerprint == run_fingerprint(config)


def add_system(config_path: str | Path, system_name: str, results_dir: str | Path | None = None,
               progress: bool = True, wait: bool = False) -> AddSystemSummary:
    """Grow a run by a system the user added to its config file (or to the run folder's config.yaml, when the
    run is named by name or folder): only that system's answers are requested, then the run is re-analysed, its
    report redrawn and the leaderboard rewritten; the summary says where the system ranks, who is ranked just
    above and below it, and which systems answer most like it. A system already present and analysed on the unchanged store adds nothing."""
    from hivemind import pipeline

    config = resolve_run(config_path, results_dir)   # a config file, or a run by name or folder
    if system_name not in {s.name for s in config.systems}:
        where = config_path if Path(str(config_path)).is_file() else config.run_dir / RUN_CONFIG_NAME
        fix = ("add it under `systems:` first" if Path(str(where)).is_file() else
               f"{config_path!r} is a packaged config: copy it to a file of your own, add the system under "
               f"`systems:` and name that file")
        raise HivemindError(f"{where}: has no system named {system_name!r}; {fix} "
                            f"(it has: {', '.join(s.name for s in config.systems)})")
    summary = AddSystemSummary(run=config.name, system=system_name)
    if already_analysed(config, system_name):
        summary.already = True
        summary.rank = rank_of(build_leaderboard(config.results_dir), config.name, system_name)
        summary.nearest = nearest_systems(config.run_dir, system_name)
        return summary
    result = pipeline.run(config, systems=[system_name], progress=progress, wait=wait, with_report=True)
    summary.collect, summary.embed, summary.analysis = result.collect, result.embed, result.analysis
    summary.report = result.report
    summary.leaderboard = update_leaderboard(config.results_dir, wait=wait)
    summary.rank = rank_of(pd.read_csv(summary.leaderboard[0], dtype={"rank": str}), config.name, system_name)
    summary.nearest = nearest_systems(config.run_dir, system_name)
    return summary
