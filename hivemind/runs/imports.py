"""Import: make a run from generations that already exist, without collecting.

Formats:
- AlpacaEval `model_outputs.json`: a JSON list of {instruction, output, generator}; one system per generator.
- NoveltyBench `generations.jsonl`: {id, prompt, model, generations: [samples]}.
- Any JSON, JSONL, CSV or Parquet file of records, with a field mapping (prompt, response or list of
  responses, model); every file is read by hivemind.core.readers (the same one-line errors as every data file).
- A snapshot folder (manifest.json + responses.parquet), or one pushed to the Hugging Face Hub
  (`hf://OWNER/NAME@TAG`, downloaded first): its systems, prompts and vectors come back as they
  were, so analysing the import reproduces the snapshot's tables.
Prompts are matched by text across files (their id is a hash of the text).
Nothing is doubled or dropped silently: a row repeating an earlier one (a file given twice, overlapping
exports) is skipped and counted, one prompt text under two NoveltyBench ids is refused, a snapshot's repeated
rows are counted and its conflicting ones refused. Systems may have unequal samples per prompt (the exports
do); the run's `samples` is the most any system has. import.json in the run records the source and counts.
"""
from __future__ import annotations

import hashlib
import json
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from hivemind.collect.prompts import prompt_id
from hivemind.core.config import RUN_CONFIG_NAME, RunConfig, System, check_name, system_name_problem
from hivemind.core.config_files import load_config, run_config_text
from hivemind.core.errors import HivemindError
from hivemind.core.readers import read_records
from hivemind.results.folder import STORE, new_folder, results_root
from hivemind.results.record import PROVENANCE_FILE, import_notes, is_imported, save_run_config  # noqa: F401  (is_imported: callers ask here too)
from hivemind.runs import hub
from hivemind.store import Prompt, Response, Score, Store, now

PROMPTS_FILE = "prompts.jsonl"


@dataclass
class FieldMapping:
    prompt: str = "prompt"
    response: str = "response"   # a string, or a list of strings (samples)
    model: str = "model"


@dataclass
class Generations:
    """model -> prompt -> list of sample texts, in the order they were read, and what was skipped.

    Prompts are matched by their text without surrounding blanks (the text the prompt id hashes); the first
    spelling read is the one stored. A row identical to an earlier one (same model, prompt, answers and
    `sample` field) is skipped and counted: a file given twice, or overlapping exports, never double the
    answers. NoveltyBench's prompt `id` is checked against its text: one text under two ids is refused."""
    by_model: dict[str, dict[str, list[str]]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(list)))
    prompt_text: dict[str, str] = field(default_factory=dict)   # key (stripped text) -> text as first read
    rows: int = 0
    duplicates: dict[str, int] = field(default_factory=dict)    # file -> rows skipped as duplicates
    first_duplicate: str | None = None                          # where the first skipped row was
    seen: dict[tuple, str] = field(default_factory=dict)        # row key -> where it was first read
    prompt_refs: dict[str, tuple[str, str]] = field(default_factory=dict)  # text key -> (id, where)

    def add(self, model: str, prompt: str, responses: list[str], where, sample=None, prompt_ref=None) -> None:
        key = prompt.strip()
        if prompt_ref is not None:
            self._check_ref(key, str(prompt_ref), where)
        row = (model, key, tuple(responses), json.dumps(sample))
        if row in self.seen:
            self.duplicates[str(where.path)] = self.duplicates.get(str(where.path), 0) + 1
            again = f"{where.path} given twice" if str(where) == self.seen[row] else f"{where} repeats {self.seen[row]}"
            self.first_duplicate = self.first_duplicate or again
            return
        self.seen[row] = str(where)
        self.rows += 1
        self.prompt_text.setdefault(key, prompt)
        self.by_model[model][key].extend(responses)

    def _check_ref(self, key: str, ref: str, where) -> None:
        first = self.prompt_refs.setdefault(key, (ref, str(where)))
        if first[0] != ref:
            raise HivemindError(f"{where}: prompt id {ref!r} has the same text as prompt id {first[0]!r} "
                                f"({first[1]}); one prompt under two ids would merge their answers. Give the "
                                f"prompts distinct texts or one id (nothing was imported)")

    @property
    def n_duplicates(self) -> int:
        return sum(self.duplicates.values())


def import_files(files: list[str | Path], name: str, results_dir: str | Path | None = None,
                 mapping: FieldMapping | None = None, verify: bool = True) -> RunConfig:
    """Make run `name` from generation files, or from one snapshot folder (checked against its manifest
    first; verify=False imports a tampered or unverifiable one anyway, with a warning, marked unverified).
    What was read and skipped is recorded in the run's import.json (see `import_notes`)."""
    files = [f if hub.is_hub_spec(f) else Path(f) for f in files]  # Path() would fold hf:// into hf:/
    if not files:
        raise HivemindError("nothing to import: name at least one file or snapshot folder")
    check_name(name, "run name")
    results_dir = results_root(results_dir)
    target = results_dir / name
    if (target / RUN_CONFIG_NAME).exists() or (target / STORE).exists():
        raise HivemindError(f"run {name!r} already exists in {target}; choose another --name "
                            f"(nothing was changed)")
    files = [hub.fetch(f) if hub.is_hub_spec(f) else f for f in files]  # then the same code as a folder
    snapshots = [f for f in files if f.is_dir()]
    if snapshots:
        if len(files) > 1:
            raise HivemindError("a snapshot folder is imported on its own, not mixed with other files")
        return score_default_gate(_import_snapshot(snapshots[0], name, Path(results_dir), verify))
    generations = Generations()
    for path in files:
        _read_file(path, generations, mapping or FieldMapping())
    if not generations.by_model:
        raise HivemindError(f"no generations found in {', '.join(str(f) for f in files)}; nothing was imported")
    provenance = {"source": [source_file(f) for f in files], "imported_at": now(), "rows": generations.rows,
                  "duplicate_rows": generations.n_duplicates, "duplicates_by_file": generations.duplicates,
                  "first_duplicate": generations.first_duplicate}
    return score_default_gate(_write_run(generations, name, Path(results_dir), provenance))


def source_file(path: Path) -> dict:
    """What import.json says of one source file: its name and sha256 (enough to tell which file it was; never
    its folder, which names this machine's folders and would travel into a published snapshot)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {"file": Path(path).name, "sha256": digest.hexdigest()}


def score_default_gate(config: RunConfig) -> RunConfig:
    """Score the imported answers with the run's fluency scorers (the default offline gate every config
    gets, hivemind.score.fluency): text only, about 10,000 answers a second, so an import is gated like a
    collected run without a `hivemind score` step. The slower scorers (perplexity, judges) stay with
    `hivemind score`."""
    from hivemind.score.stage import score_run

    names = [s.name for s in config.scorers if s.kind == "fluency"]
    if names:
        score_run(config, scorers=names, progress=False)
    return config


def _read_file(path: Path, gen: Generations, mapping: FieldMapping) -> None:
    """Every record of a JSON, JSONL, CSV or Parquet file (hivemind.core.readers), told apart by its fields:
    NoveltyBench (generations), AlpacaEval (instruction, generator, output), or the mapped fields."""
    for where, record in read_records(path, "generations file", "generations"):
        if "generations" in record:
            _fields(record, where, "prompt", "model", "generations")
            gen.add(record["model"], record["prompt"], _texts(record["generations"], where, "generations"), where,
                    prompt_ref=_prompt_ref(record.get("id")))
        elif "instruction" in record and "generator" in record:
            _fields(record, where, "instruction", "generator", "output")
            gen.add(record["generator"], record["instruction"], _texts(record["output"], where, "output"), where)
        else:
            _fields(record, where, mapping.prompt, mapping.model, mapping.response)
            gen.add(record[mapping.model], record[mapping.prompt],
                    _texts(record[mapping.response], where, mapping.response), where, sample=record.get("sample"))


def _prompt_ref(value) -> str | None:
    return str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value) else None


def _fields(record, where, prompt: str, model: str, response: str) -> None:
    """The record has the three fields, the prompt is non-empty text and the model a valid system name."""
    if not isinstance(record, dict):
        raise HivemindError(f"{where}: expected a JSON object with fields {prompt}, {model}, {response}")
    missing = [n for n in (prompt, model, response) if n not in record]
    if missing:
        raise HivemindError(f"{where}: missing field(s) {', '.join(missing)} "
                            f"(use --prompt-field/--response-field/--model-field to map yours)")
    if not isinstance(record[prompt], str) or not record[prompt].strip():
        raise HivemindError(f"{where}: field {prompt!r} must be a non-empty string")
    if not isinstance(record[model], str):
        raise HivemindError(f"{where}: field {model!r} must be a string (the model's name)")
    problem = system_name_problem(record[model])
    if problem:
        raise HivemindError(f"{where}: field {model!r} is not a usable system name: {problem}")


def _texts(value, where, field_name: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return list(value)
    raise HivemindError(f"{where}: field {field_name!r} must be a string or a non-empty list of strings")


def _write_run(gen: Generations, name: str, results_dir: Path, provenance: dict) -> RunConfig:
    prompts = [Prompt(prompt_id(key), text) for key, text in gen.prompt_text.items()]
    systems = [System(name=model, model=f"imported/{model}") for model in gen.by_model]
    counts = {model: sorted({len(v) for v in per_prompt.values()}) for model, per_prompt in gen.by_model.items()}
    samples = max(c[-1] for c in counts.values())
    provenance["samples_per_prompt"] = {m: c[0] if len(c) == 1 else f"{c[0]}-{c[-1]}" for m, c in counts.items()}

    def fill(store: Store) -> None:
        for system in systems:
            rows = (Response(system.identity, prompt_id(key), i, text=answer)
                    for key, answers in gen.by_model[system.name].items() for i, answer in enumerate(answers))
            store.add_responses(rows)
    return _build(name, results_dir, prompts, systems, samples, fill, base=None, provenance=provenance)


def import_notes_text(config: RunConfig) -> list[str]:
    """What an import skipped or kept apart, as lines for the CLI: nothing read is dropped silently."""
    notes, lines = import_notes(config) or {}, []
    if notes.get("duplicate_rows"):
        files = ", ".join(f"{Path(f).name}: {n}" for f, n in notes.get("duplicates_by_file", {}).items())
        lines.append(f"{notes['duplicate_rows']} duplicate rows skipped (the same model, prompt and answers as an "
                     f"earlier row{'; ' + files if files else ''}; first: {notes.get('first_duplicate')})"
                     if files else f"{notes['duplicate_rows']} duplicate rows skipped (repeated answers in the "
                     f"snapshot)")
    for ids in notes.get("prompt_texts_under_several_ids", []):
        lines.append(f"prompts {', '.join(ids)} have the same text; kept apart, as in the snapshot")
    counts = notes.get("samples_per_prompt", {})
    if len(set(map(str, counts.values()))) > 1:
        lines.append("samples per prompt differ between systems ("
                     + ", ".join(f"{m}: {c}" for m, c in counts.items())
                     + "); analysis uses the samples present (intra-model similarity needs 2 on a prompt)")
    return lines


def imported_scores_text(config: RunConfig) -> str:
    """`hivemind score` on a run whose scorers are all imported: nothing to compute; what is stored."""
    with Store(config.store_path, create=False) as store:
        ids = [s.identity for s in config.systems]
        answers = store.count_responses(ids, with_text=True)
        lines = [f"  {s.name} (imported): {answers - len(store.answers_to_score(s.name, ids))} of {answers} "
                 f"answers have a score" for s in config.scorers]
    return (f"nothing to score: every scorer of run {config.name!r} is imported (its scores come from "
            f"`hivemind import --scores`, not computed here)\n" + "\n".join(lines))


def check_snapshot(folder: Path, verify: bool = True) -> dict:
    """Compare the snapshot with its manifest before anything is read from it. A mismatch (a forged answer
    in responses.parquet, a missing or extra file) or a missing manifest refuses the import; verify=False
    goes on with a loud warning. Returns the provenance recorded in the run (import.json)."""
    from hivemind.runs import snapshot

    try:
        result = snapshot.check(folder)
        problems = [] if result.ok else (
            [f"changed: {n}" for n in result.changed] + [f"missing: {n}" for n in result.missing]
            + [f"unexpected: {n}" for n in result.unexpected])
    except HivemindError as err:
        problems = [str(err)]
    if problems and verify:
        raise HivemindError(f"refusing to import snapshot {folder}: it does not match its manifest "
                            f"({'; '.join(problems)}); it was modified after publishing, or is not a snapshot. "
                            f"Import it anyway with --no-verify (the run is then marked unverified); nothing "
                            f"was changed")
    if problems:
        print(f"WARNING: importing snapshot {folder} WITHOUT verification ({'; '.join(problems)}). Its answers "
              f"may have been changed after publishing; the run records this in {PROVENANCE_FILE}.",
              file=sys.stderr)
    return {"source": folder.resolve().name, "verified": not problems, "problems": problems,
            "imported_at": now()}


def _read_parquet(path: Path, columns: list[str]):
    """A snapshot's Parquet file with the columns it must have, or a one-line HivemindError."""
    import pandas as pd
    import pyarrow as pa

    try:
        frame = pd.read_parquet(path)
    except (pa.ArrowException, OSError, ValueError) as err:
        raise HivemindError(f"{path}: not a readable Parquet file ({' '.join(str(err).split())[:200]})") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise HivemindError(f"{path}: missing column(s) {', '.join(missing)}; is it a hivemind snapshot file?")
    return frame


RESPONSE_COLUMNS = ["system_id", "prompt_id", "prompt", "category", "sample", "seed", "text", "finish_reason",
                    "prompt_tokens", "completion_tokens", "latency_s", "cost", "error"]


def _drop_repeated_rows(frame, path: Path):
    """(frame without repeated answers, how many were dropped). A row repeating an earlier one exactly is
    dropped and counted; two different answers under one (system, prompt, sample) are refused: which one the
    snapshot measured cannot be told."""
    key = ["system_id", "prompt_id", "sample"]
    repeated = frame.duplicated(key)
    if not repeated.any():
        return frame, 0
    conflicting = repeated & ~frame.duplicated(RESPONSE_COLUMNS)
    if conflicting.any():
        row = frame[conflicting].iloc[0]
        raise HivemindError(f"{path}: two different answers for system {row.system_id}, prompt {row.prompt_id}, "
                            f"sample {row['sample']} (row {frame.index.get_loc(row.name) + 1}); the snapshot is "
                            f"inconsistent (nothing was imported)")
    return frame[~repeated], int(repeated.sum())


def _import_snapshot(folder: Path, name: str, results_dir: Path, verify: bool = True) -> RunConfig:
    import pandas as pd

    responses_path, config_path = folder / "responses.parquet", folder / RUN_CONFIG_NAME
    for needed in (responses_path, config_path):
        if not needed.is_file():
            raise HivemindError(f"{needed}: missing; is {folder} a hivemind snapshot folder?")
    provenance = check_snapshot(folder, verify)
    base = load_config(config_path)
    from hivemind.runs.snapshot import pin_calibration

    if verify:      # its figures are measured against the lines it was published with (never a forged record)
        pin_calibration(folder, results_dir)
    frame = _read_parquet(responses_path, RESPONSE_COLUMNS)
    frame, provenance["duplicate_rows"] = _drop_repeated_rows(frame, responses_path)
    first = frame.drop_duplicates("prompt_id")
    # one text under two prompt ids is kept apart, as the snapshot measured it, but said aloud
    shared = first[first["prompt"].str.strip().duplicated(keep=False)]
    provenance["prompt_texts_under_several_ids"] = [
        sorted(map(str, group["prompt_id"])) for _text, group in shared.groupby(shared["prompt"].str.strip())]
    prompts = [Prompt(str(r.prompt_id), r.prompt, None if pd.isna(r.category) else r.category)
               for r in first.itertuples()]
    known = {s.identity for s in base.systems}
    unknown = set(frame["system_id"]) - known
    if unknown:
        raise HivemindError(f"{responses_path}: responses of systems not in {config_path}: {sorted(unknown)}")

    def fill(store: Store) -> None:
        try:
            rows = [Response(r.system_id, str(r.prompt_id), int(r.sample), None if pd.isna(r.text) else r.text,
                             seed=_int(r.seed), finish_reason=_opt(r.finish_reason),
                             prompt_tokens=_int(r.prompt_tokens), completion_tokens=_int(r.completion_tokens),
                             latency_s=_opt(r.latency_s), cost=_opt(r.cost), error=_opt(r.error))
                    for r in frame.itertuples()]
        except (TypeError, ValueError) as err:
            raise HivemindError(f"{responses_path}: a value of the wrong type ({err})") from None
        store.add_responses(rows)
        vectors_path = folder / "embeddings.parquet"
        if vectors_path.is_file():
            import numpy as np

            vectors = _read_parquet(vectors_path, ["text_hash", "vector"])
            try:
                matrix = np.vstack(vectors["vector"].to_numpy()).astype(np.float32) if len(vectors) else None
            except (TypeError, ValueError) as err:
                raise HivemindError(f"{vectors_path}: vectors of unequal length or type ({err})") from None
            if matrix is not None and {"chunks", "tokens"} <= set(vectors.columns) \
                    and vectors[["chunks", "tokens"]].notna().all(axis=None):
                # chunk counts came along: the embed stage will not re-embed these texts
                store.add_chunked_embeddings(base.embedder.id, list(vectors["text_hash"]), matrix,
                                             vectors["chunks"].to_numpy(), vectors["tokens"].to_numpy())
            elif matrix is not None:
                store.add_embeddings(base.embedder.id, list(vectors["text_hash"]), matrix)
    return _build(name, results_dir, prompts, base.systems, base.samples, fill, base=base, provenance=provenance)


def _build(name, results_dir: Path, prompts, systems, samples, fill, base: RunConfig | None,
           provenance: dict | None = None) -> RunConfig:
    """Write the run whole in a staging folder of the results folder's write path (scanned for secrets), then
    rename it into place, so a failed or interrupted import leaves nothing."""
    fields = base.model_dump() if base else {}
    fields.update(name=name, prompts=PROMPTS_FILE, samples=samples, limit=None,
                  systems=[s.model_dump() for s in systems], results_dir=str(results_dir))
    config = RunConfig.model_validate(fields)
    with new_folder(results_dir / name, config=config) as out:    # scanned for the config's key variables too
        staging = out.dir
        out.text(PROMPTS_FILE, "".join(json.dumps({"id": p.id, "prompt": p.text, "category": p.category}) + "\n"
                                       for p in prompts))
        out.text(RUN_CONFIG_NAME, run_config_text(config))
        if provenance is not None:
            out.json(PROVENANCE_FILE, provenance)
        with Store(staging / STORE) as store:
            for s in systems:
                store.add_system(s.identity, s.name, s.model, s.api_base, s.params)
            store.add_prompts(prompts)
            fill(store)
    return config


def _opt(value):
    import pandas as pd

    return None if value is None or (not isinstance(value, str) and pd.isna(value)) else value


def _int(value):
    value = _opt(value)
    return None if value is None else int(value)


# Scores ---------------------------------------------------------------------------------------------
# `hivemind import --scores FILE --name RUN --scorer NAME`: quality scores computed elsewhere, for answers
# already in the run. Two formats, told apart per line:
# - plain JSONL: {prompt_id | prompt, system, sample, score} (system: the system's name in the run;
#   prompt: the prompt text when the id is not known);
# - NoveltyBench `scores.jsonl` (src/score.py, Zhang et al. 2025): {id, prompt, model, generations,
#   partition, generation_scores, partition_scores, ...}: one line per (model, prompt), generation i is
#   sample i. NoveltyBench scores each equivalence class once, on its first generation (a 1-10 reward
#   decile), and writes 0 in generation_scores for the later members of a class: 0 is "no credit for a
#   repeat", not a quality. Those generations get their class's score (partition_scores[partition[i]], or
#   without partition_scores the score of the class's first generation), and the raw column says so.
# Every line is checked before anything is stored: one unknown answer and nothing is imported.

@dataclass
class ScoresImport:
    scorer: str
    stored: int
    inherited: int = 0     # NoveltyBench repeats scored with their class's score


def import_scores(path: str | Path, config: RunConfig, scorer: str, pass_at: float | None = None,
                  wait: bool = False) -> ScoresImport:
    """Store a scores file's scores for run `config` as scorer `scorer`, under the run lock."""
    from hivemind.results.folder import run_locked

    with run_locked(config, "import scores", wait):
        return _import_scores(path, config, scorer, pass_at)


def _import_scores(path: str | Path, config: RunConfig, scorer: str, pass_at: float | None) -> ScoresImport:
    from hivemind.core.config import Scorer

    path = Path(path)
    if not path.is_file():
        raise HivemindError(f"{path}: file not found")
    existing = next((s for s in config.scorers if s.name == scorer), None)
    if existing is not None and existing.kind != "imported":
        raise HivemindError(f"scorer {scorer!r} of run {config.name!r} is a {existing.kind} scorer, computed by "
                            f"`hivemind score`; import under another --scorer name (nothing was changed)")
    with Store(config.store_path, create=False) as store:
        index = _AnswerIndex(config, store)
        scores, inherited = _read_scores(path, index, scorer)
        if not scores:
            raise HivemindError(f"{path}: no scores in the file (nothing was changed)")
        store.add_scores(scores)   # one transaction
    if existing is None:
        config.scorers.append(Scorer(name=scorer, kind="imported", pass_at=pass_at))
    elif pass_at is not None:
        existing.pass_at = pass_at
    save_run_config(config)
    return ScoresImport(scorer, len(scores), inherited)


class _AnswerIndex:
    """Resolves (prompt, system, sample) as written in a scores file to a stored answer."""

    def __init__(self, config: RunConfig, store: Store):
        self.texts = store.answer_texts([s.identity for s in config.systems])
        prompts = store.prompts()
        self.prompt_ids = {p.id for p in prompts}
        self.by_text: dict[str, list[str]] = defaultdict(list)   # one text may be stored under several ids
        for p in prompts:
            self.by_text[p.text.strip()].append(p.id)
        self.systems = {s.name: s.identity for s in config.systems}
        self.run = config.name

    def prompt(self, record: dict, where, id_field: str) -> str | None:
        """The stored prompt id: the record's id when the run has it, else the one prompt with its text. A text
        stored under two ids is ambiguous: refused, naming both, rather than given to either."""
        value = record.get(id_field)
        if isinstance(value, (str, int)) and str(value) in self.prompt_ids:
            return str(value)
        text = record.get("prompt")
        if isinstance(text, str):
            ids = self.by_text.get(text.strip(), [])
            if len(ids) > 1:
                raise HivemindError(f"{where}: the prompt text {text.strip()[:40]!r} is stored under {len(ids)} ids "
                                    f"({', '.join(ids)}) in run {self.run!r}; give the prompt's id in field "
                                    f"{id_field} (nothing was imported)")
            return ids[0] if ids else None
        if value is None:
            raise HivemindError(f"{where}: missing field {id_field} (or prompt, the prompt text)")
        return None

    def system(self, name) -> str | None:
        return self.systems.get(str(name))


def _read_scores(path: Path, index: _AnswerIndex, scorer: str) -> tuple[list[Score], int]:
    scores: dict[tuple[str, str, int], Score] = {}
    unknown: list[str] = []
    inherited = 0
    for where, record in read_records(path, "scores file", "scores"):
        if "generations" in record:
            rows, missing, repeats = _noveltybench_scores(record, where, index, scorer)
            inherited += repeats
        else:
            rows, missing = _plain_score(record, where, index, scorer)
        unknown += missing
        for row in rows:
            key = (row.system_id, row.prompt_id, row.sample)
            if key in scores:
                raise HivemindError(f"{where}: a second score for system {row.system_id}, prompt {row.prompt_id}, "
                                    f"sample {row.sample} (nothing was imported)")
            scores[key] = row
    if unknown:
        raise HivemindError(f"{path}: {len(unknown)} score(s) are for answers not in run {index.run!r}, e.g. "
                            f"{'; '.join(unknown[:3])}. Nothing was imported: import the answers first, or fix "
                            f"the names (system = the system's name in the run)")
    return list(scores.values()), inherited


def _number(value, where, name: str) -> float:
    import math

    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise HivemindError(f"{where}: {name} must be a finite number, got {value!r} (nothing was imported)")
    return float(value)


def _plain_score(record: dict, where, index: _AnswerIndex, scorer: str):
    missing = [f for f in ("system", "sample", "score") if f not in record]
    if missing:
        raise HivemindError(f"{where}: missing field(s) {', '.join(missing)}; a scores line is "
                            f"{{prompt_id, system, sample, score}} or NoveltyBench's scores.jsonl (nothing was imported)")
    sample = record["sample"]
    if isinstance(sample, bool) or not isinstance(sample, int) or sample < 0:
        raise HivemindError(f"{where}: sample must be a whole number >= 0, got {sample!r} (nothing was imported)")
    value = _number(record["score"], where, "score")
    prompt, system = index.prompt(record, where, "prompt_id"), index.system(record["system"])
    key = (system, prompt, sample)
    if prompt is None or system is None or key not in index.texts:
        label = record.get("prompt_id", str(record.get("prompt", ""))[:40])
        return [], [f"{where.unit} {where.number}: system {record['system']!r}, prompt {label!r}, sample {sample}"]
    return [Score(system, prompt, sample, scorer, value, raw=json.dumps({"imported": True}))], []


def _noveltybench_scores(record: dict, where, index: _AnswerIndex, scorer: str):
    _fields(record, where, "prompt", "model", "generations")
    generations = _texts(record["generations"], where, "generations")
    values = record.get("generation_scores")
    if not isinstance(values, list) or len(values) != len(generations):
        raise HivemindError(f"{where}: generation_scores must be a list with one score per generation "
                            f"(is this NoveltyBench's scores.jsonl, not generations.jsonl?)")
    partition = record.get("partition")
    class_scores = _class_scores(partition, record.get("partition_scores"), values)
    prompt, system = index.prompt(record, where, "id"), index.system(record["model"])
    rows, unknown, repeats = [], [], 0
    for sample, (text, value) in enumerate(zip(generations, values)):
        key = (system, prompt, sample)
        if prompt is None or system is None or key not in index.texts:
            unknown.append(f"{where.unit} {where.number}: model {record['model']!r}, prompt "
                           f"{str(record.get('id', record['prompt']))[:40]!r}, generation {sample}")
            continue
        if index.texts[key] != text:
            raise HivemindError(f"{where}: generation {sample} differs from the stored answer of {record['model']!r} "
                                f"to this prompt (sample {sample}); were these scores made for other generations? "
                                f"(nothing was imported)")
        value = _number(value, where, f"generation_scores[{sample}]")
        raw = {"imported": "noveltybench"}
        cls = partition[sample] if isinstance(partition, list) and sample < len(partition) else None
        if value == 0 and isinstance(cls, int) and cls in class_scores:
            value = _number(class_scores[cls], where, f"the score of class {cls}")
            raw = {"imported": "noveltybench", "repeat_of_class": cls, "score_of": "the class's first generation"}
            repeats += 1
        rows.append(Score(system, prompt, sample, scorer, value, raw=json.dumps(raw)))
    return rows, unknown, repeats


def _class_scores(partition, listed, values: list) -> dict:
    """class -> its score: `partition_scores` where the line has it, else the score of the class's first
    generation (the lines of NoveltyBench's published evaluation may carry partition and generation_scores only)."""
    if isinstance(listed, list):
        return dict(enumerate(listed))
    if not isinstance(partition, list):
        return {}
    out: dict = {}
    for cls, value in zip(partition, values):
        if isinstance(cls, int) and not isinstance(cls, bool):
            out.setdefault(cls, value)
    return out
