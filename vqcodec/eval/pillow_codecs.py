"""JPEG, WebP and AVIF through Pillow, as references for the image codec.

Settings: JPEG with Huffman optimisation (``optimize=True``), WebP with its slowest, best method
(``method=6``), AVIF with Pillow's defaults; chroma subsampling is each format's default (4:2:0).
Grey pictures are coded as one channel, as a user saving a grey file would get.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import torch
from PIL import Image, features
from torch import Tensor

from vqcodec.media import to_uint8

FORMATS: dict[str, tuple[str, dict, range]] = {
    # name: (Pillow format, save options, quality range, lowest rate first)
    "jpeg": ("JPEG", {"optimize": True}, range(1, 96)),
    "webp": ("WEBP", {"method": 6}, range(0, 101)),
    "avif": ("AVIF", {}, range(0, 101)),
}


class FormatUnavailable(RuntimeError):
    """This Pillow build cannot write the format."""


def check_format(name: str) -> None:
    """Raise :class:`FormatUnavailable` (or ``ValueError`` for an unknown name)."""
    if name not in FORMATS:
        raise ValueError(f"unknown image format {name!r} ({', '.join(FORMATS)})")
    if name in ("webp", "avif") and not features.check(name):
        raise FormatUnavailable(
            f"this Pillow build cannot write {name.upper()} (pip install -U pillow)"
        )


def round_trip(image: Tensor, name: str, quality: int) -> tuple[Tensor, int]:
    """``(decoded [C, H, W] in [0, 1], file bytes)`` for ``image`` saved as ``name`` at
    ``quality``."""
    pillow_format, options, _ = FORMATS[name]
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        Image.fromarray(to_uint8(image)).save(
            buffer, format=pillow_format, quality=quality, **options
        )
    size = buffer.tell()
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        array = np.asarray(decoded.convert("L" if image.shape[0] == 1 else "RGB"), dtype=np.uint8)
    tensor = torch.from_numpy(array.copy())
    tensor = tensor[None] if image.shape[0] == 1 else tensor.permute(2, 0, 1)
    return tensor.float() / 255, size


def best_under(
    image: Tensor, name: str, max_bytes: int, cache: dict | None = None
) -> tuple[Tensor, int, int] | None:
    """The highest quality whose file is at most ``max_bytes``: ``(decoded, bytes, quality)``,
    or None when even the lowest quality is larger. Binary search over quality (file size grows
    with quality for these encoders; each probe is a real encode). ``cache`` maps quality to a
    previous result for this image and format."""
    cache = {} if cache is None else cache
    qualities = FORMATS[name][2]

    def probe(q: int) -> tuple[Tensor, int]:
        if q not in cache:
            cache[q] = round_trip(image, name, q)
        return cache[q]

    if probe(qualities[0])[1] > max_bytes:
        return None
    low, high = 0, len(qualities) - 1  # invariant: qualities[low] fits
    while low < high:
        middle = (low + high + 1) // 2
        if probe(qualities[middle])[1] <= max_bytes:
            low = middle
        else:
            high = middle - 1
    decoded, size = probe(qualities[low])
    return decoded, size, qualities[low]
