"""Exact mode from fp16 pairs (three fp16 products of split operands; run on a GPU machine)."""

from __future__ import annotations

import pytest
import torch

from tests.kernels.test_nearest_code_gpu import excess_distance
from vqcodec.kernels import nearest_code
from vqcodec.kernels import split_nearest_code as split
from vqcodec.kernels import triton_nearest_code as fused

pytestmark = pytest.mark.gpu

# Rows on chip (D ≤ 128) and streamed from their tables (D > 128); sizes off the tiles.
SHAPES = [(1, 1, 1), (17, 33, 3), (1000, 1023, 129), (513, 4097, 300), (300, 70000, 64)]


@pytest.mark.parametrize("n,k,d", SHAPES)
@pytest.mark.parametrize(
    "x_dtype,codebook_dtype",
    [
        (torch.float32, torch.float32),
        (torch.bfloat16, torch.bfloat16),
        (torch.float16, torch.float32),
    ],
)
def test_picks_a_nearest_code_up_to_float32_rounding(
    n: int, k: int, d: int, x_dtype: torch.dtype, codebook_dtype: torch.dtype
) -> None:
    x = torch.randn(n, d, device="cuda").to(x_dtype)
    codebook = torch.randn(k, d, device="cuda").to(codebook_dtype)
    idx = split.nearest_code_split(x, codebook)
    assert idx.shape == (n,) and int(idx.min()) >= 0 and int(idx.max()) < k
    assert float(excess_distance(x, codebook, idx).max()) <= 1.0


@pytest.mark.parametrize("n,k,d", [(1000, 1023, 129), (4099, 2000, 40), (300, 70000, 64)])
def test_the_tf32x3_kernels_choices_on_random_inputs(n: int, k: int, d: int) -> None:
    """The same arithmetic as Triton's tf32x3 (11 + 11 significant bits a value): on random
    float32 inputs, with no near-ties at that precision, the same indices."""
    x = torch.randn(n, d, device="cuda")
    codebook = torch.randn(k, d, device="cuda")
    same = split.nearest_code_split(x, codebook) == fused.nearest_code_triton(x, codebook, False)
    assert float(same.float().mean()) >= 0.999


def excess_over_own_scale(x: torch.Tensor, codebook: torch.Tensor, idx: torch.Tensor) -> float:
    """How much farther (float64) each chosen code is than the nearest, in units of the float32
    rounding of the two distances compared (``(‖x‖² + ‖c‖²)·D·2⁻²³`` for the chosen and the
    nearest code ``c``): the scale of each row itself, not of the largest code."""
    x64, c64 = x.double(), codebook.double()
    d = torch.cdist(x64, c64).pow(2)
    nearest = d.min(1)
    norms = c64.pow(2).sum(1)
    scale = (x64.pow(2).sum(1) + torch.maximum(norms[idx], norms[nearest.indices])) * x.shape[1]
    return float(
        ((d.gather(1, idx[:, None]).squeeze(1) - nearest.values) / (scale * 2.0**-23)).max()
    )


@pytest.mark.parametrize("d", [64, 300])
def test_rows_and_codes_of_very_different_magnitudes(d: int) -> None:
    """Each row and code has its own scale: codes from 1e-12 to 1e12 in one codebook, rows
    near them (1% noise), all far outside fp16's range before scaling."""
    k = 300
    codebook = (
        torch.randn(k, d, device="cuda")
        * 10.0 ** torch.linspace(-12, 12, k, device="cuda")[:, None]
    )
    x = codebook[torch.randperm(k, device="cuda")].repeat(2, 1)
    x = x * (1 + 0.01 * torch.randn_like(x))
    idx = split.nearest_code_split(x, codebook)
    assert excess_over_own_scale(x, codebook, idx) <= 1.0


def test_zero_rows_and_codes() -> None:
    x = torch.randn(100, 48, device="cuda")
    x[::3] = 0.0
    codebook = torch.randn(50, 48, device="cuda")
    codebook[5] = 0.0
    idx = split.nearest_code_split(x, codebook)
    assert bool((idx[::3] == 5).all())
    assert float(excess_distance(x, codebook, idx).max()) <= 1.0


def test_non_finite_rows_get_an_index_in_range() -> None:
    x = torch.randn(500, 32, device="cuda")
    x[7, 3] = float("nan")
    x[9, 0] = float("inf")
    codebook = torch.randn(300, 32, device="cuda")
    idx = split.nearest_code_split(x, codebook)
    assert int(idx.min()) >= 0 and int(idx.max()) < 300
    finite = torch.ones(500, dtype=torch.bool, device="cuda")
    finite[[7, 9]] = False
    assert float(excess_distance(x[finite], codebook, idx[finite]).max()) <= 1.0


@pytest.mark.parametrize("d", [24, 200])
def test_batched_groups_never_pick_a_neighbouring_groups_codes(d: int) -> None:
    x = torch.randn(3, 1001, d, device="cuda")
    codebook = torch.randn(3, 257, d, device="cuda")
    codebook[1] += 100.0  # a neighbour's codes far away: a mixed-up group shows at once
    idx = split.nearest_code_split(x, codebook)
    for g in range(3):
        assert float(excess_distance(x[g], codebook[g], idx[g]).max()) <= 1.0


def test_split_rows_hold_the_values_to_22_bits() -> None:
    exponents = torch.randint(-15, 16, (2, 37, 1), device="cuda")
    # rows from 1e-15 to 1e15, and features a row spans over six orders of magnitude
    spread = 10.0 ** torch.randint(-6, 1, (2, 37, 300), device="cuda")
    v = torch.randn(2, 37, 300, device="cuda") * spread * 10.0**exponents
    rows = split.split_rows(v, half_norms=True)
    largest = v.abs().amax(-1)
    scale = 1.0 / rows.inverse_scale.double()
    assert bool(((largest * scale >= 2.0**14) & (largest * scale < 2.0**15)).all())
    back = (rows.hi.double() + rows.lo.double()) / scale[..., None]
    error = (back - v.double()).abs() / largest.double()[..., None]
    assert float(error.max()) <= 2.0**-22
    # float32 sums of 300 squares
    expected = 0.5 * v.double().pow(2).sum(-1)
    torch.testing.assert_close(rows.half_norm.double(), expected, rtol=300 * 2.0**-24, atol=0)


def test_exact_calls_below_the_certified_search_come_here(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    original = split.nearest_code_split
    monkeypatch.setattr(
        split, "nearest_code_split", lambda *args: calls.append(1) or original(*args)
    )
    x, codebook = torch.randn(1000, 64, device="cuda"), torch.randn(1024, 64, device="cuda")
    nearest_code(x, codebook)
    nearest_code(x, codebook, fast=True)
    assert calls == [1]


def test_exact_calls_are_captured_in_cuda_graphs() -> None:
    x, codebook = torch.randn(3000, 300, device="cuda"), torch.randn(1000, 300, device="cuda")
    expected = split.nearest_code_split(x, codebook)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.stream(stream), torch.cuda.graph(graph, stream=stream):
        captured = split.nearest_code_split(x, codebook)
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(captured, expected)
