"""Fixed-width bit packing: the baseline coder, always available, needs no tables."""

from __future__ import annotations

import numpy as np


def bits_for(codebook_size: int) -> int:
    """Bits per code for an alphabet of ``codebook_size`` symbols (0 for a single symbol)."""
    return max(0, int(codebook_size - 1).bit_length())


def pack_bits(symbols: np.ndarray, bits: int) -> bytes:
    """Pack non-negative integers ``< 2**bits`` into ``ceil(n·bits/8)`` bytes, LSB first."""
    if bits == 0 or symbols.size == 0:
        return b""
    values = symbols.astype(np.uint32, copy=False)
    planes = ((values[:, None] >> np.arange(bits, dtype=np.uint32)) & 1).astype(np.uint8)
    return np.packbits(planes.reshape(-1), bitorder="little").tobytes()


def unpack_bits(data: bytes, count: int, bits: int) -> np.ndarray:
    """Inverse of :func:`pack_bits`: ``count`` integers (int64). The caller checks the length."""
    if bits == 0:
        return np.zeros(count, dtype=np.int64)
    flat = np.unpackbits(np.frombuffer(data, dtype=np.uint8), bitorder="little")
    planes = flat[: count * bits].reshape(count, bits).astype(np.int64)
    return planes @ (np.int64(1) << np.arange(bits, dtype=np.int64))


def packed_size(count: int, bits: int) -> int:
    """Bytes that :func:`pack_bits` produces for ``count`` symbols of ``bits`` bits."""
    return (count * bits + 7) // 8
