"""The commands that handle whole runs (hivemind.runs): `list` them, `import` one (or its scores, or
NoveltyBench's partitions), `merge` stores collected elsewhere, `export` one to Inspect AI or NoveltyBench, rank
them on the `leaderboard`, freeze one as a `snapshot`, and show them all as a static `site` (`view` serves it).
Each command's parser sits next to its handler; the handler parses, calls one function, prints."""
from __future__ import annotations

import argparse
import sys

from hivemind.cli.options import RUN_HELP, add_command, add_results, add_run, finite_float, non_negative_int
from hivemind.core.config_files import resolve_run
from hivemind.core.errors import HivemindError
from hivemind.core.secrets import redact


def cmd_list(args) -> str:
    from hivemind.results.folder import results_root
    from hivemind.runs import listing

    base = results_root(args.results)
    return listing.render(listing.list_runs(base), base)


def _register_list(sub) -> None:
    p = add_command(sub, "list", cmd_list, "every run under the results folder: its state (collected, embedded, "
                    "scored, analysed, reported), answers, errors, last change and the next command (read only)")
    add_results(p)


def cmd_import_scores(args) -> str:
    from hivemind.runs.imports import import_scores

    if not args.scorer or args.files:
        raise HivemindError("usage: hivemind import --scores FILE --name RUN --scorer NAME (no other files)")
    result = import_scores(args.scores, resolve_run(args.name, results_dir=args.results), args.scorer, args.pass_at,
                           wait=args.wait)
    extra = f" ({result.inherited} NoveltyBench repeats given their class's score)" if result.inherited else ""
    return f"imported {result.stored} scores as scorer {result.scorer!r} into run {args.name!r}{extra}"


def cmd_import_partitions(args) -> str:
    from hivemind.runs.noveltybench import import_partitions, partitions_text

    if args.files:
        raise HivemindError("usage: hivemind import --partitions FILE --name RUN (no other files)")
    result = import_partitions(args.partitions, resolve_run(args.name, results_dir=args.results), wait=args.wait)
    return partitions_text(result, args.name)


def cmd_import(args) -> str:
    from hivemind.runs.imports import FieldMapping, import_files

    if args.scores and args.partitions:   # NoveltyBench's scores.jsonl carries both
        return cmd_import_scores(args) + "\n" + cmd_import_partitions(args)
    if args.scores:
        return cmd_import_scores(args)
    if args.partitions:
        return cmd_import_partitions(args)

    mapping = FieldMapping(args.prompt_field, args.response_field, args.model_field)
    config = import_files(args.files, args.name, results_dir=args.results, mapping=mapping, verify=not args.no_verify)
    from hivemind.runs.imports import import_notes_text
    return "\n".join([f"imported run {config.name!r} with {len(config.systems)} systems into {config.run_dir}",
                      *import_notes_text(config),
                      f"next: hivemind embed {config.name} && hivemind analyze {config.name}"])


def _register_import(sub) -> None:
    p = add_command(sub, "import", cmd_import, "make a run from existing generations or a snapshot folder",
                    writes_run=True)
    p.add_argument("files", nargs="*", help="generation files (JSON/JSONL/CSV/Parquet), a snapshot folder, or "
                   "hf://OWNER/NAME@TAG (a snapshot pushed with --to-hub)")
    p.add_argument("--name", required=True, help="the new run's name (results/<name>/); with --scores: the run "
                   "the scores belong to")
    add_results(p)
    p.add_argument("--prompt-field", default="prompt", help="the field holding the prompt (default: prompt)")
    p.add_argument("--response-field", default="response",
                   help="the field holding the answer (default: response)")
    p.add_argument("--model-field", default="model", help="the field naming the model (default: model)")
    p.add_argument("--no-verify", action="store_true",
                   help="import a snapshot that does not match its manifest (warns; the run is marked unverified)")
    p.add_argument("--scores", metavar="FILE", help="import quality scores for run --name (JSONL or "
                   "NoveltyBench scores.jsonl) as scorer --scorer")
    p.add_argument("--scorer", help="with --scores: the scorer name to store them under")
    p.add_argument("--pass-at", type=finite_float, help="with --scores: the quality gate (score >= pass_at passes)")
    p.add_argument("--partitions", metavar="FILE", help="import NoveltyBench's partitions.jsonl (or scores.jsonl) "
                   "for run --name as its equivalence classes; sets the run's `equivalence: imported`")


def cmd_leaderboard(args) -> str:
    from hivemind.runs import leaderboard

    if args.action == "add":
        return str(leaderboard.add_system(args.config, args.system, results_dir=args.results, wait=args.wait,
                                          progress=not args.quiet))
    paths = leaderboard.update_leaderboard(args.results, wait=args.wait)
    if args.action == "show":
        return paths[1].read_text(encoding="utf-8")
    return "leaderboard: " + ", ".join(str(p) for p in paths)


def _register_leaderboard(sub) -> None:
    """`leaderboard` (= `leaderboard update`), `leaderboard show`, `leaderboard add CONFIG --system NAME`."""
    results_help = "results folder (default: the config's, else $HIVEMIND_RESULTS, else results/)"
    p = add_command(sub, "leaderboard", cmd_leaderboard, "rank every analysed run's systems "
                    "(results/leaderboard.csv, .md)", writes_run=True)
    add_results(p, results_help)
    nested = p.add_subparsers(dest="action", metavar="ACTION", title="actions",
                              description="default: update", help="what to do with the leaderboard")
    p.set_defaults(action="update")   # after add_subparsers, so `hivemind leaderboard` alone updates
    q = add_command(nested, "update", cmd_leaderboard, "rewrite results/leaderboard.csv and leaderboard.md from "
                    "every analysed run", writes_run=True, nested=True)
    add_results(q, results_help, default=argparse.SUPPRESS)
    q = add_command(nested, "show", cmd_leaderboard, "rewrite the leaderboard and print leaderboard.md",
                    writes_run=True, nested=True)
    add_results(q, results_help, default=argparse.SUPPRESS)
    q = add_command(nested, "add", cmd_leaderboard, "add a system to a run's config, collect and embed only it, "
                    "re-analyze, redraw the report, rewrite the leaderboard and print where it ranks (a system "
                    "already present and analysed adds nothing)", writes_run=True, nested=True)
    q.add_argument("config", metavar="RUN", help="the run's config file (or its name or folder: then its "
                   "config.yaml there), with the new system already under `systems:`")
    q.add_argument("--system", required=True, help="the name of the new system in that config")
    add_results(q, results_help, default=argparse.SUPPRESS)


def cmd_snapshot(args) -> str:
    from hivemind.runs import snapshot

    if args.action in ("create", "publish"):
        config = resolve_run(args.target, results_dir=args.results)
        name = args.name or snapshot.default_name(config.name)
        path = snapshot.publish(config, name, results_dir=args.results, license=args.license,
                                wait=getattr(args, "wait", False))
        if getattr(args, "to_hub", None):  # the folder just written, wherever its results_dir is
            url = snapshot.push_to_hub(path, args.to_hub)
            return f"snapshot published: {path}\npushed in one commit, tagged {name}: {url}"
        return f"snapshot written: {path}\nnext: hivemind snapshot verify {name}"
    if args.action == "push":
        folder = snapshot.resolve_snapshot(args.target, args.results)
        return f"pushed in one commit: {snapshot.push_to_hub(folder, args.repo)}"
    return str(snapshot.verify(args.target, results_dir=args.results))


def _register_snapshot(sub) -> None:
    """`snapshot create|publish|verify|push`; `snapshot publish` is create plus an optional --to-hub."""
    results_help = "results folder (default: the run config's, else $HIVEMIND_RESULTS, else results/)"
    p = add_command(sub, "snapshot", cmd_snapshot, "create, publish, verify or push an immutable result snapshot "
                    "(a Hugging Face dataset folder)", writes_run=True)
    nested = p.add_subparsers(dest="action", metavar="ACTION", title="actions", required=True,
                              help="what to do with a snapshot")
    name_help = "the snapshot's name (default: <run>-<YYYY-MM-DD>)"
    license_help = "license in the dataset card (default: other)"
    for action, text in (("create", "write results/snapshots/NAME/ from an analysed run (hashed, read-only)"),
                         ("publish", "create the snapshot and, with --to-hub, upload it")):
        # --wait: it takes the run lock
        q = add_command(nested, action, cmd_snapshot, text, writes_run=True, nested=True)
        q.add_argument("target", metavar="RUN", help=RUN_HELP)
        q.add_argument("--name", help=name_help)
        q.add_argument("--license", default="other", help=license_help)
        add_results(q, results_help)
        if action == "publish":
            q.add_argument("--to-hub", metavar="REPO", help="also upload it to this Hugging Face dataset repo "
                           "(one commit, tagged with the snapshot name)")
    q = add_command(nested, "verify", cmd_snapshot, "recompute every file hash of a snapshot against its manifest",
                    nested=True)
    q.add_argument("target", metavar="SNAPSHOT", help="a snapshot name under results/snapshots/ or its folder")
    add_results(q, results_help)
    q = add_command(nested, "push", cmd_snapshot, "upload an existing snapshot to a Hugging Face dataset repo in "
                    "one commit", nested=True)
    q.add_argument("target", metavar="SNAPSHOT", help="a snapshot name under results/snapshots/ or its folder")
    q.add_argument("repo", help="the dataset repo, OWNER/NAME (token from HF_TOKEN or `hf auth login`)")
    add_results(q, results_help)


def cmd_export(args) -> str:
    from hivemind.runs.export import export_inspect

    if args.format == "noveltybench":
        return cmd_export_noveltybench(args)
    if args.scorer is not None:
        raise HivemindError("--scorer is for `hivemind export noveltybench` only")
    paths = export_inspect(resolve_run(args.run), out=args.out, wait=args.wait)
    folder = paths[0].parent if paths else args.out
    return (f"wrote {len(paths)} Inspect AI logs (one per system) to {folder}; "
            f"view them: inspect view --log-dir {folder}")


def cmd_export_noveltybench(args) -> str:
    from hivemind.runs.noveltybench import export_noveltybench

    result = export_noveltybench(resolve_run(args.run), out=args.out, scorer=args.scorer, wait=args.wait)
    scores = (f"generation_scores from scorer {result.scorer!r}" if result.scorer else
              "no scores.jsonl (no scorer; summary.json has mean_distinct only)")
    return (f"wrote NoveltyBench's files for {len(result.models)} models to {result.folder} "
            f"(<model>/generations.jsonl, partitions.jsonl, scores.jsonl, summary.json); {scores}")


def _register_export(sub) -> None:
    p = add_command(sub, "export", cmd_export, "write a run in another tool's format", writes_run=True)
    p.add_argument("format", choices=["inspect", "noveltybench"], help="inspect: Inspect AI eval logs, one per "
                   "system; noveltybench: NoveltyBench's evaluation files, one folder per system")
    add_run(p)
    p.add_argument("--out", help="folder to write (default: the run folder's inspect/ or noveltybench/)")
    p.add_argument("--scorer", help="noveltybench: the 1-10 scorer for generation_scores (default: the run's only "
                   "scorer; none: export without scores)")


def cmd_merge(args) -> str:
    from hivemind.runs.merge import merge

    c = merge(resolve_run(args.run), args.stores, wait=args.wait)
    for line in c.warnings:
        print(f"warning: {redact(line)}", file=sys.stderr)
    added = ", ".join(f"{n} {table}" for table, n in c.added.items())
    replaced = ", ".join(f"{n} {table}" for table, n in c.replaced.items() if n)
    return f"merged, rows added: {added}" + (f"; failures replaced by real rows: {replaced}" if replaced else "")


def _register_merge(sub) -> None:
    p = add_command(sub, "merge", cmd_merge, "merge stores collected on other machines into the run's store",
                    writes_run=True)
    add_run(p)
    p.add_argument("stores", nargs="+", help="store.sqlite files or run folders holding one")


def cmd_site(args) -> str:
    from hivemind.runs.site import build_site

    return str(build_site(args.runs, results_dir=args.results, out=args.out, wait=args.wait))


def cmd_view(args) -> str:
    from hivemind.runs.site import view

    return view(args.runs, results_dir=args.results, out=args.out, port=args.port, build=not args.no_build,
                announce=lambda line: print(redact(line), flush=True), wait=args.wait)


def _site_options(p) -> None:
    p.add_argument("runs", nargs="*", metavar="RUN", help="the runs to show (default: every analysed run in the "
                   "results folder); " + RUN_HELP)
    add_results(p)
    p.add_argument("--out", help="the site's folder (default: results-site/ beside results/, named after the results folder)")


def _register_site(sub) -> None:
    # writes_run: --wait, for a stale report that is redrawn first (under its run's lock)
    p = add_command(sub, "site", cmd_site, "write a static website over the analysed runs: the cross-run leaderboard, "
                    "each run's report, a page per system and two systems' answers side by side (no network; host "
                    "it anywhere)", writes_run=True)
    _site_options(p)


def _register_view(sub) -> None:
    p = add_command(sub, "view", cmd_view, "build the site (as `hivemind site` does) and serve it on 127.0.0.1, "
                    "printing its address (Ctrl-C stops)", writes_run=True)
    _site_options(p)
    p.add_argument("--port", type=non_negative_int, default=8000,
                   help="the port on 127.0.0.1 (default: 8000; 0: any free port)")
    p.add_argument("--no-build", action="store_true", help="serve the site already in --out as it is")


COMMANDS = {"list": _register_list, "import": _register_import, "leaderboard": _register_leaderboard,
            "snapshot": _register_snapshot, "export": _register_export, "merge": _register_merge,
            "site": _register_site, "view": _register_view}


def add_commands(sub, *names: str) -> None:
    """Register the commands named (default: all, in the order above) on `sub`, the subparsers of `hivemind`."""
    for name in names or COMMANDS:
        COMMANDS[name](sub)
