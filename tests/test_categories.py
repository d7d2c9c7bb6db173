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
from hivemind.core import taxonomy  # noqa: E402
from hivemind.core.config import RunConfig, System  # noqa: E402
from hivemind.collect.prompts import Prompt  # noqa: E402
from hivemind.store import Store  # noqa: E402

DEMO = Path(__file__).resolve().parents[1] / "prompts" / "demo.jsonl"
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


def test_every_demo_prompt_is_labelled_in_the_taxonomy_and_breaks_down_at_both_levels():
    from hivemind.collect.prompts import load_prompt_file

    prompts = load_prompt_file(DEMO)
    labels = {p.id: p.category for p in prompts}
    assert len(prompts) == 28 and set(labels.values()) <= set(taxonomy.LABELS), set(labels.values())
    assert {taxonomy.split(label)[0] for label in labels.values()} == set(taxonomy.TOPS)   # every top has prompts
    rng = np.random.default_rng(5)
    cells = pd.DataFrame([(system, pid, 10, float(rng.uniform(0.5, 0.95))) for system in ("a", "b")
                          for pid in labels], columns=["system", "prompt_id", "n_samples", "intra"])
    table = breakdowns.breakdown(cells, labels)
    pooled = table[table.system == "ALL"]
    assert set(pooled.level) == {"top", "fine"}
    tops, fines = pooled[pooled.level == "top"], pooled[pooled.level == "fine"]
    assert set(tops.category) == set(taxonomy.TOPS) and tops.n_prompts.sum() == 28
    assert set(fines.category) <= set(taxonomy.FINES) and fines.n_prompts.sum() == 28   # fine = top counts too
    assert "Creative Content Generation" in set(fines.category)
    for row in pooled.itertuples():
        part = 0 if row.level == "top" else 1
        pids = [pid for pid, label in labels.items()
                if (taxonomy.split(label)[part] or taxonomy.split(label)[0]) == row.category]
        assert row.n_prompts == len(pids)
        assert row.mean_intra == pytest.approx(cells[cells.prompt_id.isin(pids)].intra.mean())


def test_the_prompt_loader_writes_a_taxonomy_category_in_its_two_level_form(tmp_path):
    from hivemind.collect.prompts import load_prompt_file

    path = tmp_path / "prompts.jsonl"
    path.write_text('{"id": "a", "category": "problem solving", "prompt": "Fix my bike."}\n'
                    '{"id": "b", "category": "brainstorm & ideation", "prompt": "Name a cat."}\n'
                    '{"id": "c", "category": "poems", "prompt": "Write a poem."}\n', encoding="utf-8")
    assert [p.category for p in load_prompt_file(path)] == [
        "Information-Seeking > Problem Solving", "Brainstorm & Ideation", "poems"]


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


def test_the_taxonomy_has_the_papers_six_tops_and_seventeen_fines():
    assert len(taxonomy.TOPS) == 6 and len(taxonomy.FINES) == 17 and len(set(taxonomy.FINES)) == 17
    assert len(taxonomy.LABELS) == 17 and categories.DEFAULT_LABELS == list(taxonomy.LABELS)
    one_level = {"Creative Content Generation", "Brainstorm & Ideation"}   # no sub-category: fine = top
    assert {c.label for c in taxonomy.TAXONOMY if c.fine == c.top} == one_level
    assert all(" > " in label for label in set(taxonomy.LABELS) - one_level)
    for label in taxonomy.LABELS:
        assert taxonomy.canonical(label.upper()) == label
        assert f"- {label}\n" in classify_text("x")    # the LM is offered every two-level label
    assert taxonomy.canonical("personal  advice") == "Information-Seeking > Personal Advice"
    assert taxonomy.canonical("Information-Seeking") is None and taxonomy.canonical("humor") is None
    # the names the paper's own labelling prompt uses (the Hub set's labels) map too; its extra label does not
    assert taxonomy.canonical("Information-Seeking about Concept Explanations") == \
        "Information-Seeking > Concept Explanation"
    assert taxonomy.canonical("Ideation and Brainstorming") == "Brainstorm & Ideation"
    assert taxonomy.canonical("Opinion-Based Questions with Alternative Perspectives") is None


def classify_text(prompt: str) -> str:
    labels = categories.read_labels(None)
    return categories.CLASSIFY_PROMPT.format(labels="\n".join(f"- {label}" for label in labels), prompt=prompt)


def test_parse_label_maps_a_fine_name_to_its_top_and_refuses_what_is_no_one_label():
    labels = categories.read_labels(None)
    problem = "Information-Seeking > Problem Solving"
    for reply in ("Problem Solving", "problem solving.", "**Information-Seeking > Problem Solving**",
                  "Let me think.\nCategory: Problem Solving"):
        assert categories.parse_label(reply, labels) == (problem, None), reply
    assert categories.parse_label("Brainstorm & Ideation", labels) == ("Brainstorm & Ideation", None)
    for junk in ("banana", "Information-Seeking",                        # a top with fines is not one label
                 "Information-Seeking > Philosophical Questions",        # a fine under another top
                 "Value-Laden Questions or Controversial Questions", "**"):
        label, error = categories.parse_label(junk, labels)
        assert label is None and error.startswith("reply names"), junk


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
    turn is the prompt, the first predefined label its category (a taxonomy name in its "Top > Fine" form, any
    other as given); a missing category_field is a clear error."""
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
        {"conversation_id": "c4", "messages": [{"role": "user", "content": "How do I fix a flat tire?"}],
         "categories": [{"category": "Information-Seeking about Problem Solving", "type": "predefined"}]},
    ]
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    source = DatasetSource(dataset=str(folder), field="messages", category_field="categories",
                           id_field="conversation_id")
    prompts = load_dataset_prompts(source)
    assert [(p.id, p.text, p.category) for p in prompts] == [
        ("c1", "Write a metaphor about time.", "Creative Content Generation"),
        ("c2", "Is it ever right to lie?", "Opinions-Based Questions"),
        ("c3", "Name a startup idea.", None),
        ("c4", "How do I fix a flat tire?", "Information-Seeking > Problem Solving")]   # the paper's prompt's name
    with pytest.raises(HivemindError, match="no category_field 'category'.*categories"):
        load_dataset_prompts(DatasetSource(dataset=str(folder), field="messages", category_field="category"))


@pytest.mark.slow
def test_a_real_local_model_classifies_the_demo_prompts_into_taxonomy_labels_only(tmp_path):
    """SmolLM2-135M through the real llama.cpp server, on four demo prompts (every seventh): every
    stored label is one of the 17, a reply naming none is stored unparseable (this model mostly answers the
    request instead), and labelled prompts break down at both levels."""
    from hivemind.collect import local_server
    from hivemind.collect.prompts import load_prompt_file

    started = local_server.start_missing((local_server.SMOLLM2,))
    try:
        config = RunConfig(name="clf", prompts=str(DEMO), results_dir=str(tmp_path / "results"),
                           systems=[System(name="a", model="openai/a", api_base="http://127.0.0.1:9/v1")])
        prompts = load_prompt_file(DEMO)[::7]
        with Store(config.store_path) as store:
            store.add_prompts([Prompt(id=p.id, text=p.text, category=None) for p in prompts])
        model, api_base = f"openai/{local_server.SMOLLM2.alias}", local_server.SMOLLM2.api_base
        counts = categories.classify_run(config, model, api_base, progress=False)
    finally:
        local_server.stop_all(started)
    assert counts["failed"] == 0 and counts["labelled"] + counts["unparseable"] == len(prompts)
    with Store.open_readonly(config.store_path) as store:
        labels = store.prompt_labels()
        assert store.labelled_prompts(f"{model}@{api_base}") == {p.id for p in prompts}   # every reply stored
    assert len(labels) == counts["labelled"] and set(labels.values()) <= set(taxonomy.LABELS)
    if labels:
        table = breakdowns.breakdown(pd.DataFrame([("a", pid, 2, 0.5) for pid in labels],
                                                  columns=["system", "prompt_id", "n_samples", "intra"]), labels)
        assert {"top", "fine"} <= set(table.level)
