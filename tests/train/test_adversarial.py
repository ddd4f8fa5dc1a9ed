"""Adversarial training: discriminator shapes, the hinge and feature-matching terms, and runs of
the training loop with a discriminator (exact resume included)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.train.test_image_training import CONFIGS
from tests.train.test_loop import EXACT, smoke
from vqcodec.train.adversarial import (
    discriminator_hinge,
    feature_matching,
    generator_hinge,
)
from vqcodec.train.config import load_train_config
from vqcodec.train.discriminators import (
    Judgement,
    MultiScaleSTFTDiscriminator,
    PatchDiscriminator,
)
from vqcodec.train.loop import train

ADVERSARIAL = ["adversarial.weight=0.1", "adversarial.feature_matching=0.2"]


def test_stft_discriminator_judges_every_scale() -> None:
    judged = MultiScaleSTFTDiscriminator(windows=(512, 128), filters=4)(torch.randn(2, 1, 3000))
    assert len(judged) == 2
    for judgement, window in zip(judged, (512, 128)):
        frames = 3000 // (window // 4) + 1
        assert judgement.logits.shape[:3] == (2, 1, frames)
        assert len(judgement.features) == 5
        assert all(f.shape[0] == 2 for f in judgement.features)


def test_patch_discriminator_gives_a_grid_of_logits_for_odd_sizes() -> None:
    (judgement,) = PatchDiscriminator(width=8)(torch.rand(3, 3, 41, 67))
    assert judgement.logits.shape == (3, 1, 3, 6)
    assert len(judgement.features) == 4


def _judged(value: float, features: list[torch.Tensor] | None = None) -> list[Judgement]:
    return [Judgement(torch.full((2, 1, 3), value), features or [])]


def test_hinge_losses() -> None:
    assert discriminator_hinge(_judged(2.0), _judged(-2.0)).item() == 0.0  # confident and right
    assert discriminator_hinge(_judged(0.0), _judged(0.0)).item() == 2.0
    assert discriminator_hinge(_judged(-1.0), _judged(1.0)).item() == 4.0
    assert generator_hinge(_judged(-1.0)).item() == 2.0
    assert generator_hinge(_judged(3.0)).item() == 0.0


def test_feature_matching_is_relative_and_zero_only_for_equal_features() -> None:
    real = [torch.ones(2, 4), torch.full((2, 3), -2.0)]
    assert feature_matching(_judged(0, real), _judged(0, [f.clone() for f in real])) == 0
    fake = [torch.zeros(2, 4), torch.full((2, 3), -1.0)]
    # layer distances relative to the mean |real|: 1/1 and 1/2
    assert feature_matching(_judged(0, real), _judged(0, fake)).item() == pytest.approx(0.75)


@pytest.mark.slow
def test_resume_with_a_discriminator_gives_the_same_next_step_loss(
    audio_folder: Path, tmp_path: Path
) -> None:
    def config(out: str):
        return smoke(audio_folder, tmp_path / out, *EXACT, *ADVERSARIAL)

    whole = train(config("a"))
    resumed = train(config("b"), resume=tmp_path / "a" / "checkpoints" / "step_2")
    assert resumed.losses[3] == whole.losses[3]
    assert resumed.losses[4] == whole.losses[4]
    without = train(smoke(audio_folder, tmp_path / "c", "run.steps=4", "run.save_every=4"))
    assert without.losses[1] != whole.losses[1]  # the adversarial terms are in the loss


@pytest.mark.slow
def test_image_run_trains_the_discriminator_from_its_start_step(
    image_folder: Path, tmp_path: Path
) -> None:
    config = load_train_config(
        CONFIGS / "image-smoke.json",
        [
            f'data.train=["{image_folder}"]',
            f"run.output_dir={tmp_path / 'run'}",
            "run.steps=6",
            "run.save_every=6",
            "adversarial.weight=0.1",
            "adversarial.start_step=3",
            "adversarial.width=8",
        ],
    )
    train(config)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    started = [r["step"] for r in log if "discriminator" in r]
    assert started == [4, 5, 6]  # steps count from 1; step 4 is the first with step >= 3 before it
    assert all("adversarial" in r for r in log if r["step"] > 3)
    checkpoint = tmp_path / "run" / "checkpoints" / "step_6"
    assert (checkpoint / "model_1.safetensors").exists()  # the discriminator is saved
    assert (checkpoint / "optimizer_1.bin").exists()
