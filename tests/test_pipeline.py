"""End to end on the embedded default: `hivemind run` with the real local models, then the stage commands
by run name, as a user types them."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from hivemind.collect import local_server
from local_fixture import local_servers  # noqa: F401  (session fixture)

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def hivemind(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", LITELLM_LOCAL_MODEL_COST_MAP="True")
    return subprocess.run([sys.executable, "-m", "hivemind.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)


def test_run_then_stages_by_name(local_servers, tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(textwrap.dedent(f"""
        name: tiny
        prompts: {ROOT / "prompts" / "demo.jsonl"}
        limit: 3
        samples: 3
        systems:
          - name: smollm2-top-p
            model: openai/{local_server.SMOLLM2.alias}
            api_base: {local_server.SMOLLM2.api_base}
            params: {{temperature: 1.0, top_p: 0.9, max_tokens: 24}}
          - name: smollm2-min-p
            model: openai/{local_server.SMOLLM2_SECOND.alias}
            api_base: {local_server.SMOLLM2_SECOND.api_base}
            params: {{temperature: 2.0, top_p: 1.0, min_p: 0.1, max_tokens: 24}}
          - name: gemma3-base
            model: openai/{local_server.GEMMA3.alias}
            api_base: {local_server.GEMMA3.api_base}
            params: {{temperature: 1.0, top_p: 0.9, max_tokens: 24}}
    """))
    done = hivemind("run", str(config), "-q", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    run_dir = tmp_path / "results" / "tiny"
    for name in ("report.html", "report.md", "intra_model_heatmap.png", "inter_model_heatmap.png",
                 "inter_model_similarity.csv", "leaderboard.csv", "config.yaml"):
        assert (run_dir / name).is_file(), name
    matrix = pd.read_csv(run_dir / "inter_model_similarity.csv", index_col=0)
    assert list(matrix.index) == ["smollm2-top-p", "smollm2-min-p", "gemma3-base"]

    # Every stage by run name; a second pass costs nothing and changes no answer.
    for stage in ("collect", "embed", "analyze", "report"):
        again = hivemind(stage, "tiny", "-q", cwd=tmp_path)
        assert again.returncode == 0, (stage, again.stderr)
    assert "collected 0 new answers (27 already stored" in hivemind("collect", "tiny", "-q", cwd=tmp_path).stdout
    assert "embedded 0 new texts" in hivemind("embed", "tiny", "-q", cwd=tmp_path).stdout


def test_unknown_run_is_a_clear_error(tmp_path):
    done = hivemind("analyze", "no-such-run", cwd=tmp_path)
    assert done.returncode == 1
    assert "no-such-run" in done.stderr and "Traceback" not in done.stderr


def test_run_opens_the_store_once_and_hands_it_to_every_stage(tmp_path):
    """collect, embed, score (relevance: it embeds the prompts too), analyze, results.json and report all work
    on the one connection the orchestrator's Run opened when collect made the store (tests/store_opens.py
    counts every SQLite connection to the store with an audit hook; the code before the Run opened ten)."""
    import json

    sys.path.insert(0, str(ROOT / "tests"))
    from fake_openai import FakeOpenAI

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"q{i}", "prompt": t}) + "\n"
                               for i, t in enumerate(["Write a haiku about rain", "Name a boat", "Name a cat"])))
    out = tmp_path / "opened.json"
    with FakeOpenAI() as fake:
        config = tmp_path / "once.yaml"
        config.write_text(f"name: once\nprompts: {prompts}\nsamples: 2\nresults_dir: {tmp_path / 'results'}\n"
                          "systems:\n" + "".join(f"  - name: {n}\n    model: openai/m-{n}\n    api_base: {fake.url}\n"
                                                 for n in ("a", "b"))
                          + "scorers:\n  - name: relevance\n    kind: relevance\n")
        env = dict(os.environ, HF_HUB_OFFLINE="1", LITELLM_LOCAL_MODEL_COST_MAP="True", PYTHONPATH=str(ROOT))
        done = subprocess.run([sys.executable, str(ROOT / "tests" / "store_opens.py"), str(config), str(out)],
                              env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "results" / "once" / "report.html").is_file()
    assert json.loads(out.read_text()) == [{"read_only": False, "by": "collect/stage.py:collect_run"}]
