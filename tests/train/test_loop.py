"""The accelerate training loop on a CPU: exact resume, a loss that goes down, export."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
import torch

import vqcodec
from vqcodec.checkpoint import from_pretrained
from vqcodec.config import load_config
from vqcodec.train.config import TrainConfig
from vqcodec.train.loop import train

SMOKE = Path(__file__).parents[2] / "configs" / "audio-smoke.json"


def smoke(audio: Path, out: Path, *overrides: str) -> TrainConfig:
    return load_config(
        TrainConfig,
        SMOKE,
        [f'data.train=["{audio}"]', f'data.dev=["{audio}"]', f"run.output_dir={out}", *overrides],
    )


# Exact comparisons of losses need deterministic kernels on a GPU (run.deterministic); CPU runs
# are deterministic either way.
EXACT = ("run.steps=4", "run.save_every=2", "run.deterministic=true")


@pytest.mark.slow
def test_resume_gives_the_same_next_step_loss(audio_folder: Path, tmp_path: Path) -> None:
    whole = train(smoke(audio_folder, tmp_path / "a", *EXACT))
    assert sorted(whole.losses) == [1, 2, 3, 4]
    resumed = train(
        smoke(audio_folder, tmp_path / "b", *EXACT),
        resume=tmp_path / "a" / "checkpoints" / "step_2",
    )
    assert sorted(resumed.losses) == [3, 4]
    assert resumed.losses[3] == whole.losses[3]
    assert resumed.losses[4] == whole.losses[4]
    assert not torch.are_deterministic_algorithms_enabled()  # only for the run


@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="CPU runs are deterministic anyway")
def test_two_deterministic_gpu_runs_give_the_same_losses(
    audio_folder: Path, tmp_path: Path
) -> None:
    first = train(smoke(audio_folder, tmp_path / "a", *EXACT))
    second = train(smoke(audio_folder, tmp_path / "b", *EXACT))
    assert first.losses == second.losses


@pytest.mark.slow
def test_loss_goes_down_and_the_export_loads(audio_folder: Path, tmp_path: Path) -> None:
    config = smoke(
        audio_folder, tmp_path / "run", "run.steps=40", "run.eval_every=20", "run.save_every=40"
    )
    result = train(config)
    early = sum(result.losses[s] for s in range(1, 6)) / 5
    late = sum(result.losses[s] for s in range(36, 41)) / 5
    assert late < 0.8 * early
    log = (tmp_path / "run" / "log.jsonl").read_text().splitlines()
    assert any('"dev/mel_full"' in line for line in log) and any(
        "train/level0/code_usage" in line for line in log
    )
    model = from_pretrained(result.export_dir)
    x = torch.randn(1, 1, 800) * 0.3
    with torch.no_grad():
        assert torch.equal(
            vqcodec.decompress(vqcodec.compress(model, x), model), model.decode(model.encode(x))
        )


def test_unreadable_files_are_reported_and_skipped(
    audio_folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from vqcodec.train.data import AudioFolder

    (audio_folder / "broken.wav").write_bytes(b"RIFF not really a wave file")
    dataset = AudioFolder([audio_folder], 8000, 0.1)
    assert [p.name for p, _ in dataset.skipped] == ["broken.wav"]
    assert "broken.wav" in caplog.text
    crops = torch.stack([dataset[i] for i in range(len(dataset))])
    assert crops.shape == (6, 1, 800)


def test_resampling_and_mono(tmp_path: Path) -> None:
    import numpy as np
    import soundfile

    from vqcodec.train.data import AudioFolder

    t = np.arange(44100) / 44100
    soundfile.write(tmp_path / "a.wav", np.stack([np.sin(2 * np.pi * 440 * t)] * 2, 1), 44100)
    crop = AudioFolder([tmp_path], 8000, 0.5, random_crop=False)[0]
    assert crop.shape == (1, 4000)
    spectrum = torch.fft.rfft(crop[0]).abs()
    assert abs(int(spectrum.argmax()) * 8000 / 4000 - 440) <= 4  # the tone survives resampling


@pytest.mark.slow
def test_a_release_can_be_made_from_a_training_checkpoint(
    audio_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from vqcodec.train.release import main as release

    config = smoke(audio_folder, tmp_path / "run", "run.steps=2", "run.save_every=2")
    result = train(config)
    overrides = [f'data.train=["{audio_folder}"]']
    code = release(
        [str(tmp_path / "run" / "checkpoints" / "step_2"), str(tmp_path / "rel"),
         "--config", str(SMOKE), "--crops", "8", *sum((["--set", o] for o in overrides), [])]
    )  # fmt: skip
    assert code == 0
    released, exported = from_pretrained(tmp_path / "rel"), from_pretrained(result.export_dir)
    assert released.code_tables is not None
    ours, theirs = released.state_dict(), exported.state_dict()
    assert ours.keys() == theirs.keys()
    for name, value in theirs.items():  # the release stores float16 weights
        torch.testing.assert_close(ours[name].float(), value.float(), rtol=1e-3, atol=1e-4)

    # Bad inputs: one line each, exit 2, and an existing release is not replaced.
    capsys.readouterr()  # the training's progress bar
    kept = (tmp_path / "rel" / "config.json").read_bytes()
    wider = ["--set", "model.channels=8"]
    for args, message in [
        ([str(tmp_path / "run" / "checkpoints" / "step_2"), str(tmp_path / "rel")], "exists"),
        ([str(tmp_path), str(tmp_path / "r2")], "neither a model folder nor a checkpoint"),
        ([str(tmp_path / "run" / "checkpoints" / "step_2"), str(tmp_path / "r3"), *wider],
         "does not fit the architecture"),
        ([str(tmp_path / "run" / "model"), str(tmp_path / "r4"), "--crops", "0"], "--crops"),
    ]:  # fmt: skip
        assert release([*args, "--config", str(SMOKE), "--set", overrides[0]]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("vqcodec release: ") and message in err and "\n" not in err
    assert (tmp_path / "rel" / "config.json").read_bytes() == kept


@pytest.mark.slow
def test_a_run_can_start_from_a_trained_model(audio_folder: Path, tmp_path: Path) -> None:
    from vqcodec.config import ConfigError
    from vqcodec.train.loop import _initialise_from
    from vqcodec.train.tasks import task_for

    trained = train(smoke(audio_folder, tmp_path / "a", "run.steps=3", "run.save_every=3"))
    config = smoke(
        audio_folder, tmp_path / "b", "run.steps=1", f"run.init_from={trained.export_dir}"
    )
    fresh = task_for(config).model()
    _initialise_from(fresh, str(trained.export_dir))
    reference = from_pretrained(trained.export_dir).state_dict()
    assert all(torch.equal(v, reference[k]) for k, v in fresh.state_dict().items())
    continued = train(config)
    restarted = train(smoke(audio_folder, tmp_path / "c", "run.steps=1"))
    assert continued.losses[1] < restarted.losses[1]  # it starts from the trained weights
    wider = smoke(audio_folder, tmp_path / "d", "model.channels=8")
    with pytest.raises(ConfigError, match="different architecture"):
        _initialise_from(task_for(wider).model(), str(trained.export_dir))


def test_an_unknown_init_from_is_one_line_and_exit_2(
    audio_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from vqcodec.train.__main__ import main

    code = main([str(SMOKE), "--set", f'data.train=["{audio_folder}"]', "--set",
                 f"run.output_dir={tmp_path}", "--set", "run.init_from=no-such-model"])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vqcodec train: run.init_from:") and "no-such-model" in err
    assert "\n" not in err


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("run.batch_size=0", "run.batch_size"),
        ("run.steps=-5", "run.steps"),
        ("optim.lr=-1", "optim.lr"),
        ("optim.betas=[0.9]", "optim.betas"),
        ("data.segment_seconds=0", "data.segment_seconds"),
        ("data.segment_seconds=0.00001", "data.segment_seconds"),
        ("model.channels=0", "model.channels"),
        ("model.quantizer_dropout=1.5", "model.quantizer_dropout"),
    ],
)
def test_impossible_config_values_are_one_line_naming_the_key(
    override: str, key: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from vqcodec.train.__main__ import main

    code = main([str(SMOKE), "--set", override, "--set", f"run.output_dir={tmp_path}"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"vqcodec train: {key}: ") and "\n" not in err


def test_resuming_from_a_folder_that_is_not_a_checkpoint_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from vqcodec.train.__main__ import main

    for folder in (tmp_path / "missing", tmp_path):
        assert main([str(SMOKE), "--resume", str(folder)]) == 2
        err = capsys.readouterr().err.strip()
        assert "not a checkpoint folder" in err and "\n" not in err


def test_compile_on_several_gpu_processes_is_refused_in_one_line(
    audio_folder: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What one process of `accelerate launch --multi_gpu --num_processes 2` sees on a GPU host.
    from vqcodec.train.__main__ import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("WORLD_SIZE", "2")
    code = main([str(SMOKE), "--set", f'data.train=["{audio_folder}"]', "--set",
                 f"run.output_dir={tmp_path / 'run'}", "--set", "run.compile=true"])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vqcodec train: run.compile: ") and "\n" not in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("train", ["[]", '["{missing}"]', '["{empty}"]'])
def test_unusable_training_data_is_one_line_and_exit_2(
    train: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from vqcodec.train.__main__ import main

    (tmp_path / "empty").mkdir()
    train = train.format(missing=tmp_path / "missing", empty=tmp_path / "empty")
    code = main([str(SMOKE), "--set", f"data.train={train}", "--set",
                 f"run.output_dir={tmp_path / 'run'}"])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vqcodec train: ") and "\n" not in err
    assert not (tmp_path / "run").exists()  # nothing written for a run that cannot start


def test_cached_audio_gives_the_same_crops_as_reading_the_files(audio_folder: Path) -> None:
    from vqcodec.train.data import AudioFolder

    (audio_folder / "broken.wav").write_bytes(b"RIFF not really a wave file")
    read = AudioFolder([audio_folder], 8000, 0.1, random_crop=False)
    cached = AudioFolder([audio_folder], 8000, 0.1, random_crop=False, cache=True)
    assert [p.name for p, _ in cached.skipped] == ["broken.wav"]
    assert [p for p, _, _ in cached.files] == [p for p, _, _ in read.files]
    for i in range(len(read)):  # float16 storage; resampling the whole file vs a segment
        torch.testing.assert_close(cached[i], read[i], atol=2e-3, rtol=0)
    torch.manual_seed(0)
    crops = torch.stack([AudioFolder([audio_folder], 8000, 0.1, cache=True)[i] for i in range(6)])
    assert crops.shape == (6, 1, 800) and crops.abs().sum() > 0
    whole = AudioFolder([audio_folder], 8000, 10.0, cache=True)[0]  # longer than the file
    assert whole.shape == (1, 80_000) and torch.equal(whole[:, 4_000:], torch.zeros(1, 76_000))


@pytest.mark.slow
def test_training_from_cached_audio(audio_folder: Path, tmp_path: Path) -> None:
    config = smoke(audio_folder, tmp_path / "run", "run.steps=2", "data.cache_audio=true")
    assert train(config).step == 2


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("c++") is None, reason="compiling on a CPU needs a C++ compiler")
def test_a_compiled_run_trains_like_the_eager_one(audio_folder: Path, tmp_path: Path) -> None:
    # Quantizer dropout off: the compiled graph draws its random numbers differently.
    settings = ("run.steps=3", "model.quantizer_dropout=0", "run.check_replicas_every=1")
    eager = train(smoke(audio_folder, tmp_path / "eager", *settings))
    compiled = train(smoke(audio_folder, tmp_path / "compiled", *settings, "run.compile=true"))
    # Same first step (the model runs it uncompiled; the compiled losses reorder float sums:
    # rounding-level differences only, 2.3e-3 measured on an H200).
    tolerance = 5e-3 if torch.cuda.is_available() else 1e-4
    assert compiled.losses[1] == pytest.approx(eager.losses[1], rel=tolerance)
    assert all(math.isfinite(v) for v in compiled.losses.values())
    exported = from_pretrained(compiled.export_dir)  # saved without torch.compile's wrapper
    assert exported.state_dict().keys() == from_pretrained(eager.export_dir).state_dict().keys()
