"""Rate and distortion of an audio model on a folder of lossless files, from real .vqc files.

    python benchmarks/audio_codec.py [--model audio-24k] [--data ../shared/data/speech/dev]

For each file and bitrate: compress to .vqc bytes (kb/s from the byte count), decompress, and
compare with the original at its own rate: log-mel distance (the training loss's multi-scale
mel L1 at 24 kHz) and SI-SDR. Also encode/decode speed (real-time factor) on this CPU.
"""

from __future__ import annotations

import argparse
import time

import soundfile
import torch

from vqcodec.bitstream.audio import compress_audio, decompress_audio
from vqcodec.checkpoint import load
from vqcodec.codecs.audio import resample
from vqcodec.train.data import find_audio_files
from vqcodec.train.losses import MultiScaleMelLoss


def si_sdr(estimate: torch.Tensor, reference: torch.Tensor) -> float:
    reference, estimate = reference - reference.mean(), estimate - estimate.mean()
    target = (estimate @ reference) / reference.pow(2).sum().clamp_min(1e-12) * reference
    return float(
        10 * torch.log10(target.pow(2).sum() / (estimate - target).pow(2).sum().clamp_min(1e-12))
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="audio-24k")
    parser.add_argument("--data", default="../shared/data/speech/dev")
    parser.add_argument("--bitrates", default="1.5,3,6")
    args = parser.parse_args()
    torch.set_num_threads(2)
    model = load(args.model)
    mel = MultiScaleMelLoss(24000)
    files = find_audio_files([args.data])
    print(
        f"model {args.model}, {len(files)} files from {args.data}, torch {torch.__version__}, 2 CPU threads"
    )
    print(
        "| target kb/s | levels | measured kb/s (.vqc bytes) | log-mel distance | SI-SDR dB | encode × real time | decode × real time |"
    )
    print("|---|---|---|---|---|---|---|")
    for kbps in map(float, args.bitrates.split(",")):
        levels = model.levels_for_bitrate(kbps)
        bits = seconds = mels = sdrs = enc_t = dec_t = 0.0
        for path in files:
            data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
            audio = torch.from_numpy(data.T.copy())
            start = time.perf_counter()
            coded = compress_audio(model, audio, rate, num_levels=levels)
            enc_t += time.perf_counter() - start
            start = time.perf_counter()
            decoded, _ = decompress_audio(coded, model)
            dec_t += time.perf_counter() - start
            duration = audio.shape[-1] / rate
            bits, seconds = bits + 8 * len(coded), seconds + duration
            reference = resample(audio.mean(0, keepdim=True), rate, 24000)
            estimate = resample(decoded.mean(0, keepdim=True), rate, 24000)
            mels += float(mel(estimate[None], reference[None])) * duration
            sdrs += si_sdr(decoded.mean(0), audio.mean(0)) * duration
        print(
            f"| {kbps:g} | {levels} | {bits / seconds / 1000:.2f} | {mels / seconds:.3f} | {sdrs / seconds:.1f} | "
            f"{seconds / enc_t:.0f} | {seconds / dec_t:.0f} |"
        )


if __name__ == "__main__":
    main()
