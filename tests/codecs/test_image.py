"""The image codec: shapes for odd sizes, decode(encode) == forward, tiled coding without seams,
the tokenizer attributes, and every quantizer choice."""

from __future__ import annotations

import pytest
import torch

from vqcodec.codecs.image import ImageCodec, ImageCodecConfig

TINY = ImageCodecConfig(channels=(8, 8), latent_dim=4, codebook_size=16, num_quantizers=3, tile=32)


@pytest.mark.parametrize("quantizer", ["vq", "simvq", "fsq"])
@pytest.mark.parametrize("size", [(17, 23), (32, 32), (5, 70)])
def test_odd_sizes_round_trip(quantizer: str, size: tuple[int, int]) -> None:
    levels = {"fsq": (4, 4)}.get(quantizer, (5, 3, 3, 3))
    config = ImageCodecConfig(
        channels=(8, 8), latent_dim=4, codebook_size=16, num_quantizers=3, quantizer=quantizer,
        fsq_levels=levels, tile=32,
    )  # fmt: skip
    model = ImageCodec(config)
    x = torch.rand(2, 3, *size)
    model.train()
    out = model(x)
    assert out.x_hat.shape == x.shape
    assert out.codes.shape == (2, 3, *model.grid_shape(*size))
    model.eval()
    with torch.no_grad():
        codes = model.encode(x)
        assert codes.shape == (2, 3, *model.grid_shape(*size))
        assert int(codes.max()) < model.vocab_size
        expected = model(x).x_hat.clamp(0, 1)
        decoded = model.decode(codes)[..., : size[0], : size[1]]
    torch.testing.assert_close(decoded, expected)


def test_fewer_levels_and_bitrates() -> None:
    model = ImageCodec(TINY).eval()
    x = torch.rand(1, 3, 16, 16)
    assert model.encode(x, num_levels=1).shape[1] == 1
    assert model.decode(model.encode(x, num_levels=2)).shape == (1, 3, 16, 16)
    assert model.bits_per_pixel(1) == pytest.approx(4 / 16)
    assert model.levels_for_bpp(0.5) == 2 and model.levels_for_bpp(0.01) == 1


def test_tiled_coding_equals_whole_image_and_has_no_seams() -> None:
    torch.manual_seed(0)
    model = ImageCodec(TINY).eval()
    # A smooth gradient spanning several tiles: a seam would show as a jump at tile borders.
    h, w = 80, 100
    ramp = torch.linspace(0, 1, w)[None, :] * 0.6 + torch.linspace(0, 1, h)[:, None] * 0.3
    x = torch.stack([ramp, ramp.flip(-1), 0.5 * ramp])[None]
    with torch.no_grad():
        whole_codes = model.encode(x)
        tiled_codes = model.encode_tiled(x)
        assert torch.equal(tiled_codes, whole_codes)
        whole = model.decode(whole_codes)
        tiled = model.decode_tiled(whole_codes)
    assert tiled.shape == whole.shape
    seam_error = (tiled - whole).abs().max()
    # Float rounding only: far below one 8-bit step (1/255 = 0.0039).
    assert seam_error < 1e-4, f"tiles differ from the whole image by {seam_error}"


def test_bad_input_is_rejected() -> None:
    model = ImageCodec(TINY)
    with pytest.raises(ValueError, match="RGB images"):
        model(torch.rand(1, 1, 8, 8))
    with pytest.raises(ValueError, match="fsq_levels"):
        ImageCodec(ImageCodecConfig(quantizer="fsq", fsq_levels=(8, 5, 5, 5), codebook_size=1024))
    with pytest.raises(ValueError, match="tile"):
        ImageCodec(ImageCodecConfig(channels=(8, 8), tile=30))


def test_shipped_image_model_tokenizes_and_round_trips_through_vqc_bytes() -> None:
    import vqcodec

    model = vqcodec.load("image")
    assert model.name == "image" and model.vocab_size == 1024 and model.factor == 16
    x = torch.rand(1, 3, 40, 72)
    with torch.no_grad():
        codes = model.encode(x, num_levels=2)
        assert codes.shape == (1, 2, 3, 5)
        data = vqcodec.compress(model, x, num_levels=2)
        assert torch.equal(vqcodec.decompress(data, model), model.decode(codes))
