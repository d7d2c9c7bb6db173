"""The perplexity scorer's throughput beside the local generation rate of the same model and llama.cpp build.

    python benchmarks/bench_score.py                 # throughput, side by side, in one run
    python benchmarks/bench_score.py --calibrate     # score distributions of real answers vs controls

Throughput: the bundled SmolLM2-135M-Instruct scores real AlpacaEval answers (answer tokens/s and answers/s),
then the same model, loaded the same way with the same threads, generates answers to the same prompts
(generated tokens/s). Scoring reads all of an answer's tokens in one batched forward pass; generation
decodes one token per pass, so scoring should be several times faster per token.

Calibration (for the scorer's default pass_at): mean log-probability per answer token of real answers from
../shared/data/alpaca_eval_outputs (several models), of a shuffled-word salad of each answer, and of
random-vocabulary babble of the same length (words drawn from all answers' vocabulary). Prints quantiles.
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

from hivemind.core.config import Scorer  # noqa: E402
from hivemind.score.perplexity import LogProbScorer, default_model_path  # noqa: E402
from hivemind.store import Answer  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "alpaca_eval_outputs"


def real_answers(models: int, prompts: int, offset: int = 0) -> list[Answer]:
    files = sorted(DATA.glob("*.json"))[:models]
    if not files:
        sys.exit(f"no AlpacaEval answers under {DATA}")
    out = []
    for file in files:
        records = json.loads(file.read_text(encoding="utf-8"))[offset:offset + prompts]
        for i, record in enumerate(records):
            out.append(Answer(file.stem, f"p{offset + i}", 0, record["instruction"], record["output"]))
    return out


def salad(answer: Answer, rng: random.Random) -> Answer:
    words = answer.text.split()
    rng.shuffle(words)
    return Answer(answer.system_id + "/salad", answer.prompt_id, 0, answer.prompt, " ".join(words))


def babble(answer: Answer, vocabulary: list[str], rng: random.Random) -> Answer:
    words = [rng.choice(vocabulary) for _ in answer.text.split()]
    return Answer(answer.system_id + "/babble", answer.prompt_id, 0, answer.prompt, " ".join(words))


def quantiles(values: list[float]) -> str:
    q = np.percentile(values, [0, 1, 5, 50, 95, 99, 100])
    return " ".join(f"{v:7.3f}" for v in q)


def calibrate(args) -> None:
    scorer = LogProbScorer(Scorer(name="logprob", kind="perplexity",
                                  params={"n_threads": args.threads, "max_tokens": args.max_tokens}))
    answers = real_answers(args.models, args.prompts, args.offset)
    rng = random.Random(0)
    vocabulary = sorted({w for a in answers for w in a.text.split()})
    groups = {"real": answers, "salad": [salad(a, rng) for a in answers],
              "babble": [babble(a, vocabulary, rng) for a in answers]}
    print(f"{len(answers)} real answers ({args.models} models x {args.prompts} prompts), first "
          f"{args.max_tokens} answer tokens each")
    print(f"{'':8} {'min':>7} {'1%':>7} {'5%':>7} {'median':>7} {'95%':>7} {'99%':>7} {'max':>7}")
    scores = {}
    for name, group in groups.items():
        scores[name] = [s.score for s in scorer.score(group) if s.score is not None]
        print(f"{name:8} {quantiles(scores[name])}")
    for cut in (-3.0, -3.5, -4.0, -4.5):
        real_pass = np.mean(np.array(scores["real"]) >= cut)
        control_pass = np.mean(np.array(scores["salad"] + scores["babble"]) >= cut)
        print(f"pass_at {cut}: real answers passing {real_pass:.1%}, controls passing {control_pass:.1%}")
    worst = sorted(zip(scores["real"], answers), key=lambda pair: pair[0])[:3]
    for value, answer in worst:
        print(f"lowest real: {value:.3f} {answer.system_id} {answer.text[:100]!r}")


def calibrate_relevance(args) -> None:
    """Cosine of each real answer with its own prompt, and with another prompt (off-topic), under MiniLM."""
    from hivemind.core.config import Embedder
    from hivemind.embed.stage import load_encoder, normalise

    answers = real_answers(args.models, args.prompts, args.offset)
    prompts = sorted({a.prompt for a in answers})
    encode = load_encoder(Embedder())
    answer_vectors = normalise(encode([a.text for a in answers]))
    prompt_vectors = dict(zip(prompts, normalise(encode(prompts))))
    own = [float(v @ prompt_vectors[a.prompt]) for a, v in zip(answers, answer_vectors)]
    other = [float(v @ prompt_vectors[prompts[(prompts.index(a.prompt) + 1) % len(prompts)]])
             for a, v in zip(answers, answer_vectors)]
    print(f"{len(answers)} real answers, {len(prompts)} prompts, all-MiniLM-L6-v2")
    print(f"{'':8} {'min':>7} {'1%':>7} {'5%':>7} {'median':>7} {'95%':>7} {'99%':>7} {'max':>7}")
    print(f"{'own':8} {quantiles(own)}")
    print(f"{'other':8} {quantiles(other)}")
    for cut in (0.1, 0.15, 0.2, 0.25, 0.3):
        print(f"pass_at {cut}: own passing {np.mean(np.array(own) >= cut):.1%}, "
              f"off-topic passing {np.mean(np.array(other) >= cut):.1%}")


def throughput(args) -> None:
    answers = real_answers(args.models, args.prompts, args.offset)
    scorer = LogProbScorer(Scorer(name="logprob", kind="perplexity",
                                  params={"n_threads": args.threads, "max_tokens": args.max_tokens}))
    scorer.score(answers[:1])   # warm-up: first pass allocates buffers
    started = time.perf_counter()
    scores = scorer.score(answers)
    scoring_s = time.perf_counter() - started
    tokens = sum(json.loads(s.raw)["tokens"] for s in scores)

    from llama_cpp import Llama

    # as the server generates: no logits kept beyond the last position
    llm = Llama(model_path=str(default_model_path()), n_ctx=2048, n_threads=args.threads,
                n_threads_batch=args.threads, verbose=False)
    generated, started = 0, time.perf_counter()
    for answer in answers[:args.generations]:
        reply = llm.create_chat_completion(messages=[{"role": "user", "content": answer.prompt}],
                                           max_tokens=args.max_tokens, temperature=1.0, top_p=0.9, seed=0)
        generated += reply["usage"]["completion_tokens"]
    generation_s = time.perf_counter() - started
    score_rate, gen_rate = tokens / scoring_s, generated / generation_s
    print(f"SmolLM2-135M-Instruct Q4_1, llama.cpp in process, {args.threads} thread(s)")
    print(f"{'':34} {'tokens':>7} {'seconds':>8} {'tokens/s':>9} {'answers/s':>10}")
    print(f"{'perplexity scoring (answer tokens)':34} {tokens:7d} {scoring_s:8.2f} {score_rate:9.1f} "
          f"{len(answers) / scoring_s:10.2f}")
    print(f"{'generation (completion tokens)':34} {generated:7d} {generation_s:8.2f} {gen_rate:9.1f} "
          f"{args.generations / generation_s:10.2f}")
    print(f"scoring reads {score_rate / gen_rate:.1f}x as many tokens per second as the model generates "
          f"(prompt processing includes the chat-templated prompt in generation, not counted as output)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calibrate", action="store_true")
    parser.add_argument("--calibrate-relevance", action="store_true")
    parser.add_argument("--models", type=int, default=4)
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--offset", type=int, default=0, help="first AlpacaEval instruction used")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--generations", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if args.calibrate_relevance:
        calibrate_relevance(args)
    elif args.calibrate:
        calibrate(args)
    else:
        throughput(args)


if __name__ == "__main__":
    main()
