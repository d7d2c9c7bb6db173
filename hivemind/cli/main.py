"""The `hivemind` command: parse, call one function, print. Errors print their message, no traceback."""
from __future__ import annotations

import argparse
import math
import os
import sys

# Before litellm is imported anywhere: its price map is bundled; fetching it costs seconds offline.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from hivemind import __version__  # noqa: E402
from hivemind.core.errors import HivemindError
from hivemind.core.config import resolve_run  # noqa: E402
from hivemind.core.secrets import redact  # noqa: E402


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
    from hivemind.runs.merge import merge

    c = merge(resolve_run(args.run), args.stores, wait=args.wait)
    for line in c.warnings:
        print(f"warning: {redact(line)}", file=sys.stderr)
    added = ", ".join(f"{n} {table}" for table, n in c.added.items())
    replaced = ", ".join(f"{n} {table}" for table, n in c.replaced.items() if n)
    return f"merged, rows added: {added}" + (f"; failures replaced by real rows: {replaced}" if replaced else "")


def cmd_plan(args) -> str:
    from hivemind.studies import plan

    text = plan.render(plan.plan_config(resolve_run(args.run), prompts=args.prompts, settings=args.settings),
                       "this config")
    if args.scale:
        text += "\n\n" + plan.render(plan.paper_plan(), "the paper's full configuration (gpt-4o-mini prices)")
    return text


def cmd_serve_local(args) -> str:
    from hivemind.collect import local_server
    from hivemind.pipeline import signals_handled

    with signals_handled():   # SIGTERM/SIGHUP stop the servers too, not only Ctrl-C
        local_server.serve_forever()
    return "local servers stopped"


def cmd_run(args) -> str:
    from hivemind.pipeline import run
    from hivemind.report.summary import summary_text

    config = resolve_run(args.run)
    result = run(config, progress=not args.quiet, wait=args.wait, retry_errors=args.retry_errors,
                 **engine_options(args))
    scored = f"\nscored:\n{result.score.text()}" if result.score is not None else ""
    return f"collected {result.collected}, embedded {result.embedded}{scored}\n\n{summary_text(config)}"


def cmd_embed(args) -> str:
    from hivemind import pipeline

    s = pipeline.embed(resolve_run(args.run), progress=not args.quiet, wait=args.wait, **engine_options(args))
    return f"embedded {s.embedded} new texts ({s.cached} vectors were cached)"


def cmd_analyze(args) -> str:
    from hivemind import pipeline
    from hivemind.report.summary import summary_text

    config = resolve_run(args.run)
    pipeline.analyze(config, progress=not args.quiet, wait=args.wait, controls=args.controls,
                     **engine_options(args, workers=False))
    return f"tables written to {config.run_dir}\n\n{summary_text(config)}"


def cmd_report(args) -> str:
    from hivemind import pipeline
    from hivemind.report.summary import summary_text

    config = resolve_run(args.run)
    pipeline.report(config, wait=args.wait)
    return summary_text(config)


def cmd_score(args) -> str:
    from hivemind import pipeline

    config = resolve_run(args.run)
    if not config.scorers:
        raise HivemindError(f"run {config.name!r} configures no scorers; add a `scorers:` list to its config "
                            f"(see README, Quality scores) or import scores with `hivemind import --scores`")
    summary = pipeline.score(config, scorers=args.scorer or None, progress=not args.quiet, wait=args.wait,
                             raise_if_incomplete=True, **engine_options(args))
    if not summary.scorers:   # every scorer of the run is imported: nothing to compute, say what is there
        from hivemind.runs.imports import imported_scores_text
        return imported_scores_text(config)
    return "scored:\n" + summary.text()


def cmd_import_scores(args) -> str:
    from hivemind.runs.imports import import_scores

    if not args.scorer or args.files:
        raise HivemindError("usage: hivemind import --scores FILE --name RUN --scorer NAME (no other files)")
    result = import_scores(args.scores, resolve_run(args.name, results_dir=args.results), args.scorer, args.pass_at,
                           wait=args.wait)
    extra = f" ({result.inherited} NoveltyBench repeats given their class's score)" if result.inherited else ""
    return f"imported {result.stored} scores as scorer {result.scorer!r} into run {args.name!r}{extra}"


def cmd_import(args) -> str:
    from hivemind.runs.imports import FieldMapping, import_files

    if args.scores:
        return cmd_import_scores(args)

    mapping = FieldMapping(args.prompt_field, args.response_field, args.model_field)
    config = import_files(args.files, args.name, results_dir=args.results, mapping=mapping, verify=not args.no_verify)
    from hivemind.runs.imports import import_notes_text
    return "\n".join([f"imported run {config.name!r} with {len(config.systems)} systems into {config.run_dir}",
                      *import_notes_text(config),
                      f"next: hivemind embed {config.name} && hivemind analyze {config.name}"])


def cmd_leaderboard(args) -> str:
    from hivemind.runs import leaderboard

    if args.action == "add":
        return str(leaderboard.add_system(args.config, args.system, results_dir=args.results, wait=args.wait,
                                          progress=not args.quiet))
    paths = leaderboard.update_leaderboard(args.results, wait=args.wait)
    if args.action == "show":
        return paths[1].read_text(encoding="utf-8")
    return "leaderboard: " + ", ".join(str(p) for p in paths)


def cmd_list(args) -> str:
    from pathlib import Path

    from hivemind.runs import listing
    from hivemind.results.folder import results_root

    base = results_root(args.results)
    return listing.render(listing.list_runs(base), base)


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


def cmd_export(args) -> str:
    from hivemind.runs.export import export_inspect

    paths = export_inspect(resolve_run(args.run), out=args.out, wait=args.wait)
    folder = paths[0].parent if paths else args.out
    return (f"wrote {len(paths)} Inspect AI logs (one per system) to {folder}; "
            f"view them: inspect view --log-dir {folder}")


def cmd_reproduce(args) -> str:
    from hivemind.studies import reproduce

    if args.routes:
        from hivemind.collect.routes import routes_table

        return routes_table()
    systems = [s for s in (args.systems or "").split(",") if s] or None
    result = reproduce.run(resolve_run(args.what), systems=systems, limit=args.limit, yes=args.yes,
                           threshold_usd=args.threshold, samples=args.samples, progress=not args.quiet,
                           wait=args.wait)
    return str(result)


def cmd_agreement(args) -> str:
    from hivemind.studies.agreement import agreement_run

    config = resolve_run(args.run)
    result = agreement_run(config, args.embedder, progress=not args.quiet, wait=args.wait)
    return f"{result.summary()}\ntables written to {config.run_dir}"


def cmd_calibrate(args) -> str:
    from hivemind.studies.scorer_calibration import Params, calibrate_scorers as calibrate, scorers_for

    absolute, pairwise = args.absolute, args.pairwise
    if not absolute and not pairwise:
        absolute = pairwise = "hub"   # the paper's annotation sets
    params = Params(middle_pct=args.middle_pct, tukey_k=args.tukey_k, z_max=args.z_max,
                    disagreement_pct=args.disagreement_pct, pair_threshold=args.pair_threshold,
                    pair_similar_pct=args.pair_similar_pct, pair_disagreement_pct=args.pair_disagreement_pct,
                    bootstrap=args.bootstrap, seed=args.seed)
    result = calibrate(absolute, pairwise, scorers_for(args.config, args.scorer), name=args.name,
                       results_dir=args.results, params=params, progress=not args.quiet, wait=args.wait)
    return result.text()


def cmd_categories(args) -> str:
    from hivemind.studies.classify import categories_run, summary

    path, frame = categories_run(resolve_run(args.run), min_prompts=args.min_prompts, wait=args.wait)
    return f"{summary(frame)}\nwritten to {path}"


def cmd_classify(args) -> str:
    from hivemind.studies.classify import classify_run

    counts = classify_run(resolve_run(args.run), args.model, args.api_base, args.api_key_env, args.labels,
                          progress=not args.quiet, wait=args.wait)
    return (f"{counts['labelled']} prompts labelled, {counts['unparseable']} replies named no single category "
            f"(stored, not guessed), {counts['failed']} requests failed (asked again next run), "
            f"{counts['skipped']} already labelled")


def cmd_clusters(args) -> str:
    from hivemind.studies.clusters import clusters_run

    table, figure, clusters, _labels = clusters_run(resolve_run(args.run), args.prompt, k=args.k, seed=args.seed,
                                                    wait=args.wait)
    lines = [f"cluster {c.cluster}: {c.size} answers from {len(c.systems)} systems; central ({c.central_system}): "
             f"{c.central_text[:100]!r}" for c in clusters]
    return "\n".join(lines + [f"written to {table} and {figure}"])


# Command-line values, checked once as argparse reads them (`type=`), so a bad one is a usage error naming
# the flag before anything runs. float() alone takes "nan" and "inf"; int() takes 0 and -3.

def finite_float(text: str) -> float:
    """A finite number (not nan or inf)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, not {text!r}")
    return value


def non_negative_float(text: str) -> float:
    value = finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text!r}")
    return value


def _int_at_least(low: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be {low} or more, not {value}")
        return value
    parse.__name__ = f"int >= {low}"   # argparse names the type in some messages
    return parse


positive_int = _int_at_least(1)
non_negative_int = _int_at_least(0)


def safe_url(text: str) -> str:
    """A URL without credentials (user:password@, a key in the query): keys come only from the environment,
    and a URL is stored (a classifier's name) and printed."""
    from hivemind.core.secrets import url_problem

    problem = url_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(f"the URL {problem} (nothing was written)")
    return text


class AppendOnce(argparse.Action):
    """A repeatable flag (`--system A --system B`): a value given twice is used once, in first-given order."""

    def __call__(self, parser, namespace, value, option_string=None):
        values = list(getattr(namespace, self.dest, None) or [])
        if value not in values:
            values.append(value)
        setattr(namespace, self.dest, values)


def add_engine_options(p, workers: bool = True) -> None:
    """--engine ray (hivemind.engines.ray): the stage on a Ray cluster, the same results."""
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="ray: run this stage on a Ray cluster (API judges and API embedders stay local)")
    p.add_argument("--ray-address", type=safe_url, help="an existing Ray cluster (HOST:PORT, ray://HOST:PORT or auto); "
                   "default: start a local one")
    if workers:
        p.add_argument("--workers", type=positive_int, help="with --engine ray: CPU actors (default: one per CPU)")
        p.add_argument("--gpus", type=non_negative_int, help="with --engine ray: GPU actors, one GPU each (default: every "
                       "GPU of the cluster for embedding, none for scoring)")


def engine_options(args, workers: bool = True) -> dict:
    options = {"engine": args.engine, "ray_address": args.ray_address}
    if workers:
        options.update(workers=args.workers, gpus=args.gpus)
    return options


DESCRIPTION = """\
hivemind measures how alike language models answer open-ended questions (the "Artificial Hivemind"
study, Jiang et al. 2025). It asks every configured model the same prompts many times, embeds the answers,
and reports how much each model repeats itself and how much different models say the same thing, with a
quality-gated diversity ranking, figures, a report and publishable snapshots.

Start with `hivemind run demo` (no API key needed: bundled local models), then `hivemind list`.
RUN, wherever a command takes one, is a run name under results/, a run folder (results/demo), a config
file (my.yaml) or a packaged config (demo, paper)."""

EPILOG = """\
typical session:
  hivemind run demo                 collect, embed, score, analyze and report the demo run
  hivemind list                     every run under results/, its state and the next command
  hivemind report demo              re-render the report of a run
  hivemind snapshot create demo     an immutable, hashed copy (a Hugging Face dataset folder)
`hivemind COMMAND --help` explains each command."""

RUN_HELP = "the run: a run name under results/, a run folder, a config file, or a packaged config (demo, paper)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hivemind", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"hivemind {__version__}",
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                title="commands", description="what to do (hivemind COMMAND --help for more)",
                                help="one of the commands below")

    def options(p, writes_run: bool = False, nested: bool = False):
        # A nested action (`leaderboard update`) takes the flags too; its defaults are suppressed so that a
        # flag given before the action (`leaderboard --wait update`) is not overwritten by the action's.
        default = {"default": argparse.SUPPRESS} if nested else {}
        p.add_argument("-q", "--quiet", action="store_true", **default,
                       help="no progress bars (also the model-loading bars of transformers/huggingface)")
        if writes_run:
            p.add_argument("--wait", action="store_true", **default,
                           help="if another process holds the run's lock, wait for it instead of refusing")
        return p

    def add(name, func, help_text, writes_run=False, parent=sub, aliases=()):
        p = parent.add_parser(name, help=help_text, description=help_text[0].upper() + help_text[1:] + ".",
                              aliases=list(aliases))
        p.set_defaults(func=func)
        return options(p, writes_run, nested=parent is not sub)

    results_help = "the results folder (default: $HIVEMIND_RESULTS, else results/)"
    retry_help = "also re-send samples stored as permanent errors (after fixing the config or server)"
    p = add("run", cmd_run, "collect, embed, score, analyze and report a run, then print its summary "
            "(starts the local servers if needed)", writes_run=True)
    p.add_argument("run", nargs="?", default="demo", help=RUN_HELP + " (default: demo)")
    p.add_argument("--retry-errors", action="store_true", help=retry_help)
    add_engine_options(p)   # embed, score and analyze on Ray; collect and report stay local
    p = add("list", cmd_list, "every run under the results folder: its state (collected, embedded, scored, "
            "analysed, reported), answers, errors, last change and the next command (read only)")
    p.add_argument("--results", help=results_help)
    p = add("collect", cmd_collect, "ask every system for the samples not yet stored (starts local servers)",
            writes_run=True)
    p.add_argument("run", help=RUN_HELP)
    p.add_argument("--system", action=AppendOnce, help="only this system (repeatable)")
    p.add_argument("--retry-errors", action="store_true", help=retry_help)
    p = add("embed", cmd_embed, "embed every stored answer (vectors are cached by text)", writes_run=True)
    p.add_argument("run", help=RUN_HELP)
    add_engine_options(p)
    p = add("score", cmd_score, "give every stored answer a quality score per configured scorer (cached)",
            writes_run=True)
    p.add_argument("run", help=RUN_HELP)
    p.add_argument("--scorer", action=AppendOnce, help="only this scorer (repeatable)")
    add_engine_options(p)
    p = add("analyze", cmd_analyze, "write the similarity and diversity tables and results.json, then print "
            "the summary", writes_run=True)
    p.add_argument("run", help=RUN_HELP)
    p.add_argument("--controls", action="store_true",
                   help="add synthetic control systems (word salad, babble, off-topic, paraphrase ensemble, "
                        "copies) made from the run's answers, and show where they land")
    add_engine_options(p, workers=False)
    p = add("report", cmd_report, "render figures, report.html and report.md, then print the summary",
            writes_run=True)
    p.add_argument("run", help=RUN_HELP)
    p = add("serve-local", cmd_serve_local, "serve the bundled local models on 127.0.0.1 until Ctrl-C")
    p = add("agreement", cmd_agreement, "compare two embedders on one run (rankings, matrix cells, calibrated lines)",
            writes_run=True)
    p.add_argument("run", help=RUN_HELP)
    p.add_argument("--embedder", action=AppendOnce, required=True, help="an embedder name; give two")
    p = add("calibrate", cmd_calibrate, "check scorers (judges, reward models, perplexity) against human ratings",
            writes_run=True)
    p.add_argument("--absolute", metavar="FILE", help="1-5 ratings per response: JSONL/CSV, or 'hub' for "
                   "liweijiang/infinite-chats-human-absolute (default with --pairwise unset: both hub sets)")
    p.add_argument("--pairwise", metavar="FILE", help="pairs with a human preference: JSONL/CSV, or 'hub' for "
                   "liweijiang/infinite-chats-human-pairwise")
    p.add_argument("--config", help="a config whose `scorers:` are calibrated (default: the local perplexity "
                   "scorer on the bundled SmolLM2)")
    p.add_argument("--scorer", action=AppendOnce, help="only this scorer of --config (repeatable)")
    p.add_argument("--name", default="calibration", help="results/<name>/ gets the store and the tables")
    p.add_argument("--results", help=results_help)
    from hivemind.studies.scorer_calibration import Params

    sweep = Params()   # defaults: the authors' sweeps (hivemind/studies/calibrate.py docstring says where each is from)

    def values(flag, default, help):
        p.add_argument(flag, type=finite_float, nargs="+", default=list(default), metavar="V",
                       help=f"{help} (one subset per value; default: {' '.join(f'{v:g}' for v in default)})")
    values("--middle-pct", sweep.middle_pct, "similar quality: middle percent of mean ratings")
    values("--tukey-k", sweep.tukey_k, "similar quality: inside Tukey's fences Q1 - k IQR, Q3 + k IQR")
    values("--z-max", sweep.z_max, "similar quality: |z| of the mean rating at most this")
    values("--disagreement-pct", sweep.disagreement_pct, "high disagreement: top percent of rating entropy")
    values("--pair-threshold", sweep.pair_threshold, "similar: another response (or the pair's other response) "
           "rated within this many points")
    values("--pair-similar-pct", sweep.pair_similar_pct, "pairwise similar: percent of pairs with the most "
           "'similar / hard to tell' votes")
    values("--pair-disagreement-pct", sweep.pair_disagreement_pct, "pairwise high disagreement: percent of "
           "pairs with the lowest annotator agreement")
    p.add_argument("--bootstrap", type=positive_int, default=1000, help="bootstrap resamples for the 95%% intervals")
    p.add_argument("--seed", type=non_negative_int, default=0, help="random seed of the bootstrap (default: 0)")
    p = add("categories", cmd_categories, "homogeneity per prompt category (category_breakdown.csv)",
            writes_run=True)
    p.add_argument("run", help=RUN_HELP)
    p.add_argument("--min-prompts", type=positive_int, default=5, help="flag categories with fewer prompts than this")
    p = add("classify", cmd_classify, "give each prompt a taxonomy category with an LM (cached, resumable)",
            writes_run=True)
    p.add_argument("run", help=RUN_HELP)
    p.add_argument("--model", required=True, help="a litellm model id, e.g. openai/gpt-4o-mini")
    p.add_argument("--api-base", type=safe_url, help="the model's server URL (default: the provider's)")
    p.add_argument("--api-key-env", help="the environment variable holding the key")
    p.add_argument("--labels", help="a file of category labels, one a line ('Top > Fine' for two levels)")
    p = add("clusters", cmd_clusters, "cluster one prompt's pooled answers by k-means (table and figure)",
            writes_run=True)
    p.add_argument("run", help=RUN_HELP)
    p.add_argument("--prompt", required=True, help="the prompt id")
    p.add_argument("-k", type=positive_int, default=5, help="number of clusters (default: 5)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="random seed of k-means (default: 0)")
    p = add("import", cmd_import, "make a run from existing generations or a snapshot folder", writes_run=True)
    p.add_argument("files", nargs="*", help="generation files (JSON/JSONL/CSV/Parquet), a snapshot folder, or "
                   "hf://OWNER/NAME@TAG (a snapshot pushed with --to-hub)")
    p.add_argument("--name", required=True, help="the new run's name (results/<name>/); with --scores: the run "
                   "the scores belong to")
    p.add_argument("--results", help=results_help)
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
    _leaderboard_parser(add)
    _snapshot_parser(add, "results folder (default: the run config's, else $HIVEMIND_RESULTS, else results/)")
    p = add("export", cmd_export, "write a run in another tool's format", writes_run=True)
    p.add_argument("format", choices=["inspect"], help="inspect: Inspect AI eval logs, one per system")
    p.add_argument("run", help=RUN_HELP)
    p.add_argument("--out", help="folder for the logs (default: the run folder's inspect/)")
    p = add("reproduce", cmd_reproduce, "run (or resume) the paper's configuration", writes_run=True)
    p.add_argument("what", choices=["paper"], help="what to reproduce: paper (Jiang et al. 2025)")
    p.add_argument("--systems", help="comma-separated system names (default: all)")
    p.add_argument("--limit", type=positive_int, help="only the first N prompts")
    p.add_argument("--samples", type=positive_int, help="fewer samples per prompt than the paper's 50")
    p.add_argument("--threshold", type=non_negative_float, default=10.0, help="USD above which --yes is needed")
    p.add_argument("--yes", action="store_true", help="go ahead above the cost threshold")
    p.add_argument("--routes", action="store_true", help="list every model's routes, the default and what to set")
    p = add("merge", cmd_merge, "merge stores collected on other machines into the run's store", writes_run=True)
    p.add_argument("run", help=RUN_HELP)
    p.add_argument("stores", nargs="+", help="store.sqlite files or run folders holding one")
    p = add("plan", cmd_plan, "estimate requests, tokens, cost, embedding time and sizes of a run")
    p.add_argument("run", help=RUN_HELP)
    p.add_argument("--scale", action="store_true", help="also print the paper's full 26K x 25 x 50 x 2 plan")
    p.add_argument("--prompts", type=positive_int, help="plan for this many prompts instead of the config's")
    p.add_argument("--settings", type=positive_int, default=1, help="decoding settings, each a full pass (default: 1)")
    return parser


def _leaderboard_parser(add) -> None:
    """`leaderboard` (= `leaderboard update`), `leaderboard show`, `leaderboard add CONFIG --system NAME`."""
    results_help = "results folder (default: the config's, else $HIVEMIND_RESULTS, else results/)"
    p = add("leaderboard", cmd_leaderboard, "rank every analysed run's systems (results/leaderboard.csv, .md)",
            writes_run=True)
    p.add_argument("--results", help=results_help)
    nested = p.add_subparsers(dest="action", metavar="ACTION", title="actions",
                              description="default: update", help="what to do with the leaderboard")
    p.set_defaults(action="update")   # after add_subparsers, so `hivemind leaderboard` alone updates
    q = add("update", cmd_leaderboard, "rewrite results/leaderboard.csv and leaderboard.md from every analysed run",
            writes_run=True, parent=nested)
    q.add_argument("--results", default=argparse.SUPPRESS, help=results_help)
    q = add("show", cmd_leaderboard, "rewrite the leaderboard and print leaderboard.md", writes_run=True,
            parent=nested)
    q.add_argument("--results", default=argparse.SUPPRESS, help=results_help)
    q = add("add", cmd_leaderboard, "add a system to a run's config, collect and embed only it, re-analyze, "
            "redraw the report, rewrite the leaderboard and print where it ranks (a system already present and "
            "analysed adds nothing)", writes_run=True, parent=nested)
    q.add_argument("config", help="the run's config file, with the new system already under `systems:`")
    q.add_argument("--system", required=True, help="the name of the new system in that config")
    q.add_argument("--results", default=argparse.SUPPRESS, help=results_help)


def _snapshot_parser(add, results_help: str) -> None:
    """`snapshot create|publish|verify|push`; `snapshot publish` is create plus an optional --to-hub."""
    p = add("snapshot", cmd_snapshot, "create, publish, verify or push an immutable result snapshot "
            "(a Hugging Face dataset folder)", writes_run=True)
    nested = p.add_subparsers(dest="action", metavar="ACTION", title="actions", required=True,
                              help="what to do with a snapshot")
    name_help = "the snapshot's name (default: <run>-<YYYY-MM-DD>)"
    license_help = "license in the dataset card (default: other)"
    for action, text in (("create", "write results/snapshots/NAME/ from an analysed run (hashed, read-only)"),
                         ("publish", "create the snapshot and, with --to-hub, upload it")):
        q = add(action, cmd_snapshot, text, parent=nested, writes_run=True)   # --wait: it takes the run lock
        q.add_argument("target", metavar="RUN", help=RUN_HELP)
        q.add_argument("--name", help=name_help)
        q.add_argument("--license", default="other", help=license_help)
        q.add_argument("--results", help=results_help)
        if action == "publish":
            q.add_argument("--to-hub", metavar="REPO", help="also upload it to this Hugging Face dataset repo "
                           "(one commit, tagged with the snapshot name)")
    q = add("verify", cmd_snapshot, "recompute every file hash of a snapshot against its manifest", parent=nested)
    q.add_argument("target", metavar="SNAPSHOT", help="a snapshot name under results/snapshots/ or its folder")
    q.add_argument("--results", help=results_help)
    q = add("push", cmd_snapshot, "upload an existing snapshot to a Hugging Face dataset repo in one commit",
            parent=nested)
    q.add_argument("target", metavar="SNAPSHOT", help="a snapshot name under results/snapshots/ or its folder")
    q.add_argument("repo", help="the dataset repo, OWNER/NAME (token from HF_TOKEN or `hf auth login`)")
    q.add_argument("--results", help=results_help)


QUIET_ENV = {
    "TQDM_DISABLE": "1",                       # every tqdm bar without an explicit `disable=` (tqdm >= 4.66)
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",       # huggingface_hub downloads and cache reads
    "TRANSFORMERS_VERBOSITY": "error",         # transformers' loading notices and its own bars
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "DATASETS_VERBOSITY": "error",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
}


def quiet_libraries() -> None:
    """-q: the progress bars and logs of model loading (sentence-transformers, huggingface, transformers,
    datasets, llama.cpp) are switched off through their environment variables, before they are imported
    (every command imports them lazily), and again by API for anything imported already."""
    for name, value in QUIET_ENV.items():
        os.environ.setdefault(name, value)
    import logging

    for name in ("sentence_transformers", "transformers", "huggingface_hub", "datasets", "llama_cpp"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "quiet", False):
        quiet_libraries()
    try:
        message = args.func(args)
    except HivemindError as err:
        print(f"error: {redact(str(err))}", file=sys.stderr)  # no key value is ever printed
        return 1
    except OSError as err:
        # A file-system failure no stage diagnosed itself (a full disk, a folder that vanished): say which file
        # and why in one line, never a traceback. Everything committed to the store so far is kept.
        where = f"{err.filename}: " if err.filename else ""
        print(f"error: {redact(where + (err.strerror or str(err)))} (everything stored so far is kept)",
              file=sys.stderr)
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
