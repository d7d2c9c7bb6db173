"""Connecting to Ray: an existing cluster (`--ray-address`) or a local one started on demand.

A local cluster is started with no dashboard and, unless verbose, without forwarding worker logs to the
terminal, and is shut down again when the stage ends. An address is probed with a plain TCP connection
first (a few seconds), because `ray.init` itself keeps retrying an unreachable address for a minute or
more before it gives up.

Workers import hivemind like the driver: a local cluster inherits the driver's environment (PYTHONPATH,
the virtualenv); for a remote cluster the package is shipped with the job (runtime_env py_modules).
Workers of a remote cluster read the run's store and Parquet shards by path, so the results folder must
be on a file system they share (the local cluster always does).

Token authentication (Ray >= 2.5x): `ray start --head` turns it on by itself when a token is on that machine
(~/.ray/auth_token, RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH), but `ray.init(address=...)` never does, so a
driver on the same machine was refused ("Authentication token is missing or incorrect") and gave up after
a minute of retries. The driver applies `ray start`'s rule (token_auth): with a token at hand and
RAY_AUTH_MODE unset it sends the token, which a cluster without authentication ignores.
"""
from __future__ import annotations

import logging
import os
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from hivemind.core.errors import HivemindError
from hivemind.core.extras import require

PROBE_TIMEOUT_S = 3.0
DEFAULT_RAY_PORT = 6379           # `ray start --head` (GCS); ray:// client addresses default to 10001
DEFAULT_CLIENT_PORT = 10001


def import_ray():
    return require("ray", "ray", "--engine ray (the ray package)")


def probe(address: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Fail within `timeout` seconds, naming the address, when nothing listens there."""
    if address == "auto":
        return
    url = urlsplit(address if "://" in address else f"tcp://{address}")
    try:
        host, port = url.hostname, url.port
    except ValueError:
        host, port = None, None
    if not host:
        raise HivemindError(f"--ray-address {address!r} is not HOST:PORT (or ray://HOST:PORT, or auto)")
    port = port or (DEFAULT_CLIENT_PORT if url.scheme == "ray" else DEFAULT_RAY_PORT)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as err:
        raise HivemindError(f"Ray cluster at {address!r} is unreachable ({host}:{port}: "
                            f"{err.strerror or type(err).__name__}); start it with `ray start --head` there, "
                            f"or leave out --ray-address to run on a local cluster") from None


def check_ready(address: str | None) -> None:
    """Before a stage that first collects (and pays for answers): Ray is installed and, when an address is
    given, something listens there. `run --engine ray` with a dead address used to collect every answer and
    only then fail."""
    import_ray()
    if address:
        probe(address)


@contextmanager
def connected(address: str | None = None, num_cpus: int | None = None, verbose: bool = False) -> Iterator:
    """The `ray` module, initialised. Reuses a connection this process already has (tests, notebooks);
    otherwise connects to `address` or starts a local cluster, and disconnects (or shuts it down) after."""
    ray = import_ray()
    if not verbose:
        quieten()
    if ray.is_initialized():
        yield ray
        return
    if address:
        probe(address)
    quiet = dict(log_to_driver=verbose, logging_level=logging.INFO if verbose else logging.WARNING)
    with token_auth(address):
        try:
            if address:
                package = str(Path(__file__).resolve().parents[2])   # hivemind/, this file being hivemind/engines/ray/cluster.py
                ray.init(address=address, runtime_env={"py_modules": [package]}, **quiet)
            else:
                ray.init(num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False, **quiet)
        except HivemindError:
            raise
        except Exception as err:
            where = f"Ray cluster at {address!r}" if address else "a local Ray cluster"
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            hint = ("; if that cluster uses token authentication, put its token in ~/.ray/auth_token here "
                    "(`ray get-auth-token` on its head) or in RAY_AUTH_TOKEN" if address and not has_token() else "")
            raise HivemindError(f"could not connect to {where}: {first}{hint}") from None
        try:
            yield ray
        finally:
            ray.shutdown()


AUTH_MODE = "RAY_AUTH_MODE"


def has_token() -> bool:
    """A Ray authentication token at hand, where Ray looks for one (its order: RAY_AUTH_TOKEN, the file
    RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token)."""
    if os.environ.get("RAY_AUTH_TOKEN", "").strip():
        return True
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token"
    try:
        return bool(Path(path).read_text().strip())
    except OSError:
        return False


@contextmanager
def token_auth(address: str | None) -> Iterator[None]:
    """For an existing cluster: RAY_AUTH_MODE=token while connected when a token is at hand and the user
    set no mode (the rule `ray start --head` applies to itself); the user's setting is left alone."""
    enable = bool(address) and AUTH_MODE not in os.environ and has_token()
    if enable:
        os.environ[AUTH_MODE] = "token"
        refresh_ray_config()
    try:
        yield
    finally:
        if enable:
            os.environ.pop(AUTH_MODE, None)
            refresh_ray_config()


def refresh_ray_config() -> None:
    """Ray caches its settings (RAY_AUTH_MODE among them) when it is imported; re-read the environment, as
    Ray's own token setup does (ray._private.authentication: Config.initialize(""))."""
    try:
        from ray._raylet import Config
    except ImportError:         # a Ray without it reads the environment when it connects
        return
    Config.initialize("")


def quieten() -> None:
    """No Ray Data progress bars or per-dataset INFO lines: the stage shows its own progress bar."""
    import ray.data

    logging.getLogger("ray").setLevel(logging.WARNING)
    # "Token authentication is enabled for this Ray cluster": said on every local start when a token exists
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
    logging.getLogger("ray.data").setLevel(logging.ERROR)     # its notices are about its own progress bars
    ray.data.DataContext.get_current().enable_progress_bars = False


def n_cpus(ray) -> int:
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def n_gpus(ray) -> int:
    return int(ray.cluster_resources().get("GPU", 0))


def gpu_workers(ray, gpus: int | None) -> int:
    """GPU actors to use: `gpus` None means every GPU the cluster has (0 on a CPU cluster); asking for
    more than it has is an error naming both numbers."""
    have = n_gpus(ray)
    if gpus is None:
        return have
    if gpus < 0:
        raise HivemindError(f"--gpus {gpus}: give 0 or more")
    if gpus > have:
        raise HivemindError(f"--gpus {gpus}: the Ray cluster has {have} GPU(s) "
                            f"({'none' if not have else have} in ray.cluster_resources()); "
                            f"use --gpus 0 to embed on CPU workers, or connect to a cluster with GPUs")
    return gpus


def remote_error(err: BaseException) -> str:
    """The user's exception inside Ray's wrappers (RayTaskError, Ray Data's UserCodeException), as one line."""
    cause, seen = err, set()
    while id(cause) not in seen:
        seen.add(id(cause))
        inner = getattr(cause, "cause", None) or cause.__cause__ or cause.__context__
        if inner is None or not isinstance(inner, BaseException):
            break
        cause = inner
    if isinstance(cause, HivemindError):
        return str(cause)
    # Ray Data re-raises on the driver with the worker's traceback as text: take the user's error line
    for line in str(err).splitlines():
        found = re.match(r"^(?:[\w.]+\.)?(\w+(?:Error|Exception)): (.+)$", line.strip())
        if found and not line.strip().startswith("ray.") and found.group(1) != "UserCodeException":
            return f"{found.group(1)}: {found.group(2)}"
    text = [line for line in str(cause).strip().splitlines() if line.strip()]
    return f"{type(cause).__name__}: {text[0] if text else ''}"
