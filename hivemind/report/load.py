"""The analysed tables a report reads, checked against the config before anything is drawn.

Everything is read from the tables that `analyze_run` wrote into the run folder (plus results.json for the
collection outcomes and the embed stage's chunking table); hivemind.report.tables turns them into the
headline and the tables shown, hivemind.report.prompt_maps reads the prompt maps' vectors from the store.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from hivemind.analyze.similarity import BUCKET_LABELS
from hivemind.core.config import RunConfig
from hivemind.core.errors import HivemindError
from hivemind.results import contract as results
from hivemind.results.folder import ANALYSIS

REFERENCE_NAME = "paper_reference.json"
REQUIRED = [ANALYSIS, "intra_model_buckets.csv", "inter_model_similarity.csv",
            "inter_model_similarity_rescaled.csv", "prompt_homogeneity.csv", "near_duplicates.csv",
            "shared_phrases.csv", "lexical_diversity.csv", "leaderboard.csv"]
# Columns read as text whatever they look like ("1" stays a prompt id, "NA" stays a name or an answer).
TEXT_COLUMNS = {"system", "system_a", "system_b", "prompt_id", "prompt", "text_a", "text_b", "phrase", "category",
                "level", "scorer",
                "systems", "model", "kind", "setting", "rank", "setting_a", "setting_b"}


@dataclass
class Tables:
    systems: list[str]                    # config order
    buckets: pd.DataFrame                 # index: system
    inter: pd.DataFrame                   # square, index and columns: system
    inter_rescaled: pd.DataFrame
    homogeneity: pd.DataFrame
    near_duplicates: pd.DataFrame
    shared_phrases: pd.DataFrame
    lexical: pd.DataFrame                 # index: system
    leaderboard: pd.DataFrame             # index: system (real systems only)
    info: dict
    reference: dict | None = None
    controls: pd.DataFrame | None = None  # leaderboard rows of control systems (kind == control)
    by_n: pd.DataFrame | None = None      # neighbor_diversity_by_n.csv (Fig. 8 per prompt)
    settings: pd.DataFrame | None = None  # setting_headlines.csv
    cross_setting: pd.DataFrame | None = None
    coverage: pd.DataFrame | None = None  # embedding_coverage.csv (embed stage): answers embedded in chunks
    categories: pd.DataFrame | None = None  # category_breakdown.csv (prompts with categories)
    gate_by_scorer: pd.DataFrame | None = None  # gate_by_scorer.csv (runs with two or more gating scorers)
    outcomes: dict | None = None          # system -> results.json entry (answers, truncated, errors, cost)


def read_table(path: Path, index: str | None = None) -> pd.DataFrame:
    """A CSV with text columns kept as text and only empty cells of the other columns read as missing."""
    header = pd.read_csv(path, nrows=0).columns
    text = [c for c in header if c in TEXT_COLUMNS]
    numeric = {c: ["", "nan", "NaN"] for c in header if c not in TEXT_COLUMNS}
    frame = pd.read_csv(path, dtype={c: str for c in text}, keep_default_na=False, na_values=numeric)
    return frame.set_index(index) if index else frame


def load_tables(config: RunConfig) -> Tables:
    run_dir, name = config.run_dir, config.name
    missing = [f for f in REQUIRED if not (run_dir / f).is_file()]
    if missing:
        what = "was never analysed" if len(missing) == len(REQUIRED) else f"lacks {', '.join(missing)}"
        raise HivemindError(f"{run_dir}: run {name!r} {what}, so there is nothing to report; "
                            f"run `hivemind analyze {name}` first")
    try:
        info = json.loads((run_dir / ANALYSIS).read_text(encoding="utf-8"))
        buckets = read_table(run_dir / "intra_model_buckets.csv", "system")
        inter = read_table(run_dir / "inter_model_similarity.csv", "system")
        inter_rescaled = read_table(run_dir / "inter_model_similarity_rescaled.csv", "system")
        lexical = read_table(run_dir / "lexical_diversity.csv", "system")
        board = read_table(run_dir / "leaderboard.csv")
        homogeneity = read_table(run_dir / "prompt_homogeneity.csv")
        near = read_table(run_dir / "near_duplicates.csv")
        phrases = read_table(run_dir / "shared_phrases.csv")
        expect_columns(run_dir, name, {
            "intra_model_buckets.csv": (buckets, [*BUCKET_LABELS, "above_0.8", "above_0.8_ci_low",
                                                  "above_0.8_ci_high", "mean", "mean_ci_low", "mean_ci_high",
                                                  "mean_rescaled", "n_prompts"]),
            "prompt_homogeneity.csv": (homogeneity, ["prompt_id", "prompt", "mean_similarity"]),
            "near_duplicates.csv": (near, ["prompt_id", "system_a", "system_b", "similarity", "exact",
                                           "text_a", "text_b"]),
            "shared_phrases.csv": (phrases, ["prompt_id", "phrase", "n_words", "n_systems", "systems"]),
            "lexical_diversity.csv": (lexical, ["distinct_1", "distinct_2", "distinct_3", "compression_ratio",
                                                "mean_words"]),
            "leaderboard.csv": (board, list(results.TABLES["leaderboard.csv"].columns)),
        })
        leaderboard = board[board["kind"] != "control"].set_index("system")
        controls = board[board["kind"] == "control"].set_index("system")
        optional = {name: read_table(run_dir / name) if (run_dir / name).is_file() else None
                    for name in ("neighbor_diversity_by_n.csv", "setting_headlines.csv", "cross_setting_pairs.csv",
                                 "category_breakdown.csv", "gate_by_scorer.csv")}
    except (ValueError, KeyError, json.JSONDecodeError, pd.errors.ParserError) as err:
        raise HivemindError(f"{run_dir}: an analysis table is unreadable ({err}); "
                            f"run `hivemind analyze {name}` again") from None
    systems = [s.name for s in config.systems]
    check_systems(config, info, {"intra_model_buckets.csv": list(buckets.index),
                                 "inter_model_similarity.csv": list(inter.index),
                                 "inter_model_similarity.csv (columns)": list(inter.columns),
                                 "lexical_diversity.csv": list(lexical.index),
                                 "leaderboard.csv": list(leaderboard.index)}, leaderboard)
    for frame in (near, phrases):
        for column in ("text_a", "text_b", "systems", "phrase"):
            if column in frame:
                frame[column] = frame[column].fillna("")
    return Tables(systems=systems, buckets=buckets.loc[systems], inter=inter.loc[systems, systems],
                  inter_rescaled=inter_rescaled.reindex(index=systems, columns=systems),
                  homogeneity=homogeneity, near_duplicates=near, shared_phrases=phrases,
                  lexical=lexical.loc[systems], leaderboard=leaderboard.loc[systems], info=info,
                  reference=load_reference(run_dir, info), controls=controls,
                  by_n=optional["neighbor_diversity_by_n.csv"], settings=optional["setting_headlines.csv"],
                  cross_setting=optional["cross_setting_pairs.csv"], coverage=load_coverage(run_dir, info),
                  categories=optional["category_breakdown.csv"], gate_by_scorer=optional["gate_by_scorer.csv"],
                  outcomes=load_outcomes(run_dir))


def load_outcomes(run_dir: Path) -> dict | None:
    """Per system its collection outcome from results.json (the numbers the terminal summary printed);
    None for a run analysed before results.json existed."""
    from hivemind.results.record import read_results

    data = read_results(run_dir)
    return None if data is None else {s.system: s for s in data.systems}


def expect_columns(run_dir: Path, name: str, tables: dict[str, tuple[pd.DataFrame, list[str]]]) -> None:
    for file, (frame, columns) in tables.items():
        absent = [c for c in columns if c not in frame.columns]
        if absent:
            raise HivemindError(f"{run_dir / file}: missing column(s) {', '.join(absent)}; it was written by "
                                f"another version of hivemind; run `hivemind analyze {name}` again")


def check_systems(config: RunConfig, info: dict, tables: dict[str, list[str]], leaderboard: pd.DataFrame) -> None:
    """The tables must describe exactly the config's systems (same names, same models)."""
    configured = [s.name for s in config.systems]
    analysed = [str(s) for s in info.get("systems") or tables["intra_model_buckets.csv"]]
    fix = f"re-run `hivemind analyze {config.name}` so the tables match the config"
    not_analysed = [s for s in configured if s not in analysed]
    not_configured = [s for s in analysed if s not in configured]
    if not_analysed or not_configured:
        parts = []
        if not_analysed:
            parts.append(f"system(s) in the config but not in the analysis: {', '.join(not_analysed)}")
        if not_configured:
            parts.append(f"analysed system(s) not in the config: {', '.join(not_configured)}")
        raise HivemindError(f"{config.run_dir}: the analysis does not match the config of run {config.name!r} "
                            f"({'; '.join(parts)}); were systems renamed? {fix}")
    for file, names in tables.items():
        if sorted(map(str, names)) != sorted(configured):
            raise HivemindError(f"{config.run_dir / file.split(' ')[0]}: its systems ({', '.join(map(str, names))}) "
                                f"differ from analysis.json; {fix}")
    changed = [f"{s.name} (analysed as {leaderboard.at[s.name, 'model']}, configured as {s.model})"
               for s in config.systems if str(leaderboard.at[s.name, "model"]) != s.model]
    if changed:
        raise HivemindError(f"{config.run_dir}: the model of system(s) {', '.join(changed)} changed since the "
                            f"analysis; {fix}")


def load_reference(run_dir: Path, info: dict) -> dict | None:
    """The paper's published figures, when the run carries them (analysis.json or paper_reference.json)."""
    if isinstance(info.get("paper_reference"), dict):
        return info["paper_reference"]
    path = run_dir / REFERENCE_NAME
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise HivemindError(f"{path}: malformed JSON ({err}); delete it or write it again "
                            f"(`hivemind reproduce` writes it)") from None
    return data if isinstance(data, dict) else None



def load_coverage(run_dir: Path, info: dict) -> pd.DataFrame | None:
    """The embed stage's chunking table, rows of this analysis' embedder only; None when absent or unreadable."""
    path = run_dir / "embedding_coverage.csv"
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError):
        return None
    return frame[frame["embedder"] == info.get("embedder")] if "embedder" in frame else None
