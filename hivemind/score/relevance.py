"""Relevance: the cosine of an answer's embedding and its prompt's embedding, under the run's embedder.

Both vectors are L2-normalised, so the cosine is their dot product, in [-1, 1]; higher means the answer is
about what was asked. It needs no requests: answer vectors come from the store (embedded with
`hivemind embed` first when missing) and prompt vectors too, embedded here with the run's encoder and
cached under the hash of the prompt text when the embed stage did not store them. It says nothing about
fluency or correctness: an on-topic word salad scores about as high as the answer it was made from.
"""
from __future__ import annotations

import numpy as np

from hivemind.core.config import RunConfig, Scorer
from hivemind.core.errors import HivemindError
from hivemind.store import Answer, Score, Store, text_hash


class RelevanceScorer:
    batch = 512

    def __init__(self, config: RunConfig, scorer: Scorer, store: Store, progress: bool = False):
        self.name = scorer.name
        self.embedder = config.embedder.id
        system_ids = [s.identity for s in config.systems]
        if store.texts_to_embed(self.embedder, system_ids):
            from hivemind.embed.stage import embed_run

            embed_run(config, progress=progress)
        self.prompts = self._prompt_vectors(config, store)
        self.store = store

    def _prompt_vectors(self, config: RunConfig, store: Store) -> dict[str, np.ndarray]:
        vectors = store.prompt_vectors(self.embedder)
        missing = [p for p in store.prompts() if p.id not in vectors]
        if missing:
            from hivemind.embed.stage import load_encoder, normalise

            encoded = normalise(load_encoder(config.embedder)([p.text for p in missing]))
            store.add_embeddings(self.embedder, [text_hash(p.text) for p in missing], encoded)
            vectors.update({p.id: v for p, v in zip(missing, encoded)})
        return vectors

    def score(self, answers: list[Answer]) -> list[Score]:
        found = self.store.vectors(self.embedder, (text_hash(a.text) for a in answers))
        out = []
        for answer in answers:
            vector = found.get(text_hash(answer.text))
            if vector is None:
                raise HivemindError(f"relevance scorer {self.name!r}: answer {answer.key} has no vector under "
                                    f"{self.embedder}; run `hivemind embed` first")
            cosine = float(np.dot(vector, self.prompts[answer.prompt_id]))
            out.append(Score(*answer.key, self.name, round(cosine, 6)))
        return out
