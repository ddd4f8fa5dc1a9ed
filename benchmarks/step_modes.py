"""Milliseconds per training step on one GPU: eager, ``torch.compile`` or CUDA graphs, with or
without a one-process DDP wrapper; optionally a ``torch.profiler`` summary of the last steps.

    python benchmarks/step_modes.py configs/audio-24k.json --steps 300 --set run.cuda_graphs=false
    python benchmarks/step_modes.py configs/audio-24k.json --steps 300 --set run.cuda_graphs=true
    python benchmarks/step_modes.py configs/audio-24k.json --ddp --compile --no-optimize-ddp ...

The loop's own step function runs (``vqcodec.train.loop.step_function_for``: CUDA graphs where
``run.cuda_graphs`` asks for them). Options:

- ``--ddp``: wrap the model in DDP over a one-process NCCL group, built on the capturing stream
  as ``prepare`` builds it, and make the quantizers run their collectives as with several
  processes (a one-GPU check that DDP and the collectives capture and what they cost);
- ``--compile``: ``torch.compile`` the (wrapped) model and the losses here, as accelerate does;
  ``--no-optimize-ddp`` turns off dynamo's graph splitting at DDP buckets; ``--init-eager``
  initialises the codebooks by k-means in an uncompiled forward first (k-means breaks the
  compiled graph; ``run.compile`` in the loop runs its first step uncompiled instead);
- ``--profile N``: profile the last N steps: kernel launches per step and the operator table.

The time is the mean over the second half of ``--steps`` (after a ``torch.cuda.synchronize``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch
import torch.distributed as dist

from vqcodec.config import ConfigError
from vqcodec.quantizers import distributed
from vqcodec.train import loop
from vqcodec.train.config import load_train_config

LAUNCHES = ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernelEx")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--ddp", action="store_true", help="one-process DDP and collectives")
    parser.add_argument("--compile", action="store_true", help="torch.compile model and losses")
    parser.add_argument("--no-optimize-ddp", action="store_true")
    parser.add_argument("--init-eager", action="store_true", help="k-means before compiling")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--profile", type=int, default=0, help="profile the last N steps")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    try:
        config = load_train_config(args.config, [*args.overrides, "data.dev=[]"])
    except ConfigError as error:
        print(f"step_modes: {error}", file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print("step_modes: needs a CUDA GPU", file=sys.stderr)
        return 2
    if args.ddp:
        port = 29600 + os.getpid() % 1000
        dist.init_process_group("nccl", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
        # The quantizers skip their collectives with one process; run them as with two.
        distributed.world_size = lambda: 2 if dist.is_initialized() else 1
    if args.no_optimize_ddp:
        torch._dynamo.config.optimize_ddp = False
    prepared = loop.prepare(config)
    batches = loop._batches(prepared.loader, prepared.accelerator, 0)
    if args.init_eager:
        with torch.no_grad():
            loop._bare(prepared.accelerator, prepared.model).train()(next(batches))
    if args.ddp:
        with torch.cuda.stream(prepared.graph_stream):
            prepared.model = torch.nn.parallel.DistributedDataParallel(
                prepared.model,
                device_ids=[0],
                broadcast_buffers=False,
                gradient_as_bucket_view=True,
            )
    if args.compile:
        prepared.model = torch.compile(prepared.model)
        prepared.losses = torch.compile(prepared.losses)
    step_function = loop.step_function_for(prepared)
    prepared.model.train()

    label = " ".join(sys.argv[2:])
    half = args.steps // 2
    profiler = None
    for step in range(args.steps):
        if step == half:
            torch.cuda.synchronize()
            started = time.perf_counter()
        if args.profile and step == args.steps - args.profile:
            torch.cuda.synchronize()
            activities = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
            profiler = torch.profiler.profile(activities=activities)
            profiler.__enter__()
        _, terms = step_function(next(batches), step)
        prepared.scheduler.step()
    torch.cuda.synchronize()
    per_step = (time.perf_counter() - started) / (args.steps - half)
    if profiler is not None:
        profiler.__exit__(None, None, None)
        events = profiler.key_averages()
        print(events.table(sort_by="cpu_time_total", row_limit=28, max_name_column_width=60))
        launches = sum(e.count for e in events if e.key in LAUNCHES) / args.profile
        print(f"PROFILE {label}: {launches:.0f} kernel launches per step")
    samples = config.run.batch_size / per_step
    print(
        f"RESULT {label}: {per_step * 1e3:.1f} ms/step, {samples:.0f} samples/s "
        f"(steps {half}-{args.steps}), loss {float(terms.total.detach()):.3f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
