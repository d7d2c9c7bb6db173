"""Import: make a run from generations that already exist, without collecting.

Formats:
- AlpacaEval `model_outputs.json`: a JSON list of {instruction, output, generator}; one system per generator.
- NoveltyBench `generations.jsonl`: {id, prompt, model, generations: [samples]}.
- Any JSONL, with a field mapping (prompt, response or list of responses, model).
- A snapshot folder (manifest.json + responses.parquet), or one pushed to the Hugging Face Hub
  (`hf://OWNER/NAME@TAG`, downloaded first): its systems, prompts and vectors come back as they
  were, so analysing the import reproduces the snapshot's tables.
Prompts are matched by text across files (their id is a hash of the text).
"""
from __future__ import annotations

import json
import shutil
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from hivemind import HivemindError, hub
from hivemind.results_folder import results_root
from hivemind.config import (RUN_CONFIG_NAME, SYSTEM_NAME_PATTERN, RunConfig, System, check_name, load_config,
                             name_problem, read_text, save_run_config)
from hivemind.prompts import _csv_records, prompt_id, read_jsonl
from hivemind.store import Prompt, Response, Score, Store, now

PROMPTS_FILE = "prompts.jsonl"
PROVENANCE_FILE = "import.json"   # where a run came from, and whether its snapshot was verified


@dataclass
class FieldMapping:
    prompt: str = "prompt"
    response: str = "response"   # a string, or a list of strings (samples)
    model: str = "model"


@dataclass
class Generations:
    """model -> prompt text -> list of sample texts, in the order they were read."""
    by_model: dict[str, dict[str, list[str]]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(list)))
    prompt_order: dict[str, None] = field(default_factory=dict)

    def add(self, model: str, prompt: str, responses: list[str]) -> None:
        self.prompt_order.setdefault(prompt, None)
        self.by_model[model][prompt].extend(responses)


def import_files(files: list[str | Path], name: str, results_dir: str | Path | None = None,
                 mapping: FieldMapping | None = None, verify: bool = True) -> RunConfig:
    """Make run `name` from generation files, or from one snapshot folder (checked against its manifest
    first; verify=False imports a tampered or unverifiable one anyway, with a warning, marked unverified)."""
    files = [f if hub.is_hub_spec(f) else Path(f) for f in files]  # Path() would fold hf:// into hf:/
    if not files:
        raise HivemindError("nothing to import: name at least one file or snapshot folder")
    check_name(name, "run name")
    results_dir = results_root(results_dir)
    target = results_dir / name
    if (target / RUN_CONFIG_NAME).exists() or (target / "store.sqlite").exists():
        raise HivemindError(f"run {name!r} already exists in {target}; choose another --name "
                            f"(nothing was changed)")
    files = [hub.fetch(f) if hub.is_hub_spec(f) else f for f in files]  # then the same code as a folder
    snapshots = [f for f in files if f.is_dir()]
    if snapshots:
        if len(files) > 1:
            raise HivemindError("a snapshot folder is imported on its own, not mixed with other files")
        return _import_snapshot(snapshots[0], name, Path(results_dir), verify)
    generations = Generations()
    for path in files:
        _read_file(path, generations, mapping or FieldMapping())
    if not generations.by_model:
        raise HivemindError(f"no generations found in {', '.join(str(f) for f in files)}; nothing was imported")
    return _write_run(generations, name, Path(results_dir))


def _read_file(path: Path, gen: Generations, mapping: FieldMapping) -> None:
    suffix = path.suffix.lower()
    if suffix == ".json":
        for number, record in _json_records(path):
            _alpaca_record(record, gen, f"{path} (record {number})")
        return
    records = _csv_records(path) if suffix == ".csv" else read_jsonl(path)
    for number, record in records:
        where = f"{path}:{number}"
        if "generations" in record:
            _fields(record, where, "prompt", "model", "generations")
            gen.add(record["model"], record["prompt"], _texts(record["generations"], where, "generations"))
        elif "instruction" in record and "generator" in record:
            _alpaca_record(record, gen, where)
        else:
            _fields(record, where, mapping.prompt, mapping.model, mapping.response)
            gen.add(record[mapping.model], record[mapping.prompt],
                    _texts(record[mapping.response], where, mapping.response))


def _json_records(path: Path):
    """(record number, record) of a JSON list; errors are one line naming the file and line."""
    text = read_text(path, "JSON file")
    if not text.strip():
        raise HivemindError(f"{path}: empty file; expected a JSON list of {{instruction, output, generator}} records")
    try:
        records = json.loads(text)
    except json.JSONDecodeError as err:
        raise HivemindError(f"{path}:{err.lineno}: malformed JSON: {err.msg} (column {err.colno})") from None
    except RecursionError:
        raise HivemindError(f"{path}: malformed JSON: nested too deeply") from None
    if not isinstance(records, list):
        raise HivemindError(f"{path}: expected a JSON list of {{instruction, output, generator}} records, "
                            f"found a JSON {type(records).__name__.replace('dict', 'object')}")
    return enumerate(records, start=1)


def _alpaca_record(record, gen: Generations, where: str) -> None:
    _fields(record, where, "instruction", "generator", "output")
    gen.add(record["generator"], record["instruction"], _texts(record["output"], where, "output"))


def _fields(record, where: str, prompt: str, model: str, response: str) -> None:
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
    problem = name_problem(record[model], SYSTEM_NAME_PATTERN)
    if problem:
        raise HivemindError(f"{where}: field {model!r} is not a usable system name: {problem}")


def _texts(value, where: str, field_name: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return list(value)
    raise HivemindError(f"{where}: field {field_name!r} must be a string or a non-empty list of strings")


def _write_run(gen: Generations, name: str, results_dir: Path) -> RunConfig:
    prompts = [Prompt(prompt_id(text), text) for text in gen.prompt_order]
    systems = [System(name=model, model=f"imported/{model}") for model in gen.by_model]
    samples = max(len(v) for per_prompt in gen.by_model.values() for v in per_prompt.values())

    def fill(store: Store) -> None:
        ids = {p.text: p.id for p in prompts}
        for system in systems:
            rows = (Response(system.identity, ids[text], i, text=answer)
                    for text, answers in gen.by_model[system.name].items() for i, answer in enumerate(answers))
            store.add_responses(rows)
    return _build(name, results_dir, prompts, systems, samples, fill, base=None)


def check_snapshot(folder: Path, verify: bool = True) -> dict:
    """Compare the snapshot with its manifest before anything is read from it. A mismatch (a forged answer
    in responses.parquet, a missing or extra file) or a missing manifest refuses the import; verify=False
    goes on with a loud warning. Returns the provenance recorded in the run (import.json)."""
    from hivemind import snapshot

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
    return {"source": str(folder.resolve()), "verified": not problems, "problems": problems,
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


def _import_snapshot(folder: Path, name: str, results_dir: Path, verify: bool = True) -> RunConfig:
    import pandas as pd

    responses_path, config_path = folder / "responses.parquet", folder / RUN_CONFIG_NAME
    for needed in (responses_path, config_path):
        if not needed.is_file():
            raise HivemindError(f"{needed}: missing; is {folder} a hivemind snapshot folder?")
    provenance = check_snapshot(folder, verify)
    base = load_config(config_path)
    frame = _read_parquet(responses_path, RESPONSE_COLUMNS)
    first = frame.drop_duplicates("prompt_id")
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
    """Write the run in a temporary folder and move it into place, so a failed import leaves nothing."""
    results_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.importing-", dir=results_dir))
    try:
        fields = base.model_dump() if base else {}
        fields.update(name=name, prompts=PROMPTS_FILE, samples=samples, limit=None,
                      systems=[s.model_dump() for s in systems], results_dir=str(staging.parent))
        config = RunConfig.model_validate(fields)
        with (staging / PROMPTS_FILE).open("w", encoding="utf-8") as out:
            for p in prompts:
                out.write(json.dumps({"id": p.id, "prompt": p.text, "category": p.category}) + "\n")
        save_run_config(config, staging)
        if provenance is not None:
            (staging / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
        with Store(staging / "store.sqlite") as store:
            for s in systems:
                store.add_system(s.identity, s.name, s.model, s.api_base, s.params)
            store.add_prompts(prompts)
            fill(store)
        final = results_dir / name
        if final.exists() and not any(final.iterdir()):
            final.rmdir()
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    config.results_dir = str(results_dir)
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
#   repeat", not a quality. Those generations get their class's score (partition_scores[partition[i]]),
#   and the raw column says so.
# Every line is checked before anything is stored: one unknown answer and nothing is imported.

@dataclass
class ScoresImport:
    scorer: str
    stored: int
    inherited: int = 0     # NoveltyBench repeats scored with their class's score


def import_scores(path: str | Path, config: RunConfig, scorer: str, pass_at: float | None = None) -> ScoresImport:
    from hivemind.config import Scorer

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
        self.by_text = {p.text.strip(): p.id for p in prompts}
        self.systems = {s.name: s.identity for s in config.systems}
        self.run = config.name

    def prompt(self, record: dict, where: str, id_field: str) -> str | None:
        value = record.get(id_field)
        if isinstance(value, (str, int)) and str(value) in self.prompt_ids:
            return str(value)
        text = record.get("prompt")
        if isinstance(text, str):
            return self.by_text.get(text.strip())
        if value is None:
            raise HivemindError(f"{where}: missing field {id_field} (or prompt, the prompt text)")
        return None

    def system(self, name) -> str | None:
        return self.systems.get(str(name))


def _read_scores(path: Path, index: _AnswerIndex, scorer: str) -> tuple[list[Score], int]:
    scores: dict[tuple[str, str, int], Score] = {}
    unknown: list[str] = []
    inherited = 0
    for number, record in read_jsonl(path):
        where = f"{path}:{number}"
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


def _number(value, where: str, name: str) -> float:
    import math

    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise HivemindError(f"{where}: {name} must be a finite number, got {value!r} (nothing was imported)")
    return float(value)


def _plain_score(record: dict, where: str, index: _AnswerIndex, scorer: str):
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
        return [], [f"line {where.rsplit(':', 1)[1]}: system {record['system']!r}, prompt {label!r}, sample {sample}"]
    return [Score(system, prompt, sample, scorer, value, raw=json.dumps({"imported": True}))], []


def _noveltybench_scores(record: dict, where: str, index: _AnswerIndex, scorer: str):
    _fields(record, where, "prompt", "model", "generations")
    generations = _texts(record["generations"], where, "generations")
    values = record.get("generation_scores")
    if not isinstance(values, list) or len(values) != len(generations):
        raise HivemindError(f"{where}: generation_scores must be a list with one score per generation "
                            f"(is this NoveltyBench's scores.jsonl, not generations.jsonl?)")
    partition, class_scores = record.get("partition"), record.get("partition_scores")
    prompt, system = index.prompt(record, where, "id"), index.system(record["model"])
    rows, unknown, repeats = [], [], 0
    for sample, (text, value) in enumerate(zip(generations, values)):
        key = (system, prompt, sample)
        if prompt is None or system is None or key not in index.texts:
            unknown.append(f"line {where.rsplit(':', 1)[1]}: model {record['model']!r}, prompt "
                           f"{str(record.get('id', record['prompt']))[:40]!r}, generation {sample}")
            continue
        if index.texts[key] != text:
            raise HivemindError(f"{where}: generation {sample} differs from the stored answer of {record['model']!r} "
                                f"to this prompt (sample {sample}); were these scores made for other generations? "
                                f"(nothing was imported)")
        value = _number(value, where, f"generation_scores[{sample}]")
        raw = {"imported": "noveltybench"}
        if value == 0 and isinstance(partition, list) and isinstance(class_scores, list) and sample < len(partition):
            cls = partition[sample]
            if isinstance(cls, int) and 0 <= cls < len(class_scores):
                value = _number(class_scores[cls], where, f"partition_scores[{cls}]")
                raw = {"imported": "noveltybench", "repeat_of_class": cls, "score_of": "the class's first generation"}
                repeats += 1
        rows.append(Score(system, prompt, sample, scorer, value, raw=json.dumps(raw)))
    return rows, unknown, repeats
