"""The ``vqcodec`` command line: argparse verbs that read and write files and call library
functions. Bad input gives one line on stderr and a non-zero exit code, never a traceback;
outputs are written atomically and never overwrite a file without ``--force``."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

EXIT_OK, EXIT_USAGE, EXIT_FAILED = 0, 2, 1
DEFAULT_MODELS = {"audio": "audio-24k", "image": "image"}


class UserError(Exception):
    """A problem with the user's input: reported as one line, exit code 1."""


class SetupError(UserError):
    """A problem with the command rather than with one file (a model that cannot be loaded, an
    impossible ``--levels``): a folder run stops at once instead of repeating it per file."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for ``vqcodec``."""
    from vqcodec import __version__

    parser = argparse.ArgumentParser(
        prog="vqcodec", description="Neural codecs and vector quantizers."
    )
    parser.add_argument("--version", action="version", version=f"vqcodec {__version__}")
    sub = parser.add_subparsers(dest="command")

    encode = sub.add_parser(
        "encode", help="compress audio files and pictures (or folders of them) to .vqc"
    )
    encode.add_argument(
        "input", help="an audio file, a picture, or a folder (searched recursively)"
    )
    encode.add_argument("-o", "--output", help="output file (one input) or folder")
    rate = encode.add_mutually_exclusive_group()
    rate.add_argument(
        "--bitrate",
        type=float,
        default=None,
        help="audio: kb/s, pictures: bits per pixel, before entropy coding; the most residual "
        "levels within it (default: all levels)",
    )
    rate.add_argument("--levels", type=int, default=None, help="residual levels to code")
    encode.add_argument(
        "--model",
        default=None,
        help="model name or checkpoint folder (default: audio-24k for audio, image for pictures)",
    )
    encode.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    encode.add_argument("--force", action="store_true", help="overwrite existing outputs")

    decode = sub.add_parser(
        "decode", help="decompress .vqc files (or folders of them) to WAV (audio) or PNG (pictures)"
    )
    decode.add_argument("input", help="a .vqc file or a folder (searched recursively)")
    decode.add_argument(
        "-o",
        "--output",
        help="output file (one input; a picture's format follows its suffix) or folder",
    )
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
        "eval",
        help="rate-distortion of a model (against Opus, or JPEG/WebP/AVIF) on lossless files",
    )
    evaluate.add_argument("data", help="a file or folder of lossless references")
    evaluate.add_argument("--model", default="audio-24k", help="model name or folder")
    evaluate.add_argument(
        "--levels",
        default=None,
        help="residual levels to code with (default 2,4,8; images 1,2,4,8)",
    )
    evaluate.add_argument("--opus", default="", help="audio: Opus bitrates in kb/s, e.g. 6,8,12")
    evaluate.add_argument(
        "--formats",
        default="",
        help="pictures: reference formats matched to the model's bytes, e.g. jpeg,webp,avif",
    )
    evaluate.add_argument("--plot", default=None, help="write a rate-distortion PNG here")
    evaluate.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    return parser


@contextlib.contextmanager
def _atomic_output(path: Path, force: bool):
    """A temporary path beside ``path`` to write to; moved onto ``path`` only when the block
    finishes without an error (so a failure never leaves a partial or clobbered file)."""
    if path.exists() and not force:
        raise UserError(f"{path} exists (use --force to overwrite)")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(handle)
    try:
        yield Path(temporary)
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes 0600; give a normal file's mode
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _write_atomically(path: Path, data: bytes, force: bool) -> None:
    with _atomic_output(path, force) as temporary:
        temporary.write_bytes(data)


BLOCK_SAMPLES = 1 << 18  # samples per channel written at a time when decoding audio


def _write_wav(path: Path, audio, force: bool) -> None:
    """Write a decoded audio source to a 16-bit WAV file block by block (bounded memory)."""
    import soundfile

    with _atomic_output(path, force) as temporary:
        with soundfile.SoundFile(
            str(temporary), "w", audio.rate, audio.channels, subtype="PCM_16", format="WAV"
        ) as out:
            for start in range(0, audio.length, BLOCK_SAMPLES):
                block = audio.read(start, min(start + BLOCK_SAMPLES, audio.length))
                out.write(block.clamp(-1, 1).T.numpy())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _jobs(
    source: Path, output: str | None, suffixes: tuple[str, ...], new_suffix: Callable[[Path], str]
) -> list[tuple[Path, Path]]:
    """(input, output) pairs: one file, or every matching file under a folder (mirrored)."""
    if source.is_file():
        if output and not Path(output).is_dir():
            return [(source, Path(output))]
        target = source.with_suffix(new_suffix(source))
        return [(source, Path(output) / target.name if output else target)]
    if source.is_dir():
        files = sorted(
            p
            for p in source.rglob("*")
            if p.is_file()
            and p.suffix.lower() in suffixes
            # Hidden files and folders (.git, .venv, editors' temporaries) are not the user's media.
            and not any(part.startswith(".") for part in p.relative_to(source).parts)
        )
        if not files:
            raise UserError(f"no {'/'.join(suffixes)} files under {source}")
        root = Path(output) if output else source
        jobs = [(p, (root / p.relative_to(source)).with_suffix(new_suffix(p))) for p in files]
        targets: dict[Path, Path] = {}
        for p, target in jobs:
            if target in targets:
                raise UserError(f"{targets[target]} and {p} would both be written to {target}")
            targets[target] = p
        return jobs
    raise UserError(f"{source} does not exist")


def _progress(items: list, desc: str):
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, unit="file", disable=len(items) < 2, file=sys.stderr)


def _for_each(jobs: list[tuple[Path, Path]], command: str, work: Callable[[Path, Path], None]):
    """Run ``work(source, target)`` for every job, with a progress bar for several.

    One file: its error is the command's error. Several (a folder): a file that fails is
    reported on one line and skipped, the rest are still coded, and the command fails at the
    end if any file did (as ``gzip -r`` does); a :class:`SetupError` stops it at once.
    """
    from vqcodec.bitstream import BitstreamError

    if len(jobs) == 1:
        work(*jobs[0])
        return
    failed = 0
    bar = _progress(jobs, command)
    for source, target in bar:
        try:
            work(source, target)
        except SetupError:
            raise
        except (UserError, BitstreamError) as error:
            failed += 1
            message = str(error) if str(source) in str(error) else f"{source}: {error}"
            bar.write(f"vqcodec {command}: {message}", file=sys.stderr)
    if failed:
        raise UserError(f"{failed} of {len(jobs)} files failed (each reported above)")


_MODELS: dict[tuple[str, str], object] = {}


def _load_model(name: str, device: str):
    """The model ``name`` on ``device``, loaded once per run."""
    import torch

    from vqcodec.checkpoint import CheckpointError, UnknownModelError, load

    if device == "cuda" and not torch.cuda.is_available():
        raise SetupError("--device cuda was asked for but no CUDA GPU is available")
    if (name, device) not in _MODELS:
        try:
            _MODELS[name, device] = load(name).to(device)
        except (UnknownModelError, CheckpointError) as error:
            raise SetupError(str(error)) from None
    return _MODELS[name, device]


def _model_kind(model) -> str:
    from vqcodec.codecs.audio import AudioCodec
    from vqcodec.codecs.image import ImageCodec

    return {AudioCodec: "audio", ImageCodec: "image"}.get(type(model), "unknown")


def _model_for_kind(kind: str, source: Path, args: argparse.Namespace):
    """The model for an input of ``kind``: ``--model`` (checked to fit) or the default."""
    model = _load_model(args.model or DEFAULT_MODELS[kind], args.device)
    if _model_kind(model) != kind:
        raise UserError(
            f"{source} is {'a picture' if kind == 'image' else 'audio'}, but model "
            f"{model.name!r} codes {'pictures' if _model_kind(model) == 'image' else 'audio'}"
        )
    return model


def _levels(model, kind: str, args: argparse.Namespace) -> int | None:
    """Residual levels from ``--levels`` or ``--bitrate`` (kb/s for audio, bpp for images)."""
    most = model.config.num_quantizers
    if args.levels is not None:
        if not 1 <= args.levels <= most:
            raise SetupError(f"--levels must be between 1 and {most} for model {model.name!r}")
        return args.levels
    if args.bitrate is None:
        return None
    if args.bitrate <= 0:
        raise SetupError("--bitrate must be positive")
    return (
        model.levels_for_bitrate(args.bitrate)
        if kind == "audio"
        else model.levels_for_bpp(args.bitrate)
    )


def _encode(args: argparse.Namespace) -> int:
    from vqcodec.bitstream.audio import compress_audio
    from vqcodec.bitstream.image import compress_image
    from vqcodec.bitstream.sources import FileSource
    from vqcodec.media import MediaError, detect_kind, read_picture
    from vqcodec.train.data import AUDIO_SUFFIXES, IMAGE_SUFFIXES

    jobs = _jobs(Path(args.input), args.output, AUDIO_SUFFIXES + IMAGE_SUFFIXES, lambda _: ".vqc")

    def encode(source: Path, target: Path) -> None:
        if target.exists() and not args.force:
            raise UserError(f"{target} exists (use --force to overwrite)")
        try:
            kind = detect_kind(source)
            model = _model_for_kind(kind, source, args)
            levels = _levels(model, kind, args)
            if kind == "audio":
                audio = FileSource(source)  # read and resampled a chunk at a time
                try:
                    data = compress_audio(model, audio, num_levels=levels)
                finally:
                    audio.close()
            else:
                picture, had_alpha = read_picture(source)
                if had_alpha:
                    print(f"vqcodec encode: {source}: transparency is not coded", file=sys.stderr)
                data = compress_image(model, picture, num_levels=levels)
        except (MediaError, ValueError) as error:
            raise UserError(str(error)) from None
        _write_atomically(target, data, args.force)

    _for_each(jobs, "encode", encode)
    if len(jobs) == 1:
        source, target = jobs[0]
        print(f"{source} -> {target} ({target.stat().st_size:,} bytes)")
    return EXIT_OK


def _signal_kind(data: bytes) -> str:
    from vqcodec.bitstream import read_code_header

    kind = read_code_header(data).get("signal", {}).get("kind")
    return kind if kind in ("audio", "image") else "unknown"


def _decoded_suffix(source: Path) -> str:
    from vqcodec.bitstream import BitstreamError

    try:
        return ".png" if _signal_kind(_read_file(source)) == "image" else ".wav"
    except (UserError, BitstreamError):
        return ".wav"  # unreadable: decoding it reports the error


def _decode(args: argparse.Namespace) -> int:
    from vqcodec.bitstream.audio import decoded_audio
    from vqcodec.bitstream.image import decompress_image
    from vqcodec.media import MediaError, picture_bytes

    jobs = _jobs(Path(args.input), args.output, (".vqc",), _decoded_suffix)
    model = _load_model(args.model, args.device) if args.model else None

    def decode(source: Path, target: Path) -> None:
        if target.exists() and not args.force:
            raise UserError(f"{target} exists (use --force to overwrite)")
        data = _read_file(source)
        coder = _model_for(source, data, model, args.device)
        if _signal_kind(data) == "image":
            try:
                encoded = picture_bytes(decompress_image(data, coder), target.suffix or ".png")
            except MediaError as error:
                raise UserError(f"{target}: {error}") from None
            _write_atomically(target, encoded, args.force)
        else:
            _write_wav(target, decoded_audio(data, coder), args.force)

    _for_each(jobs, "decode", decode)
    if len(jobs) == 1:
        print(f"{jobs[0][0]} -> {jobs[0][1]}")
    return EXIT_OK


def _model_for(source: Path, data: bytes, model, device: str):
    """The given model, or the one the file's bytes name (loaded once per name)."""
    if model is not None:
        return model
    from vqcodec.bitstream import read_code_header

    name = read_code_header(data).get("model", {}).get("name")
    if not isinstance(name, str):
        raise UserError(f"{source}: the file does not name its model; pass --model")
    return _load_model(name, device)


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
    if signal.get("kind") == "image":
        pixels = signal["width"] * signal["height"]
        colour = "grey" if signal["channels"] == 1 else "RGB"
        print(
            f"image: {signal['width']}x{signal['height']} {colour}, "
            f"{len(data) * 8 / pixels:.3f} bits per pixel"
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
        model = (
            _load_model(args.model, "cpu") if args.model else _model_for(path, data, None, "cpu")
        )
        tables = getattr(model, "code_tables", None)
    codes, _ = unpack_codes(data, tables)
    print(f"{path}: OK ({codes.numel():,} codes, all checksums match)")
    return EXIT_OK


def _evaluate(args: argparse.Namespace) -> int:
    if args.plot:
        try:
            import matplotlib  # noqa: F401  (checked before the long evaluation, not after)
        except ImportError:
            raise UserError('--plot needs matplotlib: pip install -e ".[eval]"') from None
    model = _load_model(args.model, args.device)
    try:
        default = "1,2,4,8" if _model_kind(model) == "image" else "2,4,8"
        levels = [int(n) for n in (args.levels or default).split(",") if n]
    except ValueError as error:
        raise UserError(f"--levels: {error}") from None
    if not levels or not all(1 <= n <= model.config.num_quantizers for n in levels):
        raise UserError(f"--levels must be between 1 and {model.config.num_quantizers}")
    if _model_kind(model) == "image":
        if args.opus:
            raise UserError("--opus compares audio models; use --formats for pictures")
        return _evaluate_images(args, model, levels)
    if args.formats:
        raise UserError("--formats compares image models; use --opus for audio")
    return _evaluate_audio(args, model, levels)


def _readable(files: list[Path], opens: Callable[[Path], object]) -> list[Path]:
    """``files`` that ``opens`` accepts; each other one is reported on one line and left out."""
    readable = []
    for path in files:
        try:
            opens(path)
            readable.append(path)
        except Exception as error:  # soundfile and Pillow raise several types for bad files
            print(f"vqcodec eval: skipping {path}: {error}", file=sys.stderr)
    return readable


def _open_audio(path: Path) -> None:
    import soundfile

    soundfile.info(str(path))


def _open_picture(path: Path) -> None:
    from PIL import Image

    with Image.open(path) as picture:
        picture.verify()


def _evaluate_audio(args: argparse.Namespace, model, levels: list[int]) -> int:
    from vqcodec.eval.audio import (
        code_usage,
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
        opus = [float(k) for k in args.opus.split(",") if k]
    except (FileNotFoundError, ValueError) as error:
        raise UserError(str(error)) from None
    files = _readable(files, _open_audio)
    if not files:
        raise UserError(f"{args.data}: no readable audio files found")
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
    usage = code_usage(model, files)
    print(f"{len(files)} files from {args.data}")
    print(markdown_table(points))
    print("code usage per level over these files: " + " ".join(f"{u:.0%}" for u in usage))
    if args.plot:
        plot(points, args.plot)
        print(f"plot: {args.plot}")
    return EXIT_OK


def _evaluate_images(args: argparse.Namespace, model, levels: list[int]) -> int:
    from vqcodec.eval import image
    from vqcodec.eval.pillow_codecs import FormatUnavailable
    from vqcodec.media import MediaError
    from vqcodec.train.data import IMAGE_SUFFIXES, find_files

    try:
        files = find_files([args.data], IMAGE_SUFFIXES)
    except FileNotFoundError as error:
        raise UserError(str(error)) from None
    files = _readable(files, _open_picture)
    if not files:
        raise UserError(f"{args.data}: no readable pictures found")
    formats = [name.strip().lower() for name in args.formats.split(",") if name.strip()]
    try:
        evaluation = image.evaluate(
            model, files, levels, formats, lambda items, d: _progress(list(items), d)
        )
    except (ValueError, FormatUnavailable, MediaError) as error:
        raise UserError(str(error)) from None
    print(f"{len(files)} pictures from {args.data} ({args.device})")
    usage = " ".join(f"{u:.0%}" for u in evaluation.usage)
    print(f"code usage over these pictures, levels 1-{len(evaluation.usage)}: {usage}")
    print(image.markdown_table(evaluation.points))
    if evaluation.curves:
        print("\nreference formats at fixed qualities:")
        print(image.markdown_table(evaluation.curves))
    if args.plot:
        image.plot(evaluation, args.plot)
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
