"""Pictures through ``.vqc`` bytes: original size and channel count restored, tiled coding equal
to whole-picture coding, fewer levels fewer bytes, headers checked."""

from __future__ import annotations

import json

import pytest
import torch

from vqcodec.bitstream import HeaderError, ModelMismatchError, read_code_header
from vqcodec.bitstream.image import LUMA, compress_image, decompress_image
from vqcodec.codecs.image import ImageCodec, ImageCodecConfig

TINY = ImageCodecConfig(channels=(8, 8), latent_dim=4, codebook_size=16, num_quantizers=3, tile=32)


@pytest.fixture(scope="module")
def model() -> ImageCodec:
    torch.manual_seed(0)
    codec = ImageCodec(TINY, name="tiny-image").train()
    codec(torch.rand(2, 3, 32, 32))  # one training pass: k-means initialises the codebooks
    return codec.eval()


@pytest.mark.parametrize("shape", [(3, 17, 23), (3, 70, 45), (1, 33, 9)])
def test_round_trip_restores_size_and_channels(model: ImageCodec, shape: tuple) -> None:
    picture = torch.rand(*shape)
    data = compress_image(model, picture)
    decoded = decompress_image(data, model)
    assert decoded.shape == picture.shape
    assert 0 <= float(decoded.min()) and float(decoded.max()) <= 1
    signal = read_code_header(data)["signal"]
    assert signal == {"kind": "image", "channels": shape[0], "height": shape[1], "width": shape[2]}
    # The same as decoding the codes of the whole picture in one piece.
    with torch.no_grad():
        rgb = picture.expand(3, *shape[1:])[None]
        whole = model.decode(model.encode(rgb))[0, :, : shape[1], : shape[2]]
    if shape[0] == 1:
        whole = torch.tensordot(torch.tensor(LUMA), whole, dims=1)[None]
    torch.testing.assert_close(decoded, whole, atol=1e-4, rtol=0)


def test_large_picture_is_coded_in_tiles_with_whole_picture_codes(model: ImageCodec) -> None:
    picture = torch.rand(3, 100, 75)  # 32-pixel tiles: 4 x 3 of them
    with torch.no_grad():
        assert torch.equal(model.encode_tiled(picture[None]), model.encode(picture[None]))
    data = compress_image(model, picture)
    assert read_code_header(data)["tiling"] == {"tile": 32, "context": TINY.tile_context}
    assert decompress_image(data, model).shape == picture.shape


def test_fewer_levels_give_fewer_bytes(model: ImageCodec) -> None:
    picture = torch.rand(3, 64, 64)
    sizes = [len(compress_image(model, picture, num_levels=n)) for n in (1, 2, 3)]
    assert sizes[0] < sizes[1] < sizes[2]


def test_bad_pictures_and_headers_are_rejected(model: ImageCodec) -> None:
    for shape in [(2, 8, 8), (3, 0, 8), (8, 8)]:
        with pytest.raises(ValueError, match="expected an image"):
            compress_image(model, torch.rand(*shape))
    data = compress_image(model, torch.rand(3, 20, 20))
    other = ImageCodec(TINY, name="other-image").eval()
    with pytest.raises(ModelMismatchError):
        decompress_image(data, other)
    # A header that lies about the size is caught before decoding (header CRC recomputed).
    for key, value in [("width", 999), ("channels", 2), ("kind", "audio")]:
        with pytest.raises(HeaderError):
            decompress_image(_with_signal(data, key, value), model)


def _with_signal(data: bytes, key: str, value) -> bytes:
    import struct
    import zlib

    length = struct.unpack_from("<I", data, 6)[0]
    header = json.loads(data[10 : 10 + length])
    header["signal"][key] = value
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    rest = data[10 + length + 4 :]
    crc = struct.pack("<I", zlib.crc32(text))
    return data[:6] + struct.pack("<I", len(text)) + text + crc + rest
