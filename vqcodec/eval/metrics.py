"""Audio quality metrics on one mono signal pair ``(estimate, reference)`` at a given rate.

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
