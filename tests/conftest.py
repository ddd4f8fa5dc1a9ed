"""Shared test set-up: the gpu marker skips without CUDA; seeds are fixed per test."""

from __future__ import annotations

import pytest
import torch


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _verify_launch_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every kernel launch the tests repeat is checked against the JIT's own choice of kernel,
    grid and constexprs (``LaunchCache.verify``): a launch key that misses something the kernel
    is specialised on fails the test that repeats it."""
    try:
        from vqcodec.kernels.launch import LaunchCache
    except ImportError:  # no Triton: nothing is launched
        return
    monkeypatch.setattr(LaunchCache, "verify", True)
