"""Audio read in ranges: files, resampling by ranges equal to whole-signal resampling, and .vqc
coding of a file a chunk at a time equal to coding the whole signal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from vqcodec.bitstream.audio import (
    compress_audio,
    decode_audio,
    decoded_audio,
    decompress_audio,
    encode_audio,
)
from vqcodec.bitstream.sources import FileSource, ResampledSource, TensorSource
from vqcodec.codecs import AudioCodec, AudioCodecConfig
from vqcodec.codecs.audio import resample
from vqcodec.media import MediaError


def _signal(channels: int, length: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(length) / length
    return 0.3 * torch.sin(2 * torch.pi * 50 * t * (1 + t)) + 0.05 * torch.randn(
        channels, length, generator=g
    )


@pytest.mark.parametrize(
    "source_rate,target_rate",
    [(44100, 24000), (22050, 24000), (48000, 24000), (8000, 24000), (11025, 24000),
     (24000, 44100), (24000, 24000)],
)  # fmt: skip
def test_resampling_a_range_equals_resampling_the_whole_signal(source_rate, target_rate):
    audio = _signal(2, 9_001)
    whole = resample(audio, source_rate, target_rate)
    source = ResampledSource(TensorSource(audio, source_rate), target_rate)
    assert source.length == whole.shape[-1]
    edges = [0, 1, 7, 100, 1_234, source.length // 2, source.length - 5]
    for start in edges:
        for size in (1, 97, 2_000):
            stop = min(start + size, source.length)
            torch.testing.assert_close(
                source.read(start, stop), whole[:, start:stop], atol=2e-6, rtol=0
            )
    assert torch.equal(source.read(-3, 0), torch.zeros(2, 3))  # outside: zeros
    beyond = source.read(source.length - 2, source.length + 4)
    assert torch.equal(beyond[:, 2:], torch.zeros(2, 4))


def test_file_source_reads_ranges_and_rejects_bad_files(tmp_path: Path) -> None:
    audio = _signal(2, 5_000).clamp(-1, 1)
    path = tmp_path / "a.flac"
    soundfile.write(path, audio.T.numpy(), 16000, subtype="PCM_24")
    whole, rate = soundfile.read(path, dtype="float32", always_2d=True)
    source = FileSource(path)
    assert (source.rate, source.channels, source.length) == (16000, 2, 5_000)
    for start, stop in [(0, 10), (4_990, 5_000), (100, 3_000), (20, 21), (2_000, 1_000 + 1_500)]:
        assert np.array_equal(source.read(start, stop).T.numpy(), whole[start:stop])
    padded = source.read(-4, 3)
    assert torch.equal(padded[:, :4], torch.zeros(2, 4))
    assert torch.equal(source.read(4_998, 5_002)[:, 2:], torch.zeros(2, 2))
    (tmp_path / "fake.wav").write_bytes(b"RIFF....WAVEfmt nothing useful")
    with pytest.raises(MediaError, match="not readable audio"):
        FileSource(tmp_path / "fake.wav")
    empty = tmp_path / "empty.wav"
    soundfile.write(empty, np.zeros((0, 1)), 8000)
    with pytest.raises(MediaError, match="no audio samples"):
        FileSource(empty)


@pytest.fixture(scope="module")
def tiny_model() -> AudioCodec:
    torch.manual_seed(0)
    config = AudioCodecConfig(sample_rate=8000, channels=4, strides=(2, 4), latent_dim=8,
                              codebook_size=16, codebook_dim=4, num_quantizers=3)  # fmt: skip
    model = AudioCodec(config).eval()
    with torch.no_grad():  # initialise the codebooks (k-means on the first batch)
        model(torch.randn(2, 1, 4000) * 0.3)
    return model.eval()


def test_a_file_coded_a_chunk_at_a_time_equals_the_whole_signal_coded(
    tiny_model: AudioCodec, tmp_path: Path
) -> None:
    audio = _signal(2, 33_333).clamp(-1, 1)  # 44.1 kHz stereo; several 750-frame chunks at 8 kHz
    path = tmp_path / "long.wav"
    soundfile.write(path, audio.T.numpy(), 44100, subtype="FLOAT")
    from_file = compress_audio(tiny_model, FileSource(path))
    from_tensor = compress_audio(tiny_model, audio, 44100)
    assert from_file == from_tensor
    # The old path resampled the whole signal first: the codes agree with it as well.
    whole = encode_audio(tiny_model, resample(audio, 44100, 8000))
    source = ResampledSource(TensorSource(audio, 44100), 8000)
    assert torch.equal(encode_audio(tiny_model, source), whole)


def test_decoding_in_blocks_equals_decoding_whole(tiny_model: AudioCodec) -> None:
    audio = _signal(1, 20_000).clamp(-1, 1)
    data = compress_audio(tiny_model, audio, 22050)
    whole, rate = decompress_audio(data, tiny_model)
    assert rate == 22050 and whole.shape == (1, 20_000)
    source = decoded_audio(data, tiny_model)
    blocks = torch.cat(
        [source.read(a, min(a + 4_321, 20_000)) for a in range(0, 20_000, 4_321)], -1
    )
    assert torch.equal(blocks, whole)
    codes = encode_audio(tiny_model, resample(audio, 22050, 8000))
    at_model_rate = decode_audio(tiny_model, codes)
    torch.testing.assert_close(
        whole, resample(at_model_rate, 8000, 22050)[:, :20_000], atol=2e-6, rtol=0
    )
