"""The training run's config tree (read from ``configs/*.json``; see :mod:`vqcodec.config`).

A config's ``kind`` (``audio``, the default, or ``image``) picks the tree: :class:`TrainConfig`
for audio codecs, :class:`ImageTrainConfig` for image codecs; both share the data, optimiser and
run sections. :func:`load_train_config` reads either.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from vqcodec.codecs.audio import AudioCodecConfig
from vqcodec.codecs.image import ImageCodecConfig
from vqcodec.config import ConfigError, apply_overrides, check, from_dict, read_json
from vqcodec.train.adversarial import AdversarialConfig
from vqcodec.train.losses import ImageLossWeights, LossWeights


@dataclass(frozen=True)
class DataConfig:
    """Where the data is and how it is cut.

    ``segment_seconds`` applies to audio, ``crop`` (square side in pixels) to images;
    ``exclude`` lists file-name patterns (``fnmatch``) left out, e.g. files whose license does
    not allow shipping a model trained on them. ``cache_audio`` decodes the training audio
    once into shared memory (see :class:`~vqcodec.train.data.AudioFolder`).
    """

    train: tuple[str, ...] = ()
    dev: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    segment_seconds: float = 1.0
    crop: int = 256
    num_workers: int = 0
    cache_audio: bool = False

    def __post_init__(self) -> None:
        check(self.segment_seconds > 0, "segment_seconds", "must be positive")
        check(self.crop >= 8, "crop", "must be at least 8 pixels")
        check(self.num_workers >= 0, "num_workers", "must be 0 or more")


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with linear warm-up then cosine decay to ``final_lr_fraction · lr``."""

    lr: float = 3e-4
    betas: tuple[float, ...] = (0.8, 0.99)
    weight_decay: float = 0.0
    warmup_steps: int = 200
    final_lr_fraction: float = 0.1
    grad_clip: float = 1.0

    def __post_init__(self) -> None:
        check(self.lr > 0, "lr", "must be positive")
        check(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), "betas",
              "must be two numbers in [0, 1)")  # fmt: skip
        check(self.weight_decay >= 0, "weight_decay", "must be 0 or more")
        check(self.warmup_steps >= 0, "warmup_steps", "must be 0 or more")
        check(0 <= self.final_lr_fraction <= 1, "final_lr_fraction", "must be in [0, 1]")
        check(self.grad_clip >= 0, "grad_clip", "must be 0 (off) or more")


@dataclass(frozen=True)
class RunConfig:
    """Length, batch, precision and bookkeeping of a run.

    ``batch_size`` is per process; the effective batch is
    ``batch_size · processes · gradient_accumulation``. Steps count optimiser updates, and the
    learning-rate schedule follows them whatever the number of processes; the learning rate is
    not rescaled when processes are added (set ``optim.lr`` yourself if you want that).
    ``check_replicas_every``: every so many steps each process hashes its parameters and
    quantizer state and the run stops if any process disagrees with process 0 (0: never).
    ``init_from``: start from the weights of a model (a shipped name such as ``audio-24k`` or a
    release/export folder) with the same architecture, instead of a random initialisation (the
    optimiser, schedule and step count start afresh; fine-tuning).
    ``compile``: ``torch.compile`` the model and the losses (the first steps take minutes to
    compile; the first step runs uncompiled, see ``loop.step_function_for``). Off by default: on
    one H100 it removed a third of the kernel launches (1,387 against 2,075 per step) and left
    the step bound by the host; refused with several GPU processes, where it has not been
    re-run since its backward was fixed.
    ``cuda_graphs``: on CUDA GPUs, capture the whole training step (forward, losses, backward,
    optimiser and codebook updates, collectives) as one CUDA graph after 11 eager steps and
    replay it: 3 kernel launches per step instead of 2,075 (profiled; the shipped audio step:
    21.8 against 65.6-69.4 ms on one H100). Ignored on CPUs; refused with ``compile``,
    gradient accumulation and adversarial training. See ``docs/BENCHMARKS.md``.
    ``deterministic``: only deterministic kernels (``torch.use_deterministic_algorithms``, for
    the run only), so that on a GPU two runs of one config give the same losses bit for bit and
    a resumed run continues exactly. CPU runs are deterministic without it. Without it, GPU
    kernels that add with atomics make runs differ from the first step (measured on one H100:
    the smoke config's step-3 loss differed by 0.85 % between two runs); see the README.
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
    check_replicas_every: int = 500
    seed: int = 0
    init_from: str = ""
    compile: bool = False
    cuda_graphs: bool = False
    deterministic: bool = False

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "gradient_accumulation", "log_every", "eval_every",
                     "save_every", "eval_batches"):  # fmt: skip
            check(getattr(self, name) >= 1, name, "must be at least 1")
        check(self.check_replicas_every >= 0, "check_replicas_every", "must be 0 (never) or more")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run of an audio codec reads."""

    kind: Literal["audio"] = "audio"
    model_name: str = "audio-custom"
    model: AudioCodecConfig = field(default_factory=AudioCodecConfig)
    loss: LossWeights = field(default_factory=LossWeights)
    adversarial: AdversarialConfig = field(default_factory=AdversarialConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def __post_init__(self) -> None:
        samples = int(self.model.sample_rate * self.data.segment_seconds)
        check(samples >= 1, "data.segment_seconds", "is shorter than one sample")


@dataclass(frozen=True)
class ImageTrainConfig:
    """Everything a training run of an image codec reads."""

    kind: Literal["image"] = "image"
    model_name: str = "image-custom"
    model: ImageCodecConfig = field(default_factory=ImageCodecConfig)
    loss: ImageLossWeights = field(default_factory=ImageLossWeights)
    adversarial: AdversarialConfig = field(default_factory=AdversarialConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=lambda: RunConfig(output_dir="runs/image"))


CONFIG_KINDS = {"audio": TrainConfig, "image": ImageTrainConfig}


def load_train_config(
    path: str | Path, overrides: list[str] | None = None
) -> TrainConfig | ImageTrainConfig:
    """Read a training config of either kind from JSON, with dotted ``key=value`` overrides."""
    data = apply_overrides(read_json(path), overrides or [])
    kind = data.get("kind", "audio")
    if kind not in CONFIG_KINDS:
        raise ConfigError(f"kind: unknown kind {kind!r} (audio or image)")
    return from_dict(CONFIG_KINDS[kind], data)
