"""The centred STFT of the audio losses: torch.stft's numbers, a backward that deterministic mode
accepts on the GPU."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from vqcodec.train.spectrum import centred_stft, reflect_pad

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.parametrize("pad", [0, 1, 7, 256])
def test_reflect_pad_matches_torch(pad: int) -> None:
    x = torch.randn(2, 3, 300, generator=torch.Generator().manual_seed(pad))
    expected = F.pad(x, (pad, pad), mode="reflect") if pad else x
    assert torch.equal(reflect_pad(x, pad), expected)


def test_reflect_pad_refuses_a_signal_shorter_than_the_padding() -> None:
    with pytest.raises(ValueError, match="needs more than 8 samples"):
        reflect_pad(torch.zeros(1, 8), 8)


@pytest.mark.parametrize(("n_fft", "normalized"), [(64, False), (512, True), (2048, False)])
def test_centred_stft_matches_torch_stft_forward_and_backward(n_fft: int, normalized: bool) -> None:
    x = torch.randn(3, 5000, generator=torch.Generator().manual_seed(n_fft), requires_grad=True)
    window = torch.hann_window(n_fft)
    ours = centred_stft(x, n_fft, n_fft // 4, window, normalized)
    reference = torch.stft(x, n_fft, n_fft // 4, window=window, center=True, pad_mode="reflect",
                           normalized=normalized, return_complex=True)  # fmt: skip
    assert torch.equal(ours, reference)
    weights = torch.randn(ours.shape, generator=torch.Generator().manual_seed(1))
    (grad,) = torch.autograd.grad((ours.abs() * weights).sum(), x)
    (expected,) = torch.autograd.grad((reference.abs() * weights).sum(), x)
    torch.testing.assert_close(grad, expected, rtol=1e-5, atol=1e-6)


@CUDA
def test_centred_stft_backward_runs_in_deterministic_mode_on_the_gpu() -> None:
    """torch.stft's own reflect padding has no deterministic backward on CUDA (torch 2.11
    raises there); this one runs and repeats."""
    x = torch.randn(2, 4000, device="cuda", requires_grad=True)
    window = torch.hann_window(512, device="cuda")
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        grads = [
            torch.autograd.grad(centred_stft(x, 512, 128, window).abs().sum(), x)[0]
            for _ in range(2)
        ]
    finally:
        torch.use_deterministic_algorithms(previous)
    assert torch.equal(grads[0], grads[1])
