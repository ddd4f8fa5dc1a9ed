"""AudioCodec shapes, bitrates, and chunked coding equal to whole-input coding."""

from __future__ import annotations

import math

import pytest
import torch

from vqcodec.bitstream.audio import decode_audio, encode_audio
from vqcodec.checkpoint import load
from vqcodec.codecs import AudioCodec, AudioCodecConfig


def test_shapes_and_bitrates() -> None:
    model = AudioCodec(AudioCodecConfig()).eval()
    x = torch.randn(2, 1, 12345) * 0.1
    codes = model.encode(x, num_levels=4)
    assert codes.shape == (2, 4, math.ceil(12345 / 320))
    assert model.decode(codes).shape == (2, 1, codes.shape[-1] * 320)
    assert model.bitrate(2) == 1500 and model.bitrate(4) == 3000 and model.bitrate(8) == 6000
    assert model.levels_for_bitrate(3) == 4 and model.levels_for_bitrate(0.1) == 1
    assert model(x).x_hat.shape == x.shape
    with pytest.raises(ValueError, match="mono"):
        model.encode(torch.randn(2, 2, 100))


@pytest.mark.slow
def test_chunked_codes_equal_whole_input_codes() -> None:
    model = load("audio-24k")
    t = torch.arange(3 * 24000) / 24000
    audio = (0.3 * torch.sin(2 * torch.pi * (200 + 300 * t) * t))[None]  # a chirp, [1, T]
    with torch.no_grad():
        whole = model.encode(audio[None])[0]
    chunked = encode_audio(model, audio, chunk_frames=40)
    assert chunked.shape == whole[None].shape
    assert torch.equal(chunked[0], whole)
    decoded = decode_audio(model, chunked, chunk_frames=40)
    with torch.no_grad():
        full = model.decode(chunked)[:, 0]
    assert decoded.shape == full.shape
    assert torch.allclose(decoded, full, atol=1e-4)
