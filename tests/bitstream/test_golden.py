"""Golden files keep every released format version readable, and the encoder deterministic.

Regenerate (only when the format version changes, adding new files beside the old ones):
``VQCODEC_REGENERATE_GOLDEN=1 python -m pytest tests/bitstream/test_golden.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from vqcodec.bitstream import CodeLayout, CodeTables, pack_codes, unpack_codes

from .conftest import skewed_codes

GOLDEN = Path(__file__).parent / "golden"
REGENERATE = os.environ.get("VQCODEC_REGENERATE_GOLDEN") == "1"


def make() -> tuple[torch.Tensor, CodeTables, dict[str, bytes]]:
    codes = skewed_codes((2, 3, 64), 1000, seed=11)
    tables = CodeTables.fit([skewed_codes((4, 3, 256), 1000, seed=12)], [1000] * 3)
    layout = CodeLayout.for_codes(codes, 1000)
    files = {
        "v1_raw.vqc": pack_codes(codes, layout),
        "v1_static.vqc": pack_codes(codes, layout, tables, coders=("static",)),
        "v1_repeat.vqc": pack_codes(codes, layout, tables, coders=("repeat",)),
        "v1_level.vqc": pack_codes(codes, layout, tables, coders=("level",)),
    }
    return codes, tables, files


@pytest.mark.skipif(not REGENERATE, reason="set VQCODEC_REGENERATE_GOLDEN=1 to regenerate")
def test_regenerate() -> None:
    codes, tables, files = make()
    GOLDEN.mkdir(exist_ok=True)
    np.save(GOLDEN / "v1_codes.npy", codes.numpy())
    save_file(tables.to_tensors(), GOLDEN / "v1_tables.safetensors")
    for name, data in files.items():
        (GOLDEN / name).write_bytes(data)


@pytest.mark.parametrize("name", ["v1_raw.vqc", "v1_static.vqc", "v1_repeat.vqc", "v1_level.vqc"])
def test_golden_files_decode_and_encode_identically(name: str) -> None:
    expected = torch.from_numpy(np.load(GOLDEN / "v1_codes.npy", allow_pickle=False))
    tables = CodeTables.from_tensors(load_file(GOLDEN / "v1_tables.safetensors"))
    data = (GOLDEN / name).read_bytes()
    decoded, _ = unpack_codes(data, tables)
    assert torch.equal(decoded, expected)
    coder = name.split("_")[1].split(".")[0]
    layout = CodeLayout.for_codes(expected, 1000)
    again = pack_codes(expected, layout, tables if coder != "raw" else None, coders=(coder,))
    assert again == data  # today's encoder writes the same bytes
