"""Model-level coding: ``compress(model, x) -> bytes`` and ``decompress(data) -> x_hat``.

The model does the tensors (``encode``/``decode``); this module does the bytes. A model to be
used here has ``name`` (its registry name), ``config`` (a dataclass or JSON-safe dict),
``encode(x) -> codes [B, Q, *spatial]``, ``decode(codes) -> x_hat``, a ``quantizer`` (for the
codebook sizes) and, optionally, ``code_tables`` (:class:`~vqcodec.bitstream.tables.CodeTables`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

import torch
from torch import Tensor, nn

from vqcodec.bitstream.codes import CodeLayout, pack_codes, read_code_header, unpack_codes
from vqcodec.bitstream.errors import HeaderError, ModelMismatchError
from vqcodec.checkpoint import load


def config_hash(model: nn.Module) -> str:
    """Short SHA-256 of the model's name and config (canonical JSON)."""
    config = model.config
    if dataclasses.is_dataclass(config):
        config = dataclasses.asdict(config)
    text = json.dumps({"name": model.name, "config": config}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _codebook_sizes(model: nn.Module, planes: int) -> list[int]:
    quantizer = model.quantizer
    return [int(quantizer.codebook_size)] * planes


@torch.no_grad()
def compress(model: nn.Module, x: Tensor, num_levels: int | None = None) -> bytes:
    """``.vqc`` bytes for the signal ``x`` coded by ``model`` (optionally its first levels)."""
    codes = model.encode(x) if num_levels is None else model.encode(x, num_levels=num_levels)
    layout = CodeLayout.for_codes(codes, _codebook_sizes(model, codes.shape[1]))
    header = {
        "model": {"name": model.name, "config_hash": config_hash(model)},
        "signal": {"shape": list(x.shape)},
    }
    return pack_codes(codes, layout, getattr(model, "code_tables", None), extra_header=header)


def resolve_model(header: dict, model: nn.Module | None) -> nn.Module:
    """The model named in ``header`` (loaded when ``model`` is None), checked against it."""
    written_by = header.get("model")
    if not isinstance(written_by, dict) or not all(
        isinstance(written_by.get(key), str) for key in ("name", "config_hash")
    ):
        raise HeaderError("header does not say which model wrote the file")
    if model is None:
        model = load(written_by["name"])
    if written_by["name"] != model.name or written_by["config_hash"] != config_hash(model):
        raise ModelMismatchError(
            f"file was written by model {written_by['name']!r} "
            f"(config {written_by['config_hash']}), "
            f"not by {model.name!r} (config {config_hash(model)})"
        )
    return model


@torch.no_grad()
def decompress(data: bytes, model: nn.Module | None = None) -> Tensor:
    """The reconstruction ``x_hat`` from ``.vqc`` bytes.

    Args:
        data: bytes from :func:`compress`.
        model: the model that wrote them; resolved from the header's model name when omitted.

    Raises:
        ModelMismatchError: ``model``'s config differs from the one that wrote the file.
        BitstreamError: any other malformed input (see :mod:`vqcodec.bitstream.errors`).
    """
    model = resolve_model(read_code_header(data), model)
    codes, _ = unpack_codes(data, getattr(model, "code_tables", None))
    return model.decode(codes)
