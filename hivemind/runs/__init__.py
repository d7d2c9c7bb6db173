"""Whole runs: what a user does with a run once it exists.

leaderboard.py (every analysed run's systems, ranked among comparables), listing.py (`hivemind list`),
snapshot.py and hub.py (publish and fetch snapshots others can verify), export.py (Inspect logs, CSV),
imports.py (existing generations into a run), merge.py (two stores into one).
"""
