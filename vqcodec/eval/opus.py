"""Opus, the reference speech codec, through ffmpeg's libopus (round trip through real files).

ffmpeg is taken from ``PATH`` or, failing that, from the ``imageio-ffmpeg`` package (installed by
the ``eval`` extra), whose static build includes libopus.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import soundfile
import torch
from torch import Tensor


class OpusUnavailable(RuntimeError):
    """No ffmpeg with libopus was found."""


def find_ffmpeg() -> str:
    """Path of an ffmpeg executable that has the libopus encoder."""
    candidates = [shutil.which("ffmpeg")]
    try:
        import imageio_ffmpeg

        candidates.append(imageio_ffmpeg.get_ffmpeg_exe())
    except (ImportError, RuntimeError):
        pass
    for exe in filter(None, candidates):
        encoders = subprocess.run(
            [exe, "-hide_banner", "-encoders"], capture_output=True, text=True
        )
        if "libopus" in encoders.stdout:
            return exe
    raise OpusUnavailable(
        'Opus comparison needs ffmpeg with libopus: pip install -e ".[eval]" (imageio-ffmpeg)'
    )


def opus_round_trip(audio: Tensor, rate: int, kbps: float) -> tuple[Tensor, int]:
    """Encode ``audio [C, T]`` with libopus at ``kbps`` (VBR, VoIP tuning) and decode it.

    Returns the decoded audio ``[C, T]`` at ``rate`` (trimmed or padded to ``T``) and the size of
    the Ogg Opus file in bytes (container included, as a user would store it).
    """
    exe = find_ffmpeg()
    with tempfile.TemporaryDirectory() as folder:
        source, coded, decoded = (Path(folder) / n for n in ("in.wav", "coded.opus", "out.wav"))
        soundfile.write(source, audio.T.numpy(), rate, subtype="FLOAT")
        quiet = [exe, "-hide_banner", "-loglevel", "error", "-y"]
        encode = ["-c:a", "libopus", "-b:a", f"{kbps}k", "-application", "voip"]
        subprocess.run([*quiet, "-i", source, *encode, coded], check=True)
        subprocess.run([*quiet, "-i", coded, "-ar", str(rate), decoded], check=True)
        data, _ = soundfile.read(decoded, dtype="float32", always_2d=True)
        out = torch.from_numpy(data.T.copy())
        size = coded.stat().st_size
    length = audio.shape[-1]
    out = torch.nn.functional.pad(out[:, :length], (0, max(0, length - out.shape[-1])))
    return out, size
