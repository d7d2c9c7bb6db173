"""The learned partitions made in a second process while the first pass runs (hivemind.analyze.partitions):
the same classes, counts and tables as partitioning in the diversity pass, and no worker left behind."""
from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from hivemind.analyze.diversity import DiversityAccumulator
from hivemind.analyze.equivalence import LearnedEquivalence, shipped_model
from hivemind.analyze.partitions import KnownPartitions, PartitionsAhead, failed_answers
from hivemind.analyze.passes import local_passes
from hivemind.analyze.stage import analyze_run
from hivemind.core.config_files import resolve_run
from hivemind.embed.stage import embed_run
from hivemind.runs.imports import import_files, import_scores
from hivemind.store import Store

NOVELTYBENCH = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "noveltybench_dev"
pytestmark = pytest.mark.skipif(not NOVELTYBENCH.is_dir(), reason=f"{NOVELTYBENCH} not present")
MODELS = ["openai__gpt-4o-mini-2024-07-18", "google__gemma-2-9b-it", "cohere__command-r-08-2024"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """3 NoveltyBench models x 5 prompts x 10 samples, one answer blank, embedded with the bundled MiniLM (so
    the default equivalence is the learned one)."""
    folder = tmp_path_factory.mktemp("ahead")
    files = []
    for k, model in enumerate(MODELS):
        records = [json.loads(line) for line in (NOVELTYBENCH / f"{model}.jsonl").read_text().splitlines()[:5]]
        if k == 1:
            records[2]["generations"][3] = "   "
        path = folder / f"{model}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
        files.append(path)
    config = import_files(files, "nb", results_dir=folder / "results")
    for path in files:
        import_scores(path, config, "reward")
    config = resolve_run("nb", results_dir=folder / "results")
    embed_run(config, progress=False)
    return config


def in_process(config, ids, equivalence):
    with Store.open_readonly(config.store_path) as store:
        acc = DiversityAccumulator(len(ids), len(ids), equivalence=equivalence, system_ids=ids,
                                   prompt_texts={p.id: p.text for p in store.prompts()})
        for group in store.iter_answer_groups(config.embedder.id, ids):
            failed = failed_answers(group)
            acc.add(group, ~failed, failed)
    return acc.finish()


def test_the_workers_partitions_are_the_diversity_pass_own(run):
    ids = [s.identity for s in run.systems]
    learned = LearnedEquivalence(shipped_model())
    with Store.open_readonly(run.store_path) as store:
        with PartitionsAhead.start(store, run.embedder.id, ids, len(ids), learned, force=True) as ahead:
            known = ahead.known(learned)
    assert isinstance(known, KnownPartitions) and known.id == learned.id
    here = in_process(run, ids, learned)
    replayed = in_process(run, ids, known)
    assert here.labels == replayed.labels and len(here.labels) == 150
    assert here.failed.sum() == 1                                   # the blank answer: a failure, in no real class
    for name in ("distinct_ideas", "utility"):
        np.testing.assert_array_equal(here.cells[name], replayed.cells[name])
    np.testing.assert_array_equal(here.pooled["pooled_distinct_ideas"], replayed.pooled["pooled_distinct_ideas"])
    assert replayed.equivalence == here.equivalence


def test_another_method_or_no_worker_partitions_in_process(run):
    ids = [s.identity for s in run.systems]
    learned, stricter = LearnedEquivalence(shipped_model()), LearnedEquivalence(shipped_model(), 0.9)
    with Store.open_readonly(run.store_path) as store:
        assert PartitionsAhead.start(store, run.embedder.id, ids, len(ids), learned).known(learned) is learned
        with PartitionsAhead.start(store, run.embedder.id, ids, len(ids), learned, force=True) as ahead:
            assert ahead.known(stricter) is stricter      # made with another line: not used


def test_leaving_early_stops_the_worker(run):
    ids = [s.identity for s in run.systems]
    learned = LearnedEquivalence(shipped_model())
    with Store.open_readonly(run.store_path) as store, pytest.raises(KeyboardInterrupt):
        with PartitionsAhead.start(store, run.embedder.id, ids, len(ids), learned, force=True) as ahead:
            processes = list(ahead.pool._processes.values())
            raise KeyboardInterrupt
    assert processes and not any(p.is_alive() for p in processes)


def test_analysis_writes_the_same_tables_with_and_without_the_worker(run, tmp_path):
    written = {}
    for ahead in (False, True):
        analyze_run(run, progress=False, passes=partial(local_passes, partitions_ahead=ahead))
        written[ahead] = {p.name: p.read_bytes() for p in sorted(Path(run.run_dir).glob("*.csv"))}
        info = json.loads((Path(run.run_dir) / "analysis.json").read_text())
        written[ahead]["equivalence"] = info["equivalence"]
    assert written[True] == written[False]
    assert "partitions.csv" in written[True] and written[True]["equivalence"]["id"].startswith("learned:")
