"""Image codecs train through the same loop: a tiny CPU run whose export loads and codes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vqcodec.checkpoint import from_pretrained
from vqcodec.config import ConfigError
from vqcodec.train.config import ImageTrainConfig, TrainConfig, load_train_config
from vqcodec.train.data import ImageFolder
from vqcodec.train.loop import train

CONFIGS = Path(__file__).parents[2] / "configs"


def test_image_folder_crops_skips_and_excludes(image_folder: Path) -> None:
    data = ImageFolder([image_folder], crop=32, exclude=["excluded_*"])
    assert sorted(p.name for p in data.files) == ["photo0.jpg", "photo1.png", "photo2.png"]
    assert [p.name for p, _ in data.skipped] == ["broken.png"]
    crops = torch.stack([data[i] for i in range(len(data))])
    assert crops.shape == (3, 3, 32, 32) and 0 <= crops.min() and crops.max() <= 1


def test_config_kind_picks_the_tree(tmp_path: Path) -> None:
    assert isinstance(load_train_config(CONFIGS / "image.json"), ImageTrainConfig)
    assert isinstance(load_train_config(CONFIGS / "audio-24k.json"), TrainConfig)
    bad = tmp_path / "bad.json"
    bad.write_text('{"kind": "video"}')
    with pytest.raises(ConfigError, match="unknown kind"):
        load_train_config(bad)


@pytest.mark.slow
def test_tiny_image_training_run_exports_a_working_model(image_folder: Path, tmp_path: Path):
    config = load_train_config(
        CONFIGS / "image-smoke.json",
        [
            f'data.train=["{image_folder}"]',
            f'data.dev=["{image_folder}"]',
            f"run.output_dir={tmp_path / 'run'}",
            "run.steps=30",
            "run.eval_every=15",
        ],
    )
    result = train(config)
    early = sum(result.losses[s] for s in range(1, 4)) / 3
    late = sum(result.losses[s] for s in range(28, 31)) / 3
    assert late < early
    model = from_pretrained(result.export_dir)
    assert model.name == "image-smoke"
    x = torch.rand(1, 3, 20, 28)
    with torch.no_grad():
        codes = model.encode(x)
        h, w = model.grid_shape(20, 28)
        assert codes.shape == (1, 2, h, w)
        assert model.decode(codes).shape == (1, 3, h * model.factor, w * model.factor)
