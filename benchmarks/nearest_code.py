"""Nearest-code search on one GPU: correctness first, then every method on every shape.

    python benchmarks/nearest_code.py [--shapes all|small] [--out results.json]

The fused fast mode is whatever ``nearest_code(..., fast=True)`` runs on this GPU (the Gluon
kernel on Hopper); the Triton kernel's fast mode is timed beside it. Fused exact is the default
mode (the certified search of ``certified_nearest_code`` where it is preferred, else the
three fp16 products of ``split_nearest_code``), timed beside the Triton kernel's tf32x3.

Prints, per shape (N, K, D): milliseconds (median of repeated runs, CUDA events via
triton.testing.do_bench; for the two small shapes also replayed from a CUDA graph one call at a
time, and back to back: many calls in one graph), the ratio of each method to the fused fast
kernel, and the extra GPU memory each method allocates; then a training-step comparison with
vector-quantize-pytorch.
The floor is 2·N·K·D FLOPs at the bf16 matrix-product rate this script measures (8192³).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable

import torch
import triton.testing
from vector_quantize_pytorch import VectorQuantize

from vqcodec.kernels import certified_nearest_code as certified
from vqcodec.kernels import nearest_code
from vqcodec.kernels import split_nearest_code as split
from vqcodec.kernels import triton_nearest_code as fused
from vqcodec.quantizers import VectorQuantizer

ANCHOR_SHAPES = [
    (65536, 1024, 128),
    (262144, 1024, 8),
    (65536, 16384, 256),
    (65536, 65536, 64),
    (65536, 262144, 256),
]
CHUNK_BYTES = 4 << 30  # plain-torch paths: at most 4 GiB of distances at a time


def bench(fn: Callable[[], object]) -> float:
    return triton.testing.do_bench(fn, warmup=50, rep=200, return_mode="median")


def captured(fn: Callable[[], object]) -> torch.cuda.CUDAGraph:
    """``fn`` captured into a CUDA graph, after a call that compiles and autotunes its kernels
    and one on a side stream (the warm-up CUDA graphs ask for)."""
    fn()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return graph


def graph_time(fn: Callable[[], object]) -> float:
    """Milliseconds per call when replayed from a CUDA graph: the kernels alone, without the
    Python and launch overhead that eager calls pay."""
    return bench(captured(fn).replay)


def stream_time(fn: Callable[[torch.Tensor], object], x: torch.Tensor, calls: int = 48) -> float:
    """Milliseconds per call for calls issued back to back, as in a model or a tokenising loop:
    ``calls`` calls captured into one CUDA graph (the way ``triton.testing.do_bench_cudagraph``
    times), so the graph's start and the timing events are spread over all of them. The calls
    cycle through copies of ``x`` that together take twice the L2 cache, so no call finds its
    input there from the call before. Best of ten replays."""
    l2_bytes = torch.cuda.get_device_properties(x.device).L2_cache_size
    copies = max(2, math.ceil(2 * l2_bytes / (x.numel() * x.element_size())))
    inputs = [x.clone() for _ in range(copies)]
    graph = captured(lambda: [fn(inputs[i % copies]) for i in range(calls)])
    graph.replay()
    torch.cuda.synchronize()
    times = []
    for _ in range(10):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / calls)
    return min(times)


def extra_memory(fn: Callable[[], object]) -> int:
    fn()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    fn()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - base


def matmul_rate(warm_seconds: float = 2.0) -> float:
    """bf16 matrix-product rate (FLOP/s) on random 8192³ inputs: the best of three medians,
    after ``warm_seconds`` of products so the clocks have ramped up from idle (a cold GPU
    measures a lower rate, which would flatter every ratio to the floor)."""
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    start = time.perf_counter()
    while time.perf_counter() - start < warm_seconds:
        a @ b
        torch.cuda.synchronize()
    return max(2 * 8192**3 / (bench(lambda: a @ b) * 1e-3) for _ in range(3))


def chunked(score: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, k: int) -> torch.Tensor:
    rows = max(1, CHUNK_BYTES // (4 * k))
    return torch.cat([score(x[i : i + rows]) for i in range(0, x.shape[0], rows)])


def torch_cdist(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    return chunked(lambda xs: torch.cdist(xs, c).argmin(1), x, c.shape[0])


def torch_matmul(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    half = 0.5 * c.float().pow(2).sum(1)
    return chunked(lambda xs: (xs @ c.T - half).argmax(1), x, c.shape[0])


def check(x: torch.Tensor, c: torch.Tensor, idx: torch.Tensor, rows: int = 4096) -> int:
    """Rows (of a random sample) whose chosen code is farther than the true nearest beyond
    float32 rounding, in float64."""
    pick = torch.randperm(x.shape[0], device=x.device)[:rows]
    xs, chosen = x[pick].double(), idx[pick]
    c64 = c.double()
    best = torch.full((xs.shape[0],), math.inf, device=x.device, dtype=torch.float64)
    for k0 in range(0, c.shape[0], 16384):
        best = torch.minimum(best, torch.cdist(xs, c64[k0 : k0 + 16384]).pow(2).min(1).values)
    chosen_d = (xs - c64[chosen]).pow(2).sum(1)
    scale = (xs.pow(2).sum(1) + c64.pow(2).sum(1).max()) * x.shape[1] * 2.0**-23
    return int(((chosen_d - best) > scale).sum())


def run_shape(n: int, k: int, d: int, rate: float) -> dict:
    x32 = torch.randn(n, d, device="cuda")
    c32 = torch.randn(k, d, device="cuda")
    x16, c16 = x32.bfloat16(), c32.bfloat16()
    row = {"shape": [n, k, d], "floor_ms": 2 * n * k * d / rate * 1e3}
    row["wrong_rows_fast"] = check(x16, c16, nearest_code(x16, c16, fast=True))
    row["wrong_rows_exact"] = check(x32, c32, nearest_code(x32, c32))
    row["wrong_rows_tf32x3"] = check(x32, c32, fused.nearest_code_triton(x32, c32, fast=False))
    row["wrong_rows_triton_fast"] = check(x16, c16, fused.nearest_code_triton(x16, c16, True))
    # exact mode on bf16 operands rounded to bf16 only differs from fast in accumulation/precision
    methods = {
        "fused fast (bf16)": lambda: nearest_code(x16, c16, fast=True),
        "Triton kernel fast (bf16)": lambda: fused.nearest_code_triton(x16, c16, fast=True),
        "fused exact (fp32 in)": lambda: nearest_code(x32, c32),
        "Triton exact tf32x3 (fp32 in)": lambda: fused.nearest_code_triton(x32, c32, fast=False),
        "torch.cdist fp32": lambda: torch_cdist(x32, c32),
        "torch matmul tf32": lambda: torch_matmul(x32, c32),
        "torch matmul bf16": lambda: torch_matmul(x16, c16),
    }
    vq = VectorQuantize(dim=d, codebook_size=k).cuda().eval()
    vq._codebook.embed.data.copy_(c32[None])
    methods["vector-quantize-pytorch"] = lambda: vq(x32[None])
    torch.backends.cuda.matmul.allow_tf32 = True
    for name, fn in methods.items():
        try:
            row[name] = {"ms": bench(fn), "extra_mib": extra_memory(fn) / 2**20}
        except torch.OutOfMemoryError:
            row[name] = {"ms": None, "extra_mib": None}
        torch.cuda.empty_cache()
    row["fused fast, CUDA graph ms"] = graph_time(methods["fused fast (bf16)"])
    if n * k * d <= 2**34:
        # Small shapes: the torch paths replayed from CUDA graphs too, so that the ratio to
        # the graph-replayed kernel compares kernels alone on both sides.
        row["best torch, CUDA graph ms"] = min(
            graph_time(methods[name]) for name in methods if name.startswith("torch")
        )
        # And both issued back to back (no graph start or timing events per call).
        row["fused fast, back to back ms"] = stream_time(
            lambda xs: nearest_code(xs, c16, fast=True), x16
        )
        row["best torch, back to back ms"] = min(
            stream_time(lambda xs: torch_cdist(xs, c32), x32),
            stream_time(lambda xs: torch_matmul(xs, c32), x32),
            stream_time(lambda xs: torch_matmul(xs, c16), x16),
        )
    torch.backends.cuda.matmul.allow_tf32 = False
    row["config_fast"] = str(fused._fast_kernel.best_config)
    row["config_exact"] = str(fused._exact_kernel.best_config)
    row["config_certified"] = str(getattr(certified._candidates, "best_config", None))
    row["config_split"] = str(getattr(split._search_kernel, "best_config", None))
    print(
        f"{row['shape']}: fast {row['fused fast (bf16)']}, exact {row['fused exact (fp32 in)']}, "
        f"configs {row['config_fast']} / {row['config_exact']}",
        flush=True,
    )
    return row


def training_step(n: int = 65536, k: int = 16384, d: int = 256) -> dict:
    results = {}
    z = torch.randn(n // 1024, d, 1024, device="cuda")
    ours = VectorQuantizer(d, k).cuda()  # rotation trick + EMA (defaults)
    theirs = VectorQuantize(dim=d, codebook_size=k, rotation_trick=True, decay=0.99).cuda()

    def step_ours() -> None:
        zz = z.detach().requires_grad_()
        out = ours(zz)
        (out.z_q.square().mean() + out.loss).backward()

    def step_theirs() -> None:
        zz = z.transpose(1, 2).detach().requires_grad_()
        quantized, _, loss = theirs(zz)
        (quantized.square().mean() + loss.sum()).backward()

    for name, fn in {
        "vqcodec VectorQuantizer": step_ours,
        "vector-quantize-pytorch": step_theirs,
    }.items():
        try:
            results[name] = {"ms": bench(fn), "extra_mib": extra_memory(fn) / 2**20}
        except torch.OutOfMemoryError:
            results[name] = {"ms": None, "extra_mib": None}
        torch.cuda.empty_cache()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", choices=["all", "small"], default="all")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.manual_seed(0)
    rate = matmul_rate()
    print(
        f"GPU: {torch.cuda.get_device_name()}, torch {torch.__version__}, "
        f"bf16 matmul {rate / 1e12:.0f} TFLOP/s"
    )
    shapes = ANCHOR_SHAPES if args.shapes == "all" else ANCHOR_SHAPES[:2]
    rows = [run_shape(n, k, d, rate) for n, k, d in shapes]
    step = training_step()
    rate_after = matmul_rate(warm_seconds=0.0)
    print(
        f"bf16 matmul rate at the end of the run: {rate_after / 1e12:.0f} TFLOP/s "
        f"(floors use the start's {rate / 1e12:.0f})"
    )
    names = [
        "fused fast (bf16)",
        "Triton kernel fast (bf16)",
        "fused exact (fp32 in)",
        "Triton exact tf32x3 (fp32 in)",
        "torch.cdist fp32",
        "torch matmul tf32",
        "torch matmul bf16",
        "vector-quantize-pytorch",
    ]
    print(
        "\n| N, K, D | floor ms | "
        + " | ".join(f"{m} ms" for m in names)
        + " | fast/floor | Triton/fast | best torch/fast | vq-pytorch/fast | exact/fast"
        + " | tf32x3/exact | wrong rows fast/Triton fast/exact/tf32x3 |"
    )
    print("|---" * (len(names) + 9) + "|")
    for row in rows:
        ms = {m: row[m]["ms"] for m in names}
        fast = ms["fused fast (bf16)"]
        best_torch = min(v for m, v in ms.items() if m.startswith("torch") and v is not None)
        vqp = ms["vector-quantize-pytorch"]
        cells = [f"{v:.3f}" if v is not None else "OOM" for v in ms.values()]
        print(
            f"| {', '.join(f'{s:,}' for s in row['shape'])} | {row['floor_ms']:.3f} | "
            + " | ".join(cells)
            + f" | {fast / row['floor_ms']:.2f} | {ms['Triton kernel fast (bf16)'] / fast:.2f}"
            + f" | {best_torch / fast:.1f} | "
            + (f"{vqp / fast:.1f}" if vqp else "OOM")
            + f" | {ms['fused exact (fp32 in)'] / fast:.2f}"
            + f" | {ms['Triton exact tf32x3 (fp32 in)'] / ms['fused exact (fp32 in)']:.2f}"
            + f" | {row['wrong_rows_fast']}/{row['wrong_rows_triton_fast']}/"
            + f"{row['wrong_rows_exact']}/{row['wrong_rows_tf32x3']} of 4096 |"
        )
    print(
        "\nfused fast replayed from a CUDA graph (kernels only), ms: "
        + ", ".join(f"{row['shape']}: {row['fused fast, CUDA graph ms']:.3f}" for row in rows)
    )
    for row in rows:
        if "best torch, CUDA graph ms" in row:
            graph_fast, graph_torch = (
                row["fused fast, CUDA graph ms"],
                row["best torch, CUDA graph ms"],
            )
            print(
                f"  {row['shape']}, both replayed from CUDA graphs: best torch {graph_torch:.3f} ms"
                f" = {graph_torch / graph_fast:.1f} x fused fast; fused fast = "
                f"{graph_fast / row['floor_ms']:.2f} x floor"
            )
            stream_fast, stream_torch = (
                row["fused fast, back to back ms"],
                row["best torch, back to back ms"],
            )
            print(
                f"  {row['shape']}, both back to back: fused fast {stream_fast:.3f} ms = "
                f"{stream_fast / row['floor_ms']:.2f} x floor; best torch {stream_torch:.3f} ms = "
                f"{stream_torch / stream_fast:.1f} x fused fast"
            )
    print("\nextra GPU memory (MiB):")
    for row in rows:
        print(
            f"  {row['shape']}: "
            + ", ".join(
                f"{m}: {row[m]['extra_mib']:.0f}"
                if row[m]["extra_mib"] is not None
                else f"{m}: OOM"
                for m in names
            )
        )
    print("\ntraining step (forward + backward, rotation trick, EMA), N=65,536, K=16,384, D=256:")
    for name, r in step.items():
        print(
            f"  {name}: "
            + (f"{r['ms']:.2f} ms, peak extra {r['extra_mib']:.0f} MiB" if r["ms"] else "OOM")
        )
    if args.out:
        with open(args.out, "w") as f:
            json.dump(
                {"gpu": torch.cuda.get_device_name(), "rate": rate, "shapes": rows, "step": step},
                f,
                indent=1,
            )


if __name__ == "__main__":
    main()
