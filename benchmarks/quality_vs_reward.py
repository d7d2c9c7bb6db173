"""How the offline scorers agree with NoveltyBench's reward model, per answer, and with each other.

    python benchmarks/quality_vs_reward.py                   # ~6 min on one core (perplexity on 900 answers)
    python benchmarks/quality_vs_reward.py --ppl-cache F     # reuse/extend perplexity scores kept in F (JSONL)

Data: ../shared/data/noveltybench_dev (24 models x 50 prompts x 10 samples). NoveltyBench's
`generation_scores` are its reward model's (Skywork-Reward-Gemma-2-27B) 1-10 deciles, but a repeat of an
earlier class scores 0 ("no credit for a repeat", not a quality): only first-of-class answers (score > 0)
are compared with the reward. Scorers:
- fluency: hivemind.score.fluency on every answer (and its speed on 8 copies of the 12,000 answers);
- relevance: cosine(answer, prompt) under the bundled all-MiniLM-L6-v2, on the sample below;
- perplexity: the bundled SmolLM2 (mean log-probability of the first 64 answer tokens, the demo's setting)
  on a seeded sample of --sample first-of-class answers (too slow for all: about 2 answers/s on one core),
  plus a word salad and a babble of every 4th sampled answer, to measure fluency against perplexity.
Printed: Spearman with the reward; the gate's (score >= pass_at; NULL passes) agreement with
"reward >= LINE" (accuracy, balanced accuracy, Cohen's kappa) at two lines; fluency against perplexity.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hivemind.core.config import DEFAULT_PASS_AT, Embedder, Scorer  # noqa: E402
from hivemind.score.fluency import bundled_table  # noqa: E402
from hivemind.store import Answer  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "noveltybench_dev"
REWARD_LINES = (2, 5)


def load() -> list[dict]:
    rows = []
    for path in sorted(DATA.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            for i, (text, reward) in enumerate(zip(r["generations"], r["generation_scores"])):
                rows.append({"model": r["model"], "id": r["id"], "sample": i, "prompt": r["prompt"], "text": text,
                             "reward": reward})
    if not rows:
        sys.exit(f"no NoveltyBench answers under {DATA}")
    return rows


def sample_with_controls(first: list[dict], n: int) -> list[dict]:
    """A seeded sample of first-of-class answers, with a salad and a babble of every 4th."""
    rng = random.Random(0)
    picked = rng.sample(first, n)
    vocabulary = [w for r in first for w in r["text"].split()]
    out = []
    for k, row in enumerate(picked):
        out.append({**row, "kind": "real"})
        if k % 4 == 0:
            words = row["text"].split()
            shuffled = words[:]
            rng.shuffle(shuffled)
            out.append({**row, "kind": "salad", "text": " ".join(shuffled), "reward": None})
            out.append({**row, "kind": "babble", "text": " ".join(rng.choice(vocabulary) for _ in words),
                        "reward": None})
    return [r for r in out if r["text"].strip()]


def perplexities(rows: list[dict], cache: Path | None) -> list[float | None]:
    key = lambda r: f"{r['model']}|{r['id']}|{r['sample']}|{r['kind']}"  # noqa: E731
    known = {}
    if cache and cache.is_file():
        for line in cache.read_text(encoding="utf-8").splitlines():
            d = json.loads(line)
            known[f"{d['model']}|{d['id']}|{d['sample']}|{d['kind']}"] = d["ppl"]
    todo = [r for r in rows if key(r) not in known]
    if todo:
        from hivemind.score.perplexity import LogProbScorer

        scorer = LogProbScorer(Scorer(name="ppl", kind="perplexity", params={"max_tokens": 64}))
        start = time.perf_counter()
        with open(cache, "a", encoding="utf-8") if cache else open("/dev/null", "w") as out:
            for r in todo:
                value = scorer.score_one(Answer(r["model"], r["id"], r["sample"], r["prompt"], r["text"])).score
                known[key(r)] = value
                out.write(json.dumps({"model": r["model"], "id": r["id"], "sample": r["sample"], "kind": r["kind"],
                                      "ppl": value}) + "\n")
        print(f"perplexity: {len(todo)} answers in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return [known[key(r)] for r in rows]


def relevances(rows: list[dict]) -> np.ndarray:
    from hivemind.embed.stage import load_encoder

    encode = load_encoder(Embedder())
    prompts = sorted({r["prompt"] for r in rows})
    pv = dict(zip(prompts, encode(prompts)))
    av = encode([r["text"] for r in rows])
    return np.array([float(np.dot(v, pv[r["prompt"]])) for v, r in zip(av, rows)])


def agreement(passed: np.ndarray, good: np.ndarray) -> tuple[float, float, float]:
    """(accuracy, balanced accuracy, Cohen's kappa) of gate decisions against reward >= line."""
    from sklearn.metrics import balanced_accuracy_score, cohen_kappa_score

    return (float((passed == good).mean()), float(balanced_accuracy_score(good, passed)),
            float(cohen_kappa_score(good, passed)))


def row_for(name: str, scores: np.ndarray, line: float, reward: np.ndarray) -> str:
    from scipy.stats import spearmanr

    have = ~np.isnan(scores)
    rho = spearmanr(scores[have], reward[have]).statistic
    passed = ~(scores < line)                      # NULL (too short to judge) passes
    cells = [f"{name} (>= {line:g})", f"{have.sum()}", f"{rho:+.2f}", f"{passed.mean():.1%}"]
    for cut in REWARD_LINES:
        acc, bal, kappa = agreement(passed, reward >= cut)
        cells.append(f"{acc:.2f} / {bal:.2f} / {kappa:+.2f}")
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=600, help="first-of-class answers given perplexity")
    parser.add_argument("--ppl-cache", type=Path, help="JSONL of perplexity scores to reuse and extend")
    args = parser.parse_args()
    rows = load()
    first = [r for r in rows if r["reward"] > 0]
    table = bundled_table()

    texts = [r["text"] for r in rows] * 8
    start = time.perf_counter()
    flu_all = [table.score(t) for t in texts]
    seconds = time.perf_counter() - start
    flu_all = np.array([np.nan if v is None else v for v in flu_all[:len(rows)]])
    print(f"fluency speed: {len(texts)} answers in {seconds:.1f} s ({len(texts) / seconds:,.0f} answers/s, one core)")
    print(f"answers: {len(rows)}, first of their class (reward > 0): {len(first)}; fluency judged "
          f"{np.mean(~np.isnan(flu_all)):.0%} of all answers (the rest are under the minimum length: NULL)\n")

    reward_all = np.array([r["reward"] for r in rows], dtype=float)
    is_first = reward_all > 0
    sample = sample_with_controls(first, args.sample)
    real = [r for r in sample if r["kind"] == "real"]
    ppl = np.array([np.nan if v is None else v for v in perplexities(sample, args.ppl_cache)])
    flu = np.array([np.nan if (v := table.score(r["text"])) is None else v for r in sample])
    is_real = np.array([r["kind"] == "real" for r in sample])
    rel = relevances(real)
    reward = np.array([r["reward"] for r in real], dtype=float)

    head = ("| scorer (gate) | answers scored | Spearman with reward | pass | "
            + " | ".join(f"vs reward >= {c}: acc / bal. acc / kappa" for c in REWARD_LINES) + " |")
    print(head + "\n|" + " --- |" * (4 + len(REWARD_LINES)))
    print(row_for("fluency, all first-of-class", flu_all[is_first], DEFAULT_PASS_AT["fluency"], reward_all[is_first]))
    print(row_for(f"fluency, sample of {len(real)}", flu[is_real], DEFAULT_PASS_AT["fluency"], reward))
    print(row_for(f"perplexity, sample of {len(real)}", ppl[is_real], DEFAULT_PASS_AT["perplexity"], reward))
    print(row_for(f"relevance, sample of {len(real)}", rel, DEFAULT_PASS_AT["relevance"], reward))
    print(f"\nreward shares among first-of-class answers: >= 2: {np.mean(reward_all[is_first] >= 2):.1%}, "
          f">= 5: {np.mean(reward_all[is_first] >= 5):.1%}")

    from scipy.stats import spearmanr

    both = ~np.isnan(flu) & ~np.isnan(ppl)
    flu_pass, ppl_pass = ~(flu < DEFAULT_PASS_AT["fluency"]), ~(ppl < DEFAULT_PASS_AT["perplexity"])
    acc, bal, kappa = agreement(flu_pass[both], ppl_pass[both])
    print(f"\nfluency vs perplexity on {both.sum()} answers both judged ({is_real[both].sum()} real, "
          f"{(~is_real)[both].sum()} salad/babble): Spearman {spearmanr(flu[both], ppl[both]).statistic:+.2f}, "
          f"real answers only {spearmanr(flu[both & is_real], ppl[both & is_real]).statistic:+.2f}; gate decisions "
          f"agree {acc:.1%} (balanced {bal:.2f}, kappa {kappa:+.2f})")
    for kind in ("real", "salad", "babble"):
        mine = np.array([r["kind"] == kind for r in sample])
        judged = mine & ~np.isnan(flu)
        print(f"  {kind:6}: fluency passes {flu_pass[judged].mean():.1%} of {judged.sum()} judged "
              f"({(mine & np.isnan(flu)).sum()} too short), perplexity passes {ppl_pass[mine].mean():.1%} of "
              f"{mine.sum()}")


if __name__ == "__main__":
    main()
