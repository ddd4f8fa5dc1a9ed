"""pack_codes / unpack_codes: exact round trips for every coder, shape and alphabet size."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vqcodec.bitstream import (
    CodeLayout,
    CodeTables,
    HeaderError,
    MissingTablesError,
    pack_codes,
    read_code_header,
    unpack_codes,
)
from vqcodec.bitstream.tables import PRECISION, quantize_counts

from .conftest import skewed_codes


@pytest.mark.parametrize("shape", [(3, 2), (2, 4, 33), (2, 3, 5, 7), (1, 1, 1)])
@pytest.mark.parametrize("codebook_size", [1, 2, 3, 1000, 1 << 18])
def test_raw_round_trip(shape: tuple[int, ...], codebook_size: int) -> None:
    codes = torch.randint(0, codebook_size, shape)
    data = pack_codes(codes, CodeLayout.for_codes(codes, codebook_size))
    decoded, layout = unpack_codes(data)
    assert torch.equal(decoded, codes) and decoded.dtype == torch.int64
    assert layout.shape == shape


@pytest.mark.parametrize("coder", ["static", "repeat", "level"])
def test_entropy_coders_round_trip(coder: str, codes_and_tables) -> None:
    codes, layout, tables = codes_and_tables
    data = pack_codes(codes, layout, tables, coders=(coder,))
    first = "raw" if coder == "level" else coder  # plane 0 has no previous plane
    assert [s["coder"] for s in read_code_header(data)["codes"]["streams"]] == [first, coder, coder]
    decoded, _ = unpack_codes(data, tables)
    assert torch.equal(decoded, codes)


def test_large_alphabet_with_tables() -> None:
    k = 1 << 18
    train = skewed_codes((2, 2, 5000), k, seed=3)
    codes = skewed_codes((1, 2, 4000), k, seed=4)
    tables = CodeTables.fit([train], [k, k])
    data = pack_codes(codes, CodeLayout.for_codes(codes, k), tables)
    assert torch.equal(unpack_codes(data, tables)[0], codes)


def test_smallest_coder_is_chosen_per_stream(codes_and_tables) -> None:
    codes, layout, tables = codes_and_tables
    sizes = {
        c: len(pack_codes(codes, layout, tables, coders=(c,))) for c in ("raw", "static", "repeat")
    }
    chosen = pack_codes(codes, layout, tables)
    assert len(chosen) <= min(sizes.values())
    # Entropy 7.56 bits of 10, half the positions repeat: static ≈ 0.76 of raw (0.82 measured:
    # add-one smoothing and the header), and the repeat model ≈ (0.5·(7.56 + 1) + 0.5·1)/10 ≈ 0.48.
    assert sizes["static"] < 0.85 * sizes["raw"]  # (smoothed table, ~200-byte header)
    assert sizes["repeat"] < 0.55 * sizes["raw"]
    # uniform, independent codes: no table helps, raw is kept
    uniform = torch.randint(0, 1024, (2, 3, 300))
    header = read_code_header(pack_codes(uniform, CodeLayout.for_codes(uniform, 1024), tables))
    assert {s["coder"] for s in header["codes"]["streams"]} == {"raw"}


def test_level_model_uses_the_previous_plane() -> None:
    generator = torch.Generator().manual_seed(0)

    def dependent(n: int) -> torch.Tensor:  # plane 1 is almost a function of plane 0
        first = torch.randint(0, 256, (n, 1, 500), generator=generator)
        second = (7 * first + torch.randint(0, 4, (n, 1, 500), generator=generator)) % 256
        return torch.cat([first, second], dim=1)

    tables = CodeTables.fit([dependent(64)], [256, 256])
    codes = dependent(2)
    layout = CodeLayout.for_codes(codes, 256)
    data = pack_codes(codes, layout, tables)
    assert [s["coder"] for s in read_code_header(data)["codes"]["streams"]] == ["raw", "level"]
    assert torch.equal(unpack_codes(data, tables)[0], codes)
    raw = pack_codes(codes, layout)
    assert len(data) < 0.85 * len(raw)  # plane 1: about 2.6 bits instead of 8


def test_prefix_of_levels(codes_and_tables) -> None:
    codes, layout, tables = codes_and_tables
    data = pack_codes(codes, layout, tables)
    decoded, kept = unpack_codes(data, tables, num_levels=2)
    assert torch.equal(decoded, codes[:, :2]) and kept.shape == (2, 2, 300)
    with pytest.raises(ValueError):
        unpack_codes(data, tables, num_levels=4)


def test_tables_are_required_and_checked(codes_and_tables) -> None:
    codes, layout, tables = codes_and_tables
    data = pack_codes(codes, layout, tables, coders=("static",))
    with pytest.raises(MissingTablesError, match="needs the model's code tables"):
        unpack_codes(data)
    other = CodeTables.fit([skewed_codes((2, 3, 50), 1024, seed=9)], [1024] * 3)
    with pytest.raises(MissingTablesError, match="coded with tables"):
        unpack_codes(data, other)


def test_codes_outside_the_alphabet_are_refused() -> None:
    codes = torch.tensor([[[0, 5, 9]]])
    with pytest.raises(ValueError, match="outside"):
        pack_codes(codes, CodeLayout.for_codes(codes, 8))


def test_declared_size_over_the_limit_is_refused_before_decoding() -> None:
    from vqcodec.bitstream.container import write_container

    header = {
        "codes": {
            "shape": [1 << 16, 1, 1 << 16],
            "codebook_sizes": [4],
            "streams": [{"plane": 0, "coder": "raw"}],
        },
        "tables": None,
    }
    with pytest.raises(HeaderError, match="limit"):
        unpack_codes(write_container(header, [b""]))


def test_quantized_tables_are_exact_integers() -> None:
    counts = np.array([0, 1, 5, 1000, 3, 0, 7])
    freq = quantize_counts(counts)
    assert freq.dtype == np.int64 and freq.min() >= 1 and int(freq.sum()) == 1 << PRECISION
    assert list(np.argsort(-freq, kind="stable")[:3]) == [3, 6, 2]
    assert np.array_equal(quantize_counts(counts), freq)  # deterministic
    assert int(quantize_counts(np.zeros(5, dtype=np.int64)).sum()) == 1 << PRECISION


def test_tables_survive_tensor_round_trip(codes_and_tables) -> None:
    _, _, tables = codes_and_tables
    again = CodeTables.from_tensors(tables.to_tensors())
    assert again.table_id == tables.table_id
