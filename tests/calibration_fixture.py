"""TEST FIXTURE builder: human-rating files in the calibration schema, for the tests only.

Queries and responses are real (AlpacaEval answers of three models from ../shared/data, first 300
characters); the RATINGS ARE MADE UP (seeded random numbers), so no number computed on these files says
anything about any scorer. The files are built into a temporary folder at test time, never committed
(the shared data stays outside the repository).

Schema: the paper's Hub sets as the authors' compile script writes them (liweijiang/artificial-hiveminds,
src/human_annotations/compile_human_annotations.py): absolute {user_query, response, human_labels: 1-5 per
annotator}, pairwise {user_query, response_1, response_2, human_labels: +2..-2 per annotator}. Some pairs carry
the documented local alternatives instead (A/B/tie `votes`, or `ratings_a`/`ratings_b`), so all three
preference forms are exercised in one file."""
from __future__ import annotations

import json
import random
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "alpaca_eval_outputs"
MODELS = ["gpt-4o-mini-2024-07-18", "Meta-Llama-3-8B-Instruct", "Mistral-7B-Instruct-v0.2"]
NOTE = "TEST FIXTURE: real AlpacaEval answers, made-up ratings"


def answers(n_instructions: int) -> list[tuple[str, dict[str, str]]]:
    """(instruction, {model: answer}) for the first n instructions."""
    by_model = {m: json.loads((DATA / f"{m}.json").read_text()) for m in MODELS}
    out = []
    for i in range(n_instructions):
        instruction = by_model[MODELS[0]][i]["instruction"]
        out.append((instruction, {m: by_model[m][i]["output"][:300] for m in MODELS}))
    return out


def made_up_ratings(rng: random.Random, annotators: int = 9) -> list[int]:
    quality = rng.uniform(1.5, 4.5)
    spread = rng.choice([0.3, 0.8, 1.6])      # some records agreed on, some disputed
    return [min(5, max(1, round(rng.gauss(quality, spread)))) for _ in range(annotators)]


def made_up_scale(rng: random.Random, annotators: int = 7) -> list[int]:
    """5-point pairwise votes, +2 (response 1 much better) .. -2; some pairs mostly 'similar' (0)."""
    weights = rng.choice([[1, 2, 4, 2, 1], [4, 3, 1, 1, 1], [1, 1, 2, 3, 3]])
    return rng.choices([2, 1, 0, -1, -2], weights=weights, k=annotators)


def build(folder: Path, n_instructions: int = 10, seed: int = 0) -> tuple[Path, Path]:
    """absolute.jsonl (n_instructions x 3 records) and pairwise.jsonl (n_instructions x 2 pairs) in `folder`."""
    rng = random.Random(seed)
    absolute, pairwise = [], []
    for instruction, by_model in answers(n_instructions):
        ratings = {m: made_up_ratings(rng) for m in MODELS}
        for m in MODELS:
            absolute.append({"user_query": instruction, "response": by_model[m], "human_labels": ratings[m],
                             "note": NOTE})
        for b in MODELS[1:]:
            a = MODELS[0]
            pair = {"user_query": instruction, "response_1": by_model[a], "response_2": by_model[b], "note": NOTE}
            if len(pairwise) % 3 == 0:
                pair["human_labels"] = made_up_scale(rng)
            elif len(pairwise) % 3 == 1:
                pair["votes"] = [rng.choice(["A", "B", "A", "tie"]) for _ in range(7)]
            else:
                pair["ratings_a"], pair["ratings_b"] = ratings[a], ratings[b]
            pairwise.append(pair)
    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / "human_absolute_fixture.jsonl", folder / "human_pairwise_fixture.jsonl"
    for path, rows in zip(paths, (absolute, pairwise)):
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return paths
