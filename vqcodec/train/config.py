"""The training run's config tree (read from ``configs/*.json``; see :mod:`vqcodec.config`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from vqcodec.codecs.audio import AudioCodecConfig
from vqcodec.train.losses import LossWeights


@dataclass(frozen=True)
class DataConfig:
    """Where the audio is and how it is cut."""

    train: tuple[str, ...] = ()
    dev: tuple[str, ...] = ()
    segment_seconds: float = 1.0
    num_workers: int = 0


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with linear warm-up then cosine decay to ``final_lr_fraction · lr``."""

    lr: float = 3e-4
    betas: tuple[float, ...] = (0.8, 0.99)
    weight_decay: float = 0.0
    warmup_steps: int = 200
    final_lr_fraction: float = 0.1
    grad_clip: float = 1.0


@dataclass(frozen=True)
class RunConfig:
    """Length, batch, precision and bookkeeping of a run.

    ``batch_size`` is per process; the effective batch is
    ``batch_size · processes · gradient_accumulation``. Steps count optimiser updates.
    """

    output_dir: str = "runs/audio"
    steps: int = 1000
    batch_size: int = 16
    gradient_accumulation: int = 1
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    log_every: int = 50
    eval_every: int = 500
    save_every: int = 500
    eval_batches: int = 4
    seed: int = 0


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run reads."""

    model_name: str = "audio-custom"
    model: AudioCodecConfig = field(default_factory=AudioCodecConfig)
    loss: LossWeights = field(default_factory=LossWeights)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)
