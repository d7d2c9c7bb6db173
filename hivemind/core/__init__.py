"""The ground floor: what every stage needs and nothing stage-specific.

- config.py: the run config's schema (pydantic), loading YAML with the line of each error, resolving RUN;
- layout.py: the results folder's file names, declared once, and the one resolver of where it is;
- errors.py (HivemindError), signals.py (SIGINT/SIGTERM/SIGHUP as exceptions), lock.py (one writer per run),
  secrets.py (keys only from the environment: refuse, redact), retry.py (provider retries and reachability),
  readers.py (one reader for JSON, JSONL, CSV, Parquet), stats.py (nanmean, spearman).
Nothing here imports from any other part of hivemind (tests/test_layering.py).
"""
