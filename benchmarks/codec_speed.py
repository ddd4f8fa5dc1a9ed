"""Coding speed of the shipped codecs on one device, side by side with EnCodec's architecture.

    pip install encodec  # the reference architecture only; not a vqcodec dependency
    python benchmarks/codec_speed.py [--device cpu|cuda] [--seconds 10] [--megapixels 1]

Audio: ``audio-24k`` at 6 kb/s (all 8 levels) against EnCodec's 24 kHz model (the ``encodec``
package's architecture with random weights: speed does not depend on the weights) at 6 kb/s,
both on the same clip, as real-time factors (seconds of audio coded per second; higher is
faster). Rows: the networks alone (``encode``/``decode`` on tensors) and, for vqcodec, the whole
file path (``compress_audio``/``decompress_audio``: resampling, chunking, entropy coding).
Images: ``image`` at all levels, seconds per megapixel for the networks and for the whole file
path (tiles, entropy coding). Each figure is the median of ``--repeats`` timed runs after one
untimed warm-up run.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

import vqcodec
from vqcodec.bitstream.audio import compress_audio, decompress_audio
from vqcodec.bitstream.image import compress_image, decompress_image


def timed(function: Callable[[], object], device: str, repeats: int) -> float:
    """Median seconds of ``function()`` (after one warm-up call), synchronising CUDA."""

    def once() -> float:
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        function()
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    once()
    return statistics.median(once() for _ in range(repeats))


def test_signal(seconds: float, rate: int) -> torch.Tensor:
    """A speech-like test signal ``[1, T]``: harmonics with a wandering pitch plus noise."""
    generator = torch.Generator().manual_seed(0)
    t = torch.arange(int(seconds * rate)) / rate
    pitch = 140 + 30 * torch.sin(2 * torch.pi * 0.7 * t)
    phase = 2 * torch.pi * torch.cumsum(pitch, 0) / rate
    voice = sum(torch.sin(k * phase) / k for k in range(1, 12))
    noise = 0.05 * torch.randn(t.shape, generator=generator)
    return (0.1 * voice + noise)[None].float()


@torch.inference_mode()
def audio_rows(device: str, seconds: float, repeats: int) -> list[tuple[str, float, float]]:
    from encodec import EncodecModel

    rows = []
    ours = vqcodec.load("audio-24k").to(device)
    audio = test_signal(seconds, 24000)
    x = audio[None].to(device)
    codes = ours.encode(x, num_levels=ours.levels_for_bitrate(6))
    rows.append(
        (
            "vqcodec audio-24k, networks",
            seconds / timed(lambda: ours.encode(x, num_levels=codes.shape[1]), device, repeats),
            seconds / timed(lambda: ours.decode(codes), device, repeats),
        )
    )
    data = compress_audio(ours, audio, 24000, num_levels=codes.shape[1])
    rows.append(
        (
            "vqcodec audio-24k, .vqc files",
            seconds
            / timed(lambda: compress_audio(ours, audio, 24000, codes.shape[1]), device, repeats),
            seconds / timed(lambda: decompress_audio(data, ours), device, repeats),
        )
    )
    theirs = EncodecModel.encodec_model_24khz(pretrained=False).to(device).eval()
    theirs.set_target_bandwidth(6.0)
    frames = theirs.encode(x)
    rows.append(
        (
            "EnCodec 24 kHz architecture, networks",
            seconds / timed(lambda: theirs.encode(x), device, repeats),
            seconds / timed(lambda: theirs.decode(frames), device, repeats),
        )
    )
    return rows


@torch.inference_mode()
def image_rows(
    device: str, megapixels: float, repeats: int, name: str = "image"
) -> list[tuple[str, float, float]]:
    model = vqcodec.load(name).to(device)
    side = int((megapixels * 1e6) ** 0.5)
    y, x = torch.meshgrid(torch.linspace(0, 1, side), torch.linspace(0, 1, side), indexing="ij")
    generator = torch.Generator().manual_seed(0)
    picture = torch.stack([x, y, (x + y) / 2]) + 0.05 * torch.randn(
        3, side, side, generator=generator
    )
    picture = picture.clamp(0, 1)
    mp = side * side / 1e6
    batch = picture[None].to(device)
    codes = model.encode_tiled(batch)
    data = compress_image(model, picture)
    return [
        (
            f"vqcodec {name}, networks (tiled), {side}x{side}",
            timed(lambda: model.encode_tiled(batch), device, repeats) / mp,
            timed(lambda: model.decode_tiled(codes), device, repeats) / mp,
        ),
        (
            f"vqcodec {name}, .vqc files, {side}x{side}",
            timed(lambda: compress_image(model, picture), device, repeats) / mp,
            timed(lambda: decompress_image(data, model), device, repeats) / mp,
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--megapixels", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--image-models", default="image", help="comma-separated image model names or folders"
    )
    parser.add_argument("--no-audio", action="store_true", help="time the image models only")
    args = parser.parse_args()
    name = (
        torch.cuda.get_device_name()
        if args.device == "cuda"
        else f"CPU, {torch.get_num_threads()} threads"
    )
    print(f"# {name}, torch {torch.__version__}, {args.seconds:g} s clip, median of {args.repeats}")
    if not args.no_audio:
        print("\n| audio at 6 kb/s | encode × real time | decode × real time |")
        print("|---|---:|---:|")
        audio = audio_rows(args.device, args.seconds, args.repeats)
        for label, encode, decode in audio:
            print(f"| {label} | {encode:.1f} | {decode:.1f} |")
        ours, theirs = audio[0], audio[-1]
        both = (1 / theirs[1] + 1 / theirs[2]) / (1 / ours[1] + 1 / ours[2])
        print(f"\nencode+decode, networks: vqcodec is {both:.2f}x EnCodec's speed")
    print("\n| image | encode s/MP | decode s/MP |")
    print("|---|---:|---:|")
    for name in args.image_models.split(","):
        for label, encode, decode in image_rows(args.device, args.megapixels, args.repeats, name):
            print(f"| {label} | {encode:.3f} | {decode:.3f} |")


if __name__ == "__main__":
    main()
