"""Per-category breakdown from the analysis tables and the store's categories, and the LM classifier
(cached, resumable, off-list replies counted, never guessed) against the fake OpenAI server."""

import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from fake_openai import FakeOpenAI  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from hivemind import HivemindError  # noqa: E402
from hivemind.analyze import categories as breakdowns
from hivemind.studies import classify as categories
from hivemind.core.config import RunConfig, System  # noqa: E402
from hivemind.collect.prompts import Prompt  # noqa: E402
from hivemind.store import Store  # noqa: E402

CATEGORIES = {"p0": "Creative > humor", "p1": "Creative > humor", "p2": "Creative > poetry", "p3": "Advice > career",
              "p4": None, "p5": "Creative > poetry"}


def per_prompt() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    rows = [(system, pid, 5, float(rng.uniform(0.6, 0.95))) for system in ("a", "b") for pid in CATEGORIES]
    rows.append(("b", "p3", 1, float("nan")))  # a cell analyze left undefined (one sample): not counted
    return pd.DataFrame(rows, columns=["system", "prompt_id", "n_samples", "intra"])


def test_breakdown_matches_direct_computation():
    cells = per_prompt()
    homogeneity = pd.DataFrame({"prompt_id": list(CATEGORIES), "mean_similarity": np.linspace(0.5, 0.9, 6)})
    table = breakdowns.breakdown(cells, CATEGORIES, homogeneity, min_prompts=3)
    valid = cells.dropna(subset=["intra"])
    groups = {("top", "Creative"): ["p0", "p1", "p2", "p5"], ("fine", "humor"): ["p0", "p1"],
              ("fine", "poetry"): ["p2", "p5"], ("top", "Advice"): ["p3"], ("fine", "career"): ["p3"],
              ("category", "(none)"): ["p4"]}
    assert len(table[table.system == "ALL"]) == len(groups)
    for (level, name), pids in groups.items():
        rows = table[(table.level == level) & (table.category == name)].set_index("system")
        part = valid[valid.prompt_id.isin(pids)]
        assert rows.loc["ALL", "n_prompts"] == len(pids)
        assert rows.loc["ALL", "mean_intra"] == pytest.approx(part.intra.mean())
        assert rows.loc["ALL", "share_above_0.8"] == pytest.approx((part.intra > 0.8).mean())
        expected_similarity = homogeneity.set_index("prompt_id").loc[pids, "mean_similarity"].mean()
        assert rows.loc["ALL", "mean_prompt_similarity"] == pytest.approx(expected_similarity)
        assert bool(rows.loc["ALL", "few_prompts"]) == (len(pids) < 3)
        for system in ("a", "b"):
            mine = part[part.system == system]
            assert rows.loc[system, "mean_intra"] == pytest.approx(mine.intra.mean())
    assert not table[(table.category == "Creative") & (table.system == "ALL")].few_prompts.item()


def make_run(tmp_path: Path, with_categories: bool = True) -> RunConfig:
    config = RunConfig(name="cats", prompts="prompts.jsonl", results_dir=str(tmp_path / "results"),
                       systems=[System(name="a", model="openai/a", api_base="http://127.0.0.1:9/v1")])
    with Store(config.store_path) as store:
        store.add_prompts([Prompt(id=pid, text=f"Write something about topic {pid}",
                                  category=category if with_categories else None)
                           for pid, category in CATEGORIES.items()])
    per_prompt().to_csv(config.run_dir / "intra_model_per_prompt.csv", index=False)
    return config


def test_categories_run_writes_the_table_and_flags_small_categories(tmp_path):
    config = make_run(tmp_path)
    path, frame = categories.categories_run(config, min_prompts=2)
    assert path == config.run_dir / "category_breakdown.csv" and path.is_file()
    written = pd.read_csv(path)
    assert set(written.category) == {"Creative", "humor", "poetry", "Advice", "career", "(none)"}
    flagged = set(written[(written.system == "ALL") & written.few_prompts].category)
    assert flagged == {"Advice", "career", "(none)"}
    assert "(few prompts)" in categories.summary(frame)


def test_no_categories_and_no_analysis_say_what_to_run(tmp_path):
    config = make_run(tmp_path, with_categories=False)
    with pytest.raises(HivemindError, match="hivemind classify cats --model"):
        categories.categories_run(config)
    (config.run_dir / "intra_model_per_prompt.csv").unlink()
    with pytest.raises(HivemindError, match="hivemind analyze cats"):
        categories.categories_run(config)


def test_parse_label_takes_one_named_label_or_nothing():
    labels = ["humor", "personal advice", "recommendations"]
    assert categories.parse_label("Humor", labels) == ("humor", None)
    assert categories.parse_label("Thinking...\n**personal advice**.", labels) == ("personal advice", None)
    assert categories.parse_label("humor or recommendations", labels)[0] is None
    assert categories.parse_label("", labels) == (None, "empty reply")


def test_classifier_off_list_replies_are_counted_and_a_rerun_asks_nothing(tmp_path, monkeypatch):
    config = make_run(tmp_path, with_categories=False)
    monkeypatch.setenv("CLASSIFY_TEST_KEY", "sk-classify-test-key-00000001")
    with FakeOpenAI() as fake:   # it answers "Answer <hash> to: ...": no category
        counts = categories.classify_run(config, "openai/classifier", fake.url, "CLASSIFY_TEST_KEY", progress=False)
        assert counts == {"labelled": 0, "unparseable": 6, "failed": 0, "skipped": 0}
        assert fake.requests == 6
        again = categories.classify_run(config, "openai/classifier", fake.url, "CLASSIFY_TEST_KEY", progress=False)
        assert again["skipped"] == 6 and fake.requests == 6
    with Store(config.store_path) as store:
        assert store.prompt_labels() == {}
        store.add_prompt_label("p0", "other-classifier", "humor", "humor", None)   # a classifier that answered
    _path, frame = categories.categories_run(config, min_prompts=1)
    assert set(frame.category) == {"humor", "(none)"}


def test_the_taxonomy_sets_shape_loads_text_and_first_predefined_category(tmp_path):
    """A local dataset shaped like liweijiang/infinite-chats-taxonomy (messages, categories as a list of
    {category, type}; written here, labelled a test fixture) loads through `datasets` offline: the first user
    turn is the prompt, the first predefined label its category; a missing category_field is a clear error."""
    import json

    from hivemind.core.config import DatasetSource
    from hivemind.collect.prompts import load_dataset_prompts

    folder = tmp_path / "taxonomy-shaped-fixture"
    folder.mkdir()
    rows = [
        {"conversation_id": "c1", "messages": [{"role": "user", "content": "Write a metaphor about time."}],
         "categories": [{"category": "my own label", "type": "new"},
                        {"category": "Creative Content Generation", "type": "predefined"}]},
        {"conversation_id": "c2", "messages": [{"role": "system", "content": "Be brief."},
                                               {"role": "user", "content": "Is it ever right to lie?"}],
         "categories": [{"category": "Opinions-Based Questions", "type": "predefined"}]},
        {"conversation_id": "c3", "messages": [{"role": "user", "content": "Name a startup idea."}],
         "categories": []},
    ]
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    source = DatasetSource(dataset=str(folder), field="messages", category_field="categories",
                           id_field="conversation_id")
    prompts = load_dataset_prompts(source)
    assert [(p.id, p.text, p.category) for p in prompts] == [
        ("c1", "Write a metaphor about time.", "Creative Content Generation"),
        ("c2", "Is it ever right to lie?", "Opinions-Based Questions"),
        ("c3", "Name a startup idea.", None)]
    with pytest.raises(HivemindError, match="no category_field 'category'.*categories"):
        load_dataset_prompts(DatasetSource(dataset=str(folder), field="messages", category_field="category"))
