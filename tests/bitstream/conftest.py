"""Shared fixtures: synthetic codes with realistic skew and correlation, and their tables."""

from __future__ import annotations

import pytest
import torch

from vqcodec.bitstream import CodeLayout, CodeTables


def skewed_codes(
    shape: tuple[int, ...], codebook_size: int, seed: int, repeat: float = 0.5
) -> torch.Tensor:
    """Codes drawn from one fixed peaked distribution per alphabet size (so tables fitted on
    one draw suit another), each repeating the previous position's code with probability
    ``repeat`` (along the last axis)."""
    logits = torch.randn(codebook_size, generator=torch.Generator().manual_seed(codebook_size))
    probs = torch.softmax(2.0 * logits, 0)
    generator = torch.Generator().manual_seed(seed)
    codes = torch.multinomial(
        probs, int(torch.tensor(shape).prod()), replacement=True, generator=generator
    )
    codes = codes.reshape(shape)
    keep = torch.rand(shape, generator=generator) < repeat
    for t in range(1, shape[-1]):
        codes[..., t] = torch.where(keep[..., t], codes[..., t - 1], codes[..., t])
    return codes


@pytest.fixture
def codes_and_tables() -> tuple[torch.Tensor, CodeLayout, CodeTables]:
    train = skewed_codes((8, 3, 400), 1024, seed=1)
    codes = skewed_codes((2, 3, 300), 1024, seed=2)
    tables = CodeTables.fit([train], [1024] * 3)
    return codes, CodeLayout.for_codes(codes, 1024), tables
