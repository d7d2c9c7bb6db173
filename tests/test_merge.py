"""hivemind merge: stores collected per system on "several machines" (separate results folders) combined.

Every table of the store's declaration merges (checked table by table, column by column against the union
of two stores that use every table); conflicts are named; sources are only read; the merge runs under the
run lock with signals handled."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from conftest import COLLECT_KEY_VAR
from fake_openai import FakeOpenAI
from hivemind import HivemindError
from hivemind.cli import main as cli_main
from hivemind.collect.stage import collect_run
from hivemind.core.config import Scorer
from hivemind.core.config_files import load_config
from hivemind.results.record import save_run_config
from hivemind.runs.imports import import_files
from hivemind.core.lock import read_holder
from hivemind.runs.merge import merge
from hivemind.score.stage import score_run
from hivemind.store import SCHEMA_VERSION, TABLES, Prompt, Response, Score, Store, Verdict, text_hash
from hivemind.store.schema import TABLE

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).parent / "fixtures" / "store_v0.sqlite"


def table(path, sql: str) -> list[tuple]:
    db = sqlite3.connect(path)
    try:
        return sorted(db.execute(sql).fetchall())
    finally:
        db.close()


RESPONSES = "SELECT system_id, prompt_id, sample, seed, text, text_hash FROM responses"


@pytest.fixture
def shards(fake_server, collect_key, write_config, tmp_path):
    """One config with systems a and b; a collected on 'machine 1', b on 'machine 2', both on 'machine 3'."""
    systems = [("a", "openai/gpt-a", fake_server.url), ("b", "openai/gpt-b", fake_server.url)]
    configs = {}
    for machine in ("m1", "m2", "whole", "target"):
        path = write_config(systems, file_name=f"{machine}.yaml", results_dir=str(tmp_path / machine))
        configs[machine] = load_config(path)
    collect_run(configs["m1"], systems=["a"], progress=False)
    collect_run(configs["m2"], systems=["b"], progress=False)
    collect_run(configs["whole"], progress=False)
    with Store(configs["m1"].store_path, create=False) as store:   # vectors embedded on machine 1 only
        rows = store.texts_to_embed("test:emb", [s.identity for s in configs["m1"].systems])
        store.add_embeddings("test:emb", [h for h, _ in rows], np.eye(len(rows), 4, dtype=np.float32))
    return configs


def test_merge_equals_one_machine_collection_and_is_idempotent(shards):
    target = shards["target"]
    counts = merge(target, [shards["m1"].store_path, shards["m2"].run_dir])
    assert counts.systems == 2 and counts.responses > 0 and counts.embeddings > 0
    merged = table(target.store_path, RESPONSES)
    # The same rows as one machine collecting both systems (the fake server's answers follow the seeds).
    assert merged == table(shards["whole"].store_path, RESPONSES)
    assert table(target.store_path, "SELECT id, text FROM prompts") == table(shards["whole"].store_path,
                                                                            "SELECT id, text FROM prompts")
    vectors = table(target.store_path, "SELECT embedder, text_hash, vector FROM embeddings")
    assert vectors == table(shards["m1"].store_path, "SELECT embedder, text_hash, vector FROM embeddings")
    again = merge(target, [shards["m1"].store_path, shards["m2"].store_path])
    assert set(again.added) == {t.name for t in TABLES} and not any(again.added.values())
    assert not any(again.replaced.values())
    assert table(target.store_path, RESPONSES) == merged


def test_conflicting_sample_is_refused_naming_the_key_and_nothing_is_written(shards, tmp_path, capsys):
    target = shards["target"]
    merge(target, [shards["m1"].store_path])
    before = table(target.store_path, RESPONSES)
    other = tmp_path / "conflict.sqlite"
    shutil.copy(shards["m2"].store_path, other)
    for suffix in ("-wal", "-shm"):
        if (shards["m2"].store_path.parent / (shards["m2"].store_path.name + suffix)).exists():
            shutil.copy(shards["m2"].store_path.parent / (shards["m2"].store_path.name + suffix),
                        tmp_path / ("conflict.sqlite" + suffix))
    db = sqlite3.connect(shards["m1"].store_path)
    system_id, prompt_id, sample = db.execute("SELECT system_id, prompt_id, sample FROM responses "
                                              "ORDER BY prompt_id, sample LIMIT 1").fetchone()
    db.close()
    tampered = sqlite3.connect(other)                # machine 2 also "collected" one of a's samples, differently
    tampered.execute("INSERT INTO responses (system_id, prompt_id, sample, text, text_hash, created_at) "
                     "VALUES (?, ?, ?, 'another answer', 'x', 'now')", (system_id, prompt_id, sample))
    tampered.commit()
    tampered.close()
    with pytest.raises(HivemindError, match=f"prompt {prompt_id!r}, sample {sample}"):
        merge(target, [other])
    assert table(target.store_path, RESPONSES) == before      # nothing of machine 2's store was written
    assert cli_main(["merge", str(tmp_path / "target.yaml"), str(other)]) == 1
    assert f"sample {sample}) has another text" in capsys.readouterr().err
    assert table(target.store_path, RESPONSES) == before
    assert cli_main(["merge", str(tmp_path / "target.yaml"), str(shards["m2"].store_path)]) == 0
    assert table(target.store_path, RESPONSES) == table(shards["whole"].store_path, RESPONSES)


def test_missing_or_foreign_store_is_a_clear_error(shards, tmp_path):
    with pytest.raises(HivemindError, match="no store here"):
        merge(shards["target"], [tmp_path / "nowhere.sqlite"])
    junk = tmp_path / "junk.sqlite"
    junk.write_text("not a database")
    with pytest.raises(HivemindError, match="not an SQLite store"):
        merge(shards["target"], [junk])


# --- every table, from the declaration ---------------------------------------------------------------

def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def user_version(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return db.execute("PRAGMA user_version").fetchone()[0]
    finally:
        db.close()


def keyed_rows(path: Path, table) -> dict[tuple, tuple]:
    """{key: row} of one declared table, the row's columns in declaration order."""
    db = sqlite3.connect(path)
    try:
        rows = db.execute(f"SELECT {', '.join(table.column_names)} FROM {table.name}").fetchall()
    finally:
        db.close()
    at = [table.column_names.index(k) for k in table.key]
    return {tuple(row[i] for i in at): row for row in rows}


def contents(path: Path) -> dict[str, dict]:
    return {t.name: keyed_rows(path, t) for t in TABLES}


def union(first: Path, second: Path) -> dict[str, dict]:
    """What merging `second` into `first` must give, from the declaration alone: `first`'s rows, plus the
    keys only `second` has, with a failure of `first` (its `real` column NULL) replaced by `second`'s real row."""
    out = {}
    for table in TABLES:
        rows = dict(keyed_rows(first, table))
        real = table.column_names.index(table.merge.real) if table.merge.real else None
        for key, row in keyed_rows(second, table).items():
            if key not in rows or (real is not None and rows[key][real] is None and row[real] is not None):
                rows[key] = row
        out[table.name] = rows
    return out


def without_order(tables: dict[str, dict]) -> dict[str, dict]:
    """The renumbered order columns (prompt positions) left out: they are compared as an order instead."""
    out = {}
    for table in TABLES:
        drop = table.column_names.index(table.merge.renumber) if table.merge.renumber else None
        out[table.name] = {k: tuple(v for i, v in enumerate(row) if i != drop) for k, row in tables[table.name].items()}
    return out


def fill(path: Path, systems, prompts, responses, scores, reasoning, labels, vector_seed: int, verdicts=()) -> None:
    """A store using every table: the embeddings (with chunk counts) are those of its answers' texts."""
    with Store(path) as store:
        for sid in systems:
            store.add_system(sid, sid.upper(), f"openai/{sid}", None, {"temperature": 1.0})
        store.add_prompts([Prompt(pid, text) for pid, text in prompts])
        for sid, pid, sample, text, cost in responses:
            error = None if text is not None else "400 Bad Request: refused"
            store.add_response(Response(sid, pid, sample, text, seed=sample, cost=cost, error=error))
        hashes = sorted({text_hash(text) for *_, text, _ in responses if text is not None})
        vectors = np.random.default_rng(vector_seed).random((len(hashes), 4), dtype=np.float32)
        store.add_chunked_embeddings("emb", hashes, vectors, np.arange(1, len(hashes) + 1), np.full(len(hashes), 50))
        store.add_scores([Score(sid, pid, n, scorer, value, raw=str(value), cost=cost,
                                error=None if value is not None else "unparseable reply")
                          for sid, pid, n, scorer, value, cost in scores])
        for sid, pid, n, text in reasoning:
            store.add_reasoning(sid, pid, n, text)
        for pid, label in labels:
            store.add_prompt_label(pid, "clf", label, label or "???", None if label else "no label")
        store.add_verdicts([Verdict(sid, pid, a, b, "judge:j", same, raw=str(same), cost=cost,
                                    error=None if same is not None else "unreadable")
                            for sid, pid, a, b, same, cost in verdicts])


@pytest.fixture
def every_table(tmp_path) -> tuple[Path, Path]:
    """Two stores that use every table with overlapping and disjoint keys: same rows, failures in one that the
    other answered (a request, a judge's score, a classifier's label), and the other way round."""
    a, b = tmp_path / "a.sqlite", tmp_path / "b.sqlite"
    fill(a, systems=["s1", "s2"], prompts=[("p1", "Name a colour."), ("p2", "Tell a joke.")],
         responses=[("s1", "p1", 0, "red", 0.01), ("s2", "p2", 0, "a joke", 0.02), ("s2", "p2", 1, None, None),
                    ("s2", "p1", 0, "blue", 0.01)],
         scores=[("s1", "p1", 0, "judge", 5.0, 0.01), ("s2", "p2", 0, "judge", None, 0.02),
                 ("s2", "p2", 0, "reward", 0.3, None)],
         reasoning=[("s1", "p1", 0, "colours..."), ("s2", "p2", 0, "jokes...")],
         labels=[("p1", "creative"), ("p2", None)], vector_seed=1,
         verdicts=[("s2", "p2", 0, 1, None, 0.001), ("s1", "p1", 0, 1, True, 0.002)])
    fill(b, systems=["s2", "s3"], prompts=[("p2", "Tell a joke."), ("p3", "Name a bakery.")],
         responses=[("s2", "p2", 0, "a joke", 0.02), ("s2", "p2", 1, "now answered", 0.05), ("s2", "p1", 0, None, None),
                    ("s3", "p3", 0, "Night Loaf", 0.03), ("s3", "p2", 0, None, None)],
         scores=[("s2", "p2", 0, "judge", 4.0, 0.03), ("s2", "p2", 0, "reward", 0.3, None),
                 ("s3", "p3", 0, "judge", 2.0, 0.04), ("s3", "p3", 0, "reward", None, None)],
         reasoning=[("s2", "p2", 0, "jokes..."), ("s3", "p3", 0, "bakeries...")],
         labels=[("p1", "creative"), ("p2", "humor"), ("p3", "naming")], vector_seed=2,
         verdicts=[("s2", "p2", 0, 1, False, 0.004), ("s1", "p1", 0, 1, True, 0.002)])
    for path in (a, b):
        for name, rows in contents(path).items():
            assert rows, f"{path.name} leaves {name} empty: every declared table must be exercised"
    return a, b


def test_merge_gives_the_union_of_every_table_and_column(every_table):
    a, b = every_table
    expected = union(a, b)
    b_before, a_before = digest(b), contents(a)
    with Store(a) as store:
        counts = store.merge_stores([b])
    merged = contents(a)
    assert without_order(merged) == without_order(expected)
    # prompt order: the target's prompts first, then the source's new ones in the source's order
    positions = {pid: row[3] for (pid,), row in merged["prompts"].items()}
    assert sorted(positions, key=positions.get) == ["p1", "p2", "p3"]
    assert counts.added == {name: len(expected[name]) - len(a_before[name]) for name in expected}
    assert counts.replaced == {"systems": 0, "prompts": 0, "responses": 1, "embeddings": 0,
                               "embedding_chunks": 0, "scores": 1, "reasoning": 0, "prompt_labels": 1,
                               "equivalence_verdicts": 1}
    # the cases spelled out: costs, failures replaced by real rows, real rows kept over failures
    assert merged["scores"][("s2", "p2", 0, "judge")][4:8] == (4.0, "4.0", None, 0.03)
    assert merged["responses"][("s2", "p2", 1)][4] == "now answered"
    assert merged["responses"][("s2", "p1", 0)][4] == "blue"
    assert merged["prompt_labels"][("p2", "clf")][2] == "humor"
    assert merged["reasoning"][("s3", "p3", 0)][3] == "bakeries..."
    with Store.open_readonly(a) as store:
        assert store.scoring_cost() == pytest.approx(0.01 + 0.03 + 0.04 + 0.004 + 0.002)   # verdicts count too
        assert store.verdicts("judge:j") == {("s2", "p2"): {(0, 1): False}, ("s1", "p1"): {(0, 1): True}}
        assert store.prompt_labels() == {"p1": "creative", "p2": "humor", "p3": "naming"}
    assert digest(b) == b_before                     # the source is only read
    with Store(a) as store:                          # merging again adds nothing
        again = store.merge_stores([b])
    assert not any(again.added.values()) and not any(again.replaced.values())
    assert contents(a) == merged


@pytest.mark.parametrize("table", [t for t in TABLES if t.merge.conflict], ids=lambda t: t.name)
def test_two_real_rows_that_differ_are_a_conflict_naming_key_and_file(every_table, table):
    a, b = every_table
    shared = [key for key, row in keyed_rows(b, table).items() if key in keyed_rows(a, table)
              and (table.merge.real is None or row[table.column_names.index(table.merge.real)] is not None
                   and keyed_rows(a, table)[key][table.column_names.index(table.merge.real)] is not None)]
    assert shared, f"the fixture has no key with a real row in both stores for {table.name}"
    key, column = shared[0], table.merge.conflict[0]
    where = " AND ".join(f"{k} = ?" for k in table.key)
    db = sqlite3.connect(b)
    declared = next(c.type for c in table.columns if c.name == column)
    db.execute(f"UPDATE {table.name} SET {column} = ? WHERE {where}",
               (123.0 if declared.startswith("REAL") else "another value", *key))
    db.commit()
    db.close()
    before = contents(a)
    with Store(a) as store, pytest.raises(HivemindError) as err:
        store.merge_stores([b])
    message = str(err.value)
    assert message.startswith(f"{b}: {table.merge.what} (") and f"has another {column} than in {a}" in message
    assert all(str(value) in message for value in key)
    assert "nothing merged" in message
    assert contents(a) == before


# --- sources are only read, and named when at fault ------------------------------------------------------

def test_a_foreign_sqlite_file_is_refused_naming_it_and_left_untouched(shards, tmp_path, capsys):
    foreign = tmp_path / "customers.sqlite"
    db = sqlite3.connect(foreign)
    db.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    db.execute("INSERT INTO customers (name) VALUES ('Ada')")
    db.commit()
    db.close()
    before = digest(foreign)
    assert cli_main(["merge", str(tmp_path / "target.yaml"), str(foreign)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {foreign}: not a hivemind store") and len(err.strip().splitlines()) == 1
    assert digest(foreign) == before
    db = sqlite3.connect(foreign)
    assert [r[0] for r in db.execute("SELECT name FROM sqlite_master")] == ["customers"]
    db.close()
    fresh = load_config(tmp_path / "target.yaml")       # into a run that does not exist yet: nothing is left
    fresh.results_dir = str(tmp_path / "new-results")
    with pytest.raises(HivemindError, match="not a hivemind store"):
        merge(fresh, [foreign])
    assert not (tmp_path / "new-results").exists() and digest(foreign) == before


def test_more_sources_than_sqlite_can_attach_are_refused_before_reading_any(shards):
    with pytest.raises(HivemindError, match="merge at most 9 stores at a time"):
        merge(shards["target"], [shards["m1"].store_path] * 10)
    assert not shards["target"].store_path.exists()


def test_a_damaged_source_is_named_not_the_healthy_target(shards, tmp_path, capsys):
    target = shards["target"]
    merge(target, [shards["m1"].store_path])
    before = contents(target.store_path)
    damaged = tmp_path / "damaged.sqlite"
    shutil.copy(shards["m2"].store_path, damaged)    # m2's store is closed: its WAL is folded in
    assert not Path(f"{shards['m2'].store_path}-wal").exists()
    page = 4096
    with damaged.open("r+b") as out:                 # every page but the first (header and schema)
        out.seek(page)
        out.write(np.random.default_rng(7).integers(0, 256, damaged.stat().st_size - page,
                                                    dtype=np.uint8).tobytes())
    assert cli_main(["merge", str(tmp_path / "target.yaml"), str(damaged)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {damaged}: ") and str(target.store_path) not in err.split("(")[0]
    assert contents(target.store_path) == before


def test_a_store_from_a_newer_hivemind_is_refused_naming_it(shards, tmp_path):
    newer = tmp_path / "newer.sqlite"
    shutil.copy(shards["m2"].store_path, newer)
    db = sqlite3.connect(newer)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    before = digest(newer)
    with pytest.raises(HivemindError, match=f"{newer}: written by a newer hivemind"):
        merge(shards["target"], [newer])
    assert digest(newer) == before


def test_an_older_store_is_merged_without_being_upgraded(shards, tmp_path, capsys):
    old = tmp_path / "old.sqlite"
    shutil.copy(FIXTURE, old)
    before = digest(old)
    assert cli_main(["merge", str(tmp_path / "target.yaml"), str(old)]) == 0
    out = capsys.readouterr()
    assert digest(old) == before and user_version(old) == 0
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("old.sqlite")) == ["old.sqlite"]
    merged = contents(shards["target"].store_path)
    for table in [t for t in TABLES if t.since == 1]:   # every table of the old store arrived
        assert keyed_rows(old, table).keys() <= merged[table.name].keys(), table.name
    assert "rows added: 2 systems, 3 prompts, 13 responses" in out.out
    # its systems are not in the target's config: merged, and named in one warning line
    assert out.err.count("warning:") == 1 and "does not list" in out.err and "a, b" in out.err


@contextmanager
def read_only_mount(folder: Path):
    """A read-only bind mount of `folder` onto itself: chmod does not stop root, and tests may run as root."""
    if os.geteuid() != 0:
        yield folder
        return
    if shutil.which("mount") is None or subprocess.run(["mount", "--bind", str(folder), str(folder)],
                                                       capture_output=True).returncode != 0:
        pytest.skip("cannot bind-mount here (needs root with CAP_SYS_ADMIN)")
    try:
        if subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], capture_output=True).returncode != 0:
            pytest.skip("cannot remount read-only")
        yield folder
    finally:
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], check=True)


def test_a_read_only_source_merges(shards, tmp_path):
    folder = tmp_path / "from-machine-2"
    folder.mkdir()
    source = folder / "store.sqlite"
    shutil.copy(shards["m2"].store_path, source)         # a WAL-mode store, closed
    source.chmod(0o444)
    folder.chmod(0o555)
    try:
        with read_only_mount(folder):
            counts = merge(shards["target"], [folder])
            assert counts.responses > 0 and sorted(p.name for p in folder.iterdir()) == ["store.sqlite"]
    finally:
        folder.chmod(0o755)
    assert contents(shards["target"].store_path)["responses"] == keyed_rows(shards["m2"].store_path, TABLE["responses"])


# --- scores, chunk counts and failed-then-answered samples through the command ----------------------------

def test_merge_command_carries_scores_chunks_and_answers_to_failed_samples(shards, tmp_path, capsys):
    m1, m2, target = shards["m1"], shards["m2"], shards["target"]
    ids = [s.identity for s in m1.systems]
    with Store(m1.store_path) as store:           # machine 1: a judge's scores, chunk counts
        answers = store.answers_to_score("judge", ids)
        store.add_scores([Score(*x.key, "judge", float(i % 5 + 1), cost=0.001) for i, x in enumerate(answers)])
        hashes = [h for h, _ in store.texts_without_chunk_counts("test:emb", ids)]
        store.add_chunked_embeddings("test:emb", hashes, np.eye(len(hashes), 4, dtype=np.float32),
                                     np.full(len(hashes), 2), np.full(len(hashes), 900))
    with Store(target.store_path) as store:       # the target: b's first sample failed there
        store.add_system(m2.systems[1].identity, "b", m2.systems[1].model, m2.systems[1].api_base, {})
        first = keyed_rows(m2.store_path, TABLE["responses"])
        key = sorted(k for k, row in first.items() if row[4] is not None)[0]
        store.add_response(Response(*key, None, error="429 then gave up"))
    assert cli_main(["merge", str(tmp_path / "target.yaml"), str(m1.store_path), str(m2.store_path)]) == 0
    out = capsys.readouterr().out
    assert f"{len(answers)} scores" in out and f"{len(hashes)} embedding_chunks" in out
    assert "failures replaced by real rows: 1 responses" in out
    merged = contents(target.store_path)
    assert merged["responses"][key] == first[key]
    assert len(merged["scores"]) == len(answers) > 0
    with Store.open_readonly(target.store_path) as store:
        assert store.scoring_cost() == pytest.approx(0.001 * len(answers))
        assert store.chunk_counts("test:emb") == dict.fromkeys(hashes, 2)


# --- a judge after a merge stays within max_cost ---------------------------------------------------------

def test_max_cost_counts_the_scoring_cost_merged_from_another_machine(tmp_path, collect_key):
    records = [{"prompt": f"Write a line about {topic}.", "model": model,
                "response": [f"{model} on {topic} {n}" for n in range(2)]}
               for model in ("alpha", "beta") for topic in ("rain", "salt", "wool")]
    source = tmp_path / "answers.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    here = import_files([source], "priced", results_dir=tmp_path / "here")
    there = import_files([source], "priced", results_dir=tmp_path / "there")
    with FakeOpenAI(judge_max=5, expected_api_key=collect_key) as fake:
        # litellm prices gpt-4o-mini from the usage the fake server reports, whatever api_base answers
        judge = Scorer(name="judge", kind="judge", model="openai/gpt-4o-mini", api_base=fake.url,
                       api_key_env=COLLECT_KEY_VAR)
        there.scorers = [judge]
        save_run_config(there)
        score_run(there, progress=False)                # machine 2 pays for the judge
        with Store.open_readonly(there.store_path) as store:
            spent = store.scoring_cost()
        assert spent > 0 and fake.requests == 12
        merge(here, [there.store_path])
        with Store.open_readonly(here.store_path) as store:
            assert store.scoring_cost() == pytest.approx(spent)
        # the budget is already spent on this run: a second judge here must not send a request
        here.scorers = [Scorer(name="judge2", kind="judge", model="openai/gpt-4o-mini", api_base=fake.url,
                               api_key_env=COLLECT_KEY_VAR)]
        here.max_cost = spent
        save_run_config(here)
        summary = score_run(here, progress=False, raise_if_incomplete=False)
        assert summary.scorers["judge2"].stopped_for_cost and fake.requests == 12


# --- the run lock and signals ------------------------------------------------------------------------------

def big_store(path: Path, system_id: str, prompts: int, samples: int) -> int:
    """A store with prompts x samples answers and as many scores, written in bulk; returns the answers."""
    Store(path).close()
    db = sqlite3.connect(path)
    db.execute("INSERT INTO systems VALUES (?, 'big', 'openai/big', NULL, '{}', 'now')", (system_id,))
    db.executemany("INSERT INTO prompts VALUES (?, ?, NULL, ?)", ((f"q{i}", f"Question {i}?", i)
                                                                  for i in range(prompts)))
    keys = [(system_id, f"q{i}", n) for i in range(prompts) for n in range(samples)]
    db.executemany("INSERT INTO responses (system_id, prompt_id, sample, text, text_hash, cost, created_at) "
                   "VALUES (?, ?, ?, ?, ?, 0.001, 'now')",
                   ((*k, f"answer {k[1]} {k[2]} " * 8, f"h{k[1]}-{k[2]}") for k in keys))
    db.executemany("INSERT INTO scores (system_id, prompt_id, sample, scorer, score, created_at) "
                   "VALUES (?, ?, ?, 'judge', 3, 'now')", keys)
    db.commit()
    db.close()
    return len(keys)


def test_sigterm_during_a_merge_exits_143_with_the_target_unchanged(shards, tmp_path):
    target = shards["target"]
    merge(target, [shards["m1"].store_path])
    before = contents(target.store_path)
    source = tmp_path / "big.sqlite"
    big_store(source, shards["m2"].systems[1].identity, prompts=2000, samples=100)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-m", "hivemind.cli", "merge", str(tmp_path / "target.yaml"),
                                str(source)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    wal = Path(f"{target.store_path}-wal")
    assert not wal.exists()                              # the target is closed: its WAL folded in
    deadline = time.monotonic() + 120                    # a guard against a hung test, not a timing assertion
    while time.monotonic() < deadline and process.poll() is None:
        holder = read_holder(target.run_dir)
        # the merge holds the lock and its transaction has started writing pages to the target's WAL
        if holder is not None and holder.stage == "merge" and holder.pid == process.pid and \
                wal.exists() and wal.stat().st_size > 0:
            break
        time.sleep(0.005)
    assert process.poll() is None, f"the merge ended before it could be stopped: {process.communicate()}"
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 143, err
    assert err.strip().splitlines() == [err.strip()] and err.startswith("stopped by SIGTERM")
    assert contents(target.store_path) == before          # the transaction was rolled back whole
