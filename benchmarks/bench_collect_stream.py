"""Collect streams its work: peak memory of `hivemind collect` before its first answers, for a config with
a huge number of samples per prompt.

The collector used to build a list of every missing (prompt, sample) key before its first request; now each
system's keys come from a generator, taken one at a time by its `concurrency` workers. This starts the real
CLI (`python -m hivemind.cli collect`) against the fake OpenAI server (tests/fake_openai.py, out of process),
waits until a few answers are stored, reads the collector's peak resident memory (VmHWM in /proc), stops it
with SIGTERM (exit 143 expected, answers kept) and prints one line per code tree measured.

    .venv/bin/python benchmarks/bench_collect_stream.py [--samples 1000000] [--prompts 2]
    # before/after: the same measure on another checkout of the package (e.g. `git archive OLD hivemind`)
    .venv/bin/python benchmarks/bench_collect_stream.py --code /tmp/old --code .
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from fake_openai import FakeProcess  # noqa: E402

KEY_VAR = "HIVEMIND_BENCH_KEY"


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc status (Linux only)")


def answers(store: Path) -> int:
    if not store.exists():
        return 0
    db = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5)
    try:
        return db.execute("SELECT count(*) FROM responses WHERE text IS NOT NULL").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        db.close()


def measure(code: Path, url: str, folder: Path, samples: int, prompts: int) -> dict:
    """Start collect with the package at `code`, wait for 3 answers, read peak RSS, SIGTERM it."""
    prompt_file = folder / "prompts.jsonl"
    prompt_file.write_text("".join(json.dumps({"id": f"p{i}", "prompt": f"Question {i}: what do you think?"}) + "\n"
                                   for i in range(prompts)), encoding="utf-8")
    results = folder / "results"
    config = folder / "stream.yaml"
    config.write_text(json.dumps({   # JSON is YAML
        "name": "stream", "prompts": str(prompt_file), "samples": samples, "results_dir": str(results),
        "systems": [{"name": "s", "model": "openai/s", "api_base": url, "api_key_env": KEY_VAR,
                     "params": {"max_tokens": 16}, "concurrency": 8}]}), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(code), KEY_VAR: "sk-bench-local", "HF_HUB_OFFLINE": "1",
           "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "hivemind.cli", "collect", str(config), "-q"], cwd=folder,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while answers(results / "stream" / "store.sqlite") < 3:
            if process.poll() is not None:
                raise RuntimeError(f"collect ended early: {process.communicate()[1][-2000:]}")
            time.sleep(0.05)
        first = time.perf_counter() - started
        peak = peak_rss_mb(process.pid)
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return {"code": str(code), "peak_rss_mb": round(peak, 1), "seconds_to_3_answers": round(first, 1),
            "exit": process.returncode, "answers_kept": answers(results / "stream" / "store.sqlite")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--prompts", type=int, default=2)
    parser.add_argument("--code", type=Path, action="append",
                        help="a folder holding the hivemind package to measure (repeatable; default: this checkout)")
    args = parser.parse_args()
    with FakeProcess(delay=0.05) as url:
        for code in args.code or [ROOT]:
            with tempfile.TemporaryDirectory() as tmp:
                row = measure(code.resolve(), url, Path(tmp), args.samples, args.prompts)
            print(f"{args.prompts} prompts x {args.samples:,} samples: peak RSS {row['peak_rss_mb']} MB before the "
                  f"first answers ({row['seconds_to_3_answers']} s to 3 answers); SIGTERM exit {row['exit']}, "
                  f"{row['answers_kept']} answers kept  [{row['code']}]", flush=True)


if __name__ == "__main__":
    main()
