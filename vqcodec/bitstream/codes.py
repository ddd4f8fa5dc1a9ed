"""Codes to ``.vqc`` bytes and back: ``pack_codes`` / ``unpack_codes``.

One stream per code plane (residual level or group) in plane order, so a reader can decode any
prefix of levels for a lower bitrate. Each stream independently uses whichever coder makes it
smallest; the header records the choice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from vqcodec.bitstream.coders import CODERS, decode_plane, encode_plane
from vqcodec.bitstream.container import read_header, read_streams, write_container
from vqcodec.bitstream.errors import HeaderError, MissingTablesError
from vqcodec.bitstream.tables import PRECISION, CodeTables

MAX_CODES = 1 << 24  # per file: bounds what a reader allocates before decoding (128 MiB)
MAX_DIM = 1 << 31


@dataclass(frozen=True)
class CodeLayout:
    """What the codes are: shape ``[B, Q, *spatial]`` and the alphabet size of each plane."""

    shape: tuple[int, ...]
    codebook_sizes: tuple[int, ...]

    @classmethod
    def for_codes(
        cls, codes: Tensor, codebook_sizes: int | list[int] | tuple[int, ...]
    ) -> CodeLayout:
        """The layout of ``codes`` with one alphabet size for all planes, or one per plane."""
        planes = codes.shape[1]
        sizes = (
            [codebook_sizes] * planes if isinstance(codebook_sizes, int) else list(codebook_sizes)
        )
        return cls(tuple(int(s) for s in codes.shape), tuple(int(k) for k in sizes))

    @property
    def rows_and_length(self) -> tuple[int, int]:
        """Each plane as ``[rows, length]``: the last axis is the one the repeat model follows."""
        positions = math.prod(self.shape[2:]) if len(self.shape) > 2 else 1
        length = self.shape[-1] if len(self.shape) > 2 else 1
        return self.shape[0] * positions // length, length


def pack_codes(
    codes: Tensor,
    layout: CodeLayout,
    tables: CodeTables | None = None,
    extra_header: dict | None = None,
    coders: tuple[str, ...] = CODERS,
) -> bytes:
    """``.vqc`` bytes for integer ``codes [B, Q, *spatial]``.

    Args:
        codes: integer codes, each plane ``q`` in ``0..layout.codebook_sizes[q] − 1``.
        layout: their layout (see :meth:`CodeLayout.for_codes`).
        tables: fitted tables; without them only the ``raw`` coder is available.
        extra_header: more JSON-safe header fields (model, signal, chunking).
        coders: the coders to try per stream; the smallest result is kept.
    """
    if tuple(codes.shape) != layout.shape or codes.dim() < 2:
        raise ValueError(
            f"codes of shape {tuple(codes.shape)} do not match the layout {layout.shape}"
        )
    if codes.dtype.is_floating_point or codes.dtype.is_complex:
        raise TypeError(f"codes must be integers, got {codes.dtype}")
    if codes.numel() > MAX_CODES:
        raise ValueError(f"{codes.numel()} codes exceed {MAX_CODES} per file; encode in chunks")
    if (
        tables is not None
        and tables.codebook_sizes[: len(layout.codebook_sizes)] != layout.codebook_sizes
    ):
        raise ValueError(
            f"tables are for codebooks {tables.codebook_sizes}, codes use {layout.codebook_sizes}"
        )
    array = codes.detach().cpu().numpy().astype(np.int64)
    for q, k in enumerate(layout.codebook_sizes):
        plane = array[:, q]
        if plane.size and (plane.min() < 0 or plane.max() >= k):
            raise ValueError(f"codes of plane {q} fall outside 0..{k - 1}")
    streams, described, previous = [], [], None
    for q, k in enumerate(layout.codebook_sizes):
        plane = np.ascontiguousarray(array[:, q]).reshape(layout.rows_and_length)
        frequencies = tables.frequencies[q] if tables else None
        repeat = tables.repeat[q] if tables else None
        level = tables.level_table(q) if tables else None
        usable = [
            c
            for c in coders
            if c == "raw" or (tables is not None and (c != "level" or level is not None))
        ]
        usable = usable or ["raw"]  # e.g. plane 0 has no level model: raw is always possible
        candidates = {
            c: encode_plane(plane, c, k, frequencies, repeat, level, previous) for c in usable
        }
        previous = plane
        best = min(usable, key=lambda c: (len(candidates[c]), usable.index(c)))
        streams.append(candidates[best])
        described.append({"plane": q, "coder": best})
    header = dict(extra_header or {})
    header["codes"] = {
        "shape": list(layout.shape),
        "codebook_sizes": list(layout.codebook_sizes),
        "streams": described,
    }
    header["tables"] = (
        tables.table_id if tables and any(d["coder"] != "raw" for d in described) else None
    )
    return write_container(header, streams)


def unpack_codes(
    data: bytes, tables: CodeTables | None = None, num_levels: int | None = None
) -> tuple[Tensor, CodeLayout]:
    """Codes and layout from ``.vqc`` bytes; raises a :class:`BitstreamError` subclass for any
    malformed input.

    Args:
        data: the file's bytes.
        tables: the tables the file was written with (needed unless every stream is raw).
        num_levels: decode only the first ``n`` planes (a lower bitrate); default all.
    """
    header, offset = read_header(data)
    layout, coders = parse_code_header(header)
    streams = read_streams(data, offset, [f"stream {q} (plane {q})" for q in range(len(coders))])
    planes = len(coders) if num_levels is None else num_levels
    if not 1 <= planes <= len(coders):
        raise ValueError(f"num_levels must be in 1..{len(coders)}, got {num_levels}")
    if any(c != "raw" for c in coders[:planes]):
        _check_tables(header, layout, tables)
    decoded, previous = [], None
    for q in range(planes):
        frequencies = tables.frequencies[q] if tables else None
        repeat = tables.repeat[q] if tables else None
        level = tables.level_table(q) if tables else None
        if coders[q] == "level" and level is None:
            raise HeaderError(f"stream {q} uses the level model, which plane {q} cannot have")
        previous = decode_plane(
            streams[q],
            coders[q],
            layout.rows_and_length,
            layout.codebook_sizes[q],
            frequencies,
            repeat,
            level,
            previous,
        )
        decoded.append(previous.reshape(layout.shape[:1] + layout.shape[2:]))
    codes = torch.from_numpy(np.stack(decoded, axis=1))
    kept = CodeLayout((layout.shape[0], planes, *layout.shape[2:]), layout.codebook_sizes[:planes])
    return codes, kept


def parse_code_header(header: dict) -> tuple[CodeLayout, list[str]]:
    """Validate the ``codes`` part of a header before anything is allocated for it."""
    section = header.get("codes")
    if not isinstance(section, dict):
        raise HeaderError("header has no 'codes' section")
    shape, sizes, streams = (
        section.get("shape"),
        section.get("codebook_sizes"),
        section.get("streams"),
    )
    if not _int_list(shape, 1, MAX_DIM) or len(shape) < 2:
        raise HeaderError(
            f"header 'codes.shape' must be a list of at least 2 positive integers, got {shape!r}"
        )
    if math.prod(shape) > MAX_CODES:
        raise HeaderError(
            f"header declares {math.prod(shape)} codes, more than the limit {MAX_CODES}"
        )
    if not _int_list(sizes, 1, 1 << PRECISION) or len(sizes) != shape[1]:
        raise HeaderError(
            f"header 'codes.codebook_sizes' must list {shape[1]} sizes in 1..2^{PRECISION}"
        )
    if not isinstance(streams, list) or len(streams) != shape[1]:
        raise HeaderError(f"header must describe {shape[1]} streams")
    coders = []
    for q, stream in enumerate(streams):
        if (
            not isinstance(stream, dict)
            or stream.get("plane") != q
            or stream.get("coder") not in CODERS
        ):
            raise HeaderError(f"header stream {q} is malformed: {stream!r}")
        coders.append(stream["coder"])
    return CodeLayout(tuple(shape), tuple(sizes)), coders


def read_code_header(data: bytes) -> dict:
    """The header of a ``.vqc`` file, validated (for ``vqcodec info`` and model resolution)."""
    header, _ = read_header(data)
    parse_code_header(header)
    return header


def _check_tables(header: dict, layout: CodeLayout, tables: CodeTables | None) -> None:
    wanted = header.get("tables")
    if not isinstance(wanted, str):
        raise HeaderError("header names no tables but its streams are entropy-coded")
    if tables is None:
        raise MissingTablesError(f"this file needs the model's code tables (id {wanted}) to decode")
    if tables.table_id != wanted:
        raise MissingTablesError(
            f"file was coded with tables {wanted}, given tables {tables.table_id}"
        )
    if tables.codebook_sizes[: len(layout.codebook_sizes)] != layout.codebook_sizes:
        raise HeaderError("header codebook sizes disagree with the tables it names")


def _int_list(value: object, low: int, high: int) -> bool:
    return isinstance(value, list) and all(
        isinstance(v, int) and not isinstance(v, bool) and low <= v <= high for v in value
    )


__all__ = ["CodeLayout", "pack_codes", "read_code_header", "unpack_codes"]
