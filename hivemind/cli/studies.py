"""The commands of the studies built on a run (hivemind.studies): compare two embedders (`agreement`), check
scorers against human ratings (`calibrate`), break results down by prompt category (`classify`, `categories`),
cluster one prompt's answers (`clusters`), `reproduce` the paper, and `plan` a run's cost before it starts.
Each command's parser sits next to its handler; the handler parses, calls one function, prints."""
from __future__ import annotations

from hivemind.cli.options import (
    AppendOnce,
    add_command,
    add_results,
    add_run,
    finite_float,
    non_negative_float,
    non_negative_int,
    positive_int,
    safe_url,
)
from hivemind.core.config_files import resolve_run


def cmd_agreement(args) -> str:
    from hivemind.studies.agreement import agreement_run

    config = resolve_run(args.run)
    result = agreement_run(config, args.embedder, progress=not args.quiet, wait=args.wait)
    return f"{result.summary()}\ntables written to {config.run_dir}"


def _register_agreement(sub) -> None:
    p = add_command(sub, "agreement", cmd_agreement, "compare two embedders on one run (rankings, matrix cells, "
                    "calibrated lines)", writes_run=True)
    add_run(p)
    p.add_argument("--embedder", action=AppendOnce, required=True, help="an embedder name; give two")


def cmd_calibrate(args) -> str:
    from hivemind.studies.scorer_calibration import Params, calibrate_scorers, scorers_for

    absolute, pairwise = args.absolute, args.pairwise
    if not absolute and not pairwise:
        absolute = pairwise = "hub"   # the paper's annotation sets
    params = Params(middle_pct=args.middle_pct, tukey_k=args.tukey_k, z_max=args.z_max,
                    disagreement_pct=args.disagreement_pct, pair_threshold=args.pair_threshold,
                    pair_similar_pct=args.pair_similar_pct, pair_disagreement_pct=args.pair_disagreement_pct,
                    bootstrap=args.bootstrap, seed=args.seed)
    result = calibrate_scorers(absolute, pairwise, scorers_for(args.config, args.scorer), name=args.name,
                               results_dir=args.results, params=params, progress=not args.quiet, wait=args.wait)
    return result.text()


def _register_calibrate(sub) -> None:
    p = add_command(sub, "calibrate", cmd_calibrate, "check scorers (judges, reward models, perplexity) against "
                    "human ratings", writes_run=True)
    p.add_argument("--absolute", metavar="FILE", help="1-5 ratings per response: JSONL/CSV, or 'hub' for "
                   "liweijiang/infinite-chats-human-absolute (default with --pairwise unset: both hub sets)")
    p.add_argument("--pairwise", metavar="FILE", help="pairs with a human preference: JSONL/CSV, or 'hub' for "
                   "liweijiang/infinite-chats-human-pairwise")
    p.add_argument("--config", help="a config whose `scorers:` are calibrated (default: the local perplexity "
                   "scorer on the bundled SmolLM2)")
    p.add_argument("--scorer", action=AppendOnce, help="only this scorer of --config (repeatable)")
    p.add_argument("--name", default="calibration", help="results/<name>/ gets the store and the tables")
    add_results(p)
    from hivemind.studies.scorer_calibration import Params

    sweep = Params()   # defaults: the authors' sweeps (hivemind/studies/scorer_calibration/subsets.py says where each is from)

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


def cmd_categories(args) -> str:
    from hivemind.studies.classify import categories_run, summary

    path, frame = categories_run(resolve_run(args.run), min_prompts=args.min_prompts, wait=args.wait)
    return f"{summary(frame)}\nwritten to {path}"


def _register_categories(sub) -> None:
    p = add_command(sub, "categories", cmd_categories, "homogeneity per prompt category (category_breakdown.csv)",
                    writes_run=True)
    add_run(p)
    p.add_argument("--min-prompts", type=positive_int, default=5, help="flag categories with fewer prompts than this")


def cmd_classify(args) -> str:
    from hivemind.studies.classify import classify_run

    counts = classify_run(resolve_run(args.run), args.model, args.api_base, args.api_key_env, args.labels,
                          progress=not args.quiet, wait=args.wait)
    return (f"{counts['labelled']} prompts labelled, {counts['unparseable']} replies named no single category "
            f"(stored, not guessed), {counts['failed']} requests failed (asked again next run), "
            f"{counts['skipped']} already labelled")


def _register_classify(sub) -> None:
    p = add_command(sub, "classify", cmd_classify, "give each prompt a taxonomy category with an LM (cached, "
                    "resumable)", writes_run=True)
    add_run(p)
    p.add_argument("--model", required=True, help="a litellm model id, e.g. openai/gpt-4o-mini")
    p.add_argument("--api-base", type=safe_url, help="the model's server URL (default: the provider's)")
    p.add_argument("--api-key-env", help="the environment variable holding the key")
    p.add_argument("--labels", help="a file of category labels, one a line ('Top > Fine' for two levels)")


def cmd_clusters(args) -> str:
    from hivemind.studies.clusters import clusters_run

    table, figure, clusters, _labels = clusters_run(resolve_run(args.run), args.prompt, k=args.k, seed=args.seed,
                                                    wait=args.wait)
    lines = [f"cluster {c.cluster}: {c.size} answers from {len(c.systems)} systems; central ({c.central_system}): "
             f"{c.central_text[:100]!r}" for c in clusters]
    return "\n".join(lines + [f"written to {table} and {figure}"])


def _register_clusters(sub) -> None:
    p = add_command(sub, "clusters", cmd_clusters, "cluster one prompt's pooled answers by k-means (table and "
                    "figure)", writes_run=True)
    add_run(p)
    p.add_argument("--prompt", required=True, help="the prompt id")
    p.add_argument("-k", type=positive_int, default=5, help="number of clusters (default: 5)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="random seed of k-means (default: 0)")


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


def _register_reproduce(sub) -> None:
    p = add_command(sub, "reproduce", cmd_reproduce, "run (or resume) the paper's configuration", writes_run=True)
    p.add_argument("what", choices=["paper"], help="what to reproduce: paper (Jiang et al. 2025)")
    p.add_argument("--systems", help="comma-separated system names (default: all)")
    p.add_argument("--limit", type=positive_int, help="only the first N prompts")
    p.add_argument("--samples", type=positive_int, help="fewer samples per prompt than the paper's 50")
    p.add_argument("--threshold", type=non_negative_float, default=10.0, help="USD above which --yes is needed")
    p.add_argument("--yes", action="store_true", help="go ahead above the cost threshold")
    p.add_argument("--routes", action="store_true", help="list every model's routes, the default and what to set")


def cmd_plan(args) -> str:
    from hivemind.studies import plan

    text = plan.render(plan.plan_config(resolve_run(args.run), prompts=args.prompts, settings=args.settings),
                       "this config")
    if args.scale:
        text += "\n\n" + plan.render(plan.paper_plan(), "the paper's full configuration (gpt-4o-mini prices)")
    return text


def _register_plan(sub) -> None:
    p = add_command(sub, "plan", cmd_plan, "estimate requests, tokens, cost, embedding time and sizes of a run")
    add_run(p)
    p.add_argument("--scale", action="store_true", help="also print the paper's full 26K x 25 x 50 x 2 plan")
    p.add_argument("--prompts", type=positive_int, help="plan for this many prompts instead of the config's")
    p.add_argument("--settings", type=positive_int, default=1, help="decoding settings, each a full pass (default: 1)")


def cmd_validate(args) -> str:
    from hivemind.studies.equivalence.validate import METHODS, markdown, validate

    frame = validate(args.data, tuple(args.method or METHODS), n_bootstrap=args.bootstrap, progress=not args.quiet)
    return markdown(frame)


def _register_validate(sub) -> None:
    from pathlib import Path

    p = add_command(sub, "validate", cmd_validate, "check equivalence methods (distinct ideas) against labelled "
                    "answer sets in NoveltyBench's format, cross-validated by prompt")
    p.add_argument("--data", type=Path, default=Path("../shared/data/noveltybench_dev"),
                   help="a folder of NoveltyBench-format JSONL with `generations` and `partition` (default: %(default)s)")
    p.add_argument("--method", action="append", choices=["embedding", "learned", "shipped", "embedding-floor"],
                   help="a method to include (repeatable; default: all)")
    p.add_argument("--bootstrap", type=non_negative_int, default=200, help="bootstrap draws over prompts for the CIs")


COMMANDS = {"agreement": _register_agreement, "calibrate": _register_calibrate, "categories": _register_categories,
            "classify": _register_classify, "clusters": _register_clusters, "reproduce": _register_reproduce,
            "plan": _register_plan, "validate": _register_validate}


def add_commands(sub, *names: str) -> None:
    """Register the commands named (default: all, in the order above) on `sub`, the subparsers of `hivemind`."""
    for name in names or COMMANDS:
        COMMANDS[name](sub)
