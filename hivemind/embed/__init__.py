"""Stage 2, embed: one vector per distinct text, cached in the store (entry point: stage.py, `embed_run`).

- stage.py: the embedders (sentence-transformers, the static embedder, an API through litellm), chunking;
- backends.py: torch / fp16 / ONNX / int8 ONNX backends for the local embedder.
"""
