"""The fake OpenAI server answers like the real API and injects faults at the rates it is told."""

import asyncio
import json
import os
import sys
from collections import Counter
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from fake_openai import FakeOpenAI, FakeProcess, answer_text, remote_configure, remote_stats  # noqa: E402

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Write a poem about time"}]


def chat(client: httpx.Client, url: str, seed=None, model="fake", prompt=None, **extra) -> httpx.Response:
    messages = MESSAGES if prompt is None else [{"role": "user", "content": prompt}]
    body = {"model": model, "messages": messages, **extra}
    if seed is not None:
        body["seed"] = seed
    return client.post(f"{url}/chat/completions", json=body)


def outcome(client: httpx.Client, url: str, seed: int) -> str:
    """What one request ended as, from the client's side."""
    try:
        response = chat(client, url, seed=seed)
    except httpx.TimeoutException:
        return "hang"
    except (httpx.RemoteProtocolError, httpx.ReadError):
        return "drop"
    if response.status_code != 200:
        return str(response.status_code)
    try:
        response.json()
    except json.JSONDecodeError:
        return "malformed"
    return "ok"


@pytest.fixture(scope="module")
def server():
    with FakeOpenAI(seed=7) as fake:
        yield fake


@pytest.fixture
def fake(server):
    """The shared server with its faults off and counters at zero."""
    server.configure(rate_429=0, rate_500=0, rate_hang=0, rate_malformed=0, rate_drop=0, fail_status=None,
                     fail_models=None, delay=0, expected_api_key=None, enforce_api_key=False, max_prompt_tokens=None,
                     seed=7)
    server.reset_counts()
    return server


def test_chat_completion_has_openai_shape(fake):
    with httpx.Client(timeout=5) as client:
        response = chat(client, fake.url, seed=3)
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert isinstance(body["created"], int)
    assert body["model"] == "fake"
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"] == answer_text("fake", "Write a poem about time", 3)
    assert choice["finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["prompt_tokens"] == 7  # "Be brief." + "Write a poem about time"
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > usage["prompt_tokens"]


def test_answers_are_deterministic_per_seed_and_model(fake):
    with httpx.Client(timeout=5) as client:
        def content(**kwargs):
            return chat(client, fake.url, **kwargs).json()["choices"][0]["message"]["content"]

        assert content(seed=1) == content(seed=1)
        assert len({content(seed=s) for s in range(10)}) == 10
        assert content(seed=1) != content(seed=1, model="other")
        assert content(seed=1) != content(seed=None)
        assert content(seed=1, prompt="Name a color").endswith("to: Name a color")
        two = chat(client, fake.url, seed=1, n=2).json()["choices"]
        assert [c["index"] for c in two] == [0, 1] and two[0]["message"]["content"] == content(seed=1)
        assert two[1]["message"]["content"] != two[0]["message"]["content"]


def test_embeddings_and_models(fake):
    with httpx.Client(timeout=5) as client:
        first = client.post(f"{fake.url}/embeddings", json={"model": "e", "input": ["a cat", "a dog"]}).json()
        again = client.post(f"{fake.url}/embeddings", json={"model": "e", "input": "a cat"}).json()
        wide = client.post(f"{fake.url}/embeddings", json={"model": "e", "input": "x", "dimensions": 32}).json()
        models = client.get(f"{fake.url}/models").json()
    vectors = [item["embedding"] for item in first["data"]]
    assert [item["index"] for item in first["data"]] == [0, 1]
    assert len(vectors[0]) == 8 and vectors[0] != vectors[1]
    assert again["data"][0]["embedding"] == vectors[0]
    assert abs(sum(v * v for v in vectors[0]) - 1.0) < 1e-9
    assert len(wide["data"][0]["embedding"]) == 32
    assert models["object"] == "list" and models["data"]
    assert fake.embedding_requests == 3 and fake.requests == 0


def test_counters_and_stats(fake):
    with httpx.Client(timeout=5) as client:
        for seed in (0, 1, 1):
            chat(client, fake.url, seed=seed)
        chat(client, fake.url, seed=0, model="other")
        stats = client.get(f"{fake.url}/stats").json()
    assert fake.requests == 4 and fake.answers == 4
    assert fake.by_model == {"fake": 3, "other": 1}
    assert fake.by_key[("Write a poem about time", 1)] == 2
    assert fake.by_key[("Write a poem about time", 0)] == 2
    assert stats["requests"] == 4 and stats["by_model"] == {"fake": 3, "other": 1}
    assert {(k["prompt"], k["seed"], k["count"]) for k in stats["by_key"]} == {
        ("Write a poem about time", 0, 2), ("Write a poem about time", 1, 2)}
    fake.reset_counts()
    assert fake.requests == 0 and not fake.by_key and fake.stats()["answers"] == 0


def test_fault_rates_roughly_match(fake):
    fake.configure(rate_429=0.15, rate_500=0.15, rate_malformed=0.15, rate_drop=0.15, retry_after="2")
    seen = Counter()
    retry_after = set()
    with httpx.Client(timeout=5) as client:
        for seed in range(200):
            seen[outcome(client, fake.url, seed)] += 1
        fake.configure(rate_429=1.0, rate_500=0, rate_malformed=0, rate_drop=0)
        response = chat(client, fake.url, seed=0)
        retry_after.add(response.headers.get("Retry-After"))
        error = response.json()["error"]
    for kind in ("429", "500", "malformed", "drop"):
        assert 10 <= seen[kind] <= 55, (kind, seen)  # expected 30 of 200
    assert 50 <= seen["ok"] <= 125, seen  # expected 80
    assert fake.faults["429"] >= seen["429"] and fake.faults["drop"] == seen["drop"]
    assert fake.answers == seen["ok"]
    assert retry_after == {"2"}
    assert error["type"] == "rate_limit_error" and error["code"] and error["message"]


def test_hang_makes_client_time_out():
    # A hang lasts 60 s, the client waits 2 s, an ordinary answer takes milliseconds: which requests time out
    # does not depend on how loaded the machine is. Its own server: stop() ends the hangs left behind.
    with FakeOpenAI(seed=7, rate_hang=0.3, hang_seconds=60) as fake:
        seen = Counter()
        with httpx.Client(timeout=2) as client:
            for seed in range(12):
                seen[outcome(client, fake.url, seed)] += 1
        assert seen["hang"] == fake.faults["hang"] >= 1, seen   # exactly the requests the server hung
        assert seen["hang"] + seen["ok"] == 12
        assert [r.outcome for r in fake.log].count("hang") == seen["hang"]
        fake.configure(rate_hang=1.0, hang_seconds=0.2, hang_then="answer")
        with httpx.Client(timeout=30) as client:
            assert chat(client, fake.url, seed=1).status_code == 200  # a patient client gets the late answer


def test_log_records_each_chat_request_with_its_outcome_and_times(fake):
    fake.configure(fail_models={"broken": 503}, max_prompt_tokens=6)
    with httpx.Client(timeout=5) as client:
        chat(client, fake.url, seed=1, prompt="short one")
        chat(client, fake.url, seed=2, model="broken", prompt="short two")
        chat(client, fake.url, seed=3, prompt="one two three four five six seven")
        response = client.post(f"{fake.url}/embeddings", json={"model": "e", "input": "not a chat"})
    assert response.status_code == 200
    assert [(r.model, r.prompt, r.seed, r.outcome) for r in fake.log] == [
        ("fake", "short one", 1, "answer"), ("broken", "short two", 2, "fail"),
        ("fake", "one two three four five six seven", 3, "too_long")]
    for before, after in zip(fake.log, fake.log[1:]):
        assert before.arrived <= before.answered <= after.arrived   # one client, one request at a time
    assert fake.peak_in_flight_by_model == {"fake": 1, "broken": 1}
    assert sum(fake.in_flight_by_model.values()) == 0


def test_fail_status_and_fail_models(fake):
    fake.configure(fail_status=401)
    with httpx.Client(timeout=5) as client:
        response = chat(client, fake.url, seed=1)
        assert response.status_code == 401
        assert response.json()["error"]["type"] == "authentication_error"
        assert set(response.json()["error"]) >= {"message", "type", "code"}
        fake.configure(fail_status=None, fail_models={"broken": 400})
        assert chat(client, fake.url, seed=1, model="broken").status_code == 400
        assert chat(client, fake.url, seed=1, model="fine").status_code == 200
    assert fake.answers == 1 and fake.faults["fail"] == 2


def test_api_key_is_checked_not_stored(fake):
    fake.configure(expected_api_key="sk-right")
    with httpx.Client(timeout=5) as client:
        def with_key(key):
            return client.post(f"{fake.url}/chat/completions", headers={"Authorization": f"Bearer {key}"},
                               json={"model": "fake", "messages": MESSAGES})

        assert with_key("sk-right").status_code == 200
        assert with_key("sk-wrong").status_code == 200  # only recorded unless enforced
        fake.configure(enforce_api_key=True)
        assert with_key("sk-wrong").status_code == 401
        stats = client.get(f"{fake.url}/stats").text
    assert (fake.auth_ok, fake.auth_bad) == (1, 2)
    assert "sk-right" not in stats and "sk-wrong" not in stats


def test_admin_endpoint_changes_faults_and_resets(fake):
    with httpx.Client(timeout=5) as client:
        chat(client, fake.url, seed=1)
        answer = client.post(f"{fake.url}/admin", json={"rate_500": 1.0, "reset": True}).json()
        assert answer["settings"]["rate_500"] == 1.0
        assert fake.requests == 0
        assert chat(client, fake.url, seed=1).status_code == 500
        assert client.post(f"{fake.url}/admin", json={"rate_500": 2.0}).status_code == 400
        assert client.post(f"{fake.url}/admin", json={"no_such": 1}).status_code == 400


def test_many_concurrent_connections(fake):
    fake.configure(delay=0.5)

    async def burst():
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(timeout=30, limits=limits) as client:
            return await asyncio.gather(*[
                client.post(f"{fake.url}/chat/completions",
                            json={"model": "fake", "messages": MESSAGES, "seed": s}) for s in range(60)])

    responses = asyncio.run(burst())
    assert [r.status_code for r in responses] == [200] * 60
    assert fake.peak_in_flight >= 50  # they were served side by side, not queued behind each other
    assert len(fake.by_key) == 60


def test_separate_process_mode():
    with FakeProcess(rate_500=1.0, seed=3) as url:
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
        with httpx.Client(timeout=5) as client:
            assert chat(client, url, seed=1).status_code == 500
            remote_configure(url, rate_500=0.0)
            assert chat(client, url, seed=1).status_code == 200
        stats = remote_stats(url)
        assert stats["requests"] == 2 and stats["answers"] == 1 and stats["faults"] == {"500": 1}
        remote_configure(url, reset=True)
        assert remote_stats(url)["requests"] == 0


def test_litellm_parses_an_answer(fake):
    import litellm

    fake.configure(expected_api_key="sk-test")
    response = asyncio.run(litellm.acompletion(
        model="openai/fake", api_base=fake.url, api_key="sk-test", messages=MESSAGES, seed=3, timeout=10))
    assert response.choices[0].message.content == answer_text("fake", "Write a poem about time", 3)
    assert response.choices[0].finish_reason == "stop"
    assert response.usage.total_tokens > 0
    assert fake.by_key[("Write a poem about time", 3)] == 1
    assert fake.auth_ok == 1 and fake.auth_bad == 0
