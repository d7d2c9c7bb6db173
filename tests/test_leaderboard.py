"""Cross-run leaderboard: comparable runs grouped, and add_system asks only for the new system."""

import json
import os
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from fake_openai import FakeOpenAI  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from hivemind import HivemindError  # noqa: E402
from hivemind.runs import leaderboard
from hivemind.core.config_files import load_config  # noqa: E402
from hivemind.store import Prompt, Store  # noqa: E402

KEY_VAR = "HIVEMIND_LEADERBOARD_TEST_KEY"
SECRET = "sk-planted-leaderboard-0a1b2c3d4e5f"


# Unit level: grouping and ranking over hand-made run folders ---------------------------------------

def fake_run(results: Path, name: str, prompts: list[str], embedder: str, shares: dict[str, float]) -> None:
    folder = results / name
    folder.mkdir(parents=True)
    with Store(folder / "store.sqlite") as store:
        store.add_prompts(Prompt(f"q{i}", text) for i, text in enumerate(prompts))
    (folder / "config.yaml").write_text(yaml.safe_dump({"name": name, "embedder": embedder}))
    (folder / "analysis.json").write_text(json.dumps({"embedder": f"sentence-transformers:{embedder}",
                                                      "created_at": "2025-01-02T03:04:05Z",
                                                      "primary_key": "effective_diversity"}))
    rows = [{"effective_diversity": share, "effective_diversity_ci_low": share - 0.05,
             "effective_diversity_ci_high": share + 0.05, "rank": "", "system": s, "kind": "system",
             "model": f"m-{s}", "intra_mean": share, "share_above_0.8": share,
             "inter_mean_others": 0.5, "near_duplicate_rate": 0.1, "mean_distinct_neighbors": 2.0,
             "distinct_2": 0.7, "compression_ratio": 2.5, "n_prompts": len(prompts), "n_responses": 10}
            for s, share in shares.items()]
    pd.DataFrame(rows).to_csv(folder / "leaderboard.csv", index=False)


def test_only_comparable_runs_are_ranked_together(tmp_path):
    results = tmp_path / "results"
    fake_run(results, "run-a", ["p1", "p2"], "mini", {"x": 0.5, "y": 0.9})
    fake_run(results, "run-b", ["p1", "p2"], "mini", {"z": 0.7, "t": 0.7})   # same prompts and embedder
    fake_run(results, "run-c", ["p1", "p2 changed"], "mini", {"w": 0.99})    # other prompt texts
    fake_run(results, "run-d", ["p1", "p2"], "other-embedder", {"v": 0.1})   # other embedder
    (results / "snapshots" / "s1").mkdir(parents=True)                         # never a run
    paths = leaderboard.update_leaderboard(results)
    assert paths == [results / "leaderboard.csv", results / "leaderboard.md"]

    table = pd.read_csv(paths[0])
    assert list(table.columns[:6]) == ["primary_key", "primary", "primary_ci_low", "primary_ci_high", "group", "rank"]
    assert table["group"].nunique() == 3
    ab = table[table["run"].isin(["run-a", "run-b"])]
    assert ab["group"].nunique() == 1
    # Most diverse first (effective diversity, descending); the two equal values share rank 2.
    assert list(ab["system"]) == ["y", "t", "z", "x"]
    assert list(ab["rank"].astype(str)) == ["1", "2=", "2=", "4"]
    assert (ab["primary_ci_low"] < ab["primary"]).all() and (ab["primary"] < ab["primary_ci_high"]).all()
    assert str(table.loc[table["system"] == "w", "rank"].item()) == "1"  # ranks restart per group
    assert str(table.loc[table["system"] == "v", "rank"].item()) == "1"
    assert set(table["date"]) == {"2025-01-02T03:04:05Z"}
    assert (table["group"] == sorted(table["group"])).all()
    row = table[table["system"] == "y"].iloc[0]
    assert row["distinct_2"] == 0.7 and row["compression_ratio"] == 2.5 and row["n_prompts"] == 2

    markdown = paths[1].read_text()
    assert markdown.count("## Group") == 3
    assert "| 0.900 [0.850, 0.950] | 1 | y | run-a |" in markdown
    # run-d used another embedder: ranked apart, and the page says raw values are not comparable
    warning = next(line for line in markdown.splitlines() if line.startswith("**Warning:** raw cosines from"))
    assert "other-embedder" in warning and "mini" in warning and "never compared raw" in warning


def test_empty_results_are_an_error_not_an_empty_table(tmp_path):
    with pytest.raises(HivemindError, match="no analysed runs"):
        leaderboard.update_leaderboard(tmp_path / "nothing-yet")
    assert not (tmp_path / "nothing-yet" / "leaderboard.csv").exists()


# End to end: grow a run by one system --------------------------------------------------------------

SYSTEM = """  - name: {name}
    model: openai/model-{name}
    api_base: {url}
    api_key_env: {key}
    params: {{temperature: 1.0, top_p: 0.9}}
"""


def test_add_system_requests_only_the_new_system(tmp_path, monkeypatch):
    from hivemind.analyze import stage as analyze
    from hivemind.collect import stage as collect
    from hivemind.embed import stage as embed

    monkeypatch.setenv(KEY_VAR, SECRET)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"q{i}", "prompt": t}) + "\n"
                               for i, t in enumerate(["Write a haiku about rain", "Give me a startup idea",
                                                      "Describe the sea in one sentence"])))
    results = tmp_path / "results"
    config_path = tmp_path / "grow.yaml"
    with FakeOpenAI(expected_api_key=SECRET, enforce_api_key=True) as server:
        head = f"name: grow\nprompts: {prompts}\nsamples: 3\nresults_dir: {results}\nsystems:\n"
        config_path.write_text(head + "".join(SYSTEM.format(name=n, url=server.url, key=KEY_VAR)
                                              for n in ("alpha", "beta")))
        config = load_config(config_path)
        collect.collect_run(config, progress=False)
        embed.embed_run(config, progress=False)
        analyze.analyze_run(config, progress=False)
        leaderboard.update_leaderboard(results)
        assert len(pd.read_csv(results / "leaderboard.csv")) == 2

        # The user adds a third system to the config file, then asks for it alone.
        with config_path.open("a") as out:
            out.write(SYSTEM.format(name="gamma", url=server.url, key=KEY_VAR))
        server.reset_counts()
        with pytest.raises(HivemindError, match="no system named 'delta'; add it under `systems:` first"):
            leaderboard.add_system(config_path, "delta")
        with pytest.raises(HivemindError, match="'demo' is a packaged config: copy it to a file"):
            leaderboard.add_system("demo", "delta", results_dir=tmp_path / "elsewhere")
        summary = leaderboard.add_system(config_path, "gamma", progress=False)
        assert dict(server.by_model) == {"model-gamma": 9}
        assert server.auth_bad == 0
        assert not summary.already and summary.rank.of == 3 and summary.rank.label.rstrip("=") in {"1", "2", "3"}
        assert f"gamma ranks {summary.rank.label} of 3 by effective diversity" in str(summary)
        # its neighbours in the ranking, and the systems that answer most like it, from the run's own tables
        board = pd.read_csv(results / "leaderboard.csv", dtype={"rank": str})
        order = list(board["system"])
        at = order.index("gamma")
        assert (summary.rank.above.split(" ")[0] if summary.rank.above else None) == (order[at - 1] if at else None)
        assert (summary.rank.below.split(" ")[0] if summary.rank.below else None) == \
            (order[at + 1] if at + 1 < len(order) else None)
        inter = pd.read_csv(results / "grow" / "inter_model_similarity.csv", index_col=0)
        closest = inter.loc["gamma"].drop("gamma").sort_values(ascending=False)
        assert [name for name, _ in summary.nearest] == list(closest.index)
        assert f"closest systems (mean cosine of their answers to the same prompts): {closest.index[0]} " \
               f"{closest.iloc[0]:.3f}" in str(summary)
        assert summary.report == results / "grow" / "report.html" and summary.report.is_file()

        # Asked again: present and analysed on the unchanged store, so nothing is asked, run or rewritten.
        server.reset_counts()
        before = {p: p.read_bytes() for p in results.rglob("*") if p.is_file() and p.name != ".lock"}
        again = leaderboard.add_system(config_path, "gamma", progress=False)
        assert again.already and dict(server.by_model) == {}
        assert "already in run 'grow'" in str(again) and "added system" not in str(again)
        assert again.rank == summary.rank and again.nearest == summary.nearest
        again = leaderboard.add_system("grow", "gamma", results_dir=results, progress=False)   # named by run name
        assert again.already and again.rank == summary.rank
        assert {p: p.read_bytes() for p in results.rglob("*") if p.is_file() and p.name != ".lock"} == before

    assert summary.collect.stored == 9
    assert summary.embed.embedded == 9            # the other systems' texts came from the cache
    similarity = pd.read_csv(results / "grow" / "inter_model_similarity.csv", index_col=0)
    assert similarity.shape == (3, 3)
    assert list(similarity.index) == ["alpha", "beta", "gamma"]
    board = pd.read_csv(results / "leaderboard.csv")
    assert sorted(board["system"]) == ["alpha", "beta", "gamma"]
    assert set(board["run"]) == {"grow"} and board["group"].nunique() == 1
    assert "gamma" in (results / "leaderboard.md").read_text()
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
