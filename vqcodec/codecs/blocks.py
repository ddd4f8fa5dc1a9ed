"""Convolution blocks shared by the codecs (SEANet family: EnCodec, arXiv 2210.13438; DAC)."""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F


class PaddedConv1d(nn.Conv1d):
    """A 1-D convolution that pads itself: all on the left when ``causal`` (the output at time
    ``t`` sees only inputs up to ``t``), else split evenly, so ``T_out = ceil(T_in / stride)``
    for inputs whose length is a multiple of the stride."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        dilation: int = 1,
        causal: bool = False,
    ) -> None:
        pad = max(dilation * (kernel_size - 1) - (stride - 1), 0)
        left = pad if causal else pad - pad // 2
        # Even padding goes to the convolution itself: a separate pad would be one more copy
        # of the activations forward and backward (two kernels per layer, about 110 per
        # training step of the shipped audio codec).
        symmetric = left == pad - left
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            dilation=dilation,
            padding=left if symmetric else 0,
        )
        self.causal = causal
        self.extra_padding = None if symmetric else (left, pad - left)

    def forward(self, x: Tensor) -> Tensor:
        if self.extra_padding is not None:
            x = F.pad(x, self.extra_padding)
        return super().forward(x)


class PaddedConvTranspose1d(nn.ConvTranspose1d):
    """Transposed convolution that trims its output to exactly ``T_in · stride``; trimming all
    from the right when ``causal``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int,
        causal: bool = False,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride)
        self.causal = causal

    def forward(self, x: Tensor) -> Tensor:
        y = super().forward(x)
        extra = y.shape[-1] - x.shape[-1] * self.stride[0]
        left = 0 if self.causal else extra // 2
        return y[..., left : y.shape[-1] - (extra - left)]


class ResidualUnit(nn.Module):
    """``x + conv1(elu(conv_k,dilated(elu(x))))``."""

    def __init__(self, channels: int, dilation: int, causal: bool) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.ELU(),
            PaddedConv1d(channels, channels // 2, 7, dilation=dilation, causal=causal),
            nn.ELU(),
            PaddedConv1d(channels // 2, channels, 1, causal=causal),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x)


def encoder_block(in_channels: int, out_channels: int, stride: int, causal: bool) -> nn.Sequential:
    """Residual units at dilations 1, 3, 9, then a strided convolution (downsampling)."""
    return nn.Sequential(
        *(ResidualUnit(in_channels, d, causal) for d in (1, 3, 9)),
        nn.ELU(),
        PaddedConv1d(in_channels, out_channels, 2 * stride, stride=stride, causal=causal),
    )


def decoder_block(in_channels: int, out_channels: int, stride: int, causal: bool) -> nn.Sequential:
    """A transposed convolution (upsampling), then residual units at dilations 1, 3, 9."""
    return nn.Sequential(
        nn.ELU(),
        PaddedConvTranspose1d(in_channels, out_channels, 2 * stride, stride, causal=causal),
        *(ResidualUnit(out_channels, d, causal) for d in (1, 3, 9)),
    )


def context_windows(size: int, chunk: int, context: int) -> list[tuple[int, int, int, int]]:
    """``(start, stop, left, right)`` along one axis: each chunk ``[start, stop)`` is computed
    from the window ``[left, right)`` that adds ``context`` positions on each side (chunked
    audio coding, tiled image coding)."""
    return [
        (
            start,
            min(start + chunk, size),
            max(0, start - context),
            min(size, start + chunk + context),
        )
        for start in range(0, size, chunk)
    ]
