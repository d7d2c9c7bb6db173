"""Embedding backends: ONNX (fp32, int8) against torch on real answers; the backend in the embedder's identity."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from hivemind import HivemindError
from hivemind.config import Embedder
from hivemind.embed import load_encoder

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "alpaca_eval_outputs"


def real_answers(n: int) -> list[str]:
    if not DATA.exists():
        pytest.skip(f"real data not found at {DATA}")
    rows = json.loads((DATA / "gpt-4o-2024-05-13.json").read_text())
    return [r["output"] for r in rows[:n]]


def test_backend_is_part_of_the_embedder_id():
    ids = {Embedder(backend=b).id for b in ("torch", "onnx", "onnx-int8", "torch-fp16")}
    assert len(ids) == 4
    assert Embedder().id == "sentence-transformers:all-MiniLM-L6-v2"   # the default's cache key is unchanged
    assert Embedder(device="cuda").id == Embedder().id                  # fp32 on a GPU: same vectors


def test_unknown_backend_and_backend_on_api_are_refused():
    with pytest.raises(ValidationError, match="onnx-int8"):
        Embedder(backend="tensorrt")
    with pytest.raises(ValidationError, match="local sentence-transformers"):
        Embedder(provider="litellm", model="text-embedding-3-small", backend="onnx")


def test_gpu_backend_without_a_gpu_is_a_clear_error():
    import torch
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(HivemindError, match="no CUDA GPU"):
        load_encoder(Embedder(device="cuda"))
    with pytest.raises(HivemindError, match="GPU only"):
        load_encoder(Embedder(backend="torch-fp16"))


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cache")
    patch = pytest.MonkeyPatch()
    patch.setenv("HIVEMIND_CACHE", str(folder))
    yield folder
    patch.undo()


def test_onnx_vectors_match_torch_on_real_answers_and_the_export_is_cached(cache):
    texts = real_answers(24)
    torch_vectors = load_encoder(Embedder()).encode(texts).vectors
    onnx = load_encoder(Embedder(backend="onnx")).encode(texts)
    int8 = load_encoder(Embedder(backend="onnx-int8")).encode(texts)
    assert onnx.vectors.shape == torch_vectors.shape
    # fp32 ONNX is the same arithmetic in another runtime: equal to float rounding.
    assert np.max(1 - np.sum(onnx.vectors * torch_vectors, axis=1)) < 1e-4
    # int8 weights move a vector a little (measured max 0.016 on 512 AlpacaEval answers), never far.
    deviation = 1 - np.sum(int8.vectors * torch_vectors, axis=1)
    assert np.max(deviation) < 0.05
    assert np.max(deviation) > 1e-6            # it really ran the quantised graph
    files = sorted(p.name for p in cache.rglob("*.onnx"))
    assert len(files) == 2 and files[0] == "onnx-int8-matmul-perchannel.onnx" and files[1] == "onnx.onnx"
    stamps = {p: p.stat().st_mtime_ns for p in cache.rglob("*.onnx")}
    again = load_encoder(Embedder(backend="onnx-int8")).encode(texts).vectors
    assert {p: p.stat().st_mtime_ns for p in cache.rglob("*.onnx")} == stamps   # reused, not exported again
    assert np.allclose(again, int8.vectors, atol=1e-6)   # same texts, same batches: the same vectors
    assert not list(cache.rglob("*.tmp"))
