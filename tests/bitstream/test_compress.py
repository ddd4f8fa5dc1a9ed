"""Model-level API: decompress(compress(m, x)) == m.decode(m.encode(x)) exactly, with a tiny
untrained codec defined here (the real codecs arrive with their own issues)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import Tensor, nn

import vqcodec
from vqcodec.bitstream import CodeTables, ModelMismatchError, read_code_header
from vqcodec.checkpoint import UnknownModelError, register_model, unregister_model
from vqcodec.quantizers import ResidualQuantizer


@dataclass(frozen=True)
class TinyCodecConfig:
    channels: int = 8
    codebook_size: int = 64
    levels: int = 3


class TinyCodec(nn.Module):
    name = "tiny-test-codec"

    def __init__(self, config: TinyCodecConfig = TinyCodecConfig()) -> None:
        super().__init__()
        self.config = config
        self.encoder = nn.Conv1d(1, config.channels, 4, stride=4)
        self.quantizer = ResidualQuantizer(config.channels, config.codebook_size, config.levels)
        self.decoder = nn.ConvTranspose1d(config.channels, 1, 4, stride=4)

    def encode(self, x: Tensor, num_levels: int | None = None) -> Tensor:
        return self.quantizer.encode(self.encoder(x), num_levels)

    def decode(self, codes: Tensor) -> Tensor:
        return self.decoder(self.quantizer.decode(codes))


def tiny_codec(tables: bool = False) -> TinyCodec:
    torch.manual_seed(0)
    model = TinyCodec().eval()
    if tables:
        train = [model.encode(torch.randn(4, 1, 400)) for _ in range(3)]
        model.code_tables = CodeTables.fit(train, [64] * 3)
    return model


@pytest.mark.parametrize("tables", [False, True])
def test_decompress_of_compress_equals_decode_of_encode(tables: bool) -> None:
    model = tiny_codec(tables)
    x = torch.randn(2, 1, 1000)
    data = vqcodec.compress(model, x)
    with torch.no_grad():
        expected = model.decode(model.encode(x))
    assert torch.equal(vqcodec.decompress(data, model), expected)
    header = read_code_header(data)
    assert header["model"]["name"] == "tiny-test-codec"
    assert header["signal"]["shape"] == [2, 1, 1000]


def test_lower_bitrate_by_levels() -> None:
    model = tiny_codec(tables=True)
    x = torch.randn(1, 1, 800)
    small, full = vqcodec.compress(model, x, num_levels=1), vqcodec.compress(model, x)
    assert len(small) < len(full)
    with torch.no_grad():
        assert torch.equal(vqcodec.decompress(small, model), model.decode(model.encode(x, 1)))


def test_model_is_resolved_from_the_header() -> None:
    register_model("tiny-test-codec", tiny_codec)
    try:
        model = tiny_codec()
        x = torch.randn(1, 1, 400)
        data = vqcodec.compress(model, x)
        with torch.no_grad():
            assert torch.equal(vqcodec.decompress(data), model.decode(model.encode(x)))
    finally:
        unregister_model("tiny-test-codec")
    with pytest.raises(UnknownModelError, match="tiny-test-codec"):
        vqcodec.decompress(data)


def test_a_different_model_config_is_refused() -> None:
    data = vqcodec.compress(tiny_codec(), torch.randn(1, 1, 400))
    other = TinyCodec(TinyCodecConfig(levels=2)).eval()
    with pytest.raises(ModelMismatchError, match="config"):
        vqcodec.decompress(data, other)
