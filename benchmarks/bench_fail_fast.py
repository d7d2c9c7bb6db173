"""How fast an endpoint that will never answer is named: the wall-clock bounds the tests used to assert.

Tests check what is said (the address, "unreachable", "cannot reach", the other systems' answers kept);
how long it takes depends on the machine's load, so it is measured here instead:

  1. `probe()` of a Ray address where nothing listens              target < 10 s
  2. `hivemind embed RUN --engine ray --ray-address <dead>`        target < 60 s (a fresh process)
  3. `hivemind collect` with a refused port and an unknown host,
     default retry settings (8 attempts, backoff 1 s .. 60 s)      target < 60 s (the give-up window is 10 s;
                                                                   8 full backoffs would take minutes)

    .venv/bin/python benchmarks/bench_fail_fast.py
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from fake_openai import FakeOpenAI  # noqa: E402

from hivemind import HivemindError  # noqa: E402
from hivemind.cli import main as cli_main  # noqa: E402

KEY_VAR = "HIVEMIND_BENCH_KEY"


def free_port() -> int:
    """A port on 127.0.0.1 with nothing listening (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_config(folder: Path, systems: list[dict], **settings) -> Path:
    prompts = folder / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"p{i}", "prompt": f"Name a colour you like, take {i}."}) + "\n"
                               for i in range(4)), encoding="utf-8")
    data = {"name": "failfast", "prompts": str(prompts), "samples": 2, "results_dir": str(folder / "results"),
            "systems": systems, **settings}
    path = folder / "failfast.yaml"
    path.write_text(json.dumps(data), encoding="utf-8")   # JSON is YAML
    return path


def timed(what: str, call) -> float:
    started = time.perf_counter()
    call()
    seconds = time.perf_counter() - started
    print(f"  {what:<58} {seconds:6.2f} s", flush=True)
    return seconds


def probe_dead_ray_address() -> None:
    from hivemind.engines.ray.cluster import probe

    try:
        probe(f"127.0.0.1:{free_port()}")
    except HivemindError as err:
        assert "unreachable" in str(err), err
    else:
        raise AssertionError("probe of a dead address did not fail")


def cli_embed_on_dead_cluster(folder: Path, config: Path) -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "hivemind.cli", "embed", str(config), "--engine", "ray",
                           "--ray-address", f"127.0.0.1:{port}", "-q"], capture_output=True, text=True, env=env,
                          cwd=folder, timeout=600)
    assert done.returncode == 1 and f"127.0.0.1:{port}" in done.stderr, done.stderr[-2000:]


def quiet_cli(args: list[str]) -> tuple[int, str]:
    """cli.main with its printed summary and error captured: (exit code, stderr)."""
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = cli_main(args)
    return code, err.getvalue()


def collect_with_dead_endpoints(config: Path) -> None:
    code, err = quiet_cli(["collect", str(config), "-q"])
    assert code == 1 and "cannot reach" in err, err


def main() -> None:
    os.environ[KEY_VAR] = "sk-bench-fail-fast"
    print("Fail-fast benchmark (benchmarks/bench_fail_fast.py)")
    with tempfile.TemporaryDirectory() as tmp, FakeOpenAI() as server:
        folder = Path(tmp)
        alive = {"name": "alive", "model": "openai/alive", "api_base": server.url, "api_key_env": KEY_VAR}
        (folder / "ok").mkdir()
        ok_run = write_config(folder / "ok", [alive])
        assert quiet_cli(["collect", str(ok_run), "-q"])[0] == 0
        import litellm  # noqa: F401  (imported before timing: interpreter start-up is not the collector's time)

        probe_s = timed("probe() of a dead Ray address (target < 10 s)", probe_dead_ray_address)
        embed_s = timed("`hivemind embed --engine ray`, dead address (target < 60 s)",
                        lambda: cli_embed_on_dead_cluster(folder, ok_run))
        dead = folder / "dead"
        dead.mkdir()
        systems = [alive, {"name": "refused", "model": "openai/refused", "api_key_env": KEY_VAR,
                           "api_base": f"http://127.0.0.1:{free_port()}/v1"},
                   {"name": "nohost", "model": "openai/nohost", "api_key_env": KEY_VAR,
                    "api_base": "http://hivemind-no-such-host.invalid/v1"}]
        dead_run = write_config(dead, systems, max_attempts=8, retry_base_delay=1.0, retry_max_delay=60.0)
        collect_s = timed("`hivemind collect`, refused port + unknown host (target < 60 s)",
                          lambda: collect_with_dead_endpoints(dead_run))
    verdict = probe_s < 10 and embed_s < 60 and collect_s < 60
    print(f"  all within target: {'yes' if verdict else 'NO'}")


if __name__ == "__main__":
    main()
