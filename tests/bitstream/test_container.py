"""The container refuses each kind of malformed file with its own exception."""

from __future__ import annotations

import json
import struct
import zlib

import pytest

from vqcodec.bitstream.container import MAGIC, read_header, read_streams, write_container
from vqcodec.bitstream.errors import (
    BadMagicError,
    BitstreamError,
    ChecksumError,
    HeaderError,
    TruncatedError,
    UnsupportedVersionError,
)

HEADER = {"codes": {"shape": [1, 2, 3]}, "note": "plain words"}
STREAMS = [b"first stream", b"", b"\x00\x01\x02"]


def read_all(data: bytes) -> tuple[dict, list[bytes]]:
    header, offset = read_header(data)
    return header, read_streams(data, offset, [f"stream {i}" for i in range(len(STREAMS))])


def test_round_trip() -> None:
    data = write_container(HEADER, STREAMS)
    assert data.startswith(MAGIC)
    assert read_all(data) == (HEADER, STREAMS)


def test_wrong_magic() -> None:
    with pytest.raises(BadMagicError, match="magic"):
        read_all(b"RIFF" + write_container(HEADER, STREAMS)[4:])
    with pytest.raises(BadMagicError):
        read_all(b"")


def test_unknown_version() -> None:
    data = bytearray(write_container(HEADER, STREAMS))
    struct.pack_into("<H", data, 4, 99)
    with pytest.raises(UnsupportedVersionError, match="version 99"):
        read_all(bytes(data))


def test_every_truncation_is_refused() -> None:
    data = write_container(HEADER, STREAMS)
    for length in range(len(data)):
        with pytest.raises(BitstreamError) as error:
            read_all(data[:length])
        expected = BadMagicError if length < len(MAGIC) else TruncatedError
        assert isinstance(error.value, expected), (length, error.value)


def test_crc_mismatch_names_the_stream() -> None:
    data = bytearray(write_container(HEADER, STREAMS))
    position = data.index(b"\x00\x01\x02")  # inside stream 2
    data[position] ^= 0x40
    with pytest.raises(ChecksumError, match="stream 2"):
        read_all(bytes(data))


def test_header_corruption_is_caught_by_its_checksum() -> None:
    data = bytearray(write_container(HEADER, STREAMS))
    data[data.index(b"plain")] ^= 0x01
    with pytest.raises(ChecksumError, match="header"):
        read_all(bytes(data))


def rebuild(header_bytes: bytes, streams: list[bytes], count: int | None = None) -> bytes:
    parts = [
        MAGIC,
        struct.pack("<HI", 1, len(header_bytes)),
        header_bytes,
        struct.pack("<I", zlib.crc32(header_bytes)),
        struct.pack("<I", len(streams) if count is None else count),
    ]
    for s in streams:
        parts += [struct.pack("<I", len(s)), s, struct.pack("<I", zlib.crc32(s))]
    return b"".join(parts)


def test_header_that_is_not_a_json_object() -> None:
    with pytest.raises(HeaderError, match="JSON"):
        read_all(rebuild(b"{not json", STREAMS))
    with pytest.raises(HeaderError, match="object"):
        read_all(rebuild(json.dumps([1, 2]).encode(), STREAMS))


def test_absurd_lengths_are_refused_before_allocation() -> None:
    data = bytearray(write_container(HEADER, STREAMS))
    struct.pack_into("<I", data, 6, 0xFFFFFFFF)  # header length
    with pytest.raises(HeaderError, match="header length"):
        read_all(bytes(data))
    good = write_container(HEADER, STREAMS)
    header, offset = read_header(good)
    bad = bytearray(good)
    struct.pack_into("<I", bad, offset + 4, 0xFFFFFFF0)  # first stream's length
    with pytest.raises(TruncatedError, match="stream 0"):
        read_streams(bytes(bad), offset, ["stream 0", "stream 1", "stream 2"])


def test_stream_count_and_trailing_bytes() -> None:
    header_bytes = json.dumps(HEADER).encode()
    with pytest.raises(HeaderError, match="holds 2 streams"):
        read_all(rebuild(header_bytes, STREAMS[:2]))
    with pytest.raises(HeaderError, match="unexpected bytes"):
        read_all(write_container(HEADER, STREAMS) + b"\x00")
