"""The results contract: one ranking direction everywhere, ties as ties, settings from params."""
from __future__ import annotations

import numpy as np
import pandas as pd

from hivemind.results import contract as results
from hivemind.runs.leaderboard import COLUMNS as BOARD_COLUMNS


def test_every_leaderboard_metric_is_declared_with_a_direction():
    for name in results.LEADERBOARD_METRICS + results.WITH_CI:
        metric = results.METRICS[name]
        assert metric.direction in (results.DIVERSE, results.HOMOGENEOUS, results.NEUTRAL)
        assert metric.display
    for primary in (results.PRIMARY, results.PRIMARY_ONE_SAMPLE):
        assert results.METRICS[primary].direction == results.DIVERSE
        columns = results.leaderboard_columns(primary)
        assert columns[0] == primary and columns[1:3] == [f"{primary}_ci_low", f"{primary}_ci_high"]
        assert len(columns) == len(set(columns))
        assert set(results.TABLES["leaderboard.csv"].columns) <= set(columns)
    assert [c for c in BOARD_COLUMNS if c in results.LEADERBOARD_METRICS] == results.LEADERBOARD_METRICS


def test_primary_key_follows_the_design():
    assert results.primary_key(1) == results.PRIMARY_ONE_SAMPLE
    assert results.primary_key(2) == results.primary_key(50) == results.PRIMARY


def test_rank_one_is_the_most_diverse_whatever_the_metric_direction():
    diverse = [0.30, 0.10, 0.30, np.nan, 0.20]
    ranks, tied = results.rank_with_ties(diverse, results.DIVERSE)
    assert [results.rank_label(r, t) for r, t in zip(ranks, tied)] == ["1=", "4", "1=", "—", "3"]
    homogeneous = [0.9, 0.5, 0.7]          # e.g. intra mean: lower is more diverse
    ranks, tied = results.rank_with_ties(homogeneous, results.HOMOGENEOUS)
    assert list(ranks) == [3, 1, 2] and not tied.any()


def test_values_equal_at_display_precision_tie():
    ranks, tied = results.rank_with_ties([0.123401, 0.123399, 0.2], results.DIVERSE, digits=4)
    assert list(ranks) == [2, 2, 1] and list(tied) == [True, True, False]


def test_sort_by_primary_puts_most_diverse_first_and_missing_last():
    frame = pd.DataFrame({"system": list("abcd"), results.PRIMARY: [0.2, np.nan, 0.5, 0.1]})
    assert list(results.sort_by_primary(frame, results.PRIMARY)["system"]) == ["c", "a", "d", "b"]


def test_setting_from_params():
    assert results.setting_of({"temperature": 2.0, "min_p": 0.1, "top_p": 1.0}) == "min-p"
    assert results.setting_of({"temperature": 1.0, "top_p": 0.9}) == "top-p"
    assert results.setting_of({}) == "top-p"
