"""Ray as the scale-out engine (`--engine ray`): embedding, local scoring and analysis across workers.

- cluster.py: connect to a Ray cluster (`--ray-address`) or start a local one on demand, quietly.
- analysis.py: the analysis mapped over prompt shards and reduced on the driver; the tables are the
  single-process engine's (hivemind.analyze.stage), to float rounding.
- embedding.py: texts exported as Parquet shards, embedded by an actor pool (Ray Data), written back as
  Parquet shards that the driver imports into the store idempotently.
- scoring.py: the local scorers (perplexity, relevance, reward) the same way; API judges stay local.

Everything here is reached only with `--engine ray`: `ray` is imported lazily, so the local engine never
pays for it.
"""
