"""Audio as sample ranges read on demand, so that coding an hour of audio holds seconds of it.

A source has ``channels``, ``rate`` and ``length`` (samples per channel) and ``read(start,
stop) -> [channels, stop - start]`` float32, with zeros outside ``[0, length)`` (the zero
padding that whole-signal resampling and coding assume). Sources: a tensor, an audio file
(read with soundfile), and another source resampled.

Resampling a range gives the samples that resampling the whole signal gives (up to float
rounding): torchaudio's polyphase filter computes each block of ``new`` output samples from
``orig`` input samples (the rates divided by their gcd) plus a filter margin, so a range read
from an input position that is a multiple of ``orig``, with a margin on each side, lines up
with the whole-signal grid.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Protocol

import torch
from torch import Tensor

from vqcodec.codecs.audio import resampler


class SampleSource(Protocol):
    channels: int
    rate: int
    length: int

    def read(self, start: int, stop: int) -> Tensor:
        """Samples ``[channels, stop - start]`` (float32; zeros outside ``[0, length)``)."""
        ...


def zero_padded(read, length: int, channels: int, start: int, stop: int) -> Tensor:
    """``read(a, b)`` for the part of ``[start, stop)`` inside ``[0, length)``, zeros around it."""
    out = torch.zeros(channels, max(0, stop - start))
    a, b = max(start, 0), min(stop, length)
    if a < b:
        out[:, a - start : b - start] = read(a, b)
    return out


class TensorSource:
    """A waveform ``[C, T]`` held in memory."""

    def __init__(self, audio: Tensor, rate: int) -> None:
        self.audio, self.rate = audio.float(), int(rate)
        self.channels, self.length = audio.shape

    def read(self, start: int, stop: int) -> Tensor:
        return zero_padded(lambda a, b: self.audio[:, a:b], self.length, self.channels, start, stop)


class FileSource:
    """An audio file read in ranges with soundfile (WAV, FLAC, Ogg, MP3, ...).

    Raises:
        MediaError: the file is not readable audio or holds no samples.
    """

    def __init__(self, path: str | Path) -> None:
        import soundfile

        from vqcodec.media import MediaError

        self.path = Path(path)
        try:
            self._file = soundfile.SoundFile(str(path))
        except Exception as error:  # soundfile raises several types for unreadable files
            raise MediaError(f"{path}: not readable audio ({error})") from None
        self.rate, self.channels = self._file.samplerate, self._file.channels
        self.length = self._file.frames
        if self.length <= 0:
            self._file.close()
            raise MediaError(f"{path}: the file holds no audio samples")

    def _read(self, start: int, stop: int) -> Tensor:
        from vqcodec.media import MediaError

        try:
            if self._file.tell() != start:
                self._file.seek(start)
            data = self._file.read(stop - start, dtype="float32", always_2d=True)
        except Exception as error:
            raise MediaError(f"{self.path}: unreadable at sample {start} ({error})") from None
        if data.shape[0] != stop - start:  # a header that promises more than the file holds
            raise MediaError(f"{self.path}: ends after {start + data.shape[0]} samples")
        return torch.from_numpy(data.T.copy())

    def read(self, start: int, stop: int) -> Tensor:
        return zero_padded(self._read, self.length, self.channels, start, stop)

    def close(self) -> None:
        self._file.close()


class ResampledSource:
    """``source`` resampled to ``rate`` (torchaudio's windowed sinc, as :func:`resample`).

    ``length`` overrides the resampled length (e.g. a decoded signal's original length): reads
    beyond what resampling gives are zeros.
    """

    def __init__(self, source: SampleSource, rate: int, length: int | None = None) -> None:
        self.source, self.rate, self.channels = source, int(rate), source.channels
        g = math.gcd(source.rate, self.rate)
        self.orig, self.new = source.rate // g, self.rate // g  # input / output samples per block
        resampled_length = math.ceil(self.new * source.length / self.orig)
        self.length = resampled_length if length is None else length
        # torchaudio's filter reaches this many input samples either side (its width), plus one
        # block for the polyphase phases.
        width = math.ceil(6 * self.orig / (min(self.orig, self.new) * 0.99))
        self.margin_blocks = math.ceil(width / self.orig) + 1

    def read(self, start: int, stop: int) -> Tensor:
        if self.orig == self.new:
            return self.source.read(start, stop)
        first = start // self.new - self.margin_blocks
        last = -(-stop // self.new) + self.margin_blocks
        segment = self.source.read(first * self.orig, last * self.orig)
        resampled = resampler(self.source.rate, self.rate)(segment)
        offset = start - first * self.new
        out = resampled[:, offset : offset + stop - start]
        # Outside [0, length) whole-signal resampling has no samples: zeros, as for any source.
        return zero_padded(lambda a, b: out[:, a - start : b - start], self.length,
                            self.channels, start, stop)  # fmt: skip
