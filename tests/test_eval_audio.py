"""Audio evaluation helpers that need no optional metric packages: code usage over files."""

from __future__ import annotations

from pathlib import Path

import soundfile
import torch

from tests.train.conftest import write_tones
from vqcodec.codecs import AudioCodec, AudioCodecConfig
from vqcodec.codecs.audio import resample
from vqcodec.eval.audio import code_usage


def test_code_usage_counts_the_codes_used_in_any_file(tmp_path: Path) -> None:
    torch.manual_seed(0)
    config = AudioCodecConfig(sample_rate=8000, channels=4, strides=(2, 4), latent_dim=8,
                              codebook_size=16, codebook_dim=4, num_quantizers=3)  # fmt: skip
    model = AudioCodec(config)
    with torch.no_grad():
        model(torch.randn(2, 1, 4000) * 0.3)  # k-means initialisation
    model.eval()
    files = sorted(write_tones(tmp_path / "tones", count=4, rate=16000).iterdir())
    seen = [set() for _ in range(3)]
    with torch.no_grad():
        for path in files:
            data, rate = soundfile.read(path, dtype="float32", always_2d=True)
            audio = resample(torch.from_numpy(data.T.copy()), rate, 8000)
            codes = model.encode(audio[:, None])  # every channel, one chunk: short files
            for level in range(3):
                seen[level].update(codes[:, level].reshape(-1).tolist())
    assert code_usage(model, files) == [len(s) / 16 for s in seen]
    assert 0 < min(len(s) for s in seen) < 16  # a real count, neither nothing nor everything
