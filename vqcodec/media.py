"""Reading and writing the files the codecs take: pictures through Pillow (audio files are read
in ranges by :class:`vqcodec.bitstream.sources.FileSource`). The kind of a file is found from
its contents, not its name."""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

Kind = Literal["audio", "image"]
GREY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "F")


class MediaError(ValueError):
    """A file is not something vqcodec can read (the message names the file)."""


def detect_kind(path: str | Path) -> Kind:
    """``"image"`` or ``"audio"`` from the file's contents; :class:`MediaError` otherwise."""
    import soundfile
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise MediaError(f"{path} does not exist or is not a file")
    if path.stat().st_size == 0:
        raise MediaError(f"{path}: the file is empty")
    try:
        with Image.open(path):
            return "image"
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        pass
    try:
        soundfile.info(str(path))
        return "audio"
    except Exception:  # soundfile raises several types for files it cannot read
        pass
    raise MediaError(f"{path}: neither audio (soundfile) nor an image (Pillow) could read it")


def read_picture(path: str | Path) -> tuple[Tensor, bool]:
    """``(image [C, H, W] float32 in [0, 1], had_alpha)``; ``C`` is 1 for grey files, else 3.

    The EXIF orientation is applied (the picture as viewers show it); palette images become RGB;
    an alpha channel is dropped (``had_alpha`` says so).
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as opened:
            opened.load()
            image = ImageOps.exif_transpose(opened)
    except Image.DecompressionBombError as error:
        raise MediaError(f"{path}: {error}") from None
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise MediaError(f"{path}: not a readable image ({error})") from None
    had_alpha = "A" in image.getbands() or "transparency" in image.info
    grey = image.mode in GREY_MODES
    if image.mode.startswith("I;16") or image.mode == "I":
        # 16-bit grey: scale its range rather than let Pillow clip everything above 255.
        array = np.asarray(image, dtype=np.float32)
        array = array / (65535.0 if "16" in image.mode or array.max() > 255 else 255.0)
        return torch.from_numpy(array.clip(0, 1).copy())[None], had_alpha
    array = np.asarray(image.convert("L" if grey else "RGB"), dtype=np.uint8)
    tensor = torch.from_numpy(array.copy())
    tensor = tensor[None] if grey else tensor.permute(2, 0, 1)
    return tensor.float() / 255, had_alpha


def to_uint8(image: Tensor) -> np.ndarray:
    """``[C, H, W]`` in ``[0, 1]`` → ``[H, W]`` or ``[H, W, 3]`` uint8 (rounded)."""
    array = (image.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    return array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0)


def picture_bytes(image: Tensor, suffix: str = ".png") -> bytes:
    """The encoded file for ``image [C, H, W]`` in the format named by ``suffix`` (PNG default)."""
    from PIL import Image

    formats = Image.registered_extensions()
    if suffix.lower() not in formats:
        raise MediaError(f"Pillow cannot write {suffix!r} files")
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        Image.fromarray(to_uint8(image)).save(buffer, format=formats[suffix.lower()])
    return buffer.getvalue()
