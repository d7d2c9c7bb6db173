"""Snapshots: immutable, verifiable, secret-free, and analysable alone (re-import gives the same tables)."""

import hashlib
import json
import os
import shutil
import stat
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from fake_openai import FakeOpenAI  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from hivemind import HivemindError  # noqa: E402
from hivemind.core.config_files import load_config  # noqa: E402
from hivemind.runs import snapshot  # noqa: E402

KEY_VAR = "HIVEMIND_SNAPSHOT_TEST_KEY"
SECRET = "sk-planted-snapshot-9f8e7d6c5b4a3210"
PROMPTS = ["Write a poem about time", "Tell me a joke about cats", "Name a colour you like"]


def write_prompts(folder: Path) -> Path:
    path = folder / "prompts.jsonl"
    with path.open("w") as out:
        for i, text in enumerate(PROMPTS):
            out.write(json.dumps({"id": f"q{i}", "prompt": text, "category": "test"}) + "\n")
    return path


def write_config(folder: Path, url: str, name: str = "snaprun") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(f"""name: {name}
prompts: {write_prompts(folder)}
samples: 3
results_dir: {folder / 'results'}
systems:
  - name: alpha
    model: openai/model-alpha
    api_base: {url}
    api_key_env: {KEY_VAR}
    params: {{temperature: 1.0, top_p: 0.9}}
  - name: beta
    model: openai/model-beta
    api_base: {url}
    api_key_env: {KEY_VAR}
    params: {{temperature: 2.0, min_p: 0.1}}
""")
    return path


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    """One real run (fake HTTP server, real store, bundled embedder, real analysis), built once."""
    from hivemind.analyze import stage as analyze
    from hivemind.collect import stage as collect
    from hivemind.embed import stage as embed

    folder = tmp_path_factory.mktemp("snap")
    old = os.environ.get(KEY_VAR)
    os.environ[KEY_VAR] = SECRET
    try:
        with FakeOpenAI(expected_api_key=SECRET, enforce_api_key=True) as server:
            config = load_config(write_config(folder, server.url))
            collect.collect_run(config, progress=False)
            assert server.auth_ok == 18 and server.auth_bad == 0  # the key really was sent
        embed.embed_run(config, progress=False)
        analyze.analyze_run(config, progress=False)
        yield config
    finally:
        if old is None:
            os.environ.pop(KEY_VAR, None)
        else:
            os.environ[KEY_VAR] = old


@pytest.fixture
def secret_env(analysed):
    os.environ[KEY_VAR] = SECRET
    yield
    os.environ.pop(KEY_VAR, None)


def grep_secret(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]


def test_publish_writes_complete_read_only_snapshot(analysed, secret_env):
    results = Path(analysed.results_dir)
    folder = snapshot.publish(analysed, "complete")
    assert folder == results / "snapshots" / "complete"
    names = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    for needed in ("manifest.json", "config.yaml", "responses.parquet", "embeddings.parquet", "prompts.jsonl",
                   "analysis.json", "leaderboard.csv", "intra_model_buckets.csv", "inter_model_similarity.csv"):
        assert needed in names
    assert "store.sqlite" not in names
    for path in folder.rglob("*"):
        if path.is_file():
            assert stat.S_IMODE(path.stat().st_mode) == 0o444, path

    manifest = json.loads((folder / "manifest.json").read_text())
    assert set(manifest["files"]) == names - {"manifest.json"}
    for rel, entry in manifest["files"].items():   # hashed here with hashlib, not the project's own function
        data = (folder / rel).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest(), rel
        assert entry["bytes"] == len(data), rel
    assert manifest["embedder"] == "sentence-transformers:all-MiniLM-L6-v2"
    assert manifest["counts"]["prompts"] == 3
    assert manifest["counts"]["responses"] == 18
    assert manifest["counts"]["per_system"] == {"alpha": 9, "beta": 9}
    assert [s["identity"] for s in manifest["systems"]] == [s.identity for s in analysed.systems]
    assert manifest["config"]["systems"][0]["api_key_env"] == KEY_VAR  # the variable name is fine
    assert set(manifest["packages"]) >= {"litellm", "sentence-transformers", "faiss-cpu", "pandas", "numpy",
                                         "datasets", "torch"}
    from hivemind.store import Store
    with Store(analysed.store_path) as store:
        assert manifest["prompt_set_hash"] == snapshot.prompt_set_hash(store.prompts())

    vectors = pq.read_table(folder / "embeddings.parquet")
    assert str(vectors.schema.field("vector").type) == "list<element: float>"
    assert vectors.num_rows == 18 + len(manifest_prompts(folder))  # every answer text and every prompt text
    responses = pd.read_parquet(folder / "responses.parquet")
    assert len(responses) == 18 and set(responses["system"]) == {"alpha", "beta"}

    # No secret value anywhere: not in the snapshot, not in the run folder.
    assert grep_secret(folder) == []
    assert grep_secret(analysed.run_dir) == []
    assert SECRET not in responses.to_csv()
    assert snapshot.verify("complete", results).ok


def test_verify_names_changed_missing_and_extra_files(analysed):
    results = Path(analysed.results_dir)
    folder = snapshot.publish(analysed, "tampered")
    assert snapshot.verify(folder).checked == len(json.loads((folder / "manifest.json").read_text())["files"])

    table = folder / "leaderboard.csv"
    table.chmod(0o644)
    table.write_text(table.read_text().replace("alpha", "alphA"))
    with pytest.raises(HivemindError) as err:
        snapshot.verify("tampered", results)
    assert "changed:    leaderboard.csv" in str(err.value)

    (folder / "lexical_diversity.csv").unlink()
    (folder / "notes.txt").write_text("added later")
    result = snapshot.check(folder)
    assert result.changed == ["leaderboard.csv"]
    assert result.missing == ["lexical_diversity.csv"]
    assert result.unexpected == ["notes.txt"]
    with pytest.raises(HivemindError) as err:
        snapshot.verify(folder)
    for name in ("leaderboard.csv", "lexical_diversity.csv", "notes.txt"):
        assert name in str(err.value)


def test_verify_without_manifest_fails(analysed):
    folder = snapshot.publish(analysed, "no-manifest")
    (folder / "manifest.json").unlink()
    with pytest.raises(HivemindError, match="manifest.json: missing"):
        snapshot.verify(folder)
    with pytest.raises(HivemindError, match="no snapshot"):
        snapshot.verify("never-published", analysed.results_dir)


def test_publish_never_overwrites_and_leaves_no_partial_folder(analysed):
    folder = snapshot.publish(analysed, "once")
    before = (folder / "manifest.json").read_bytes()
    with pytest.raises(HivemindError, match="choose another name"):
        snapshot.publish(analysed, "once")
    assert (folder / "manifest.json").read_bytes() == before
    with pytest.raises(HivemindError, match="snapshot name"):
        snapshot.publish(analysed, "../escape")
    leftovers = [p.name for p in folder.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_publish_refuses_unanalysed_run(analysed, tmp_path):
    config = analysed.model_copy(update={"name": "fresh", "results_dir": str(tmp_path)})
    config.run_dir.mkdir(parents=True)
    shutil.copyfile(analysed.store_path, config.store_path)
    with pytest.raises(HivemindError, match="analyze"):
        snapshot.publish(config, "fresh-snap")
    assert not (tmp_path / "snapshots" / "fresh-snap").exists()


def test_publish_refuses_a_secret_in_the_run_folder(analysed, tmp_path, secret_env):
    config = analysed.model_copy(update={"results_dir": str(tmp_path)})
    shutil.copytree(analysed.run_dir, config.run_dir)
    (config.run_dir / "report.md").write_text(f"debug dump: key={SECRET}\n")
    with pytest.raises(HivemindError) as err:
        snapshot.publish(config, "leaky")
    assert "report.md" in str(err.value) and KEY_VAR in str(err.value)
    assert SECRET not in str(err.value)
    snapshots = tmp_path / "snapshots"
    assert list(snapshots.iterdir()) == []  # neither the snapshot nor its temporary folder


def test_scrub_removes_credentials_but_keeps_variable_names():
    data = {"api_key_env": "OPENAI_API_KEY", "params": {"max_tokens": 10, "extra_headers": {
        "Authorization": "Bearer abcdefghijklmnop", "X-Trace": "sk-abcdefghijklmnopqrstu"}},
        "api_key": "plain-value", "note": "uses hf_ABCDEFGHIJKLMNOPQRSTUV inline"}
    clean = snapshot.scrub(data)
    assert clean["api_key_env"] == "OPENAI_API_KEY"
    assert clean["params"]["max_tokens"] == 10
    assert clean["params"]["extra_headers"]["Authorization"] == snapshot.REDACTED
    assert clean["params"]["extra_headers"]["X-Trace"] == snapshot.REDACTED
    assert clean["api_key"] == snapshot.REDACTED
    assert "hf_" not in clean["note"]


def test_snapshot_alone_reproduces_every_table(analysed, tmp_path):
    from hivemind.analyze import stage as analyze
    from hivemind.runs import imports

    folder = snapshot.publish(analysed, "portable")
    # The snapshot goes somewhere else; the original run is no longer needed.
    moved = tmp_path / "elsewhere"
    shutil.copytree(folder, moved)
    config = imports.import_files([moved], "reimported", results_dir=tmp_path / "results")
    analyze.analyze_run(config, progress=False)

    # embedding_coverage.csv comes from the embed stage (chunk counts), which a snapshot does not carry
    originals = sorted(p for p in analysed.run_dir.glob("*.csv") if p.name != "embedding_coverage.csv")
    assert len(originals) >= 10
    for original in originals:
        again = config.run_dir / original.name
        assert again.is_file(), original.name
        pd.testing.assert_frame_equal(pd.read_csv(again), pd.read_csv(original), check_exact=False,
                                      rtol=1e-9, atol=1e-12, obj=original.name)
    assert grep_secret(config.run_dir) == []


def test_push_to_hub_offline_is_a_clear_error(analysed, monkeypatch):
    snapshot.publish(analysed, "pushable")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HivemindError, match="HF_HUB_OFFLINE"):
        snapshot.push_to_hub("pushable", "someone/hivemind-test", results_dir=analysed.results_dir)


def test_push_to_hub_unreachable_is_a_clear_error(analysed):
    """Online mode but no hub to reach: the error is one HivemindError line, never a traceback."""
    import subprocess

    snapshot.publish(analysed, "unreachable")
    code = ("import sys\nfrom hivemind import HivemindError\nfrom hivemind.runs import snapshot\n"
            "try:\n    snapshot.push_to_hub('unreachable', 'someone/hivemind-test', results_dir=sys.argv[1])\n"
            "except HivemindError as err:\n    print('HIVEMIND', err)\n    sys.exit(3)\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9", "HF_TOKEN": "hf_notarealtoken0000",
           "HF_HUB_ETAG_TIMEOUT": "2", "HF_HUB_DOWNLOAD_TIMEOUT": "2"}
    done = subprocess.run([sys.executable, "-c", code, str(analysed.results_dir)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 3, done.stderr[-2000:]
    assert "HIVEMIND could not push snapshot 'unreachable'" in done.stdout
    assert "Traceback" not in done.stdout


def test_publish_refuses_a_stale_analysis(analysed, tmp_path):
    """Systems added after the last analysis: the tables would not describe the published responses."""
    from hivemind.core.config import System

    extra = System(name="gamma", model="openai/model-gamma", api_base="http://127.0.0.1:9/v1")
    config = analysed.model_copy(update={"results_dir": str(tmp_path),
                                         "systems": [*analysed.systems, extra]})
    shutil.copytree(analysed.run_dir, config.run_dir)
    with pytest.raises(HivemindError, match="analyze"):
        snapshot.publish(config, "stale")
    assert not (tmp_path / "snapshots").exists()


def test_publish_to_hub_pushes_the_folder_just_published(tmp_path, monkeypatch):
    # The config's results_dir, not results/, holds the new snapshot: push must be given that folder.
    from hivemind import cli
    from hivemind.runs import snapshot as snapshot_module

    folder = tmp_path / "elsewhere" / "snapshots" / "snap"
    pushed = []
    monkeypatch.setattr(snapshot_module, "publish", lambda config, name, results_dir=None, **kw: folder)
    monkeypatch.setattr(snapshot_module, "push_to_hub", lambda target, repo, **kw: pushed.append((target, repo, kw)))
    assert cli.main(["snapshot", "publish", "demo", "--name", "snap", "--to-hub", "me/repo"]) == 0
    assert pushed == [(folder, "me/repo", {})]


def manifest_prompts(folder: Path) -> list[str]:
    """The prompt texts a snapshot carries (prompts.jsonl), whose vectors travel with it too."""
    return [json.loads(line)["prompt"] for line in (folder / "prompts.jsonl").read_text(encoding="utf-8").splitlines()]
