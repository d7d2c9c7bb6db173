"""hivemind: how alike do language models answer open-ended questions?

The pipeline, one folder per stage, each with its entry point in `stage.py`:

    collect -> embed -> score -> analyze -> report        (hivemind.pipeline runs them in order)

on top of `core` (config, layout, errors, lock, signals, secrets), `store` (the run's SQLite file: the only
code that speaks SQL) and `results` (the only code that writes under the results folder). `engines/ray` runs
embed, score and analyze on a cluster; `runs` (leaderboard, snapshots, import, export, merge) and `studies`
(agreement, calibrate, classify, clusters, reproduce, plan) work on whole runs; `cli` is a thin layer over all
of it. A layer imports only from the layers below it (pyproject.toml, checked by `lint-imports`).
"""

__version__ = "0.1.0"


from hivemind.core.errors import HivemindError  # noqa: E402,F401  (the public name: `from hivemind import HivemindError`)
