"""The ``.vqc`` container: magic, version, a checksummed JSON header, then length-prefixed,
checksummed streams (one per code plane). The byte layout is specified in ``docs/FORMAT.md``.

This module knows nothing about codes or coders: it moves a header dict and a list of byte
strings in and out of one byte string, refusing anything malformed before allocating for it.
"""

from __future__ import annotations

import json
import struct
import zlib

from vqcodec.bitstream.errors import (
    BadMagicError,
    ChecksumError,
    HeaderError,
    TruncatedError,
    UnsupportedVersionError,
)

MAGIC = b"\x89VQC"
FORMAT_VERSION = 1
SUPPORTED_VERSIONS = (1,)
MAX_HEADER_BYTES = 1 << 20
MAX_STREAMS = 4096

_PREFIX = struct.Struct("<4sHI")  # magic, version, header length
_U32 = struct.Struct("<I")


def write_container(header: dict, streams: list[bytes]) -> bytes:
    """Serialise ``header`` (JSON-safe) and ``streams`` into one ``.vqc`` byte string."""
    header_bytes = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    if len(header_bytes) > MAX_HEADER_BYTES:
        raise HeaderError(f"header of {len(header_bytes)} bytes exceeds {MAX_HEADER_BYTES}")
    if len(streams) > MAX_STREAMS:
        raise HeaderError(f"{len(streams)} streams exceed the limit of {MAX_STREAMS}")
    parts = [
        _PREFIX.pack(MAGIC, FORMAT_VERSION, len(header_bytes)),
        header_bytes,
        _U32.pack(zlib.crc32(header_bytes)),
        _U32.pack(len(streams)),
    ]
    for stream in streams:
        parts += [_U32.pack(len(stream)), stream, _U32.pack(zlib.crc32(stream))]
    return b"".join(parts)


def read_header(data: bytes) -> tuple[dict, int]:
    """Check magic, version and header checksum; return the header and where streams begin."""
    data = memoryview(data)
    if len(data) < len(MAGIC) or bytes(data[: len(MAGIC)]) != MAGIC:
        raise BadMagicError("not a .vqc file (wrong magic bytes)")
    if len(data) < _PREFIX.size:
        raise TruncatedError("file ends inside the fixed prefix")
    _, version, header_length = _PREFIX.unpack_from(data)
    if version not in SUPPORTED_VERSIONS:
        raise UnsupportedVersionError(
            f".vqc format version {version} is not supported (this reader knows "
            f"{', '.join(map(str, SUPPORTED_VERSIONS))}); upgrade vqcodec to read it"
        )
    if header_length > MAX_HEADER_BYTES:
        raise HeaderError(f"declared header length {header_length} exceeds {MAX_HEADER_BYTES}")
    end = _PREFIX.size + header_length
    if len(data) < end + _U32.size:
        raise TruncatedError("file ends inside the header")
    header_bytes = bytes(data[_PREFIX.size : end])
    (crc,) = _U32.unpack_from(data, end)
    if zlib.crc32(header_bytes) != crc:
        raise ChecksumError("header checksum mismatch: the header is corrupt")
    try:
        header = json.loads(header_bytes.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise HeaderError(f"header is not valid JSON: {error}") from None
    if not isinstance(header, dict):
        raise HeaderError("header is not a JSON object")
    return header, end + _U32.size


def read_streams(data: bytes, offset: int, names: list[str]) -> list[bytes]:
    """The checksummed streams after the header; ``names`` label them in error messages and
    give how many the header declared."""
    data = memoryview(data)
    if len(data) < offset + _U32.size:
        raise TruncatedError("file ends before the stream count")
    (count,) = _U32.unpack_from(data, offset)
    if count != len(names):
        raise HeaderError(f"file holds {count} streams but the header describes {len(names)}")
    offset += _U32.size
    streams = []
    for name in names:
        if len(data) < offset + _U32.size:
            raise TruncatedError(f"file ends before {name}")
        (length,) = _U32.unpack_from(data, offset)
        start, stop = offset + _U32.size, offset + _U32.size + length
        if len(data) < stop + _U32.size:
            raise TruncatedError(f"file ends inside {name} ({length} bytes declared)")
        payload = bytes(data[start:stop])
        (crc,) = _U32.unpack_from(data, stop)
        if zlib.crc32(payload) != crc:
            raise ChecksumError(f"checksum mismatch in {name}: that stream is corrupt")
        streams.append(payload)
        offset = stop + _U32.size
    if offset != len(data):
        raise HeaderError(f"{len(data) - offset} unexpected bytes after the last stream")
    return streams
