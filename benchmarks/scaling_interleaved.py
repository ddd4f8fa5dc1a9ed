"""Data-parallel scaling measured inside one job: one-GPU and N-GPU training steps alternate in
short segments, so the machine's drift between runs does not enter the ratio.

``training_throughput.py`` runs one training after another; on the lent machines the one-GPU
rate alone moved by 2.2x within a session (docs/BENCHMARKS.md), more than the gap being
measured. Here ``accelerate launch`` starts N processes once. After a warm-up, segments of
``--segment`` steps alternate:

- together: every process runs data-parallel training steps (the loop's own step from
  ``vqcodec.train.loop.step_function_for``, a CUDA graph under ``run.cuda_graphs``: DDP
  gradients, codebook statistics summed over processes);
- alone: process 0 runs the same steps with its bare model and its quantizers acting as the
  only process (``this_process_only``), as a one-GPU run does, while the others wait in a gloo
  barrier (the CPU time they use meanwhile is reported).

Each pair of segments gives a speed-up ``N * t_alone / t_together`` (same per-process batch);
pairs alternate their order (alone first, then together first) so that drift that is linear
over a pair cancels in the median. The steps run the configured model, losses, optimiser and
loader; the processes' weights and codebooks diverge after the first alone segment, which
changes no step's work.

    accelerate launch --multi_gpu --num_processes 2 --mixed_precision bf16 --dynamo_backend no \\
        benchmarks/scaling_interleaved.py configs/audio-24k.json --pairs 10 --segment 60 \\
        --warmup 150 --set 'data.train=[".data/speech/train"]'

Without GPUs the processes are CPU processes in one gloo group (a smoke test, not a figure).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist

from vqcodec.config import ConfigError
from vqcodec.quantizers.distributed import this_process_only
from vqcodec.train import loop
from vqcodec.train.config import load_train_config
from vqcodec.train.data import DataError
from vqcodec.train.graphs import WARMUP_STEPS


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--pairs", type=int, default=10, help="alone/together pairs to time")
    parser.add_argument("--segment", type=int, default=60, help="training steps per segment")
    parser.add_argument("--warmup", type=int, default=150, help="untimed steps together first")
    parser.add_argument("--out", default="", help="also write the results to this JSON file")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    try:
        # No dev set: nothing but training steps is timed.
        config = load_train_config(args.config, [*args.overrides, "data.dev=[]"])
    except ConfigError as error:
        print(f"scaling_interleaved: {error}", file=sys.stderr)
        return 2
    if config.run.compile:
        print("scaling_interleaved: run.compile is not supported here", file=sys.stderr)
        return 2
    if loop._launched_processes() < 2:
        print(
            "scaling_interleaved: start it with accelerate launch --num_processes N (N >= 2)",
            file=sys.stderr,
        )
        return 2
    try:
        prepared = loop.prepare(config)
    except (ConfigError, DataError) as error:  # e.g. no audio in data.train
        print(f"scaling_interleaved: {error}", file=sys.stderr)
        return 2
    if loop.uses_cuda_graphs(config) and min(args.segment, args.warmup) <= WARMUP_STEPS:
        # Each kind of step captures its graph after WARMUP_STEPS eager steps, in the warm-up
        # and the first (untimed) alone segment.
        print(
            f"scaling_interleaved: with run.cuda_graphs, --segment and --warmup must exceed "
            f"{WARMUP_STEPS}",
            file=sys.stderr,
        )
        return 2
    accelerator = prepared.accelerator
    processes = accelerator.num_processes
    handoff = dist.new_group(backend="gloo")  # waiting here blocks on a socket, not a GPU
    batches = loop._batches(prepared.loader, accelerator, 0)
    prepared.model.train()
    step = 0
    # The loop's own step, as a CUDA graph under run.cuda_graphs (each kind captured on its
    # first segment: the warm-up and the untimed alone segment below).
    step_functions = {
        together: loop.step_function_for(prepared, synchronise=together)
        for together in (True, False)
    }

    def run_steps(count: int, together: bool) -> int:
        """``count`` training steps; the samples this process trained on."""
        nonlocal step
        samples = 0
        for _ in range(count):
            x = next(batches)
            step_functions[together](x, step)
            prepared.scheduler.step()
            samples += x.shape[0]
            step += 1
        if accelerator.device.type == "cuda":
            torch.cuda.synchronize()
        return samples

    def segment(count: int, together: bool) -> tuple[float, int, float]:
        """Seconds on process 0, samples over all processes, CPU seconds of waiting processes."""
        dist.barrier(group=handoff)
        wall, cpu = time.perf_counter(), time.process_time()
        samples = 0
        if together:
            samples = run_steps(count, True)
        elif accelerator.is_main_process:
            with this_process_only():
                samples = run_steps(count, False)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        main = accelerator.is_main_process
        # This process's own threads; its loader workers are processes of their own.
        idle_cpu = 0.0 if together or main else cpu
        totals = torch.tensor([wall if main else 0.0, samples, idle_cpu], dtype=torch.float64)
        dist.all_reduce(totals, group=handoff)  # also where every process ends the segment
        return float(totals[0]), int(totals[1]), float(totals[2])

    segment(args.warmup, together=True)
    segment(args.segment, together=False)
    pairs = []
    for pair in range(args.pairs):
        order = (False, True) if pair % 2 == 0 else (True, False)
        timed = {together: segment(args.segment, together) for together in order}
        (t_alone, n_alone, idle_cpu), (t_together, n_together, _) = timed[False], timed[True]
        pairs.append(
            {
                "order": "alone, together" if pair % 2 == 0 else "together, alone",
                "alone_samples": n_alone,
                "together_samples": n_together,
                "alone_samples_per_s": n_alone / t_alone,
                "together_samples_per_s": n_together / t_together,
                "speed_up": (n_together / t_together) / (n_alone / t_alone),
                "waiting_cpu_s": idle_cpu,
                "alone_s": t_alone,
            }
        )
    if accelerator.is_main_process:
        report(pairs, processes, args, config)
    accelerator.wait_for_everyone()
    dist.destroy_process_group(handoff)
    return 0


def report(pairs: list[dict], processes: int, args, config) -> None:
    device = (
        f"{torch.cuda.get_device_name()} x{torch.cuda.device_count()}"
        if torch.cuda.is_available()
        else "no GPU: CPU processes (gloo)"
    )
    print(
        f"# {device}, torch {torch.__version__}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    print(
        f"# {args.config}: {processes} processes, batch {config.run.batch_size} per process, "
        f"{args.warmup} warm-up steps, then {args.pairs} pairs of {args.segment}-step segments, "
        f"CUDA graphs {'on' if loop.uses_cuda_graphs(config) else 'off'}"
    )
    print(f"| pair | order | 1 GPU samples/s | {processes} GPUs samples/s | speed-up |")
    print("|---:|---|---:|---:|---:|")
    for i, p in enumerate(pairs, 1):
        print(
            f"| {i} | {p['order']} | {p['alone_samples_per_s']:.0f} "
            f"| {p['together_samples_per_s']:.0f} | {p['speed_up']:.3f} |"
        )
    ups = [p["speed_up"] for p in pairs]
    alone = statistics.median(p["alone_samples_per_s"] for p in pairs)
    together = statistics.median(p["together_samples_per_s"] for p in pairs)
    waiting = sum(p["waiting_cpu_s"] for p in pairs) / sum(p["alone_s"] for p in pairs)
    print(
        f"| median | | {alone:.0f} | {together:.0f} | **{statistics.median(ups):.3f}** "
        f"(range {min(ups):.3f}-{max(ups):.3f}) |"
    )
    print(
        f"# waiting processes used {waiting:.3f} CPU-seconds per second of the alone segments "
        "(summed over them)"
    )
    if args.out:
        Path(args.out).write_text(json.dumps({"processes": processes, "pairs": pairs}, indent=1))


if __name__ == "__main__":
    raise SystemExit(main())
