"""Images to ``.vqc`` bytes and back: any size, grey or colour, large images in bounded memory.

The model codes RGB; a grey image is coded as three equal channels and turned back into one
channel (ITU-R 601 luma, as Pillow does) on decode. Images are coded tile by tile with context
(:meth:`~vqcodec.codecs.image.ImageCodec.encode_tiled`), so memory depends on the tile size, not
on the image; an image no larger than one tile is coded whole. The original height and width are
restored on decode.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vqcodec.bitstream.codes import CodeLayout, pack_codes, read_code_header, unpack_codes
from vqcodec.bitstream.compress import config_hash, resolve_model
from vqcodec.bitstream.errors import HeaderError

MAX_SIDE = 1 << 16
LUMA = (0.299, 0.587, 0.114)  # ITU-R 601, Pillow's RGB -> L weights


def compress_image(model: nn.Module, image: Tensor, num_levels: int | None = None) -> bytes:
    """``.vqc`` bytes for ``image [C, H, W]`` in ``[0, 1]``, ``C`` = 1 (grey) or 3 (RGB).

    Args:
        model: an :class:`~vqcodec.codecs.image.ImageCodec` (with fitted tables for entropy
            coding; without them the codes are stored raw).
        image: the picture; values outside ``[0, 1]`` are clamped.
        num_levels: residual levels to code (default all): fewer levels, fewer bits.
    """
    if image.dim() != 3 or image.shape[0] not in (1, 3) or min(image.shape[1:]) == 0:
        raise ValueError(f"expected an image [1 or 3, H, W], got {tuple(image.shape)}")
    if max(image.shape[1:]) > MAX_SIDE:
        raise ValueError(f"image sides are limited to {MAX_SIDE} pixels, got {tuple(image.shape)}")
    channels, height, width = image.shape
    device = next(model.parameters()).device
    rgb = image.float().clamp(0, 1).expand(3, height, width)[None].to(device)
    codes = model.encode_tiled(rgb, num_levels=num_levels).cpu()
    header = {
        "model": {"name": model.name, "config_hash": config_hash(model)},
        "signal": {"kind": "image", "channels": channels, "height": height, "width": width},
        "tiling": {"tile": model.config.tile, "context": model.config.tile_context},
    }
    layout = CodeLayout.for_codes(codes, model.config.codebook_size)
    return pack_codes(codes, layout, getattr(model, "code_tables", None), extra_header=header)


def image_signal(header: dict) -> dict:
    """The validated ``signal`` section of an image file's header."""
    signal = header.get("signal")
    if (
        not isinstance(signal, dict)
        or signal.get("kind") != "image"
        or signal.get("channels") not in (1, 3)
        or not all(
            isinstance(signal.get(k), int)
            and not isinstance(signal.get(k), bool)
            and 0 < signal[k] <= MAX_SIDE
            for k in ("height", "width")
        )
    ):
        raise HeaderError("header does not describe an image (kind, channels, height, width)")
    return signal


def decompress_image(data: bytes, model: nn.Module | None = None) -> Tensor:
    """The image ``[C, H, W]`` in ``[0, 1]`` (original size and channel count) from bytes."""
    header = read_code_header(data)
    signal = image_signal(header)
    model = resolve_model(header, model)
    codes, layout = unpack_codes(data, getattr(model, "code_tables", None))
    height, width = signal["height"], signal["width"]
    if layout.shape[0] != 1 or tuple(layout.shape[2:]) != model.grid_shape(height, width):
        raise HeaderError("header's image size disagrees with its codes")
    device = next(model.parameters()).device
    rgb = model.decode_tiled(codes.to(device))[0, :, :height, :width].float().cpu()
    if signal["channels"] == 1:
        return torch.tensordot(torch.tensor(LUMA), rgb, dims=1)[None].clamp(0, 1)
    return rgb
