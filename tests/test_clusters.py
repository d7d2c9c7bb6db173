"""The cluster view on real embeddings (the bundled all-MiniLM-L6-v2): answers written around three ideas by
three systems fall into three clusters, each with its systems and its most central answer."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from hivemind import HivemindError  # noqa: E402
from hivemind.studies import clusters
from hivemind.core.config import RunConfig, System  # noqa: E402
from hivemind.results.record import save_run_config
from hivemind.collect.prompts import Prompt  # noqa: E402
from hivemind.store import Response, Store  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
IDEAS = {
    "river": ["Time is a river that carries us downstream, never flowing back.",
              "Time is a river: it keeps flowing and we cannot step into the same moment twice.",
              "Like a river, time flows on, carrying every moment out to sea."],
    "thief": ["Time is a thief that steals our days while we are not looking.",
              "Time is a quiet thief, taking the years one by one without a sound.",
              "Time steals everything, a thief in the night who never returns what he takes."],
    "weaver": ["Time is a weaver, threading our moments into one long tapestry.",
               "Time weaves the threads of our lives into a tapestry we only see at the end.",
               "Time is a loom: each day a thread woven into the fabric of a life."],
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("clusters")
    systems = [System(name=f"s{i}", model=f"openai/s{i}", api_base="http://127.0.0.1:9/v1") for i in range(3)]
    config = RunConfig(name="clusters", prompts=str(tmp / "prompts.jsonl"), systems=systems,
                       results_dir=str(tmp / "results"))
    with Store(config.store_path) as store:
        for s in systems:
            store.add_system(s.identity, s.name, s.model, s.api_base, s.params)
        store.add_prompts([Prompt(id="time", text="Write a metaphor about time"),
                           Prompt(id="other", text="Name a colour")])
        responses = [Response(system_id=systems[i].identity, prompt_id="time", sample=j, text=IDEAS[idea][i])
                     for j, idea in enumerate(IDEAS) for i in range(3)]
        store.add_responses(responses)
    save_run_config(config)
    from hivemind.embed.stage import embed_run

    embed_run(config, progress=False)
    return config


def test_three_ideas_make_three_clusters_with_every_system(run):
    table, figure, found, labels = clusters.clusters_run(run, "time", k=3)
    assert table.is_file() and figure.is_file() and figure.stat().st_size > 1000
    assert sorted(c.size for c in found) == [3, 3, 3]
    assert all(c.systems == {"s0": 1, "s1": 1, "s2": 1} for c in found)
    frame = pd.read_csv(table)
    assert list(frame.columns) == ["cluster", "size", "n_systems", "systems", "central_system",
                                   "central_similarity", "central_text"]
    # The central answer is the member with the highest cosine to the normalised member mean.
    with Store(run.store_path) as store:
        group = store.prompt_group(run.embedder.id, [s.identity for s in run.systems], "time")
    for c in found:
        members = np.flatnonzero(labels == c.cluster)
        texts = {group.texts[i] for i in members}
        assert texts in [set(t) for t in IDEAS.values()]      # one cluster per idea
        assert c.central_text in texts
        centre = group.vectors[members].mean(axis=0)
        centre /= np.linalg.norm(centre)
        best = members[np.argmax(group.vectors[members] @ centre)]
        assert group.texts[best] == c.central_text


def test_bad_requests_say_what_to_do(run):
    with pytest.raises(HivemindError, match="no prompt 'nope'"):
        clusters.clusters_run(run, "nope")
    with pytest.raises(HivemindError, match="hivemind embed clusters"):
        clusters.clusters_run(run, "other")
    with pytest.raises(HivemindError, match="lower -k"):
        clusters.clusters_run(run, "time", k=10)


def test_clusters_command(run):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HIVEMIND_RESULTS": run.results_dir}
    done = subprocess.run([sys.executable, "-m", "hivemind.cli", "clusters", "clusters", "--prompt", "time", "-k", "3"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("3 answers from 3 systems") == 3
