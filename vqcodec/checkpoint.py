"""The model registry: names to model factories, so a ``.vqc`` header can name its model.

Shipped models register themselves here when they land (``vqcodec.load("audio-24k")``); a user
can register their own with :func:`register_model`.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

_REGISTRY: dict[str, Callable[[], nn.Module]] = {}


class UnknownModelError(LookupError):
    """No model of that name is registered."""


def register_model(name: str, factory: Callable[[], nn.Module], *, replace: bool = False) -> None:
    """Make ``load(name)`` return ``factory()`` in eval mode."""
    if name in _REGISTRY and not replace:
        raise ValueError(f"a model named {name!r} is already registered")
    _REGISTRY[name] = factory


def unregister_model(name: str) -> None:
    """Remove a registered model (tests use this to clean up)."""
    _REGISTRY.pop(name, None)


def registered_models() -> list[str]:
    """Names :func:`load` accepts."""
    return sorted(_REGISTRY)


def load(name: str) -> nn.Module:
    """The registered model ``name``, in eval mode."""
    if name not in _REGISTRY:
        known = ", ".join(registered_models()) or "none yet"
        raise UnknownModelError(f"unknown model {name!r} (registered: {known})")
    return _REGISTRY[name]().eval()
