"""Audio signals to ``.vqc`` bytes and back: any sample rate and channel count, long inputs in
bounded memory.

Channels are coded independently (as a batch); the original rate and length are restored on
decode. Long inputs are cut into chunks encoded with enough context on each side to cover the
encoder's receptive field, so the chunked codes equal whole-input codes (up to float rounding in
the convolutions), and decoded the same way.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from vqcodec.bitstream.codes import CodeLayout, pack_codes, read_code_header, unpack_codes
from vqcodec.bitstream.compress import config_hash, resolve_model
from vqcodec.bitstream.errors import HeaderError
from vqcodec.bitstream.sources import ResampledSource, SampleSource, TensorSource, zero_padded
from vqcodec.codecs.blocks import context_windows

CHUNK_FRAMES = 750  # 10 s at 75 Hz per chunk
CONTEXT_FRAMES = 16  # each side; covers the SEANet receptive field (measured in the tests)


@torch.no_grad()
def encode_audio(
    model: nn.Module,
    audio: Tensor | SampleSource,
    chunk_frames: int = CHUNK_FRAMES,
    context_frames: int = CONTEXT_FRAMES,
    num_levels: int | None = None,
) -> Tensor:
    """Codes ``[C, n, frames]`` for ``audio`` (``[C, T]`` or a source) at the model's rate, chunk
    by chunk: only one chunk of samples is read at a time."""
    if isinstance(audio, Tensor):
        audio = TensorSource(audio, model.config.sample_rate)
    hop, device = model.hop_length, next(model.parameters()).device
    frames = math.ceil(audio.length / hop)
    if frames == 0:
        raise ValueError("no audio samples to encode")
    out = None
    for start, stop, left, right in context_windows(frames, chunk_frames, context_frames):
        x = audio.read(left * hop, right * hop)[:, None].to(device)  # [C, 1, T]
        codes = model.encode(x, num_levels=num_levels)
        if out is None:
            # One output tensor filled in place: keeping a small tensor per chunk between the
            # chunks' large temporaries fragmented the heap (peak memory grew with the length).
            out = torch.empty(codes.shape[:-1] + (frames,), dtype=codes.dtype)
        out[..., start:stop] = codes[..., start - left : stop - left].cpu()
    return out


class DecodedSource:
    """The waveform that codes ``[C, n, frames]`` decode to, at the model's rate, as a
    :class:`SampleSource`: decoded chunk by chunk with context on each side (the chunking of
    the file's header), a chunk at a time, so the samples never depend on what is read."""

    def __init__(
        self,
        model: nn.Module,
        codes: Tensor,
        chunk_frames: int = CHUNK_FRAMES,
        context_frames: int = CONTEXT_FRAMES,
    ) -> None:
        self.model, self.codes = model, codes
        self.channels, self.rate = codes.shape[0], model.config.sample_rate
        self.hop, self.chunk = model.hop_length, chunk_frames
        self.length = codes.shape[-1] * self.hop
        self.windows = context_windows(codes.shape[-1], chunk_frames, context_frames)
        self._cached: dict[int, Tensor] = {}

    @torch.no_grad()
    def _chunk(self, index: int) -> Tensor:
        if index not in self._cached:
            start, stop, left, right = self.windows[index]
            device = next(self.model.parameters()).device
            audio = self.model.decode(self.codes[..., left:right].to(device))[:, 0]
            chunk = audio[:, (start - left) * self.hop : (stop - left) * self.hop].float().cpu()
            self._cached = {i: c for i, c in self._cached.items() if i >= index - 1}
            self._cached[index] = chunk
        return self._cached[index]

    def _read(self, start: int, stop: int) -> Tensor:
        size = self.chunk * self.hop
        first, last = start // size, (stop - 1) // size
        joined = torch.cat([self._chunk(i) for i in range(first, last + 1)], dim=-1)
        return joined[:, start - first * size : stop - first * size]

    def read(self, start: int, stop: int) -> Tensor:
        return zero_padded(self._read, self.length, self.channels, start, stop)


@torch.no_grad()
def decode_audio(
    model: nn.Module,
    codes: Tensor,
    chunk_frames: int = CHUNK_FRAMES,
    context_frames: int = CONTEXT_FRAMES,
) -> Tensor:
    """Waveform ``[C, frames · hop]`` from codes ``[C, n, frames]``, chunk by chunk."""
    source = DecodedSource(model, codes, chunk_frames, context_frames)
    return source.read(0, source.length)


def compress_audio(
    model: nn.Module,
    audio: Tensor | SampleSource,
    sample_rate: int | None = None,
    num_levels: int | None = None,
) -> bytes:
    """``.vqc`` bytes for ``audio``: ``[C, T]`` float at ``sample_rate`` (any rate, any channel
    count), or a :class:`SampleSource` (a file: read and resampled a chunk at a time)."""
    if isinstance(audio, Tensor):
        if audio.dim() != 2 or audio.shape[-1] == 0:
            raise ValueError(
                f"expected audio [channels, samples] with samples, got {tuple(audio.shape)}"
            )
        if sample_rate is None:
            raise ValueError("compress_audio needs the sample_rate of a tensor")
        audio = TensorSource(audio, sample_rate)
    resampled = ResampledSource(audio, model.config.sample_rate)
    codes = encode_audio(model, resampled, num_levels=num_levels)
    header = {
        "model": {"name": model.name, "config_hash": config_hash(model)},
        "signal": {
            "kind": "audio",
            "sample_rate": int(audio.rate),
            "channels": int(audio.channels),
            "length": int(audio.length),
            "model_sample_rate": model.config.sample_rate,
        },
        "chunking": {"chunk_frames": CHUNK_FRAMES, "context_frames": CONTEXT_FRAMES},
    }
    layout = CodeLayout.for_codes(codes, model.config.codebook_size)
    return pack_codes(codes, layout, getattr(model, "code_tables", None), extra_header=header)


def audio_signal(header: dict) -> dict:
    """The validated ``signal`` section of an audio file's header."""
    signal = header.get("signal")
    keys = ("sample_rate", "channels", "length")
    if (
        not isinstance(signal, dict)
        or signal.get("kind") != "audio"
        or not all(
            isinstance(signal.get(k), int) and not isinstance(signal.get(k), bool) and signal[k] > 0
            for k in keys
        )
        or signal["sample_rate"] > 1_000_000
        or signal["channels"] > 4096
    ):
        raise HeaderError(
            "header does not describe an audio signal (kind, sample_rate, channels, length)"
        )
    return signal


def decoded_audio(data: bytes, model: nn.Module | None = None) -> SampleSource:
    """The decoded signal of ``.vqc`` bytes as a :class:`SampleSource` at the original rate and
    length: read it in blocks to write long files in bounded memory."""
    header = read_code_header(data)
    signal = audio_signal(header)
    model = resolve_model(header, model)
    codes, layout = unpack_codes(data, getattr(model, "code_tables", None))
    if layout.shape[0] != signal["channels"]:
        raise HeaderError("header's channel count disagrees with its codes")
    return ResampledSource(DecodedSource(model, codes), signal["sample_rate"], signal["length"])


def decompress_audio(data: bytes, model: nn.Module | None = None) -> tuple[Tensor, int]:
    """``(audio [C, T], sample_rate)`` at the original rate and length from ``.vqc`` bytes."""
    source = decoded_audio(data, model)
    return source.read(0, source.length), source.rate
