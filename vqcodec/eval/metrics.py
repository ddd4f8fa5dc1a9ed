"""Quality metrics. Audio: one mono signal pair ``(estimate, reference)`` at a given rate.
Images: one pair of ``[C, H, W]`` pictures in ``[0, 1]`` (PSNR; SSIM and MS-SSIM through
``pytorch_msssim`` with its standard 11-tap Gaussian window and five scales).

log-mel and STFT distances use the training losses' definitions at 24 kHz; SI-SDR is computed
here; STOI (``pystoi``) and wideband PESQ (``pesq``, ITU-T P.862.2 at 16 kHz) come from their
reference packages, installed with ``pip install -e ".[eval]"`` (the test extra has them too).
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

from vqcodec.codecs.audio import resample

METRIC_RATE = 24000


class MissingMetricPackage(RuntimeError):
    """A metric's reference package is not installed."""


@functools.lru_cache(maxsize=1)
def _distances():
    from vqcodec.train.losses import MultiResolutionSTFTLoss, MultiScaleMelLoss

    return MultiScaleMelLoss(METRIC_RATE), MultiResolutionSTFTLoss()


def log_mel_distance(estimate: Tensor, reference: Tensor, rate: int) -> float:
    """Mean L1 distance of log-mel spectrograms at three scales (lower is better)."""
    mel, _ = _distances()
    a, b = (resample(s.float(), rate, METRIC_RATE)[None, None] for s in (estimate, reference))
    return float(mel(a, b))


def stft_distance(estimate: Tensor, reference: Tensor, rate: int) -> float:
    """Multi-resolution STFT distance: spectral convergence plus log-magnitude L1."""
    _, stft = _distances()
    a, b = (resample(s.float(), rate, METRIC_RATE)[None, None] for s in (estimate, reference))
    return float(stft(a, b))


def si_sdr(estimate: Tensor, reference: Tensor) -> float:
    """Scale-invariant signal-to-distortion ratio in dB (higher is better; needs phase)."""
    reference = reference.double() - reference.double().mean()
    estimate = estimate.double() - estimate.double().mean()
    target = (estimate @ reference) / reference.pow(2).sum().clamp_min(1e-12) * reference
    noise = (estimate - target).pow(2).sum().clamp_min(1e-12)
    return float(10 * torch.log10(target.pow(2).sum().clamp_min(1e-12) / noise))


def stoi(estimate: Tensor, reference: Tensor, rate: int) -> float:
    """Short-time objective intelligibility, 0 to 1 (Taal et al. 2011, via ``pystoi``)."""
    try:
        from pystoi import stoi as _stoi
    except ImportError:
        raise MissingMetricPackage('STOI needs pystoi: pip install -e ".[eval]"') from None
    return float(_stoi(reference.double().numpy(), estimate.double().numpy(), rate))


def pesq_wideband(estimate: Tensor, reference: Tensor, rate: int) -> float:
    """Wideband PESQ MOS-LQO, about 1 to 4.6 (via ``pesq``; signals resampled to 16 kHz).

    NaN when PESQ finds no speech in the reference.
    """
    try:
        from pesq import NoUtterancesError, pesq
    except ImportError:
        raise MissingMetricPackage('PESQ needs pesq: pip install -e ".[eval]"') from None
    a, b = (resample(s.float(), rate, 16000).double().numpy() for s in (estimate, reference))
    try:
        return float(pesq(16000, b, a, "wb"))
    except NoUtterancesError:
        return math.nan


def psnr(estimate: Tensor, reference: Tensor) -> float:
    """Peak signal-to-noise ratio in dB of two images in ``[0, 1]`` (inf when identical)."""
    mse = float(torch.mean((estimate.double() - reference.double()) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def ssim(estimate: Tensor, reference: Tensor) -> float:
    """Mean SSIM (Wang et al. 2004) of two images ``[C, H, W]`` in ``[0, 1]``."""
    from pytorch_msssim import ssim as ssim_

    return float(ssim_(estimate[None].float(), reference[None].float(), data_range=1.0))


MS_SSIM_MIN_SIDE = 161  # five scales of an 11-tap window: (11 - 1) * 2**4 + 1 pixels


def ms_ssim(estimate: Tensor, reference: Tensor) -> float:
    """MS-SSIM (Wang et al. 2003, five scales) of two images ``[C, H, W]`` in ``[0, 1]``; NaN
    for images with a side shorter than :data:`MS_SSIM_MIN_SIDE`."""
    from pytorch_msssim import ms_ssim as ms_ssim_

    if min(reference.shape[-2:]) < MS_SSIM_MIN_SIDE:
        return math.nan
    return float(ms_ssim_(estimate[None].float(), reference[None].float(), data_range=1.0))
