"""hivemind merge: stores collected per system on "several machines" (separate results folders) combined."""
from __future__ import annotations

import shutil
import sqlite3

import numpy as np
import pytest

from hivemind import HivemindError
from hivemind.cli import main as cli_main
from hivemind.collect import collect
from hivemind.config import load_config
from hivemind.merge import merge
from hivemind.store import Store


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
    collect(configs["m1"], systems=["a"], progress=False)
    collect(configs["m2"], systems=["b"], progress=False)
    collect(configs["whole"], progress=False)
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
    assert (again.systems, again.prompts, again.responses, again.embeddings, again.scores) == (0, 0, 0, 0, 0)
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
