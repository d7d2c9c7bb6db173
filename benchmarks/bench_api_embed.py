"""API embeddings at scale against tests/fake_openai.py: requests per 10,000 texts and texts/s.

The embed stage batches API_BATCH inputs per `litellm.aembedding` request with API_CONCURRENCY requests in
flight, retries 429/5xx (hivemind.core.retry), and commits each round of requests to the store. The fake server
answers every request after `--delay` seconds (a provider's latency) and throws 429s at `--fault-rate`.

    .venv/bin/python benchmarks/bench_api_embed.py [--texts 10000] [--delay 0.2] [--fault-rate 0.05]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fake_openai import FakeOpenAI  # noqa: E402
from hivemind.core.config import Embedder, RunConfig, System  # noqa: E402
from hivemind.embed.stage import API_BATCH, API_CONCURRENCY, embed_run  # noqa: E402
from hivemind.store import Prompt, Response, Store  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--texts", type=int, default=10_000)
    parser.add_argument("--delay", type=float, default=0.2, help="seconds per request at the fake server")
    parser.add_argument("--fault-rate", type=float, default=0.05, help="share of requests answered 429")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, FakeOpenAI(embedding_dim=64, delay=args.delay,
                                                          rate_429=args.fault_rate) as server:
        embedder = Embedder(provider="litellm", model="openai/fake-embedding", api_base=server.url)
        config = RunConfig(name="bench", prompts="x", systems=[System(name="a", model="imported/a")],
                           embedder=embedder, results_dir=tmp, samples=args.texts)
        config.run_dir.mkdir(parents=True)
        with Store(config.store_path) as store:
            store.add_prompts([Prompt("p0", "a prompt")])
            store.add_responses(Response(config.systems[0].identity, "p0", i, f"answer number {i} " * 20)
                                for i in range(args.texts))
        start = time.perf_counter()
        summary = embed_run(config, progress=False)
        seconds = time.perf_counter() - start
        stats = server.stats()
    print(f"{summary.embedded} texts, batch {API_BATCH}, concurrency {API_CONCURRENCY}, "
          f"server delay {args.delay}s, 429 rate {args.fault_rate}")
    print(f"requests: {stats['embedding_requests']} ({stats['embedding_requests'] * 10_000 / summary.embedded:.0f} "
          f"per 10,000 texts; faults {stats['faults']}); {summary.embedded / seconds:.0f} texts/s; "
          f"one text per request would need {summary.embedded} requests")


if __name__ == "__main__":
    main()
