"""Configs: frozen dataclasses read from JSON files, with ``--set a.b=value`` overrides checked
against the field names and types (no Hydra, no import strings: every value has one place)."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file or override does not fit the config's fields or types."""


def from_dict(cls: type[T], data: dict[str, Any], where: str = "") -> T:
    """Build dataclass ``cls`` from ``data``, recursing into nested dataclasses; unknown keys and
    wrong types are errors naming the dotted path."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'} must be a JSON object, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(fields)
    if unknown:
        raise ConfigError(
            f"unknown config key(s) {', '.join(sorted(f'{where}{k}' for k in unknown))}"
        )
    hints = typing.get_type_hints(cls)
    values = {name: _convert(hints[name], value, f"{where}{name}") for name, value in data.items()}
    try:
        return cls(**values)
    except ConfigError:
        raise
    except ValueError as error:  # a value check of the dataclass: "field: what is wrong"
        raise ConfigError(f"{where}{error}") from None


def check(condition: bool, field: str, requirement: str) -> None:
    """For a config's ``__post_init__``: ``ValueError("field: requirement")`` unless
    ``condition`` (:func:`from_dict` prefixes the section, e.g. ``run.batch_size``)."""
    if not condition:
        raise ValueError(f"{field}: {requirement}")


def _convert(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where + ".")
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(option, value, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: {value!r} does not fit {hint}")
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item,) = {a for a in typing.get_args(hint) if a is not Ellipsis} or {Any}
        converted = [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(converted) if origin is tuple else converted
    if origin is typing.Literal:
        if value not in typing.get_args(hint):
            raise ConfigError(f"{where}: {value!r} is not one of {typing.get_args(hint)}")
        return value
    if hint is Any:
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool) and (type(value) is not hint):
        raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}")
    return value


def to_dict(config: Any) -> dict[str, Any]:
    """JSON-safe dict of a dataclass config (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """``["optim.lr=3e-4", "data.train=['a','b']"]`` applied to a nested dict (a copy).

    Values are parsed as JSON when they parse (numbers, booleans, lists), else taken as strings;
    the types are then checked by :func:`from_dict`.
    """
    data = json.loads(json.dumps(data))
    for override in overrides:
        key, sep, text = override.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {override!r} is not of the form key=value")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        node = data
        *parents, leaf = key.split(".")
        for part in parents:
            if not isinstance(node.get(part), dict):
                node[part] = {} if part not in node else node[part]
                if not isinstance(node[part], dict):
                    raise ConfigError(f"override {key!r}: {part} is not a section")
            node = node[part]
        node[leaf] = value
    return data


def read_json(path: str | Path) -> dict[str, Any]:
    """A JSON object from a file, or :class:`ConfigError` saying what is wrong."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except json.JSONDecodeError as error:
        raise ConfigError(f"config file {path} is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a JSON object")
    return data


def load_config(cls: type[T], path: str | Path, overrides: list[str] | None = None) -> T:
    """Read ``cls`` from a JSON file, with dotted overrides."""
    return from_dict(cls, apply_overrides(read_json(path), overrides or []))
