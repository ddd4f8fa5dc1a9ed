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
from vqcodec.codecs.audio import resample
from vqcodec.codecs.blocks import context_windows

CHUNK_FRAMES = 750  # 10 s at 75 Hz per chunk
CONTEXT_FRAMES = 16  # each side; covers the SEANet receptive field (measured in the tests)


@torch.no_grad()
def encode_audio(
    model: nn.Module,
    audio: Tensor,
    chunk_frames: int = CHUNK_FRAMES,
    context_frames: int = CONTEXT_FRAMES,
    num_levels: int | None = None,
) -> Tensor:
    """Codes ``[C, n, frames]`` for ``audio [C, T]`` at the model's rate, chunk by chunk."""
    hop = model.hop_length
    frames = math.ceil(audio.shape[-1] / hop)
    x = torch.nn.functional.pad(audio, (0, frames * hop - audio.shape[-1]))[:, None]  # [C, 1, T]
    parts = []
    for start, stop, left, right in context_windows(frames, chunk_frames, context_frames):
        codes = model.encode(x[..., left * hop : right * hop], num_levels=num_levels)
        parts.append(codes[..., start - left : stop - left])
    return torch.cat(parts, dim=-1)


@torch.no_grad()
def decode_audio(
    model: nn.Module,
    codes: Tensor,
    chunk_frames: int = CHUNK_FRAMES,
    context_frames: int = CONTEXT_FRAMES,
) -> Tensor:
    """Waveform ``[C, frames · hop]`` from codes ``[C, n, frames]``, chunk by chunk."""
    hop, frames = model.hop_length, codes.shape[-1]
    parts = []
    for start, stop, left, right in context_windows(frames, chunk_frames, context_frames):
        audio = model.decode(codes[..., left:right])[:, 0]
        parts.append(audio[:, (start - left) * hop : (stop - left) * hop])
    return torch.cat(parts, dim=-1)


def compress_audio(
    model: nn.Module, audio: Tensor, sample_rate: int, num_levels: int | None = None
) -> bytes:
    """``.vqc`` bytes for ``audio [C, T]`` (float, any rate, any channel count)."""
    if audio.dim() != 2 or audio.shape[-1] == 0:
        raise ValueError(
            f"expected audio [channels, samples] with samples, got {tuple(audio.shape)}"
        )
    device = next(model.parameters()).device
    resampled = resample(audio.float(), sample_rate, model.config.sample_rate).to(device)
    codes = encode_audio(model, resampled, num_levels=num_levels).cpu()
    header = {
        "model": {"name": model.name, "config_hash": config_hash(model)},
        "signal": {
            "kind": "audio",
            "sample_rate": int(sample_rate),
            "channels": int(audio.shape[0]),
            "length": int(audio.shape[-1]),
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


def decompress_audio(data: bytes, model: nn.Module | None = None) -> tuple[Tensor, int]:
    """``(audio [C, T], sample_rate)`` at the original rate and length from ``.vqc`` bytes."""
    header = read_code_header(data)
    signal = audio_signal(header)
    model = resolve_model(header, model)
    codes, layout = unpack_codes(data, getattr(model, "code_tables", None))
    if layout.shape[0] != signal["channels"]:
        raise HeaderError("header's channel count disagrees with its codes")
    device = next(model.parameters()).device
    audio = decode_audio(model, codes.to(device)).float().cpu()
    audio = resample(audio, model.config.sample_rate, signal["sample_rate"])
    length = signal["length"]
    audio = torch.nn.functional.pad(audio, (0, max(0, length - audio.shape[-1])))[:, :length]
    return audio, signal["sample_rate"]
