"""The store's versioned schema: one declaration, a user_version in the file, migrations on open for writing,
older stores readable without being changed, newer and foreign files refused untouched."""
from __future__ import annotations

import hashlib
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from hivemind import HivemindError
from hivemind.store import SCHEMA_VERSION, TABLES, Prompt, Response, Score, Store, Verdict
from hivemind.store.schema import TABLE

FIXTURE = Path(__file__).parent / "fixtures" / "store_v0.sqlite"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def rows(path: Path, table: str) -> list[tuple]:
    db = sqlite3.connect(path)
    try:
        columns = [r[1] for r in db.execute(f"PRAGMA table_info({table})")]
        return sorted(db.execute(f"SELECT {', '.join(columns)} FROM {table}").fetchall(), key=repr) if columns else []
    finally:
        db.close()


def user_version(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return db.execute("PRAGMA user_version").fetchone()[0]
    finally:
        db.close()


def v0_copy(tmp_path: Path, name: str = "old.sqlite") -> Path:
    path = tmp_path / name
    shutil.copy(FIXTURE, path)
    return path


def test_fixture_is_a_pre_version_store_using_every_table():
    assert user_version(FIXTURE) == 0
    for table in [t for t in TABLES if t.since == 1]:     # later tables came after the fixture
        assert rows(FIXTURE, table.name), f"the fixture has no {table.name} rows"
    assert any(cost for *_, cost, _ in rows(FIXTURE, "scores"))


def test_fixture_store_upgrades_in_place_keeping_every_row(tmp_path):
    path = v0_copy(tmp_path)
    before = {t.name: rows(path, t.name) if t.since == 1 else [] for t in TABLES}
    with Store(path, create=False) as store:
        assert store.scoring_cost() == pytest.approx(0.007)      # before the new verdict below
        assert store.prompt_labels() == {"p1": "creative"}
        assert store.reasoning("sys-a", "p1", 0) == "First I thought about red."
        # today's code writes to every table of the upgraded store
        store.add_system("sys-c", "c", "openai/gpt-c", None, {})
        store.add_prompts([Prompt("p4", "Name a tree.")])
        store.add_response(Response("sys-c", "p4", 0, "an oak", cost=0.01))
        store.add_chunked_embeddings("test:emb", ["h-oak"], np.ones((1, 4), np.float32), np.array([2]),
                                     np.array([700]))
        store.add_scores([Score("sys-c", "p4", 0, "judge", 3.0, cost=0.004)])
        store.add_reasoning("sys-c", "p4", 0, "Trees are common.")
        store.add_prompt_label("p4", "classifier-x", "nature", "nature", None)
        store.add_verdicts([Verdict("sys-c", "p4", 0, 1, "judge:x", True, cost=0.001)])
    assert user_version(path) == SCHEMA_VERSION
    for table in TABLES:
        after = rows(path, table.name)
        assert set(before[table.name]) <= set(after), f"{table.name} lost rows in the upgrade"
        assert len(after) == len(before[table.name]) + 1, f"{table.name}: the new row is missing"
    with Store.open_readonly(path) as store:      # reopening at the current version changes nothing
        assert store.scoring_cost() == pytest.approx(0.011 + 0.001)   # the score and the verdict added above


def test_a_new_store_has_every_declared_table_and_column(tmp_path):
    path = tmp_path / "new.sqlite"
    Store(path).close()
    assert user_version(path) == SCHEMA_VERSION
    db = sqlite3.connect(path)
    for table in TABLES:
        columns = [(r[1], r[5] > 0) for r in db.execute(f"PRAGMA table_info({table.name})")]
        assert [name for name, _ in columns] == table.column_names
        assert [name for name, in_key in columns if in_key] == [c for c in table.column_names if c in table.key]
    db.close()


def test_declaration_says_what_every_column_holds_and_merges_on_real_columns():
    for table in TABLES:
        assert table.comment and all(column.comment for column in table.columns), table.name
        names = set(table.column_names)
        assert set(table.key) <= names and set(table.merge.conflict) <= names
        assert table.merge.real in names | {None}
    assert TABLE["scores"].merge.real == "score" and "cost" in TABLE["scores"].column_names


def test_read_only_open_of_an_old_store_never_changes_it(tmp_path):
    path = v0_copy(tmp_path)
    db = sqlite3.connect(path)                 # an older store still: no lazily created tables, no scores.cost
    for table in ("reasoning", "prompt_labels", "embedding_chunks"):
        db.execute(f"DROP TABLE {table}")
    db.execute("ALTER TABLE scores DROP COLUMN cost")
    db.commit()
    db.close()
    before = digest(path)
    with Store.open_readonly(path) as store:
        assert store.prompt_labels() == {}            # a missing table reads as empty
        assert store.reasoning("sys-a", "p1", 0) is None
        assert store.chunk_counts("test:emb") == {}
        assert store.scoring_cost() == 0.0            # a missing column reads as NULL
        assert len(store.scored_keys("judge")) == 3
        hashes, _, chunks, _ = store.embeddings_for_systems("test:emb", ["sys-a", "sys-b"])
        assert hashes and chunks == [None] * len(hashes)
    assert digest(path) == before and user_version(path) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.sqlite"]
    with Store(path, create=False) as store:      # opened for writing it is upgraded, rows kept
        assert store.scoring_cost() == 0.0 and len(store.scored_keys("judge")) == 3
    assert user_version(path) == SCHEMA_VERSION


def test_a_store_from_a_newer_hivemind_is_refused_untouched(tmp_path):
    path = v0_copy(tmp_path)
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    before = digest(path)
    for opening in (Store, Store.open_readonly):
        with pytest.raises(HivemindError, match=f"{path}: written by a newer hivemind .*upgrade hivemind"):
            opening(path)
    assert digest(path) == before


def test_a_foreign_sqlite_file_is_refused_untouched(tmp_path):
    path = tmp_path / "other.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    db.execute("INSERT INTO customers (name) VALUES ('Ada')")
    db.commit()
    db.close()
    before = digest(path)
    for opening in (Store, Store.open_readonly):
        with pytest.raises(HivemindError, match=f"{path}: not a hivemind store .*systems, prompts, responses"):
            opening(path)
    assert digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.sqlite"]


def test_a_failed_upgrade_changes_nothing_and_names_the_file(tmp_path):
    path = v0_copy(tmp_path)
    db = sqlite3.connect(path)          # a table of another shape under a declared name: its upgrade must fail
    db.execute("DROP TABLE embedding_chunks")
    db.execute("DROP TABLE reasoning")
    db.execute("CREATE TABLE reasoning (system_id TEXT, prompt_id TEXT, sample INTEGER)")
    db.execute("INSERT INTO reasoning VALUES ('sys-a', 'p1', 0)")    # no text: a NOT NULL column cannot be added
    db.commit()
    db.close()
    tables_before = set(rows(path, "sqlite_master"))
    with pytest.raises(HivemindError, match=f"{path}: cannot upgrade the store from schema version 0 to "
                                            f"{SCHEMA_VERSION} .*nothing was changed"):
        Store(path)
    assert user_version(path) == 0 and set(rows(path, "sqlite_master")) == tables_before   # all or nothing
    assert rows(path, "embedding_chunks") == []       # created by the failed transaction, then rolled back
