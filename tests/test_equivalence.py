"""The equivalence methods behind distinct ideas: NoveltyBench's partition over any judge of sameness, the pair
features and the shipped pair model, the training script's reproducibility, `hivemind validate`, and the
config that chooses a method."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hivemind.analyze.diversity import DiversityAccumulator, partition
from hivemind.analyze.equivalence import (
    MODEL_FILE,
    PAIR_FEATURES,
    EmbeddingLine,
    LearnedEquivalence,
    PairFeatures,
    PairModel,
    VerdictEquivalence,
    greedy_partition,
    pair_features,
    shipped_model,
    short_answer_same,
)
from hivemind.analyze.equivalence_choice import equivalence_for
from hivemind.core.config import RunConfig
from hivemind.core.errors import HivemindError
from hivemind.store import PromptGroup

NOVELTYBENCH = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "noveltybench_dev"
needs_noveltybench = pytest.mark.skipif(not NOVELTYBENCH.is_dir(), reason=f"{NOVELTYBENCH} not present")


def noveltybench_loop(same: np.ndarray) -> tuple[np.ndarray, set]:
    """NoveltyBench's partition as its code reads: each answer against each class's first member, in order;
    also the pairs it compared."""
    classes: list[list[int]] = []
    asked = set()
    for i in range(len(same)):
        for members in classes:
            asked.add((members[0], i))
            if same[members[0], i]:
                members.append(i)
                break
        else:
            classes.append([i])
    labels = np.empty(len(same), dtype=np.int64)
    for c, members in enumerate(classes):
        labels[members] = c
    return labels, asked


@pytest.mark.parametrize("seed", range(20))
def test_greedy_partition_is_noveltybench_loop_and_asks_its_pairs(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 30))
    same = rng.random((n, n)) < rng.uniform(0.05, 0.6)     # not transitive, not symmetric: any judge
    asked = set()

    def judge(i, later):
        asked.update((i, int(j)) for j in later)
        return same[i, later]
    labels = greedy_partition(n, judge)
    expected, expected_asked = noveltybench_loop(same)
    assert labels.tolist() == expected.tolist()
    assert asked >= expected_asked          # every pair the loop compares is asked ...
    # ... and an answer is never asked about a class after the one it joined
    for rep, j in asked:
        assert labels[rep] <= labels[j] or rep == j


def test_embedding_line_is_the_cosine_partition():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 8))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    assert EmbeddingLine(0.3).partition(x).tolist() == partition(x, 0.3).tolist()


def test_pair_features_are_symmetric_and_rows_agree():
    rng = np.random.default_rng(1)
    texts = ["**Paris** is the capital of France.", "The capital of France is **Paris**.", "Try Lyon instead!",
             "# Rome\nRome is old.", "ok", "Paris, of course — it’s lovely 🙂."]
    x = rng.standard_normal((len(texts), 16))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    full = pair_features(x, texts, "Name a capital city.")
    assert full.shape == (6, 6, len(PAIR_FEATURES))
    off = ~np.eye(6, dtype=bool)
    assert np.allclose(full[off], np.transpose(full, (1, 0, 2))[off])
    rows = PairFeatures(x, texts, "Name a capital city.")
    assert np.allclose(rows.rows(2, np.array([0, 5])), full[2, [0, 5]])
    words = list(PAIR_FEATURES).index("words")
    emphasis = list(PAIR_FEATURES).index("emphasis")
    assert full[0, 1, words] == 1.0 and full[0, 1, emphasis] == 1.0 and full[0, 2, emphasis] == -1.0
    short = list(PAIR_FEATURES).index("short")
    assert full[0, 4, short] == 1.0 and full[0, 1, short] == 0.0


def test_short_answer_rule_is_noveltybenchs():
    from hivemind.score.pairs import short_pair_same

    cases = [("Blue", "blue"), ("Blue", "Red"), ("deep ocean blue", "ocean blue"), ("a b c d", "a b x y"),
             ("a b c d e", "a x y z w"), ("One word", "A long answer of many words here"), ("Blue.", "blue")]
    assert [short_answer_same(a, b) for a, b in cases] == [True, False, True, True, False, None, False]
    assert [short_answer_same(a, b) for a, b in cases] == [short_pair_same(a, b) for a, b in cases]


def test_shipped_model_round_trips_and_refuses_other_features(tmp_path):
    model = shipped_model()
    assert model.features == PAIR_FEATURES and 0 < model.threshold < 1 and model.embedder == "all-MiniLM-L6-v2"
    again = PairModel.from_json(model.to_json())
    features = np.random.default_rng(2).standard_normal((50, len(PAIR_FEATURES)))
    assert np.array_equal(again.predict(features), model.predict(features))
    raw = json.loads(MODEL_FILE.read_text())
    assert len(model.members) == 5
    raw["features"] = raw["features"][:-1]
    with pytest.raises(ValueError, match="not this version's"):
        PairModel.from_json(json.dumps(raw))


def test_verdicts_partition_and_a_missing_verdict_says_what_to_run():
    table = {(0, 1): True, (0, 2): False}
    equivalence = VerdictEquivalence("judge:x", lambda a, b: table.get((a[2], b[2])), "run `hivemind score r`")
    keys = [("s", "p", k) for k in range(3)]
    assert equivalence.partition(np.zeros((3, 2)), ["a", "b", "c"], keys=keys).tolist() == [0, 0, 1]
    with pytest.raises(LookupError, match="hivemind score r"):
        equivalence.partition(np.zeros((4, 2)), list("abcd"), keys=keys + [("s", "p", 3)])


def config(**extra) -> RunConfig:
    return RunConfig(name="r", prompts="p.jsonl", systems=[{"name": "a", "model": "openai/a"}], **extra)


def test_equivalence_config():
    assert config().equivalence.method == "learned"
    assert config(equivalence="embedding").equivalence.method == "embedding"
    assert config(equivalence={"method": "classifier"}).equivalence.verdict_method.startswith(
        "classifier:yimingzhang/deberta-v3-large-generation-similarity@0.102")
    with pytest.raises(ValueError, match="judge needs a `model`"):
        config(equivalence="judge")
    with pytest.raises(ValueError, match="takes no `model`"):
        config(equivalence={"method": "learned", "model": "x"})
    with pytest.raises(ValueError):
        config(equivalence="same-ish")


def test_learned_falls_back_to_the_embedding_line_for_another_embedder():
    chosen = equivalence_for(config(embedder="tokenlearn-static-model"), store=None, system_ids=[], floor=0.1)
    assert isinstance(chosen.equivalence, EmbeddingLine) and "trained on all-MiniLM-L6-v2" in chosen.note
    chosen = equivalence_for(config(), store=None, system_ids=[], floor=0.1)
    assert isinstance(chosen.equivalence, LearnedEquivalence) and chosen.note is None


def test_a_systems_partition_does_not_depend_on_the_others():
    """Nothing of another system enters a set's features: its classes are the same alone or among others."""
    rng = np.random.default_rng(3)
    words = "sun moon star sea tree river stone cloud fire snow".split()
    texts = [" ".join(rng.choice(words, 12)) for _ in range(30)]
    x = rng.standard_normal((30, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    learned = LearnedEquivalence(shipped_model())

    def labels_of_system_0(n_systems: int) -> list:
        systems = np.repeat(np.arange(3), 10)[: 10 * n_systems]
        acc = DiversityAccumulator(n_systems, n_systems, equivalence=learned)
        acc.add(PromptGroup("p", systems.astype(np.int32), x[: 10 * n_systems], texts[: 10 * n_systems],
                            np.tile(np.arange(10), n_systems).astype(np.int32)), np.ones(10 * n_systems, bool))
        return [row for row in acc.finish().labels if row[1] == 0]
    assert labels_of_system_0(1) == labels_of_system_0(3)


# On NoveltyBench's real generations ----------------------------------------------------------------
@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """4 models x 8 prompts of NoveltyBench's labelled generations, embedded with the bundled MiniLM."""
    from hivemind.studies.equivalence.labelled import embed_sets, load_labelled

    folder = tmp_path_factory.mktemp("labelled")
    patch = pytest.MonkeyPatch()
    patch.setenv("HIVEMIND_CACHE", str(tmp_path_factory.mktemp("cache")))   # the vector cache stays in tmp
    for name in ["openai__gpt-4o-mini-2024-07-18", "google__gemma-2-9b-it", "cohere__command-r-08-2024",
                 "meta-llama__Llama-3.1-8B-Instruct"]:
        (folder / f"{name}.jsonl").write_text("".join((NOVELTYBENCH / f"{name}.jsonl").read_text()
                                                      .splitlines(keepends=True)[:8]))
    sets = load_labelled(folder)
    embed_sets(sets, progress=False)
    yield folder, sets
    patch.undo()


@needs_noveltybench
def test_learned_counts_agree_with_the_trained_classifier_better_than_the_cosine_line(labelled):
    from hivemind.studies.equivalence.validate import floor_line

    _, sets = labelled
    learned = LearnedEquivalence(shipped_model())
    line = EmbeddingLine(floor_line(sets))
    truth = np.array([s.n_classes for s in sets])
    by_learned = np.array([learned.partition(s.vectors, s.texts, prompt=s.prompt).max() + 1 for s in sets])
    by_line = np.array([line.partition(s.vectors).max() + 1 for s in sets])
    assert np.abs(by_learned - truth).mean() < np.abs(by_line - truth).mean()
    assert np.corrcoef(by_learned, truth)[0, 1] > 0.7


@needs_noveltybench
def test_training_is_reproducible(labelled):
    from hivemind.studies.equivalence.train import fit, set_pairs

    _, sets = labelled
    pairs = [set_pairs(s) for s in sets]
    features, labels = np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs])
    assert fit(features, labels, members=2).to_json() == fit(features, labels, members=2).to_json()
    assert fit(features, labels, seed=1, members=2).to_json() != fit(features, labels, members=2).to_json()


@needs_noveltybench
def test_validate_reports_every_method_with_intervals(labelled):
    from hivemind.studies.equivalence.validate import markdown, validate

    folder, _ = labelled
    frame = validate(folder, ("embedding", "shipped", "embedding-floor"), n_bootstrap=20, progress=False)
    assert frame["method"].tolist() == ["embedding", "shipped", "embedding-floor"]
    for figure in ("count_pearson", "pair_auc", "system_spearman"):
        assert (frame[f"{figure}_ci_low"] <= frame[figure] + 1e-12).all()
        assert (frame[figure] <= frame[f"{figure}_ci_high"] + 1e-12).all()
    assert (frame["pair_auc"] > 0.5).all()
    assert "| shipped |" in markdown(frame)


def test_a_bad_labelled_line_is_one_error_naming_file_and_line(tmp_path):
    from hivemind.studies.equivalence.labelled import load_labelled

    path = tmp_path / "mine.jsonl"
    path.write_text(json.dumps({"generations": ["a", "b"], "partition": [0, 1]}) + "\n" +
                    json.dumps({"generations": ["a", "b"], "partition": [0]}) + "\n")
    with pytest.raises(HivemindError, match=f"{path}:2: 2 generations but 1 partition labels"):
        load_labelled(tmp_path)


def test_a_set_cut_from_the_prompts_features_is_the_set_alone():
    """Analysis computes one prompt's pair features once and gives each system's set its block: the block must
    be exactly the set's own features (the stability of a system's figures rests on it)."""
    rng = np.random.default_rng(4)
    words = "sun moon star sea tree river stone cloud fire snow **bold** # heading".split()
    texts = [" ".join(rng.choice(words, int(rng.integers(3, 30)))) for _ in range(40)]
    x = rng.standard_normal((40, 16))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    everyone = PairFeatures(x, texts, "a prompt about the sea")
    part = np.array([3, 7, 8, 20, 31, 39])
    alone = pair_features(x[part], [texts[i] for i in part], "a prompt about the sea")
    cut = everyone.subset(part)
    assert np.array_equal(np.stack([cut.rows(i, np.arange(len(part))) for i in range(len(part))]), alone)
