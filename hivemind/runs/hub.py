"""Snapshots as Hugging Face datasets: Parquet tables, a dataset card, a one-commit push and an hf:// pull.

A published snapshot folder is itself a Hugging Face dataset repository:

    README.md            the dataset card: YAML front matter (license, configs with Parquet data_files, ...)
                         and a body (method, embedder and its limits, systems, citation, loading, headline table)
    responses.parquet    embeddings.parquet   prompts.parquet   scores.parquet
    tables/NAME.parquet  each metric table of the run (the CSV beside it at the top level stays, for people;
                         the card's `configs:` name every data file explicitly, so the CSVs never reach
                         `datasets.load_dataset`, which would refuse a mix of formats in one config)

`datasets.load_dataset(FOLDER_OR_REPO, CONFIG)` loads any config; `push` uploads the whole folder in one
commit and tags it with the snapshot name; `fetch("hf://OWNER/NAME@TAG")` downloads it back for
`hivemind import`, which then treats it exactly as a local snapshot folder.
"""
from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from hivemind.core.errors import HivemindError
from hivemind.results.folder import ANALYSIS

CARD = "README.md"
TABLES_DIR = "tables"
HF_PREFIX = "hf://"
DEFAULT_LICENSE = "other"
# Data files written for every snapshot, in the order the card lists them; `responses` is the default config.
CORE_CONFIGS = ("responses", "embeddings", "prompts", "scores")
CITATION = """@inproceedings{jiang2025artificialhivemind,
  title         = {Artificial Hivemind: The Open-Ended Homogeneity of Language Models (and Beyond)},
  author        = {Jiang, Liwei and others},
  booktitle     = {Advances in Neural Information Processing Systems (NeurIPS)},
  year          = {2025},
  eprint        = {2510.22954},
  archivePrefix = {arXiv}
}"""
_HF_SPEC = re.compile(r"^hf://(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?:@(?P<revision>[\w./-]+))?$")


# Writing the dataset files ---------------------------------------------------------------------------

def write_dataset_files(config, folder: Path, name: str, license: str = DEFAULT_LICENSE, store=None) -> list[str]:
    """Add prompts/scores Parquet, tables/*.parquet and the dataset card to a snapshot being written.

    Called by snapshot publish after responses.parquet, embeddings.parquet and the run's tables are in
    `folder` (its staging folder); returns the config names the card declares. `store`: publish's store, in
    the read transaction whose fingerprint it checked, so the scores are read from that same state."""
    from hivemind.store import Store

    ids = [s.identity for s in config.systems]
    own = store is None
    store = Store.open_readonly(config.store_path) if own else store
    try:
        _write_prompts(store.prompts(), folder / "prompts.parquet")
        _write_scores(store.scores_frame(ids), {s.identity: s.name for s in config.systems},
                      folder / "scores.parquet")
    finally:
        if own:
            store.close()
    tables = _write_tables(folder)
    files = [(name, f"{name}.parquet") for name in CORE_CONFIGS]
    files += [(name, f"{TABLES_DIR}/{stem}.parquet") for name, stem in tables]
    # `datasets` cannot load a split with no rows ("corresponds to no data"): an empty file gets no config.
    configs = [(c, path) for c, path in files if _rows(folder / path) > 0]
    empty = [(c, path) for c, path in files if (c, path) not in configs]
    card = dataset_card(config, name, folder, configs, empty, license)
    (folder / CARD).write_text(card, encoding="utf-8")
    return [c for c, _ in configs]


def _rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


def _write_prompts(prompts, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({
        "position": pa.array(range(len(prompts)), type=pa.int64()),
        "prompt_id": pa.array([p.id for p in prompts], type=pa.string()),
        "prompt": pa.array([p.text for p in prompts], type=pa.string()),
        "category": pa.array([p.category for p in prompts], type=pa.string()),
    })
    pq.write_table(table, path)


def _write_scores(frame, names: dict[str, str], path: Path) -> None:
    """Explicit column types: an empty frame would otherwise give null-typed columns."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("system", pa.string()), ("system_id", pa.string()), ("prompt_id", pa.string()),
                        ("sample", pa.int64()), ("scorer", pa.string()), ("score", pa.float64()),
                        ("error", pa.string())])
    frame = frame.assign(system=frame["system_id"].map(names))
    pq.write_table(pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False), path)


def _write_tables(folder: Path) -> list[tuple[str, str]]:
    """tables/STEM.parquet for each top-level CSV; (config name, stem) pairs.

    A table whose name is taken by a core config becomes `table_STEM`. Columns that are empty in a table
    with no rows are typed string, since Parquet has no useful type for them. A square matrix with CI bounds
    in sibling files (inter_model_similarity.csv, _ci_low.csv, _ci_high.csv) becomes one table with the bounds
    as columns (ci_matrix_table), not three configs to join by hand."""
    import pandas as pd

    out = []
    (folder / TABLES_DIR).mkdir(exist_ok=True)
    with_bounds = {csv.stem for csv in folder.glob("*.csv") if _bound_files(folder, csv.stem)}
    bounds = {f"{stem}{side}" for stem in with_bounds for side in CI_SUFFIXES}
    for csv in sorted(folder.glob("*.csv")):
        if csv.stem in bounds:
            continue      # a column of its matrix's table
        try:
            frame = pd.read_csv(csv) if csv.stem not in with_bounds else ci_matrix_table(folder, csv.stem)
        except pd.errors.EmptyDataError:
            continue  # not even a header: nothing a dataset could hold
        if frame.empty:
            frame = frame.astype("string")
        frame.columns = [str(c) for c in frame.columns]
        frame.to_parquet(folder / TABLES_DIR / f"{csv.stem}.parquet", index=False)
        name = csv.stem if csv.stem not in CORE_CONFIGS else f"table_{csv.stem}"
        out.append((name, csv.stem))
    return out


CI_SUFFIXES = ("_ci_low", "_ci_high")


def _bound_files(folder: Path, stem: str) -> bool:
    return all((folder / f"{stem}{side}.csv").is_file() for side in CI_SUFFIXES)


def ci_matrix_table(folder: Path, stem: str):
    """A system x system matrix and its CI-bound matrices as one long table: system, other_system, value,
    ci_low, ci_high (one row per ordered pair, in the matrix's order)."""
    import pandas as pd

    def long(name: str, column: str):
        matrix = pd.read_csv(folder / f"{name}.csv", index_col=0)
        matrix.index = matrix.index.astype(str)
        matrix.columns = [str(c) for c in matrix.columns]
        frame = matrix.rename_axis("system").reset_index().melt(id_vars="system", var_name="other_system",
                                                                 value_name=column)
        return frame.set_index(["system", "other_system"])

    table = long(stem, "value").join([long(f"{stem}{side}", side.lstrip("_")) for side in CI_SUFFIXES])
    return table.reset_index()


def with_text_hash(frame):
    """responses.parquet's rows with `text_hash`, the SHA-256 of the answer text (the key of embeddings.parquet
    and of the store), so answers join their vectors without hashing them again; None for a failed request."""
    import hashlib

    hashes = [hashlib.sha256(text.encode("utf-8")).hexdigest() if isinstance(text, str) else None
              for text in frame["text"]]
    return frame.assign(text_hash=hashes)


def portable_config(public: dict) -> dict:
    """The published config with no local path: the prompts are the snapshot's own prompts.jsonl."""
    public = dict(public)
    public.pop("results_dir", None)
    if isinstance(public.get("prompts"), str):
        public["prompts"] = "prompts.jsonl"
    return public


def find_local_paths(folder: Path, roots: list[Path]) -> list[str]:
    """'file (path)' for each file under folder that contains one of these absolute local paths."""
    needles = {str(root): str(root).encode("utf-8") for root in roots if str(root) not in ("", "/")}
    hits = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        content = path.read_bytes()
        hits += [f"{path.relative_to(folder)} ({text})" for text, needle in needles.items() if needle in content]
    return hits


# The dataset card ------------------------------------------------------------------------------------

def dataset_card(config, name: str, folder: Path, configs: list[tuple[str, str]],
                 empty: list[tuple[str, str]], license: str) -> str:
    from huggingface_hub import DatasetCardData

    data = DatasetCardData(
        license=license,
        pretty_name=f"hivemind: {config.name}",
        task_categories=["text-generation"],
        tags=["hivemind-bench", "artificial-hivemind", "homogeneity", "diversity", "llm-evaluation",
              "synthetic"],
        configs=[{"config_name": name, "data_files": [{"split": "train", "path": path}],
                  **({"default": True} if name == "responses" else {})} for name, path in configs],
    )
    front = data.to_yaml()
    return f"---\n{front}\n---\n\n{_card_body(config, name, folder, configs, empty, license)}"


def _card_body(config, snapshot_name: str, folder: Path, configs: list[tuple[str, str]],
               empty: list[tuple[str, str]], license: str = DEFAULT_LICENSE) -> str:
    analysis = _read_json(folder / ANALYSIS)
    n_prompts = sum(1 for line in (folder / "prompts.jsonl").open(encoding="utf-8") if line.strip())
    floor = analysis.get("floor")
    floor_text = f" In this run the floor is {floor:.3f}." if isinstance(floor, (int, float)) else ""
    lines = [
        f"# hivemind: {config.name}",
        "",
        "Answers of several language models to the same open-ended prompts, sampled many times, with their "
        "sentence embeddings and the similarity tables computed from them by "
        "hivemind (the `hivemind-bench` Python package), an open benchmark built on the \"Artificial "
        "Hivemind\" study (Jiang et al., NeurIPS 2025, [arXiv:2510.22954](https://arxiv.org/abs/2510.22954)).",
        "",
        f"{len(config.systems)} systems x {n_prompts} prompts x up to {config.samples} samples per prompt.",
        "",
        "## Method",
        "",
        "Every system (a model plus its decoding settings) answers every prompt several times. Each distinct "
        "answer is embedded once and L2-normalised; similarities are cosines.",
        "",
        "- **Intra-model repetition**: per (system, prompt), the mean cosine over all pairs of that system's "
        "answers (self-pairs excluded); per system, the share of prompts above 0.7 / 0.8 and a histogram.",
        "- **Inter-model similarity**: for systems A and B, the mean cosine over all pairs (answer of A, answer "
        "of B) to the same prompt, pooled over prompts; the diagonal includes self-pairs.",
        "- **Calibration**: the floor is the mean similarity of answers to *different* prompts; rescaled "
        "values are `(x - floor) / (1 - floor)`. Confidence intervals bootstrap over prompts.",
        "- **Near-duplicates** (cross-system pairs at cosine >= "
        f"{config.near_duplicate_threshold}), neighbour diversity, cross-prompt templates, shared verbatim "
        "phrases and lexical diversity.",
        "",
        "## Embedder and its limits",
        "",
        f"Embedder: `{config.embedder.id}`.{floor_text} Raw cosines depend on the embedder and do not transfer "
        "between embedders (the paper used OpenAI `text-embedding-3-small`): compare rescaled values, or runs "
        "with the same embedder. Long answers are not cut: a text longer than the embedder's window "
        "(all-MiniLM-L6-v2: 256 word pieces) is split into overlapping windows that each fit, every window is "
        "embedded, and the text's vector is the token-weighted mean of the windows' vectors, normalised; "
        "`embeddings` records how many windows (`chunks`) and `tokens` each text needed. Embeddings measure "
        "closeness of topic and wording, not agreement in substance or quality.",
        "",
        "## Quality gate",
        "",
        *_gate_lines(config, analysis),
        "",
        "## Systems and decoding",
        "",
        "| system | model | decoding parameters |",
        "|---|---|---|",
    ]
    for system in config.systems:
        params = ", ".join(f"{k}={v}" for k, v in system.params.items()) or "provider defaults"
        lines.append(f"| {_cell(system.name)} | {_cell(system.model)} | {_cell(params)} |")
    lines += ["", "## Headline figures", ""]
    lines += _headline(folder)
    lines += [
        "",
        "## Configurations",
        "",
        "| config | data file |",
        "|---|---|",
    ]
    lines += [f"| `{name}` | `{path}` |" for name, path in configs]
    if empty:
        lines += ["", "Empty in this run, so without a config (`datasets` cannot load a split with no rows): "
                  + ", ".join(f"`{path}`" for _, path in empty) + "."]
    lines += [
        "",
        "`responses` has one row per answer (text, finish reason, tokens, latency, cost, error, seed) and its "
        "`text_hash` (the SHA-256 of the text, empty for a failed request), which joins `embeddings` (one "
        "vector per distinct text); `scores` holds quality scores where a scorer ran (higher is better; it "
        "may be empty). Confidence bounds are columns of their table (`ci_low`, `ci_high`): the "
        "`inter_model_similarity` config has one row per ordered pair of systems. The CSV files beside "
        "`tables/` are the tables for reading by eye; `manifest.json` lists every file's SHA-256.",
        "",
        "## Loading",
        "",
        "```python",
        "from datasets import load_dataset",
        "",
        f'folder = "path/to/{snapshot_name}"   # this folder, on disk',
        'responses = load_dataset(folder, "responses", split="train").to_pandas()',
        'vectors = load_dataset(folder, "embeddings", split="train").to_pandas()',
        'answers = responses.merge(vectors, on="text_hash")   # each answer with its vector',
        'inter = load_dataset(folder, "inter_model_similarity", split="train").to_pandas()',
        "",
        "# or from the Hub repository it was pushed to, at its tag",
        f'responses = load_dataset("OWNER/NAME", "responses", split="train", revision="{snapshot_name}")',
        "```",
        "",
        "To re-analyse it with hivemind (the embeddings come along, so nothing is re-embedded):",
        "",
        "```bash",
        f"hivemind import hf://OWNER/NAME@{snapshot_name} --name {config.name}-copy",
        "hivemind snapshot verify PATH   # recompute every SHA-256 in manifest.json",
        "```",
        "",
        "## License",
        "",
        *_license_lines(license),
        "",
        "## Citation",
        "",
        "```bibtex",
        CITATION,
        "```",
        "",
    ]
    return "\n".join(lines)


def _gate_lines(config, analysis: dict) -> list[str]:
    """What the quality gate is and what it did in this run (analysis.json), for the card."""
    gate = analysis.get("quality_gate") if isinstance(analysis.get("quality_gate"), dict) else {}
    scorers = [f"`{s.name}` ({s.kind}) >= {s.pass_at:g}" for s in config.scorers if s.pass_at is not None]
    lines = ["Diversity is measured on answers that pass a quality gate, so that babble, word salad or an "
             "off-topic answer cannot look diverse. An answer passes when it is relevant (its cosine to its own "
             "prompt reaches the run's relevance line, the 95th percentile of answers' cosines to other prompts) "
             "and every gating scorer that scored it gave it at least its line (scores are higher-is-better). "
             "A blank answer or a failed request never passes. Answers that fail count as contributing nothing "
             "to the quality-gated figures (effective diversity, effective distinctness, utility) and lower "
             "`pass_rate`; the raw similarity tables include every answer.", ""]
    lines.append(f"Gating scorers: {', '.join(scorers) if scorers else 'none (relevance only)'}.")
    if gate.get("description"):
        lines.append(f"In this run: {gate['description']}.")
    return lines


def _license_lines(license: str) -> list[str]:
    """The card's license in words; `other` (the default) says that the publisher chose none."""
    chosen = (f"This dataset card declares the license `{license}`." if license != DEFAULT_LICENSE else
              "No license was chosen when this snapshot was published (`other`); ask the publisher before reuse, "
              "or publish again with `hivemind snapshot publish RUN --license LICENSE`.")
    return [chosen + " The answers were written by the models listed above: their providers' terms of use "
            "apply to them, and the prompts keep the license of the prompt set they came from."]


def _headline(folder: Path) -> list[str]:
    """The run's leaderboard as Markdown, ranked by its primary key (read from the tables, never recomputed)."""
    import pandas as pd

    from hivemind.results import contract as results

    path = folder / "leaderboard.csv"
    if not path.is_file():
        return ["No leaderboard table in this run."]
    try:
        frame = pd.read_csv(path, dtype={"rank": str})
    except pd.errors.EmptyDataError:
        return ["The leaderboard table is empty."]
    primary = frame.columns[0]
    shown = [c for c in ("rank", "system", "model", "setting", primary, "pass_rate", "vendi", "distinct_ideas",
                         "intra_mean", "inter_mean_others") if c in frame.columns]
    names = [results.METRICS[c].display if c in results.METRICS else c for c in shown]
    rows = ["| " + " | ".join(_cell(n) for n in names) + " |", "|" + "---|" * len(shown)]
    for record in frame[shown].itertuples(index=False):
        rows.append("| " + " | ".join(_cell(_format(v)) for v in record) + " |")
    metric = results.METRICS.get(primary)
    what = f"ranked by {metric.display} ({metric.direction} when higher; {metric.reference})" if metric else ""
    return [f"From `leaderboard.csv`, {what}. Control rows (kind control), where present, are synthetic "
            "answers built from the run's own and carry no rank. Cosines use this snapshot's embedder.", "", *rows]


def _format(value) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.3f}"
    return str(value)


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


# Push -------------------------------------------------------------------------------------------------

def commit_operations(folder: Path, remote_files: list[str] | None = None) -> list:
    """Every file of the folder as one add; every other remote file (but .gitattributes) as a delete.

    Deleting what the snapshot does not have keeps the repository's head equal to this snapshot (a table
    dropped since the last push would otherwise linger beside the new ones)."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    local = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    operations = [CommitOperationAdd(path_in_repo=rel, path_or_fileobj=str(folder / rel)) for rel in local]
    stale = sorted(set(remote_files or []) - set(local) - {".gitattributes"})
    operations += [CommitOperationDelete(path_in_repo=rel) for rel in stale]
    return operations


def push(folder: Path, repo: str, tag: str, private: bool = False) -> str:
    """Upload a verified snapshot folder to the dataset repo in one commit tagged with the snapshot name.

    The token comes from the usual huggingface_hub places (HF_TOKEN, `hf auth login`). Returns the URL of
    the tagged revision."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}:
        raise HivemindError(f"cannot push to {repo!r}: HF_HUB_OFFLINE is set; unset it (and be online) to push")
    try:
        from huggingface_hub import HfApi

        api = HfApi()
        api.create_repo(repo, repo_type="dataset", private=private, exist_ok=True)
        if tag in {t.name for t in api.list_repo_refs(repo, repo_type="dataset").tags}:
            raise HivemindError(f"{repo!r} already has a tag {tag!r}: a snapshot is pushed once; publish the run "
                                f"under a new snapshot name and push that (nothing was uploaded)")
        remote = api.list_repo_files(repo, repo_type="dataset")
        commit = api.create_commit(repo, commit_operations(folder, remote), repo_type="dataset",
                                   commit_message=f"hivemind snapshot {tag}")
        api.create_tag(repo, tag=tag, revision=commit.oid, repo_type="dataset",
                       tag_message=f"hivemind snapshot {tag}")
    except HivemindError:
        raise
    except Exception as err:  # connection, auth and hub errors come in many types; all mean "not pushed"
        first = str(err).splitlines()[0] if str(err) else ""
        raise HivemindError(f"could not push snapshot {tag!r} to {repo!r}: {type(err).__name__}: {first}. "
                            f"Check the network, the repo name, that tag {tag!r} is not taken, and your "
                            f"Hugging Face token (HF_TOKEN or `hf auth login`).") from None
    return f"{api.endpoint}/datasets/{repo}/tree/{tag}"


# Pull -------------------------------------------------------------------------------------------------

@dataclass
class HubSpec:
    repo: str
    revision: str | None

    def __str__(self) -> str:
        return f"{HF_PREFIX}{self.repo}" + (f"@{self.revision}" if self.revision else "")


def is_hub_spec(text: str | Path) -> bool:
    return str(text).startswith(HF_PREFIX)


def parse_spec(text: str) -> HubSpec:
    """hf://OWNER/NAME[@REVISION]: a dataset repository and a tag, branch or commit (default: main)."""
    match = _HF_SPEC.match(text)
    if not match:
        raise HivemindError(f"{text!r}: expected hf://OWNER/NAME or hf://OWNER/NAME@TAG "
                            f"(a Hugging Face dataset repository and a snapshot tag)")
    return HubSpec(match["repo"], match["revision"])


def fetch(text: str) -> Path:
    """Download a snapshot pushed with `--to-hub` (through the Hugging Face cache) and return its folder."""
    spec = parse_spec(text)
    try:
        from huggingface_hub import snapshot_download

        # .gitattributes is the Hub's, not the snapshot's: verify would call it an unexpected file.
        return Path(snapshot_download(repo_id=spec.repo, repo_type="dataset", revision=spec.revision,
                                      ignore_patterns=[".gitattributes"]))
    except Exception as err:  # offline, missing repo or revision, auth: all mean "not downloaded"
        first = str(err).splitlines()[0] if str(err) else ""
        offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}
        hint = ("HF_HUB_OFFLINE is set and it is not in the local cache; unset HF_HUB_OFFLINE and be online"
                if offline else "check the network, the repository name and tag, and your token for a private repo")
        raise HivemindError(f"could not download {spec} (dataset {spec.repo!r}, revision "
                            f"{spec.revision or 'main'}): {type(err).__name__}: {first}; {hint}") from None
