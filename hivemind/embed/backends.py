"""Embedding backends for local sentence-transformers models: torch (the default), ONNX Runtime, int8 ONNX.

- `torch`: `SentenceTransformer.encode`, fp32, on the config's device (`cpu`, or `cuda` where a GPU exists).
- `torch-fp16`: the same model cast to half precision; CUDA only (fp16 matmuls on CPU are slower, not faster).
- `onnx`: the model's transformer exported once to ONNX (fp32) and run by ONNX Runtime on the CPU; the
  mean pooling and L2 normalisation that the sentence-transformers pipeline adds are done here in numpy.
- `onnx-int8`: that ONNX graph with int8 weights and int8 MatMuls, made by a deterministic recipe
  (`Int8Recipe`, default `INT8_RECIPE`) whose tag names the cached file and enters the embedder id
  (`sentence-transformers:all-MiniLM-L6-v2#onnx-int8-<tag>`): a different recipe is a different embedder.
  `matmul-*` recipes are `quantize_dynamic` (activations scaled per batch: a vector moves slightly with its
  batch mates); `nbits8-*` is MatMulNBits with per-block scales (a vector does not depend on its batch).
  `benchmarks/bench_backends.py` compares recipes side by side (docs/embedders.md).

Why not sentence-transformers' own `backend="onnx"`: it needs `optimum-onnx`, whose only release pins
transformers < 4.58, and this project runs on transformers 5; installing it would downgrade the library every
stage uses. The export here is the same idea (torch.onnx.export of the Hugging Face model, opset 17) with
only `onnxruntime` and `onnx` added. For the same reason optimum's `ORTQuantizer` / `AutoQuantizationConfig`
(which sentence-transformers' `export_dynamic_quantized_onnx_model` wraps) are not used: their arm64 / avx2 /
avx512_vnni presets are settings of the same `quantize_dynamic` (per-tensor or per-channel, QInt8 or QUInt8
weights, reduce_range), which `Int8Recipe`'s `matmul-*` tags express directly.

The exported graphs are cached under the user cache folder (`HIVEMIND_CACHE`, else platformdirs'
user_cache_dir("hivemind")), at `onnx/<model>-<weights hash>/<backend>[-<recipe tag>].onnx`: keyed by the model's weights
file, so a changed model is exported anew; built offline from the local weights; written atomically, so
a killed export leaves no half file behind.

The backend is part of the embedder's identity (`Embedder.id`), so vectors of different backends never mix
in the store's cache. `benchmarks/bench_backends.py` measures how far they are apart (max cosine
deviation per text, Spearman of the system ranking).
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from hivemind.core.config import INT8_RECIPE_TAG, backend_label  # noqa: F401  (backend_label: the id, declared there)
from hivemind.core.errors import HivemindError
from hivemind.core.extras import missing_extra, require

BACKENDS = ("torch", "torch-fp16", "onnx", "onnx-int8")
DEVICES = ("cpu", "cuda")
ONNX_INPUTS = ("input_ids", "attention_mask", "token_type_ids")

# The MatMuls of a BERT-style encoder layer as torch.onnx.export names them, by the part each belongs to.
MATMUL_PARTS = {
    "qkv": ("attention/self/query/", "attention/self/key/", "attention/self/value/", "attention/self/qkv/"),
    "attnout": ("attention/output/dense/",),
    "ffnin": ("intermediate/dense/",),
    "ffnout": ("/output/dense/",),        # also matches attention/output/dense: excluded below
}


@dataclass(frozen=True)
class Int8Recipe:
    """How `onnx-int8` quantises the fp32 graph; its `tag` names the cached file and is part of the embedder
    id, so vectors of different recipes never mix. Deterministic: the same fp32 graph gives the same bytes.

    Two methods, both with int8 weights and int8 arithmetic in the MatMuls that have a weight (the
    attention-score MatMuls, two activations, and the embedding Gathers stay fp32):

    - `matmul` (`quantize_dynamic`, MatMulInteger): weights int8 per output column (`pc`) or per matrix
      (`pt`), signed `s8` or unsigned `u8`, optionally 7-bit (`rr`, reduce_range); activations uint8 with one
      scale per *tensor*, i.e. per batch, so a vector depends slightly on the texts batched with it.
    - `nbits8` (MatMulNBits, bits=8, accuracy_level 4): weights int8 symmetric, one scale per block of
      `block` input rows of each output column; accuracy_level 4 asks for int8 arithmetic with activations
      scaled per block of `block` values of each token row (where the CPU has no such kernel, ORT computes
      in fp32 from the dequantised weights). No scale spans the batch: a vector does not depend on its
      batch mates (tested), and one outlier feature costs the precision of its own block only.

    `keep` names MatMuls left in fp32: a part ("ffnout"), a layer ("layer5"), or both ("layer5:ffnout").

    `fused` quantises the graph that ONNX Runtime's BERT optimizer (`onnxruntime.transformers.optimizer`,
    model_type bert) made of an eager-attention export (`fused_graph`): embeddings + LayerNorm become
    EmbedLayerNormalization, Q/K/V projections + scores + softmax one Attention op per layer (quantised to
    QAttention), residual Add + LayerNorm SkipLayerNormalization, bias Add + GELU BiasGelu. ORT's session-time
    optimiser does not make these from the exported graph. `keep` names the same MatMuls as without
    `fused`; the Attention of layer N answers to `qkv` and `layerN`.

    Tag grammar: matmul-{pc|pt}-{s8|u8}[-rr][-fused][-fp32.KEEP...] | nbits8-b{BLOCK}[-fused][-fp32.KEEP...]."""
    method: str = "matmul"          # matmul | nbits8
    block: int = 32                 # nbits8: values per scale (a power of two, >= 16)
    per_channel: bool = True        # matmul: one weight scale per output column, not one per matrix
    weights: str = "s8"             # matmul: s8 (QInt8) | u8 (QUInt8)
    reduce_range: bool = False      # matmul: 7-bit weights (no int16 overflow in pre-VNNI u8*s8 kernels)
    keep: tuple[str, ...] = ()
    fused: bool = False             # quantise the graph after ORT's BERT fusions (SkipLayerNorm, BiasGelu)

    @property
    def tag(self) -> str:
        if self.method == "nbits8":
            parts = ["nbits8", f"b{self.block}"]
        else:
            parts = ["matmul", "pc" if self.per_channel else "pt", self.weights] + (["rr"] if self.reduce_range else [])
        return "-".join(parts + (["fused"] if self.fused else []) + [f"fp32.{k}" for k in self.keep])

    @classmethod
    def parse(cls, tag: str) -> "Int8Recipe":
        """The recipe a tag names (the inverse of `tag`); a clear error for anything else."""
        parts = tag.split("-")
        bad = HivemindError(f"int8 recipe {tag!r}: expected nbits8-b{{16|32|64|128|256}}[-fused][-fp32.PART...] or "
                            f"matmul-{{pc|pt}}-{{s8|u8}}[-rr][-fused][-fp32.PART...] (PART: layerN, "
                            f"{'|'.join(MATMUL_PARTS)} or layerN:PART), e.g. {INT8_RECIPE_TAG!r}")
        if parts[0] == "nbits8" and len(parts) >= 2 and parts[1] in {f"b{2 ** i}" for i in range(4, 9)}:
            recipe, rest = cls("nbits8", block=int(parts[1][1:])), parts[2:]
        elif parts[0] == "matmul" and len(parts) >= 3 and parts[1] in ("pc", "pt") and parts[2] in ("s8", "u8"):
            reduce_range = len(parts) > 3 and parts[3] == "rr"
            recipe = cls("matmul", per_channel=parts[1] == "pc", weights=parts[2], reduce_range=reduce_range)
            rest = parts[4:] if reduce_range else parts[3:]
        else:
            raise bad
        fused = bool(rest) and rest[0] == "fused"
        rest = rest[1:] if fused else rest
        if not all(k.startswith("fp32.") for k in rest):
            raise bad
        recipe = replace(recipe, keep=tuple(k[5:] for k in rest), fused=fused)
        try:
            [_keep_item(item) for item in recipe.keep]
        except ValueError:
            raise bad from None
        return recipe

    def kept_nodes(self, names: list[str]) -> list[str]:
        """The MatMul node names (of `names`) this recipe leaves in fp32."""
        items = [_keep_item(item) for item in self.keep]
        return [name for name in names if any(
            (layer is None or f"/layer.{layer}/" in name) and (part is None or _in_part(name, part))
            for layer, part in items)]


def _keep_item(item: str) -> tuple[int | None, str | None]:
    """'layer5:ffnout' -> (5, 'ffnout'); 'ffnout' -> (None, 'ffnout'); 'layer5' -> (5, None)."""
    layer, part = item.split(":", 1) if ":" in item else ((item, None) if item.startswith("layer") else (None, item))
    if (part is not None and part not in MATMUL_PARTS) or (layer is not None and not layer[5:].isdigit()):
        raise ValueError(item)
    return (int(layer[5:]) if layer is not None else None), part


def _in_part(name: str, part: str) -> bool:
    if part == "ffnout" and "attention/output" in name:
        return False
    return any(fragment in name for fragment in MATMUL_PARTS[part])


# The default, chosen with benchmarks/bench_backends.py on 512 AlpacaEval answers, all variants side by side in
# one run on a quiet 2-core AVX2 CPU (docs/embedders.md): quantize_dynamic per channel on the graph
# after ORT's BERT fusions (`fused`), with the FFN output MatMuls (input: the GELU output, whose outliers set
# the per-batch scale) left in fp32: 1.63x torch fp32, max cosine deviation 6.8e-3, 32-prompt ranking
# Spearman 0.991. In the same run the unfused recipe with the same exclusions (the default until
# 2026-11-25) ran at 1.17x (7.5e-3, 0.994) and the fused recipe with every MatMul int8 at 1.84x (1.5e-2,
# 0.979: below the 0.99 line). `nbits8-b32` is 12x closer still (6e-4, Spearman 1.0, batch-independent)
# but half as fast without VNNI. No recipe reaches 2x here: benchmarks/bench_int8_ceiling.py measures
# why (the int8 MatMuls are 2.5x torch's at best on this CPU, and 29% of torch's time is outside them).
INT8_RECIPE = Int8Recipe.parse(INT8_RECIPE_TAG)   # the tag is declared with the embedder id (hivemind.core.config)




def quantize(fp32: Path, target: Path, recipe: Int8Recipe) -> None:
    """Write `recipe`'s int8 graph of the fp32 graph `fp32` to `target` (deterministic: same input, same bytes)."""
    import logging

    import onnx
    logging.getLogger().setLevel(max(logging.getLogger().level, logging.ERROR))  # its pre-processing hint
    model = onnx.load(str(fp32))
    weights = {i.name for i in model.graph.initializer}
    # a fused graph's Attention nodes (Q, K, V projections in one weight) quantise like MatMuls (QAttention)
    matmuls = [n.name for n in model.graph.node
               if n.op_type in ("MatMul", "Attention") and any(i in weights for i in n.input)]
    kept = recipe.kept_nodes(matmuls)
    if recipe.method == "nbits8":
        try:
            from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer
        except ImportError as error:
            raise missing_extra("onnx", f"int8 recipe {recipe.tag!r} ({error.name or 'onnx-ir'})") from None
        logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer").setLevel(logging.WARNING)
        quantizer = MatMulNBitsQuantizer(model, bits=8, block_size=recipe.block, is_symmetric=True,
                                         accuracy_level=4, nodes_to_exclude=kept)
        quantizer.process()
        quantizer.model.save_model_to_file(str(target), use_external_data_format=False)
        return
    from onnxruntime.quantization import QuantType, quantize_dynamic
    quantize_dynamic(str(fp32), str(target), op_types_to_quantize=["MatMul", "Attention"], per_channel=recipe.per_channel,
                     reduce_range=recipe.reduce_range,
                     weight_type=QuantType.QInt8 if recipe.weights == "s8" else QuantType.QUInt8,
                     nodes_to_quantize=[n for n in matmuls if n not in set(kept)],
                     # the fused ops (com.microsoft domain) defeat onnx's shape inference: say their outputs are fp32
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})


def cache_dir() -> Path:
    root = os.environ.get("HIVEMIND_CACHE")
    if root:
        return Path(root)
    import platformdirs
    return Path(platformdirs.user_cache_dir("hivemind"))


def check_device(device: str, backend: str) -> None:
    """A GPU asked for where none exists is a clear error, not a silent CPU run."""
    if backend == "torch-fp16" and device != "cuda":
        raise HivemindError("embedder backend 'torch-fp16' runs on a GPU only: set `device: cuda` "
                            "(or use backend 'onnx-int8' for a fast CPU run)")
    if backend.startswith("onnx") and device != "cpu":
        raise HivemindError(f"embedder backend {backend!r} runs on the CPU here: set `device: cpu`, "
                            f"or use backend 'torch' / 'torch-fp16' with `device: cuda`")
    if device == "cuda":
        import torch
        if not torch.cuda.is_available():
            raise HivemindError("embedder `device: cuda` was asked for but no CUDA GPU is visible to torch; "
                                "set `device: cpu` (and backend 'onnx-int8' for speed)")


def place_torch_model(model, device: str, backend: str):
    """Move a loaded SentenceTransformer to its device and precision."""
    check_device(device, backend)
    if device == "cuda":
        model = model.to("cuda")
    if backend == "torch-fp16":
        model = model.half()
    return model


def _weights_file(folder: Path) -> Path | None:
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (folder / name).exists():
            return folder / name
    return None


def model_key(model) -> str:
    """A folder name for a model's exported graphs: its name and a hash of its weights file."""
    source = getattr(model[0].auto_model, "name_or_path", "") or "model"
    folder = Path(source)
    digest = hashlib.sha256()
    weights = _weights_file(folder) if folder.is_dir() else None
    if weights is not None:
        with open(weights, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    else:  # no local file: hash the parameters themselves (same weights, same key)
        for tensor in model[0].auto_model.state_dict().values():
            digest.update(tensor.detach().cpu().numpy().tobytes())
    return f"{folder.name or 'model'}-{digest.hexdigest()[:16]}"


def _check_mean_pooled(model) -> None:
    """The ONNX path re-does the pipeline after the transformer: mean pooling, then normalisation."""
    names = [type(module).__name__ for module in model]
    pooling = model[1] if len(model) > 1 else None
    mode = getattr(pooling, "pooling_mode", None)
    mean = mode == "mean" or mode == ["mean"] or getattr(pooling, "pooling_mode_mean_tokens", False)
    if names[:2] != ["Transformer", "Pooling"] or not mean or any(
            n not in ("Normalize",) for n in names[2:]):
        raise HivemindError(f"embedder backend 'onnx' supports Transformer + mean Pooling (+ Normalize) models; "
                            f"this one is {' + '.join(names)}: use backend 'torch'")


def export_onnx(model, backend: str, recipe: "Int8Recipe | None" = None) -> Path:
    """The cached ONNX graph of this model for `onnx` or `onnx-int8`; exported (offline) on first use.

    The int8 file is named by its recipe's tag, so a changed recipe is a new file, never a stale one."""
    recipe = recipe or INT8_RECIPE
    folder = cache_dir() / "onnx" / model_key(model)
    target = folder / (f"{backend}-{recipe.tag}.onnx" if backend == "onnx-int8" else f"{backend}.onnx")
    if target.exists():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    fp32 = folder / "onnx.onnx"
    if not fp32.exists():
        with _atomic(fp32) as tmp:
            _export(model, tmp)
    if backend == "onnx-int8":
        source = fused_graph(model, folder) if recipe.fused else fp32
        with _atomic(target) as tmp:
            quantize(source, tmp, recipe)
    return target


def _export(model, path: Path, attention: str | None = None) -> None:
    """torch.onnx.export of the model's transformer (fp32, opset 17) to `path`; `attention` picks the HF
    attention implementation for the export ('eager' gives the MatMul/Softmax pattern ORT can fuse)."""
    import warnings

    import torch
    transformer = model[0].auto_model.eval().float()
    before = getattr(transformer.config, "_attn_implementation", None)

    class LastHidden(torch.nn.Module):
        """Keyword arguments to the HF model and only the token states out: a plain ONNX signature."""
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    sample = model.tokenizer(["a sample sentence", "another"], padding=True, return_tensors="pt")
    args = tuple(sample.get(name, torch.zeros_like(sample["input_ids"])) for name in ONNX_INPUTS)
    axes = {name: {0: "batch", 1: "tokens"} for name in (*ONNX_INPUTS, "last_hidden_state")}
    try:
        if attention and before:
            transformer.set_attn_implementation(attention)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(LastHidden(transformer), args, str(path), input_names=list(ONNX_INPUTS),
                              output_names=["last_hidden_state"], dynamic_axes=axes, opset_version=17,
                              dynamo=False)
    finally:
        if attention and before:
            transformer.set_attn_implementation(before)


def fused_graph(model, folder: Path) -> Path:
    """The fp32 graph after ORT's BERT fusions, cached in `folder` as `onnx-fused.onnx` (see `Int8Recipe.fused`).

    Exported with eager attention: the SDPA export (`onnx.onnx`) hides the attention pattern behind a mask
    computation the fusion does not recognise. Each fused Attention node is renamed
    `/inner/encoder/layer.N/attention/self/qkv/Attention` (graph order is layer order), so `keep` items
    (`qkv`, `layerN`) find it. opt_level 0: only the transformer fusions here, in Python; the generic
    optimisations are left to the session (ORT_ENABLE_ALL), as for every graph."""
    import logging

    from onnxruntime.transformers import optimizer
    target = folder / "onnx-fused.onnx"
    if target.exists():
        return target
    logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)
    config = model[0].auto_model.config
    with tempfile.TemporaryDirectory(dir=folder) as scratch:
        raw = Path(scratch) / "eager.onnx"
        _export(model, raw, attention="eager")
        fused = optimizer.optimize_model(str(raw), model_type="bert", num_heads=config.num_attention_heads,
                                         hidden_size=config.hidden_size, opt_level=0)
        attention = [node for node in fused.model.graph.node if node.op_type == "Attention"]
        for layer, node in enumerate(attention):
            node.name = f"/inner/encoder/layer.{layer}/attention/self/qkv/Attention"
        with _atomic(target) as tmp:
            fused.save_model_to_file(str(tmp), use_external_data_format=False)   # adds the com.microsoft opset
    return target


class _atomic:
    """A temporary file beside `path`, renamed onto it only when the block succeeds."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self) -> Path:
        fd, name = tempfile.mkstemp(dir=self.path.parent, suffix=".onnx.tmp")
        os.close(fd)
        self.tmp = Path(name)
        return self.tmp

    def __exit__(self, kind, *rest) -> None:
        if kind is None:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)


def onnx_embed_pieces(model, backend: str, batch_size: int, recipe: "Int8Recipe | None" = None):
    """A function list[str] -> (n, d) L2-normalised float32 running the cached ONNX graph of `model`.

    Texts are sorted by length before batching (as sentence-transformers does), so a batch pads little."""
    ort = require("onnxruntime", "onnx", f"embedder backend {backend!r} (onnxruntime)")
    require("onnx", "onnx", f"embedder backend {backend!r} (onnx, to export the graph)")
    _check_mean_pooled(model)
    path = export_onnx(model, backend, recipe)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    tokenizer, limit = model.tokenizer, model.max_seq_length
    # sentence-transformers 6 renamed the method; the old name still works there but warns
    dimension = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    wanted = {i.name for i in session.get_inputs()}

    def embed(texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, dimension()), np.float32)
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.zeros((len(texts), dimension()), np.float32)
        for start in range(0, len(texts), batch_size):
            rows = order[start:start + batch_size]
            enc = tokenizer([texts[i] for i in rows], padding=True, truncation=True, max_length=limit,
                            return_tensors="np")
            feed = {name: enc[name].astype(np.int64) if name in enc else np.zeros_like(enc["input_ids"], np.int64)
                    for name in ONNX_INPUTS if name in wanted}
            states = session.run(None, feed)[0]
            mask = enc["attention_mask"][..., None].astype(np.float32)
            pooled = (states * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
            out[rows] = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return out
    return embed
