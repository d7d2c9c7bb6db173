"""The orchestrator: the one path through the stages for `run`, every stage command, `reproduce` and
`leaderboard add`.

    collect -> embed -> score -> analyze -> report

Each stage function here
- takes the run lock (hivemind.core.lock: one writer per run folder; a second one is refused with the holder
  named, or waits with wait=True), re-entrantly, so `run` holds it across all stages;
- turns SIGINT, SIGTERM and SIGHUP into `Interrupted`, so every `finally` and `with` runs: local servers this
  process started are stopped, the store is closed (each answer is its own committed transaction, so it is
  consistent at any instant), the lock is released, and the CLI exits with 128 + the signal number;
- for collect: starts the bundled local model servers the systems point at when they are not up (and only
  when there is something to ask), and stops what it started when collecting ends, however it ends.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from hivemind.collect import local_server
from hivemind.core.config import RunConfig, System
from hivemind.core.errors import HivemindError
from hivemind.core.signals import Interrupted, signals_handled  # noqa: F401  (Interrupted: for the CLI)
from hivemind.results.folder import run_locked
from hivemind.results.record import set_report, write_results
from hivemind.store.run import Run


@contextmanager
def locked(config: RunConfig, stage: str, wait: bool = False) -> Iterator[None]:
    """Signals handled and the run lock held: the frame of every stage (hivemind.results.folder.run_locked,
    the same frame every command that writes into a run holds).

    A stage that fails before writing anything leaves no trace: folders that only the lock created (the run
    folder, a new results folder) are removed again, so a bad config or an unloadable prompt set writes
    nothing."""
    with run_locked(config, stage, wait):
        yield


def bundled_models(systems: list[System], names: list[str] | None = None) -> tuple:
    """The bundled models these systems (those named, when `names` is given) are served by."""
    systems = [s for s in systems if names is None or s.name in names]
    return local_server.models_used_by([s.api_base for s in systems], [s.model for s in systems])


@contextmanager
def local_servers(systems: list[System]) -> Iterator[list]:
    """The bundled servers these systems point at, started if not up; those started here are stopped after."""
    wanted = bundled_models(systems)
    started = local_server.start_missing(wanted) if wanted else []
    try:
        yield started
    finally:
        local_server.stop_all(started)


# The stages ----------------------------------------------------------------------------------------------

def collect(target: RunConfig | Run, systems: list[str] | None = None, progress: bool = True, wait: bool = False,
            retry_errors: bool = False):
    """Ask for every missing sample (see hivemind.collect.stage.collect_run); local servers started as needed."""
    from hivemind.collect import stage as collector

    config = Run.config_of(target)
    local_server.check_servable(bundled_models(config.systems, systems))     # before the run folder is made
    with locked(config, "collect", wait), Run.of(target) as run:
        return collector.collect_run(run, systems=systems, progress=progress, retry_errors=retry_errors,
                                 prepare=local_servers)


# The engines: where embed, score and analyze run. Each gives the three stages with the local stages'
# signatures (config, progress=..., ...), so a stage below names its engine once instead of branching.

@dataclass(frozen=True)
class Engine:
    embed: Callable
    score: Callable
    analyze: Callable


def local_engine(ray_address=None, workers=None, gpus=None) -> Engine:
    """The stages themselves, in this process."""
    from hivemind.analyze.stage import analyze_run
    from hivemind.embed.stage import embed_run
    from hivemind.score.stage import score_run

    return Engine(embed=embed_run, score=score_run, analyze=analyze_run)


def ray_engine(ray_address=None, workers=None, gpus=None) -> Engine:
    """The same stages on a Ray cluster (hivemind.engines.ray; ray_address, else a local one): same vectors,
    scores and tables. Imported only when asked for: the local engine never pays for Ray."""
    from hivemind.engines.ray import analysis, embedding, scoring

    on = dict(address=ray_address, workers=workers, gpus=gpus)
    return Engine(embed=partial(embedding.embed_run, **on), score=partial(scoring.score_run, **on),
                  analyze=partial(analysis.analyze_run, address=ray_address))


ENGINES = {"local": local_engine, "ray": ray_engine}


def embed(target: RunConfig | Run, progress: bool = True, wait: bool = False, engine: str = "local",
          ray_address: str | None = None, workers: int | None = None, gpus: int | None = None):
    """Vectors for every stored text (hivemind.embed.stage.embed_run), on the engine named."""
    config = Run.config_of(target)
    _check_engine(engine, ray_address, workers, gpus)
    _require_store(config)   # before the lock: no lock file in a run folder that is not there
    with locked(config, "embed", wait), Run.of(target) as run:
        _check_answers(run, every_system=False)
        return ENGINES[engine](ray_address, workers, gpus).embed(run, progress=progress)


def score(target: RunConfig | Run, scorers: list[str] | None = None, progress: bool = True, wait: bool = False,
          raise_if_incomplete: bool = False, engine: str = "local", ray_address: str | None = None,
          workers: int | None = None, gpus: int | None = None):
    """Quality scores for every stored answer (hivemind.score.stage), between embed and analyze, under the lock.

    In `run`, a scorer that cannot run does not stop the pipeline (analysis works without it); its reason
    is in the returned ScoreSummary. The `score` command raises instead (raise_if_incomplete). engine "ray":
    the local scorers on a Ray cluster (API judges stay on the local engine)."""
    from hivemind.score.equivalence_pairs import decides_pairs

    config = Run.config_of(target)
    _check_engine(engine, ray_address, workers, gpus)
    if not config.scorers and not decides_pairs(config):
        return None
    _require_store(config)   # before the lock: no lock file in a run folder that is not there
    with locked(config, "score", wait), Run.of(target) as run:
        return ENGINES[engine](ray_address, workers, gpus).score(
            run, scorers=scorers, progress=progress, raise_if_incomplete=raise_if_incomplete)


def analyze(target: RunConfig | Run, progress: bool = True, wait: bool = False, controls: bool = False,
            engine: str = "local", ray_address: str | None = None, recalibrate: bool = False):
    """The tables (hivemind.analyze.stage.analyze_run); engine "ray": prompt shards mapped on a Ray cluster,
    reduced here to the same tables. `recalibrate`: measure the pinned calibration again from its reference."""
    config = Run.config_of(target)
    _check_engine(engine, ray_address)
    _require_store(config)   # before the lock: no lock file in a run folder that is not there
    # On its own, analyze reads the store only (controls add systems to it); in `run` it shares run's store.
    with locked(config, "analyze", wait), Run.of(target, read_only=not controls) as run:
        _check_answers(run, every_system=True)
        summary = ENGINES[engine](ray_address).analyze(run, progress=progress, controls=controls,
                                                       recalibrate=recalibrate)
        write_results(run)   # results.json, from the tables just written (report: null until report runs)
        return summary


def report(target: RunConfig | Run, wait: bool = False) -> Path:
    """report.html, report.md and the figures (hivemind.report.stage.report_run); the store is only read."""
    from hivemind.report.stage import report_run

    config = Run.config_of(target)
    if not config.run_dir.is_dir():
        return report_run(target)   # it says what is missing; no lock file in a folder that is not there
    with locked(config, "report", wait):
        path = report_run(target)
        set_report(config, path)   # results.json names the report, relative to the run folder
        return path


@dataclass
class PipelineResult:
    config: RunConfig
    collect: Any = None
    embed: Any = None
    score: Any = None
    analysis: Any = None
    report: Path | None = None

    @property
    def collected(self) -> int:
        return self.collect.stored

    @property
    def embedded(self) -> int:
        return self.embed.embedded


def run(config: RunConfig, systems: list[str] | None = None, progress: bool = True, wait: bool = False,
        retry_errors: bool = False, with_report: bool = True, engine: str = "local",
        ray_address: str | None = None, workers: int | None = None, gpus: int | None = None) -> PipelineResult:
    """collect (only `systems`, default all) -> embed -> score -> analyze -> report, under one lock.

    engine "ray": embed, score and analyze on a Ray cluster (ray_address, else one local cluster started for
    the three), through one connection; collect stays here (its cost is in requests to the providers) and so
    does report. API judges and an API embedder cannot run on Ray: with engine "ray" they run on the local
    engine and the other scorers on Ray."""
    _check_engine(engine, ray_address, workers, gpus)
    if engine == "ray":   # before collect: a dead address must fail before any request is paid for
        from hivemind.engines.ray.cluster import check_ready
        check_ready(ray_address)
    local_server.check_servable(bundled_models(config.systems, systems))     # before the run folder is made
    on_ray = dict(engine=engine, ray_address=ray_address, workers=workers, gpus=gpus)
    result = PipelineResult(config=config)
    with locked(config, "run", wait), Run.open(config) as shared:   # one store for every stage
        result.collect = collect(shared, systems, progress=progress, retry_errors=retry_errors)
        with _one_cluster(engine, ray_address):
            api_embedder = config.embedder.provider == "litellm"     # batched API requests: local engine
            result.embed = embed(shared, progress=progress, **({} if api_embedder else on_ray))
            result.score = _score_stage(shared, progress, on_ray)
            result.analysis = analyze(shared, progress=progress, engine=engine, ray_address=ray_address)
        if with_report:
            result.report = report(shared)
    return result


@contextmanager
def _one_cluster(engine: str, ray_address: str | None) -> Iterator[None]:
    """With engine "ray", one connection (or one local cluster) for embed, score and analyze: each stage
    reuses a connection the process already has instead of starting and stopping its own."""
    if engine != "ray":
        yield
        return
    from hivemind.engines.ray.cluster import connected

    with connected(ray_address):
        yield


def _score_stage(run: Run, progress: bool, on_ray: dict):
    """score() for `run`: on Ray the judges (if any) go to the local engine and the summaries are joined."""
    from hivemind.score.equivalence_pairs import decides_pairs

    if on_ray["engine"] != "ray":
        return score(run, progress=progress, **on_ray)
    computed = [s.name for s in run.config.scorers if s.kind not in ("judge", "imported")]
    judges = [s.name for s in run.config.scorers if s.kind == "judge"]
    if not computed:
        return score(run, progress=progress)        # judges, equivalence pairs (or nothing to compute): all local
    summary = score(run, scorers=computed, progress=progress, **on_ray)
    if decides_pairs(run.config):                   # the judges and the equivalence pairs, locally
        local = score(run, progress=progress).scorers
        summary.scorers.update({name: part for name, part in local.items() if name not in computed})
    elif judges:
        summary.scorers.update(score(run, scorers=judges, progress=progress).scorers)
    return summary


def _check_engine(engine: str, ray_address: str | None = None, workers: int | None = None,
                  gpus: int | None = None) -> None:
    if engine not in ENGINES:
        raise HivemindError(f"--engine {engine!r}: use {' or '.join(ENGINES)}")
    given = [name for name, value in (("--ray-address", ray_address), ("--workers", workers), ("--gpus", gpus))
             if value is not None]
    if engine == "local" and given:
        raise HivemindError(f"{', '.join(given)} only apply with --engine ray")
    # the CLI's types refuse these too; a caller from Python meets the same rule (0 is not "one per CPU")
    if workers is not None and workers < 1:
        raise HivemindError(f"--workers {workers}: must be 1 or more (leave it out for one per CPU)")
    if gpus is not None and gpus < 0:
        raise HivemindError(f"--gpus {gpus}: must be 0 or more")


def _require_store(config: RunConfig) -> None:
    if not config.store_path.is_file():
        raise HivemindError(f"{config.store_path}: no store here; run `hivemind collect {config.name}` or "
                            f"`hivemind import` first")


def _check_answers(run: Run, every_system: bool) -> None:
    """A run (or, for analyze, any system) with nothing but stored errors says so, with the first error
    and --retry-errors, instead of the generic "run collect"."""
    from hivemind.collect.stage import all_failed_message, failed_systems

    config = run.config
    failed = failed_systems(run, list(config.systems))
    if not failed:
        return
    if not every_system and run.store().count_responses([s.identity for s in config.systems], with_text=True):
        return   # other systems have answers to embed
    raise HivemindError(f"run {config.name!r} has nothing to work on for these systems:\n"
                        + all_failed_message(config, failed))
