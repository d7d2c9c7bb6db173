"""The `hivemind` command: parse, call one function, print. Errors print their message, no traceback."""
from __future__ import annotations

import argparse
import os
import sys

# Before litellm is imported anywhere: its price map is bundled; fetching it costs seconds offline.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from hivemind import HivemindError, __version__  # noqa: E402
from hivemind.config import resolve_run  # noqa: E402
from hivemind.secrets import redact  # noqa: E402


def cmd_collect(args) -> str:
    from hivemind import pipeline

    s = pipeline.collect(resolve_run(args.run), systems=args.system or None, progress=not args.quiet,
                         wait=args.wait, retry_errors=args.retry_errors)
    resent = f"{s.retried_errors} stored errors re-sent, " if args.retry_errors else ""
    hint = "; `--retry-errors` re-sends them after a fix" if s.failed_permanent and not args.retry_errors else ""
    doubled = f"; {s.duplicates} answers came for samples already stored (not counted)" if s.duplicates else ""
    return (f"collected {s.stored} new answers ({s.skipped} already stored, {resent}{s.failed_permanent} "
            f"recorded as permanent errors{hint}, {s.retries} retries, cost ${s.cost:.4f}){doubled}")


def cmd_merge(args) -> str:
    from hivemind.merge import merge

    c = merge(resolve_run(args.run), args.stores, wait=args.wait)
    return (f"merged: {c.systems} systems, {c.prompts} prompts, {c.responses} answers, {c.embeddings} vectors, "
            f"{c.scores} scores added")


def cmd_plan(args) -> str:
    from hivemind import plan

    text = plan.render(plan.plan_config(resolve_run(args.run), prompts=args.prompts, settings=args.settings),
                       "this config")
    if args.scale:
        text += "\n\n" + plan.render(plan.paper_plan(), "the paper's full configuration (gpt-4o-mini prices)")
    return text


def cmd_serve_local(args) -> str:
    from hivemind import local_server
    from hivemind.pipeline import signals_handled

    with signals_handled():   # SIGTERM/SIGHUP stop the servers too, not only Ctrl-C
        local_server.serve_forever()
    return "local servers stopped"


def cmd_run(args) -> str:
    from hivemind.pipeline import run

    result = run(resolve_run(args.run), progress=not args.quiet, wait=args.wait, retry_errors=args.retry_errors)
    return f"collected {result.collected}, embedded {result.embedded}; report: {result.report}"


def cmd_embed(args) -> str:
    from hivemind import pipeline

    s = pipeline.embed(resolve_run(args.run), progress=not args.quiet, wait=args.wait)
    return f"embedded {s.embedded} new texts ({s.cached} vectors were cached)"


def cmd_analyze(args) -> str:
    from hivemind import pipeline

    config = resolve_run(args.run)
    pipeline.analyze(config, progress=not args.quiet, wait=args.wait)
    return f"tables written to {config.run_dir}"


def cmd_report(args) -> str:
    from hivemind import pipeline

    return f"report: {pipeline.report(resolve_run(args.run), wait=args.wait)}"


def cmd_import(args) -> str:
    from hivemind.imports import FieldMapping, import_files

    mapping = FieldMapping(args.prompt_field, args.response_field, args.model_field)
    config = import_files(args.files, args.name, results_dir=args.results, mapping=mapping, verify=not args.no_verify)
    return (f"imported run {config.name!r} with {len(config.systems)} systems into {config.run_dir}; "
            f"next: hivemind embed {config.name} && hivemind analyze {config.name}")


def cmd_leaderboard(args) -> str:
    from hivemind import leaderboard

    if args.action == "add":
        if not args.config or not args.system:
            raise HivemindError("usage: hivemind leaderboard add CONFIG --system NAME")
        return str(leaderboard.add_system(args.config, args.system, results_dir=args.results, wait=args.wait))
    paths = leaderboard.update_leaderboard(args.results)
    return "leaderboard: " + ", ".join(str(p) for p in paths)


def cmd_snapshot(args) -> str:
    from hivemind import snapshot

    if args.action == "publish":
        if not args.name:
            raise HivemindError("usage: hivemind snapshot publish RUN --name NAME")
        path = snapshot.publish(resolve_run(args.target, results_dir=args.results), args.name,
                                results_dir=args.results, license=args.license)
        if args.to_hub:  # the folder just written, wherever its results_dir is
            url = snapshot.push_to_hub(path, args.to_hub)
            return f"snapshot published: {path}\npushed in one commit, tagged {args.name}: {url}"
        return f"snapshot published: {path}"
    result = snapshot.verify(args.target, results_dir=args.results)
    return str(result)


def cmd_export(args) -> str:
    from hivemind.export import export_inspect

    paths = export_inspect(resolve_run(args.run), out=args.out)
    folder = paths[0].parent if paths else args.out
    return (f"wrote {len(paths)} Inspect AI logs (one per system) to {folder}; "
            f"view them: inspect view --log-dir {folder}")


def cmd_reproduce(args) -> str:
    from hivemind import reproduce

    systems = [s for s in (args.systems or "").split(",") if s] or None
    result = reproduce.run(resolve_run(args.what), systems=systems, limit=args.limit, yes=args.yes,
                           threshold_usd=args.threshold, samples=args.samples, progress=not args.quiet,
                           wait=args.wait)
    return str(result)


def cmd_agreement(args) -> str:
    from hivemind.agreement import agreement_run

    config = resolve_run(args.run)
    result = agreement_run(config, args.embedder, progress=not args.quiet)
    return f"{result.summary()}\ntables written to {config.run_dir}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hivemind", description=__doc__)
    parser.add_argument("--version", action="version", version=f"hivemind {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    run_help = "a config file, a packaged config name (demo, paper) or a run name under results/"

    def add(name, func, help_text, writes_run=False):
        p = sub.add_parser(name, help=help_text)
        p.set_defaults(func=func)
        p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
        if writes_run:
            p.add_argument("--wait", action="store_true",
                           help="if another process holds the run's lock, wait for it instead of refusing")
        return p

    retry_help = "also re-send samples stored as permanent errors (after fixing the config or server)"
    p = add("collect", cmd_collect, "ask every system for the samples not yet stored (starts local servers)",
            writes_run=True)
    p.add_argument("run", help=run_help)
    p.add_argument("--system", action="append", help="only this system (repeatable)")
    p.add_argument("--retry-errors", action="store_true", help=retry_help)
    add("serve-local", cmd_serve_local, "serve the bundled local models on 127.0.0.1 until Ctrl-C")
    p = add("run", cmd_run, "collect, embed, analyze and report (starts the local servers if needed)",
            writes_run=True)
    p.add_argument("run", nargs="?", default="demo", help=run_help)
    p.add_argument("--retry-errors", action="store_true", help=retry_help)
    for name, func, text in (("embed", cmd_embed, "embed every stored response (cached)"),
                             ("analyze", cmd_analyze, "write the similarity tables"),
                             ("report", cmd_report, "render figures, report.html and report.md")):
        add(name, func, text, writes_run=True).add_argument("run", help=run_help)
    p = add("agreement", cmd_agreement, "compare two embedders on one run (rankings, matrix cells, calibrated lines)")
    p.add_argument("run", help=run_help)
    p.add_argument("--embedder", action="append", required=True, help="an embedder name; give two")
    p = add("import", cmd_import, "make a run from existing generations or a snapshot folder")
    p.add_argument("files", nargs="+", help="generation files, a snapshot folder, or hf://OWNER/NAME@TAG "
                   "(a snapshot pushed with --to-hub)")
    p.add_argument("--name", required=True)
    p.add_argument("--results", default="results")
    p.add_argument("--prompt-field", default="prompt")
    p.add_argument("--response-field", default="response")
    p.add_argument("--model-field", default="model")
    p.add_argument("--no-verify", action="store_true",
                   help="import a snapshot that does not match its manifest (warns; the run is marked unverified)")
    p = add("leaderboard", cmd_leaderboard, "rebuild results/leaderboard.*, or add a system to a run",
            writes_run=True)
    p.add_argument("action", nargs="?", choices=["update", "add"], default="update")
    p.add_argument("config", nargs="?")
    p.add_argument("--system")
    p.add_argument("--results", help="results folder (default: the config's, else results/)")
    p = add("snapshot", cmd_snapshot, "publish or verify an immutable result snapshot")
    p.add_argument("action", choices=["publish", "verify"])
    p.add_argument("target", help="publish: RUN; verify: snapshot NAME or folder")
    p.add_argument("--name")
    p.add_argument("--to-hub", metavar="REPO", help="also upload it to this Hugging Face dataset repo "
                   "(one commit, tagged with the snapshot name)")
    p.add_argument("--license", default="other", help="license in the dataset card (default: other)")
    p.add_argument("--results", help="results folder (default: the config's, else results/)")
    p = add("export", cmd_export, "write a run in another tool's format")
    p.add_argument("format", choices=["inspect"], help="inspect: Inspect AI eval logs, one per system")
    p.add_argument("run", help=run_help)
    p.add_argument("--out", help="folder for the logs (default: the run folder's inspect/)")
    p = add("reproduce", cmd_reproduce, "run (or resume) the paper's configuration", writes_run=True)
    p.add_argument("what", choices=["paper"])
    p.add_argument("--systems", help="comma-separated system names")
    p.add_argument("--limit", type=int)
    p.add_argument("--samples", type=int, help="fewer samples per prompt than the paper's 50")
    p.add_argument("--threshold", type=float, default=10.0, help="USD above which --yes is needed")
    p.add_argument("--yes", action="store_true", help="go ahead above the cost threshold")
    p = add("merge", cmd_merge, "merge stores collected on other machines into the run's store", writes_run=True)
    p.add_argument("run", help=run_help)
    p.add_argument("stores", nargs="+", help="store.sqlite files or run folders holding one")
    p = add("plan", cmd_plan, "estimate requests, tokens, cost, embedding time and sizes of a run")
    p.add_argument("run", help=run_help)
    p.add_argument("--scale", action="store_true", help="also print the paper's full 26K x 25 x 50 x 2 plan")
    p.add_argument("--prompts", type=int, help="plan for this many prompts instead of the config's")
    p.add_argument("--settings", type=int, default=1, help="decoding settings, each a full pass")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        message = args.func(args)
    except HivemindError as err:
        print(f"error: {redact(str(err))}", file=sys.stderr)  # no key value is ever printed
        return 1
    except KeyboardInterrupt as err:
        from hivemind.pipeline import Interrupted

        if isinstance(err, Interrupted):
            print(f"stopped by {err.name}; everything stored so far is kept, local servers this command "
                  f"started are stopped; run the same command again to resume", file=sys.stderr)
            return err.exit_code
        print("interrupted; everything stored so far is kept", file=sys.stderr)
        return 130
    if message:
        print(redact(message))
    return 0


if __name__ == "__main__":
    sys.exit(main())
