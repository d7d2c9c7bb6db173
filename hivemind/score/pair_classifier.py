"""Equivalence by NoveltyBench's classifier: yimingzhang/deberta-v3-large-generation-similarity (or any local
transformers sequence-pair classifier named as `equivalence: {method: classifier, model: PATH}`).

Exactly as NoveltyBench's src/partition.py `classifier_score`: the pair is the two answers only (not the
request), each cut to its first 128 tokens, laid out as [CLS] A [SEP] B [SEP] with token types 0 up to the
first [SEP] and 1 after; P(same) = softmax(logits)[1]; the two are equivalent when P > threshold (0.102, its
`equivalence_check_classifier`). NoveltyBench tokenizes with microsoft/deberta-v3-large's tokenizer: used
here when the classifier's own folder has none. The pairs of one representative are one padded batch (the
attention mask keeps padding out, so each pair's probability is the one it gets alone). Nothing is
downloaded with HF_HUB_OFFLINE=1: weights that are not on disk are one error line saying what to fetch.
"""
from __future__ import annotations

import os

import numpy as np

from hivemind.core.config import NOVELTYBENCH_CLASSIFIER, NOVELTYBENCH_THRESHOLD, RunConfig
from hivemind.core.errors import HivemindError
from hivemind.score.pairs import AnswerSet, PairSummary
from hivemind.store import Store, Verdict

MAX_TOKENS = 128                               # per answer, as NoveltyBench
NOVELTYBENCH_TOKENIZER = "microsoft/deberta-v3-large"


def encode_pair(tokenizer, a: str, b: str) -> tuple[list[int], list[int]]:
    """(input ids, token type ids) of one pair, NoveltyBench's layout."""
    ids = [tokenizer.cls_token_id]
    halves = []
    for text in (a, b):
        halves.append(tokenizer.encode(text, truncation=True, max_length=MAX_TOKENS, add_special_tokens=False))
    ids += halves[0] + [tokenizer.sep_token_id] + halves[1] + [tokenizer.sep_token_id]
    first = len(halves[0]) + 2
    return ids, [0] * first + [1] * (len(ids) - first)


def pair_probabilities(tokenizer, model, first: str, others: list[str]) -> np.ndarray:
    """P(same) of (first, other) for each other, in one padded batch."""
    import torch

    pairs = [encode_pair(tokenizer, first, other) for other in others]
    width = max(len(ids) for ids, _ in pairs)
    pad = tokenizer.pad_token_id or 0
    device = next(model.parameters()).device
    ids = torch.tensor([p + [pad] * (width - len(p)) for p, _ in pairs], device=device)
    types = torch.tensor([t + [0] * (width - len(t)) for _, t in pairs], device=device)
    mask = torch.tensor([[1] * len(p) + [0] * (width - len(p)) for p, _ in pairs], device=device)
    inputs = {"input_ids": ids, "attention_mask": mask}
    # Token types only where the model has them (BERT-like: 2); DeBERTa-v3 has none and ignores them.
    if getattr(model.config, "type_vocab_size", 0) >= 2:
        inputs["token_type_ids"] = types
    with torch.inference_mode():
        logits = model(**inputs).logits.float()
    return logits.softmax(-1)[:, 1].cpu().numpy()


class PairClassifier:
    """`decide` for the pair walk: one batch per representative, verdicts stored per batch."""
    workers = 1

    def __init__(self, config: RunConfig, store: Store, part: PairSummary):
        eq = config.equivalence
        self.store, self.part, self.method = store, part, eq.verdict_method
        self.threshold = NOVELTYBENCH_THRESHOLD if eq.threshold is None else eq.threshold
        self.tokenizer, self.model = load_classifier(eq.model)

    def probabilities(self, first: str, others: list[str]) -> np.ndarray:
        return pair_probabilities(self.tokenizer, self.model, first, others)

    async def decide(self, cell: AnswerSet, i: int, later: list[int]) -> dict[int, bool]:
        probs = self.probabilities(cell.texts[i], [cell.texts[j] for j in later])
        verdicts = [Verdict(cell.system_id, cell.prompt_id, cell.samples[i], cell.samples[j], self.method,
                            bool(p > self.threshold), probability=round(float(p), 6))
                    for j, p in zip(later, probs)]
        self.store.add_verdicts(verdicts)       # committed per batch: a kill loses at most one batch
        self.part.asked += len(verdicts)
        return {j: v.same for j, v in zip(later, verdicts)}


def load_classifier(model_id: str):
    """(tokenizer, model in eval mode, on the GPU when there is one) or one HivemindError line."""
    try:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
    except ImportError:
        raise HivemindError("equivalence method classifier needs the torch and transformers packages") from None
    try:
        model = AutoModelForSequenceClassification.from_pretrained(model_id)
        tokenizer = _tokenizer(AutoTokenizer, model_id)
    except HivemindError:
        raise
    except Exception as err:   # OSError offline, ValueError for a model that is not a classifier, ...
        raise HivemindError(_load_message(model_id, err)) from None
    if model.config.num_labels < 2:
        raise HivemindError(f"equivalence classifier {model_id!r} has {model.config.num_labels} output label; "
                            f"it needs two (label 1 = same), as NoveltyBench's {NOVELTYBENCH_CLASSIFIER}")
    model.eval()
    if torch.cuda.is_available():
        model.to("cuda")
    return tokenizer, model


def _tokenizer(auto, model_id: str):
    """The classifier's own tokenizer; NoveltyBench's (deberta-v3-large's) when its folder has none."""
    try:
        return auto.from_pretrained(model_id)
    except Exception as err:
        if model_id != NOVELTYBENCH_CLASSIFIER:
            raise
        try:
            return auto.from_pretrained(NOVELTYBENCH_TOKENIZER)
        except Exception:
            raise HivemindError(_load_message(NOVELTYBENCH_TOKENIZER, err, "the classifier's tokenizer ")) from None


def _load_message(model_id: str, err: Exception, what: str = "") -> str:
    first = str(err).strip().splitlines()[0][:160] if str(err).strip() else ""
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    where = "HF_HUB_OFFLINE is set, so nothing is downloaded" if offline else f"{type(err).__name__}: {first}"
    return (f"equivalence classifier: {what}{model_id!r} could not be loaded ({where}); run "
            f"`huggingface-cli download {model_id}` where there is a network (into this machine's Hugging Face "
            f"cache), or name a local folder as `equivalence: {{method: classifier, model: /path}}` in the run's "
            f"config")
