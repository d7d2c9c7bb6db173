"""The equivalence methods at the paper's scale, side by side in one run: 25 systems x 100 prompts x 50 samples
(125,000 answers with real-prose texts: bench_render.make_run's store).

Measures, on the same store:
1. the diversity pass (DiversityAccumulator, as analysis runs it: every (system, prompt) set partitioned and the
   pooled view per prompt, beside Vendi, utility and the rest), with the embedding line and with the learned
   pair model (the default);
2. analyze_run end to end with each method (target: the learned default under 2 minutes; bench_render's
   analyze took 59.6 s before this change with the embedding line); the learned one both ways: partitioned
   in the diversity pass (what one core does) and by a second process during the first pass (the default
   with two cores or more, hivemind.analyze.partitions).
Targets (issue 18): the default equivalence over this data under 10 minutes on 2 cores.
Run: .venv/bin/python benchmarks/bench_equivalence.py [--systems 25 --prompts 100 --samples 50] [--keep DIR]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_render import make_run  # noqa: E402

from hivemind.analyze.equivalence import EmbeddingLine, LearnedEquivalence, shipped_model  # noqa: E402
from hivemind.analyze.diversity import idea_threshold  # noqa: E402
from hivemind.analyze.passes import local_passes  # noqa: E402
from hivemind.analyze.stage import analyze_run  # noqa: E402
from hivemind.core.config_files import resolve_run  # noqa: E402
from hivemind.store import Store  # noqa: E402


def time_partitions(config, equivalence) -> tuple[float, float, float]:
    """(seconds, mean classes per set, mean pooled classes per prompt) of the diversity pass that analysis runs
    (DiversityAccumulator: every (system, prompt) set partitioned, and the pooled set of each prompt, with
    Vendi, utility and the other per-set metrics beside; they cost the same for both methods)."""
    from hivemind.analyze.diversity import DiversityAccumulator

    ids = [s.identity for s in config.systems]
    with Store.open_readonly(config.store_path) as store:
        prompts = {p.id: p.text for p in store.prompts()}
        groups = list(store.iter_answer_groups(config.embedder.id, ids))
    acc = DiversityAccumulator(len(ids), len(ids), equivalence=equivalence, system_ids=ids, prompt_texts=prompts)
    start = time.perf_counter()
    for g in groups:
        acc.add(g, np.ones(len(g.systems), dtype=bool))
    seconds = time.perf_counter() - start
    stats = acc.finish()
    return seconds, float(np.nanmean(stats.cells["distinct_ideas"])), float(np.nanmean(stats.pooled["pooled_distinct_ideas"]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--systems", type=int, default=25)
    parser.add_argument("--prompts", type=int, default=100)
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--keep", type=Path, help="build the store here and keep it; a store kept there before is reused")
    parser.add_argument("--skip-analyze", action="store_true")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-equivalence-"))
    start = time.perf_counter()
    if args.keep and (root / "bench-render" / "config.yaml").is_file():
        config = resolve_run(str(root / "bench-render" / "config.yaml"))     # the kept store, built before
        config.results_dir = str(root)
    else:
        config = make_run(root, args.systems, args.prompts, args.samples)
    print(f"store: {args.systems} systems x {args.prompts} prompts x {args.samples} samples in "
          f"{time.perf_counter() - start:.0f} s ({root})", flush=True)
    methods = {"embedding line": EmbeddingLine(idea_threshold(0.07)),
               "learned (default)": LearnedEquivalence(shipped_model())}
    print("| method | diversity pass s | mean classes per set | mean pooled classes |\n|---|---|---|---|")
    for name, equivalence in methods.items():
        seconds, classes, pooled = time_partitions(config, equivalence)
        print(f"| {name} | {seconds:.1f} | {classes:.1f} | {pooled:.1f} |", flush=True)
    if args.skip_analyze:
        return
    print("\n| method | analyze_run s |\n|---|---|")
    for method, ahead in (("embedding", None), ("learned", False), ("learned", None)):
        config.equivalence = config.equivalence.model_copy(update={"method": method})
        start = time.perf_counter()
        analyze_run(config, progress=False, passes=partial(local_passes, partitions_ahead=ahead))
        how = "" if method == "embedding" else (", in the diversity pass (as on one core)" if ahead is False
                                                else ", by a second process during the first pass (default)")
        print(f"| {method}{how} | {time.perf_counter() - start:.1f} |", flush=True)


if __name__ == "__main__":
    main()
