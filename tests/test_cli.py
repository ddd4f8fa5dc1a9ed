"""The command line: verbs, exit codes, one-line errors, no silent overwrites."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from vqcodec import __version__
from vqcodec.cli import main


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_env_reports_torch_and_models(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["env"]) == 0
    out = capsys.readouterr().out
    assert "torch 2.11" in out and "audio-24k" in out


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage" in capsys.readouterr().err


@pytest.fixture
def stereo_wav(tmp_path: Path) -> Path:
    rate = 16000
    t = np.arange(int(1.3 * rate)) / rate
    audio = np.stack([0.3 * np.sin(2 * np.pi * 220 * t), 0.2 * np.sin(2 * np.pi * 330 * t)], axis=1)
    path = tmp_path / "in" / "tone.wav"
    path.parent.mkdir()
    soundfile.write(path, audio, rate)
    return path


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert err and "\n" not in err and "Traceback" not in err
    return err


def test_encode_decode_info_verify(
    stereo_wav: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    coded = tmp_path / "tone.vqc"
    assert main(["encode", str(stereo_wav), "-o", str(coded), "--bitrate", "3"]) == 0
    assert coded.stat().st_size < 0.1 * stereo_wav.stat().st_size
    assert main(["info", str(coded)]) == 0
    out = capsys.readouterr().out
    assert "audio-24k" in out and "2 channel(s), 16000 Hz, 1.30 s" in out
    assert main(["verify", str(coded)]) == 0
    decoded = tmp_path / "tone.wav"
    assert main(["decode", str(coded), "-o", str(decoded)]) == 0
    info = soundfile.info(str(decoded))
    assert (info.samplerate, info.channels, info.frames) == (16000, 2, int(1.3 * 16000))


def test_outputs_are_not_overwritten_without_force(
    stereo_wav: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    coded = tmp_path / "tone.vqc"
    coded.write_bytes(b"precious")
    assert main(["encode", str(stereo_wav), "-o", str(coded)]) == 1
    assert "--force" in one_line_error(capsys)
    assert coded.read_bytes() == b"precious"
    assert main(["encode", str(stereo_wav), "-o", str(coded), "--force"]) == 0
    assert coded.read_bytes() != b"precious"
    assert not list(tmp_path.glob(".*.part"))  # atomic writes leave no temporary files


def test_folders_are_processed_recursively(stereo_wav: Path, tmp_path: Path) -> None:
    nested = stereo_wav.parent / "sub"
    nested.mkdir()
    soundfile.write(nested / "b.flac", np.zeros((4000, 1)) + 0.01, 8000)
    (stereo_wav.parent / ".hidden").mkdir()
    soundfile.write(stereo_wav.parent / ".hidden" / "c.flac", np.zeros((4000, 1)), 8000)
    out = tmp_path / "coded"
    assert main(["encode", str(stereo_wav.parent), "-o", str(out)]) == 0
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.vqc")) == [
        "sub/b.vqc",
        "tone.vqc",
    ]
    assert main(["decode", str(out), "-o", str(tmp_path / "wav")]) == 0
    assert (tmp_path / "wav" / "sub" / "b.wav").is_file()


def test_a_bad_file_in_a_folder_is_reported_and_skipped(
    stereo_wav: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = stereo_wav.parent
    (folder / "a_broken.wav").write_bytes(b"this is not audio")  # sorted before tone.wav
    out = tmp_path / "coded"
    assert main(["encode", str(folder), "-o", str(out)]) == 1
    assert {p.name for p in out.rglob("*.vqc")} == {"tone.vqc"}  # the good file is still coded
    err = capsys.readouterr().err
    assert "a_broken.wav" in err and "1 of 2 files failed" in err and "Traceback" not in err
    (out / "junk.vqc").write_bytes(b"not a vqc file")
    assert main(["decode", str(out), "-o", str(tmp_path / "wav")]) == 1
    assert (tmp_path / "wav" / "tone.wav").is_file()
    assert "junk.vqc: not a .vqc file" in capsys.readouterr().err
    # A problem with the command, not a file, is reported once and stops the run.
    assert main(["encode", str(folder), "-o", str(tmp_path / "x"), "--levels", "99"]) == 1
    err = capsys.readouterr().err
    assert err.count("--levels must be between") == 1 and "files failed" not in err


@pytest.mark.parametrize("content", [b"", b"this is not audio", b"RIFF\x00\x00\x00\x00WAVEjunk"])
def test_bad_audio_is_one_clear_line(
    content: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(content)
    assert main(["encode", str(bad), "-o", str(tmp_path / "x.vqc")]) == 1
    assert "bad.wav" in one_line_error(capsys)
    assert not (tmp_path / "x.vqc").exists()


def test_corrupt_vqc_is_one_clear_line(
    stereo_wav: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    coded = tmp_path / "tone.vqc"
    main(["encode", str(stereo_wav), "-o", str(coded)])
    data = bytearray(coded.read_bytes())
    data[-6] ^= 0xFF
    coded.write_bytes(bytes(data))
    capsys.readouterr()
    for verb in ("verify", "decode"):
        assert (
            main([verb, str(coded), *(["-o", str(tmp_path / "o.wav")] if verb == "decode" else [])])
            == 1
        )
        assert "checksum" in one_line_error(capsys)
    not_vqc = tmp_path / "plain.vqc"
    not_vqc.write_bytes(b"hello")
    assert main(["info", str(not_vqc)]) == 1
    assert "magic" in one_line_error(capsys)
    assert main(["info", str(tmp_path / "missing.vqc")]) == 1
    assert "does not exist" in one_line_error(capsys)


def _write_picture(path: Path, mode: str, size: tuple[int, int] = (200, 150)) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    width, height = size
    ramp = np.linspace(0, 255, width)[None, :, None] * np.ones((height, 1, 1))
    pixels = np.concatenate([ramp, ramp[::-1], 128 + 0 * ramp], axis=2)
    pixels = (pixels + rng.normal(0, 8, pixels.shape)).clip(0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB").convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def test_picture_encode_decode_info_verify(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image

    photo = _write_picture(tmp_path / "photo.png", "RGB")
    assert main(["encode", str(photo)]) == 0  # the kind is found from the contents
    coded = tmp_path / "photo.vqc"
    assert main(["info", str(coded)]) == 0
    out = capsys.readouterr().out
    assert "model: image" in out and "image: 200x150 RGB" in out
    assert main(["verify", str(coded)]) == 0
    (tmp_path / "out").mkdir()
    assert main(["decode", str(coded), "-o", str(tmp_path / "out")]) == 0  # into the folder
    with Image.open(tmp_path / "out" / "photo.png") as decoded:
        assert (decoded.size, decoded.mode, decoded.format) == ((200, 150), "RGB", "PNG")
        error = np.abs(np.asarray(decoded, float) - np.asarray(Image.open(photo), float)).mean()
    assert error < 40, f"mean error {error:.1f} of 255: the shipped model does not reconstruct"
    low = tmp_path / "low.vqc"
    assert main(["encode", str(photo), "-o", str(low), "--levels", "1"]) == 0
    assert low.stat().st_size < coded.stat().st_size
    rate = tmp_path / "rate.vqc"
    assert main(["encode", str(photo), "-o", str(rate), "--bitrate", "0.1"]) == 0
    capsys.readouterr()
    assert main(["info", str(rate)]) == 0
    assert "shape [1, 2, 10, 13]" in capsys.readouterr().out  # 0.1 bpp raw: 2 levels of 10 bits


def test_grey_and_transparent_pictures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    grey = _write_picture(tmp_path / "grey.png", "L", (90, 61))
    assert main(["encode", str(grey)]) == 0
    assert main(["decode", str(tmp_path / "grey.vqc"), "-o", str(tmp_path / "grey.out.jpg")]) == 0
    with Image.open(tmp_path / "grey.out.jpg") as decoded:
        assert (decoded.size, decoded.mode, decoded.format) == ((90, 61), "L", "JPEG")
    capsys.readouterr()
    clear = _write_picture(tmp_path / "clear.png", "RGBA", (40, 40))
    assert main(["encode", str(clear)]) == 0
    assert "transparency is not coded" in capsys.readouterr().err


def test_picture_errors_are_one_clear_line(
    stereo_wav: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photo = _write_picture(tmp_path / "photo.png", "RGB", (40, 30))
    fake = tmp_path / "fake.png"
    fake.write_bytes(b"\x89PNG\r\n\x1a\n but nothing after the signature")
    assert main(["encode", str(fake)]) == 1
    assert "fake.png" in one_line_error(capsys)
    assert main(["encode", str(photo), "--model", "audio-24k"]) == 1
    assert "picture" in one_line_error(capsys)
    assert main(["encode", str(stereo_wav), "--model", "image", "-o", str(tmp_path / "t.vqc")]) == 1
    assert "codes pictures" in one_line_error(capsys)
    assert main(["encode", str(photo), "--levels", "0"]) == 1
    assert "--levels" in one_line_error(capsys)
    assert main(["encode", str(photo)]) == 0
    capsys.readouterr()
    assert main(["decode", str(tmp_path / "photo.vqc"), "-o", str(tmp_path / "o.unknown")]) == 1
    assert "cannot write" in one_line_error(capsys)
    assert not (tmp_path / "o.unknown").exists()


def test_mixed_folders_and_name_clashes(stereo_wav: Path, tmp_path: Path) -> None:
    folder = stereo_wav.parent
    _write_picture(folder / "pictures" / "p.png", "RGB", (48, 32))
    out = tmp_path / "coded"
    assert main(["encode", str(folder), "-o", str(out)]) == 0
    assert {p.name for p in out.rglob("*.vqc")} == {"tone.vqc", "p.vqc"}
    assert main(["decode", str(out)]) == 0
    assert (out / "tone.wav").is_file() and (out / "pictures" / "p.png").is_file()
    _write_picture(folder / "tone.png", "RGB", (48, 32))  # tone.wav and tone.png -> tone.vqc
    assert main(["encode", str(folder), "-o", str(tmp_path / "clash")]) == 1
    assert not (tmp_path / "clash").exists()


def test_eval_leaves_out_unreadable_references_with_one_line_each(
    stereo_wav: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from vqcodec.cli import _open_audio, _open_picture, _readable

    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"this is not audio")
    assert _readable([stereo_wav, junk], _open_audio) == [stereo_wav]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"vqcodec eval: skipping {junk}")
    picture, broken = tmp_path / "p.png", tmp_path / "broken.png"
    _write_picture(picture, "RGB", (16, 16))
    broken.write_bytes(picture.read_bytes()[:40])  # a cut-off file
    assert _readable([picture, broken], _open_picture) == [picture]
    assert "broken.png" in capsys.readouterr().err
