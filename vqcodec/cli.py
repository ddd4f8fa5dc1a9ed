"""The ``vqcodec`` command line. Verbs arrive with the features they drive (encode/decode with
the first shipped codec); today it reports the version and what the install can run on."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for ``vqcodec``."""
    from vqcodec import __version__

    parser = argparse.ArgumentParser(
        prog="vqcodec", description="Neural codecs and vector quantizers."
    )
    parser.add_argument("--version", action="version", version=f"vqcodec {__version__}")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("env", help="print the versions and devices this install sees")
    return parser


def _env() -> int:
    import torch

    from vqcodec import __version__

    print(f"vqcodec {__version__}")
    print(f"torch {torch.__version__}")
    print(f"cuda available: {torch.cuda.is_available()}")
    if torch.cuda.is_available():
        print(f"device: {torch.cuda.get_device_name()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "env":
        return _env()
    parser.print_help(sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
