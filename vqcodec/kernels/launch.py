"""Launching a compiled Triton (or Gluon) kernel again without the JIT's per-call work.

Every ``kernel[grid](...)`` call binds its arguments, works out how Triton specialises them
(dtypes, 16-byte alignment of pointers, integers equal to 1 or divisible by 16), looks the
compiled kernel up and, for an autotuned kernel, its chosen config too. On a lent H100 machine's
host that took 18 µs a launch, 31 µs through the autotuner, against 8 µs for launching the
compiled kernel directly (2026-11-23, part 1 of
``benchmarks/results/nearest_code_h100_2026-11-23_launch_cache.txt``): as much host time as a
small search takes on the GPU, so eager calls were bound by it.

A :class:`LaunchCache` keeps, for each launch key, the compiled kernel that the first call with
that key got through the JIT (compiling and autotuning as usual), its grid and its constexpr
values, and launches it directly on later calls. The key is the caller's promise: two launches
with equal keys are specialised alike (the same dtypes, pointer alignments and integer values,
or values alike modulo 16 and 1) and take the same grid, constexprs and config. Calls made while
a Triton launch hook is installed (profilers such as proton) always go through the JIT, so the
hook sees them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import torch
from triton import knobs
from triton.runtime import Autotuner, driver
from triton.runtime.jit import JITFunction


@dataclass(frozen=True)
class _Compiled:
    kernel: Any  # triton.compiler.CompiledKernel
    grid: tuple[int, int, int]
    constants: tuple[Any, ...]  # the parameters after the positional arguments, in order
    config: Any  # the autotuner's choice (triton.Config), or None


class LaunchCache:
    """Launches of one kernel (a ``@triton.jit``/``@gluon.jit`` function, or one wrapped in
    ``triton.autotune``) by key; at most ``capacity`` keys, the oldest dropped first.

    ``cache(key, grid, *args, **kwargs)`` launches like ``kernel[grid](*args, **kwargs)`` does,
    where ``args`` are the kernel's leading parameters and ``kwargs`` its constexpr parameters and
    compile options (``num_warps``, ``launch_pdl``, ...).

    ``LaunchCache.verify = True`` (the GPU tests set it) checks every direct launch against the
    JIT: the kernel the JIT would launch for these arguments, its grid and its constexprs must be
    the ones kept for the key, else :class:`StaleLaunchError`. ``LaunchCache.enabled = False``
    sends every launch through the JIT (for timing the difference)."""

    enabled = True
    verify = False

    def __init__(self, kernel: JITFunction | Autotuner, capacity: int = 1024) -> None:
        self.kernel = kernel
        self.capacity = capacity
        jit = kernel.fn if isinstance(kernel, Autotuner) else kernel
        if not isinstance(jit, JITFunction):
            raise TypeError(f"LaunchCache needs a jit function, or one autotuned; got {kernel!r}")
        self._jit = jit
        self._params = jit.params
        self._compiled: dict[Hashable, _Compiled] = {}

    def __call__(
        self,
        key: Hashable,
        grid: tuple[int, ...] | Callable[[dict[str, Any]], tuple[int, ...]],
        *args: Any,
        **kwargs: Any,
    ) -> None:
        compiled = self._compiled.get(key) if self.enabled else None
        if compiled is None or _launch_hooks_installed():
            self._through_jit(key, grid, args, kwargs)
            return
        if self.verify:
            self._check(key, compiled, grid, args, kwargs)
        kernel = compiled.kernel
        stream = driver.active.get_current_stream(driver.active.get_current_device())
        # The JIT's own launch (JITFunction.run), without the hooks and their metadata.
        kernel.run(
            *compiled.grid, stream, kernel.function, kernel.packed_metadata, None, None, None,
            *args, *compiled.constants,
        )  # fmt: skip

    def _through_jit(
        self,
        key: Hashable,
        grid: tuple[int, ...] | Callable[[dict[str, Any]], tuple[int, ...]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        kernel = self.kernel[grid](*args, **kwargs)
        config = None
        if isinstance(self.kernel, Autotuner):
            config = self.kernel.best_config
            if config.pre_hook is not None:
                return  # hooks run on every launch: leave this kernel to the autotuner
        replay = self._replay(grid, args, kwargs, config)
        if kernel is None or replay is None:
            return  # nothing compiled, or arguments this cache cannot replay
        self._compiled[key] = _Compiled(kernel, *replay, config)
        if len(self._compiled) > self.capacity:
            del self._compiled[next(iter(self._compiled))]

    def _replay(
        self,
        grid: tuple[int, ...] | Callable[[dict[str, Any]], tuple[int, ...]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        config: Any,
    ) -> tuple[tuple[int, int, int], tuple[Any, ...]] | None:
        """The launch's grid and the values of the parameters after ``args`` (defaults, then
        ``kwargs``, then the autotuner's ``config``), as the JIT binds them; None if one has
        no value."""
        values = {p.name: p.default for p in self._params if p.has_default}
        values.update(zip((p.name for p in self._params), args))
        values.update(kwargs)
        if config is not None:
            values.update(config.kwargs)
        trailing = self._params[len(args) :]
        if any(p.name not in values for p in trailing):
            return None
        shape = grid(values) if callable(grid) else grid
        return (*shape, 1, 1)[:3], tuple(values[p.name] for p in trailing)

    def _check(
        self,
        key: Hashable,
        compiled: _Compiled,
        grid: tuple[int, ...] | Callable[[dict[str, Any]], tuple[int, ...]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        config = compiled.config
        options = {**kwargs, **config.all_kwargs()} if config is not None else kwargs
        kernel = self._jit.warmup(*args, grid=grid, **options)  # binds and looks up; no launch
        if kernel is not compiled.kernel or self._replay(grid, args, kwargs, config) != (
            compiled.grid,
            compiled.constants,
        ):
            raise StaleLaunchError(
                f"launch key {key!r} of {self._jit.fn.__name__} no longer fixes its kernel"
            )


class StaleLaunchError(RuntimeError):
    """A launch key that no longer determines the kernel the JIT would launch (a caller's bug)."""


def _launch_hooks_installed() -> bool:
    # Triton keeps its launch hooks in chains (knobs.HookChain); a hook set in their place is
    # installed too.
    return any(
        hook is not None and bool(getattr(hook, "calls", True))
        for hook in (knobs.runtime.launch_enter_hook, knobs.runtime.launch_exit_hook)
    )


def cdiv(a: int, b: int) -> int:
    """``ceil(a / b)`` for launchers. Triton's ``triton.cdiv`` and ``triton.next_power_of_2``
    are constexpr functions, and each host call of one takes 2-4 µs (their argument unwrapping),
    several a search: these take 0.1 µs."""
    return -(-a // b)


def next_power_of_2(n: int) -> int:
    """The least power of two ``>= n`` (``n >= 1``), for launchers (see :func:`cdiv`)."""
    return 1 << (n - 1).bit_length()


def on_device(device: torch.device) -> contextlib.AbstractContextManager:
    """``torch.cuda.device(device)``, or nothing where it is already current (cheaper: making
    the device context costs a few microseconds of host time a call)."""
    index = device.index
    if index is None or index == torch.cuda.current_device():
        return contextlib.nullcontext()
    return torch.cuda.device(index)
