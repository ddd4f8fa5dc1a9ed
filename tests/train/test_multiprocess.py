"""Data-parallel training on two CPU processes (gloo), as ``accelerate launch`` runs it: replicas
stay identical, only the main process writes, and a checkpoint resumes on another process count.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from tests.train.conftest import write_tones
from vqcodec.quantizers import VectorQuantizer
from vqcodec.train.replicas import ReplicaDriftError, check_replicas_agree, replica_fingerprint

SMOKE = Path(__file__).parents[2] / "configs" / "audio-smoke.json"
# CPU processes in one gloo group, also where a GPU is present: the launcher would otherwise put
# both processes on GPU 0 of a one-GPU machine, which NCCL refuses.
CPU_PROCESSES = {"GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}


def _train(processes: int, audio: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    if processes == 1:
        launcher = [sys.executable, "-m", "vqcodec.train"]
    else:
        # The documented command; without CUDA its processes join one gloo group.
        launcher = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu"]
        launcher += ["--num_processes", str(processes), "--num_machines", "1"]
        launcher += ["--mixed_precision", "no", "--dynamo_backend", "no", "-m", "vqcodec.train"]
    overrides = [
        f'data.train=["{audio}"]',
        f'data.dev=["{audio}"]',
        f"run.output_dir={out}",
        "run.steps=4",
        "run.save_every=2",
        "run.eval_every=2",
        "run.check_replicas_every=1",
        "model.quantizer_dropout=0.5",
    ]
    command = [*launcher, str(SMOKE), *(a for o in overrides for a in ("--set", o)), *extra]
    env = {**os.environ, **CPU_PROCESSES}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_two_processes_agree_and_resume_on_another_process_count(
    audio_folder: Path, tmp_path: Path
) -> None:
    _train(2, audio_folder, tmp_path / "two")
    log = _log(tmp_path / "two")
    # One record per step (the main process writes alone), each with a passed replica check
    # covering the k-means initialised, EMA-updated residual codebooks with quantizer dropout.
    steps = [r["step"] for r in log if "replicas_agree" in r]
    assert steps == [1, 2, 3, 4]
    assert all(r["replicas_agree"] > 0 for r in log if "replicas_agree" in r)
    assert all(r["processes"] == 2 for r in log if "replicas_agree" in r)
    assert len([r for r in log if "loss" in r]) == 4
    assert (tmp_path / "two" / "checkpoints" / "step_2" / "progress.json").is_file()
    assert (tmp_path / "two" / "model" / "model.safetensors").is_file()

    # 2 processes -> 1: continue from step 2 to the end.
    one = _train(
        1,
        audio_folder,
        tmp_path / "two_then_one",
        "--resume",
        str(tmp_path / "two" / "checkpoints" / "step_2"),
    )
    assert "finished at step 4" in one.stdout
    assert [r["step"] for r in _log(tmp_path / "two_then_one") if "loss" in r] == [3, 4]

    # 1 process -> 2.
    _train(1, audio_folder, tmp_path / "one")
    _train(
        2,
        audio_folder,
        tmp_path / "one_then_two",
        "--resume",
        str(tmp_path / "one" / "checkpoints" / "step_2"),
    )
    resumed = _log(tmp_path / "one_then_two")
    assert [r["step"] for r in resumed if "replicas_agree" in r] == [3, 4]
    assert all(r["processes"] == 2 for r in resumed if "replicas_agree" in r)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("c++") is None, reason="compiling on a CPU needs a C++ compiler")
def test_two_compiled_processes_agree(audio_folder: Path, tmp_path: Path) -> None:
    # run.compile traces the codebook updates and their collectives into the graph.
    _train(2, audio_folder, tmp_path / "compiled", "--set", "run.compile=true")
    checks = [r for r in _log(tmp_path / "compiled") if "replicas_agree" in r]
    assert [r["step"] for r in checks] == [1, 2, 3, 4]
    assert all(r["replicas_agree"] > 0 and r["processes"] == 2 for r in checks)


class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Conv1d(4, 4, 1)
        self.norm = nn.BatchNorm1d(4, affine=False)
        self.quantizer = VectorQuantizer(4, 8)


def _check_worker(rank: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        torch.manual_seed(0)
        model = _Tiny()
        results = {}
        model.norm(torch.randn(8, 4, 3) * (rank + 1))  # batch-norm statistics differ: allowed
        check_replicas_agree(model)
        results["equal"] = "passed"
        if rank == 1:
            with torch.no_grad():
                next(iter(model.quantizer.buffers())).add_(1e-6)
        try:
            check_replicas_agree(model)
            results["perturbed"] = "passed"
        except ReplicaDriftError as error:
            results["perturbed"] = str(error)
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(results))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_the_replica_check_catches_a_drifted_quantizer_buffer(tmp_path: Path) -> None:
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    mp.spawn(_check_worker, args=(str(tmp_path / "rendezvous"), str(tmp_path)), nprocs=2)
    for rank in range(2):
        results = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert results["equal"] == "passed"
        assert results["perturbed"].startswith("process 1 disagrees with process 0 on quantizer.")


def test_the_fingerprint_covers_parameters_and_quantizer_buffers_only() -> None:
    names = set(replica_fingerprint(_Tiny()))
    assert {"encoder.weight", "encoder.bias"} <= names
    assert any(n.startswith("quantizer.") for n in names)
    assert not any(n.startswith("norm.") for n in names)


@pytest.mark.slow
def test_interleaved_scaling_benchmark_times_one_process_alone(tmp_path: Path) -> None:
    """benchmarks/scaling_interleaved.py on two gloo processes: the alone segments train process
    0 only without any collective (one would hang: the other process waits in another group),
    the together segments train both."""
    audio = write_tones(tmp_path / "audio", count=16)  # 2 full batches of 4 per process
    script = Path(__file__).parents[2] / "benchmarks" / "scaling_interleaved.py"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu"]
    command += ["--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no"]
    command += ["--dynamo_backend", "no", str(script), str(SMOKE), "--pairs", "2"]
    command += ["--segment", "2", "--warmup", "2", "--out", str(tmp_path / "pairs.json")]
    command += ["--set", f'data.train=["{audio}"]', "--set", "data.num_workers=0"]
    env = {**os.environ, **CPU_PROCESSES}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    pairs = json.loads((tmp_path / "pairs.json").read_text())["pairs"]
    assert [p["order"] for p in pairs] == ["alone, together", "together, alone"]
    assert all(p["alone_samples"] == 2 * 4 and p["together_samples"] == 2 * 2 * 4 for p in pairs)
    assert all(p["speed_up"] > 0 for p in pairs)
    assert "| median |" in result.stdout


def test_interleaved_scaling_benchmark_refuses_one_process(tmp_path: Path) -> None:
    script = Path(__file__).parents[2] / "benchmarks" / "scaling_interleaved.py"
    command = [sys.executable, str(script), str(SMOKE), "--set", f'data.train=["{tmp_path}"]']
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "scaling_interleaved: start it with accelerate launch --num_processes N (N >= 2)"
    ]
