"""Audio folders as datasets: any file soundfile can read, mixed to mono, resampled, cropped."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from pathlib import Path

import soundfile
import torch
from torch import Tensor
from torch.utils.data import Dataset

from vqcodec.codecs.audio import resample

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".aiff", ".aif")
log = logging.getLogger(__name__)


def find_audio_files(roots: Iterable[str | Path]) -> list[Path]:
    """Audio files under ``roots`` (files or folders, searched recursively), sorted."""
    found = []
    for root in map(Path, roots):
        if root.is_file():
            found.append(root)
        elif root.is_dir():
            found += [
                p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()
            ]
        else:
            raise FileNotFoundError(f"audio path {root} does not exist")
    return sorted(found)


class AudioFolder(Dataset):
    """Fixed-length mono crops of every readable audio file under ``roots``.

    Unreadable files are reported once (logged, listed in :attr:`skipped`) and left out; a file
    that fails later, mid-run, is logged and replaced by the next file, never a crash.

    Args:
        roots: folders or files.
        sample_rate: the model's rate; files are resampled to it.
        segment_seconds: crop length; shorter files are zero-padded.
        random_crop: random crop offsets (training) or the start of each file (evaluation).
    """

    def __init__(
        self,
        roots: Iterable[str | Path],
        sample_rate: int,
        segment_seconds: float,
        random_crop: bool = True,
    ) -> None:
        self.sample_rate = sample_rate
        self.segment = int(round(segment_seconds * sample_rate))
        self.random_crop = random_crop
        self.files: list[tuple[Path, int, int]] = []  # path, frames, rate
        self.skipped: list[tuple[Path, str]] = []
        for path in find_audio_files(roots):
            try:
                info = soundfile.info(str(path))
                if info.frames <= 0:
                    raise ValueError("no audio frames")
                self.files.append((path, info.frames, info.samplerate))
            except Exception as error:  # soundfile raises several types for unreadable files
                self.skipped.append((path, str(error)))
                log.warning("skipping unreadable audio file %s: %s", path, error)
        if not self.files:
            raise ValueError(f"no readable audio files under {', '.join(map(str, roots))}")

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> Tensor:
        for attempt in range(len(self.files)):
            path, frames, rate = self.files[(index + attempt) % len(self.files)]
            try:
                return self._crop(path, frames, rate)
            except Exception as error:
                log.warning("failed to read %s, using the next file: %s", path, error)
        raise RuntimeError("no audio file could be read")

    def _crop(self, path: Path, frames: int, rate: int) -> Tensor:
        """``[1, segment]`` float32 at the model rate."""
        needed = math.ceil(self.segment * rate / self.sample_rate) + 16
        start = 0
        if self.random_crop and frames > needed:
            start = int(torch.randint(frames - needed + 1, ()).item())
        data, _ = soundfile.read(
            str(path), start=start, frames=needed, dtype="float32", always_2d=True
        )
        audio = torch.from_numpy(data.T).mean(dim=0, keepdim=True)  # mono [1, t]
        audio = resample(audio, rate, self.sample_rate)[:, : self.segment]
        return torch.nn.functional.pad(audio, (0, self.segment - audio.shape[-1]))
