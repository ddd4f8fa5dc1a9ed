"""Repeated launches skip the JIT and launch what it chose (run on a GPU machine). Every test here
runs with ``LaunchCache.verify`` on (tests/conftest.py): each direct launch is checked against
the kernel, grid and constexprs the JIT would use for its arguments."""

from __future__ import annotations

import pytest
import torch

from vqcodec.kernels.launch import LaunchCache, StaleLaunchError

pytestmark = pytest.mark.gpu
on_hopper = pytest.mark.skipif(
    not torch.cuda.is_available() or torch.cuda.get_device_capability() != (9, 0),
    reason="the Gluon kernel needs a Hopper GPU (sm_90)",
)


def _count_jit_launches(monkeypatch: pytest.MonkeyPatch, cache: LaunchCache) -> list[int]:
    calls: list[int] = []
    original = cache._through_jit
    monkeypatch.setattr(cache, "_through_jit", lambda *args: calls.append(1) or original(*args))
    return calls


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize(
    "n,k,d,dtype",
    [
        (1, 1, 1, torch.float32),
        (17, 33, 3, torch.bfloat16),
        (1000, 1023, 129, torch.float16),
        (4096, 1024, 128, torch.float32),
    ],
)
def test_repeated_triton_calls_skip_the_jit(
    monkeypatch: pytest.MonkeyPatch, fast: bool, n: int, k: int, d: int, dtype: torch.dtype
) -> None:
    from vqcodec.kernels import triton_nearest_code as fused

    search = _count_jit_launches(monkeypatch, fused._search_launches[fast])
    norms = _count_jit_launches(monkeypatch, fused._half_norm_launches)
    x = torch.randn(n, d, device="cuda").to(dtype)
    codebook = torch.randn(k, d, device="cuda").to(dtype)
    first = fused.nearest_code_triton(x, codebook, fast)
    through_jit = len(search), len(norms)
    assert through_jit[0] <= 1 and through_jit[1] <= 1
    for _ in range(3):
        assert torch.equal(fused.nearest_code_triton(x, codebook, fast), first)
    assert (len(search), len(norms)) == through_jit


def test_a_view_off_a_16_byte_boundary_gets_its_own_launch() -> None:
    from vqcodec.kernels import triton_nearest_code as fused

    flat = torch.randn(300 * 64 + 1, device="cuda")
    shifted = flat[1:].view(300, 64)  # 4 bytes past an aligned address
    aligned = shifted.clone()
    assert shifted.data_ptr() % 16 != 0
    codebook = torch.randn(500, 64, device="cuda")
    expected = fused.nearest_code_triton(aligned, codebook, False)
    for x in (shifted, aligned, shifted, aligned):
        assert torch.equal(fused.nearest_code_triton(x, codebook, False), expected)


def test_verify_catches_a_key_that_misses_a_specialisation() -> None:
    from vqcodec.kernels import triton_nearest_code as fused

    cache = LaunchCache(fused._half_norm_kernel)

    def launch(d: int) -> tuple[torch.Tensor, torch.Tensor]:
        codebook = torch.randn(1, 64, d, device="cuda")
        out = torch.empty(1, 64, device="cuda")
        cache("one key for every D", (4, 1), codebook, out, 64, 64, d, 0.0, BLOCK_K=16, BLOCK_D=32)
        return codebook, out

    launch(16)  # through the JIT
    codebook, out = launch(16)  # direct, and verified
    torch.testing.assert_close(out, 0.5 * codebook.pow(2).sum(-1))
    with pytest.raises(StaleLaunchError, match="no longer fixes its kernel"):
        launch(17)  # Triton specialises D = 16 as divisible by 16, D = 17 not: another kernel


def test_launch_hooks_see_every_launch() -> None:
    from triton import knobs

    from vqcodec.kernels import triton_nearest_code as fused

    x = torch.randn(200, 32, device="cuda")
    codebook = torch.randn(100, 32, device="cuda")
    expected = fused.nearest_code_triton(x, codebook, True)
    seen: list[str] = []

    def hook(metadata: object) -> None:
        seen.append(metadata.get()["name"])

    knobs.runtime.launch_enter_hook.add(hook)
    try:
        for _ in range(2):
            assert torch.equal(fused.nearest_code_triton(x, codebook, True), expected)
    finally:
        knobs.runtime.launch_enter_hook.remove(hook)
    assert seen == ["_half_norm_kernel", "_nearest_code_kernel"] * 2


@on_hopper
@pytest.mark.parametrize("warp_specialized", [False, True])
def test_repeated_gluon_calls_skip_the_jit(
    monkeypatch: pytest.MonkeyPatch, warp_specialized: bool
) -> None:
    from vqcodec.kernels import gluon_nearest_code as hopper

    config = (
        hopper.TileConfig(128, 128, 4, x_buffers=2, warp_specialized=True, norms_in_product=True)
        if warp_specialized
        else hopper.TileConfig(64, 128, 2, programs_per_sm=2, x_buffers=2)
    )
    cache = hopper._ws_launches if warp_specialized else hopper._plain_launches
    search = _count_jit_launches(monkeypatch, cache)
    x = torch.randn(3000, 64, device="cuda", dtype=torch.bfloat16)
    codebook = torch.randn(700, 64, device="cuda", dtype=torch.bfloat16)
    first = hopper.nearest_code_gluon(x, codebook, config)
    through_jit = len(search)
    assert through_jit <= 1
    for _ in range(3):
        assert torch.equal(hopper.nearest_code_gluon(x, codebook, config), first)
    assert len(search) == through_jit
    # A new shape is a new key: one more launch through the JIT.
    hopper.nearest_code_gluon(x[:2000], codebook, config)
    assert len(search) == through_jit + 1
