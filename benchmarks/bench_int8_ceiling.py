"""How fast can int8 make the embedder on this CPU at best? An Amdahl ceiling, measured in one run.

Issue 11's target is ONNX int8 embedding at least 2x torch fp32 `encode` on the CPU. int8 speeds up only
the MatMuls that have a weight (per encoder layer: Q, K, V and attention output, hidden x hidden; FFN in,
hidden x intermediate; FFN out, intermediate x hidden). Everything else (embeddings, attention scores and
softmax, LayerNorm, GELU, pooling, tokenisation) stays fp32. So with

    f = share of torch fp32 `encode` time inside nn.Linear (torch profiler, real texts)
    g = torch fp32 time / ONNX Runtime int8 time for the same MatMuls, at the model's own shapes
        (M = batch x mean tokens of the real texts), FLOP-weighted over one layer's six MatMuls

no int8 recipe can beat, end to end,

    ceiling = 1 / ((1 - f) + f / g)

even if every fp32 op outside the MatMuls ran exactly as fast as torch's. The int8 MatMul is what
`quantize_dynamic` emits (DynamicQuantizeLinear on the activations, then MatMulInteger with per-column s8
weights and the rescale), which ONNX Runtime fuses into DynamicQuantizeMatMul: exactly the kernel
`onnx-int8` runs, timed on its own. `g` depends on the CPU's int8 instructions: without AVX-512 VNNI or
AVX-VNNI (this project's AMD EPYC machines have AVX2 only), u8 x s8 products go through vpmaddubsw +
vpmaddwd, two instructions per 32 multiply-adds, against one FMA per 8 in fp32.

The script also prints how much faster than torch's everything outside the MatMuls would have to run
for 2x: the ceiling assumes it runs as fast as torch's; a fused ONNX graph (Attention, BiasGelu,
SkipLayerNorm) can do somewhat better, which is why `-fused` recipes come closer to (or pass) the ceiling.

The default recipe keeps the FFN-output MatMuls in fp32 (accuracy), so its own ceiling, printed beside,
takes g = 1 for those. The end-to-end ratio of `onnx-int8` (default recipe) measured in the same run is
printed last (with the fused, all-int8 recipe beside it), for comparison with both ceilings.

    .venv/bin/python benchmarks/bench_int8_ceiling.py [--prompts 16] [--batch 64] [--repeats 7] [--rounds 3]
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from bench_backends import DATA, encoder, load_answers, model_path, time_rounds  # noqa: E402

# the rest of torch's forward pass, by op, for the printed breakdown
OTHER_OPS = {"attention (SDPA)": "aten::_scaled_dot_product_flash_attention_for_cpu", "GELU": "aten::gelu",
             "LayerNorm": "aten::native_layer_norm", "residual add": "aten::add"}


def linear_share(model, texts: list[str], batch: int) -> tuple[float, dict[str, float]]:
    """f: the share of `encode`'s wall time inside nn.Linear (`aten::linear`: the GEMM and its bias, the
    weight MatMuls that int8 replaces), and the shares of the other big ops (self time)."""
    from torch.profiler import ProfilerActivity, profile

    model.encode(texts[:batch], batch_size=batch)                      # warm-up
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        model.encode(texts, batch_size=batch, show_progress_bar=False)
        wall = time.perf_counter() - start
    events = {e.key: e for e in prof.key_averages()}
    linear = events["aten::linear"].cpu_time_total / 1e6 if "aten::linear" in events else 0.0
    others = {name: events[op].self_cpu_time_total / 1e6 / wall for name, op in OTHER_OPS.items() if op in events}
    return linear / wall, others


def one_matmul(k: int, n: int, folder: Path, rng: np.random.Generator) -> tuple[np.ndarray, Path, Path]:
    """A (k, n) weight, a one-MatMul fp32 ONNX graph of it, and that graph after quantize_dynamic (per channel, s8)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().setLevel(logging.ERROR)                       # quantize_dynamic's pre-processing hint
    weight = (rng.standard_normal((k, n)) * 0.05).astype(np.float32)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["m", k])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["m", n])
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="matmul")], "g", [x], [y],
                              [numpy_helper.from_array(weight, "w")])
    fp32, int8 = folder / f"fp32-{k}x{n}.onnx", folder / f"int8-{k}x{n}.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(fp32))
    quantize_dynamic(str(fp32), str(int8), per_channel=True, weight_type=QuantType.QInt8)
    return weight, fp32, int8


def fastest_pair(first, second, repeats: int) -> tuple[float, float]:
    """Each function's fastest of `repeats` calls, the two alternating (after one warm-up call each), so a
    change in the machine's other load falls on both: the kernels' speeds, not the load's."""
    first(), second()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for fn, out in ((first, times[0]), (second, times[1])):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
    return min(times[0]), min(times[1])


def gemm_ratios(m: int, shapes: list[tuple[int, int]], repeats: int) -> dict[tuple[int, int], tuple[float, float]]:
    """Per (k, n): seconds of torch fp32 `linear` and of the ONNX Runtime int8 MatMul on an (m, k) input."""
    import onnxruntime as ort
    import torch

    rng = np.random.default_rng(0)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    out = {}
    with tempfile.TemporaryDirectory() as scratch, torch.no_grad():
        for k, n in shapes:
            weight, _, int8 = one_matmul(k, n, Path(scratch), rng)
            x = rng.standard_normal((m, k)).astype(np.float32)
            session = ort.InferenceSession(str(int8), options, providers=["CPUExecutionProvider"])
            xt, wt = torch.from_numpy(x), torch.from_numpy(np.ascontiguousarray(weight.T))
            bias = torch.zeros(n)
            out[(k, n)] = fastest_pair(lambda: torch.nn.functional.linear(xt, wt, bias),
                                       lambda: session.run(None, {"x": x}), repeats)
    return out


def ceiling(f: float, g: float) -> float:
    return 1.0 / ((1.0 - f) + f / g)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=16, help="instructions (x16 models = texts)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=7, help="GEMM timings per shape, alternating (fastest kept)")
    parser.add_argument("--rounds", type=int, default=3, help="end-to-end interleaved rounds (median)")
    parser.add_argument("--variants", default="onnx-int8@cpu,onnx-int8:matmul-pc-s8-fused@cpu",
                        help="int8 variants timed end to end beside torch fp32 (bench_backends.py syntax)")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--model", default=None, help="model folder (default: the bundled all-MiniLM-L6-v2)")
    args = parser.parse_args()

    from sentence_transformers import SentenceTransformer

    from hivemind.embed.backends import INT8_RECIPE
    texts, _, _ = load_answers(args.data, args.prompts)
    path = model_path(args.model)
    model = SentenceTransformer(path, device="cpu").float()
    config = model[0].auto_model.config
    hidden, inter = config.hidden_size, config.intermediate_size
    tokens = model.tokenizer(texts, truncation=True, max_length=model.max_seq_length)["input_ids"]
    mean_tokens = float(np.mean([len(t) for t in tokens]))
    m = int(args.batch * mean_tokens)
    flags = open("/proc/cpuinfo").read() if Path("/proc/cpuinfo").exists() else ""
    vnni = [name for name in ("avx512_vnni", "avx_vnni", "amx_int8") if f" {name}" in flags]
    print(f"{len(texts)} real AlpacaEval answers, mean {mean_tokens:.0f} tokens (cut at {model.max_seq_length}), "
          f"batch {args.batch} -> GEMM rows m = {m}; cpu cores {os.cpu_count()}, int8 dot-product instructions: "
          f"{', '.join(vnni) or 'none (AVX2 vpmaddubsw only)'}; load {os.getloadavg()[0]:.2f}")

    f, others = linear_share(model, texts, args.batch)
    # one layer's weight MatMuls: Q, K, V, attention output (hidden x hidden), FFN in, FFN out
    layer = {"qkv+attn out": ((hidden, hidden), 4), "ffn in": ((hidden, inter), 1), "ffn out": ((inter, hidden), 1)}
    times = gemm_ratios(m, [shape for shape, _ in layer.values()], args.repeats)
    print(f"{'MatMul':<14}{'(k, n)':>12}{'per layer':>10}{'torch fp32 GFLOP/s':>20}{'int8 GFLOP/s':>14}{'int8 / torch':>14}")
    for name, (shape, count) in layer.items():
        torch_s, int8_s = times[shape]
        flops = 2 * m * shape[0] * shape[1] / 1e9
        print(f"{name:<14}{str(shape):>12}{count:>10}{flops / torch_s:>20.1f}{flops / int8_s:>14.1f}"
              f"{torch_s / int8_s:>14.2f}")
    torch_total = sum(times[shape][0] * count for shape, count in layer.values())
    all_int8 = sum(times[shape][1] * count for shape, count in layer.values())
    keep_ffnout = sum(times[shape][0 if name == "ffn out" else 1] * count for name, (shape, count) in layer.items())
    g_all, g_default = torch_total / all_int8, torch_total / keep_ffnout
    print(f"f (share of torch encode time in nn.Linear) = {f:.3f}; the rest: "
          + ", ".join(f"{name} {share:.3f}" for name, share in others.items())
          + f", other ops and tokenisation {1 - f - sum(others.values()):.3f}")
    print(f"g (FLOP-weighted int8 / torch MatMul speed-up): every MatMul {g_all:.2f}x; "
          f"FFN out kept fp32 (default recipe) {g_default:.2f}x")
    print(f"ceiling, every MatMul int8: {ceiling(f, g_all):.2f}x; default recipe {INT8_RECIPE.tag}: "
          f"{ceiling(f, g_default):.2f}x (target 2x)")
    # 2x means int8 time <= torch time / 2: the MatMuls take f/g of it, the rest must fit in what is left
    for label, g in (("every MatMul int8", g_all), ("default recipe", g_default)):
        left = 0.5 - f / g
        need = f"{(1 - f) / left:.1f}x faster than torch's" if left > 0 else "impossible (the MatMuls alone exceed it)"
        print(f"for 2x with {label}, everything outside the MatMuls would have to run {need}")

    encoders = {variant: encoder(path, variant, args.batch) for variant in ["torch@cpu", *args.variants.split(",")]}
    for run in encoders.values():
        run(texts[:args.batch])
    _, rates, ratios = time_rounds(encoders, texts, args.rounds)
    print(f"measured end to end, {args.rounds} interleaved rounds (onnx-int8 = {INT8_RECIPE.tag}): "
          + ", ".join(f"{name} {rates[name]:.1f} texts/s ({ratios[name]:.2f}x)" for name in encoders)
          + f"; load at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
