"""phrases.shared_phrases, the level-by-level numpy version, against the tuple version it replaced.

Side by side in one process, on (a) one prompt of 1,250 answers (25 systems x 50 samples) remixed from real
AlpacaEval sentences exactly as bench_render.py makes them (its alpaca_pools and remix, and make_run's
planted duplicate), the paper's per-prompt scale; (a') the same with half the sentences borrowed from other
systems' answers (remix's borrow=0.5: far more shared runs, bench_render's worst case); and (b) the 16 real
AlpacaEval answers (one per model) to each of the first 100 instructions. Both are called as analyze_run
calls them (limit=None). Prints seconds, the ratio, and whether the two outputs are identical (same
phrases, lengths, system sets, order).

With --analyze S P N it also times analyze_run itself on a bench_render.make_run store of S systems x P
prompts x N samples: new, then with analyze's shared_phrases swapped for the baseline, then new again
(the total is noisy on a shared machine; the seconds inside the pass are printed too), and says whether
the two shared_phrases.csv are identical.

Needs ../shared/data/alpaca_eval_outputs.
Run: .venv/bin/python benchmarks/bench_phrases.py [--systems 25 --samples 50 --prompts 100] [--analyze 25 20 50]
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from hivemind.analyze.phrases import SharedPhrase, shared_phrases, words

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_render import ALPACA, alpaca_pools, make_run, remix  # noqa: E402


def baseline_shared_phrases(texts, systems, min_words=5, min_systems=2, max_words=200, limit=20):
    """The implementation before this change (Python tuples grown one word per level), kept verbatim."""
    docs = [(tuple(words(t)), int(s)) for t, s in zip(texts, systems)]
    if len({s for _, s in docs}) < min_systems:
        return []
    shared: dict[int, dict[tuple, frozenset]] = {}
    active = [range(len(toks) - min_words + 1) for toks, _ in docs]
    n = min_words
    while n <= max_words:
        owners: dict[tuple, set] = {}
        for (toks, s), starts in zip(docs, active):
            for i in starts:
                owners.setdefault(toks[i:i + n], set()).add(s)
        current = {g: frozenset(o) for g, o in owners.items() if len(o) >= min_systems}
        if not current:
            break
        shared[n] = current
        next_active = []
        for (toks, _), starts in zip(docs, active):
            ok = {i for i in starts if toks[i:i + n] in current}
            next_active.append([i for i in sorted(ok) if i + 1 in ok])
        active = next_active
        n += 1
    result = []
    for n, grams in shared.items():
        longer = shared.get(n + 1, {})
        extended = {}
        for gram, owners in longer.items():
            for part in (gram[:-1], gram[1:]):
                if grams.get(part) == owners:
                    extended[part] = True
        for gram, owners in grams.items():
            if gram not in extended:
                result.append(SharedPhrase(" ".join(gram), n, tuple(sorted(owners))))
    result.sort(key=lambda ph: (-ph.n_systems, -ph.n_words, ph.phrase))
    return result if limit is None else result[:limit]


def remixed_prompt(n_systems: int, samples: int, prompt: int = 0, seed: int = 0,
                   borrow: float = 0.0) -> tuple[list[str], list[int]]:
    """One prompt's answers as bench_render.make_run draws them: system k remixes model k mod 16's answer,
    and system 1's first answer repeats system 0's first word for word (make_run's planted duplicate)."""
    rng = np.random.default_rng(seed)
    pools = alpaca_pools(prompt + 1)[1][prompt]
    texts, systems = [], []
    for k in range(n_systems):
        for _ in range(samples):
            texts.append(remix(pools, k % len(pools), rng, borrow=borrow))
            systems.append(k)
    if n_systems > 1:
        texts[samples] = texts[0]
    return texts, systems


def real_prompts(n_prompts: int) -> list[tuple[list[str], list[int]]]:
    models = [json.loads(f.read_text(encoding="utf-8"))[:n_prompts] for f in sorted(ALPACA.glob("*.json"))]
    return [([m[p]["output"] for m in models], list(range(len(models)))) for p in range(n_prompts)]


def timed(fn, groups) -> tuple[float, list]:
    t0 = time.perf_counter()
    out = [fn(texts, systems, limit=None) for texts, systems in groups]
    return time.perf_counter() - t0, out


def compare(name: str, groups) -> None:
    new_s, new = timed(shared_phrases, groups)
    old_s, old = timed(baseline_shared_phrases, groups)
    n_phrases = sum(len(o) for o in new)
    print(f"{name}: baseline {old_s:.2f} s, new {new_s:.2f} s, ratio {old_s / new_s:.1f}x, "
          f"{n_phrases} phrases, identical: {old == new}", flush=True)


def compare_analyze(n_systems: int, n_prompts: int, samples: int) -> None:
    """analyze_run new, baseline, new again (the first run also warms the store's pages and imports; the
    machine is shared, so the second 'new' shows the noise); also the seconds spent inside the pass."""
    import hivemind.analyze.passes as passes
    import hivemind.analyze.stage as analyze

    root = Path(tempfile.mkdtemp(prefix="bench-phrases-"))
    try:
        config = make_run(root, n_systems, n_prompts, samples)
        tables = {}
        for name, fn in (("new", shared_phrases), ("baseline", baseline_shared_phrases), ("new", shared_phrases)):
            inside = [0.0]

            def timed_pass(*args, fn=fn, inside=inside, **kwargs):
                t = time.perf_counter()
                try:
                    return fn(*args, **kwargs)
                finally:
                    inside[0] += time.perf_counter() - t

            passes.shared_phrases = timed_pass
            t0 = time.perf_counter()
            analyze.analyze_run(config, progress=False)
            total = time.perf_counter() - t0
            tables[name] = (config.run_dir / "shared_phrases.csv").read_bytes()
            print(f"analyze_run on {n_systems} x {n_prompts} x {samples} (bench_render store), {name:8s}: "
                  f"{total:.1f} s, of which the shared-phrase pass {inside[0]:.1f} s", flush=True)
        passes.shared_phrases = shared_phrases
        print(f"shared_phrases.csv identical: {tables['new'] == tables['baseline']}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--systems", type=int, default=25)
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--prompts", type=int, default=100)
    parser.add_argument("--borrow", type=float, default=0.5,
                        help="(a') also one prompt where this share of sentences comes from other systems' answers "
                             "(bench_render's note: nearly every 5-gram is then shared); 0 skips it")
    parser.add_argument("--analyze", type=int, nargs=3, metavar=("SYSTEMS", "PROMPTS", "SAMPLES"),
                        help="also time analyze_run on a bench_render store of this size")
    args = parser.parse_args()
    if not ALPACA.is_dir():
        sys.exit(f"bench_phrases: the AlpacaEval answers are not at {ALPACA}")
    texts, systems = remixed_prompt(args.systems, args.samples)
    compare(f"(a) one prompt, {len(texts)} remixed answers, {args.systems} systems", [(texts, systems)])
    if args.borrow:
        texts, systems = remixed_prompt(args.systems, args.samples, borrow=args.borrow)
        compare(f"(a') the same, {args.borrow:.0%} of sentences borrowed from other systems' pools", [(texts, systems)])
    compare(f"(b) {args.prompts} prompts x 16 real AlpacaEval answers", real_prompts(args.prompts))
    if args.analyze:
        compare_analyze(*args.analyze)


if __name__ == "__main__":
    main()
