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


def excess_distance(x: torch.Tensor, codebook: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """How much farther (float64) each chosen code is than the true nearest, relative to the
    float32 rounding scale of the distance computation."""
    x64, c64 = x.double(), codebook.double()
    d = torch.cdist(x64, c64).pow(2)
    chosen = d.gather(1, idx[:, None]).squeeze(1)
    scale = (x64.pow(2).sum(1) + c64.pow(2).sum(1).max()) * x.shape[1] * 2.0**-23
    return (chosen - d.min(1).values) / scale


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
