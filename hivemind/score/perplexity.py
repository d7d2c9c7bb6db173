"""LM perplexity: how likely a local language model finds the answer, given the prompt.

For an answer of tokens a_1..a_m after the chat-templated prompt x (the model's own template, ending with
the assistant header, exactly what the model sees when it answers), the score is the mean log-probability
per answer token

    score = (1/m) * sum_i log p(a_i | x, a_1..a_{i-1})      (natural log, <= 0; higher is better)

i.e. minus the log of the answer's perplexity. Fluent, on-topic text scores near -1 to -2 under SmolLM2;
shuffled words and random-vocabulary babble score far lower (config.DEFAULT_PASS_AT: -3.25, calibrated
on real AlpacaEval answers with benchmarks/bench_score.py --calibrate). The token count m is
stored in the score's raw JSON.

It runs llama.cpp in process (llama_cpp.Llama with logits_all=True): one forward pass over prompt + answer
gives the logits at every position, and the log-softmax is taken here in numpy. The default model is the
bundled SmolLM2-135M-Instruct GGUF (the one `hivemind serve-local` serves); `model:` may name another GGUF
file. Answers longer than the context window (n_ctx, default 2048 tokens) are truncated to what fits after
the prompt (or to `params: {max_tokens: N}` when set) and the score is the mean over the tokens read;
raw says `"truncated": true` and the summary counts them. Successive answers to one prompt reuse the prompt's KV cache.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from hivemind.core.config import Scorer
from hivemind.core.errors import HivemindError
from hivemind.core.extras import missing_extra
from hivemind.store import Answer, Score

DEFAULT_N_CTX = 2048
MAX_PROMPT_SHARE = 4   # the prompt keeps at most n_ctx/4 tokens (its end), so answers always get most of the window


def default_model_path() -> Path:
    from hivemind.collect import local_server

    return local_server.model_path(local_server.SMOLLM2)


class LogProbScorer:
    batch = 16

    def __init__(self, scorer: Scorer):
        self.name = scorer.name
        path = Path(scorer.model) if scorer.model else default_model_path()
        if not path.is_file():
            raise HivemindError(f"perplexity scorer {scorer.name!r}: model file {path} not found "
                                f"(name a GGUF file, or leave `model` out for the bundled SmolLM2)")
        self.n_ctx = int(scorer.params.get("n_ctx", DEFAULT_N_CTX))
        # Optional cap on the answer tokens read: the score is then the mean over the first max_tokens,
        # a cheaper estimate of the same quantity (the forward pass is the whole cost).
        self.max_tokens = int(scorer.params.get("max_tokens", self.n_ctx))
        # Half the cores by default: llama.cpp's OpenMP threads spin at barriers, and on a shared 2-core
        # machine two threads ran many times slower than one (measured while other jobs ran).
        threads = int(scorer.params.get("n_threads", max(1, min(4, (os.cpu_count() or 1) // 2))))
        self.llm = load_llama(path, self.n_ctx, threads)
        self.format = chat_formatter(self.llm)
        self.prefixes: dict[str, list[int]] = {}
        self.truncated = 0

    def score(self, answers: list[Answer]) -> list[Score]:
        return [self.score_one(a) for a in answers]

    def score_one(self, answer: Answer) -> Score:
        prefix = self.prefix(answer)
        tokens = self.llm.tokenize(answer.text.encode("utf-8"), add_bos=False, special=False)
        if not tokens:
            return Score(*answer.key, self.name, None, raw=json.dumps({"tokens": 0}),
                         error="empty answer: no tokens to score")
        room = min(self.n_ctx - len(prefix), self.max_tokens)
        truncated = len(tokens) > room
        read = tokens[:room]
        self.truncated += truncated
        logprobs = self.logprobs(prefix, read)
        raw = {"tokens": len(read), "sum_logprob": round(float(logprobs.sum()), 4)}
        if truncated:
            raw.update(truncated=True, answer_tokens=len(tokens))
        return Score(*answer.key, self.name, round(float(logprobs.mean()), 6), raw=json.dumps(raw))

    def prefix(self, answer: Answer) -> list[int]:
        if answer.prompt_id not in self.prefixes:
            text = self.format(answer.prompt)
            tokens = self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
            limit = self.n_ctx // MAX_PROMPT_SHARE
            self.prefixes[answer.prompt_id] = tokens[-limit:] if len(tokens) > limit else tokens
        return self.prefixes[answer.prompt_id]

    def logprobs(self, prefix: list[int], answer: list[int]) -> np.ndarray:
        """log p(answer[i] | prefix, answer[:i]) for every i, from one forward pass."""
        llm = self.llm
        tokens = prefix + answer
        # Keep the KV cache of a shared prompt; re-read its last token so its logits row is fresh.
        keep = 0
        if llm.n_tokens:
            previous = llm.input_ids[:llm.n_tokens]
            limit = min(len(previous), len(prefix) - 1)
            while keep < limit and previous[keep] == prefix[keep]:
                keep += 1
        llm.n_tokens = keep
        llm.eval(tokens[keep:])
        # Row j of the logits predicts token j+1: rows len(prefix)-1 .. len(tokens)-2 predict the answer.
        rows = np.asarray(llm.scores[len(prefix) - 1:len(tokens) - 1], dtype=np.float32)
        peak = rows.max(axis=1, keepdims=True)
        log_norm = peak[:, 0] + np.log(np.exp(rows - peak).sum(axis=1))
        return rows[np.arange(len(answer)), answer] - log_norm


def load_llama(path: Path, n_ctx: int, threads: int):
    try:
        from llama_cpp import Llama
    except ImportError:
        raise missing_extra("local", "the perplexity scorer (llama-cpp-python)") from None
    from hivemind.collect.local_server import without_amx_kernels

    without_amx_kernels()
    return Llama(model_path=str(path), n_ctx=n_ctx, n_batch=512, logits_all=True, n_threads=threads,
                 n_threads_batch=threads, verbose=False)


def chat_formatter(llm):
    """prompt text -> the model's chat template up to the assistant header (add_generation_prompt)."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    template = llm.metadata.get("tokenizer.chat_template")
    if not template:
        return lambda prompt: prompt + "\n"   # a base model: the answer simply continues the prompt
    special = lambda token_id: llm.detokenize([token_id], special=True).decode("utf-8", "replace") \
        if token_id >= 0 else ""  # noqa: E731
    formatter = Jinja2ChatFormatter(template=template, eos_token=special(llm.token_eos()),
                                    bos_token=special(llm.token_bos()), add_generation_prompt=True)
    return lambda prompt: formatter(messages=[{"role": "user", "content": prompt}]).prompt
