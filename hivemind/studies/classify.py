"""Two study commands over a run's prompt categories:

- `hivemind categories RUN` rewrites category_breakdown.csv (the table and its columns:
  hivemind.analyze.categories) with another `--min-prompts`;
- `hivemind classify RUN --model ID` labels the prompts that carry no category with an LM, into the
  INFINITY-CHAT taxonomy (hivemind.core.taxonomy) or the user's labels, and stores the labels (resumable).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from hivemind.analyze.categories import DEFAULT_MIN_PROMPTS, TABLE, breakdown, run_categories
from hivemind.core.errors import HivemindError
from hivemind.core.taxonomy import LABELS, canonical, split


def categories_run(config, min_prompts: int = DEFAULT_MIN_PROMPTS, wait: bool = False) -> tuple[Path, pd.DataFrame]:
    """Write category_breakdown.csv for an analysed run; categories from the store (prompt file, dataset
    or `hivemind classify`). Under the run lock."""
    from hivemind.results.folder import run_locked

    with run_locked(config, "categories", wait):
        return _categories(config, min_prompts)


def _categories(config, min_prompts: int) -> tuple[Path, pd.DataFrame]:
    from hivemind.results.folder import write_text
    from hivemind.store import Store

    table = config.run_dir / "intra_model_per_prompt.csv"
    if not table.is_file():
        raise HivemindError(f"{table} not found; run `hivemind analyze {config.name}` first")
    with Store.open_readonly(config.store_path) as store:
        categories = run_categories(store)
    if not any(categories.values()):
        raise HivemindError(f"run {config.name!r}: no prompt has a category; give `category` in the prompt file, "
                            f"`category_field` for a dataset, or run `hivemind classify {config.name} --model ID`")
    optional = {name: pd.read_csv(config.run_dir / name) if (config.run_dir / name).is_file() else None
                for name in ("prompt_homogeneity.csv", "diversity_per_prompt.csv", "pooled_diversity.csv")}
    diversity = optional["diversity_per_prompt.csv"]
    if diversity is not None and "kind" in diversity:
        diversity = diversity[diversity["kind"] != "control"]
    frame = breakdown(pd.read_csv(table), categories, optional["prompt_homogeneity.csv"], min_prompts,
                      diversity=diversity, pooled=optional["pooled_diversity.csv"])
    path = write_text(config.run_dir / TABLE, frame.to_csv(index=False), config)
    return path, frame


def summary(frame: pd.DataFrame) -> str:
    pooled = frame[frame["system"] == "ALL"]
    lines = [f"{'category':40s} {'prompts':>7s} {'intra':>6s} {'>0.8':>6s}"]
    for row in pooled.itertuples():
        flag = "  (few prompts)" if row.few_prompts else ""
        lines.append(f"{row.category[:40]:40s} {row.n_prompts:7d} {row.mean_intra:6.3f} "
                     f"{getattr(row, '_6'):6.1%}{flag}")
    return "\n".join(lines)


# Classification through litellm (`hivemind classify RUN --model ID`) --------------------------------

# The default labels are the paper's taxonomy (hivemind.core.taxonomy: 6 top-level, 17 fine categories, written
# "Top > Fine"; the two tops the paper gives no sub-category are the top alone). --labels FILE gives others.
DEFAULT_LABELS = list(LABELS)

CLASSIFY_PROMPT = """Classify the user request below into exactly one of these categories (written "Top > Fine";
a category without ">" has no finer level):
{labels}

Answer with the category name only, copied exactly.

User request:
{prompt}"""


def parse_label(reply: str, labels: list[str]) -> tuple[str | None, str | None]:
    """(label, error): the one label the reply names (case-insensitive, the reply's last non-empty line), as the
    full label or, for a two-level label, its fine name alone (which maps to its top); anything else (no label,
    several, a top that has finer labels, a fine under another top) is an error, never a guess."""
    lines = [line.strip().strip(".*\"'`") for line in (reply or "").splitlines() if line.strip()]
    if not lines:
        return None, "empty reply"
    named = named_labels(lines[-1], labels)
    if len(named) == 1:
        return named[0], None
    return None, f"reply names {'several' if named else 'no'} category: {lines[-1][:80]!r}"


def named_labels(line: str, labels: list[str]) -> list[str]:
    """The labels a reply line names: those it is exactly (full label or fine name, or for the taxonomy's labels
    another name the paper gives them), else the full labels it contains, else the fine names it contains under
    no other top it names (a top with several fine categories is not one label)."""
    line = plain(line)
    parts = {label: tuple(plain(part) if part else "" for part in split(label)) for label in labels}
    exact = [label for label, (_top, fine) in parts.items() if line and line in (plain(label), fine)]
    if exact:
        return exact
    if canonical(line) in labels:
        return [canonical(line)]
    full = [label for label in labels if plain(label) in line]
    if full or not line:
        return full
    tops = {top for top, _fine in parts.values() if top in line}
    return [label for label, (top, fine) in parts.items() if fine and fine in line and (not tops or top in tops)]


def plain(text: str) -> str:
    return " ".join(text.split()).lower()


def read_labels(path: str | None) -> list[str]:
    if path is None:
        return list(DEFAULT_LABELS)
    file = Path(path)
    if not file.is_file():
        raise HivemindError(f"{path}: no such labels file (one category a line)")
    labels = [line.strip() for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(labels) < 2 or len(set(labels)) != len(labels):
        raise HivemindError(f"{path}: needs at least two distinct labels, one a line")
    return labels


def classify_run(config, model: str, api_base: str | None = None, api_key_env: str | None = None,
                 labels_path: str | None = None, progress: bool = True, wait: bool = False) -> dict[str, int]:
    """Label every prompt of the run that has no label from this classifier yet; each label is committed as
    it arrives, so a killed run resumes. Under the run lock. Returns counts: labelled, unparseable, failed,
    skipped."""
    from hivemind.results.folder import run_locked

    with run_locked(config, "classify", wait):
        return _classify(config, model, api_base, api_key_env, labels_path)


def _classify(config, model: str, api_base: str | None, api_key_env: str | None,
              labels_path: str | None) -> dict[str, int]:
    import litellm

    from hivemind.core.config import api_key
    from hivemind.core.secrets import url_problem
    from hivemind.store import Store

    if api_base is not None and url_problem(api_base):   # the classifier's name (stored) holds api_base
        raise HivemindError(f"classifier api_base: the URL {url_problem(api_base)} (nothing was written)")
    labels = read_labels(labels_path)
    key = api_key(f"classifier {model!r}", model, api_base, api_key_env)
    classifier = f"{model}@{api_base}" if api_base else model
    counts = {"labelled": 0, "unparseable": 0, "failed": 0, "skipped": 0}
    with Store(config.store_path, create=False) as store:
        done = store.labelled_prompts(classifier)
        for prompt in store.prompts():
            if prompt.id in done:
                counts["skipped"] += 1
                continue
            text = CLASSIFY_PROMPT.format(labels="\n".join(f"- {label}" for label in labels), prompt=prompt.text)
            try:
                reply = litellm.completion(model=model, messages=[{"role": "user", "content": text}],
                                           api_base=api_base, api_key=key, temperature=0.0, max_tokens=32,
                                           num_retries=3, timeout=config.request_timeout)
            except Exception as err:  # not stored: the next run asks again
                counts["failed"] += 1
                if counts["failed"] >= 3 and counts["labelled"] + counts["unparseable"] == 0:
                    from hivemind.core.secrets import redact

                    raise HivemindError(redact(f"classifier {model!r} fails: {type(err).__name__}: "
                                               f"{str(err)[:200]}", extra=[key])) from None
                continue
            raw = reply.choices[0].message.content or ""
            label, error = parse_label(raw, labels)
            store.add_prompt_label(prompt.id, classifier, label, raw[:500], error)
            counts["labelled" if label else "unparseable"] += 1
    return counts
