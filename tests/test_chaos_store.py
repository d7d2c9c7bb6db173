"""Chaos: damaged, read-only and locked stores, results paths that are files, broken run folders and
degenerate (identical) answers. Real SQLite files, real file-system permissions (an immutable file via
chattr, a read-only bind mount) and the real `hivemind` command in a subprocess, whose stderr must hold
one message naming the file and never a traceback."""
from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hivemind import HivemindError
from hivemind.runs import leaderboard
from hivemind.analyze.stage import analyze_run
from hivemind.core.config import RunConfig, System
from hivemind.results.record import save_run_config
from hivemind.report.stage import report_run
from hivemind.analyze.similarity import SimilarityAccumulator, SimilarityStats
from hivemind.store import Prompt, PromptGroup, Response, Store, text_hash
from test_leaderboard import fake_run

REPO = Path(__file__).resolve().parents[1]
TABLE_FILES = ["analysis.json", "leaderboard.csv", "inter_model_similarity.csv", "intra_model_buckets.csv"]
WORDS = ("river time light stone quiet window garden letter morning answer paper ocean bridge winter "
         "candle story forest memory silver harbor").split()


# Building blocks ----------------------------------------------------------------------------------

def unit_vectors(n: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def build_run(results: Path, name: str = "chaos", n_prompts: int = 40, samples: int = 2,
              same_answer: str | None = None, vector: np.ndarray | None = None) -> RunConfig:
    """A run of 3 systems stored through Store, with every answer embedded (random unit vectors, or
    `vector` for all). Answers are ~1,500 characters: many B-tree pages and no overflow pages, so garbage
    written into the file lands on pages SQLite checks."""
    systems = [System(name=f"s{k}", model=f"test/m{k}") for k in range(3)]
    config = RunConfig(name=name, prompts="prompts.jsonl", samples=samples, systems=systems,
                       results_dir=str(results))
    save_run_config(config)
    rng = np.random.default_rng(1)
    rows = []
    for p in range(n_prompts):
        for s in systems:
            for j in range(samples):
                text = same_answer or " ".join(rng.choice(WORDS, 220))
                rows.append(Response(s.identity, f"p{p}", j, text))
    hashes = sorted({text_hash(r.text) for r in rows})
    vectors = np.tile(vector, (len(hashes), 1)) if vector is not None else unit_vectors(len(hashes))
    with Store(config.store_path) as store:
        for s in systems:
            store.add_system(s.identity, s.name, s.model, s.api_base, s.params)
        store.add_prompts([Prompt(f"p{p}", f"Question number {p}?") for p in range(n_prompts)])
        store.add_responses(rows)
        store.add_embeddings(config.embedder.id, hashes, vectors)
    return config


def hivemind(*args: str, results: Path) -> subprocess.CompletedProcess:
    """The real command line, as a user runs it, with this checkout's package."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "HIVEMIND_RESULTS": str(results), "HF_HUB_OFFLINE": "1",
           "LITELLM_LOCAL_MODEL_COST_MAP": "True", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run([sys.executable, "-m", "hivemind.cli", *args], capture_output=True, text=True,
                          env=env, cwd=results.parent, timeout=300)


def assert_one_clean_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit 1, no traceback, and exactly one `error:` line (the last; progress bars may come before it)."""
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], proc.stderr
    for needle in needles:
        assert needle in errors[0], (needle, proc.stderr)
    return errors[0]


def page_size(path: Path) -> int:
    size = int.from_bytes(path.read_bytes()[16:18], "big")
    return 65536 if size == 1 else size


def corrupt(path: Path, start_page: int, n_pages: int | None = None, seed: int = 7) -> None:
    """Overwrite whole pages with random bytes (page 1, the header and schema, is left intact)."""
    assert not Path(f"{path}-wal").exists(), "the store must be closed and checkpointed"
    size, page = path.stat().st_size, page_size(path)
    end = size if n_pages is None else min(size, (start_page + n_pages) * page)
    garbage = np.random.default_rng(seed).integers(0, 256, end - start_page * page, dtype=np.uint8).tobytes()
    with path.open("r+b") as out:
        out.seek(start_page * page)
        out.write(garbage)


def mtimes(folder: Path) -> dict[str, int]:
    return {name: (folder / name).stat().st_mtime_ns for name in TABLE_FILES}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@contextmanager
def immutable(path: Path):
    """chattr +i: even root cannot write the file (plain chmod does not stop root, and tests run as root)."""
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(path)],
                                                        capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here (needs root on a file system with inode flags)")
    try:
        yield path
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


@contextmanager
def read_only_mount(folder: Path):
    """A read-only bind mount of `folder` onto itself: writes fail with EROFS, as on a read-only disk."""
    if shutil.which("mount") is None or subprocess.run(["mount", "--bind", str(folder), str(folder)],
                                                       capture_output=True).returncode != 0:
        pytest.skip("cannot bind-mount here (needs root with CAP_SYS_ADMIN)")
    try:
        remount = subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], capture_output=True)
        if remount.returncode != 0:
            pytest.skip(f"cannot remount read-only: {remount.stderr.strip()}")
        yield folder
    finally:
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], check=True)


# Damaged stores -------------------------------------------------------------------------------------

def test_corrupt_pages_give_one_message_in_analyze_report_and_embed(tmp_path):
    results = tmp_path / "results"
    config = build_run(results)
    analyze_run(config, progress=False)
    before = mtimes(config.run_dir)
    corrupt(config.store_path, start_page=1)          # every page but the first
    for stage in ("analyze", "report", "embed"):
        assert_one_clean_error(hivemind(stage, "chaos", "-q", results=results),
                               str(config.store_path), "unreadable store", "snapshot")
    assert mtimes(config.run_dir) == before          # the previous tables are untouched
    assert not (config.run_dir / "report.html").exists()
    # no temporary folders left (the run lock file is meant to stay: pipeline's lock.py never deletes it)
    assert not [p for p in config.run_dir.iterdir() if p.name.startswith(".") and p.name != ".lock"]


def test_damage_in_the_middle_surfaces_while_reading_not_as_a_traceback(tmp_path):
    config = build_run(tmp_path / "results")
    n_pages = config.store_path.stat().st_size // page_size(config.store_path)
    corrupt(config.store_path, start_page=n_pages // 2, n_pages=2)
    ids = [s.identity for s in config.systems]
    with Store.open_readonly(config.store_path) as store:
        assert len(store.prompts()) == 40             # the damage is elsewhere: opening and small reads work
        groups = store.iter_prompt_groups(config.embedder.id, ids)
        with pytest.raises(HivemindError, match="unreadable store .*malformed"):
            for _ in groups:                          # SQLite meets the damaged page only while iterating
                pass
        with pytest.raises(HivemindError, match="unreadable store"):
            store.responses_frame(ids)                # pandas wraps the SQLite error; still diagnosed
    with pytest.raises(HivemindError, match=f"{config.store_path}: unreadable store"):
        analyze_run(config, progress=False)


def test_a_file_that_is_not_sqlite_is_named(tmp_path):
    config = build_run(tmp_path / "results", n_prompts=3)
    config.store_path.write_bytes(b"this is not a database, just text\n" * 200)
    for open_store in (Store.open_readonly, lambda p: Store(p, create=False)):
        with pytest.raises(HivemindError, match=f"{config.store_path}: unreadable store .*not a database"):
            open_store(config.store_path)


# Read-only stores and results ---------------------------------------------------------------------

def test_read_only_store_file_is_still_analysed_and_refuses_writes_saying_why(tmp_path):
    results = tmp_path / "results"
    config = build_run(results, n_prompts=12)
    with Store(config.store_path) as store:           # one answer not embedded yet: `embed` must write
        store.add_response(Response(config.systems[0].identity, "p1", 5, "One more new answer."))
    saved = digest(config.store_path)
    with immutable(config.store_path):
        stderr = assert_one_clean_error(hivemind("embed", "chaos", "-q", results=results),
                                        str(config.store_path), "read-only", "Nothing was lost")
        assert "snapshot" not in stderr and "unreadable" not in stderr
        with pytest.raises(HivemindError, match="read-only .*Nothing was lost"):
            with Store(config.store_path) as store:
                store.add_response(Response(config.systems[1].identity, "p0", 7, "x"))
        with Store.open_readonly(config.store_path) as store:   # reading needs no write access
            assert store.count_not_embedded(config.embedder.id, [config.systems[0].identity]) == 1
    assert digest(config.store_path) == saved


def test_read_only_results_file_system_says_so_and_keeps_the_tables(tmp_path):
    results = tmp_path / "results"
    config = build_run(results, n_prompts=12)
    analyze_run(config, progress=False)
    before = mtimes(config.run_dir)
    with read_only_mount(results):
        stderr = assert_one_clean_error(hivemind("analyze", "chaos", "-q", results=results),
                                        str(config.run_dir), "read-only", "Nothing was lost")
        assert "snapshot" not in stderr
        with pytest.raises(HivemindError, match=f"{config.run_dir}.*read-only"):
            report_run(config)
        with pytest.raises(HivemindError, match="read-only"):
            leaderboard.update_leaderboard(results)
        with pytest.raises(HivemindError, match=r"mounted read-only\. Nothing was lost") as caught:
            Store(config.store_path)                  # what collect does first
        assert "snapshot" not in str(caught.value)
        with Store.open_readonly(config.store_path) as store:   # no -shm can be made here: opened immutable
            assert store.n_prompts_with_text([s.identity for s in config.systems]) == 12
    assert mtimes(config.run_dir) == before
    assert not (config.run_dir / "report.html").exists()


def test_a_results_path_that_is_a_file_is_named(tmp_path):
    results = tmp_path / "results"
    results.write_text("not a folder")
    config = RunConfig(name="chaos", prompts="p.jsonl", systems=[System(name="a", model="m")],
                       results_dir=str(results))
    match = f"{results}: is a file"
    for stage in (lambda: analyze_run(config, progress=False), lambda: report_run(config),
                  lambda: Store(config.store_path), lambda: leaderboard.update_leaderboard(results)):
        with pytest.raises(HivemindError, match=match):
            stage()
    assert results.read_text() == "not a folder"
    assert_one_clean_error(hivemind("leaderboard", "--results", str(results), "-q", results=results), match)

    other = tmp_path / "other"                           # the run folder itself is a file
    other.mkdir()
    (other / "chaos").write_text("not a run folder")
    config.results_dir = str(other)
    with pytest.raises(HivemindError, match=f"{other / 'chaos'}: is a file"):
        analyze_run(config, progress=False)


def test_a_locked_store_is_reported_after_the_timeout(tmp_path):
    config = build_run(tmp_path / "results", n_prompts=3)
    holder = sqlite3.connect(config.store_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")                   # another writer holds the write lock
    try:
        with Store(config.store_path, create=False, timeout=0.2) as store:
            with pytest.raises(HivemindError, match=f"{config.store_path}: .*locked .*0.2 s.*nothing was lost"):
                store.add_response(Response(config.systems[0].identity, "p0", 9, "late"))
        with Store.open_readonly(config.store_path, timeout=0.2) as store:   # WAL readers are not blocked
            assert len(store.prompts()) == 3
    finally:
        holder.execute("ROLLBACK")
        holder.close()


# The leaderboard over broken runs -------------------------------------------------------------------

def test_leaderboard_skips_each_broken_run_and_names_it(tmp_path):
    results = tmp_path / "results"
    fake_run(results, "good", ["p1", "p2"], "mini", {"x": 0.5, "y": 0.9})
    broken = {"corrupt-store": "unreadable store", "bad-config": "not valid YAML",
              "garbled-analysis": "unreadable analysis.json", "no-table": "leaderboard.csv is missing",
              "wrong-table": "no `system` column", "never-analysed": "not analysed yet"}
    for name in broken:
        fake_run(results, name, ["p1", "p2"], "mini", {f"{name}-sys": 0.99})
    (results / "corrupt-store" / "store.sqlite").write_bytes(b"garbage " * 1000)
    (results / "bad-config" / "config.yaml").write_text("name: [unclosed\nembedder: mini\n")
    (results / "garbled-analysis" / "analysis.json").write_text('{"embedder": "sentence-tr')
    (results / "no-table" / "leaderboard.csv").unlink()
    (results / "wrong-table" / "leaderboard.csv").write_text("a,b\n1,2\n")
    for name in ("analysis.json", "leaderboard.csv"):
        (results / "never-analysed" / name).unlink()

    warnings: list[str] = []
    csv_path, md_path = leaderboard.update_leaderboard(results, warn=warnings.append)
    assert sorted(pd.read_csv(csv_path)["system"]) == ["x", "y"]
    assert len(warnings) == len(broken)
    for name, reason in broken.items():
        line = next(w for w in warnings if f"{results / name}:" in w)
        assert reason in line, line
        assert f"`{name}`" in md_path.read_text()

    proc = hivemind("leaderboard", "--results", str(results), "-q", results=results)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert sum(line.startswith("warning: skipped") for line in proc.stderr.splitlines()) == len(broken)


def test_leaderboard_of_an_empty_results_folder_is_an_error(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    assert_one_clean_error(hivemind("leaderboard", "--results", str(results), "-q", results=results),
                           "no analysed runs", "hivemind analyze")
    assert not (results / "leaderboard.csv").exists()


# Numbers stay in range ----------------------------------------------------------------------------

def rounding_unit_vector(dim: int = 384) -> np.ndarray:
    """A float32 unit vector whose identical copies give a mean cosine above 1 by rounding."""
    for seed in range(1000):
        v = unit_vectors(1, dim, seed)[0]
        block = np.stack([v, v, v])
        s = block.sum(axis=0).astype(np.float64)
        if (s @ s - np.vdot(block, block)) / 6 > 1:
            return v
    raise AssertionError("no float32 vector rounds above 1")


def test_identical_answers_give_similarities_within_one():
    v = rounding_unit_vector()
    acc = SimilarityAccumulator(2)
    for p in range(4):
        acc.add(PromptGroup(f"p{p}", systems=np.repeat(np.arange(2), 3).astype(np.int32),
                            vectors=np.tile(v, (6, 1))))
    stats = acc.finish()
    values = [stats.intra, stats.inter_matrix(), stats.prompt_homogeneity(), np.array([stats.floor]),
              stats.intra_summary().mean, *stats.resampled(np.ones((2, 4)))]
    for value in values:
        assert np.nanmax(value) <= 1.0 and np.nanmin(value) >= -1.0
    assert stats.floor == 1.0 and not stats.can_rescale
    rescaled = stats.rescale(stats.inter_matrix())
    assert np.isnan(rescaled).all()                    # undefined, never inf or huge


def test_rescaling_is_guarded_near_a_floor_of_one_and_exact_at_one():
    def stats(floor):
        return SimilarityStats(prompt_ids=["a", "b"], counts=np.ones((2, 1), dtype=np.int64),
                               intra=np.zeros((2, 1)), inter_num=np.ones((2, 1, 1)), inter_den=np.ones((2, 1, 1)),
                               floor=floor)

    assert stats(0.25).rescale(np.array([1.0, 1 + 1e-7, 1 - 1e-7])).tolist() == [1.0, 1.0, 1.0]
    assert stats(0.25).rescale(np.array([0.25]))[0] == 0.0
    for floor in (1.0, 1 - 1e-9, 1 + 1e-9, None):
        out = stats(floor).rescale(np.array([0.5, 1.0]))
        assert np.isnan(out).all(), floor


def test_analysis_of_identical_answers_stays_in_range(tmp_path):
    config = build_run(tmp_path / "results", n_prompts=4, samples=3, same_answer="The very same answer.",
                       vector=rounding_unit_vector(32))
    summary = analyze_run(config, progress=False)
    assert any("rescaled values are undefined" in w for w in summary.warnings)
    run = config.run_dir
    cosines = [pd.read_csv(run / "inter_model_similarity.csv", index_col=0).to_numpy(),
               pd.read_csv(run / "intra_model_per_prompt.csv")["intra"].to_numpy(),
               pd.read_csv(run / "prompt_homogeneity.csv")["mean_similarity"].to_numpy(),
               pd.read_csv(run / "near_duplicates.csv")["similarity"].to_numpy(),
               pd.read_csv(run / "cross_prompt_templates.csv")["similarity"].to_numpy(),
               pd.read_csv(run / "leaderboard.csv")[["intra_mean", "inter_mean_others"]].to_numpy()]
    for values in cosines:
        assert len(values) and np.nanmax(values) <= 1.0 and np.nanmin(values) >= -1.0
    assert np.isnan(pd.read_csv(run / "inter_model_similarity_rescaled.csv", index_col=0).to_numpy()).all()
    assert pd.read_csv(run / "intra_model_buckets.csv")["mean_rescaled"].isna().all()
    for path in run.glob("*.csv"):
        frame = pd.read_csv(path).select_dtypes("number")
        assert np.isfinite(frame.to_numpy()[~np.isnan(frame.to_numpy())]).all(), path
