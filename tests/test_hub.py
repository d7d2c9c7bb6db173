"""Snapshots as Hugging Face datasets: every config loads with `datasets`, the card says what it should, no
local path leaks, the push is one commit of the whole folder, and hf:// imports go through the folder code."""

import json
import os
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from test_snapshot import analysed  # noqa: E402,F401  (the module-scoped analysed run fixture)

from hivemind import HivemindError  # noqa: E402
from hivemind.runs import hub
from hivemind.runs import snapshot
from hivemind.store import Score, Store  # noqa: E402

SNAPSHOT = "hubsnap"


@pytest.fixture(scope="module")
def published(analysed):  # noqa: F811
    """The analysed run, with a report and two quality scores, published once."""
    from hivemind.report.stage import report_run

    report_run(analysed)
    alpha = analysed.systems[0].identity
    with Store(analysed.store_path) as store:
        store.add_scores([Score(alpha, "q0", 0, "judge", 4.0, raw="4"),
                          Score(alpha, "q0", 1, "judge", None, error="unparseable")])
    return snapshot.publish(analysed, SNAPSHOT)


def front_matter(folder: Path) -> dict:
    text = (folder / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def expected_rows(folder: Path, path: str) -> int:
    return len(pd.read_parquet(folder / path))


def test_every_config_loads_with_datasets(published, tmp_path):
    from datasets import load_dataset

    meta = front_matter(published)
    configs = {c["config_name"]: c["data_files"][0]["path"] for c in meta["configs"]}
    tables = sorted(p.stem for p in published.glob("*.csv"))
    assert len(tables) >= 10
    empty = {t for t in tables if pd.read_csv(published / f"{t}.csv").empty}
    # this run has no cross-prompt template and one decoding setting (no cross-setting pairs of a model)
    assert empty == {"cross_prompt_templates", "cross_setting_pairs"}
    bounds = {"inter_model_similarity_ci_low", "inter_model_similarity_ci_high"}    # columns of their matrix's table
    assert bounds <= set(tables)
    assert set(configs) == {"responses", "embeddings", "scores", "prompts", *tables} - empty - bounds
    assert "`tables/cross_prompt_templates.parquet`" in (published / "README.md").read_text()
    assert len(pd.read_parquet(published / "tables/cross_prompt_templates.parquet").columns) == 7
    for name, path in configs.items():
        loaded = load_dataset(str(published), name, split="train", cache_dir=str(tmp_path / "cache"))
        assert loaded.num_rows == expected_rows(published, path), name
        if path.startswith("tables/") and name != "inter_model_similarity":
            assert loaded.column_names == list(pd.read_csv(published / f"{Path(path).stem}.csv").columns), name
    inter = load_dataset(str(published), "inter_model_similarity", split="train",
                         cache_dir=str(tmp_path / "cache")).to_pandas()
    assert list(inter.columns) == ["system", "other_system", "value", "ci_low", "ci_high"]
    for kind, column in (("", "value"), ("_ci_low", "ci_low"), ("_ci_high", "ci_high")):
        matrix = pd.read_csv(published / f"inter_model_similarity{kind}.csv", index_col=0)
        for row in inter.itertuples():
            assert getattr(row, column) == pytest.approx(matrix.loc[row.system, row.other_system]), (kind, row)
    assert len(inter) == len(matrix) ** 2
    responses = load_dataset(str(published), split="train", cache_dir=str(tmp_path / "cache"))  # the default
    assert responses.num_rows == 18 and set(responses["system"]) == {"alpha", "beta"}
    vectors = load_dataset(str(published), "embeddings", split="train", cache_dir=str(tmp_path / "cache"))
    assert len(vectors[0]["vector"]) == 384
    # every answer joins its vector by text_hash, the SHA-256 of its text (the card's own example)
    import hashlib
    answers = responses.to_pandas()
    assert all(h == hashlib.sha256(t.encode("utf-8")).hexdigest() for h, t in zip(answers["text_hash"], answers["text"]))
    joined = answers.merge(vectors.to_pandas(), on="text_hash")
    assert len(joined) == answers["text"].notna().sum()
    prompts = load_dataset(str(published), "prompts", split="train", cache_dir=str(tmp_path / "cache"))
    assert prompts["prompt_id"] == ["q0", "q1", "q2"]
    scores = load_dataset(str(published), "scores", split="train", cache_dir=str(tmp_path / "cache"))
    assert sorted(scores["score"], key=lambda v: v is None) == [4.0, None]
    assert set(scores["system"]) == {"alpha"}


def test_dataset_card_describes_the_run(published):
    meta = front_matter(published)
    assert meta["license"] == hub.DEFAULT_LICENSE
    assert meta["pretty_name"] and meta["task_categories"] == ["text-generation"]
    assert "artificial-hivemind" in meta["tags"]
    assert [c for c in meta["configs"] if c.get("default")] == [
        {"config_name": "responses", "data_files": [{"split": "train", "path": "responses.parquet"}],
         "default": True}]
    body = (published / "README.md").read_text(encoding="utf-8").split("---\n", 2)[2]
    assert "arXiv:2510.22954" in body and "NeurIPS 2025" in body and "@inproceedings" in body
    assert "sentence-transformers:all-MiniLM-L6-v2" in body and "256 word pieces" in body
    assert "Long answers are not cut" in body and "reads the first 256" not in body   # answers are chunked
    gate = json.loads((published / "analysis.json").read_text())["quality_gate"]["description"]
    assert "## Quality gate" in body and f"In this run: {gate}." in body and "`fluency` (fluency) >= 0" in body
    assert "## License" in body and "No license was chosen" in body and "--license" in body
    assert hub._license_lines("mit")[0].startswith("This dataset card declares the license `mit`.")
    assert f'folder = "path/to/{SNAPSHOT}"' in body and 'merge(vectors, on="text_hash")' in body
    assert "| alpha | openai/model-alpha | temperature=1.0, top_p=0.9 |" in body
    assert "| beta | openai/model-beta | temperature=2.0, min_p=0.1 |" in body
    board = pd.read_csv(published / "leaderboard.csv", dtype={"rank": str})
    primary = f"{board.iloc[0, 0]:.3f}"       # the primary key is the first column
    assert (f"| {board['rank'][0]} | {board['system'][0]} | {board['model'][0]} | {board['setting'][0]} | "
            f"{primary} |") in body          # the headline, from the table
    assert "load_dataset(" in body and f"hf://OWNER/NAME@{SNAPSHOT}" in body
    floor = json.loads((published / "analysis.json").read_text())["floor"]
    assert f"{floor:.3f}" in body


def test_no_local_path_anywhere_and_manifest_covers_everything(published, analysed):  # noqa: F811
    roots = {str(Path(analysed.results_dir).resolve().parent), str(Path.cwd()), str(Path(__file__).parents[1])}
    for path in published.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            for root in roots:
                assert root.encode() not in content, (path.name, root)
    manifest = json.loads((published / "manifest.json").read_text())
    assert manifest["config"]["prompts"] == "prompts.jsonl"
    files = {p.relative_to(published).as_posix() for p in published.rglob("*") if p.is_file()}
    assert set(manifest["files"]) == files - {"manifest.json"}
    for needed in ("README.md", "prompts.parquet", "scores.parquet", "tables/leaderboard.parquet",
                   "report.html", "leaderboard.csv"):
        assert needed in manifest["files"]
    assert snapshot.verify(published).ok
    from hivemind.core.config_files import load_config
    assert load_config(published / "config.yaml").prompts == str(published / "prompts.jsonl")


def test_publish_refuses_a_local_path_in_a_run_file(analysed, tmp_path):  # noqa: F811
    config = analysed.model_copy(update={"results_dir": str(tmp_path / "results")})
    shutil.copytree(analysed.run_dir, config.run_dir)
    (config.run_dir / "report.md").write_text(f"figures in {config.run_dir.resolve()}/figures\n")
    with pytest.raises(HivemindError, match="local path appears in report.md"):
        snapshot.publish(config, "leaky-path")
    assert list((tmp_path / "results" / "snapshots").iterdir()) == []


def test_snapshot_round_trips_through_import_embed_analyze(published, analysed, tmp_path):  # noqa: F811
    from hivemind.analyze import stage as analyze
    from hivemind.embed import stage as embed
    from hivemind.runs.imports import import_files

    moved = tmp_path / "downloaded" / SNAPSHOT
    shutil.copytree(published, moved)
    config = import_files([moved], "again", results_dir=tmp_path / "results")
    summary = embed.embed_run(config, progress=False)
    assert summary.embedded == 0 and summary.cached > 0  # the snapshot's vectors, not re-computed
    analyze.analyze_run(config, progress=False)
    originals = sorted(analysed.run_dir.glob("*.csv"))
    for original in originals:
        pd.testing.assert_frame_equal(pd.read_csv(config.run_dir / original.name), pd.read_csv(original),
                                      check_exact=False, rtol=1e-9, atol=1e-12, obj=original.name)


def test_commit_operations_add_every_file_and_delete_stale_ones(published):
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    files = sorted(p.relative_to(published).as_posix() for p in published.rglob("*") if p.is_file())
    operations = hub.commit_operations(published, remote_files=[".gitattributes", "old_table.csv", "README.md"])
    adds = [op for op in operations if isinstance(op, CommitOperationAdd)]
    deletes = [op for op in operations if isinstance(op, CommitOperationDelete)]
    assert [op.path_in_repo for op in adds] == files
    assert "tables/leaderboard.parquet" in files and "manifest.json" in files
    assert [op.path_in_repo for op in deletes] == ["old_table.csv"]  # never .gitattributes, never a new file
    assert all(Path(op.path_or_fileobj).read_bytes() == (published / op.path_in_repo).read_bytes() for op in adds)


def test_hub_spec_parsing():
    assert hub.parse_spec("hf://someone/hivemind-demo@demo-2026-11") == hub.HubSpec("someone/hivemind-demo",
                                                                                    "demo-2026-11")
    assert hub.parse_spec("hf://someone/data") == hub.HubSpec("someone/data", None)
    assert str(hub.parse_spec("hf://a/b@v1.0")) == "hf://a/b@v1.0"
    for bad in ("hf://only-a-name", "hf://a/b@", "hf:///b", "hf://a/b/c@t", "hf://a/b@t g"):
        with pytest.raises(HivemindError, match="hf://OWNER/NAME"):
            hub.parse_spec(bad)
    assert hub.is_hub_spec("hf://a/b") and not hub.is_hub_spec("results/snapshots/x")


def test_import_from_hub_offline_names_the_repo_and_writes_nothing(tmp_path, monkeypatch):
    from hivemind.runs.imports import import_files

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HivemindError) as err:
        import_files(["hf://someone/not-cached@snap-1"], "fromhub", results_dir=tmp_path / "results")
    message = str(err.value)
    assert "hf://someone/not-cached@snap-1" in message and "HF_HUB_OFFLINE" in message
    assert not (tmp_path / "results" / "fromhub").exists()


def test_cli_import_of_hub_spec_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    from hivemind import cli

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code = cli.main(["import", "hf://someone/not-cached@snap-1", "--name", "x", "--results", str(tmp_path)])
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: could not download hf://someone/not-cached@snap-1") and "Traceback" not in err


def test_push_is_one_tagged_commit_and_imports_back_from_the_hub(published, analysed, tmp_path):  # noqa: F811
    """`snapshot publish --to-hub` against a local Hub-shaped server, then `import hf://...@TAG`, as commands."""
    import subprocess

    from fake_hub import FakeHub
    from hivemind.analyze import stage as analyze
    from hivemind.core.config_files import resolve_run

    config_file = Path(analysed.results_dir).parent / "snaprun.yaml"  # written by the analysed fixture
    with FakeHub() as fake:
        env = {**os.environ, "HF_ENDPOINT": fake.url, "HF_HUB_OFFLINE": "0", "HF_TOKEN": "hf_fakefakefakefake",
               "HF_HOME": str(tmp_path / "hf-home"), "HF_HUB_DISABLE_TELEMETRY": "1"}
        cli = [sys.executable, "-m", "hivemind.cli"]
        done = subprocess.run([*cli, "snapshot", "publish", str(config_file), "--name", "pushed",
                               "--to-hub", "someone/hivemind-test"], env=env, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "pushed in one commit, tagged pushed" in done.stdout
        folder = Path(analysed.results_dir) / "snapshots" / "pushed"
        local = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
        repo = fake.repos["someone/hivemind-test"]
        assert len(repo.commits) == 2  # the repository's initial commit, then ONE with the whole snapshot
        assert sorted(repo.commits[1].added) == sorted(local)
        assert repo.commits[1].files == {**local, ".gitattributes": repo.commits[0].files[".gitattributes"]}
        assert repo.tags == {"pushed": repo.commits[1].oid}
        again = subprocess.run([sys.executable, "-c", "import sys; from hivemind.runs import snapshot; "
                                "snapshot.push_to_hub(sys.argv[1], 'someone/hivemind-test')", str(folder)],
                               env=env, capture_output=True, text=True, timeout=300)
        assert again.returncode != 0 and "already has a tag 'pushed'" in again.stderr
        assert len(repo.commits) == 2  # refused before uploading anything

        done = subprocess.run([*cli, "import", "hf://someone/hivemind-test@pushed", "--name", "fromhub",
                               "--results", str(tmp_path / "results")], env=env, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        cache = tmp_path / "hf-home" / "hub" / "datasets--someone--hivemind-test" / "snapshots" / repo.commits[1].oid
        assert snapshot.verify(cache).ok  # the download is the snapshot, file for file
        done = subprocess.run([*cli, "import", "hf://someone/hivemind-test@no-such-tag", "--name", "missing",
                               "--results", str(tmp_path / "results")], env=env, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 1 and "could not download hf://someone/hivemind-test@no-such-tag" in done.stderr
        assert "Traceback" not in done.stderr and not (tmp_path / "results" / "missing").exists()
    config = resolve_run("fromhub", results_dir=tmp_path / "results")
    from hivemind.embed.stage import embed_run

    assert embed_run(config, progress=False).embedded == 0  # vectors and chunk counts came with the snapshot
    analyze.analyze_run(config, progress=False)
    for original in sorted(analysed.run_dir.glob("*.csv")):
        pd.testing.assert_frame_equal(pd.read_csv(config.run_dir / original.name), pd.read_csv(original),
                                      check_exact=False, rtol=1e-9, atol=1e-12, obj=original.name)


def test_a_second_snapshot_replaces_the_head_and_both_tags_stay(tmp_path):
    """Files the new snapshot lacks are deleted in its commit, so the head is exactly the new snapshot."""
    import subprocess

    from fake_hub import FakeHub

    first, second = tmp_path / "first", tmp_path / "second"
    for folder, files in ((first, {"a.csv": "1", "tables/old.parquet": "x"}), (second, {"a.csv": "2", "b.csv": "3"})):
        for rel, text in files.items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_text(text)
    with FakeHub() as fake:
        env = {**os.environ, "HF_ENDPOINT": fake.url, "HF_HUB_OFFLINE": "0", "HF_TOKEN": "hf_fakefakefakefake",
               "HF_HOME": str(tmp_path / "hf-home")}
        code = ("import sys; from pathlib import Path; from hivemind.runs import hub; "
                "hub.push(Path(sys.argv[1]), 'me/x', sys.argv[2])")
        for folder, tag in ((first, "snap-1"), (second, "snap-2")):
            done = subprocess.run([sys.executable, "-c", code, str(folder), tag], env=env, capture_output=True,
                                  text=True, timeout=300)
            assert done.returncode == 0, done.stderr[-2000:]
        repo = fake.repos["me/x"]
        assert len(repo.commits) == 3
        assert repo.commits[2].deleted == ["tables/old.parquet"]
        assert repo.resolve("main").files == {".gitattributes": repo.commits[0].files[".gitattributes"],
                                              "a.csv": b"2", "b.csv": b"3"}
        assert repo.resolve("snap-1").files["a.csv"] == b"1" and "tables/old.parquet" in repo.resolve("snap-1").files
        assert set(repo.tags) == {"snap-1", "snap-2"}
