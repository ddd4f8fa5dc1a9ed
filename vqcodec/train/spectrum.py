"""The centred short-time Fourier transform that the audio losses and discriminator use.

``torch.stft(center=True)`` pads the signal by reflection with ``F.pad``, whose backward on CUDA
adds into the padded edges with atomics: it has no deterministic implementation, so
``torch.use_deterministic_algorithms(True)`` (``run.deterministic``) refuses it. Here the
reflected edges are slices flipped and concatenated, whose backward is plain copies: the same
numbers forward, a gradient that is the same on every run.
"""

from __future__ import annotations

import torch
from torch import Tensor


def reflect_pad(x: Tensor, pad: int) -> Tensor:
    """``x [..., T]`` -> ``[..., T + 2·pad]``, mirrored about the first and last samples without
    repeating them (``F.pad(mode="reflect")``; needs ``pad < T``)."""
    if pad == 0:
        return x
    if pad >= x.shape[-1]:
        raise ValueError(f"reflect padding of {pad} needs more than {pad} samples: {x.shape[-1]}")
    left = x[..., 1 : pad + 1].flip(-1)
    right = x[..., -pad - 1 : -1].flip(-1)
    return torch.cat([left, x, right], dim=-1)


def centred_stft(
    x: Tensor, n_fft: int, hop_length: int, window: Tensor, normalized: bool = False
) -> Tensor:
    """``torch.stft(x, n_fft, hop_length, window=window, center=True, pad_mode="reflect",
    normalized=normalized, return_complex=True)`` for ``x [B, T]`` -> ``[B, n_fft // 2 + 1,
    frames]``, with a deterministic backward (see the module docstring)."""
    return torch.stft(
        reflect_pad(x, n_fft // 2),
        n_fft,
        hop_length,
        window=window,
        center=False,
        normalized=normalized,
        return_complex=True,
    )
