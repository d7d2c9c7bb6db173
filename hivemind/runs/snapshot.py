"""Snapshots: an immutable, self-describing copy of an analysed run, for publishing and re-analysis.

results/snapshots/NAME/ holds
    manifest.json        versions, public config, prompt-set hash, embedder, systems, counts, file hashes
    config.yaml          the run config (no secret values; key *variable names* only)
    responses.parquet    every response of the config's systems (Store.export_parquet)
    embeddings.parquet   text_hash, vector (list<float32>) for the config's embedder and those responses
    prompts.jsonl        the run's prompts in order (id, prompt, category)
    README.md, prompts.parquet, scores.parquet, tables/*.parquet   the Hugging Face dataset (hivemind.runs.hub)
    *.csv, analysis.json, *.json   the metric tables of the run
    *.png, *.svg, figures/ the figures, report.html, report.md (whatever the run folder has)

A snapshot never contradicts itself: publish runs under the run lock and, in the read transaction that
exports responses and vectors, recomputes the run's content fingerprint (hivemind.results.fingerprint) and refuses
unless it equals the one analyze recorded (and the report, if any, drew that analysis); the manifest keeps
the fingerprint. A snapshot is analysable alone: `imports.import_files([folder], name)` rebuilds a run from
responses.parquet + embeddings.parquet + config.yaml. The folder is written into a temporary sibling and
renamed at the end, so an error never leaves a partial snapshot; its files are made read-only and
`verify` recomputes every hash in the manifest. The manifest and analysis.json carry the pinned calibration the
tables were measured against (hivemind.results.calibration); importing the snapshot pins it (pin_calibration).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import yaml

from hivemind import __version__
from hivemind.core.config import RUN_CONFIG_NAME, STORE_NAME, RunConfig, check_name
from hivemind.core.errors import HivemindError
from hivemind.core.secrets import REDACTED, scrub, secret_values  # noqa: F401 (re-exported)
from hivemind.results.fingerprint import prompt_set_hash
from hivemind.results.folder import ANALYSIS, REPORT_HTML, REPORT_MD, SNAPSHOTS, new_folder, results_root
from hivemind.results.scan import find_secrets, leak_message
from hivemind.runs import hub
from hivemind.store import now

MANIFEST = "manifest.json"
SNAPSHOTS_DIR = SNAPSHOTS
FORMAT = "hivemind-snapshot/1"
PACKAGES = ("hivemind-bench", "litellm", "sentence-transformers", "faiss-cpu", "pandas", "numpy", "pyarrow",
            "datasets", "torch")
REPORT_FILES = (REPORT_HTML, REPORT_MD)
# Written by publish itself; a run-folder file of the same name is never copied over them.
WRITTEN = {MANIFEST, RUN_CONFIG_NAME, "responses.parquet", "embeddings.parquet", "prompts.jsonl"}
# Shared helpers ------------------------------------------------------------------------------------

def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def snapshots_root(results_dir: str | Path | None = None) -> Path:
    return results_root(results_dir) / SNAPSHOTS_DIR


# Publish -------------------------------------------------------------------------------------------

def default_name(run: str, today: str | None = None) -> str:
    """`<run>-<YYYY-MM-DD>` (UTC): the snapshot name when none is given."""
    import datetime

    return f"{run}-{today or datetime.datetime.now(datetime.timezone.utc).date().isoformat()}"


def publish(config: RunConfig, name: str, results_dir: str | Path | None = None,
            license: str = hub.DEFAULT_LICENSE, wait: bool = False) -> Path:
    """Write results/snapshots/NAME/ from the analysed run of `config`; return the folder.

    Runs under the run lock (a collect, embed, score or analyze in progress refuses it, naming the holder;
    wait=True waits instead), and checks in the same read transaction that exports the answers and vectors
    that the store still has the content fingerprint the analysis recorded (hivemind.results.fingerprint): the
    published tables were built on exactly the published answers, or nothing is written."""
    from hivemind.pipeline import locked

    check_name(name, "snapshot name")
    run_dir = config.run_dir
    if not (run_dir / STORE_NAME).is_file():
        raise HivemindError(f"{run_dir / STORE_NAME}: no store for run {config.name!r}; collect it first")
    with locked(config, "snapshot", wait):
        if not (run_dir / ANALYSIS).is_file():
            raise HivemindError(f"run {config.name!r} was never analysed ({run_dir / ANALYSIS} is missing); "
                                f"run `hivemind analyze {config.name}` first, then publish")
        from hivemind.results.fingerprint import store_fingerprint
        from hivemind.store import Store

        with Store.open_readonly(config.store_path) as store, store.transaction():
            # One read transaction: the fingerprint checked and the rows exported are the same state of the
            # store, even if a writer that takes no run lock commits meanwhile.
            current = store_fingerprint(store, config)
            _refuse_stale_analysis(config, current)
            return _publish_checked(config, name, results_dir, license, store, current)


def _publish_checked(config: RunConfig, name: str, results_dir: str | Path | None, license: str, store,
                     current: str) -> Path:
    root = snapshots_root(results_dir if results_dir is not None else config.results_dir)
    target = root / name
    if target.exists():
        raise HivemindError(f"snapshot {target} already exists and snapshots are never overwritten; "
                            f"choose another name")
    # Built whole in a staging folder of the results folder's write path, scanned, renamed into place in one
    # step (an existing name is refused there too): a snapshot appears complete or not at all.
    with new_folder(target, config=config) as out:
        _write_snapshot(config, name, out.dir, license, store, current)
    return target


def _refuse_stale_analysis(config: RunConfig, current: str) -> None:
    """The tables must describe the answers being published, else the snapshot contradicts itself."""
    from hivemind.results.fingerprint import read_analysis, stale_message

    problem = stale_message(config, current, read_analysis(config.run_dir))
    if problem:
        raise HivemindError(f"refusing to publish: {problem}")


def _refuse_stale_report(config: RunConfig) -> None:
    """A report drawn from another analysis than the published tables would contradict them."""
    from hivemind.results.fingerprint import report_is_current

    if any((config.run_dir / f).is_file() for f in REPORT_FILES) and not report_is_current(config.run_dir):
        raise HivemindError(f"refusing to publish: the report of run {config.name!r} was not drawn from its "
                            f"current analysis (analysis.json changed after it, or it predates report.json); "
                            f"run `hivemind report {config.name}`, then publish")


def _write_snapshot(config: RunConfig, name: str, folder: Path, license: str, store, current: str) -> None:
    """Everything into `folder`; `store` is inside the read transaction whose fingerprint (`current`) matched."""
    ids = [s.identity for s in config.systems]
    prompts = store.prompts()
    frame = hub.with_text_hash(store.responses_frame(ids))   # text_hash: the join key of embeddings.parquet
    frame.to_parquet(folder / "responses.parquet", index=False)
    hashes, vectors, chunks, tokens = store.embeddings_for_systems(config.embedder.id, ids)
    n_vectors = _write_embeddings(hashes, vectors, chunks, tokens, folder / "embeddings.parquet")
    with (folder / "prompts.jsonl").open("w", encoding="utf-8") as out:
        for p in prompts:  # every stored prompt in order, also those no system answered
            out.write(json.dumps({"id": p.id, "prompt": p.text, "category": p.category}, ensure_ascii=False) + "\n")
    public = hub.portable_config(scrub(config.public_dict()))
    (folder / RUN_CONFIG_NAME).write_text(yaml.safe_dump(public, sort_keys=False), encoding="utf-8")
    _copy_run_outputs(config.run_dir, folder)
    _copy_rubrics(config, folder)
    hub.write_dataset_files(config, folder, name, license, store)  # Parquet tables and the dataset card

    manifest = _manifest(config, name, public, prompts, frame, n_vectors, folder)
    manifest["fingerprint"] = current   # the content the tables were built on (hivemind.results.fingerprint)
    manifest["calibration"] = analysed_calibration(config.run_dir)   # the lines its figures were measured against
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    _refuse_local_paths(config, folder)
    leaks = find_secrets([folder], config)  # every file, the manifest included; publish removes the folder
    if leaks:
        raise HivemindError(leak_message(f"refusing to publish snapshot {name!r} (nothing was written)", [
            f"{path.relative_to(folder)} ({what}; from run folder {config.run_dir})" for path, what in leaks]))
    _refuse_stale_report(config)
    for path in folder.rglob("*"):
        if path.is_file():
            path.chmod(0o444)  # immutable: a later edit needs a deliberate chmod, and verify notices it
    folder.chmod(0o755)  # a published folder is readable by all


def _copy_rubrics(config: RunConfig, folder: Path) -> None:
    """The exact judge prompts the run's scores came from travel with them (rubrics/NAME.txt)."""
    from hivemind.score.judge import rubric_files

    paths = rubric_files(config)
    if paths:
        (folder / "rubrics").mkdir(exist_ok=True)
        for path in paths:
            shutil.copyfile(path, folder / "rubrics" / path.name)


def _refuse_local_paths(config: RunConfig, folder: Path) -> None:
    """A snapshot is read on other machines: no file may name a folder of this one."""
    roots = {config.run_dir.resolve(), Path(config.results_dir).resolve(), Path.cwd()}
    if isinstance(config.prompts, str) and Path(config.prompts).is_absolute():
        roots.add(Path(config.prompts).parent)
    hits = hub.find_local_paths(folder, [r for r in roots if len(r.parts) > 2])
    if hits:
        raise HivemindError("refusing to publish: a local path appears in " + ", ".join(hits)
                            + "; snapshots must not name folders of this machine")


def _write_embeddings(hashes: list[str], vectors: list, chunks: list, tokens: list, path: Path) -> int:
    """text_hash, vector, and the windows/tokens each text needed (null where unknown), answers and prompts."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    flat = np.concatenate(vectors) if vectors else np.zeros(0, dtype=np.float32)
    offsets = np.cumsum([0] + [len(v) for v in vectors]).astype(np.int32)
    column = pa.ListArray.from_arrays(pa.array(offsets, type=pa.int32()), pa.array(flat, type=pa.float32()))
    table = pa.table({"text_hash": pa.array(hashes, type=pa.string()), "vector": column,
                      "chunks": pa.array(chunks, type=pa.int32()), "tokens": pa.array(tokens, type=pa.int32())})
    pq.write_table(table, path)
    return len(hashes)


def _run_outputs(run_dir: Path) -> list[Path]:
    """Tables, figures and reports of a run folder (the store and its config are written separately)."""
    keep = []
    for path in sorted(run_dir.rglob("*")):
        if not path.is_file() or any(part.startswith(".") for part in path.relative_to(run_dir).parts):
            continue
        rel = path.relative_to(run_dir)
        if rel.as_posix() in WRITTEN:
            continue
        top_level = len(rel.parts) == 1
        if path.suffix in {".png", ".svg"} or (top_level and (path.suffix in {".csv", ".json"} or path.name in REPORT_FILES)):
            keep.append(rel)
    return keep


def _copy_run_outputs(run_dir: Path, folder: Path) -> None:
    for rel in _run_outputs(run_dir):
        destination = folder / rel
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(run_dir / rel, destination)


def _manifest(config: RunConfig, name: str, public: dict, prompts, frame, n_vectors: int, folder: Path) -> dict:
    per_system = {}
    systems = []
    for system in config.systems:
        rows = frame[frame["system_id"] == system.identity]
        answered = int(rows["text"].notna().sum())
        per_system[system.name] = int(len(rows))
        systems.append(scrub({
            "name": system.name, "identity": system.identity, "model": system.model,
            "api_base": system.api_base, "api_key_env": system.api_key_env, "params": system.params,
            "responses": int(len(rows)), "answered": answered, "failed": int(len(rows)) - answered,
        }))
    files = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        files[rel] = {"sha256": file_sha256(path), "bytes": path.stat().st_size}
    return {
        "format": FORMAT,
        "name": name,
        "run": config.name,
        "created_at": now(),
        "hivemind_version": __version__,
        "packages": package_versions(),
        "config": public,
        "prompt_set_hash": prompt_set_hash(prompts),
        "embedder": config.embedder.id,
        "systems": systems,
        "counts": {
            "prompts": len(prompts),
            "responses": int(len(frame)),
            "answered": int(frame["text"].notna().sum()),
            "embeddings": n_vectors,
            "per_system": per_system,
        },
        "files": files,
    }


# The pinned calibration a snapshot carries ----------------------------------------------------------

def analysed_calibration(folder: Path) -> dict | None:
    """analysis.json's `calibration` (hivemind.results.calibration) in a run or snapshot folder; None if none."""
    try:
        record = json.loads((folder / ANALYSIS).read_text(encoding="utf-8")).get("calibration")
    except (OSError, ValueError, AttributeError):
        return None
    return record if isinstance(record, dict) else None


def pin_calibration(folder: Path, results_dir: str | Path | None) -> Path | None:
    """Importing a snapshot pins the calibration it was measured against (its manifest's, else its
    analysis.json's) unless one is pinned for that key already, so its systems' own figures come out as
    published. None when nothing was pinned."""
    from hivemind.results.calibration import pin_imported

    manifest = load_manifest(folder) if (folder / MANIFEST).is_file() else {}
    record = manifest.get("calibration") or analysed_calibration(folder)
    return pin_imported(results_dir, record, f"snapshot {manifest.get('name') or folder.name}")


# Verify --------------------------------------------------------------------------------------------

@dataclass
class VerifyResult:
    path: Path
    checked: int = 0
    changed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.changed or self.missing or self.unexpected)

    def __str__(self) -> str:
        return self.describe()

    def describe(self) -> str:
        if self.ok:
            return f"snapshot {self.path}: OK, {self.checked} files match the manifest"
        lines = [f"snapshot {self.path} does not match its manifest:"]
        lines += [f"  changed:    {name}" for name in self.changed]
        lines += [f"  missing:    {name}" for name in self.missing]
        lines += [f"  unexpected: {name}" for name in self.unexpected]
        return "\n".join(lines)


def resolve_snapshot(name_or_path: str | Path, results_dir: str | Path | None = None) -> Path:
    as_path = Path(name_or_path)
    if (as_path / MANIFEST).is_file():
        return as_path
    candidate = snapshots_root(results_dir) / str(name_or_path)
    if candidate.is_dir():
        return candidate
    if as_path.is_dir():
        return as_path  # a folder without a manifest: verify reports that
    raise HivemindError(f"no snapshot {str(name_or_path)!r} (looked for {candidate}); "
                        f"publish one with `hivemind snapshot publish RUN --name NAME`")


def load_manifest(folder: Path) -> dict:
    path = folder / MANIFEST
    if not path.is_file():
        raise HivemindError(f"{path}: missing; this folder is not a snapshot or its manifest was deleted")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise HivemindError(f"{path}: malformed manifest ({err}); the snapshot cannot be verified") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise HivemindError(f"{path}: manifest has no 'files' table; the snapshot cannot be verified")
    return manifest


def check(name_or_path: str | Path, results_dir: str | Path | None = None) -> VerifyResult:
    """Compare every file with the manifest's hashes; never raises for a mismatch."""
    folder = resolve_snapshot(name_or_path, results_dir)
    manifest = load_manifest(folder)
    result = VerifyResult(path=folder)
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} - {MANIFEST}
    for rel, entry in sorted(manifest["files"].items()):
        path = folder / rel
        if rel not in present:
            result.missing.append(rel)
            continue
        result.checked += 1
        if file_sha256(path) != entry.get("sha256"):
            result.changed.append(rel)
    result.unexpected = sorted(present - set(manifest["files"]))
    return result


def verify(name_or_path: str | Path, results_dir: str | Path | None = None) -> VerifyResult:
    """Recompute every hash; HivemindError listing each changed, missing or unexpected file."""
    result = check(name_or_path, results_dir)
    if not result.ok:
        raise HivemindError(result.describe() + "\nthe snapshot was modified after publishing; "
                            "publish the run again under a new name")
    return result


# Push ----------------------------------------------------------------------------------------------

def push_to_hub(name_or_path: str | Path, repo: str, results_dir: str | Path | None = None,
                private: bool = False) -> str:
    """Upload the whole snapshot folder as a Hugging Face dataset in one commit, tagged with its name.

    The token comes from the usual huggingface_hub places (HF_TOKEN, `hf auth login`); see hub.push."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}:
        raise HivemindError(f"cannot push to {repo!r}: HF_HUB_OFFLINE is set; unset it (and be online) to push")
    folder = verify(name_or_path, results_dir).path  # never publish a tampered snapshot
    return hub.push(folder, repo, tag=load_manifest(folder).get("name") or folder.name, private=private)
