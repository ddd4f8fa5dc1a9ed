"""Tiny audio folders made in the test: tones, chirps and noise written with soundfile."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile


def write_tones(folder: Path, count: int = 6, rate: int = 8000, seconds: float = 0.5) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(rate * seconds)) / rate
    rng = np.random.default_rng(0)
    for i in range(count):
        f0 = 200 + 150 * i
        chirp = np.sin(2 * np.pi * (f0 + 400 * t) * t)
        audio = 0.4 * chirp + 0.02 * rng.standard_normal(t.size)
        channels = np.stack([audio, 0.5 * audio], axis=1) if i % 2 else audio  # some stereo
        soundfile.write(folder / f"tone{i}.{'flac' if i % 3 == 0 else 'wav'}", channels, rate)
    return folder


@pytest.fixture
def audio_folder(tmp_path: Path) -> Path:
    return write_tones(tmp_path / "audio")
