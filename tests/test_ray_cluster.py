"""`--engine ray --ray-address` against a real existing Ray cluster: a head started with the Ray CLI
(`ray start --head` on loopback, its own temp dir and ports), and `hivemind embed` / `hivemind analyze`
run as separate CLI processes that join it. The vectors and tables must be the local engine's, the jobs
must be in that head's job table (so the CLI joined it rather than starting a cluster of its own), and
the head must still be up afterwards. The head uses token authentication, as `ray start` turns on by
itself when a token is on the machine: the CLI has to send that token.

Only this head is stopped at the end (also on failure): `ray stop` would stop every Ray process on the
machine, so the processes whose command line names this head's temp dir, and their children, are ended
by id.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from hivemind.analyze.stage import TABLES, analyze_run
from hivemind.embed.stage import embed_run

from test_distributed import DATA, assert_same_tables, read_tables, small_run, stored_vectors

import psutil  # noqa: E402  declared in the dev extra; missing, this module errors rather than skips
import ray  # noqa: E402,F401  a hard dependency (ray[data])

REPO = Path(__file__).resolve().parents[1]
RAY = Path(sys.executable).with_name("ray")
CLUSTER_CPUS = 2

pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"real data not found at {DATA}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ray_env(token_path: Path) -> dict[str, str]:
    """The environment of the head and of every CLI process: this token, and no auth mode forced either
    way (as on a user's machine)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_AUTH", "RAY_ADDRESS"))}
    return {**env, "RAY_AUTH_TOKEN_PATH": str(token_path), "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}


def stop_head(temp_dir: str) -> None:
    """End this head's processes only: those naming its temp dir, and their children."""
    me = psutil.Process()
    spare = {me.pid, *(p.pid for p in me.parents())}
    roots = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if proc.pid not in spare and any(temp_dir in arg for arg in proc.info["cmdline"] or []):
                roots.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    procs = {}
    for root in roots:
        try:
            for proc in [root, *root.children(recursive=True)]:
                procs[proc.pid] = proc
        except psutil.NoSuchProcess:
            continue
    for proc in procs.values():
        try:
            proc.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(list(procs.values()), timeout=15)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=10)


@pytest.fixture(scope="module")
def ray_head():
    """(address, env) of a running head; stopped (only it) at the end, whatever happened."""
    temp_dir = tempfile.mkdtemp(prefix="hmray", dir="/tmp")    # short: Ray's socket paths have a length limit
    token = Path(temp_dir) / "auth_token"
    token.write_text(secrets.token_hex(32))
    env = ray_env(token)
    port = free_port()
    command = [str(RAY), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
               f"--num-cpus={CLUSTER_CPUS}", "--include-dashboard=false", "--disable-usage-stats",
               f"--temp-dir={temp_dir}", f"--dashboard-port={free_port()}",
               f"--dashboard-agent-listen-port={free_port()}"]
    try:
        started = subprocess.run(command, capture_output=True, text=True, env=env, timeout=180)
        assert started.returncode == 0, started.stdout + started.stderr
        yield f"127.0.0.1:{port}", env
    finally:
        stop_head(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


def jobs_on(address: str, env: dict) -> list[dict]:
    """The head's job table (GCS), read by a separate driver process: entrypoint and whether it ended."""
    script = ("import json, ray, ray._private.state as state\n"
              f"ray.init(address={address!r}, log_to_driver=False, logging_level='ERROR')\n"
              "print(json.dumps({'cpus': ray.cluster_resources().get('CPU'), 'jobs': [\n"
              "    {'entrypoint': j.get('Entrypoint', ''), 'dead': j['IsDead']} for j in state.jobs()]}))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={**env, "RAY_AUTH_MODE": "token"}, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["cpus"] == CLUSTER_CPUS           # this head, not some other cluster
    return found["jobs"]


def hivemind(env: dict, results: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hivemind.cli", *args, "-q"], capture_output=True, text=True,
                          env={**env, "HIVEMIND_RESULTS": str(results)}, timeout=600, cwd=REPO)


def test_embed_and_analyze_join_an_existing_cluster(ray_head, tmp_path):
    address, env = ray_head
    local = small_run(tmp_path, "local")
    embed_run(local, progress=False)
    analyze_run(local, progress=False)
    ours = small_run(tmp_path, "cluster")
    results = Path(ours.results_dir)

    embedded = hivemind(env, results, "embed", ours.name, "--engine", "ray", "--ray-address", address)
    assert embedded.returncode == 0, embedded.stderr[-3000:]
    expected, got = stored_vectors(local), stored_vectors(ours)
    assert got.keys() == expected.keys() and len(got) > 0
    for text_hash, (vector, chunks) in expected.items():
        assert got[text_hash][1] == chunks
        np.testing.assert_allclose(got[text_hash][0], vector, rtol=0, atol=1e-6, err_msg=text_hash)
    assert any(chunks > 1 for _, chunks in expected.values())     # long answers went through the windows

    analyzed = hivemind(env, results, "analyze", ours.name, "--engine", "ray", "--ray-address", address)
    assert analyzed.returncode == 0, analyzed.stderr[-3000:]
    assert_same_tables(read_tables(local.run_dir), read_tables(ours.run_dir))
    assert all((ours.run_dir / name).is_file() for name in TABLES)
    assert json.loads((ours.run_dir / "analysis.json").read_text())["engine"].startswith("ray")

    # both CLI processes were drivers of this head, and finished; the head is still up (jobs_on connects)
    jobs = [j for j in jobs_on(address, env) if "hivemind.cli" in j["entrypoint"]]
    assert sorted(j["entrypoint"].split("hivemind.cli ")[1].split()[0] for j in jobs) == ["analyze", "embed"]
    assert all(j["dead"] and f"--ray-address {address}" in j["entrypoint"] for j in jobs)
    assert "Traceback" not in embedded.stderr + analyzed.stderr


def test_a_token_the_driver_lacks_is_a_clear_message(ray_head, tmp_path):
    """The same head with no token on the driver's side: refused with a message saying where the token goes,
    not a traceback after minutes of retries."""
    address, env = ray_head
    run = small_run(tmp_path, "notoken")
    env = {**env, "RAY_AUTH_TOKEN_PATH": str(tmp_path / "no-token-here"), "HOME": str(tmp_path)}
    done = hivemind(env, Path(run.results_dir), "embed", run.name, "--engine", "ray", "--ray-address", address)
    assert done.returncode == 1
    assert f"could not connect to Ray cluster at '{address}'" in done.stderr
    assert "RAY_AUTH_TOKEN" in done.stderr and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: could not connect to Ray cluster")


def test_run_with_engine_ray_gives_the_local_tables(ray_head, tmp_path):
    """`hivemind run --engine ray` on a run whose answers are imported (collect has nothing to ask, so no
    server is needed): embed, score (perplexity and relevance) and analyze on the cluster, through one
    connection, giving the local engine's vectors, scores and tables; the report is rendered as usual."""
    from hivemind import pipeline
    from hivemind.core.config import Scorer
    from hivemind.core.config_files import resolve_run
    from hivemind.results.record import save_run_config
    from hivemind.store import Store

    address, env = ray_head
    scorers = [Scorer(name="logprob", kind="perplexity", params={"n_ctx": 1024, "max_tokens": 32}),
               Scorer(name="relevance", kind="relevance")]
    local, ours = (small_run(tmp_path, name).model_copy(update={"scorers": scorers}) for name in ("here", "onray"))
    for config in (local, ours):
        save_run_config(config)
    local = resolve_run(local.run_dir)          # as the CLI reads it: prompts.jsonl beside the config
    before = {j["entrypoint"] for j in jobs_on(address, env)}
    pipeline.run(local, progress=False, with_report=False)

    done = hivemind(env, Path(ours.results_dir), "run", ours.name, "--engine", "ray", "--ray-address", address,
                    "--workers", "2")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "collected 0, embedded" in done.stdout and "logprob (perplexity): 18 scored" in done.stdout
    assert_same_tables(read_tables(local.run_dir), read_tables(ours.run_dir))
    assert json.loads((ours.run_dir / "analysis.json").read_text())["engine"].startswith("ray")
    assert (ours.run_dir / "report.html").is_file()
    with Store.open_readonly(local.store_path) as a, Store.open_readonly(ours.store_path) as b:
        expected, got = a.scores_frame(), b.scores_frame()
    # the two configured scorers, and the default fluency gate's scores the base run's store already held
    assert len(got) == 3 * 18 and set(got["scorer"]) == {"logprob", "relevance", "fluency"}
    np.testing.assert_allclose(got["score"].to_numpy(), expected["score"].to_numpy(), rtol=0, atol=1e-6)
    assert got.drop(columns="score").equals(expected.drop(columns="score"))
    # embed, score and analyze ran as one driver of this head: one new job, the `run` command, ended
    new = [j for j in jobs_on(address, env) if j["entrypoint"] not in before and "hivemind.cli" in j["entrypoint"]]
    assert len(new) == 1 and " run " in new[0]["entrypoint"] and new[0]["dead"]


def test_run_refuses_ray_options_without_the_ray_engine(tmp_path):
    run = small_run(tmp_path, "plain")
    done = hivemind(dict(os.environ, PYTHONPATH=str(REPO)), Path(run.results_dir), "run", run.name,
                    "--workers", "2")
    assert done.returncode == 1 and "--workers only apply with --engine ray" in done.stderr
    assert not (run.run_dir / "analysis.json").exists()
