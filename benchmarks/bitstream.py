"""Bitstream throughput and size, one CPU core, per coder.

    python benchmarks/bitstream.py [--codebook-size 1024] [--levels 8] [--frames 32768]
    python benchmarks/bitstream.py --model audio-24k --data ../shared/data/speech/dev

The second form takes real codes: the model's codes of every file under --data (whole files,
channels mixed, no padding), each file coded as its own .vqc with the tables shipped with the
model; sizes and times are summed over files.

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


def model_codes(name: str, data: str) -> tuple[list[torch.Tensor], CodeTables]:
    """Codes ``[1, Q, frames]`` of each whole file, and the model's tables."""
    import soundfile

    from vqcodec.bitstream.audio import encode_audio
    from vqcodec.checkpoint import load
    from vqcodec.codecs.audio import resample
    from vqcodec.train.data import find_audio_files

    model = load(name)
    rate = model.config.sample_rate
    codes = []
    for path in find_audio_files([data]):
        audio, source_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
        mono = resample(torch.from_numpy(audio.T.copy()).mean(0, keepdim=True), source_rate, rate)
        codes.append(encode_audio(model, mono))
    return codes, model.code_tables


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
    parser.add_argument("--model", default=None, help="take real codes from this model")
    parser.add_argument("--data", default="../shared/data/speech/dev")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.model:
        files, tables = model_codes(args.model, args.data)
        k = tables.codebook_sizes[0]
    else:
        k = args.codebook_size
        train = synthetic_codes(args.batch, args.levels, args.frames, k, seed=1)
        files = [synthetic_codes(args.batch, args.levels, args.frames, k, seed=2)]
        tables = CodeTables.fit([train], [k] * args.levels)
    n = sum(c.numel() for c in files)
    flat = torch.cat([c.reshape(-1) for c in files]).numpy()
    marginal = np.bincount(flat, minlength=k) / n
    entropy = float(-(marginal[marginal > 0] * np.log2(marginal[marginal > 0])).sum())
    print(
        f"{n:,} codes in {len(files)} file(s), K = {k}, marginal entropy {entropy:.2f} bits, "
        f"1 thread, torch {torch.__version__}"
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
        layouts = [CodeLayout.for_codes(c, k) for c in files]
        datas = [pack_codes(c, lay, use_tables, coders=coders) for c, lay in zip(files, layouts)]
        for c, data in zip(files, datas):
            assert torch.equal(unpack_codes(data, use_tables)[0], c)
        encode = best_of(
            lambda: [
                pack_codes(c, lay, use_tables, coders=coders) for c, lay in zip(files, layouts)
            ]
        )
        decode = best_of(lambda: [unpack_codes(d, use_tables) for d in datas])
        chosen = [s["coder"] for d in datas for s in read_code_header(d)["codes"]["streams"]]
        summary = ", ".join(f"{c}×{chosen.count(c)}" for c in dict.fromkeys(chosen))
        size = sum(len(d) for d in datas)
        print(
            f"| {name} | {size * 8 / n:.3f} | {n / encode / 1e6:.1f} | {n / decode / 1e6:.1f} | {summary} |"
        )


if __name__ == "__main__":
    main()
