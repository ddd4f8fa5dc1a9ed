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
    out = tmp_path / "coded"
    assert main(["encode", str(stereo_wav.parent), "-o", str(out)]) == 0
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.vqc")) == [
        "sub/b.vqc",
        "tone.vqc",
    ]
    assert main(["decode", str(out), "-o", str(tmp_path / "wav")]) == 0
    assert (tmp_path / "wav" / "sub" / "b.wav").is_file()


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
