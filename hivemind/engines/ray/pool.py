"""The shard pool both Ray stages share (embedding.py, scoring.py), written once.

Work goes out as blocks, a pool of actors maps them batch by batch (one actor per CPU, or per GPU), and each
finished batch comes back to the driver, which writes it as an output shard (Parquet, renamed into place) and
imports it into the store at once. A failure on the cluster becomes one HivemindError that says what failed
and that everything imported so far is kept; shards a killed job left behind are imported by the next run.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from hivemind.core.errors import HivemindError
from hivemind.engines.ray.cluster import remote_error

FAULT_ENV = "HIVEMIND_RAY_FAULT_ONCE"   # chaos tests: a file whose presence makes one worker die once
SHARDS_PER_WORKER = 4        # at least, so that every worker has work and a retried shard is small


def map_actors(ray, ds, actor: type, kwargs: dict, batch_size: int, size: int, on_gpu: bool):
    """`ds` mapped by a pool of `size` `actor`s built with `kwargs`: one GPU each on GPUs, else one CPU each."""
    return ds.map_batches(actor, batch_format="numpy", batch_size=batch_size, fn_constructor_kwargs=kwargs,
                          compute=ray.data.ActorPoolStrategy(size=size), num_gpus=1 if on_gpu else 0,
                          num_cpus=0 if on_gpu else 1)


def drain(ds, handle: Callable[[dict], int], total: int, desc: str, unit: str, progress: bool,
          failed: str, kept: str) -> int:
    """Hand every finished batch to `handle` (which writes and imports its shard and returns its rows),
    with a progress bar; returns the rows. A failure on the cluster: HivemindError "`failed`: cause; `kept`"."""
    from tqdm import tqdm

    done = 0
    with tqdm(total=total, desc=desc, unit=unit, disable=not progress, dynamic_ncols=True) as bar:
        try:
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
                rows = handle(batch)
                done += rows
                bar.update(rows)
        except HivemindError:
            raise
        except Exception as err:
            raise HivemindError(f"{failed}: {remote_error(err)}; {kept}") from None
    return done


def output_path(folder: Path) -> Path:
    """A new output shard's name: unique across processes and time, so no shard overwrites another."""
    return folder / f"part-{time.time_ns()}-{os.getpid()}.parquet"


def die_once(flag: str | None) -> None:
    """Chaos hook (FAULT_ENV): the first worker to claim the flag file exits mid-batch, as a crash would."""
    if not flag:
        return
    try:
        os.remove(flag)             # only one process can remove it: exactly one death
    except OSError:
        return
    os._exit(1)


def remove_empty(*folders: Path) -> None:
    """Remove the work folders, innermost first, stopping at the first that still holds something."""
    for path in folders:
        try:
            path.rmdir()
        except OSError:
            return
