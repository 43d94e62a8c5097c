"""Strict dataclass configs, saved and loaded as YAML.

Every model, data module, task and experiment config is a dataclass. Building one from a
mapping rejects unknown keys with an error naming the key and the valid ones (FuxiCTR's
``**kwargs`` silently swallowed misspelt keys; we do not). Nested dataclass fields are built
recursively, so a whole experiment round-trips through one YAML file.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A config key, value or file is wrong; the message names it."""


def did_you_mean(name: str, choices: typing.Iterable[str], n: int = 3) -> str:
    """`` (did you mean 'a', 'b'?)`` for the names in ``choices`` closest to ``name``, else ``""``.

    The one did-you-mean helper of gatelab: every "unknown key/name" message appends it.
    """
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=n)
    return f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""


def _field_types(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # forward refs that cannot be resolved: fall back to raw annotations
        return {f.name: f.type for f in dataclasses.fields(cls)}


def _dataclass_in(tp: Any) -> type | None:
    """The dataclass type inside ``tp`` (``Foo``, ``Foo | None``, ``Optional[Foo]``), if any."""
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return tp
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        for arg in typing.get_args(tp):
            found = _dataclass_in(arg)
            if found is not None:
                return found
    return None


def check_keys(cls: type, keys: typing.Iterable[str], where: str = "") -> None:
    """Raise :class:`ConfigError` if any of ``keys`` is not a field of dataclass ``cls``."""
    valid = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = [k for k in keys if k not in valid]
    if unknown:
        hints = []
        for k in unknown:
            close = difflib.get_close_matches(k, valid, n=1)
            hints.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        loc = f" in {where}" if where else ""
        raise ConfigError(
            f"unknown config key{'s' if len(unknown) > 1 else ''} {', '.join(hints)}{loc} "
            f"for {cls.__name__}; valid keys: {', '.join(valid)}"
        )


def from_dict(cls: type[T], data: Mapping[str, Any] | None, where: str = "") -> T:
    """Build dataclass ``cls`` from ``data``, recursively and strictly.

    Raises:
        ConfigError: unknown key (named, with the closest valid key), missing required key,
            or a nested value of the wrong kind.
    """
    if data is None:
        data = {}
    if isinstance(data, cls):
        return data
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping, got {type(data).__name__}")
    check_keys(cls, data.keys(), where)
    hints = _field_types(cls)
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        sub = _dataclass_in(hints.get(key))
        path = f"{where}.{key}" if where else key
        if sub is not None and isinstance(value, Mapping):
            kwargs[key] = from_dict(sub, value, path)
        elif (
            isinstance(value, list) and hints.get(key) is not None and typing.get_origin(hints[key]) is tuple
        ):
            kwargs[key] = tuple(value)
        else:
            kwargs[key] = value
    try:
        return cls(**kwargs)
    except TypeError as e:  # missing required fields
        raise ConfigError(f"{where or cls.__name__}: {e}") from None


def to_dict(cfg: Any) -> dict[str, Any]:
    """Dataclass -> plain dict of YAML-safe values (tuples become lists)."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, Mapping):
            return {str(k): plain(x) for k, x in v.items()}
        if isinstance(v, Path):
            return str(v)
        return v

    if not (dataclasses.is_dataclass(cfg) and not isinstance(cfg, type)):
        raise TypeError(f"to_dict expects a dataclass instance, got {type(cfg).__name__}")
    return plain(cfg)


def save_yaml(cfg: Any, path: str | Path) -> Path:
    """Write a dataclass config to ``path`` as YAML."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    return path


def load_yaml(cls: type[T], path: str | Path) -> T:
    """Read a YAML file into dataclass ``cls`` (strict: unknown keys raise, naming the file)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}") from None
    try:
        return from_dict(cls, data or {})
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def replace(cfg: T, **changes: Any) -> T:
    """``dataclasses.replace`` with the strict key check and a clear error."""
    check_keys(type(cfg), changes.keys())
    return dataclasses.replace(cfg, **changes)
