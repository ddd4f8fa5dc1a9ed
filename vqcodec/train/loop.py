"""One training function that reads top to bottom, on HuggingFace accelerate.

The same code runs on a CPU, one GPU, or ``accelerate launch`` over several GPUs and machines.
Only the main process writes logs, checkpoints and exports.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from accelerate import (
    Accelerator,
    AutocastKwargs,
    DataLoaderConfiguration,
    DistributedDataParallelKwargs,
)
from accelerate.state import AcceleratorState, GradientState
from accelerate.utils import set_seed
from torch import Tensor
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from vqcodec.checkpoint import save_pretrained
from vqcodec.codecs import CodecOutput
from vqcodec.config import ConfigError, to_dict
from vqcodec.train.adversarial import AdversarialConfig, discriminator_loss, generator_terms
from vqcodec.train.config import ImageTrainConfig, TrainConfig
from vqcodec.train.losses import LossTerms
from vqcodec.train.replicas import check_replicas_agree
from vqcodec.train.tasks import AudioTask, ImageTask, task_for


@dataclass
class TrainResult:
    """What a run did: the last step reached and the loss of every step it ran."""

    step: int
    losses: dict[int, float] = field(default_factory=dict)
    export_dir: Path | None = None


def _lr_lambda(config: TrainConfig):
    optim, steps = config.optim, config.run.steps

    def factor(step: int) -> float:
        if step < optim.warmup_steps:
            return (step + 1) / optim.warmup_steps
        progress = min(1.0, (step - optim.warmup_steps) / max(1, steps - optim.warmup_steps))
        cosine = 0.5 * (1 + math.cos(math.pi * progress))
        return optim.final_lr_fraction + (1 - optim.final_lr_fraction) * cosine

    return factor


def _batches(loader: DataLoader, accelerator: Accelerator, start_batch: int):
    """Batches forever, epoch after epoch; on resume, skip what the interrupted run consumed."""
    epoch, skip = divmod(start_batch, len(loader))
    while True:
        loader.set_epoch(epoch)
        source = accelerator.skip_first_batches(loader, skip) if skip else loader
        yield from source
        epoch, skip = epoch + 1, 0


@torch.no_grad()
def evaluate(
    task: AudioTask | ImageTask,
    model: torch.nn.Module,
    losses: torch.nn.Module,
    loader: DataLoader,
    accelerator: Accelerator,
    batches: int,
) -> dict[str, float]:
    """The task's dev metrics at the full and the lowest bitrate, and quantizer telemetry."""
    model.eval()
    codec = _bare(accelerator, model)
    totals: dict[str, float] = {}
    count = 0
    for i, x in enumerate(loader):
        if i >= batches:
            break
        out = model(x)
        values = task.dev_metrics(codec, losses, x, out.x_hat)
        values.update({k: v for k, v in out.metrics.items() if "/" not in k or "code_usage" in k})
        for name, value in values.items():
            totals[name] = totals.get(name, 0.0) + float(
                accelerator.gather(value.reshape(1)).mean()
            )
        count += 1
    model.train()
    return {f"dev/{k}": v / max(count, 1) for k, v in totals.items()}


@dataclass
class PreparedRun:
    """A run's pieces, built from its config and prepared by accelerate.

    On several processes ``model`` (and ``discriminator``) are the data-parallel wrappers and
    ``loader`` gives each process its own share of every epoch.
    """

    config: TrainConfig | ImageTrainConfig
    accelerator: Accelerator
    task: AudioTask | ImageTask
    model: torch.nn.Module
    losses: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    loader: DataLoader
    dev_loader: DataLoader | None
    discriminator: torch.nn.Module | None = None
    d_optimizer: torch.optim.Optimizer | None = None
    graph_stream: torch.cuda.Stream | None = None  # captures the steps under run.cuda_graphs


def prepare(config: TrainConfig | ImageTrainConfig) -> PreparedRun:
    """The accelerator, model, losses, optimiser, schedule and loaders that ``config`` asks for."""
    run = config.run
    _check_compile_supported(run.compile)
    graphs = uses_cuda_graphs(config)
    # accelerate keeps one precision and compile backend per process: a second run in the same
    # process (tests, notebooks) would silently keep the first run's backend, or refuse another
    # precision. The process group (PartialState) is kept.
    AcceleratorState._reset_state()
    GradientState._reset_state()
    accelerator = Accelerator(
        cpu=_cpu_processes(),
        mixed_precision=run.mixed_precision,
        gradient_accumulation_steps=run.gradient_accumulation,
        # non_blocking with pinned batches: copying a pageable batch to the GPU waits for it.
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, non_blocking=True),
        # The schedule follows optimiser updates whatever the process count (accelerate's
        # default would advance it once per process per update).
        step_scheduler_with_optimizer=False,
        # run.compile: torch.compile the model (after the DDP wrap, as accelerate does it).
        dynamo_backend="inductor" if run.compile else None,
        # broadcast_buffers=False: DDP would otherwise broadcast rank 0's buffers before every
        # forward, making the processes wait for each other (91.5 -> 77.8 ms per step on two
        # GPUs, with gradient_as_bucket_view). The quantizers keep their own buffers identical
        # (the replica checks prove it); the latent batch norm's running statistics, used only
        # at inference, are each process's own estimate and the main process's are saved.
        # cache_enabled=False under CUDA graphs: autocast's cache of low-precision weight copies
        # must not outlive a capture (PyTorch's CUDA-graph notes).
        kwargs_handlers=[
            DistributedDataParallelKwargs(broadcast_buffers=False, gradient_as_bucket_view=True),
            AutocastKwargs(cache_enabled=not graphs),
        ],
    )
    # A different seed per process: random crops and quantizer dropout differ across ranks;
    # the weights still start equal because DDP broadcasts rank 0's at wrap time.
    set_seed(run.seed, device_specific=True)

    task = task_for(config)
    model = task.model()
    if run.init_from:
        _initialise_from(model, run.init_from)
    losses = task.loss().to(accelerator.device)
    if run.compile:
        losses = torch.compile(losses)
    # fused: the whole update in one kernel per device and dtype (the default, foreach, issues
    # a dozen multi-tensor launches per step; a single-tensor loop on the CPU).
    # capturable: the update may be captured in a CUDA graph (its step count lives on the GPU;
    # GraphedTrainStep also moves the learning rate there).
    optimizer = torch.optim.AdamW(
        model.parameters(),
        lr=config.optim.lr,
        betas=tuple(config.optim.betas),
        weight_decay=config.optim.weight_decay,
        fused=True,
        capturable=graphs,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(config))
    adversary = config.adversarial
    discriminator = d_optimizer = None
    if adversary.enabled:
        discriminator = task.discriminator()
        d_optimizer = torch.optim.AdamW(
            discriminator.parameters(), lr=adversary.lr, betas=tuple(adversary.betas), fused=True
        )
    if not config.data.train:
        raise ConfigError("data.train: no training data given (a list of files or folders)")
    train_set = task.dataset(config.data.train, train=True)
    loader = DataLoader(
        train_set,
        batch_size=run.batch_size,
        shuffle=True,
        # A full batch on every process when there is enough data; a smaller one otherwise.
        drop_last=len(train_set) >= run.batch_size * accelerator.num_processes,
        num_workers=config.data.num_workers,
        # Workers live across epochs: with a few hundred files an epoch is a dozen batches, and
        # restarting the workers every epoch halved two-GPU throughput (measured).
        persistent_workers=config.data.num_workers > 0,
        pin_memory=accelerator.device.type == "cuda",
    )
    dev_loader = None
    if config.data.dev:
        dev_set = task.dataset(config.data.dev, train=False)
        dev_loader = accelerator.prepare(DataLoader(dev_set, batch_size=run.batch_size))
    # Under CUDA graphs DDP is built on the stream that will capture the steps: built on the
    # default stream, its backward would tie that stream into the capture (PyTorch's notes on
    # CUDA graphs with DDP).
    graph_stream = torch.cuda.Stream(accelerator.device) if graphs else None
    with torch.cuda.stream(graph_stream):
        model, optimizer, loader, scheduler = accelerator.prepare(
            model, optimizer, loader, scheduler
        )
    if discriminator is not None:
        discriminator, d_optimizer = accelerator.prepare(discriminator, d_optimizer)
    return PreparedRun(
        config, accelerator, task, model, losses, optimizer, scheduler, loader, dev_loader,
        discriminator, d_optimizer, graph_stream,
    )  # fmt: skip


def train_step(
    prepared: PreparedRun, x: Tensor, step: int, synchronise: bool = True
) -> tuple[CodecOutput, LossTerms]:
    """One optimiser update of the codec (and, once the adversary has started, its
    discriminator) on the batch ``x``; returns the codec's output and its loss terms.

    ``synchronise=False`` runs the bare modules instead of their data-parallel (and compiled)
    wrappers: the gradients stay this process's own (the quantizers still synchronise their
    codebooks unless run inside ``quantizers.distributed.this_process_only()``). Benchmarks use
    it to time one process training alone inside a multi-process job while the others wait.
    """
    config, accelerator = prepared.config, prepared.accelerator
    model, discriminator = prepared.model, prepared.discriminator
    if not synchronise:
        model = _bare(accelerator, model)
        discriminator = discriminator and _bare(accelerator, discriminator)
    optimizer = prepared.optimizer
    adversary = config.adversarial
    adversarial_step = discriminator is not None and step >= adversary.start_step
    trained = [m for m in (model, discriminator) if m is not None]
    with accelerator.accumulate(*trained):
        out = model(x)
        terms = prepared.losses(out.x_hat, x, out.loss)
        if adversarial_step:
            terms = _with_adversarial_terms(
                terms, accelerator, discriminator, out.x_hat, x, adversary
            )
        accelerator.backward(terms.total)
        if accelerator.sync_gradients and config.optim.grad_clip > 0:
            accelerator.clip_grad_norm_(model.parameters(), config.optim.grad_clip)
        optimizer.step()
        optimizer.zero_grad()
        if adversarial_step:
            # The discriminator learns from this step's reconstructions, after the codec.
            d_loss = discriminator_loss(discriminator, out.x_hat, x)
            accelerator.backward(d_loss)
            if accelerator.sync_gradients and config.optim.grad_clip > 0:
                accelerator.clip_grad_norm_(discriminator.parameters(), config.optim.grad_clip)
            prepared.d_optimizer.step()
            prepared.d_optimizer.zero_grad()
            terms.terms["discriminator"] = d_loss.detach()
    return out, terms


def train(
    config: TrainConfig | ImageTrainConfig,
    resume: str | Path | None = None,
    stop_after: int | None = None,
) -> TrainResult:
    """Train a codec (audio or image, from ``config.kind``) as ``config`` says.

    Args:
        config: the run's config tree.
        resume: a checkpoint folder written by this function (``output_dir/checkpoints/step_N``);
            the run continues exactly where it stopped (same data order, RNG states, optimiser).
        stop_after: stop after this many steps of this call (tests; the schedule still follows
            ``config.run.steps``).
    """
    with deterministic_algorithms(config.run.deterministic):
        return _train(config, resume, stop_after)


def _train(
    config: TrainConfig | ImageTrainConfig, resume: str | Path | None, stop_after: int | None
) -> TrainResult:
    prepared = prepare(config)
    run, accelerator, model = config.run, prepared.accelerator, prepared.model
    scheduler, dev_loader = prepared.scheduler, prepared.dev_loader
    output = Path(run.output_dir)

    step = 0
    if resume is not None:
        accelerator.load_state(str(resume))
        learning_rates_on_device(prepared.optimizer, False)  # as saved by a graphed run or not
        step = json.loads((Path(resume) / "progress.json").read_text())["step"]
    log_file = output / "log.jsonl"
    if accelerator.is_main_process:
        output.mkdir(parents=True, exist_ok=True)
        (output / "config.json").write_text(json.dumps(to_dict(config), indent=2) + "\n")

    result = TrainResult(step)
    end = run.steps if stop_after is None else min(run.steps, step + stop_after)
    progress = tqdm(
        total=run.steps, initial=step, disable=not accelerator.is_main_process, desc="train"
    )
    batches = _batches(prepared.loader, accelerator, step * run.gradient_accumulation)
    model.train()
    pending: dict[int, Tensor] = {}  # step -> this process's loss, not yet read back
    started = time.perf_counter()
    step_function = step_function_for(prepared)
    while step < end:
        x = next(batches)
        out, terms = step_function(x, step)
        if not accelerator.sync_gradients:
            continue
        scheduler.step()
        step += 1
        # Losses stay on the device until a log step: reading one back every step would make
        # the host wait for the GPU (and, on several GPUs, for every other process) each step.
        # (A copy: under CUDA graphs the total is the graph's tensor, rewritten every step.)
        pending[step] = terms.total.detach().float().reshape(1).clone()
        progress.update(1)
        record = {}
        if step % run.log_every == 0 or step == end:
            loss = _read_losses(pending, accelerator, result.losses)
            progress.set_postfix(loss=f"{loss:.3f}")
            record.update({"step": step, "loss": loss, "lr": float(scheduler.get_last_lr()[0])})
            record.update({k: float(v) for k, v in terms.terms.items()})
            record.update(
                {
                    f"train/{k}": float(v)
                    for k, v in out.metrics.items()
                    if k in ("code_usage", "perplexity")
                    or k.endswith("code_usage")
                    or k.endswith("dead_codes")
                }
            )
        if run.check_replicas_every and (step % run.check_replicas_every == 0 or step == end):
            # Every process hashes its state; a disagreement stops the run (ReplicaDriftError).
            checked = check_replicas_agree(_bare(accelerator, model))
            record.update(
                {"step": step, "replicas_agree": checked, "processes": accelerator.num_processes}
            )
        if dev_loader is not None and (step % run.eval_every == 0 or step == run.steps):
            record.update(
                {
                    "step": step,
                    **evaluate(
                        prepared.task,
                        model,
                        prepared.losses,
                        dev_loader,
                        accelerator,
                        run.eval_batches,
                    ),
                }
            )
        if record:
            record["elapsed_s"] = round(time.perf_counter() - started, 3)
        if record and accelerator.is_main_process:
            with log_file.open("a") as f:
                f.write(json.dumps(record) + "\n")
        if step % run.save_every == 0 or step == end:
            save_checkpoint(accelerator, output / "checkpoints" / f"step_{step}", step)
    progress.close()
    result.step = step
    if step == run.steps and accelerator.is_main_process:
        result.export_dir = save_pretrained(_bare(accelerator, model), output / "model")
    accelerator.wait_for_everyone()
    return result


@contextlib.contextmanager
def deterministic_algorithms(enabled: bool) -> Iterator[None]:
    """With ``enabled`` (``run.deterministic``), only deterministic kernels until the block
    ends; the previous setting is restored after it. Off: nothing changes."""
    if not enabled:
        yield
        return
    previous = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    workspace = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    # cuBLAS reduces deterministically only with a fixed workspace, and PyTorch refuses cuBLAS
    # calls in deterministic mode without one (its reproducibility notes).
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
        if workspace is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)


def uses_cuda_graphs(config: TrainConfig | ImageTrainConfig) -> bool:
    """Whether training steps will be CUDA graphs: ``run.cuda_graphs`` on a CUDA device.

    Raises ConfigError for settings a captured step cannot follow: a step that changes with the
    step number (the adversary's start), accumulated gradients, ``run.compile``.
    """
    run = config.run
    if not run.cuda_graphs:
        return False
    if run.compile:
        raise ConfigError("run.cuda_graphs: cannot be combined with run.compile; choose one")
    if run.gradient_accumulation > 1:
        raise ConfigError("run.cuda_graphs: needs run.gradient_accumulation=1")
    if config.adversarial.enabled:
        raise ConfigError("run.cuda_graphs: not supported with adversarial training yet")
    return torch.cuda.is_available() and not _cpu_processes()


def step_function_for(prepared: PreparedRun, synchronise: bool = True):
    """``f(x, step)``: one training step, replayed as a CUDA graph where the run asks for it."""
    if uses_cuda_graphs(prepared.config):
        from vqcodec.train.graphs import GraphedTrainStep

        return GraphedTrainStep(prepared, synchronise)
    if prepared.config.run.compile and synchronise:
        # The first step runs uncompiled: it initialises the codebooks by k-means (after a
        # resume, it reads their flags), and those graph breaks split a compiled step into
        # pieces whose saved codebooks the later codebook update overwrites (the backward failed
        # at step 0 on an H100). Every later step is one compiled graph.
        uncompiled = replace(prepared, model=prepared.model._orig_mod)  # torch.compile's wrapper
        first_done = False

        def step_function(x: Tensor, step: int):
            nonlocal first_done
            run, first_done = (prepared if first_done else uncompiled), True
            return train_step(run, x, step)

        return step_function
    return lambda x, step: train_step(prepared, x, step, synchronise)


def learning_rates_on_device(optimizer: torch.optim.Optimizer, on_device: bool) -> None:
    """Keep each parameter group's learning rate as a tensor on its parameters' device (for CUDA
    graphs: the schedule then writes it in place, where a float would be frozen into the captured
    update) or as a float (everywhere else; also what a checkpoint may have saved)."""
    for group in optimizer.param_groups:
        lr, device = group["lr"], group["params"][0].device
        if on_device and isinstance(lr, Tensor) and lr.device == device:
            continue  # keep the tensor: a graph captured earlier reads this one
        group["lr"] = torch.tensor(float(lr), device=device) if on_device else float(lr)


def _bare(accelerator: Accelerator, model: torch.nn.Module) -> torch.nn.Module:
    """The module itself: neither the DDP wrapper nor (with ``run.compile``) the compiled one."""
    return accelerator.unwrap_model(model, keep_torch_compile=False)


def _cpu_processes() -> bool:
    """Whether this is one of several launched processes on a machine without CUDA.

    accelerate's multi-GPU launcher (and torchrun) on such a machine would otherwise start
    unconnected one-process runs, each believing it is the main process; told to use the CPU,
    they join one gloo process group.
    """
    return not torch.cuda.is_available() and _launched_processes() > 1


def _launched_processes() -> int:
    """How many processes the launcher (accelerate, torchrun) started; 1 when run directly."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def _check_compile_supported(compile_model: bool) -> None:
    """Refuse ``run.compile`` where it has not been shown to work: several processes on GPUs.

    Measured on 2 x H200 (2026-11-22): the compiled backward stopped at the first step with
    "variables needed for gradient computation modified by an inplace operation" (a float32
    ``[1024, 8]`` tensor, a codebook). Found later on one H100, which failed the same way: the
    k-means initialisation's graph breaks (see ``step_function_for``, which now runs that step
    uncompiled). Not yet re-run on several GPUs, so still refused there.
    """
    if compile_model and torch.cuda.is_available() and _launched_processes() > 1:
        raise ConfigError(
            "run.compile: not supported with several GPU processes yet (its backward fails "
            "under DDP); train without it (run.compile=false)"
        )


def _initialise_from(model: torch.nn.Module, name: str) -> None:
    """Copy a trained model's weights and quantizer state into ``model`` (same architecture)."""
    from vqcodec.checkpoint import CheckpointError, UnknownModelError, load

    try:
        trained = load(name)
    except (UnknownModelError, CheckpointError) as error:
        raise ConfigError(f"run.init_from: {error}") from None
    if trained.config != model.config:
        raise ConfigError(f"run.init_from: {name} has a different architecture than model")
    model.load_state_dict(trained.state_dict(), strict=True)


def _with_adversarial_terms(
    terms: LossTerms,
    accelerator: Accelerator,
    discriminator: torch.nn.Module,
    x_hat: Tensor,
    x: Tensor,
    config: AdversarialConfig,
) -> LossTerms:
    """``terms`` plus the codec's adversarial and feature-matching terms."""
    # The bare module, with its parameters frozen: this pass must train the codec only, and
    # must not fire the data-parallel wrapper's gradient hooks.
    judge = _bare(accelerator, discriminator)
    judge.requires_grad_(False)
    with accelerator.autocast():
        extra = generator_terms(judge, x_hat, x, config)
    judge.requires_grad_(True)
    total = terms.total + sum(extra.values())
    return LossTerms(total, {**terms.terms, **{k: v.detach() for k, v in extra.items()}})


def _read_losses(pending: dict[int, Tensor], accelerator: Accelerator, into: dict) -> float:
    """Move the pending per-step losses (averaged over processes) into ``into``; the last one."""
    steps = list(pending)
    gathered = accelerator.gather(torch.cat([pending[s] for s in steps]))  # [W * n], rank-major
    means = gathered.reshape(-1, len(steps)).mean(0).tolist()
    into.update(zip(steps, means))
    pending.clear()
    return means[-1]


def save_checkpoint(accelerator: Accelerator, folder: Path, step: int) -> None:
    """Full training state (model, optimiser, scheduler, RNG, sampler) plus the step number."""
    accelerator.save_state(str(folder))
    if accelerator.is_main_process:
        (folder / "progress.json").write_text(json.dumps({"step": step}) + "\n")
    accelerator.wait_for_everyone()
