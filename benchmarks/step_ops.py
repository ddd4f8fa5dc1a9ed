"""Operators dispatched by one training step of a codec config, by part of the model: a
measure of the host work per step (each operator is a dispatch, most are a GPU launch), which
bounds a small model's training speed on a fast GPU. Runs on the CPU.

    python benchmarks/step_ops.py configs/audio-24k.json --batch 4
"""

from __future__ import annotations

import argparse
import collections

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from vqcodec.train.config import load_train_config
from vqcodec.train.tasks import task_for


class _Counter(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.part = ["other"]
        self.counts: collections.Counter[str] = collections.Counter()

    def entering(self, name: str):
        def hook(module, inputs) -> None:
            self.part.append(name)

        return hook

    def leaving(self, module, inputs, output) -> None:
        self.part.pop()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.counts[self.part[-1]] += 1
        return func(*args, **(kwargs or {}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--batch", type=int, default=4)
    args = parser.parse_args()
    torch.manual_seed(0)
    config = load_train_config(args.config)
    task = task_for(config)
    model, losses = task.model().train(), task.loss()
    x = _inputs(config, args.batch)
    model(x)  # k-means initialisation happens once, not in the counted step
    counter = _Counter()
    parts = {"encoder": model.encoder, "quantizer": model.quantizer, "decoder": model.decoder}
    for name, module in {**parts, "losses": losses}.items():
        module.register_forward_pre_hook(counter.entering(name))
        module.register_forward_hook(counter.leaving)
    with counter:
        out = model(x)
        terms = losses(out.x_hat, x, out.loss)
        forward = dict(counter.counts)
        counter.counts.clear()
        terms.total.backward()
    backward = sum(counter.counts.values())
    print(f"# {args.config}, batch {args.batch}: operators dispatched in one training step")
    for name, count in forward.items():
        print(f"forward {name}: {count}")
    print(f"backward: {backward}")
    print(f"total: {sum(forward.values()) + backward}")


def _inputs(config, batch: int) -> torch.Tensor:
    """Random inputs of the config's shape (the count does not depend on the values)."""
    if config.kind == "image":
        return torch.rand(batch, 3, config.data.crop, config.data.crop)
    samples = int(config.model.sample_rate * config.data.segment_seconds)
    return 0.1 * torch.randn(batch, 1, samples)


if __name__ == "__main__":
    main()
