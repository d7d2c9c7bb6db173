"""Human calibration: do LM judges, reward models and perplexity agree with people, and where do they not?

The paper's third finding (Jiang et al. 2025, Sec. 5): scorers track the mean human rating on the whole set
but lose it exactly where answers are of similar quality or where annotators disagree. This module repeats
that study for every scorer a config names, on the paper's human data or on your own.

The study in parts, in the order it runs (`hivemind calibrate`, study.calibrate_scorers):
  load.py        the human-rated records: local JSONL/CSV/Parquet or the paper's Hub sets, bad input counted
  records.py     the record types (absolute ratings, pairs), the exclusions, rating entropy
  scoring.py     every distinct (query, response) scored through the score stage, in a store of its own
  subsets.py     the subsets where scorers lose the humans (similar quality, high disagreement) and Params
  statistics.py  per scorer and subset: Spearman rho, pairwise agreement, bootstrap intervals
  study.py       the command: ScorerCalibration, the tables, calibration.json and the figure
"""
from hivemind.studies.scorer_calibration.load import load_human_data
from hivemind.studies.scorer_calibration.records import AbsoluteRecord, Exclusion, HumanData, PairRecord
from hivemind.studies.scorer_calibration.scoring import score_responses
from hivemind.studies.scorer_calibration.statistics import Row, absolute_table, agreement, bootstrap_ci, pairwise_table
from hivemind.studies.scorer_calibration.study import ScorerCalibration, calibrate_scorers, scorers_for
from hivemind.studies.scorer_calibration.subsets import Params, absolute_subsets, pairwise_subsets

__all__ = ["AbsoluteRecord", "Exclusion", "HumanData", "PairRecord", "Params", "Row", "ScorerCalibration",
           "absolute_subsets", "absolute_table", "agreement", "bootstrap_ci", "calibrate_scorers",
           "load_human_data", "pairwise_subsets", "pairwise_table", "score_responses", "scorers_for"]
