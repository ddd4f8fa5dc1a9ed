"""Bitstream throughput and size, one CPU core, per coder.

    python benchmarks/bitstream.py [--codebook-size 1024] [--levels 8] [--frames 32768]

Synthetic codes until a trained codec exists: per plane a peaked marginal (entropy printed),
each code repeats the previous frame's with probability 0.3, and depends on the previous
plane's code with probability 0.3 (as residual levels do). Tables are fitted on a separate draw
of the same process. Times cover pack_codes / unpack_codes end to end (header, CRCs, coding);
each figure is the best of five runs.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from vqcodec.bitstream import CodeLayout, CodeTables, pack_codes, read_code_header, unpack_codes


def synthetic_codes(batch: int, levels: int, frames: int, k: int, seed: int) -> torch.Tensor:
    logits = torch.randn(levels, k, generator=torch.Generator().manual_seed(k))
    probs = torch.softmax(2.0 * logits, dim=-1)
    generator = torch.Generator().manual_seed(seed)
    codes = torch.empty(batch, levels, frames, dtype=torch.int64)
    mapping = torch.randperm(k, generator=torch.Generator().manual_seed(1))
    for q in range(levels):
        fresh = torch.multinomial(probs[q], batch * frames, replacement=True, generator=generator)
        plane = fresh.reshape(batch, frames)
        if q > 0:
            follows = torch.rand(batch, frames, generator=generator) < 0.3
            plane = torch.where(follows, mapping[codes[:, q - 1]], plane)
        repeats = torch.rand(batch, frames, generator=generator) < 0.3
        for t in range(1, frames):
            plane[:, t] = torch.where(repeats[:, t], plane[:, t - 1], plane[:, t])
        codes[:, q] = plane
    return codes


def best_of(fn, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codebook-size", type=int, default=1024)
    parser.add_argument("--levels", type=int, default=8)
    parser.add_argument("--frames", type=int, default=32768)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(1)
    k = args.codebook_size
    train = synthetic_codes(args.batch, args.levels, args.frames, k, seed=1)
    codes = synthetic_codes(args.batch, args.levels, args.frames, k, seed=2)
    tables = CodeTables.fit([train], [k] * args.levels)
    layout = CodeLayout.for_codes(codes, k)
    n = codes.numel()
    marginal = np.bincount(codes.numpy().reshape(-1), minlength=k) / n
    entropy = float(-(marginal[marginal > 0] * np.log2(marginal[marginal > 0])).sum())
    print(
        f"{n:,} codes ({args.batch}×{args.levels}×{args.frames}), K = {k}, "
        f"marginal entropy {entropy:.2f} bits, 1 thread, torch {torch.__version__}"
    )
    print("| coder | bits/code | encode M codes/s | decode M codes/s | chosen per stream |")
    print("|---|---|---|---|---|")
    for name, coders in [
        ("raw", ("raw",)),
        ("static", ("static",)),
        ("repeat", ("repeat",)),
        ("level", ("level",)),
        ("best per stream", ("raw", "static", "repeat", "level")),
    ]:
        use_tables = tables if coders != ("raw",) else None
        data = pack_codes(codes, layout, use_tables, coders=coders)
        decoded, _ = unpack_codes(data, use_tables)
        assert torch.equal(decoded, codes)
        encode = best_of(lambda: pack_codes(codes, layout, use_tables, coders=coders))
        decode = best_of(lambda: unpack_codes(data, use_tables))
        chosen = [s["coder"] for s in read_code_header(data)["codes"]["streams"]]
        summary = ", ".join(f"{c}×{chosen.count(c)}" for c in dict.fromkeys(chosen))
        print(
            f"| {name} | {len(data) * 8 / n:.3f} | {n / encode / 1e6:.1f} | {n / decode / 1e6:.1f} | {summary} |"
        )


if __name__ == "__main__":
    main()
