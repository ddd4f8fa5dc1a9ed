"""Seeded fuzzing: thousands of malformed files, each must decode or raise a BitstreamError.

Mutations: truncations, bit flips, byte insertions and deletions, and edits of the header and of
stream payloads with their checksums recomputed (so they get past the CRCs and reach the
validators and decoders). Nothing else may escape, nothing may take long.
"""

from __future__ import annotations

import json
import random
import struct
import time
import zlib

import pytest

from vqcodec.bitstream import BitstreamError, CodeLayout, pack_codes, unpack_codes
from vqcodec.bitstream.container import MAGIC, read_header

from .conftest import skewed_codes

CASES = 3000


def split(data: bytes) -> tuple[dict, list[bytes]]:
    header, offset = read_header(data)
    (count,) = struct.unpack_from("<I", data, offset)
    offset += 4
    streams = []
    for _ in range(count):
        (length,) = struct.unpack_from("<I", data, offset)
        streams.append(data[offset + 4 : offset + 4 + length])
        offset += 8 + length
    return header, streams


def join(header_bytes: bytes, streams: list[bytes]) -> bytes:
    parts = [
        MAGIC,
        struct.pack("<HI", 1, len(header_bytes)),
        header_bytes,
        struct.pack("<I", zlib.crc32(header_bytes)),
        struct.pack("<I", len(streams)),
    ]
    for s in streams:
        parts += [struct.pack("<I", len(s)), s, struct.pack("<I", zlib.crc32(s))]
    return b"".join(parts)


ODD_VALUES = [0, -1, 1, 2, 3, 7, 300, 1 << 20, 1 << 40, 2.5, "3", None, True, [], {}, [1, 2]]


def edit_header(header: dict, rng: random.Random) -> bytes:
    header = json.loads(json.dumps(header))
    codes = header["codes"]
    choice = rng.randrange(8)
    if choice == 0:
        codes["shape"][rng.randrange(len(codes["shape"]))] = rng.choice(ODD_VALUES)
    elif choice == 1:
        codes["codebook_sizes"][rng.randrange(len(codes["codebook_sizes"]))] = rng.choice(
            ODD_VALUES
        )
    elif choice == 2:
        stream = codes["streams"][rng.randrange(len(codes["streams"]))]
        stream["coder"] = rng.choice(["raw", "static", "repeat", "level", "zip", None, 1])
    elif choice == 3:
        codes["streams"][rng.randrange(len(codes["streams"]))]["plane"] = rng.choice(ODD_VALUES)
    elif choice == 4:
        del codes[rng.choice(["shape", "codebook_sizes", "streams"])]
    elif choice == 5:
        header["tables"] = rng.choice([None, 5, "0123456789abcdef", header.get("tables")])
    elif choice == 6:
        header["codes"] = rng.choice(ODD_VALUES)
    else:
        codes["shape"] = rng.choice([[], [1], [2, 3], [1, 3, 1, 1, 600], codes["shape"][::-1]])
    if rng.random() < 0.1:
        return b"\xff" + json.dumps(header).encode()  # not UTF-8
    return json.dumps(header).encode()


def mutate(data: bytes, rng: random.Random) -> bytes:
    kind = rng.randrange(6)
    if kind == 0:
        return data[: rng.randrange(len(data))]
    if kind == 1:
        out = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
        return bytes(out)
    if kind == 2:
        at = rng.randrange(len(data) + 1)
        return data[:at] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 16))) + data[at:]
    if kind == 3:
        at = rng.randrange(len(data))
        return data[:at] + data[at + rng.randint(1, 16) :]
    header, streams = split(data)
    if kind == 4:
        return join(edit_header(header, rng), streams)
    streams = list(streams)
    q = rng.randrange(len(streams))
    payload = bytearray(streams[q])
    if payload and rng.random() < 0.7:
        for _ in range(rng.randint(1, 4)):
            payload[rng.randrange(len(payload))] ^= 1 << rng.randrange(8)
    else:
        payload += bytes(rng.randrange(256) for _ in range(rng.choice([1, 3, 4, 8])))
    streams[q] = bytes(payload)
    return join(json.dumps(header).encode(), streams)


@pytest.fixture(scope="module")
def valid_files(request: pytest.FixtureRequest) -> list[tuple[bytes, object]]:
    from vqcodec.bitstream import CodeTables

    train = skewed_codes((8, 3, 200), 300, seed=5)
    tables = CodeTables.fit([train], [300] * 3)
    codes = skewed_codes((2, 3, 120), 300, seed=6)
    layout = CodeLayout.for_codes(codes, 300)
    return [
        (pack_codes(codes, layout, tables, coders=(c,)), tables)
        for c in ("raw", "static", "repeat", "level")
    ]


@pytest.mark.slow
def test_malformed_files_raise_only_bitstream_errors(valid_files) -> None:
    rng = random.Random(20261122)
    outcomes = {"decoded": 0, "refused": 0}
    slowest = 0.0
    for case in range(CASES):
        data, tables = valid_files[case % len(valid_files)]
        bad = mutate(data, rng)
        start = time.perf_counter()
        try:
            codes, layout = unpack_codes(bad, tables)
        except BitstreamError:
            outcomes["refused"] += 1
        else:
            assert tuple(codes.shape) == layout.shape
            outcomes["decoded"] += 1
        slowest = max(slowest, time.perf_counter() - start)
    assert outcomes["refused"] > 0.8 * CASES
    assert slowest < 1.0
