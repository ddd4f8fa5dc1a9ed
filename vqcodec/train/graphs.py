"""Training steps replayed as one CUDA graph (``run.cuda_graphs``).

A step of the small shipped codecs is bound by the host: about 2,000 operator dispatches (kernel
launches, autograd bookkeeping) for about 20 ms of GPU work, and ``torch.compile`` removes only
a third of the launches (measured, ``docs/BENCHMARKS.md``). Captured once as a CUDA graph, the
whole step -- forward, losses, backward, gradient clipping, the fused optimiser update and the
quantizers' codebook updates with their collectives -- is one replay call from the host
(the profiler counts 3 kernel launches per step, against 2,075 eager).

What makes the step capturable: it never reads a GPU value back (the loop was made free of
host synchronisations for data parallelism), its randomness is drawn on the GPU (quantizer
dropout, dead-code candidates), the optimiser keeps its step count and learning rate on the
GPU (``prepare`` makes it capturable, :class:`GraphedTrainStep` turns the rate into a GPU tensor
that the schedule writes in place), and every batch has the same shape (``drop_last``).
Tested with the audio and image codecs (``tests/train/test_cuda_graphs.py``), measured with
the audio codec.
"""

from __future__ import annotations

import torch
from torch import Tensor

# DDP needs eleven eager iterations on the capturing stream before a capture (PyTorch's CUDA
# semantics notes); they also compile the Triton kernels, initialise the codebooks by k-means and
# plan the FFTs, none of which may happen inside a capture.
WARMUP_STEPS = 11


class GraphedTrainStep:
    """``train_step(prepared, x, step, synchronise)`` that captures itself after a warm-up.

    The first :data:`WARMUP_STEPS` calls train eagerly on a side stream; the next call captures
    the step on that stream and replays it; every later call copies its batch into the captured
    input and replays. Every call is a real training step on its batch.

    The returned output and loss terms are the graph's own tensors, overwritten by the next
    replay: copy what must outlive a step. The graph holds the parameters, gradients and
    optimiser state it was captured with; replacing any of them afterwards (loading a state
    dict into a new optimiser, for example) needs a new ``GraphedTrainStep``.
    """

    def __init__(self, prepared, synchronise: bool = True) -> None:
        from vqcodec.train.loop import learning_rates_on_device

        learning_rates_on_device(prepared.optimizer, True)
        self.prepared = prepared
        self.synchronise = synchronise
        self.eager_calls = 0
        self.stream = prepared.graph_stream
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static_x: Tensor | None = None
        self.result = None

    @property
    def captured(self) -> bool:
        return self.graph is not None

    def __call__(self, x: Tensor, step: int):
        from vqcodec.train.loop import train_step

        if self.graph is None and self.eager_calls < WARMUP_STEPS:
            self.eager_calls += 1
            current = torch.cuda.current_stream(x.device)
            self.stream.wait_stream(current)
            x.record_stream(self.stream)  # the batch is read on the side stream
            with torch.cuda.stream(self.stream):
                result = train_step(self.prepared, x, step, self.synchronise)
            current.wait_stream(self.stream)
            return result
        if self.graph is None:
            self.static_x = x.clone()
            self.graph = torch.cuda.CUDAGraph()
            torch.cuda.current_stream(x.device).synchronize()
            # thread_local: other threads (the loader's pinning thread) keep working during the
            # capture; only this thread's calls must be capture-safe.
            with torch.cuda.graph(
                self.graph, stream=self.stream, capture_error_mode="thread_local"
            ):
                self.result = train_step(self.prepared, self.static_x, step, self.synchronise)
        else:
            self.static_x.copy_(x, non_blocking=True)
        self.graph.replay()
        return self.result
