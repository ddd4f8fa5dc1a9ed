"""Exact mode from fp16 candidates re-checked in float64 (run on a GPU machine)."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from vqcodec.kernels import certified_nearest_code as certified
from vqcodec.kernels import nearest_code, nearest_code_reference
from vqcodec.kernels import triton_nearest_code as fused

pytestmark = pytest.mark.gpu


@pytest.fixture(autouse=True)
def _one_candidate_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """One tile config for the candidates kernel: the tests check answers, not the autotuner's
    choice, and each config compiles for every shape bucket and dtype pair a test meets."""
    monkeypatch.setattr(certified._candidates, "configs", certified.CANDIDATE_CONFIGS[:1])


@pytest.fixture
def fallback_rows(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Rows each certified call leaves to the fallback, one entry a call (read after the
    call: a host wait the search itself never makes)."""
    rows: list[int] = []
    original = certified._search_unsettled_rows

    def counting(
        key: tuple,
        xs: Tensor,
        cs: Tensor,
        half_norm: Tensor,
        needy: Tensor,
        num_needy: Tensor,
        out: Tensor,
    ) -> None:
        original(key, xs, cs, half_norm, needy, num_needy, out)
        rows.append(int(num_needy.sum()))

    monkeypatch.setattr(certified, "_search_unsettled_rows", counting)
    return rows


def fast_codes(x: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    return fused.nearest_code_triton(x, codebook, fast=True)


def float64_nearest(x: torch.Tensor, codebook: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Distances ``[N, K]`` and the nearest code per row, in float64."""
    d = torch.cdist(x.double(), codebook.double()).pow(2)
    return d, d.argmin(1)


def excess_over_float64(x: torch.Tensor, codebook: torch.Tensor, idx: torch.Tensor) -> float:
    """How much farther each chosen code is than the float64 nearest, in units of float64
    rounding of the distances (so 0 up to a few units means "the float64 nearest")."""
    d, _ = float64_nearest(x, codebook)
    chosen = d.gather(1, idx[:, None]).squeeze(1)
    scale = (x.double().pow(2).sum(1) + codebook.double().pow(2).sum(1).max()) * 2.0**-44
    return float(((chosen - d.min(1).values) / scale).max())


def slices_of(codes: int, monkeypatch: pytest.MonkeyPatch, d: int) -> None:
    """Make the search copy the codebook in slices of ``codes`` codes (a multiple of
    ``SLICE_ALIGN``) at ``d`` features."""
    monkeypatch.setattr(certified, "SLICE_BYTES", 2 * d * codes)
    monkeypatch.setattr(certified, "ROW_SLICE_BYTES", 2 * d * codes)


SHAPES = [(1, 1, 1), (17, 33, 3), (1000, 1023, 129), (513, 4097, 300), (300, 70000, 64)]
MIXED = [(torch.bfloat16, torch.bfloat16), (torch.float16, torch.float32)]


@pytest.mark.parametrize(
    "n,k,d,x_dtype,codebook_dtype",
    [(*shape, torch.float32, torch.float32) for shape in SHAPES]
    + [(*shape, *dtypes) for shape in SHAPES[2::2] for dtypes in MIXED],
)
def test_picks_the_float64_nearest_code(
    n: int, k: int, d: int, x_dtype: torch.dtype, codebook_dtype: torch.dtype
) -> None:
    x = torch.randn(n, d, device="cuda").to(x_dtype)
    codebook = torch.randn(k, d, device="cuda").to(codebook_dtype)
    idx = certified.nearest_code_certified(x, codebook)
    assert idx.dtype == torch.int64 and idx.shape == (n,)
    assert excess_over_float64(x, codebook, idx) <= 4.0


@pytest.mark.parametrize(
    "n,k,d", [(1000, 1023, 129), (513, 4097, 255), (300, 70000, 64), (600, 1500, 300)]
)
def test_codebook_slices_carry_each_rows_state(
    n: int, k: int, d: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The codebook copied in slices of 256 codes (the last one partial), and rows wider than
    256 features in slices of 256 rows: the rows' best scores and entries carry from slice to
    slice, and the answer is the float64 nearest."""
    slices_of(certified.SLICE_ALIGN, monkeypatch, d)
    assert certified.per_slice(1, k, d, certified.SLICE_BYTES) == certified.SLICE_ALIGN
    x = torch.randn(n, d, device="cuda")
    codebook = torch.randn(k, d, device="cuda")
    assert excess_over_float64(x, codebook, certified.nearest_code_certified(x, codebook)) <= 4.0


@pytest.mark.parametrize("size,spread", [(6, False), (6, True), (2, False)])
def test_near_ties_below_fp16_resolution_get_the_float64_nearest(size: int, spread: bool) -> None:
    """Clusters of ``size`` codes 10⁻⁴ apart (fp16 resolves 5·10⁻⁴, bf16 4·10⁻³; float32 scores
    3·10⁻⁵ here, coarser than the distances between a cluster's codes): fast mode misses the
    nearest often; the certified search never does, whether a cluster's codes sit in one tile
    of the codebook (six: kept as the whole tile; two: as two codes) or are spread over it."""
    base = torch.randn(200, 64, device="cuda")
    noise = 1e-4 * torch.randn(200, size, 64, device="cuda")
    codebook = (base[:, None] + noise).reshape(-1, 64)
    if spread:
        codebook = codebook[torch.randperm(len(codebook), device="cuda")]
    x = base[torch.randint(0, 200, (20000,), device="cuda")] + 1e-4 * torch.randn(
        20000, 64, device="cuda"
    )
    _, expected = float64_nearest(x, codebook)
    assert int((fast_codes(x, codebook) != expected).sum()) > 1000  # hard for bf16 products
    assert torch.equal(certified.nearest_code_certified(x, codebook), expected)


@pytest.mark.parametrize("n,k,d", [(1000, 77, 5), (4099, 2000, 40), (257, 300, 300)])
def test_integer_inputs_give_the_reference_indices_with_lowest_index_ties(
    n: int, k: int, d: int
) -> None:
    x = torch.randint(-3, 4, (n, d), device="cuda").float()
    codebook = torch.randint(-3, 4, (k, d), device="cuda").float()
    codebook[k // 2 : 2 * (k // 2)] = codebook[: k // 2]  # duplicated codes: ties
    expected = nearest_code_reference(x.cpu(), codebook.cpu()).cuda()
    assert torch.equal(certified.nearest_code_certified(x, codebook), expected)


def test_rows_with_more_candidates_than_slots_fall_back() -> None:
    """40 copies of one code (more than SLOTS candidates for the rows near it) at scattered
    indices: those rows go to the tf32x3 fallback, which keeps the lowest copy."""
    k, d = 5000, 48
    codebook = torch.randn(k, d, device="cuda")
    copies = torch.randperm(k, device="cuda")[:40]
    codebook[copies] = codebook[copies[0]].clone()
    x = torch.randn(3000, d, device="cuda")
    x[::3] = codebook[copies[0]] + 0.01 * torch.randn(1000, d, device="cuda")
    idx = certified.nearest_code_certified(x, codebook)
    assert torch.equal(idx[::3], copies.min().expand(1000))
    expected = nearest_code_reference(x.cpu(), codebook.cpu()).cuda()
    assert torch.equal(idx, expected)


@pytest.mark.parametrize("sliced", [False, True])
def test_codes_ever_nearer_along_the_codebook_start_the_entries_again(
    sliced: bool, monkeypatch: pytest.MonkeyPatch, fallback_rows: list[int]
) -> None:
    """Codes ordered from far to near for every row: tiles keep raising the rows' best
    scores, and each new best code passes when it is tested, so a row would keep far more
    entries than SLOTS (a tile of 64 codes: 141 tiles) unless a rise past the bound empties
    them; no row may fall back, and the answer is the float64 nearest."""
    if sliced:
        slices_of(1024, monkeypatch, 32)
    centre = torch.randn(32, device="cuda")
    spread = torch.linspace(3.0, 0.01, 9000, device="cuda")[:, None]
    codebook = centre + spread * torch.randn(9000, 32, device="cuda")
    x = centre + 0.001 * torch.randn(2000, 32, device="cuda")
    _, expected = float64_nearest(x, codebook)
    assert torch.equal(certified.nearest_code_certified(x, codebook), expected)
    assert fallback_rows == [0]


@pytest.mark.parametrize("d", [16, 200])
def test_rows_of_several_groups_fall_back_in_codebook_slices(
    d: int, fallback_rows: list[int]
) -> None:
    """In each of three groups, 40 scattered copies of a code and rows near it: those rows
    go to the fallback, which searches them over codebook slices, groups apart."""
    x = torch.randn(3, 700, d, device="cuda")
    codebook = torch.randn(3, 9000, d, device="cuda")
    for g in range(3):
        copies = torch.randperm(9000, device="cuda")[:40]
        codebook[g, copies] = codebook[g, copies[0]].clone()
        x[g, ::2] = codebook[g, copies[0]] + 0.01 * torch.randn(350, d, device="cuda")
    idx = certified.nearest_code_certified(x, codebook)
    assert fallback_rows[0] >= 3 * 300
    for g in range(3):
        # the fallback is tf32x3: nearest up to float32 rounding
        d64, expected = float64_nearest(x[g], codebook[g])
        chosen = d64.gather(1, idx[g][:, None]).squeeze(1)
        scale = x[g].double().pow(2).sum(1) + codebook[g].double().pow(2).sum(1).max()
        assert float(((chosen - d64.min(1).values) / (scale * d * 2.0**-23)).max()) <= 1.0
        assert float((idx[g] == expected).float().mean()) > 0.99


def test_batched_groups_never_pick_a_neighbouring_groups_codes() -> None:
    x = torch.randn(4, 3001, 24, device="cuda")
    codebook = torch.randn(4, 2570, 24, device="cuda")
    codebook[1] += 100.0  # group 1's codes far away: a mix-up would show
    idx = certified.nearest_code_certified(x, codebook)
    for g in range(4):
        assert excess_over_float64(x[g], codebook[g], idx[g]) <= 4.0


def test_non_finite_rows_get_an_index_in_range() -> None:
    x = torch.randn(500, 32, device="cuda")
    x[7, 3] = float("nan")
    x[9, 0] = float("inf")
    codebook = torch.randn(300, 32, device="cuda")
    idx = certified.nearest_code_certified(x, codebook)
    assert int(idx.min()) >= 0 and int(idx.max()) < 300
    finite = torch.ones(500, dtype=torch.bool, device="cuda")
    finite[[7, 9]] = False
    assert excess_over_float64(x[finite], codebook, idx[finite]) <= 4.0


@pytest.mark.parametrize("scale", [1e-30, 1e-3, 1.0, 1e6, 1e30])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_error_bound_holds_for_scaled_fp16_products(scale: float, dtype: torch.dtype) -> None:
    """The bound ``β·‖x‖·‖c‖ + γ·‖c‖²/2 + tiny·(‖x‖ + ‖c‖ + 1)`` (centred, scaled units) against
    the measured error of fp16 tensor-core scores (cuBLAS, float32 accumulation) of the
    centred, scaled operands, with inputs from 10⁻³⁰ to 10³⁰ (whose squares under- or
    overflow float32 unless scaled first), and data off the origin (the centring's own
    rounding included)."""
    d = 256
    x = (scale * (torch.randn(1, 2048, d, device="cuda") + 3.0)).to(dtype)
    weights = torch.rand(1, 4096, 1, device="cuda")
    codebook = (scale * (torch.randn(1, 4096, d, device="cuda") * weights + 3.0)).to(dtype)
    centre = certified.codebook_centres(codebook)
    scale = certified.power_of_two_scale(x, codebook, centre)
    sigma = float(scale)
    largest = max(float((x.float() - centre).abs().max()), float((codebook - centre).abs().max()))
    assert 2.0**14 <= sigma * largest < 2.0**15
    # The operands as the kernel makes them: v − μ in float32, times σ, to fp16 (to nearest).
    x_half = ((x[0].float() - centre) * sigma).half()
    codebook_half = ((codebook[0].float() - centre) * sigma).half()
    x64 = sigma * (x[0].double() - centre.double())
    c64 = sigma * (codebook[0].double() - centre.double())
    exact = x64 @ c64.T - 0.5 * c64.pow(2).sum(1)
    half = certified.centred_half_norms(codebook, centre, scale)[0]
    product = torch.mm(x_half, codebook_half.T, out_dtype=torch.float32)
    beta, gamma, tiny = certified.error_factors(d)
    x_norm, c_norm = x64.norm(dim=1)[:, None], c64.norm(dim=1)
    bound = beta * x_norm * c_norm + gamma * 0.5 * c_norm**2 + tiny * (x_norm + c_norm + 1)
    ratio = ((product - half).double() - exact).abs() / bound
    assert float(ratio.max()) <= 1.0
    if scale == 1.0:
        assert float(ratio.max()) > 0.005  # the bound is not vacuous either


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("k,d", [(1000, 200), (3001, 20), (5, 1)])
def test_centres_are_the_groups_mean_codes(dtype: torch.dtype, k: int, d: int) -> None:
    codebook = (5.0 + torch.randn(3, k, d, device="cuda")).to(dtype)
    expected = codebook.double().mean(dim=1)
    centre = certified.codebook_centres(codebook)
    assert centre.dtype == torch.float32 and centre.shape == (3, d)
    torch.testing.assert_close(centre.double(), expected, rtol=1e-6, atol=1e-6)


def test_data_far_from_the_origin_settles_without_the_fallback(fallback_rows: list[int]) -> None:
    """Rows and codes about 1,000 from the origin and about 1 apart: a bound on products of the
    raw inputs (about 2⁻¹⁰·‖x‖·‖c‖) would pass every code; centred on the mean code it
    follows the spread, and every row settles on the float64 nearest."""
    x = 1000.0 + torch.randn(5000, 64, device="cuda")
    codebook = 1000.0 + torch.randn(4096, 64, device="cuda")
    _, expected = float64_nearest(x, codebook)
    assert torch.equal(certified.nearest_code_certified(x, codebook), expected)
    assert fallback_rows == [0]


def test_exact_calls_are_captured_in_cuda_graphs() -> None:
    x = torch.randn(8192, 128, device="cuda")
    codebook = torch.randn(4096, 128, device="cuda")
    codebook[:5] = codebook[100:105]  # ties for some rows
    expected = nearest_code(x, codebook)  # N·K·D = 2^32: the certified search; compiles it
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.stream(stream), torch.cuda.graph(graph, stream=stream):
        captured = nearest_code(x, codebook)
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(captured, expected)
    assert excess_over_float64(x, codebook, captured) <= 4.0


def test_large_exact_calls_go_through_the_certified_search(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    original = certified.nearest_code_certified
    monkeypatch.setattr(
        certified, "nearest_code_certified", lambda *args: calls.append(1) or original(*args)
    )
    x, codebook = torch.randn(65536, 128, device="cuda"), torch.randn(4096, 128, device="cuda")
    nearest_code(x, codebook)  # 2^35 multiply-adds, 4,096 codes
    nearest_code(x[:8192], codebook)  # 2^32: the split search
    nearest_code(x.repeat(4, 1), codebook[:1024])  # 1,024 codes: the split search
    nearest_code(x, codebook, fast=True)
    assert calls == [1]
    wide = torch.randn(65536, 300, device="cuda")
    nearest_code(wide, torch.randn(4096, 300, device="cuda"))  # rows streamed along D
    assert calls == [1, 1]


@pytest.mark.parametrize("n,k,d", [(65536, 16384, 64), (4096, 262144, 64)])
def test_extra_memory_is_linear_in_rows_and_codes(n: int, k: int, d: int) -> None:
    x = torch.randn(n, d, device="cuda")
    codebook = torch.randn(k, d, device="cuda")
    certified.nearest_code_certified(x, codebook)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    certified.nearest_code_certified(x, codebook)
    torch.cuda.synchronize()
    extra = torch.cuda.max_memory_allocated() - base
    # the codebook's fp16 slice (at most SLICE_BYTES: 2 slices of 131,072 codes at K = 2^18);
    # a row's best score, entry count, candidates, list entry and index; a code's half-norm
    copy = min(2 * k * d, certified.SLICE_BYTES)
    assert extra < copy + (4 + 4 + 8 * certified.SLOTS + 4 + 8) * n + 8 * k + (1 << 20)
