"""Release checkpoints and the model registry.

A release model is a folder: ``config.json`` (format version, model type, package version,
name, config), ``model.safetensors`` (weights, loaded strictly) and, when fitted,
``tables.safetensors`` (entropy-coding tables). No pickle anywhere. :func:`load` finds a model by
registry name, by the name of a folder shipped in ``vqcodec/pretrained/``, or by a folder path.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

CHECKPOINT_FORMAT = 1
PRETRAINED_DIR = Path(__file__).parent / "pretrained"
_REGISTRY: dict[str, Callable[[], nn.Module]] = {}


class UnknownModelError(LookupError):
    """No model of that name is registered, shipped or found as a folder."""


class CheckpointError(ValueError):
    """A checkpoint folder is missing files or does not match its config."""


def _model_types() -> dict[str, tuple[type, type]]:
    from vqcodec.codecs.audio import AudioCodec, AudioCodecConfig
    from vqcodec.codecs.image import ImageCodec, ImageCodecConfig

    return {"audio": (AudioCodec, AudioCodecConfig), "image": (ImageCodec, ImageCodecConfig)}


def register_model(name: str, factory: Callable[[], nn.Module], *, replace: bool = False) -> None:
    """Make ``load(name)`` return ``factory()`` in eval mode."""
    if name in _REGISTRY and not replace:
        raise ValueError(f"a model named {name!r} is already registered")
    _REGISTRY[name] = factory


def unregister_model(name: str) -> None:
    """Remove a registered model (tests use this to clean up)."""
    _REGISTRY.pop(name, None)


def registered_models() -> list[str]:
    """Names :func:`load` accepts without a path: registered and shipped models."""
    shipped = [p.name for p in PRETRAINED_DIR.glob("*") if (p / "config.json").is_file()]
    return sorted(set(_REGISTRY) | set(shipped))


def load(name: str) -> nn.Module:
    """A model in eval mode: registered name, shipped model name, or checkpoint folder path."""
    if name in _REGISTRY:
        return _REGISTRY[name]().eval()
    if (PRETRAINED_DIR / name / "config.json").is_file():
        return from_pretrained(PRETRAINED_DIR / name)
    if Path(name).is_dir():
        return from_pretrained(name)
    known = ", ".join(registered_models()) or "none yet"
    raise UnknownModelError(f"unknown model {name!r} (known: {known}; or give a checkpoint folder)")


def save_pretrained(
    model: nn.Module, folder: str | Path, tables: object | None = None, half: bool = False
) -> Path:
    """Write ``model`` (unwrapped: no ``module.``/``_orig_mod.`` prefixes) as a release folder.

    Args:
        model: an unwrapped codec with ``name`` and ``config``.
        folder: created if missing.
        tables: optional :class:`~vqcodec.bitstream.tables.CodeTables`.
        half: store floating-point weights as float16 (half the size; loaded back as float32).
    """
    from vqcodec import __version__
    from vqcodec.config import to_dict

    model_type = next((t for t, (cls, _) in _model_types().items() if isinstance(model, cls)), None)
    if model_type is None:
        raise CheckpointError(f"no checkpoint type for {type(model).__name__}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    if half:
        # Running statistics keep float32: counts can exceed float16's range.
        state = {
            k: v.half() if v.dtype == torch.float32 and "ema" not in k and "usage" not in k else v
            for k, v in state.items()
        }
    save_file(state, folder / "model.safetensors")
    meta = {
        "format_version": CHECKPOINT_FORMAT,
        "model_type": model_type,
        "package_version": __version__,
        "name": model.name,
        "config": to_dict(model.config),
    }
    (folder / "config.json").write_text(json.dumps(meta, indent=2) + "\n")
    if tables is not None:
        save_file(tables.to_tensors(), folder / "tables.safetensors")
    return folder


def from_pretrained(folder: str | Path) -> nn.Module:
    """Load a release folder written by :func:`save_pretrained` (strictly), in eval mode."""
    from vqcodec.bitstream.tables import CodeTables
    from vqcodec.config import ConfigError, from_dict

    folder = Path(folder)
    try:
        meta = json.loads((folder / "config.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{folder} is not a model folder: {error}") from None
    if meta.get("format_version") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{folder}: checkpoint format {meta.get('format_version')} is not supported"
        )
    types = _model_types()
    if meta.get("model_type") not in types:
        raise CheckpointError(f"{folder}: unknown model type {meta.get('model_type')!r}")
    model_cls, config_cls = types[meta["model_type"]]
    try:
        config = from_dict(config_cls, meta["config"])
    except (ConfigError, KeyError, TypeError) as error:
        raise CheckpointError(f"{folder}: bad config: {error}") from None
    model = model_cls(config, name=meta.get("name", folder.name))
    state = load_file(folder / "model.safetensors")
    reference = model.state_dict()
    state = {k: v.to(reference[k].dtype) if k in reference else v for k, v in state.items()}
    model.load_state_dict(state, strict=True)
    if (folder / "tables.safetensors").is_file():
        model.code_tables = CodeTables.from_tensors(load_file(folder / "tables.safetensors"))
    return model.eval()
