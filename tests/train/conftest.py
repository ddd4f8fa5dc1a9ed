"""Tiny folders made in the test: audio (tones, chirps and noise written with soundfile) and
pictures (gradients with noise, one unreadable, one excluded by name)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile
from PIL import Image


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


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i, size in enumerate([(40, 50), (24, 30), (64, 64)]):
        y, x = np.mgrid[: size[0], : size[1]]
        base = np.stack([x / size[1], y / size[0], np.full(size, 0.3)], -1)
        pixels = (255 * np.clip(base + 0.05 * rng.standard_normal(base.shape), 0, 1)).astype(
            "uint8"
        )
        Image.fromarray(pixels).save(folder / f"photo{i}.{'png' if i else 'jpg'}")
    (folder / "excluded_wallpaper.png").write_bytes((folder / "photo1.png").read_bytes())
    (folder / "broken.png").write_bytes(b"not an image")
    return folder
