"""A small OpenAI-shaped HTTP server on 127.0.0.1 that injects provider faults.

Tests and benchmarks point litellm at it (model="openai/<name>", api_base=server.url) instead of
patching litellm, so the real HTTP client, retry and parsing code paths run.

In process:
    with FakeOpenAI(rate_429=0.1, seed=1) as server:
        litellm.completion(model="openai/fake", api_base=server.url, api_key="sk-test", ...)
        assert server.answers == ...

Out of process (its CPU then does not compete for the caller's GIL):
    python tests/fake_openai.py --port 0 --rate-500 0.05     # prints the URL on stdout when ready
    GET  <url>/stats           counters as JSON
    POST <url>/admin {json}    change settings (same names as the constructor), {"reset": true} resets counts
The helpers FakeProcess, remote_stats and remote_configure wrap this.

Answers are deterministic in (model, last user message, seed, choice index): see answer_text().
Faults apply to POST /v1/chat/completions and POST /v1/embeddings alike; GET routes and /admin never fault.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import asdict, dataclass, fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from math import sqrt

FAULT_KINDS = ("429", "500", "hang", "malformed", "drop")

# OpenAI-style error type/code per status, so clients classify errors as they would for the real API.
ERROR_KINDS = {
    400: ("invalid_request_error", "invalid_request"),
    401: ("authentication_error", "invalid_api_key"),
    403: ("permission_error", "permission_denied"),
    404: ("not_found_error", "model_not_found"),
    408: ("timeout_error", "timeout"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
    500: ("server_error", "server_error"),
    502: ("server_error", "bad_gateway"),
    503: ("server_error", "overloaded"),
}


@dataclass
class Settings:
    """Everything that shapes answers and faults; changeable at runtime via configure() or POST /admin."""

    rate_429: float = 0.0
    rate_500: float = 0.0
    rate_hang: float = 0.0
    rate_malformed: float = 0.0
    rate_drop: float = 0.0
    retry_after: str | None = "0"  # Retry-After header on injected 429s; None sends no header
    hang_seconds: float = 5.0
    hang_then: str = "drop"  # after a hang: "drop" the connection or "answer" late
    fail_status: int | None = None  # every request answers this status with an error JSON
    fail_models: dict[str, int] | None = None  # model name -> status it always answers
    delay: float = 0.0  # seconds before every answer
    expected_api_key: str | None = None  # count whether "Authorization: Bearer <key>" matched
    enforce_api_key: bool = False  # with expected_api_key: answer 401 when it does not match
    echo_api_key: bool = False  # error messages quote the Authorization header back, as some providers do
    embedding_dim: int = 8
    judge_max: int | None = None  # judge mode: chat answers are grades "...\nScore: N" (see judge_text())
    max_prompt_tokens: int | None = None  # a longer prompt (words) gets OpenAI's 400 "context length" error

    def validate(self) -> None:
        rates = [self.rate_429, self.rate_500, self.rate_hang, self.rate_malformed, self.rate_drop]
        if any(r < 0 for r in rates) or sum(rates) > 1.0 + 1e-9:
            raise ValueError(f"fault rates must be >= 0 and sum to <= 1, got {rates}")
        if self.hang_then not in ("drop", "answer"):
            raise ValueError(f"hang_then must be 'drop' or 'answer', got {self.hang_then!r}")


SETTING_NAMES = {f.name for f in fields(Settings)}


@dataclass
class ChatRecord:
    """One chat request as the server saw it, times from time.monotonic() in the server's process.

    Tests measure waits between attempts from these (the gap between one answer leaving and the next
    request arriving), not from the client's wall clock: a slow client can only make gaps longer."""

    model: str
    prompt: str
    seed: object
    arrived: float
    answered: float | None = None   # just before the response (or the drop) went out; None while in flight
    # "answer", a fault kind (429 500 hang malformed drop), "fail", "auth" or "too_long"; None while undecided
    # (a hang is marked when it starts, so a request still hanging already reads "hang")
    outcome: str | None = None


def context_length_message(limit: int, used: int) -> str:
    """OpenAI's wording, which litellm maps to ContextWindowExceededError."""
    return (f"This model's maximum context length is {limit} tokens. However, your messages resulted in {used} "
            "tokens. Please reduce the length of the messages.")


def answer_text(model: str, prompt: str, seed=None, index: int = 0) -> str:
    """The content the server answers for this model, user prompt, seed and choice index."""
    digest = hashlib.sha256(f"{model}\n{seed}\n{index}\n{prompt}".encode()).hexdigest()[:12]
    head = " ".join(prompt.split()[:8])
    return f"Answer {digest} to: {head}"


GARBAGE_MARK = "[unparseable]"    # judge mode: a prompt containing this gets a reply with no score
OUT_OF_RANGE_MARK = "[out-of-range]"  # ... and this one a score above judge_max


def judge_text(prompt: str, judge_max: int) -> str:
    """Judge mode's reply: a short reason and a final `Score: N`, N in 1..judge_max from the prompt's hash."""
    if GARBAGE_MARK in prompt:
        return "This answer is hard to grade. I would rather not give it a number."
    if OUT_OF_RANGE_MARK in prompt:
        return f"Exceptional.\nScore: {judge_max + 1}"
    score = 1 + int(hashlib.sha256(prompt.encode()).hexdigest(), 16) % judge_max
    return f"The answer addresses the request.\nScore: {score}"


def embedding_vector(text: str, dim: int = 8) -> list[float]:
    """Deterministic unit vector from the hash of text."""
    values: list[float] = []
    block = 0
    while len(values) < dim:
        digest = hashlib.sha256(f"{block}\n{text}".encode()).digest()
        values.extend(v / 2**31 - 1.0 for v in struct.unpack("<8I", digest))
        block += 1
    values = values[:dim]
    norm = sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def message_text(content) -> str:
    """Text of a message content, which may be a string or a list of typed parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def prompt_of(messages) -> str:
    """The last user message: the 'prompt' that answers and counters are keyed on."""
    for message in reversed(messages or []):
        if isinstance(message, dict) and message.get("role") == "user":
            return message_text(message.get("content"))
    return ""


class FakeOpenAI:
    """OpenAI-shaped server on 127.0.0.1 in a background thread.

    Constructor: port=0 (free port), seed=0 (fault RNG), and any Settings field as a keyword.
    Counters (thread-safe, live): requests (chat requests received), answers (chat answers sent),
    embedding_requests, by_model Counter[model], by_key Counter[(prompt, seed)], faults Counter[kind]
    (kinds: 429 500 hang malformed drop fail delay too_long), auth_ok, auth_bad, in_flight, peak_in_flight,
    peak_in_flight_by_model Counter[model] (the most chat requests of one model served at once), and
    log: list[ChatRecord], every chat request in arrival order.
    """

    def __init__(self, port: int = 0, seed: int = 0, **settings):
        unknown = set(settings) - SETTING_NAMES
        if unknown:
            raise TypeError(f"unknown FakeOpenAI settings: {sorted(unknown)}")
        self.settings = Settings(**settings)
        self.settings.validate()
        self.port = port
        self.seed = seed
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.reset_counts()

    # --- lifecycle -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> "FakeOpenAI":
        self._stopping.clear()
        self._server = _Server(("127.0.0.1", self.port), _Handler)
        self._server.fake = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-openai", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers sleeping in a hang or delay
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "FakeOpenAI":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- settings and counters -------------------------------------------------------------------

    def configure(self, **changes) -> None:
        """Change settings at runtime (same names as the constructor; 'seed' reseeds the fault RNG)."""
        unknown = set(changes) - SETTING_NAMES - {"seed"}
        if unknown:
            raise ValueError(f"unknown settings: {sorted(unknown)}")
        with self._lock:
            seed = changes.pop("seed", None)
            updated = Settings(**{**asdict(self.settings), **changes})
            updated.validate()
            self.settings = updated
            if seed is not None:
                self.seed = seed
                self._rng = random.Random(seed)

    def reset_counts(self) -> None:
        with self._lock:
            self.requests = 0
            self.answers = 0
            self.embedding_requests = 0
            self.by_model: Counter = Counter()
            self.by_key: Counter = Counter()
            self.faults: Counter = Counter()
            self.auth_ok = 0
            self.auth_bad = 0
            self.in_flight = 0
            self.peak_in_flight = 0
            self.in_flight_by_model: Counter = Counter()
            self.peak_in_flight_by_model: Counter = Counter()
            self.log: list[ChatRecord] = []

    def stats(self) -> dict:
        """A JSON-able snapshot of the counters (what GET /stats returns)."""
        with self._lock:
            return {
                "requests": self.requests,
                "answers": self.answers,
                "embedding_requests": self.embedding_requests,
                "by_model": dict(self.by_model),
                "by_key": [{"prompt": p, "seed": s, "count": n} for (p, s), n in self.by_key.items()],
                "faults": dict(self.faults),
                "auth_ok": self.auth_ok,
                "auth_bad": self.auth_bad,
                "in_flight": self.in_flight,
                "peak_in_flight": self.peak_in_flight,
                "settings": self._public_settings(),
            }

    def _public_settings(self) -> dict:
        settings = asdict(self.settings)
        settings["expected_api_key"] = "<set>" if settings["expected_api_key"] else None  # never echo keys
        return settings

    # --- called by the handler -------------------------------------------------------------------

    def _enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _count(self, **increments) -> None:
        with self._lock:
            for name, amount in increments.items():
                setattr(self, name, getattr(self, name) + amount)

    def _count_chat(self, model: str, prompt: str, seed) -> ChatRecord:
        record = ChatRecord(model, prompt, seed, arrived=time.monotonic())
        with self._lock:
            self.requests += 1
            self.by_model[model] += 1
            self.by_key[(prompt, seed)] += 1
            self.in_flight_by_model[model] += 1
            self.peak_in_flight_by_model[model] = max(self.peak_in_flight_by_model[model],
                                                      self.in_flight_by_model[model])
            self.log.append(record)
        return record

    def _done_chat(self, record: ChatRecord, outcome: str, answered: float | None) -> None:
        with self._lock:
            self.in_flight_by_model[record.model] -= 1
            record.answered = answered if answered is not None else time.monotonic()
            record.outcome = outcome

    def _count_fault(self, kind: str) -> None:
        with self._lock:
            self.faults[kind] += 1

    def _draw_fault(self) -> str | None:
        """One seeded draw per request decides which fault (if any) it gets."""
        with self._lock:
            s = self.settings
            draw = self._rng.random()
        edge = 0.0
        for kind, rate in zip(FAULT_KINDS, (s.rate_429, s.rate_500, s.rate_hang, s.rate_malformed, s.rate_drop)):
            edge += rate
            if draw < edge:
                return kind
        return None

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() must not wait for handlers stuck in a hang
    request_queue_size = 512
    allow_reuse_address = True
    fake: FakeOpenAI

    def handle_error(self, request, client_address):
        # Clients that time out or hang up are part of the game; keep test output clean.
        error = sys.exc_info()[1]
        if not isinstance(error, (ConnectionError, TimeoutError, OSError)):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real clients expect
    disable_nagle_algorithm = True  # headers and body go out in two writes; Nagle would add ~40 ms each
    server: _Server

    def log_message(self, format, *args):  # noqa: A002 - silence per-request logging
        pass

    # --- plumbing --------------------------------------------------------------------------------

    @property
    def fake(self) -> FakeOpenAI:
        return self.server.fake

    def _path(self) -> str:
        path = self.path.split("?", 1)[0].rstrip("/")
        return path[3:] if path.startswith("/v1") else path

    def _read_json(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw or b"{}")
        except ValueError:
            return None

    def _send(self, status: int, body: bytes, headers: dict | None = None) -> None:
        # Stamped before the bytes leave: a client cannot have read the answer earlier, so a gap measured
        # from here to its next request is never shorter than the client's own wait.
        self.sent_at = time.monotonic()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def _send_json(self, status: int, payload, headers: dict | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), headers)

    def _send_error(self, status: int, message: str, headers: dict | None = None) -> None:
        if self.fake.settings.echo_api_key:
            message += f" (Authorization: {self.headers.get('Authorization')})"
        kind, code = ERROR_KINDS.get(status, ("api_error", str(status)))
        self._send_json(status, {"error": {"message": message, "type": kind, "code": code, "param": None}}, headers)

    def _drop(self) -> None:
        """Close the connection without a response (the client sees a disconnect)."""
        self.sent_at = time.monotonic()
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # --- routes ----------------------------------------------------------------------------------

    def do_GET(self):
        path = self._path()
        if path == "/stats":
            self._send_json(200, self.fake.stats())
        elif path == "/models":
            self._send_json(200, {"object": "list", "data": [
                {"id": m, "object": "model", "created": 0, "owned_by": "fake"}
                for m in sorted(self.fake.stats()["by_model"]) or ["fake"]]})
        else:
            self._send_error(404, f"no route GET {self.path}")

    def do_POST(self):
        path = self._path()
        body = self._read_json()
        if body is None or not isinstance(body, dict):
            self._send_error(400, "request body is not a JSON object")
        elif path == "/admin":
            self._admin(body)
        elif path == "/chat/completions":
            self._serve(body, self._chat, chat=True)
        elif path == "/embeddings":
            self._serve(body, self._embeddings, chat=False)
        else:
            self._send_error(404, f"no route POST {self.path}")

    def _admin(self, body: dict) -> None:
        reset = body.pop("reset", False)
        try:
            self.fake.configure(**body)
        except (ValueError, TypeError) as error:
            self._send_error(400, str(error))
            return
        if reset:
            self.fake.reset_counts()
        self._send_json(200, {"ok": True, "settings": self.fake._public_settings()})

    def _serve(self, body: dict, answer, chat: bool) -> None:
        fake = self.fake
        fake._enter()
        record = self.record = None
        outcome = "error"
        self.sent_at = None
        try:
            if chat:
                record = self.record = fake._count_chat(str(body.get("model", "")), prompt_of(body.get("messages")),
                                          body.get("seed"))
            else:
                fake._count(embedding_requests=1)
            outcome = self._fault_or_answer(body, answer)
        finally:
            if record is not None:
                fake._done_chat(record, outcome, self.sent_at)
            fake._leave()

    def _fault_or_answer(self, body: dict, answer) -> str:
        """Answer or inject a fault; returns what was done (ChatRecord.outcome)."""
        fake = self.fake
        settings = fake.settings
        if not self._auth_ok(settings):
            fake._count_fault("auth")
            self._send_error(401, "Incorrect API key provided.")
            return "auth"
        if settings.delay > 0:
            fake._sleep(settings.delay)
        status = settings.fail_status or (settings.fail_models or {}).get(str(body.get("model")))
        if status:
            fake._count_fault("fail")
            self._send_error(int(status), f"fake server configured to fail with {status}")
            return "fail"
        used = sum(len(message_text(m.get("content")).split()) for m in body.get("messages") or []
                   if isinstance(m, dict))
        if settings.max_prompt_tokens is not None and used > settings.max_prompt_tokens:
            fake._count_fault("too_long")
            message = context_length_message(settings.max_prompt_tokens, used)
            self._send_json(400, {"error": {"message": message, "type": "invalid_request_error",
                                            "code": "context_length_exceeded", "param": "messages"}})
            return "too_long"
        kind = fake._draw_fault()
        if kind is not None:
            fake._count_fault(kind)
        if kind == "429":
            headers = {} if settings.retry_after is None else {"Retry-After": str(settings.retry_after)}
            self._send_error(429, "Rate limit reached (injected).", headers)
        elif kind == "500":
            self._send_error(500, "The server had an error (injected).")
        elif kind == "malformed":
            self._send(200, b'{"id": "chatcmpl-broken", "object": "chat.completion", "choices": [{"mess')
        elif kind == "drop":
            self._drop()
        elif kind == "hang":
            if self.record is not None:
                self.record.outcome = "hang"
            fake._sleep(settings.hang_seconds)
            if settings.hang_then == "drop" or fake._stopping.is_set():
                self._drop()
            else:
                answer(body)
        else:
            answer(body)
        return kind or "answer"

    def _auth_ok(self, settings: Settings) -> bool:
        # Only whether the key matched is kept; the header itself is never stored or logged.
        if settings.expected_api_key is None:
            return True
        matched = self.headers.get("Authorization", "") == f"Bearer {settings.expected_api_key}"
        self.fake._count(auth_ok=int(matched), auth_bad=int(not matched))
        return matched or not settings.enforce_api_key

    def _chat(self, body: dict) -> None:
        if body.get("stream"):
            self._send_error(400, "the fake server does not stream; call without stream=True")
            return
        model = str(body.get("model", ""))
        messages = body.get("messages") or []
        prompt = prompt_of(messages)
        seed = body.get("seed")
        n = max(1, int(body.get("n") or 1))
        judge_max = self.fake.settings.judge_max
        texts = [judge_text(prompt, judge_max) if judge_max else answer_text(model, prompt, seed, i) for i in range(n)]
        prompt_tokens = sum(len(message_text(m.get("content")).split()) for m in messages if isinstance(m, dict))
        completion_tokens = sum(len(t.split()) for t in texts)
        digest = hashlib.sha256(f"{model}\n{seed}\n{prompt}".encode()).hexdigest()[:24]
        # Count before sending: a client that has read the answer must see it counted.
        self.fake._count(answers=1)
        self._send_json(200, {
            "id": f"chatcmpl-{digest}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "fp_fake",
            "choices": [
                {"index": i, "message": {"role": "assistant", "content": text}, "logprobs": None,
                 "finish_reason": "stop"}
                for i, text in enumerate(texts)
            ],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        })

    def _embeddings(self, body: dict) -> None:
        inputs = body.get("input", "")
        inputs = [inputs] if isinstance(inputs, str) else list(inputs)
        dim = int(body.get("dimensions") or self.fake.settings.embedding_dim)
        data = [{"object": "embedding", "index": i, "embedding": embedding_vector(str(text), dim)}
                for i, text in enumerate(inputs)]
        tokens = sum(len(str(text).split()) for text in inputs)
        self._send_json(200, {"object": "list", "data": data, "model": str(body.get("model", "")),
                              "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})


# --- out-of-process helpers ----------------------------------------------------------------------


def _root(url: str) -> str:
    return url.rstrip("/").removesuffix("/v1")


def remote_stats(url: str) -> dict:
    """GET /stats of a fake server (url as printed, with or without /v1)."""
    with urllib.request.urlopen(_root(url) + "/v1/stats", timeout=10) as response:
        return json.loads(response.read())


def remote_configure(url: str, **changes) -> dict:
    """POST /admin: change settings of a running fake server; reset=True also resets its counters."""
    request = urllib.request.Request(_root(url) + "/v1/admin", data=json.dumps(changes).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


class FakeProcess:
    """Runs the fake server as a separate process: `with FakeProcess(delay=0.1) as url: ...`."""

    def __init__(self, port: int = 0, seed: int = 0, **settings):
        self.args = [sys.executable, __file__, "--port", str(port), "--seed", str(seed)]
        for name, value in settings.items():
            if name == "fail_models":
                value = ",".join(f"{m}={s}" for m, s in value.items())
            if isinstance(value, bool):
                if value:
                    self.args.append("--" + name.replace("_", "-"))
                continue
            self.args += ["--" + name.replace("_", "-"), str(value)]
        self.process: subprocess.Popen | None = None
        self.url = ""

    def start(self) -> str:
        self.process = subprocess.Popen(self.args, stdout=subprocess.PIPE, text=True)
        self.url = self.process.stdout.readline().strip()
        if not self.url.startswith("http://"):
            self.stop()
            raise RuntimeError(f"fake server did not start: {self.args}")
        return self.url

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process.stdout.close()
            self.process = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _parse_fail_models(text: str) -> dict[str, int]:
    pairs = [item.split("=", 1) for item in text.split(",") if item]
    return {model: int(status) for model, status in pairs}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="OpenAI-shaped fake server with fault injection.")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault RNG")
    parser.add_argument("--rate-429", type=float, default=0.0)
    parser.add_argument("--rate-500", type=float, default=0.0)
    parser.add_argument("--rate-hang", type=float, default=0.0)
    parser.add_argument("--rate-malformed", type=float, default=0.0)
    parser.add_argument("--rate-drop", type=float, default=0.0)
    parser.add_argument("--fault-rate", type=float, default=None,
                        help="shortcut: split this total rate evenly over 429, 500 and drop")
    parser.add_argument("--retry-after", default="0", help="Retry-After of injected 429s; 'none' sends none")
    parser.add_argument("--hang-seconds", type=float, default=5.0)
    parser.add_argument("--hang-then", choices=["drop", "answer"], default="drop")
    parser.add_argument("--fail-status", type=int, default=None)
    parser.add_argument("--fail-models", type=_parse_fail_models, default=None, help="model=status,...")
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--expected-api-key", default=None)
    parser.add_argument("--enforce-api-key", action="store_true")
    parser.add_argument("--embedding-dim", type=int, default=8)
    parser.add_argument("--judge-max", type=int, default=None, help="judge mode: answer grades 'Score: N'")
    parser.add_argument("--max-prompt-tokens", type=int, default=None,
                        help="longer prompts (in words) get a 400 context-length error")
    args = vars(parser.parse_args(argv))
    port, seed, fault_rate = args.pop("port"), args.pop("seed"), args.pop("fault_rate")
    if fault_rate is not None:
        args["rate_429"] = args["rate_500"] = args["rate_drop"] = fault_rate / 3
    if str(args["retry_after"]).lower() == "none":
        args["retry_after"] = None
    server = FakeOpenAI(port=port, seed=seed, **args).start()
    print(server.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    main()
