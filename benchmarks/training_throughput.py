"""Training throughput on 1 and N GPUs with the same per-process batch (data-parallel scaling).

Runs ``vqcodec.train`` (one process) and ``accelerate launch --multi_gpu`` (N processes) on a
config for a fixed number of steps, then reads each run's ``log.jsonl`` and reports samples per
second between the first logged step after warm-up and the last, plus the replica checks passed.
With ``--independent``, it also runs N unconnected one-GPU trainings at once (one per GPU): the
scaling the machine allows with no communication at all, which separates contention for the
host (CPU, loaders) from the cost of synchronising the processes. With ``--repeats R``, every
process count is measured R times in turn and the medians are reported too: on a shared machine
the one-GPU rate alone moved by a quarter between runs (docs/BENCHMARKS.md). Without GPUs the
processes are CPU processes in one gloo group (a smoke test of the script, not a speed figure).

    python benchmarks/training_throughput.py configs/audio-24k.json --gpus 1 2 --steps 600 \
        --repeats 3 --set 'data.train=[".data/speech/train"]'
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch


def command_for(config, processes, steps, warmup, out, overrides) -> list[str]:
    if processes == 1:
        launcher = [sys.executable, "-m", "vqcodec.train"]
    else:
        launcher = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu"]
        launcher += ["--num_processes", str(processes), "--num_machines", "1"]
        launcher += ["--mixed_precision", "bf16", "--dynamo_backend", "no", "-m", "vqcodec.train"]
    sets = [
        f"run.output_dir={out}",
        f"run.steps={steps}",
        f"run.log_every={warmup // 2}",
        f"run.save_every={steps * 10}",
        f"run.eval_every={steps * 10}",
        f"run.check_replicas_every={warmup // 2}",
        # No dev set: the evaluation at the last step would be timed as training.
        "data.dev=[]",
        *overrides,
    ]
    return [*launcher, config, *(a for s in sets for a in ("--set", s))]


def rate_from_log(out: Path, warmup: int, processes: int) -> tuple[float, int, float]:
    """Samples per second after ``warmup``, replica checks passed, and the last loss."""
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    timed = [r for r in log if "elapsed_s" in r and "loss" in r]
    first = next(r for r in timed if r["step"] >= warmup)
    last = timed[-1]
    batch = json.loads((out / "config.json").read_text())["run"]["batch_size"]
    samples = (last["step"] - first["step"]) * batch * processes
    checks = sum(1 for r in log if "replicas_agree" in r)
    return samples / (last["elapsed_s"] - first["elapsed_s"]), checks, last["loss"]


def run(config: str, processes: int, steps: int, warmup: int, out: Path, overrides: list[str]):
    command = command_for(config, processes, steps, warmup, out, overrides)
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ))
    if result.returncode != 0:
        sys.exit(f"{processes}-process run failed:\n{result.stderr[-4000:]}")
    rate, checks, loss = rate_from_log(out, warmup, processes)
    return rate, checks, time.perf_counter() - started, loss


def run_independent(config, gpus: int, steps, warmup, out: Path, overrides):
    """``gpus`` one-process runs at once, one per GPU; their summed rate."""
    started, children = time.perf_counter(), []
    for gpu in range(gpus):
        command = command_for(config, 1, steps, warmup, out / f"gpu{gpu}", overrides)
        env = dict(os.environ, CUDA_VISIBLE_DEVICES=str(gpu))
        children.append(subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.PIPE, text=True))  # fmt: skip
    for gpu, child in enumerate(children):
        _, err = child.communicate()
        if child.returncode != 0:
            sys.exit(f"independent run on GPU {gpu} failed:\n{err[-4000:]}")
    results = [rate_from_log(out / f"gpu{gpu}", warmup, 1) for gpu in range(gpus)]
    return sum(r[0] for r in results), 0, time.perf_counter() - started, results[0][2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--gpus", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--out", default="runs/throughput")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument(
        "--independent", action="store_true", help="also run N unconnected one-GPU trainings"
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="measure every process count this many times, in turn, and report the medians "
        "(a lent machine's speed moves between runs by more than a ratio from one pair shows)",
    )
    args = parser.parse_args()
    device = (
        f"{torch.cuda.get_device_name()} x{torch.cuda.device_count()}"
        if torch.cuda.is_available()
        else "no GPU: CPU processes (gloo)"
    )
    print(f"# {device}, torch {torch.__version__}")
    print(f"# {args.config}, {args.steps} steps, timed from step {args.warmup}")
    print(
        "| run | GPUs | mode | samples/s | speed-up | replica checks passed | wall s | last loss |"
    )
    print("|---:|---:|---|---:|---:|---:|---:|---:|")
    rates: dict[tuple[int, str], list[float]] = {}
    for repeat in range(1, args.repeats + 1):
        base = None
        for gpus in args.gpus:
            modes = ["one process" if gpus == 1 else "DDP"]
            modes += ["independent"] if args.independent and gpus > 1 else []
            for mode in modes:
                out = Path(args.out) / f"run{repeat}" / f"{mode.split()[0]}{gpus}"
                measure = run_independent if mode == "independent" else run
                rate, checks, wall, loss = measure(
                    args.config, gpus, args.steps, args.warmup, out, args.overrides
                )
                base = base or rate
                rates.setdefault((gpus, mode), []).append(rate)
                print(
                    f"| {repeat} | {gpus} | {mode} | {rate:.0f} | {rate / base:.2f} "
                    f"| {checks if mode != 'independent' else '—'} | {wall:.0f} | {loss:.3f} |",
                    flush=True,
                )
    if args.repeats > 1:
        medians = {key: statistics.median(values) for key, values in rates.items()}
        base = medians[next(iter(medians))]
        for (gpus, mode), median in medians.items():
            print(f"| median | {gpus} | {mode} | {median:.0f} | {median / base:.2f} | | | |")


if __name__ == "__main__":
    main()
