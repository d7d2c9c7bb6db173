"""hivemind plan: arithmetic on the config, litellm prices, measured rates."""
from __future__ import annotations

import litellm
import pytest

from hivemind.cli import main as cli_main
from hivemind.studies.plan import (MEAN_ANSWER_TOKENS, STORE_BYTES_PER_ANSWER, STORE_BYTES_PER_VECTOR, TEXTS_PER_S,
                           estimate, paper_plan)


def test_counts_tokens_and_cost_follow_litellm_prices():
    model = "gpt-4o-mini"
    price = litellm.model_cost[model]
    plan = estimate(prompts=100, systems=[(model, 200), ("openai/my-local-model", None)], samples=5, settings=2,
                    prompt_chars=400)
    assert plan.answers == plan.requests == 100 * 5 * 2 * 2
    assert plan.answer_tokens == 1000 * 200 + 1000 * MEAN_ANSWER_TOKENS
    expected = 1000 * (100 * price["input_cost_per_token"] + 200 * price["output_cost_per_token"])
    assert plan.cost == pytest.approx(expected)
    assert plan.unpriced == ["openai/my-local-model"]           # named, not guessed
    assert plan.store_bytes == 2000 * STORE_BYTES_PER_ANSWER + 2100 * STORE_BYTES_PER_VECTOR


def test_embedding_time_divides_by_rate_and_workers():
    plan = estimate(prompts=10, systems=[("gpt-4o-mini", None)], samples=10)
    (machine, backend), rate = next(iter(TEXTS_PER_S.items()))
    assert plan.embed_seconds[(machine, backend, 1)] == pytest.approx(110 / rate)
    assert plan.embed_seconds[(machine, backend, 8)] == pytest.approx(110 / rate / 8)


def test_paper_scale_and_cli(capsys):
    assert paper_plan().answers == 26_000 * 25 * 50 * 2
    assert cli_main(["plan", "demo", "--scale"]) == 0
    out = capsys.readouterr().out
    assert "65,000,000 answers" in out and "unpriced models: openai/gemma3-270m" in out
