"""Equivalence methods against labelled answer sets (NoveltyBench's format): loading the labels (labelled.py),
training the shipped pair model (train.py, `python -m hivemind.studies.equivalence.train`), and validating
every method side by side with cross-validation grouped by prompt (validate.py, `hivemind validate`)."""
