"""Rate-distortion of an audio model (and of Opus) on a folder of lossless files.

Rates come from real file sizes: ``.vqc`` bytes for the model, Ogg Opus bytes for Opus. Each
metric is averaged over files weighted by duration.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import soundfile
import torch
from torch import Tensor

from vqcodec.eval import metrics


@dataclass
class RatePoint:
    """One codec at one setting, averaged over the files."""

    codec: str
    setting: str
    kbps: float
    log_mel: float
    stft: float
    si_sdr: float
    stoi: float
    pesq: float
    files: int


def _score(decoded: Tensor, audio: Tensor, rate: int) -> dict[str, float]:
    estimate, reference = decoded.mean(0), audio.mean(0)
    return {
        "log_mel": metrics.log_mel_distance(estimate, reference, rate),
        "stft": metrics.stft_distance(estimate, reference, rate),
        "si_sdr": metrics.si_sdr(estimate, reference),
        "stoi": metrics.stoi(estimate, reference, rate),
        "pesq": metrics.pesq_wideband(estimate, reference, rate),
    }


def rate_point(
    codec: str,
    setting: str,
    files: list[Path],
    round_trip: Callable[[Tensor, int], tuple[Tensor, int]],
    progress: Callable[[Iterable], Iterable] = iter,
) -> RatePoint:
    """Average metrics of ``round_trip(audio [C, T], rate) -> (decoded, bytes)`` over files."""
    totals: dict[str, float] = {}
    seconds = bits = 0.0
    for path in progress(files):
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
        audio = torch.from_numpy(data.T.copy())
        decoded, size = round_trip(audio, rate)
        duration = audio.shape[-1] / rate
        seconds, bits = seconds + duration, bits + 8 * size
        for name, value in _score(decoded, audio, rate).items():
            if not math.isnan(value):
                weight, total = totals.get(name, (0.0, 0.0))
                totals[name] = (weight + duration, total + value * duration)
    mean = {name: total / weight for name, (weight, total) in totals.items()}
    nan = math.nan
    return RatePoint(
        codec, setting, bits / seconds / 1000, mean.get("log_mel", nan), mean.get("stft", nan),
        mean.get("si_sdr", nan), mean.get("stoi", nan), mean.get("pesq", nan), len(files),
    )  # fmt: skip


def model_round_trip(model: torch.nn.Module, num_levels: int):
    """``round_trip`` for :func:`rate_point` through real ``.vqc`` bytes."""
    from vqcodec.bitstream.audio import compress_audio, decompress_audio

    def run(audio: Tensor, rate: int) -> tuple[Tensor, int]:
        data = compress_audio(model, audio, rate, num_levels=num_levels)
        return decompress_audio(data, model)[0], len(data)

    return run


def opus_round_trip(kbps: float):
    """``round_trip`` for :func:`rate_point` through real Ogg Opus files."""
    from vqcodec.eval.opus import opus_round_trip as opus

    return lambda audio, rate: opus(audio, rate, kbps)


def markdown_table(points: list[RatePoint]) -> str:
    lines = [
        "| codec | setting | kb/s (file sizes) | log-mel ↓ | STFT ↓ | SI-SDR dB ↑ | STOI ↑ "
        "| PESQ-WB ↑ |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for p in points:
        lines.append(
            f"| {p.codec} | {p.setting} | {p.kbps:.2f} | {p.log_mel:.3f} | {p.stft:.3f} | "
            f"{p.si_sdr:.1f} | {p.stoi:.3f} | {p.pesq:.2f} |"
        )
    return "\n".join(lines)


def plot(points: list[RatePoint], path: str | Path) -> None:
    """Rate-distortion PNG: STOI, PESQ and log-mel against kb/s, one line per codec."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, (field, label) in zip(
        axes,
        [("log_mel", "log-mel distance (lower is better)"), ("stoi", "STOI"), ("pesq", "PESQ-WB")],
    ):
        for codec in dict.fromkeys(p.codec for p in points):
            mine = sorted((p for p in points if p.codec == codec), key=lambda p: p.kbps)
            ax.plot([p.kbps for p in mine], [getattr(p, field) for p in mine], "o-", label=codec)
        ax.set_xlabel("kb/s (from file sizes)")
        ax.set_title(label)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def code_usage(model: torch.nn.Module, files: list[Path]) -> list[float]:
    """Per residual level, the share of its codes used anywhere in ``files`` (all levels)."""
    from vqcodec.bitstream.audio import encode_audio
    from vqcodec.bitstream.sources import FileSource, ResampledSource

    seen = torch.zeros(model.config.num_quantizers, model.config.codebook_size, dtype=torch.bool)
    for path in files:
        source = FileSource(path)
        try:
            codes = encode_audio(model, ResampledSource(source, model.config.sample_rate))
        finally:
            source.close()
        for level in range(codes.shape[1]):
            seen[level, codes[:, level].reshape(-1)] = True
    return seen.float().mean(1).tolist()
