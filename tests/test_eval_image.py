"""Image evaluation: metrics, reference codecs held to the model's bytes, the rate-distortion
run on a tiny model, and finding a file's kind from its contents."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from vqcodec.eval import image, metrics, pillow_codecs
from vqcodec.media import MediaError, detect_kind, read_picture


def _picture(height: int = 170, width: int = 200, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    smooth = torch.stack([x, y, (x + y) / 2])
    return (smooth + 0.05 * torch.randn(3, height, width, generator=generator)).clamp(0, 1)


def test_image_metrics() -> None:
    picture = _picture()
    assert metrics.psnr(picture, picture) == math.inf
    assert metrics.ssim(picture, picture) == pytest.approx(1.0, abs=1e-5)
    assert metrics.ms_ssim(picture, picture) == pytest.approx(1.0, abs=1e-5)
    slightly, badly = (picture + s * torch.randn_like(picture) for s in (0.02, 0.2))
    assert metrics.psnr(slightly, picture) == pytest.approx(34, abs=0.5)  # 20 log10(1 / 0.02)
    assert metrics.ssim(badly, picture) < metrics.ssim(slightly, picture) < 1
    assert metrics.ms_ssim(badly, picture) < metrics.ms_ssim(slightly, picture) < 1
    assert math.isnan(metrics.ms_ssim(picture[:, :100], picture[:, :100]))  # too small: 5 scales


@pytest.mark.parametrize("name", ["jpeg", "webp", "avif"])
def test_reference_gets_at_most_the_budget_and_the_best_quality_within_it(name: str) -> None:
    try:
        pillow_codecs.check_format(name)
    except pillow_codecs.FormatUnavailable as error:
        pytest.skip(str(error))
    picture = _picture()
    budget = pillow_codecs.round_trip(picture, name, 40)[1]
    decoded, size, quality = pillow_codecs.best_under(picture, name, budget)
    assert size <= budget and quality >= 40 - 3  # sizes are nearly monotone in quality
    higher = [q for q in pillow_codecs.FORMATS[name][2] if q > quality]
    if higher:
        assert pillow_codecs.round_trip(picture, name, higher[0])[1] > budget
    assert decoded.shape == picture.shape
    assert pillow_codecs.best_under(picture, name, 50) is None  # below the lowest quality


def test_grey_references_stay_grey() -> None:
    grey = _picture()[:1]
    decoded, size = pillow_codecs.round_trip(grey, "jpeg", 50)
    assert decoded.shape == grey.shape and size > 0


def test_evaluate_a_tiny_model(tmp_path: Path) -> None:
    from PIL import Image

    from vqcodec.codecs.image import ImageCodec, ImageCodecConfig
    from vqcodec.media import to_uint8

    for seed in range(2):
        Image.fromarray(to_uint8(_picture(seed=seed))).save(tmp_path / f"p{seed}.png")
    torch.manual_seed(0)
    config = ImageCodecConfig(channels=(8, 8), latent_dim=4, codebook_size=16, num_quantizers=3)
    model = ImageCodec(config, name="tiny").eval()
    files = sorted(tmp_path.glob("*.png"))
    result = image.evaluate(model, files, [1, 3], ["jpeg"])
    ours = [p for p in result.points if p.codec == "tiny"]
    jpeg = [p for p in result.points if p.codec == "jpeg"]
    assert [p.setting for p in ours] == ["1 levels", "3 levels"] and len(jpeg) == 2
    assert ours[0].bpp < ours[1].bpp and ours[0].encode_s_per_mp > 0
    for mine, theirs in zip(ours, jpeg):
        assert theirs.images == 2 or "unreachable" in theirs.note
        if theirs.images == 2:
            assert theirs.bpp <= mine.bpp  # never more bytes than the model, picture by picture
    assert len(result.curves) == len(image.CURVE_QUALITIES["jpeg"])
    assert len(result.usage) == 3 and all(0 < u <= 1 for u in result.usage)
    table = image.markdown_table(result.points)
    assert table.count("\n") == 1 + len(result.points)
    try:
        import matplotlib  # noqa: F401  (the eval extra; the test extra does not install it)
    except ImportError:
        return
    image.plot(result, tmp_path / "rd.png")
    assert (tmp_path / "rd.png").stat().st_size > 1000


def test_kind_comes_from_the_contents(tmp_path: Path) -> None:
    from PIL import Image

    picture = tmp_path / "looks_like.wav"  # a PNG with the wrong name is still a picture
    Image.new("RGB", (8, 8)).save(picture, format="PNG")
    sound = tmp_path / "sound.bin"
    soundfile.write(sound, np.zeros(100), 8000, format="WAV")
    assert detect_kind(picture) == "image" and detect_kind(sound) == "audio"
    (tmp_path / "text.png").write_text("hello")
    (tmp_path / "empty.png").write_bytes(b"")
    for name, message in [("text.png", "neither"), ("empty.png", "empty"), ("no.png", "exist")]:
        with pytest.raises(MediaError, match=message):
            detect_kind(tmp_path / name)
    assert read_picture(picture)[0].shape == (3, 8, 8)
