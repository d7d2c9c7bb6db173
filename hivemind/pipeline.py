"""The whole pipeline on one config: collect -> embed -> analyze -> report, with the bundled local
model servers started for the systems that use them (and stopped again if this call started them)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hivemind import local_server
from hivemind.config import RunConfig


@dataclass
class PipelineResult:
    collected: int
    embedded: int
    report: Path


def run(config: RunConfig, progress: bool = True) -> PipelineResult:
    from hivemind import analyze, collect, embed, report

    local = local_server.models_used_by([s.api_base for s in config.systems])
    started = local_server.start_missing(local)
    try:
        collected = collect.collect(config, progress=progress)
    finally:
        local_server.stop_all(started)
    embedded = embed.embed_run(config, progress=progress)
    analyze.analyze_run(config, progress=progress)
    page = report.render_report(config)
    return PipelineResult(collected=collected.stored, embedded=embedded.embedded, report=page)
