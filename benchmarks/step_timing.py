"""Per-step timing of a training run: how long each step waits for its batch, how long a
step takes, and optionally a ``torch.profiler`` window; run it as ``vqcodec.train`` is run.

    python benchmarks/step_timing.py --report out/timing configs/audio-24k.json --set ...
    accelerate launch --multi_gpu --num_processes 2 benchmarks/step_timing.py \
        --report out/timing --profile 300,310 configs/audio-24k.json --set ...

Every process writes ``REPORT/timing_rankR.json`` (mean batch wait and mean step interval from
step 100 on, rewritten every 100 steps) and, with ``--profile A,B``, ``REPORT/profile_rankR.txt``
(operators of steps A to B by host time, device time and count), and with ``--trace`` also
``REPORT/trace_rankR.json`` (the same steps as a Chrome trace, for Perfetto or
chrome://tracing). ``--ddp-kwargs JSON`` replaces the loop's ``DistributedDataParallelKwargs``
(to compare DDP settings).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from accelerate import DistributedDataParallelKwargs

import vqcodec.train.loop as loop
from vqcodec.train.__main__ import main as train_main

SKIPPED = 100  # steps left out of the means (k-means initialisation, warm-up)


def timed_batches(report: Path, profile: tuple[int, int] | None, trace: bool = False):
    """A replacement for the loop's batch generator that times the steps around it."""
    original = loop._batches

    def batches(loader, accelerator, start_batch):
        rank = accelerator.process_index
        source = original(loader, accelerator, start_batch)
        waits, arrivals, profiler, n = [], [], None, 0
        while True:
            asked = time.perf_counter()
            x = next(source)
            arrived = time.perf_counter()
            waits.append(arrived - asked)
            arrivals.append(arrived)
            n += 1
            if profiler is not None:
                profiler.step()
            if profile and n == profile[0]:
                activities = [torch.profiler.ProfilerActivity.CPU]
                if torch.cuda.is_available():
                    activities.append(torch.profiler.ProfilerActivity.CUDA)
                profiler = torch.profiler.profile(activities=activities)
                profiler.__enter__()
            if profile and n == profile[1] and profiler is not None:
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                profiler.__exit__(None, None, None)
                table = profiler.key_averages().table
                device = "self_device_time_total" if torch.cuda.is_available() else "count"
                (report / f"profile_rank{rank}.txt").write_text(
                    f"steps {profile[0]} to {profile[1]}\n"
                    + table(sort_by="self_cpu_time_total", row_limit=45)
                    + "\n\nby device time\n" + table(sort_by=device, row_limit=30)
                    + "\n\nby count\n" + table(sort_by="count", row_limit=25)
                )  # fmt: skip
                if trace:
                    profiler.export_chrome_trace(str(report / f"trace_rank{rank}.json"))
                profiler = None
            if n % 100 == 0 and n > SKIPPED:
                w, a = waits[SKIPPED:], arrivals[SKIPPED:]
                summary = {
                    "steps": n,
                    "mean_wait_ms": 1000 * sum(w) / len(w),
                    "mean_step_ms": 1000 * (a[-1] - a[0]) / max(len(a) - 1, 1),
                }
                (report / f"timing_rank{rank}.json").write_text(json.dumps(summary) + "\n")
            yield x

    return batches


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", required=True, help="folder for the timing files")
    parser.add_argument("--profile", default="", help="A,B: profile steps A to B")
    parser.add_argument(
        "--trace", action="store_true", help="also write the profiled steps as a Chrome trace"
    )
    parser.add_argument("--ddp-kwargs", default="", help="JSON for DistributedDataParallelKwargs")
    args, train_args = parser.parse_known_args()
    report = Path(args.report)
    report.mkdir(parents=True, exist_ok=True)
    profile = tuple(int(s) for s in args.profile.split(",")) if args.profile else None
    loop._batches = timed_batches(report, profile, args.trace)
    if args.ddp_kwargs:
        kwargs = DistributedDataParallelKwargs(**json.loads(args.ddp_kwargs))
        accelerator = loop.Accelerator

        def with_kwargs(*a, **k):
            return accelerator(*a, **{**k, "kwargs_handlers": [kwargs]})

        loop.Accelerator = with_kwargs
    return train_main(train_args)


if __name__ == "__main__":
    raise SystemExit(main())
