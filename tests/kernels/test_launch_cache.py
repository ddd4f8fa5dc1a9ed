"""How a ``LaunchCache`` replays a launch (CPU: nothing is launched; see the GPU tests)."""

from __future__ import annotations

import pytest

pytest.importorskip("triton")

from vqcodec.kernels import triton_nearest_code as fused  # noqa: E402
from vqcodec.kernels.launch import LaunchCache  # noqa: E402


class _Config:
    kwargs = {"BLOCK_N": 64, "BLOCK_K": 32}


def test_replay_binds_the_constexprs_after_the_positional_arguments() -> None:
    cache = LaunchCache(fused._half_norm_kernel)
    args = ("codebook", "out", 1000, 1008, 24, 0.0)
    grid, constants = cache._replay((63, 2), args, {"BLOCK_K": 16, "BLOCK_D": 32}, None)
    # BLOCK_K, BLOCK_D, then the defaults of LAUNCH_DEPENDENTS and AS_TERMS.
    assert constants == (16, 32, False, False)
    assert grid == (63, 2, 1)


def test_replay_takes_the_autotuned_config_and_evaluates_the_grid_with_it() -> None:
    cache = LaunchCache(fused._fast_kernel)
    args = ("x", "c", "norms", "out", 1000, 300, 64, 64000, 19200, 1024, 512)
    kwargs = {"D_CHUNK": 64, "NUM_D_CHUNKS": 1, "EXACT": False}
    grid, constants = cache._replay(
        lambda meta: (1000 // meta["BLOCK_N"] + 1, 3), args, kwargs, _Config()
    )
    assert constants == (64, 1, False, 64, 32)
    assert grid == (16, 3, 1)


def test_replay_gives_up_when_a_parameter_has_no_value() -> None:
    cache = LaunchCache(fused._half_norm_kernel)
    assert cache._replay((1,), ("codebook", "out", 1, 1, 1, 0.0), {"BLOCK_K": 16}, None) is None


def test_only_jit_functions_are_cached() -> None:
    with pytest.raises(TypeError, match="jit function"):
        LaunchCache(lambda: None)


def test_host_integer_helpers_match_tritons() -> None:
    import triton

    from vqcodec.kernels.launch import cdiv, next_power_of_2

    for n in [1, 2, 3, 15, 16, 17, 1000, 1024, 1025, 2**31 - 1, 2**31, 2**40 + 3]:
        assert next_power_of_2(n) == triton.next_power_of_2(n)
        for b in [1, 2, 16, 128, 1000]:
            assert cdiv(n, b) == triton.cdiv(n, b)
