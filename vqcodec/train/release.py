"""Make a release folder from a trained model: float16 weights plus entropy tables fitted on
the codes of the training data.

    python -m vqcodec.train.release RUN/model OUT --config configs/audio-24k.json [--crops 400]

``RUN/model`` may also be a training checkpoint (``RUN/checkpoints/step_N``, or any folder
with the ``model.safetensors`` that ``accelerate`` saved there): the model is then built from
``--config`` and loaded from it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch.utils.data import DataLoader

from vqcodec.bitstream.tables import CodeTables
from vqcodec.checkpoint import CheckpointError, from_pretrained, save_pretrained
from vqcodec.config import ConfigError
from vqcodec.train.config import ImageTrainConfig, TrainConfig, load_train_config
from vqcodec.train.data import DataError
from vqcodec.train.tasks import task_for


def _load(folder: Path, config: TrainConfig | ImageTrainConfig) -> torch.nn.Module:
    """A release or export folder (with config.json), or a training checkpoint's weights."""
    if (folder / "config.json").is_file():
        return from_pretrained(folder)
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise CheckpointError(
            f"{folder}: neither a model folder nor a checkpoint (no {weights.name})"
        )
    model = task_for(config).model()
    try:
        model.load_state_dict(load_file(weights), strict=True)
    except RuntimeError:  # missing, unexpected or differently shaped tensors
        raise CheckpointError(f"{weights} does not fit the architecture of --config") from None
    return model.eval()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fit entropy tables and write a release folder.")
    parser.add_argument("model", help="trained model folder (a run's model/) or checkpoint folder")
    parser.add_argument("output", help="release folder to write")
    parser.add_argument("--config", required=True, help="the run's training config")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--crops", type=int, default=400, help="training crops to fit on")
    parser.add_argument("--force", action="store_true", help="replace an existing output folder")
    args = parser.parse_args(argv)
    try:
        if args.crops < 1:
            raise ConfigError("--crops must be at least 1")
        if Path(args.output).exists() and not args.force:
            raise ConfigError(f"{args.output} exists (use --force to replace it)")
        config = load_train_config(args.config, args.overrides)
        model = _load(Path(args.model), config)
        data = task_for(config).dataset(config.data.train, train=True)
    except (ConfigError, CheckpointError, DataError) as error:
        print(f"vqcodec release: {error}", file=sys.stderr)
        return 2
    torch.manual_seed(0)
    batches, seen = [], 0
    with torch.no_grad():
        while seen < args.crops:  # epochs of random crops until enough (small folders repeat)
            for x in DataLoader(data, batch_size=8, shuffle=True):
                batches.append(model.encode(x))
                seen += x.shape[0]
                if seen >= args.crops:
                    break
    sizes = [model.quantizer.codebook_size] * batches[0].shape[1]
    save_pretrained(model, args.output, tables=CodeTables.fit(batches, sizes), half=True)
    print(f"wrote {args.output} (tables fitted on {seen} crops)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
