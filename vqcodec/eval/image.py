"""Rate-distortion of an image model against JPEG, WebP and AVIF on a folder of lossless pictures.

Rates are bits per pixel from real file sizes (``.vqc`` bytes for the model, Pillow's files for
the references). Reconstructions are rounded to 8 bits before scoring, as a decoded PNG would be.

Two kinds of reference points:
- **matched**: for each picture and each model rate, the highest quality whose file is no larger
  than the model's ``.vqc`` file for that picture. The reference never gets more bits than the
  model, picture by picture; where even its lowest quality is larger, the rate is unreachable.
- **curves**: fixed qualities, averaged over the pictures (for the plot).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from vqcodec.eval import metrics, pillow_codecs
from vqcodec.media import read_picture

CURVE_QUALITIES = {
    "jpeg": [1, 3, 5, 10, 20, 35, 50, 75, 90],
    "webp": [0, 2, 5, 10, 25, 50, 75, 90],
    "avif": [0, 5, 10, 20, 30, 40, 50, 60, 75, 90],
}


@dataclass
class ImagePoint:
    """One codec at one setting, averaged over the pictures (NaN where not measured)."""

    codec: str
    setting: str
    bpp: float
    psnr: float
    ssim: float
    ms_ssim: float
    images: int
    encode_s_per_mp: float = math.nan
    decode_s_per_mp: float = math.nan
    note: str = ""


@dataclass
class ImageEvaluation:
    """Everything :func:`evaluate` measured."""

    points: list[ImagePoint] = field(default_factory=list)  # the table: model and matched
    curves: list[ImagePoint] = field(default_factory=list)  # references at fixed qualities
    usage: list[float] = field(default_factory=list)  # per level: share of codes used at all


def _score(decoded: Tensor, reference: Tensor) -> dict[str, float]:
    decoded = (decoded.clamp(0, 1) * 255).round() / 255
    return {
        "psnr": metrics.psnr(decoded, reference),
        "ssim": metrics.ssim(decoded, reference),
        "ms_ssim": metrics.ms_ssim(decoded, reference),
    }


def _mean(rows: list[dict[str, float]], key: str) -> float:
    values = [row[key] for row in rows if not math.isnan(row[key])]
    return sum(values) / len(values) if values else math.nan


def _point(codec: str, setting: str, rows: list[dict[str, float]], **extra) -> ImagePoint:
    return ImagePoint(
        codec, setting, _mean(rows, "bpp"), _mean(rows, "psnr"), _mean(rows, "ssim"),
        _mean(rows, "ms_ssim"), len(rows), **extra,
    )  # fmt: skip


def model_rows(
    model: torch.nn.Module, pictures: list[Tensor], num_levels: int, progress=iter
) -> tuple[list[dict[str, float]], list[int], float, float]:
    """Per-picture scores and ``.vqc`` sizes at ``num_levels``, and encode/decode s per MP."""
    from vqcodec.bitstream.image import compress_image, decompress_image

    rows, sizes, encode_s, decode_s, megapixels = [], [], 0.0, 0.0, 0.0
    for picture in progress(pictures):
        start = time.perf_counter()
        data = compress_image(model, picture, num_levels)
        middle = time.perf_counter()
        decoded = decompress_image(data, model)
        encode_s, decode_s = encode_s + middle - start, decode_s + time.perf_counter() - middle
        pixels = picture.shape[-1] * picture.shape[-2]
        megapixels += pixels / 1e6
        sizes.append(len(data))
        rows.append({"bpp": 8 * len(data) / pixels, **_score(decoded, picture)})
    return rows, sizes, encode_s / megapixels, decode_s / megapixels


@torch.no_grad()
def code_usage(model: torch.nn.Module, pictures: list[Tensor]) -> list[float]:
    """Per residual level, the share of its codes used anywhere in ``pictures``."""
    device = next(model.parameters()).device
    seen = torch.zeros(model.config.num_quantizers, model.vocab_size, dtype=torch.bool)
    for picture in pictures:
        rgb = picture.expand(3, *picture.shape[1:])[None].to(device)
        codes = model.encode_tiled(rgb).cpu()  # [1, Q, h, w]
        for level in range(codes.shape[1]):
            seen[level, codes[0, level].reshape(-1)] = True
    return seen.float().mean(1).tolist()


def evaluate(
    model: torch.nn.Module,
    files: list[Path],
    levels: list[int],
    formats: list[str],
    progress: Callable[[Iterable, str], Iterable] = lambda items, _: items,
) -> ImageEvaluation:
    """The model at each number of ``levels`` and each reference format matched to it."""
    from vqcodec.bitstream.image import compress_image, decompress_image

    for name in formats:
        pillow_codecs.check_format(name)
    pictures = [read_picture(path)[0] for path in files]
    decompress_image(compress_image(model, torch.rand(3, 64, 64)), model)  # warm-up, untimed
    result = ImageEvaluation(usage=code_usage(model, pictures))
    model_sizes = {}
    for n in levels:
        rows, sizes, encode, decode = model_rows(
            model, pictures, n, lambda items, d=f"{model.name} {n} levels": progress(items, d)
        )
        model_sizes[n] = sizes
        result.points.append(
            _point(model.name, f"{n} levels", rows, encode_s_per_mp=encode, decode_s_per_mp=decode)
        )
    for name in formats:
        caches = [{} for _ in pictures]  # quality -> (decoded, bytes), per picture
        for n in levels:
            rows, qualities = [], []
            for i in progress(range(len(pictures)), f"{name} matched to {n} levels"):
                found = pillow_codecs.best_under(pictures[i], name, model_sizes[n][i], caches[i])
                if found is not None:
                    decoded, size, quality = found
                    pixels = pictures[i].shape[-1] * pictures[i].shape[-2]
                    rows.append({"bpp": 8 * size / pixels, **_score(decoded, pictures[i])})
                    qualities.append(quality)
            setting = f"≤ bytes of {n} levels"
            if len(rows) < len(pictures):
                nan = math.nan
                note = f"unreachable for {len(pictures) - len(rows)} of {len(pictures)} images"
                result.points.append(
                    ImagePoint(name, setting, nan, nan, nan, nan, len(rows), note=note)
                )
            else:
                note = f"quality {min(qualities)}–{max(qualities)}"
                result.points.append(_point(name, setting, rows, note=note))
        for quality in CURVE_QUALITIES[name]:
            rows = []
            for picture, cache in zip(pictures, caches):
                if quality not in cache:
                    cache[quality] = pillow_codecs.round_trip(picture, name, quality)
                decoded, size = cache[quality]
                pixels = picture.shape[-1] * picture.shape[-2]
                rows.append({"bpp": 8 * size / pixels, **_score(decoded, picture)})
            result.curves.append(_point(name, f"quality {quality}", rows))
    return result


def _number(value: float, digits: int) -> str:
    return "—" if math.isnan(value) else f"{value:.{digits}f}"


def markdown_table(points: list[ImagePoint]) -> str:
    lines = [
        "| codec | setting | bpp (file sizes) | PSNR dB ↑ | SSIM ↑ | MS-SSIM ↑ | encode s/MP "
        "| decode s/MP | images | note |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for p in points:
        lines.append(
            f"| {p.codec} | {p.setting} | {_number(p.bpp, 3)} | {_number(p.psnr, 2)} | "
            f"{_number(p.ssim, 4)} | {_number(p.ms_ssim, 4)} | {_number(p.encode_s_per_mp, 3)} | "
            f"{_number(p.decode_s_per_mp, 3)} | {p.images} | {p.note} |"
        )
    return "\n".join(lines)


def plot(evaluation: ImageEvaluation, path: str | Path) -> None:
    """Rate-distortion PNG: MS-SSIM and PSNR against bpp; model points, reference curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model_points = [p for p in evaluation.points if not math.isnan(p.encode_s_per_mp)]
    x_max = max(0.5, 1.2 * max(p.bpp for p in model_points))
    lines = {model_points[0].codec: model_points}
    for p in evaluation.curves:
        if p.bpp <= x_max:  # curves go far beyond the model's rates; keep the axes readable
            lines.setdefault(p.codec, []).append(p)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, (key, label) in zip(axes, [("ms_ssim", "MS-SSIM"), ("psnr", "PSNR (dB)")]):
        for codec, points in lines.items():
            points = sorted(points, key=lambda p: p.bpp)
            style = "o-" if points[0] in model_points else ".--"
            ax.plot([p.bpp for p in points], [getattr(p, key) for p in points], style, label=codec)
        ax.set_xlabel("bits per pixel (from file sizes)")
        ax.set_title(label)
        ax.set_xlim(0, x_max)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
