"""The paper's published figures (Jiang et al. 2025), declared once: the report sets a run's own figures
beside them, and `hivemind reproduce` writes them into paper_reference.json (hivemind.studies.reproduce)."""
from __future__ import annotations

from typing import Any

# Figures published in Jiang et al. 2025 (arXiv:2510.22954); fractions 0..1 like the run's tables.
PAPER_REFERENCE: dict[str, Any] = {
    "source": "Jiang et al., Artificial Hivemind: The Open-Ended Homogeneity of Language Models "
              "(and Beyond), NeurIPS 2025, arXiv:2510.22954",
    "embedder": "openai/text-embedding-3-small",
    "samples": 50,
    "decoding": {"top-p": {"temperature": 1.0, "top_p": 0.9},
                 "min-p": {"temperature": 2.0, "min_p": 0.1, "top_p": 1.0}},
    "share_above_0.8": {"top-p": 0.79, "min-p": 0.612},
    "intra_model_buckets_average": {"0.9-1.0": 0.438, "0.8-0.9": 0.352, "0.7-0.8": 0.126,
                                    "0.6-0.7": 0.049, "below_0.6": 0.035},
    "inter_model_similarity_range": [0.71, 0.82],
    "notes": "share_above_0.8: share of prompts whose mean pairwise similarity among one system's 50 "
             "answers exceeds 0.8, averaged over models. Buckets: average distribution of that per-prompt "
             "similarity. inter_model_similarity_range: range of mean similarity between different models.",
}
