"""Reward model: any transformers AutoModelForSequenceClassification id (or local folder) scores each
(prompt, answer) pair, on CPU.

The conversation is formatted with the tokenizer's chat template when it has one (how reward models such
as Skywork-Reward are trained), else as the pair (prompt, answer). Score: the single logit of a one-label
model (the usual reward head); for a model with several labels, the log-probability of the last label
(by convention the "good"/"preferred" class). Higher is better either way. Nothing is downloaded with
HF_HUB_OFFLINE=1: an id whose weights are not on disk is a clear error naming the model.
"""
from __future__ import annotations

import json
import os

from hivemind.core.config import Scorer
from hivemind.core.errors import HivemindError
from hivemind.store import Answer, Score


class RewardScorer:
    batch = 8

    def __init__(self, scorer: Scorer):
        self.name = scorer.name
        self.max_length = int(scorer.params.get("max_length", 4096))
        self.tokenizer, self.model = load_reward_model(scorer)
        self.truncated = 0

    def score(self, answers: list[Answer]) -> list[Score]:
        import torch

        inputs = self._encode(answers)
        lengths = [int(mask.sum()) for mask in inputs["attention_mask"]]
        self.truncated += sum(n >= self.max_length for n in lengths)
        with torch.inference_mode():
            logits = self.model(**inputs).logits.float()
        if logits.shape[1] == 1:
            values = logits[:, 0]
        else:
            values = torch.log_softmax(logits, dim=1)[:, -1]
        # raw as the perplexity scorer's: the tokens read, and whether the pair was cut at max_length
        raws = [json.dumps({"tokens": n, "truncated": True} if n >= self.max_length else {"tokens": n})
                for n in lengths]
        return [Score(*a.key, self.name, round(float(v), 6), raw=raw) for a, v, raw in zip(answers, values, raws)]

    def _encode(self, answers: list[Answer]):
        tok = self.tokenizer
        if getattr(tok, "chat_template", None):
            texts = [tok.apply_chat_template([{"role": "user", "content": a.prompt},
                                              {"role": "assistant", "content": a.text}], tokenize=False)
                     for a in answers]
            return tok(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt",
                       add_special_tokens=False)
        return tok([a.prompt for a in answers], [a.text for a in answers], padding=True,
                   truncation="longest_first", max_length=self.max_length, return_tensors="pt")


def load_reward_model(scorer: Scorer):
    try:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
    except ImportError:
        raise HivemindError(f"reward scorer {scorer.name!r} needs the transformers package") from None
    try:
        tokenizer = AutoTokenizer.from_pretrained(scorer.model)
        model = AutoModelForSequenceClassification.from_pretrained(scorer.model)
    except Exception as err:   # OSError offline, ValueError for a model that is not a classifier, ...
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
        hint = (" HF_HUB_OFFLINE is set, so nothing is downloaded: put the weights in the Hugging Face cache "
                "(download them once online) or name a local folder as the scorer's model." if offline else "")
        raise HivemindError(f"reward scorer {scorer.name!r}: model {scorer.model!r} could not be loaded "
                            f"({type(err).__name__}: {first[:200]}).{hint}") from None
    model.eval()
    if tokenizer.pad_token is None:   # decoder reward models often ship without one
        tokenizer.pad_token = tokenizer.eos_token
        model.config.pad_token_id = tokenizer.pad_token_id
    return tokenizer, model
