"""``python -m vqcodec.train CONFIG [--set key=value ...] [--resume DIR]``; also what
``accelerate launch -m vqcodec.train ...`` runs on every process."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vqcodec.config import ConfigError
from vqcodec.train.config import load_train_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vqcodec train", description="Train a codec.")
    parser.add_argument("config", help="JSON config file (see configs/)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set optim.lr=3e-4 (repeatable)",
    )
    parser.add_argument("--resume", default=None, help="checkpoint folder to continue from")
    args = parser.parse_args(argv)
    try:
        config = load_train_config(args.config, args.overrides)
    except ConfigError as error:
        print(f"vqcodec train: {error}", file=sys.stderr)
        return 2
    if args.resume is not None and not (Path(args.resume) / "progress.json").is_file():
        print(
            f"vqcodec train: --resume {args.resume}: not a checkpoint folder "
            "(they are OUTPUT_DIR/checkpoints/step_N)",
            file=sys.stderr,
        )
        return 2
    from vqcodec.train.data import DataError
    from vqcodec.train.loop import train

    try:
        result = train(config, resume=args.resume)
    except (ConfigError, DataError) as error:  # found while setting up: bad data, init_from
        print(f"vqcodec train: {error}", file=sys.stderr)
        return 2
    print(
        f"finished at step {result.step}"
        + (f"; model in {result.export_dir}" if result.export_dir else "")
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
