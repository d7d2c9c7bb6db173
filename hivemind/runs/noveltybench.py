"""NoveltyBench interoperability (Zhang et al. 2025, github.com/novelty-bench/novelty-bench): its partitions in,
its evaluation layout out, so a run can be measured by NoveltyBench's own classes and read by its own tools.

- `hivemind import --partitions FILE --name RUN`: NoveltyBench's `partitions.jsonl` (src/partition.py: one line
  per (model, prompt), {id, prompt, model, generations, partition, distinct}; its scores.jsonl carries the same
  fields and reads the same) for a run that already holds those generations (`hivemind import` of its
  generations.jsonl). Each line is matched to the stored answers: system by model name, prompt by id or text,
  generation i = sample i, its text checked against the stored answer. The partition becomes pair verdicts
  under method "imported", for exactly the pairs NoveltyBench's greedy partition compares (each answer against
  the first member of every earlier class until its own; same = labels equal), so analysis, walking the same
  greedy partition over the stored verdicts, rebuilds NoveltyBench's classes. The import sets the run's
  `equivalence: imported` in its config.yaml, so analysis uses them.
- `hivemind export noveltybench RUN`: per system `<out>/<model>/` with NoveltyBench's files: generations.jsonl,
  partitions.jsonl (the analysed run's partitions.csv), scores.jsonl (generation_scores from one 1-10 scorer of
  the run: a class's first answer earns its score, a repeat 0, as src/score.py writes them; partition_scores;
  utility with patience 0.8) and summary.json (src/summarize.py: mean_distinct, mean_utility).
"""
from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hivemind.analyze.diversity import PATIENCE, utility
from hivemind.analyze.equivalence import greedy_partition
from hivemind.core.config import Equivalence, RunConfig
from hivemind.core.errors import HivemindError
from hivemind.core.readers import read_records
from hivemind.results.folder import run_locked
from hivemind.results.record import save_run_config
from hivemind.runs.imports import _AnswerIndex, _fields, _texts
from hivemind.store import Store, Verdict

METHOD = "imported"                       # Equivalence(method="imported").verdict_method
VERDICT_RAW = json.dumps({"imported": "noveltybench partition"})
EXPORT_DIR = "noveltybench"               # default --out: the run folder's noveltybench/
PARTITIONS_CSV = "partitions.csv"         # the analysed run's classes: system, prompt_id, sample, class
NO_SCORER = "none"                        # --scorer none: export without scores
SCALE = (1.0, 10.0)                       # NoveltyBench's reward deciles


# Import ---------------------------------------------------------------------------------------------------

@dataclass
class PartitionsImport:
    cells: int              # (system, prompt) answer sets given NoveltyBench's partition
    verdicts: int           # pair verdicts stored
    cells_in_run: int       # answer sets of the run with a real answer
    previous: str           # the run's equivalence method before the import
    repeated_lines: int = 0  # lines repeating an earlier line's partition, skipped
    unpartitioned: int = 0  # answer sets of the run still without a partition (this or an earlier import)


@dataclass
class _Cell:
    labels: list[int]
    where: str


def import_partitions(path: str | Path, config: RunConfig, wait: bool = False) -> PartitionsImport:
    """Store a partitions file's classes as "imported" verdicts for run `config` and switch the run to
    `equivalence: imported`, under the run lock. Every line is checked before anything is stored."""
    with run_locked(config, "import partitions", wait):
        return _import_partitions(Path(path), config)


def _import_partitions(path: Path, config: RunConfig) -> PartitionsImport:
    if not path.is_file():
        raise HivemindError(f"{path}: file not found")
    with Store(config.store_path, create=False) as store:
        index = _AnswerIndex(config, store)
        cells, repeated = _read_partitions(path, index)
        if not cells:
            raise HivemindError(f"{path}: no partitions in the file (nothing was changed)")
        verdicts = [v for (system, prompt), cell in cells.items()
                    for v in cell_verdicts(system, prompt, cell.labels, index.texts)]
        store.add_verdicts(verdicts)
        partitioned = set(store.verdicts(METHOD, [s.identity for s in config.systems]))
    real: dict[tuple[str, str], int] = defaultdict(int)
    for (system, prompt, _), text in index.texts.items():
        real[(system, prompt)] += bool(text.strip())
    # a set with one real answer compares no pair: it needs no verdict
    unpartitioned = sum(1 for cell, n in real.items() if n > 1 and cell not in partitioned and cell not in cells)
    previous = config.equivalence.method
    if previous != METHOD:
        config.equivalence = Equivalence(method=METHOD)
        save_run_config(config)
    return PartitionsImport(len(cells), len(verdicts), sum(1 for n in real.values() if n), previous,
                            repeated, unpartitioned)


def _read_partitions(path: Path, index: _AnswerIndex) -> tuple[dict[tuple[str, str], _Cell], int]:
    """(system id, prompt id) -> its partition, every line checked; unknown answers refused all together."""
    samples: dict[tuple[str, str], set[int]] = defaultdict(set)
    for system, prompt, sample in index.texts:
        samples[(system, prompt)].add(sample)
    cells: dict[tuple[str, str], _Cell] = {}
    unknown: list[str] = []
    repeated = 0
    for where, record in read_records(path, "partitions file", "partitions"):
        _fields(record, where, "prompt", "model", "generations")
        generations = _texts(record["generations"], where, "generations")
        labels = _labels(record.get("partition"), len(generations), where)
        prompt, system = index.prompt(record, where, "id"), index.system(record["model"])
        if prompt is None or system is None:
            label = str(record.get("id", record["prompt"]))[:40]
            unknown.append(f"{where}: model {record['model']!r}, prompt {label!r}")
            continue
        _check_texts(generations, samples[(system, prompt)], index.texts, (system, prompt), record["model"], where)
        first = cells.get((system, prompt))
        if first is not None:
            if first.labels != labels:
                raise HivemindError(f"{where}: a second, different partition of model {record['model']!r}'s answers "
                                    f"to this prompt (first at {first.where}); nothing was imported")
            repeated += 1
            continue
        cells[(system, prompt)] = _Cell(labels, str(where))
    if unknown:
        raise HivemindError(f"{path}: {len(unknown)} line(s) are for answers not in run {index.run!r}, e.g. "
                            f"{'; '.join(unknown[:3])}. Nothing was imported: import the generations first "
                            f"(`hivemind import FILE --name RUN`), model = the system's name in the run")
    return cells, repeated


def _labels(value, n: int, where) -> list[int]:
    if (not isinstance(value, list) or len(value) != n
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)):
        raise HivemindError(f"{where}: partition must be a list of class numbers (whole numbers >= 0), one per "
                            f"generation; is this NoveltyBench's partitions.jsonl? (nothing was imported)")
    return list(value)


def _check_texts(generations: list[str], stored: set[int], texts: dict, cell: tuple[str, str], model: str,
                 where) -> None:
    """The line's generations are the run's answers to this prompt, all of them, sample by sample."""
    if stored != set(range(len(generations))):
        raise HivemindError(f"{where}: {len(generations)} generations, but run has answers {sorted(stored)} of model "
                            f"{model!r} to this prompt; a partition must cover exactly the stored answers "
                            f"(nothing was imported)")
    for sample, text in enumerate(generations):
        if texts[(*cell, sample)] != text:
            raise HivemindError(f"{where}: generation {sample} differs from the stored answer of {model!r} to this "
                                f"prompt (sample {sample}); was this partition made for other generations? "
                                f"(nothing was imported)")


def cell_verdicts(system: str, prompt: str, labels: list[int], texts: dict) -> list[Verdict]:
    """The verdicts of one answer set: NoveltyBench's greedy partition walked over the real (non-blank) answers
    in sample order, as analysis walks it, asking "same?" of exactly the pairs it compares; the answer is
    whether NoveltyBench gave the two the same class."""
    real = [s for s in range(len(labels)) if texts[(system, prompt, s)].strip()]
    verdicts: list[Verdict] = []

    def same(i: int, later: np.ndarray) -> np.ndarray:
        out = np.array([labels[real[i]] == labels[real[j]] for j in later], dtype=bool)
        verdicts.extend(Verdict(system, prompt, real[i], real[int(j)], METHOD, bool(o), raw=VERDICT_RAW)
                        for j, o in zip(later, out))
        return out
    greedy_partition(len(real), same)
    return verdicts


def partitions_text(result: PartitionsImport, run: str) -> str:
    """The CLI's report of an import of partitions."""
    switched = (f"; run's equivalence set to imported in its config.yaml (was {result.previous})"
                if result.previous != METHOD else "")
    lines = [f"imported NoveltyBench's partition of {result.cells} of {result.cells_in_run} answer sets "
             f"({result.verdicts} pair verdicts, method imported) into run {run!r}{switched}"]
    if result.repeated_lines:
        lines.append(f"{result.repeated_lines} line(s) repeating an earlier line's partition skipped")
    if result.unpartitioned:
        lines.append(f"{result.unpartitioned} answer sets of the run have no partition yet: analysis needs one for "
                     f"each (import their partitions too)")
    lines.append(f"next: hivemind embed {run} && hivemind analyze {run}")
    return "\n".join(lines)


# Export ---------------------------------------------------------------------------------------------------

@dataclass
class NoveltyBenchExport:
    folder: Path
    models: list[str] = field(default_factory=list)
    scorer: str | None = None
    files: list[Path] = field(default_factory=list)


@dataclass
class _Answers:
    """One system's answers to one prompt, in sample order, with the analysed run's classes."""
    samples: list[int]
    texts: list[str]
    labels: list[int]


def export_noveltybench(config: RunConfig, out: str | Path | None = None, scorer: str | None = None,
                        wait: bool = False) -> NoveltyBenchExport:
    """Write NoveltyBench's evaluation files per system into `out` (default RUN_DIR/noveltybench), under the run
    lock, through the results folder's write path (staged, scanned for secrets, renamed into place).
    `scorer`: the 1-10 scorer whose scores become generation_scores; absent, the run's only scorer; "none"
    (or a run without scorers): no scores.jsonl, and summary.json has mean_distinct alone."""
    with run_locked(config, "export", wait):
        return _export(config, out, scorer)


def _export(config: RunConfig, out: str | Path | None, scorer_name: str | None) -> NoveltyBenchExport:
    from hivemind.results.folder import writing

    if not config.store_path.is_file():
        raise HivemindError(f"{config.store_path}: no store for run {config.name!r}; collect or import it first")
    classes = _read_classes(config)
    scorer = _choose_scorer(config, scorer_name)
    ids = [s.identity for s in config.systems]
    with Store.open_readonly(config.store_path) as store:
        prompts = store.prompts()
        texts = store.answer_texts(ids)
        scores = _scores(store.scores_frame(ids), scorer)
    by_cell: dict[tuple[str, str], list[int]] = defaultdict(list)
    for system, prompt, sample in sorted(texts):
        by_cell[(system, prompt)].append(sample)
    result = NoveltyBenchExport(Path(out) if out is not None else config.run_dir / EXPORT_DIR, scorer=scorer)
    folders = _folder_names([s.name for s in config.systems])
    with writing(result.folder, "export", config=config) as staged:
        for system in config.systems:
            lines = []
            for prompt in prompts:
                samples = by_cell.get((system.identity, prompt.id))
                if samples:
                    answers = _answers(config, system, prompt.id, samples, texts, classes)
                    lines.append(_line(system, prompt, answers, scores if scorer else None, scorer))
            if lines:
                _write_model(staged, folders[system.name], lines, scorer is not None)
                result.models.append(system.name)
    if not result.models:
        raise HivemindError(f"run {config.name!r} has no answers to export")
    result.files = staged.written
    return result


def _read_classes(config: RunConfig) -> dict[tuple[str, str], dict[int, int]]:
    """(system name, prompt id) -> sample -> class, from the analysed run's partitions.csv."""
    import pandas as pd

    path = config.run_dir / PARTITIONS_CSV
    if not path.is_file():
        raise HivemindError(f"{path}: missing; run `hivemind analyze {config.name}` first (the export takes "
                            f"NoveltyBench's partition from the analysed run's classes)")
    try:
        frame = pd.read_csv(path, dtype={"system": str, "prompt_id": str})
    except (OSError, ValueError) as err:
        raise HivemindError(f"{path}: not a readable CSV ({' '.join(str(err).split())[:200]})") from None
    missing = [c for c in ("system", "prompt_id", "sample", "class") if c not in frame.columns]
    if missing:
        raise HivemindError(f"{path}: missing column(s) {', '.join(missing)}; re-run `hivemind analyze {config.name}`")
    out: dict[tuple[str, str], dict[int, int]] = defaultdict(dict)
    for system, prompt, sample, label in zip(frame["system"], frame["prompt_id"], frame["sample"], frame["class"]):
        out[(system, prompt)][int(sample)] = int(label)
    return out


NOT_A_RATING = ("fluency", "relevance", "perplexity")


def _choose_scorer(config: RunConfig, name: str | None) -> str | None:
    names = [s.name for s in config.scorers]
    if name == NO_SCORER:
        return None
    if name is not None:
        if name not in names:
            raise HivemindError(f"run {config.name!r} has no scorer {name!r} (its scorers: {', '.join(names) or 'none'}"
                                f"); name one with --scorer, or --scorer none to export without scores")
        return name
    # fluency, relevance and perplexity never score on a 1-10 scale: only the others can be NoveltyBench's scores
    scales = [s.name for s in config.scorers if s.kind not in NOT_A_RATING]
    if len(scales) > 1:
        raise HivemindError(f"run {config.name!r} has scorers {', '.join(scales)}: name the 1-10 one NoveltyBench's "
                            f"generation_scores come from with --scorer (or --scorer none)")
    return scales[0] if scales else None


def _scores(frame, scorer: str | None) -> dict[tuple[str, str, int], float]:
    if scorer is None or frame.empty:
        return {}
    rows = frame[frame["scorer"] == scorer]
    return {(r.system_id, str(r.prompt_id), int(r.sample)): float(r.score) for r in rows.itertuples()
            if r.score is not None and not math.isnan(r.score)}


def _answers(config, system, prompt_id: str, samples: list[int], texts: dict, classes: dict) -> _Answers:
    cell = classes.get((system.name, prompt_id), {})
    missing = [s for s in samples if s not in cell]
    if missing:
        raise HivemindError(f"{config.run_dir / PARTITIONS_CSV}: no class for system {system.name!r}, prompt "
                            f"{prompt_id}, sample {missing[0]}; re-run `hivemind analyze {config.name}` "
                            f"(nothing was exported)")
    return _Answers(samples, [texts[(system.identity, prompt_id, s)] for s in samples],
                    canonical([cell[s] for s in samples]))


def canonical(labels: list[int]) -> list[int]:
    """Classes renumbered in order of first appearance, as NoveltyBench numbers them (a blank answer's own class,
    numbered after the real ones in partitions.csv, takes its place in sample order)."""
    order: dict[int, int] = {}
    return [order.setdefault(label, len(order)) for label in labels]


def _line(system, prompt, answers: _Answers, scores: dict | None, scorer: str | None) -> dict:
    line = {"id": prompt.id, "prompt": prompt.text, "model": system.name, "generations": answers.texts,
            "partition": answers.labels, "distinct": max(answers.labels)}   # src/partition.py writes max, not +1
    if scores is None:
        return line
    generation_scores, partition_scores = [], []
    for sample, text, label in zip(answers.samples, answers.texts, answers.labels):
        if label < len(partition_scores):
            generation_scores.append(0)              # a repeat earns nothing (src/score.py)
            continue
        value = _score(scores, system, prompt.id, sample, text, scorer)
        generation_scores.append(value)
        partition_scores.append(value)
    line.update(generation_scores=generation_scores, partition_scores=partition_scores,
                utility=utility(np.array(answers.labels), np.array(generation_scores, dtype=np.float64), PATIENCE))
    return line


def _score(scores: dict, system, prompt_id: str, sample: int, text: str, scorer: str):
    """A class opener's score on NoveltyBench's 1-10 scale; a blank answer earns 0 (it fails hivemind's gate and
    is never scored)."""
    if not text.strip():
        return 0
    value = scores.get((system.identity, prompt_id, sample))
    if value is None:
        raise HivemindError(f"scorer {scorer!r} has no score for system {system.name!r}, prompt {prompt_id}, sample "
                            f"{sample}; run `hivemind score`, or export with --scorer none (nothing was exported)")
    if not SCALE[0] <= value <= SCALE[1]:
        raise HivemindError(f"scorer {scorer!r} gave {value:g} to system {system.name!r}, prompt {prompt_id}, sample "
                            f"{sample}: outside NoveltyBench's 1-10 scale; export with a 1-10 scorer or --scorer none "
                            f"(nothing was exported)")
    return int(value) if value.is_integer() else value


def _folder_names(names: list[str]) -> dict[str, str]:
    """A folder per system, its name with path-unsafe characters replaced; two systems on one folder refused."""
    folders = {name: re.sub(r"[^A-Za-z0-9._@+-]+", "_", name) for name in names}
    taken: dict[str, str] = {}
    for name, folder in folders.items():
        if folder in taken:
            raise HivemindError(f"systems {taken[folder]!r} and {name!r} would share the export folder {folder!r}; "
                                f"rename one in the run (nothing was exported)")
        taken[folder] = name
    return folders


def _write_model(staged, folder: str, lines: list[dict], with_scores: bool) -> None:
    def jsonl(records) -> str:
        return "".join(json.dumps(r) + "\n" for r in records)
    base = ("id", "prompt", "model", "generations")
    staged.text(f"{folder}/generations.jsonl", jsonl({k: r[k] for k in base} for r in lines))
    staged.text(f"{folder}/partitions.jsonl", jsonl({k: r[k] for k in (*base, "partition", "distinct")}
                                                    for r in lines))
    summary = {"mean_distinct": float(np.mean([max(r["partition"]) + 1 for r in lines]))}
    if with_scores:
        staged.text(f"{folder}/scores.jsonl", jsonl(lines))
        summary["mean_utility"] = float(np.mean([r["utility"] for r in lines]))
    staged.json(f"{folder}/summary.json", summary)
