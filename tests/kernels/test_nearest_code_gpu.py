"""The fused CUDA kernel against the reference, on irregular sizes (run on a GPU machine)."""

from __future__ import annotations

import pytest
import torch

from vqcodec.kernels import nearest_code, nearest_code_reference
from vqcodec.quantizers import GroupedQuantizer, ResidualQuantizer, VectorQuantizer

pytestmark = pytest.mark.gpu
SHAPES = [
    (1, 1, 1),
    (17, 33, 3),
    (1000, 1023, 129),
    (513, 4097, 300),
    (300, 70000, 64),
    (64, 5, 520),
]


def excess_distance(
    x: torch.Tensor, codebook: torch.Tensor, idx: torch.Tensor, relative: float = 0.0
) -> torch.Tensor:
    """How much farther (float64) each chosen code is than the true nearest, relative to the
    float32 rounding scale of the distance computation, or to ``relative`` times the nearest
    distance where that is larger."""
    x64, c64 = x.double(), codebook.double()
    d = torch.cdist(x64, c64).pow(2)
    chosen = d.gather(1, idx[:, None]).squeeze(1)
    nearest = d.min(1).values
    scale = (x64.pow(2).sum(1) + c64.pow(2).sum(1).max()) * x.shape[1] * 2.0**-23
    return (chosen - nearest) / torch.maximum(scale, relative * nearest)


@pytest.mark.parametrize("n,k,d", SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_exact_mode_picks_a_nearest_code(n: int, k: int, d: int, dtype: torch.dtype) -> None:
    x = torch.randn(n, d, device="cuda").to(dtype)
    codebook = torch.randn(k, d, device="cuda").to(dtype)
    out = torch.full((n,), -7, dtype=torch.int64, device="cuda")
    out.copy_(nearest_code(x, codebook))
    assert int(out.min()) >= 0 and int(out.max()) < k
    assert float(excess_distance(x, codebook, out).max()) <= 1.0


@pytest.mark.parametrize("n,k,d", SHAPES)
def test_fast_mode_is_nearest_up_to_bf16_rounding(n: int, k: int, d: int) -> None:
    x = torch.randn(n, d, device="cuda", dtype=torch.bfloat16)
    codebook = torch.randn(k, d, device="cuda", dtype=torch.bfloat16)
    idx = nearest_code(x, codebook, fast=True)
    assert int(idx.min()) >= 0 and int(idx.max()) < k
    # Inputs are already bf16, so products are exact in float32 accumulation: only the order of
    # accumulation differs from the reference.
    assert float(excess_distance(x, codebook, idx).max()) <= 1.0


@pytest.mark.parametrize("n,k,d", [(513, 4097, 300), (64, 5, 520), (300, 1000, 1030)])
def test_fast_mode_on_wide_float32_rows_searches_their_bf16_roundings(
    n: int, k: int, d: int
) -> None:
    """Rows too wide to stay on chip are rounded to bf16 copies (codes too) before the search:
    the answer is a nearest code of the rounded row among the rounded codes."""
    x = torch.randn(n, d, device="cuda")
    codebook = torch.randn(k, d, device="cuda")
    idx = nearest_code(x, codebook, fast=True)
    assert float(excess_distance(x.bfloat16(), codebook.bfloat16(), idx).max()) <= 1.0


@pytest.mark.parametrize("groups,k,d", [(1, 1, 1), (3, 17, 33), (2, 1000, 520), (1, 4097, 256)])
def test_half_norms_of_irregular_codebooks(groups: int, k: int, d: int) -> None:
    """The kernels' ``0.5·‖c‖²`` (D = 520: more than one load of 512 a code), with padding."""
    from vqcodec.kernels.triton_nearest_code import half_norms

    codebook = torch.randn(groups, k, d, device="cuda").bfloat16()
    expected = 0.5 * codebook.float().pow(2).sum(-1)
    got = half_norms(codebook, padded_k=k + 21, fill=7.0)
    assert got.shape == (groups, k + 21)
    torch.testing.assert_close(got[:, :k], expected, rtol=1e-5, atol=1e-6)
    assert bool((got[:, k:] == 7.0).all())


@pytest.mark.parametrize("groups,k,d", [(1, 1, 1), (3, 17, 33), (2, 1000, 520), (1, 4097, 256)])
def test_half_norm_terms_add_up_to_the_half_norms(groups: int, k: int, d: int) -> None:
    """The table the Hopper kernel multiplies to add the codes' half-norms: ones where the rows'
    terms go, three bf16 terms that sum to the float32 half-norm, zeros, and padding rows."""
    from vqcodec.kernels.triton_nearest_code import TERMS_WIDTH, half_norm_terms, half_norms

    codebook = 3 * torch.randn(groups, k, d, device="cuda").bfloat16()
    table = torch.empty(groups, k + 21, TERMS_WIDTH, dtype=torch.bfloat16, device="cuda")
    half_norm_terms(codebook, out=table, fill=1e38)
    norms = half_norms(codebook, padded_k=k + 21, fill=1e38)
    assert bool((table[..., :3] == 1).all()) and bool((table[..., 6:] == 0).all())
    total = table[..., 3:6].double().sum(-1)
    # Three bf16 terms keep every bit of a float32: the sum is the float32 norm to its rounding.
    torch.testing.assert_close(total, norms.double(), rtol=2.0**-23, atol=0.0)
    assert bool((total[:, k:] > 0.99e38).all())


@pytest.mark.parametrize("fast", [False, True])
@pytest.mark.parametrize("n,k,d", [(1000, 77, 5), (4099, 2000, 40), (257, 300, 300)])
def test_integer_inputs_give_the_reference_indices_with_lowest_index_ties(
    n: int, k: int, d: int, fast: bool
) -> None:
    x = torch.randint(-3, 4, (n, d), device="cuda").float()
    codebook = torch.randint(-3, 4, (k, d), device="cuda").float()
    codebook[k // 2 : 2 * (k // 2)] = codebook[: k // 2]  # duplicated codes: ties
    expected = nearest_code_reference(x.cpu(), codebook.cpu()).cuda()
    assert torch.equal(nearest_code(x, codebook, fast=fast), expected)


def test_batched_groups_in_one_call() -> None:
    x = torch.randn(3, 1001, 24, device="cuda")
    codebook = torch.randn(3, 257, 24, device="cuda")
    idx = nearest_code(x, codebook)
    for g in range(3):
        assert float(excess_distance(x[g], codebook[g], idx[g]).max()) <= 1.0


def test_non_contiguous_inputs() -> None:
    x = torch.randn(64, 300, device="cuda").T  # [300, 64] with strides (1, 300)
    codebook = torch.randn(100, 64, device="cuda")[::2]
    assert torch.equal(
        nearest_code(x, codebook), nearest_code(x.contiguous(), codebook.contiguous())
    )


def test_no_n_by_k_memory() -> None:
    n, k, d = 65536, 65536, 64
    x = torch.randn(n, d, device="cuda", dtype=torch.bfloat16)
    codebook = torch.randn(k, d, device="cuda", dtype=torch.bfloat16)
    nearest_code(x, codebook, fast=True)  # compile and autotune outside the measurement
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    nearest_code(x, codebook, fast=True)
    torch.cuda.synchronize()
    extra = torch.cuda.max_memory_allocated() - base
    assert extra < 16 * (n + k) + (1 << 20)  # indices + half-norms, far below N·K·4 = 16 GiB


def test_opcheck_and_compile_on_cuda() -> None:
    op = torch.ops.vqcodec.nearest_code.default
    x, codebook = torch.randn(100, 40, device="cuda"), torch.randn(70, 40, device="cuda")
    torch.library.opcheck(op, (x, codebook, False))
    torch.library.opcheck(op, (x, codebook, True))
    fn = torch.compile(lambda a, b: nearest_code(a * 1.0, b), fullgraph=True)
    assert torch.equal(fn(x, codebook), nearest_code(x, codebook))
    fast = torch.compile(lambda a, b: nearest_code(a * 1.0, b, fast=True), fullgraph=True)
    assert torch.equal(fast(x, codebook), nearest_code(x, codebook, fast=True))


@pytest.mark.parametrize(
    "make",
    [
        lambda: VectorQuantizer(64, 1000, kmeans_init=True),
        lambda: ResidualQuantizer(64, 500, 3, quantizer_dropout=0.5),
        lambda: GroupedQuantizer(64, 300, 4),
    ],
)
def test_quantizers_on_cuda_round_trip(make) -> None:
    quantizer = make().cuda()
    z = torch.randn(4, 64, 333, device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        quantizer(z)
    quantizer.eval()
    out = quantizer(z)
    assert torch.equal(quantizer.decode(quantizer.encode(z)), out.z_q)


# The Gluon kernel for Hopper (fast mode on sm_90).
on_hopper = pytest.mark.skipif(
    not torch.cuda.is_available() or torch.cuda.get_device_capability() != (9, 0),
    reason="the Gluon kernel needs a Hopper GPU (sm_90)",
)
HOPPER_SHAPES = [
    (1, 1, 8),
    (17, 33, 16),
    (1000, 1023, 136),
    (513, 4097, 256),
    (300, 70000, 64),
    (4099, 2000, 40),
    (70000, 129, 8),
    (70000, 1000, 128),  # persistent by default: several row tiles a program
    (999, 200, 128),  # two codebook tiles: the last one is started after the tile loop
]


def rounded(t: torch.Tensor) -> torch.Tensor:
    """The operand the kernel multiplies: fp16 stays fp16, everything else becomes bf16."""
    return t if t.dtype == torch.float16 else t.bfloat16()


@on_hopper
@pytest.mark.parametrize("n,k,d", HOPPER_SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_hopper_kernel_is_nearest_on_its_rounded_operands(
    n: int, k: int, d: int, dtype: torch.dtype
) -> None:
    from vqcodec.kernels import gluon_nearest_code as hopper

    x = torch.randn(n, d, device="cuda").to(dtype)
    codebook = torch.randn(k, d, device="cuda").to(dtype)
    assert hopper.supports(x, codebook)
    idx = hopper.nearest_code_gluon(x, codebook)
    assert int(idx.min()) >= 0 and int(idx.max()) < k
    # Within the float32 rounding scale, or within 2^-15 of the nearest distance: the kernel
    # keeps 17 of the 24 mantissa bits when it compares half squared distances.
    excess = excess_distance(rounded(x), rounded(codebook), idx, relative=2.0**-15)
    assert float(excess.max()) <= 1.0


def _ws_config(norms_in_product: bool = False):
    """The warp-specialised kernel's default launch, the half-norms added before the products
    or (``norms_in_product``) inside them."""
    from vqcodec.kernels.gluon_nearest_code import TileConfig

    return TileConfig(
        128, 128, 4, x_buffers=2, warp_specialized=True, norms_in_product=norms_in_product
    )


WS_NORMS = pytest.mark.parametrize("norms_in_product", [False, True], ids=["added", "in_product"])


@on_hopper
@pytest.mark.parametrize(
    "n,k,d,warp_specialized",
    [
        (1000, 77, 8, False),
        (4099, 2000, 40, False),
        (257, 300, 256, False),
        (5000, 1000, 64, False),
        (1000, 77, 8, True),
        (40_001, 2000, 40, True),
        (5000, 1000, 64, True),
        (5000, 1000, 128, True),
        (1000, 77, 8, "in_product"),
        (40_001, 2000, 40, "in_product"),
        (5000, 1000, 64, "in_product"),
        (5000, 1000, 128, "in_product"),
    ],
)
def test_hopper_kernel_gives_reference_indices_and_lowest_index_ties(
    n: int, k: int, d: int, warp_specialized: bool | str
) -> None:
    from vqcodec.kernels import gluon_nearest_code as hopper

    x = torch.randint(-3, 4, (n, d), device="cuda").bfloat16()
    codebook = torch.randint(-3, 4, (k, d), device="cuda").bfloat16()
    codebook[k // 2 : 2 * (k // 2)] = codebook[: k // 2]  # duplicated codes: ties
    expected = nearest_code_reference(x.float().cpu(), codebook.float().cpu()).cuda()
    config = _ws_config(warp_specialized == "in_product") if warp_specialized else None
    assert torch.equal(hopper.nearest_code_gluon(x, codebook, config), expected)


@on_hopper
@pytest.mark.parametrize(
    "n,k,warp_specialized",
    [
        (1001, 33, False),
        (1001, 33, True),
        (40_001, 300, True),
        (1001, 33, "in_product"),
        (40_001, 300, "in_product"),
    ],
)
def test_hopper_kernel_groups_never_pick_a_neighbouring_groups_codes(
    n: int, k: int, warp_specialized: bool | str
) -> None:
    from vqcodec.kernels import gluon_nearest_code as hopper

    # Group 0's last codebook tile runs into group 1's codes, which equal group 0's rows: a
    # padding bug would pick one of them (an index >= K). The warp-specialised launch at K = 33
    # also searches two padding tiles past the codebook.
    g, d = 3, 64
    config = _ws_config(warp_specialized == "in_product") if warp_specialized else None
    x = torch.randn(g, n, d, device="cuda").bfloat16()
    codebook = 10 + torch.randn(g, k, d, device="cuda").bfloat16()
    codebook[1, :] = x[0, :k]
    idx = hopper.nearest_code_gluon(x, codebook, config)
    assert idx.shape == (g, n) and int(idx.max()) < k
    for group in range(g):
        expected = hopper.nearest_code_gluon(x[group], codebook[group], config)
        assert torch.equal(idx[group], expected)


def _persistent_configs():
    from vqcodec.kernels.gluon_nearest_code import TileConfig

    # Several row tiles per program; rings deeper than a row tile's codebook (K = 50) make the
    # loads run ahead into the next row tile and wrap around the codebook more than once.
    return [TileConfig(64, 64, 3, 1, 1), TileConfig(64, 128, 2, 1, 2), TileConfig(128, 64, 2, 2, 2)]


@on_hopper
@pytest.mark.parametrize("config", _persistent_configs(), ids=str)
@pytest.mark.parametrize("k", [50, 130, 1000])  # 1, 2-3 and 8-16 codebook tiles
def test_persistent_programs_give_the_codes_of_one_program_per_row_tile(config, k: int) -> None:
    from dataclasses import replace

    from vqcodec.kernels import gluon_nearest_code as hopper

    g, n, d = 3, 40_001, 64
    x = torch.randn(g, n, d, device="cuda").bfloat16()
    codebook = torch.randn(g, k, d, device="cuda").bfloat16()
    plain = replace(config, programs_per_sm=0, x_buffers=1)
    # Same tiles, same order of products and minima: bit-for-bit the same choices.
    assert torch.equal(
        hopper.nearest_code_gluon(x, codebook, config),
        hopper.nearest_code_gluon(x, codebook, plain),
    )
    ints = torch.randint(-3, 4, (g, n // 4, d), device="cuda").bfloat16()
    codes = torch.randint(-3, 4, (g, k, d), device="cuda").bfloat16()
    codes[:, k // 2 : 2 * (k // 2)] = codes[:, : k // 2]  # duplicated codes: ties
    got = hopper.nearest_code_gluon(ints, codes, config)
    for group in range(g):
        expected = nearest_code_reference(ints[group].float().cpu(), codes[group].float().cpu())
        assert torch.equal(got[group].cpu(), expected)


@on_hopper
@pytest.mark.parametrize(
    "d,k,block", [(256, 300, (128, 128, 2)), (256, 129, (64, 128, 2)), (40, 1000, (128, 64, 3))]
)
def test_code_norms_in_the_column_layout_give_the_same_codes(d: int, k: int, block) -> None:
    from dataclasses import replace

    from vqcodec.kernels import gluon_nearest_code as hopper

    config = hopper.TileConfig(*block, column_norms=True)
    g, n = 2, 3001  # irregular: a partial row tile, a partial codebook tile
    x = torch.randn(g, n, d, device="cuda").bfloat16()
    codebook = torch.randn(g, k, d, device="cuda").bfloat16()
    # The same norms added in the same order: bit-for-bit the same choices.
    assert torch.equal(
        hopper.nearest_code_gluon(x, codebook, config),
        hopper.nearest_code_gluon(x, codebook, replace(config, column_norms=False)),
    )
    ints = torch.randint(-3, 4, (n, d), device="cuda").bfloat16()
    codes = torch.randint(-3, 4, (k, d), device="cuda").bfloat16()
    codes[k // 2 : 2 * (k // 2)] = codes[: k // 2]  # duplicated codes: ties
    expected = nearest_code_reference(ints.float().cpu(), codes.float().cpu())
    assert torch.equal(hopper.nearest_code_gluon(ints, codes, config).cpu(), expected)


# Warp-specialised launches: codebooks of 1 tile, 2, 3, 4, 8, 16 and 547 (below three tiles the
# launcher adds padding tiles; odd counts take the path without a tile pair at the end); 1 to 547
# row tiles (several a program, both row buffers).
WS_SHAPES = [
    (1, 1, 8),
    (17, 33, 16),
    (999, 200, 128),
    (2000, 256, 64),
    (999, 257, 128),
    (3001, 512, 32),
    (4099, 2000, 40),
    (70000, 129, 8),
    (70000, 1000, 128),
    (300, 70000, 64),
    (1000, 1023, 120),
]


@on_hopper
@pytest.mark.parametrize("n,k,d", WS_SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@WS_NORMS
def test_warp_specialized_kernel_makes_the_plain_kernels_choices(
    n: int, k: int, d: int, dtype: torch.dtype, norms_in_product: bool
) -> None:
    from vqcodec.kernels import gluon_nearest_code as hopper

    x = torch.randn(n, d, device="cuda").to(dtype)
    codebook = torch.randn(k, d, device="cuda").to(dtype)
    idx = hopper.nearest_code_gluon(x, codebook, _ws_config(norms_in_product))
    excess = excess_distance(rounded(x), rounded(codebook), idx, relative=2.0**-15)
    assert float(excess.max()) <= 1.0
    plain = hopper.nearest_code_gluon(x, codebook, hopper.TileConfig(64, 128, 2))
    if not norms_in_product:
        # Same 64-row products over the same codebook tiles, folded in the same order: the
        # same choices, bit for bit, as one 64-row program a row tile.
        assert torch.equal(idx, plain)
    else:
        # The tensor cores add the half-norms in another order and rounding: only codes whose
        # distances agree to the last bits kept may differ.
        assert float((idx != plain).float().mean()) <= 1e-3


@on_hopper
@pytest.mark.parametrize("n,k,d", [(999, 200, 128), (40_001, 1000, 64)])
@WS_NORMS
def test_dependent_launch_gives_the_same_codes_eager_and_in_a_cuda_graph(
    n: int, k: int, d: int, norms_in_product: bool
) -> None:
    from vqcodec.kernels import gluon_nearest_code as hopper

    def search(x, codebook, dependent_launch):
        prepared = hopper.PreparedSearch.build(x, codebook, _ws_config(norms_in_product))
        assert prepared.dependent_launch  # the default for warp-specialised launches
        prepared.dependent_launch = dependent_launch
        prepared.compute_half_norms()
        return prepared.run()

    x = torch.randn(n, d, device="cuda").bfloat16()
    codebook = torch.randn(k, d, device="cuda").bfloat16()
    expected = search(x, codebook, False)
    assert torch.equal(search(x, codebook, True), expected)
    # In a graph the launch becomes a programmatic edge: the search must still wait for the
    # norms. The codebook is rewritten before each replay, so stale norms would show.
    static_codebook = torch.zeros_like(codebook)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        search(x, static_codebook, True)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = search(x, static_codebook, True)
    for scale in (1.0, 3.0, 0.5):
        static_codebook.copy_(codebook * scale)
        graph.replay()
        assert torch.equal(out, search(x, static_codebook, False))


_SANITIZED_LAUNCHES = """
import torch
from vqcodec.kernels import gluon_nearest_code as hopper

ws = hopper.TileConfig(128, 128, 4, x_buffers=2, warp_specialized=True)
terms = hopper.TileConfig(128, 128, 4, x_buffers=2, warp_specialized=True, norms_in_product=True)
plain = hopper.TileConfig(64, 128, 2)
torch.manual_seed(0)
for g, n, k, d in [(1, 999, 200, 128), (1, 999, 100, 64), (2, 3001, 256, 40), (1, 999, 257, 128),
                   (1, 4099, 384, 64), (3, 7001, 1000, 40), (1, 40001, 1023, 128)]:
    x = torch.randn(g, n, d, device="cuda")
    c = torch.randn(g, k, d, device="cuda")
    expected = hopper.nearest_code_gluon(x, c, plain)
    assert torch.equal(hopper.nearest_code_gluon(x, c, ws), expected)
    assert float((hopper.nearest_code_gluon(x, c, terms) != expected).float().mean()) <= 1e-3
torch.cuda.synchronize()
print("launches done")
"""


@on_hopper
def test_warp_specialized_kernel_is_clean_under_compute_sanitizer(tmp_path) -> None:
    """ptxas 12.8.93 once built this kernel so that at two codebook tiles a product read shared
    memory out of bounds (see ``_nearest_code_ws_kernel``); memcheck catches any such read."""
    import os
    import shutil
    import subprocess
    import sys

    tool = shutil.which("compute-sanitizer") or "/usr/local/cuda/bin/compute-sanitizer"
    if not os.path.exists(tool):
        pytest.skip("compute-sanitizer is not installed")
    script = tmp_path / "launches.py"
    script.write_text(_SANITIZED_LAUNCHES)
    run = subprocess.run(
        [tool, "--tool", "memcheck", "--error-exitcode", "3", sys.executable, str(script)],
        capture_output=True, text=True, timeout=580,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "launches done" in run.stdout
    assert "ERROR SUMMARY: 0 errors" in run.stdout + run.stderr


@on_hopper
def test_hopper_kernel_takes_views_off_a_16_byte_boundary() -> None:
    from vqcodec.kernels import gluon_nearest_code as hopper

    flat = torch.randn(300 * 64 + 1, device="cuda").bfloat16()
    x = flat[1:].view(300, 64)  # starts 2 bytes past an aligned address: TMA needs 16
    codebook = torch.randn(500, 64, device="cuda").bfloat16()
    assert x.data_ptr() % 16 != 0
    assert torch.equal(
        hopper.nearest_code_gluon(x, codebook), hopper.nearest_code_gluon(x.clone(), codebook)
    )


@on_hopper
def test_fast_mode_on_hopper_goes_through_the_gluon_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    from vqcodec.kernels import gluon_nearest_code as hopper

    calls = []
    original = hopper.nearest_code_gluon
    monkeypatch.setattr(
        hopper, "nearest_code_gluon", lambda *args: calls.append(1) or original(*args)
    )
    # N·K·D = 2^34: large enough for eager calls.
    x = torch.randn(65536, 64, device="cuda", dtype=torch.bfloat16)
    codebook = torch.randn(4096, 64, device="cuda", dtype=torch.bfloat16)
    nearest_code(x, codebook, fast=True)
    assert calls == [1]
    nearest_code(x, codebook)  # exact mode: the split search, no fast pass
    assert calls == [1]
    nearest_code(x[:, :60].contiguous(), codebook[:, :60].contiguous(), fast=True)  # D % 8 != 0
    small_x, small_codebook = x[:100], codebook[:70]
    expected = nearest_code(small_x, small_codebook, fast=True)  # small and eager: Triton
    nearest_code(small_x, small_codebook)  # small exact: the split search
    assert calls == [1]
    # N·K = 2^28 row-code pairs at D = 8: few multiply-adds, but many pairs.
    nearest_code(torch.randn(262144, 8, device="cuda"), torch.randn(1024, 8, device="cuda"), True)
    assert calls == [1, 1]
    # Captured into a CUDA graph, small calls come here too (no host time to save).
    original(small_x, small_codebook)  # compile these sizes' kernels outside the capture
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.stream(stream), torch.cuda.graph(graph, stream=stream):
        captured = nearest_code(small_x, small_codebook, fast=True)
    graph.replay()
    torch.cuda.synchronize()
    assert calls == [1, 1, 1]
    assert torch.equal(captured, expected)


@pytest.mark.parametrize("fast", [False, True])
def test_eager_calls_agree_with_the_op_on_cuda(fast: bool) -> None:
    x, codebook = torch.randn(1000, 64, device="cuda"), torch.randn(300, 64, device="cuda")
    op = torch.ops.vqcodec.nearest_code.default
    assert torch.equal(nearest_code(x, codebook, fast=fast), op(x, codebook, fast))
