"""Human calibration on a TEST FIXTURE (real AlpacaEval answers, made-up ratings; tests/calibration_fixture.py):
every subset and statistic against a direct computation, bad input counted, a real judge on the fake
server that refuses or answers off-scale, and `hivemind calibrate` end to end with the local perplexity scorer."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

sys.path.insert(0, str(Path(__file__).parent))
import calibration_fixture  # noqa: E402
from fake_openai import GARBAGE_MARK, OUT_OF_RANGE_MARK, FakeOpenAI  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from hivemind import HivemindError  # noqa: E402
from hivemind.core.stats import spearman  # noqa: E402
from hivemind.studies import scorer_calibration as calibration  # noqa: E402
from hivemind.studies.scorer_calibration.scoring import _distinct  # noqa: E402
from hivemind.core.config import Scorer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not calibration_fixture.DATA.is_dir(),
                                reason=f"shared AlpacaEval data not found at {calibration_fixture.DATA}")


@pytest.fixture
def fixture_files(tmp_path):
    return calibration_fixture.build(tmp_path / "human")


@pytest.fixture
def data(fixture_files):
    return calibration.load_human_data(str(fixture_files[0]), str(fixture_files[1]))


def entropy_bits(ratings):
    counts = np.bincount(ratings, minlength=6)[1:]
    return round(stats.entropy(counts, base=2), 10)


def test_fixture_loads_whole(data):
    assert len(data.absolute) == 30 and len(data.pairwise) == 20 and data.exclusions == []
    assert all(len(r.ratings) == 9 for r in data.absolute)
    assert sum(bool(p.scale) for p in data.pairwise) == 7 and sum(bool(p.votes) for p in data.pairwise) == 7


def test_default_subset_parameters_are_the_authors_sweeps():
    """Defaults as in liweijiang/artificial-hiveminds src/human_annotations/main_analysis_{abs,rel}.py, and the
    command line offers exactly these defaults."""
    from hivemind.cli import build_parser

    params = calibration.Params()
    assert params.middle_pct == (40, 50, 60, 70, 80, 90)
    assert params.tukey_k == params.z_max == (0.5, 1.0, 1.5, 2.0, 2.5, 3.0)
    assert params.disagreement_pct == (2, 4, 6, 8, 10, 12, 14, 16)
    assert params.pair_similar_pct == params.pair_disagreement_pct == (60, 65, 70, 75, 80, 85, 90, 95)
    args = build_parser().parse_args(["calibrate"])
    for name in ("middle_pct", "tukey_k", "z_max", "disagreement_pct", "pair_threshold", "pair_similar_pct",
                 "pair_disagreement_pct"):
        assert tuple(getattr(args, name)) == getattr(params, name), name
    assert calibration.Params(z_max=1.5).z_max == (1.5,)          # a single number is a list of one


def test_absolute_subsets_match_direct_computation(data):
    params = calibration.Params(middle_pct=[40, 80], tukey_k=0.1, z_max=0.7, disagreement_pct=20, pair_threshold=0.3)
    subsets = calibration.absolute_subsets(data.absolute, params)
    means = np.array([np.mean(r.ratings) for r in data.absolute])
    entropy = np.array([entropy_bits(r.ratings) for r in data.absolute])
    assert np.allclose([r.entropy for r in data.absolute], entropy)

    def percentile_of(values, q):  # linear interpolation between order statistics, written out
        ordered = np.sort(values)
        position = q / 100 * (len(ordered) - 1)
        low = int(np.floor(position))
        return ordered[low] + (position - low) * (ordered[min(low + 1, len(ordered) - 1)] - ordered[low])

    def percentile(q):
        return percentile_of(means, q)

    fence = 0.1 * (percentile(75) - percentile(25))
    queries = [r.query for r in data.absolute]
    close = np.array([any(queries[j] == queries[i] and j != i and abs(means[i] - means[j]) < 0.3
                          for j in range(30)) for i in range(30)])
    expected = {
        "full": np.ones(30, bool),
        "similar_middle_40": (means >= percentile(30)) & (means <= percentile(70)),
        "similar_middle_80": (means >= percentile(10)) & (means <= percentile(90)),
        "similar_tukey_0.1": (means >= percentile(25) - fence) & (means <= percentile(75) + fence),
        "similar_z_0.7": np.abs(stats.zscore(means)) <= 0.7,
        "similar_pairs_0.3": close,
        "high_disagreement_20": entropy >= percentile_of(entropy, 80),
    }
    assert list(subsets) == list(expected)
    for name, mask in expected.items():
        assert np.array_equal(subsets[name], mask), name
    for name in expected:
        if name != "full":
            assert 0 < subsets[name].sum() < 30, name  # each subset really selects
    # Disputed records (spread 1.6) have more entropy than agreed ones: the subset picks them.
    assert entropy[subsets["high_disagreement_20"]].min() > np.median(entropy)


def test_pairwise_subsets_and_preferences_match_direct_computation(data):
    params = calibration.Params(pair_threshold=1.0, pair_similar_pct=50, pair_disagreement_pct=[30, 60])
    subsets = calibration.pairwise_subsets(data.pairwise, params)
    n = len(data.pairwise)
    ties, agree = np.full(n, -1.0), np.full(n, np.nan)
    for i, record in enumerate(data.pairwise):
        if record.scale:
            up, down, even = (sum(v > 0 for v in record.scale), sum(v < 0 for v in record.scale),
                              record.scale.count(0))
            mean = np.mean(record.scale)
            assert record.preference == ("A" if mean > 0 else "B" if mean < 0 else "tie")
            assert record.margin == pytest.approx(mean)
        elif record.votes:
            up, down, even = record.votes.count("A"), record.votes.count("B"), record.votes.count("tie")
            assert record.preference == ("A" if up > down else "B" if down > up else "tie")
        else:
            difference = abs(np.mean(record.ratings_a) - np.mean(record.ratings_b))
            assert subsets["similar_ratings_1"][i] == (difference < 1.0)
            assert record.preference == ("A" if np.mean(record.ratings_a) > np.mean(record.ratings_b) else
                                         "B" if np.mean(record.ratings_b) > np.mean(record.ratings_a) else "tie")
            continue
        assert not subsets["similar_ratings_1"][i]           # no ratings: not in the rating-difference subset
        ties[i], agree[i] = even, max(up + even / 2, down + even / 2) / (up + down + even)
    eligible = np.flatnonzero(ties >= 0)
    assert len(eligible) == 14

    def first(order, pct):   # the authors' cut: sort, keep the first int(n * pct / 100)
        mask = np.zeros(n, bool)
        mask[eligible[order][:int(len(eligible) * pct / 100)]] = True
        return mask

    # stable: file order among equal counts (the fixture's pairs of one query are adjacent, so the authors'
    # grouping by query is file order here)
    most_ties = np.lexsort((eligible, -ties[eligible]))
    least_agreed = np.lexsort((eligible, agree[eligible]))
    assert np.array_equal(subsets["similar_ties_50"], first(most_ties, 50))
    assert np.array_equal(subsets["high_disagreement_30"], first(least_agreed, 30))
    assert np.array_equal(subsets["high_disagreement_60"], first(least_agreed, 60))
    assert subsets["high_disagreement_30"].sum() == 4 and subsets["similar_ties_50"].sum() == 7
    chosen = agree[subsets["high_disagreement_30"]]
    assert chosen.max() <= np.nanmin(agree[eligible][~subsets["high_disagreement_30"][eligible]])


def words(text: str) -> int:
    return len(set(text.split()))


def made_scores(data, missing=()):
    """Scores that are a function of the text (its distinct words), with some records left unscored."""
    scores = {}
    for query, response in _distinct(data):
        scores[(query, response)] = None if response in missing else float(words(response))
    return {"length": scores}


def test_correlations_and_agreement_match_scipy_and_state_n(data):
    unscored = {data.absolute[3].response, data.absolute[7].response}
    scores = made_scores(data, unscored)
    params = calibration.Params(bootstrap=200)
    rows = calibration.absolute_table(data.absolute, scores, params)
    subsets = calibration.absolute_subsets(data.absolute, params)
    lengths = np.array([np.nan if r.response in unscored else words(r.response) for r in data.absolute])
    means = np.array([np.mean(r.ratings) for r in data.absolute])
    for row in rows:
        mask = subsets[row.subset]
        use = mask & ~np.isnan(lengths)
        assert (row.n_subset, row.n, row.unscored) == (mask.sum(), use.sum(), (mask & np.isnan(lengths)).sum())
        # fewer than 3 records: no rho (scipy would give a meaningless +-1 for two points)
        expected = stats.spearmanr(lengths[use], means[use]).statistic if use.sum() >= 3 else np.nan
        assert row.value == pytest.approx(expected, abs=1e-12, nan_ok=True), row.subset
        assert row.ci_low <= row.value <= row.ci_high or np.isnan(row.ci_low)
    full = next(r for r in rows if r.subset == "full")
    assert full.n == 28 and full.unscored == 2

    pair_rows = calibration.pairwise_table(data.pairwise, scores, params)
    assert {row.statistic for row in pair_rows} == {"spearman", "agreement"}
    for row in pair_rows:
        mask = calibration.pairwise_subsets(data.pairwise, params)[row.subset]
        chosen = [r for r, m in zip(data.pairwise, mask) if m]
        scored = [r for r in chosen if r.response_a not in unscored and r.response_b not in unscored]
        assert row.unscored == len(chosen) - len(scored)
        if row.statistic == "spearman":   # the authors' statistic: score difference against the human margin
            margins = []
            for r in scored:
                if r.scale:
                    margins.append(np.mean(r.scale))
                elif r.votes:
                    margins.append((r.votes.count("A") - r.votes.count("B")) / len(r.votes))
                else:
                    margins.append(np.mean(r.ratings_a) - np.mean(r.ratings_b))
            differences = [words(r.response_a) - words(r.response_b) for r in scored]
            assert row.n == len(scored)
            if len(scored) >= 3:
                assert row.value == pytest.approx(stats.spearmanr(differences, margins).statistic, nan_ok=True)
            continue
        decided = [r for r in scored if r.preference != "tie" and words(r.response_a) != words(r.response_b)]
        hits = [("A" if words(r.response_a) > words(r.response_b) else "B") == r.preference for r in decided]
        assert row.n == len(decided)
        if decided:
            assert row.value == pytest.approx(np.mean(hits))
    full = next(r for r in pair_rows if r.subset == "full" and r.statistic == "spearman")
    assert full.n > 10 and not np.isnan(full.value)


def test_bootstrap_interval_is_the_percentile_interval_of_resamples():
    x = np.arange(20, dtype=float)
    y = x + np.random.default_rng(1).normal(0, 4, 20)
    low, high = calibration.bootstrap_ci(spearman, [x, y], 300, seed=5)
    rng = np.random.default_rng(5)
    values = []
    for _ in range(300):
        i = rng.integers(0, 20, 20)
        if np.ptp(x[i]) and np.ptp(y[i]):
            values.append(stats.spearmanr(x[i], y[i]).statistic)
    assert (low, high) == pytest.approx(tuple(np.percentile(values, [2.5, 97.5])))


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_bad_input_is_counted_never_silent(fixture_files, tmp_path):
    rows = [json.loads(line) for line in fixture_files[0].read_text().splitlines()]
    rows[1]["human_labels"] = [4, 6, 3]                # out of range
    rows[2]["human_labels"] = [4, None, "", 3]         # two missing annotators: dropped, counted
    rows[4]["human_labels"] = [None, None]             # nobody rated it
    rows.append(dict(rows[0]))                          # duplicate (query, response)
    rows[5]["human_labels"] = [4.5, 3]                  # not a whole rating
    pairs = [json.loads(line) for line in fixture_files[1].read_text().splitlines()]
    for key in ("votes", "ratings_a", "ratings_b", "human_labels"):
        pairs[0].pop(key, None)                         # a pair without any preference
    pairs[3]["human_labels"] = [1, 3, 0]                # a 5-point vote off the -2..2 scale
    data = calibration.load_human_data(write_jsonl(tmp_path / "abs.jsonl", rows),
                                     write_jsonl(tmp_path / "pair.jsonl", pairs))
    reasons = {(e.line, e.reason) for e in data.exclusions}
    assert (2, "rating 6 outside 1-5") in reasons
    assert (5, "no ratings (every annotator missing)") in reasons
    assert (6, "rating 4.5 is not a whole number (1-5 scale)") in reasons
    assert (31, "duplicate (query, response) of line 1") in reasons
    assert any(line == 1 and "no human preference" in why for line, why in reasons)
    assert (4, "5-point vote '3' outside -2..2") in reasons
    assert len(data.absolute) == 30 - 3 and len(data.pairwise) == 20 - 2
    assert data.dropped_missing_ratings == 2   # the all-missing record is an exclusion, not a drop
    assert next(r for r in data.absolute if r.line == 3).ratings == [4, 3]


def test_missing_columns_and_offline_hub_say_what_to_do(tmp_path):
    path = write_jsonl(tmp_path / "abs.jsonl", [{"question_text": "q", "reply": "r", "stars": [3]}])
    with pytest.raises(HivemindError, match=r"no column for 'query'.*question_text, reply, stars"):
        calibration.load_human_data(path, None)
    with pytest.raises(HivemindError, match="liweijiang/infinite-chats-human-absolute"):
        calibration.load_human_data("hub", None)
    pairs = write_jsonl(tmp_path / "pairs.jsonl", [{"query": "q", "response_a": "a", "response_b": "b"}])
    with pytest.raises(HivemindError, match="no human preference"):
        calibration.load_human_data(None, pairs)
    with pytest.raises(HivemindError, match="--middle-pct"):
        calibration.calibrate_scorers(path, None, [Scorer(name="p", kind="perplexity")],
                                      params=calibration.Params(middle_pct=0))


def test_a_judge_that_refuses_or_answers_off_scale_leaves_those_records_out(data, tmp_path, monkeypatch):
    """A real judge scorer on the fake server: two responses get a refusal, one an off-scale grade."""
    rows = [{"query": r.query, "response": r.response, "ratings": r.ratings} for r in data.absolute[:12]]
    rows[0]["response"] += " " + GARBAGE_MARK
    rows[1]["response"] += " " + GARBAGE_MARK
    rows[2]["response"] += " " + OUT_OF_RANGE_MARK
    path = write_jsonl(tmp_path / "abs.jsonl", rows)
    monkeypatch.setenv("CALIBRATE_JUDGE_KEY", "sk-calibrate-judge-test-0001")
    with FakeOpenAI(judge_max=5) as fake:
        judge = Scorer(name="judge", kind="judge", model="openai/judge", api_base=fake.url,
                       api_key_env="CALIBRATE_JUDGE_KEY", rubric="1-5")
        result = calibration.calibrate_scorers(path, None, [judge], name="cal", results_dir=tmp_path / "results",
                                               params=calibration.Params(bootstrap=50))
        requests = fake.requests
        again = calibration.calibrate_scorers(path, None, [judge], name="cal", results_dir=tmp_path / "results",
                                              params=calibration.Params(bootstrap=50))
        assert fake.requests == requests           # cached in the calibration store: nothing re-asked
    full = next(r for r in result.rows if r.subset == "full")
    assert (full.n_subset, full.n, full.unscored) == (12, 9, 3)
    assert "n=9 of 12, 3 unscored" in result.text()
    assert json.dumps([r.as_dict() for r in again.rows]) == json.dumps([r.as_dict() for r in result.rows])
    table = pd.read_csv(tmp_path / "results" / "cal" / "calibration_absolute.csv")
    assert list(table.loc[table.subset == "full", "unscored"]) == [3]


def test_calibrate_command_with_the_local_perplexity_scorer(fixture_files, tmp_path):
    """`hivemind calibrate` end to end, offline, on the fixture: the bundled SmolLM2 in process."""
    results = tmp_path / "results"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "hivemind.cli", "calibrate", "-q",
                           "--absolute", str(fixture_files[0]), "--pairwise", str(fixture_files[1]),
                           "--results", str(results), "--bootstrap", "100", "--disagreement-pct", "30"],
                          capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stderr
    assert "absolute logprob full: rho" in done.stdout and "(n=30 of 30)" in done.stdout
    out = results / "calibration"
    for name in ("calibration_absolute.csv", "calibration_pairwise.csv", "calibration_exclusions.csv",
                 "calibration.json", "calibration.png"):
        assert (out / name).is_file(), name
    absolute = pd.read_csv(out / "calibration_absolute.csv")
    defaults = calibration.Params(disagreement_pct=30)
    assert list(absolute.subset) == list(calibration.absolute_subsets(data_for(fixture_files), defaults))
    pairwise = pd.read_csv(out / "calibration_pairwise.csv")
    assert set(pairwise.statistic) == {"spearman", "agreement"} and "similar_ties_95" in set(pairwise.subset)
    # The table's rho is scipy's on the scores the score stage stored.
    from hivemind.store import Store

    data = calibration.load_human_data(str(fixture_files[0]), None)
    assert not (out / "store.sqlite").exists()   # the leaderboard must not take the calibration for a run
    with Store(out / ".scoring" / "calibration" / "store.sqlite") as store:
        frame = store.scores_frame()
        texts = store.responses_frame()
    merged = frame.merge(texts, on=["system_id", "prompt_id", "sample"])
    by_text = dict(zip(merged.text, merged.score))
    scores = np.array([by_text[r.response] for r in data.absolute])
    means = np.array([np.mean(r.ratings) for r in data.absolute])
    assert absolute.loc[absolute.subset == "full", "value"].item() == pytest.approx(
        stats.spearmanr(scores, means).statistic, abs=1e-4)
    assert json.loads((out / "calibration.json").read_text())["params"]["disagreement_pct"] == [30]


def data_for(fixture_files):
    return calibration.load_human_data(str(fixture_files[0]), None).absolute


def test_other_column_names_and_csv_map_by_name(tmp_path):
    """Hub-style names (prompt, response_1/2, winner) and a CSV with '4;5;3' ratings load like the JSONL format."""
    pairs = write_jsonl(tmp_path / "pairs.jsonl", [
        {"prompt": "Name a colour", "response_1": "Blue.", "response_2": "Crimson, like a sunset.", "winner": "2"},
        {"prompt": "Name a fruit", "response_1": "Mango.", "response_2": "Apple.", "winner": "tie"}])
    csv_path = tmp_path / "abs.csv"
    csv_path.write_text('query,response,ratings\n"Name a colour","Blue.","4;5;3"\n"Name a fruit","Mango.","[2, 2]"\n')
    data = calibration.load_human_data(str(csv_path), pairs)
    assert [(r.line, r.ratings) for r in data.absolute] == [(2, [4, 5, 3]), (3, [2, 2])]
    assert [p.preference for p in data.pairwise] == ["B", "tie"]
    scores = {"s": {("Name a colour", "Blue."): 1.0, ("Name a colour", "Crimson, like a sunset."): 2.0,
                    ("Name a fruit", "Mango."): 1.0, ("Name a fruit", "Apple."): 0.5}}
    rows = calibration.pairwise_table(data.pairwise, scores, calibration.Params(bootstrap=0))
    full = next(r for r in rows if r.subset == "full" and r.statistic == "agreement")
    assert (full.n, full.value, full.excluded_ties) == (1, 1.0, 1)   # the human tie is left out, and said
    assert next(r for r in rows if r.subset == "full" and r.statistic == "spearman").n == 0   # no margin: no rho


def test_equal_keys_keep_the_authors_order_grouped_by_query(tmp_path):
    """Ties in the top-p% cut are broken as the authors' loader orders records: grouped by query."""
    rows = [{"user_query": q, "response_1": f"a{i}", "response_2": f"b{i}", "human_labels": labels}
            for i, (q, labels) in enumerate([("q1", [0, 0, 1]), ("q2", [0, 0, 1]), ("q1", [0, 0, 1]),
                                             ("q3", [2, 2, 2])])]
    data = calibration.load_human_data(None, write_jsonl(tmp_path / "pairs.jsonl", rows))
    subsets = calibration.pairwise_subsets(data.pairwise, calibration.Params(pair_similar_pct=50))
    # three pairs with two 'similar' votes each; the first two in the authors' order are q1's (rows 1 and 3)
    assert list(subsets["similar_ties_50"]) == [True, False, True, False]


def test_the_forms_answer_texts_are_five_point_votes(tmp_path):
    """human_labels as the Google-form answers (the authors' result_key_map), with an empty answer dropped."""
    answers = ["Response 1 is much better than Response 2", "Response 2 is slightly better than Response 1",
               "Response 1 and Response 2 are similar / it's hard to tell which one is better", "",
               "Response 1 is slightly better than Response 2"]
    pairs = write_jsonl(tmp_path / "pairs.jsonl", [
        {"user_query": "q", "response_1": "a", "response_2": "b", "human_labels": answers},
        {"user_query": "q", "response_1": "a", "response_2": "c", "human_labels": [-2, -1, 0]},
        {"user_query": "q", "response_1": "b", "response_2": "c", "human_labels": ["much better"]}])
    data = calibration.load_human_data(None, pairs)
    assert data.pairwise[0].scale == [2, -1, 0, 1] and data.pairwise[0].preference == "A"
    assert data.pairwise[0].agreement == pytest.approx((2 + 0.5) / 4)
    assert data.pairwise[1].preference == "B" and data.pairwise[1].margin == -1
    assert [(e.line, e.reason[:30]) for e in data.exclusions] == [(3, "5-point vote 'much better' is ")]


@pytest.mark.parametrize("name, content, part", [
    ("ratings.jsonl", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\xff\xfe", ": not UTF-8 text"),
    ("ratings.csv", b"query,response,ratings\nq,r,\x00\n", ":2: a NUL byte"),
    ("ratings.xlsx", b"PK\x03\x04", ": unknown file type '.xlsx'"),
    ("ratings.json", b"", ": no human ratings found (empty file)"),
])
def test_a_binary_or_unknown_ratings_file_is_one_line_not_a_traceback(tmp_path, name, content, part):
    """`calibrate --absolute FILE` reads through hivemind.core.readers: a binary file gave a traceback before."""
    path = tmp_path / name
    path.write_bytes(content)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "hivemind.cli", "calibrate", "-q", "--absolute", str(path),
                           "--results", str(tmp_path / "results")], capture_output=True, text=True, env=env,
                          timeout=600)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith(f"error: {path}{part}") and done.stderr.count("\n") == 1, done.stderr
    assert not (tmp_path / "results").exists()


def test_ratings_load_the_same_from_parquet_json_and_jsonl(fixture_files, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [json.loads(line) for line in fixture_files[0].read_text().splitlines()]
    parquet, as_json = tmp_path / "abs.parquet", tmp_path / "abs.json"
    pq.write_table(pa.Table.from_pylist(rows), parquet)
    as_json.write_text(json.dumps(rows))
    expected = [(r.query, r.response, r.ratings) for r in calibration.load_human_data(str(fixture_files[0])).absolute]
    for path in (parquet, as_json):
        loaded = calibration.load_human_data(str(path)).absolute
        assert [(r.query, r.response, r.ratings) for r in loaded] == expected
