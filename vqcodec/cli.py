"""The ``vqcodec`` command line: argparse verbs that read and write files and call library
functions. Bad input gives one line on stderr and a non-zero exit code, never a traceback;
outputs are written atomically and never overwrite a file without ``--force``."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

EXIT_OK, EXIT_USAGE, EXIT_FAILED = 0, 2, 1
DEFAULT_AUDIO_MODEL = "audio-24k"


class UserError(Exception):
    """A problem with the user's input: reported as one line, exit code 1."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for ``vqcodec``."""
    from vqcodec import __version__

    parser = argparse.ArgumentParser(
        prog="vqcodec", description="Neural codecs and vector quantizers."
    )
    parser.add_argument("--version", action="version", version=f"vqcodec {__version__}")
    sub = parser.add_subparsers(dest="command")

    encode = sub.add_parser("encode", help="compress audio files (or folders of them) to .vqc")
    encode.add_argument("input", help="an audio file or a folder (searched recursively)")
    encode.add_argument("-o", "--output", help="output file (one input) or folder")
    encode.add_argument(
        "--bitrate",
        type=float,
        default=None,
        help="kb/s before entropy coding (default: the model's highest)",
    )
    encode.add_argument(
        "--model", default=DEFAULT_AUDIO_MODEL, help="model name or checkpoint folder"
    )
    encode.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    encode.add_argument("--force", action="store_true", help="overwrite existing outputs")

    decode = sub.add_parser("decode", help="decompress .vqc files (or folders of them) to WAV")
    decode.add_argument("input", help="a .vqc file or a folder (searched recursively)")
    decode.add_argument("-o", "--output", help="output file (one input) or folder")
    decode.add_argument(
        "--model", default=None, help="model name or folder (default: the one named in the file)"
    )
    decode.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    decode.add_argument("--force", action="store_true", help="overwrite existing outputs")

    info = sub.add_parser("info", help="describe a .vqc file")
    info.add_argument("input")
    verify = sub.add_parser("verify", help="check a .vqc file completely (checksums and codes)")
    verify.add_argument("input")
    verify.add_argument(
        "--model", default=None, help="model name or folder (default: the one named in the file)"
    )
    sub.add_parser("env", help="print the versions and devices this install sees")
    train = sub.add_parser(
        "train", help="train a codec (same as python -m vqcodec.train)", add_help=False
    )
    train.add_argument("rest", nargs=argparse.REMAINDER)
    evaluate = sub.add_parser(
        "eval", help="rate-distortion of an audio model (and Opus) on a folder of lossless files"
    )
    evaluate.add_argument("data", help="audio file or folder (lossless references)")
    evaluate.add_argument("--model", default="audio-24k", help="model name or folder")
    evaluate.add_argument("--levels", default="2,4,8", help="residual levels to code with")
    evaluate.add_argument("--opus", default="", help="Opus bitrates in kb/s, e.g. 6,8,12")
    evaluate.add_argument("--plot", default=None, help="write a rate-distortion PNG here")
    evaluate.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    return parser


def _write_atomically(path: Path, data: bytes, force: bool) -> None:
    if path.exists() and not force:
        raise UserError(f"{path} exists (use --force to overwrite)")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as f:
            f.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _jobs(
    source: Path, output: str | None, suffixes: tuple[str, ...], new_suffix: str
) -> list[tuple[Path, Path]]:
    """(input, output) pairs: one file, or every matching file under a folder (mirrored)."""
    if source.is_file():
        target = Path(output) if output else source.with_suffix(new_suffix)
        if target.is_dir():
            target = target / source.with_suffix(new_suffix).name
        return [(source, target)]
    if source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
        if not files:
            raise UserError(f"no {'/'.join(suffixes)} files under {source}")
        root = Path(output) if output else source
        return [(p, (root / p.relative_to(source)).with_suffix(new_suffix)) for p in files]
    raise UserError(f"{source} does not exist")


def _progress(items: list, desc: str):
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, unit="file", disable=len(items) < 2, file=sys.stderr)


def _load_model(name: str, device: str):
    import torch

    from vqcodec.checkpoint import CheckpointError, UnknownModelError, load

    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but no CUDA GPU is available")
    try:
        return load(name).to(device)
    except (UnknownModelError, CheckpointError) as error:
        raise UserError(str(error)) from None


def _read_audio(path: Path):
    import soundfile
    import torch

    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except Exception as error:  # soundfile raises several types for unreadable files
        raise UserError(f"{path}: not readable audio ({error})") from None
    if data.shape[0] == 0:
        raise UserError(f"{path}: the file holds no audio samples")
    return torch.from_numpy(data.T.copy()), rate


def _encode(args: argparse.Namespace) -> int:
    from vqcodec.bitstream.audio import compress_audio
    from vqcodec.train.data import AUDIO_SUFFIXES

    jobs = _jobs(Path(args.input), args.output, AUDIO_SUFFIXES, ".vqc")
    model = _load_model(args.model, args.device)
    levels = None if args.bitrate is None else model.levels_for_bitrate(args.bitrate)
    for source, target in _progress(jobs, "encode"):
        if target.exists() and not args.force:
            raise UserError(f"{target} exists (use --force to overwrite)")
        audio, rate = _read_audio(source)
        _write_atomically(target, compress_audio(model, audio, rate, num_levels=levels), args.force)
    if len(jobs) == 1:
        source, target = jobs[0]
        print(f"{source} -> {target} ({target.stat().st_size:,} bytes)")
    return EXIT_OK


def _decode(args: argparse.Namespace) -> int:
    import io

    import soundfile

    from vqcodec.bitstream.audio import decompress_audio

    jobs = _jobs(Path(args.input), args.output, (".vqc",), ".wav")
    model = _load_model(args.model, args.device) if args.model else None
    for source, target in _progress(jobs, "decode"):
        if target.exists() and not args.force:
            raise UserError(f"{target} exists (use --force to overwrite)")
        audio, rate = decompress_audio(source.read_bytes(), _model_for(source, model, args.device))
        buffer = io.BytesIO()
        soundfile.write(buffer, audio.clamp(-1, 1).T.numpy(), rate, format="WAV", subtype="PCM_16")
        _write_atomically(target, buffer.getvalue(), args.force)
    if len(jobs) == 1:
        print(f"{jobs[0][0]} -> {jobs[0][1]}")
    return EXIT_OK


_MODELS: dict[str, object] = {}


def _model_for(source: Path, model, device: str):
    """The given model, or the one the file names (loaded once per name)."""
    if model is not None:
        return model
    from vqcodec.bitstream import read_code_header

    name = read_code_header(source.read_bytes()).get("model", {}).get("name")
    if not isinstance(name, str):
        raise UserError(f"{source}: the file does not name its model; pass --model")
    if name not in _MODELS:
        _MODELS[name] = _load_model(name, device)
    return _MODELS[name]


def _info(args: argparse.Namespace) -> int:
    from vqcodec.bitstream import read_code_header

    path = Path(args.input)
    data = _read_file(path)
    header = read_code_header(data)
    codes, signal = header["codes"], header.get("signal", {})
    print(f"file: {path} ({len(data):,} bytes, .vqc format version 1)")
    if "model" in header:
        print(f"model: {header['model'].get('name')} (config {header['model'].get('config_hash')})")
    if signal.get("kind") == "audio":
        seconds = signal["length"] / signal["sample_rate"]
        print(
            f"audio: {signal['channels']} channel(s), {signal['sample_rate']} Hz, {seconds:.2f} s, "
            f"{len(data) * 8 / seconds / 1000:.2f} kb/s"
        )
    print(f"codes: shape {codes['shape']}, codebook sizes {sorted(set(codes['codebook_sizes']))}")
    print("streams: " + ", ".join(s["coder"] for s in codes["streams"]))
    return EXIT_OK


def _verify(args: argparse.Namespace) -> int:
    from vqcodec.bitstream import read_code_header, unpack_codes

    path = Path(args.input)
    data = _read_file(path)
    header = read_code_header(data)
    tables = None
    if header.get("tables"):
        model = _load_model(args.model, "cpu") if args.model else _model_for(path, None, "cpu")
        tables = getattr(model, "code_tables", None)
    codes, _ = unpack_codes(data, tables)
    print(f"{path}: OK ({codes.numel():,} codes, all checksums match)")
    return EXIT_OK


def _evaluate(args: argparse.Namespace) -> int:
    from vqcodec.eval.audio import (
        markdown_table,
        model_round_trip,
        opus_round_trip,
        plot,
        rate_point,
    )
    from vqcodec.eval.metrics import MissingMetricPackage
    from vqcodec.eval.opus import OpusUnavailable
    from vqcodec.train.data import find_audio_files

    try:
        files = find_audio_files([args.data])
        levels = [int(n) for n in args.levels.split(",") if n]
        opus = [float(k) for k in args.opus.split(",") if k]
    except (FileNotFoundError, ValueError) as error:
        raise UserError(str(error)) from None
    if not files:
        raise UserError(f"{args.data}: no audio files found")
    if args.plot:
        try:
            import matplotlib  # noqa: F401  (checked before the long evaluation, not after)
        except ImportError:
            raise UserError('--plot needs matplotlib: pip install -e ".[eval]"') from None
    model = _load_model(args.model, args.device)
    points = []
    try:
        for n in levels:
            desc = f"{model.name} {n} levels"
            points.append(
                rate_point(model.name, f"{n} levels", files, model_round_trip(model, n),
                           lambda items, d=desc: _progress(list(items), d))
            )  # fmt: skip
        for kbps in opus:
            desc = f"opus {kbps:g} kb/s"
            points.append(
                rate_point("opus", f"{kbps:g} kb/s", files, opus_round_trip(kbps),
                           lambda items, d=desc: _progress(list(items), d))
            )  # fmt: skip
    except (MissingMetricPackage, OpusUnavailable) as error:
        raise UserError(str(error)) from None
    print(f"{len(files)} files from {args.data}")
    print(markdown_table(points))
    if args.plot:
        plot(points, args.plot)
        print(f"plot: {args.plot}")
    return EXIT_OK


def _read_file(path: Path) -> bytes:
    if not path.is_file():
        raise UserError(f"{path} does not exist or is not a file")
    return path.read_bytes()


def _env() -> int:
    import torch

    from vqcodec import __version__
    from vqcodec.checkpoint import registered_models

    print(f"vqcodec {__version__}")
    print(f"torch {torch.__version__}")
    print(f"cuda available: {torch.cuda.is_available()}")
    if torch.cuda.is_available():
        print(f"device: {torch.cuda.get_device_name()}")
    print(f"models: {', '.join(registered_models()) or 'none'}")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    from vqcodec.bitstream import BitstreamError

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "train":
        from vqcodec.train.__main__ import main as train_main

        return train_main(args.rest)
    verbs = {
        "encode": _encode,
        "decode": _decode,
        "info": _info,
        "verify": _verify,
        "env": lambda _: _env(),
        "eval": _evaluate,
    }
    if args.command not in verbs:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return verbs[args.command](args)
    except (UserError, BitstreamError) as error:
        print(f"vqcodec {args.command}: {error}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"vqcodec {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
