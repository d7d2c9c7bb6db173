"""Real models' results for docs/real-models.md: NoveltyBench's published generations of 24 chat models and
AlpacaEval's answers of 16, imported, embedded and analysed with hivemind's own CLI, then the doc's figure and
tables written from the run's tables.

    python benchmarks/real_models.py run     # hivemind import / embed / analyze / report, both sets
    python benchmarks/real_models.py write   # docs/img/*.png; the Markdown tables on stdout

Runs go to $HIVEMIND_RESULTS (or --results), never to the repository's results/ unless told. Inputs default to
../shared/data/noveltybench_dev (NoveltyBench, MIT) and ../shared/data/alpaca_eval_outputs (AlpacaEval,
Apache-2.0); --noveltybench and --alpaca take clones instead (see docs/real-models.md, "Reproduce").
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
NOVELTYBENCH = SHARED / "noveltybench_dev"
ALPACA = SHARED / "alpaca_eval_outputs"
# The website repository's evaluations of the 24 models: 20 of 2025-03-27, the four Gemma 3 of 2025-09-09.
NOVELTYBENCH_EVALS = ("03-27-2025", "09-09-2025")
RUNS = {"noveltybench": "noveltybench", "alpaca": "alpaca"}
ENV = {"HF_HUB_OFFLINE": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True", "TOKENIZERS_PARALLELISM": "false"}


# Inputs -----------------------------------------------------------------------------------------------------
def noveltybench_files(folder: Path) -> list[Path]:
    """NoveltyBench files under folder: the shared copy's one JSONL per model, or a clone of its website
    repository's eval/ folder, where each model has scores.jsonl (generations, partition and reward scores) in
    eval/<date>/curated/<vendor>/<model>/; the curated split only (nb-wildchat is another prompt set)."""
    flat = sorted(folder.glob("*.jsonl"))
    if flat:
        return flat
    nested = sorted(p for date in NOVELTYBENCH_EVALS for p in folder.glob(f"{date}/curated/*/*/scores.jsonl"))
    if not nested:
        sys.exit(f"{folder}: no NoveltyBench files (*.jsonl, or <date>/curated/<vendor>/<model>/scores.jsonl)")
    return nested


# The 16 AlpacaEval models of ../shared/data/alpaca_eval_outputs (a clone's results/ holds about 200).
ALPACA_MODELS = ["Llama-3-Instruct-8B-SimPO", "Meta-Llama-3-8B-Instruct", "Meta-Llama-3.1-70B-Instruct-Turbo",
                 "Mistral-7B-Instruct-v0.2", "Qwen1.5-7B-Chat", "Qwen2-72B-Instruct", "Yi-34B-Chat",
                 "claude-3-5-sonnet-20240620", "claude-3-opus-20240229", "deepseek-llm-67b-chat", "gemini-pro",
                 "gemma-2-9b-it-SimPO", "gemma-7b-it", "gpt-4o-2024-05-13", "gpt-4o-mini-2024-07-18",
                 "mistral-large-2402"]


def alpaca_files(folder: Path) -> list[Path]:
    """AlpacaEval answers under folder: the shared copy's <model>.json, or a clone's results/<model>/
    model_outputs.json for the 16 models above (every answer names its model in `generator`)."""
    flat = sorted(folder.glob("*.json"))
    if flat:
        return flat
    nested = [folder / name / "model_outputs.json" for name in ALPACA_MODELS]
    missing = [str(p) for p in nested if not p.exists()]
    if missing:
        sys.exit(f"{folder}: no AlpacaEval files (<model>.json, or <model>/model_outputs.json): "
                 f"missing {missing[0]}")
    return nested


def id_range(text: str) -> range:
    low, _, high = text.partition("-")
    if not (low.isdigit() and high.isdigit()):
        sys.exit(f"--prompt-range {text!r}: expected FIRST-LAST, e.g. 50-99")
    return range(int(low), int(high) + 1)


def keep_prompts(files: list[Path], ids: range, staging: Path) -> list[Path]:
    """Copies of NoveltyBench files holding only the prompts curated-<i> for i in ids (the shared copy holds
    curated-50..99 of the clone's 100)."""
    staging.mkdir(parents=True, exist_ok=True)
    wanted = {f"curated-{i}" for i in ids}
    kept = []
    for number, source in enumerate(files):
        lines = [line for line in source.read_text().splitlines()
                 if line.strip() and json.loads(line).get("id") in wanted]
        target = staging / f"{number:02d}-{source.parent.name}.jsonl"
        target.write_text("\n".join(lines) + "\n")
        kept.append(target)
    return kept


# Reading the runs ---------------------------------------------------------------------------------------------
# Short labels for the figure and tables (the full names are in the run's tables).
SHORT = {
    "claude-3-5-haiku@20241022": "claude-3.5-haiku", "claude-3-5-sonnet-v2@20241022": "claude-3.5-sonnet-v2",
    "claude-3-opus@20240229": "claude-3-opus", "command-r-08-2024": "command-r",
    "command-r-plus-08-2024": "command-r-plus", "command-r7b-12-2024": "command-r7b",
    "gemini-2.0-flash-lite-preview-02-05": "gemini-2.0-flash-lite", "gemini-2.0-pro-exp-02-05": "gemini-2.0-pro",
    "meta/llama-3.1-405b-instruct-maas": "llama-3.1-405b", "gpt-4o-2024-11-20": "gpt-4o",
    "gpt-4o-mini-2024-07-18": "gpt-4o-mini", "gpt-4o-2024-05-13": "gpt-4o",
    "claude-3-5-sonnet-20240620": "claude-3.5-sonnet", "claude-3-opus-20240229": "claude-3-opus",
    "Meta-Llama-3.1-70B-Instruct-Turbo": "llama-3.1-70b", "Meta-Llama-3-8B-Instruct": "llama-3-8b",
    "Llama-3-Instruct-8B-SimPO": "llama-3-8b-SimPO", "gemma-2-9b-it-SimPO": "gemma-2-9b-SimPO",
}
# Families by vendor and line: Gemini (Google's API models) apart from Gemma (its open weights), Gemma 2
# apart from Gemma 3.
FAMILIES = [("gpt", "OpenAI"), ("claude", "Anthropic"), ("command", "Cohere"), ("gemini", "Gemini"),
            ("gemma-2", "Gemma 2"), ("gemma-3", "Gemma 3"), ("gemma", "Gemma"), ("llama", "Llama"),
            ("mistral", "Mistral"), ("qwen", "Qwen"), ("yi-", "Yi"),
            ("deepseek", "DeepSeek")]


def short_name(name: str) -> str:
    if name in SHORT:
        return SHORT[name]
    base = name.split("/")[-1]
    return re.sub(r"-(it|instruct)$", "", base, flags=re.IGNORECASE).lower()


def family(name: str) -> str:
    lowered = name.lower()
    return next((label for key, label in FAMILIES if key in lowered), "other")


@dataclass
class Run:
    name: str
    board: pd.DataFrame         # leaderboard.csv, real systems only, index = system
    inter: pd.DataFrame         # inter_model_similarity.csv
    buckets: pd.DataFrame       # intra_model_buckets.csv
    per_prompt: pd.DataFrame    # diversity_per_prompt.csv, real systems only
    info: dict                  # analysis.json
    prompts: pd.DataFrame       # prompts.jsonl: prompt_id, prompt


def load_run(run_dir: Path) -> Run:
    if not (run_dir / "analysis.json").exists():
        sys.exit(f"{run_dir}: no analysis.json; run `python benchmarks/real_models.py run` first")
    board = pd.read_csv(run_dir / "leaderboard.csv", dtype={"rank": str})
    per_prompt = pd.read_csv(run_dir / "diversity_per_prompt.csv")
    return Run(run_dir.name, board[board["kind"] == "system"].set_index("system"),
               pd.read_csv(run_dir / "inter_model_similarity.csv", index_col="system"),
               pd.read_csv(run_dir / "intra_model_buckets.csv", index_col="system"),
               per_prompt[per_prompt["kind"] == "system"], json.loads((run_dir / "analysis.json").read_text()),
               pd.read_json(run_dir / "prompts.jsonl", lines=True).rename(columns={"id": "prompt_id"}))


def noveltybench_labels(files: list[Path]) -> pd.DataFrame:
    """NoveltyBench's own figures per (model, prompt): its class count (distinct = len(set(partition))) and
    utility, read from the files that were imported (joined to the run by prompt text: the run's prompt ids
    are hashes)."""
    rows = []
    for path in files:
        for line in path.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                rows.append({"system": r["model"], "prompt": r["prompt"], "nb_distinct": len(set(r["partition"])),
                             "nb_utility": r["utility"]})
    return pd.DataFrame(rows)


def off_diagonal(run: Run) -> pd.DataFrame:
    """Every pair of different systems once, most similar first."""
    names = list(run.inter.index)
    pairs = [(a, b, run.inter.loc[a, b]) for i, a in enumerate(names) for b in names[i + 1:]]
    return pd.DataFrame(pairs, columns=["a", "b", "similarity"]).sort_values("similarity", ascending=False)


def nearest(run: Run) -> dict[str, str]:
    values = run.inter.to_numpy(dtype=np.float64, copy=True)
    np.fill_diagonal(values, np.nan)
    names = list(run.inter.index)
    return {name: names[int(np.nanargmax(row))] for name, row in zip(names, values)}


# The figure ---------------------------------------------------------------------------------------------------
def write_matrix(run: Run, path: Path, what: str) -> Path:
    """The report's inter-model matrix (hivemind.report.figures.plot_inter_heatmap: clustered order, diagonal =
    intra-model mean, colours over this run's range between systems) with short labels and a title that reads
    at README size, as a PNG under 200 KB."""
    from hivemind.report.figures import plot_inter_heatmap

    labels = {name: short_name(name) for name in run.inter.index}
    inter = run.inter.rename(index=labels, columns=labels)
    intra = run.buckets["mean"].rename(index=labels) if run.buckets["mean"].notna().any() else None
    fig = plot_inter_heatmap(inter, intra, scale="range")
    off = off_diagonal(run)["similarity"]
    diagonal = "diagonal: a model against itself; " if intra is not None else ""
    embedder = run.info["embedder"].split(":")[-1]
    fig.axes[0].set_title(f"{what}\nmean cosine between two models' answers to the same prompt ({embedder})"
                          f"\n{diagonal}clustered order; colours span {off.min():.2f}-{off.max():.2f}",
                          fontsize=12)
    fig.savefig(path, dpi=120, bbox_inches="tight", facecolor="white")
    from PIL import Image     # matplotlib's own dependency: a 256-colour palette keeps the PNG small

    Image.open(path).convert("RGB").quantize(256).save(path, optimize=True)
    return path


# The Markdown tables -----------------------------------------------------------------------------------------
def ci(value, low, high, digits: int = 3) -> str:
    return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def markdown(frame: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def ranking_section(run: Run, labels: pd.DataFrame) -> str:
    nb = labels.groupby("system")[["nb_distinct", "nb_utility"]].mean()
    b = run.board.join(nb)
    rows = [{"rank": r["rank"], "system": short_name(name),
             "effective diversity [95% CI]": ci(r.effective_diversity, r.effective_diversity_ci_low,
                                               r.effective_diversity_ci_high),
             "distinct ideas /10": ci(r.distinct_ideas, r.distinct_ideas_ci_low, r.distinct_ideas_ci_high, 2),
             "NoveltyBench distinct": f"{r.nb_distinct:.2f}", "utility": f"{r.utility:.3f}",
             "NoveltyBench utility": f"{r.nb_utility:.2f}", "intra": f"{r.intra_mean:.3f}",
             "inter †": f"{r.inter_mean_others:.3f}", "pass rate": f"{r.pass_rate:.1%}"}
            for name, r in b.iterrows()]
    return "### Ranking\n\n" + markdown(pd.DataFrame(rows))


def paper_section(run: Run) -> str:
    b, h = run.buckets, run.info
    off = off_diagonal(run)["similarity"]
    line = h["thresholds"]["intra_line_calibrated"]
    rows = [("Share of prompts with intra > 0.8 (mean over systems)", f"{b['above_0.8'].mean():.1%}", "79%"),
            (f"Same, above 0.8's calibrated value ({line:.3f})", f"{b['above_0.8_calibrated'].mean():.1%}", "79%"),
            ("Share with intra > 0.7", f"{b['above_0.7'].mean():.1%}", "91.6% (0.438 + 0.352 + 0.126)"),
            ("Mean intra-model similarity", f"{b['mean'].mean():.3f}", "—"),
            ("Inter-model similarity, range between different systems", f"{off.min():.3f}-{off.max():.3f}",
             "0.71-0.82"),
            ("Inter-model similarity, mean between different systems", f"{off.mean():.3f}", "—"),
            ("Floor: mean similarity of answers to different prompts", f"{h['floor']:.3f}", "—")]
    return "### Beside the paper\n\n" + markdown(pd.DataFrame(rows, columns=["figure", "here", "paper"]))


def pairs_section(run: Run, title: str, n: int = 8) -> str:
    near = nearest(run)
    rows = [{"systems": f"{short_name(r.a)} / {short_name(r.b)}", "similarity": f"{r.similarity:.3f}",
             "mutual nearest": "yes" if near[r.a] == r.b and near[r.b] == r.a else "",
             "same family": "yes" if family(r.a) == family(r.b) else ""}
            for r in off_diagonal(run).head(n).itertuples()]
    mutual = sorted({tuple(sorted((a, b))) for a, b in near.items() if near[b] == a})
    listing = "; ".join(f"{short_name(a)} / {short_name(b)}" for a, b in mutual)
    return (f"### Closest pairs, {title}\n\n" + markdown(pd.DataFrame(rows)) +
            f"\n\nMutual nearest neighbours ({len(mutual)} pairs): {listing}.\n\nEach system's nearest: " +
            "; ".join(f"{short_name(a)} → {short_name(b)}" for a, b in near.items()))


def families_section(run: Run) -> str:
    """Mean similarity between the models of two families (diagonal: within one family, pairs of different
    models only), and how many models have their nearest neighbour in their own family."""
    off = off_diagonal(run)
    off["fa"], off["fb"] = off["a"].map(family), off["b"].map(family)
    names = sorted({family(s) for s in run.inter.index})
    table = pd.DataFrame("—", index=names, columns=names)
    for fa in names:
        for fb in names:
            cells = off[((off["fa"] == fa) & (off["fb"] == fb)) | ((off["fa"] == fb) & (off["fb"] == fa))]
            if len(cells):
                table.loc[fa, fb] = f"**{cells['similarity'].mean():.3f}**" if fa == fb else \
                    f"{cells['similarity'].mean():.3f}"
    sizes = {f: sum(family(s) == f for s in run.inter.index) for f in names}
    table.insert(0, "family (models)", [f"{f} ({sizes[f]})" for f in names])
    same = off["fa"] == off["fb"]
    near = nearest(run)
    outside = [f"{short_name(a)} → {short_name(b)}" for a, b in near.items() if family(a) != family(b)]
    return (f"### Families, {run.name}\n\n" + markdown(table) + "\n\n"
            f"Same-family pairs: {off[same]['similarity'].mean():.3f} (n = {same.sum()}); different families: "
            f"{off[~same]['similarity'].mean():.3f} (n = {(~same).sum()}). Nearest neighbour in the own family: "
            f"{len(near) - len(outside)} of {len(near)} models (elsewhere: {'; '.join(outside) or 'none'}).")


def ideas_section(run: Run, labels: pd.DataFrame) -> str:
    sets = run.per_prompt.merge(run.prompts, on="prompt_id").merge(labels, on=["system", "prompt"])
    per_model = sets.groupby("system")[["distinct_ideas", "nb_distinct"]].mean()
    set_r = sets["distinct_ideas"].corr(sets["nb_distinct"])
    model_r = per_model["distinct_ideas"].corr(per_model["nb_distinct"])
    model_rho = per_model["distinct_ideas"].corr(per_model["nb_distinct"], method="spearman")
    by_key = run.board[run.info["primary_key"]].reindex(per_model.index)
    key_rho = by_key.corr(per_model["nb_distinct"], method="spearman")
    mae = (sets["distinct_ideas"] - sets["nb_distinct"]).abs().mean()
    bias = (sets["distinct_ideas"] - sets["nb_distinct"]).mean()
    return ("### Distinct ideas against NoveltyBench's own classes\n\n"
            f"{len(sets)} (model, prompt) sets: per-set Pearson r {set_r:.3f}, mean absolute difference {mae:.2f} "
            f"classes (hivemind minus NoveltyBench: {bias:+.2f} on average); over the {len(per_model)} models: "
            f"Pearson r {model_r:.3f}, Spearman rho {model_rho:.3f}. The ranking by the primary key "
            f"({run.info['primary_key']}) against NoveltyBench's distinct: Spearman rho {key_rho:.3f}. Note: "
            "the default `learned` method was trained on these very labels (all 50 prompts), so this agreement "
            "is in-sample; the out-of-sample figures are the 5-fold validation (`hivemind validate`).")


def key_ci(row: pd.Series, key: str) -> str:
    return ci(row[key], row[f"{key}_ci_low"], row[f"{key}_ci_high"])


def alpaca_section(run: Run) -> str:
    """One answer per model and instruction: the primary key is effective distinctness (a model's answers
    against the other models'), intra-model figures are undefined."""
    key = run.info["primary_key"]
    rows = [{"rank": r["rank"], "system": short_name(name), f"{key} [95% CI]": key_ci(r, key),
             "inter †": f"{r.inter_mean_others:.3f}", "near-duplicate rate †": f"{r.near_duplicate_rate:.1%}",
             "pass rate": f"{r.pass_rate:.1%}"} for name, r in run.board.iterrows()]
    return (f"### AlpacaEval ranking (primary key {key}; floor {run.info['floor']:.3f})\n\n"
            + markdown(pd.DataFrame(rows)))


# Running hivemind ---------------------------------------------------------------------------------------------
def hivemind(*args: str, results: Path) -> None:
    """One hivemind command, as a user would type it, with the results folder and offline settings."""
    print("$ hivemind " + " ".join(shlex.quote(str(a)) for a in args), flush=True)
    env = {**os.environ, **ENV, "HIVEMIND_RESULTS": str(results),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    subprocess.run([sys.executable, "-m", "hivemind.cli", *map(str, args)], env=env, check=True)


def run_set(name: str, files: list[Path], results: Path) -> None:
    if not (results / name / "config.yaml").exists():
        hivemind("import", *files, "--name", name, results=results)
    for stage in ("embed", "analyze", "report"):
        hivemind(stage, name, results=results)


def cmd_run(args) -> None:
    results = Path(args.results).resolve()
    files = noveltybench_files(Path(args.noveltybench))
    if args.prompt_range:
        files = keep_prompts(files, id_range(args.prompt_range), results / ".noveltybench-input")
    run_set(RUNS["noveltybench"], files, results)
    run_set(RUNS["alpaca"], alpaca_files(Path(args.alpaca)), results)


def cmd_write(args) -> None:
    results, img = Path(args.results).resolve(), Path(args.img)
    img.mkdir(parents=True, exist_ok=True)
    nb, alpaca = load_run(results / RUNS["noveltybench"]), load_run(results / RUNS["alpaca"])
    for run, name, what in ((nb, "noveltybench_matrix.png", "How alike 24 models answer NoveltyBench's open-ended "
                             "prompts (50 prompts x 10 answers)"),
                            (alpaca, "alpaca_matrix.png", "How alike 16 models answer AlpacaEval's 805 "
                             "instructions (one answer each)")):
        path = write_matrix(run, img / name, what)
        shown = path.resolve().relative_to(ROOT) if path.resolve().is_relative_to(ROOT) else path
        print(f"<!-- {shown}: {path.stat().st_size // 1024} KB -->")
    labels = noveltybench_labels(noveltybench_files(Path(args.noveltybench)))
    for section in (ranking_section(nb, labels), paper_section(nb), pairs_section(nb, "NoveltyBench"),
                    families_section(nb), ideas_section(nb, labels), pairs_section(alpaca, "AlpacaEval"),
                    families_section(alpaca), alpaca_section(alpaca)):
        print(section + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", default=os.environ.get("HIVEMIND_RESULTS", str(ROOT / "results")),
                        help="results folder (default: $HIVEMIND_RESULTS, else the repository's results/)")
    parser.add_argument("--noveltybench", default=str(NOVELTYBENCH),
                        help="NoveltyBench generations: the shared copy, or a clone's eval/ folder")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="import, embed, analyze and report both sets (resumable)")
    run.add_argument("--alpaca", default=str(ALPACA), help="AlpacaEval answers: the shared copy, or a clone's "
                     "results/ folder")
    run.add_argument("--prompt-range", help="NoveltyBench prompts curated-FIRST..LAST only, e.g. 50-99 (the "
                     "shared copy's 50)")
    run.set_defaults(func=cmd_run)
    write = sub.add_parser("write", help="docs/img figures and the Markdown tables (stdout)")
    write.add_argument("--img", default=str(ROOT / "docs" / "img"), help="where the PNGs go")
    write.set_defaults(func=cmd_write)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
