"""Stage 3, score: a quality score per answer and scorer, stored (entry point: stage.py, `score_run`).

One module per kind of scorer: judge.py (an LM judge through litellm), perplexity.py (a local llama.cpp
model), reward.py (a reward model), relevance.py (answer-prompt cosine). equivalence_pairs.py decides the
answer pairs of `equivalence: {method: judge | classifier}` (pairs.py the walk, pair_judge.py, pair_classifier.py).
"""
