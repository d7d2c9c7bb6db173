"""The pipeline's commands: `run` (every stage in turn) and one command per stage (`collect`, `embed`, `score`,
`analyze`, `report`), plus `serve-local`, the bundled local models the demo collects from. Each command's
parser sits next to its handler; the handler parses, calls one function of hivemind.pipeline and prints."""
from __future__ import annotations

from hivemind.cli.options import (
    RUN_HELP,
    AppendOnce,
    add_command,
    add_engine_options,
    add_retry_errors,
    add_run,
    engine_options,
)
from hivemind.core.config_files import resolve_run
from hivemind.core.errors import HivemindError


def cmd_run(args) -> str:
    from hivemind.pipeline import run
    from hivemind.report.summary import summary_text

    config = resolve_run(args.run)
    result = run(config, progress=not args.quiet, wait=args.wait, retry_errors=args.retry_errors,
                 **engine_options(args))
    scored = f"\nscored:\n{result.score.text()}" if result.score is not None else ""
    return f"collected {result.collected}, embedded {result.embedded}{scored}\n\n{summary_text(config)}"


def _register_run(sub) -> None:
    p = add_command(sub, "run", cmd_run, "collect, embed, score, analyze and report a run, then print its summary "
                    "(starts the local servers if needed)", writes_run=True)
    p.add_argument("run", nargs="?", default="demo", help=RUN_HELP + " (default: demo)")
    add_retry_errors(p)
    add_engine_options(p)   # embed, score and analyze on Ray; collect and report stay local


def cmd_collect(args) -> str:
    from hivemind import pipeline

    s = pipeline.collect(resolve_run(args.run), systems=args.system or None, progress=not args.quiet,
                         wait=args.wait, retry_errors=args.retry_errors)
    resent = f"{s.retried_errors} stored errors re-sent, " if args.retry_errors else ""
    hint = "; `--retry-errors` re-sends them after a fix" if s.failed_permanent and not args.retry_errors else ""
    doubled = f"; {s.duplicates} answers came for samples already stored (not counted)" if s.duplicates else ""
    return (f"collected {s.stored} new answers ({s.skipped} already stored, {resent}{s.failed_permanent} "
            f"recorded as permanent errors{hint}, {s.retries} retries, cost ${s.cost:.4f}){doubled}")


def _register_collect(sub) -> None:
    p = add_command(sub, "collect", cmd_collect, "ask every system for the samples not yet stored "
                    "(starts local servers)", writes_run=True)
    add_run(p)
    p.add_argument("--system", action=AppendOnce, help="only this system (repeatable)")
    add_retry_errors(p)


def cmd_embed(args) -> str:
    from hivemind import pipeline

    s = pipeline.embed(resolve_run(args.run), progress=not args.quiet, wait=args.wait, **engine_options(args))
    return f"embedded {s.embedded} new texts ({s.cached} vectors were cached)"


def _register_embed(sub) -> None:
    p = add_command(sub, "embed", cmd_embed, "embed every stored answer (vectors are cached by text)",
                    writes_run=True)
    add_run(p)
    add_engine_options(p)


def cmd_score(args) -> str:
    from hivemind import pipeline

    from hivemind.score.equivalence_pairs import decides_pairs

    config = resolve_run(args.run)
    if not config.scorers and not decides_pairs(config):
        raise HivemindError(f"run {config.name!r} configures no scorers; add a `scorers:` list to its config "
                            f"(see docs/quality.md) or import scores with `hivemind import --scores`")
    summary = pipeline.score(config, scorers=args.scorer or None, progress=not args.quiet, wait=args.wait,
                             raise_if_incomplete=True, **engine_options(args))
    if not summary.scorers:   # every scorer of the run is imported: nothing to compute, say what is there
        from hivemind.runs.imports import imported_scores_text
        return imported_scores_text(config)
    return "scored:\n" + summary.text()


def _register_score(sub) -> None:
    p = add_command(sub, "score", cmd_score, "give every stored answer a quality score per configured scorer "
                    "(cached)", writes_run=True)
    add_run(p)
    p.add_argument("--scorer", action=AppendOnce, help="only this scorer (repeatable)")
    add_engine_options(p)


def cmd_analyze(args) -> str:
    from hivemind import pipeline
    from hivemind.report.summary import summary_text

    config = resolve_run(args.run)
    pipeline.analyze(config, progress=not args.quiet, wait=args.wait, controls=args.controls,
                     recalibrate=args.recalibrate, **engine_options(args, workers=False))
    return f"tables written to {config.run_dir}\n\n{summary_text(config)}"


def _register_analyze(sub) -> None:
    p = add_command(sub, "analyze", cmd_analyze, "write the similarity and diversity tables and results.json, "
                    "then print the summary", writes_run=True)
    add_run(p)
    p.add_argument("--controls", action="store_true",
                   help="add synthetic control systems (word salad, babble, off-topic, paraphrase ensemble, "
                        "copies) made from the run's answers, and show where they land")
    p.add_argument("--recalibrate", action="store_true",
                   help="measure the floor, idea line and relevance line again from the calibration reference "
                        "(`calibration_reference:`, else this run's systems) and pin them for every run over "
                        "the same prompts and embedder (results/.calibrations/)")
    add_engine_options(p, workers=False)


def cmd_report(args) -> str:
    from hivemind import pipeline
    from hivemind.report.summary import summary_text

    config = resolve_run(args.run)
    pipeline.report(config, wait=args.wait)
    return summary_text(config)


def _register_report(sub) -> None:
    p = add_command(sub, "report", cmd_report, "render figures, report.html and report.md, then print the summary",
                    writes_run=True)
    add_run(p)


def cmd_serve_local(args) -> str:
    from hivemind.collect import local_server
    from hivemind.pipeline import signals_handled

    with signals_handled():   # SIGTERM/SIGHUP stop the servers too, not only Ctrl-C
        local_server.serve_forever()
    return "local servers stopped"


def _register_serve_local(sub) -> None:
    add_command(sub, "serve-local", cmd_serve_local, "serve the bundled local models on 127.0.0.1 until Ctrl-C")


COMMANDS = {"run": _register_run, "collect": _register_collect, "embed": _register_embed,
            "score": _register_score, "analyze": _register_analyze, "report": _register_report,
            "serve-local": _register_serve_local}


def add_commands(sub, *names: str) -> None:
    """Register the commands named (default: all, in the order above) on `sub`, the subparsers of `hivemind`."""
    for name in names or COMMANDS:
        COMMANDS[name](sub)
