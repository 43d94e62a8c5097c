"""Strict dataclass configs, saved and loaded as YAML, with typed and ranged values.

Every model, data module, task and experiment config is a dataclass. Building one from a
mapping rejects unknown keys with an error naming the key and the valid ones (FuxiCTR's
``**kwargs`` silently swallowed misspelt keys; we do not). Nested dataclass fields are built
recursively, so a whole experiment round-trips through one YAML file.

Values are checked with pydantic v2 (:func:`validate_value`, :func:`validate_fields`,
:func:`validate_kwargs`) against the type hints of the dataclass fields or of a function's
parameters. Ranges are written as reusable annotated types (:data:`PositiveInt`,
:data:`Dropout` ...), usable in any signature::

    def __init__(self, d_model: PositiveInt = 64, dropout: Dropout = 0.1) -> None: ...

Conversions are deliberately narrow: numbers written as YAML strings (``1e-3``; YAML 1.1 reads
it as text) become numbers, an integer becomes a float where a float is expected, a list
becomes a tuple where a tuple is expected. Booleans are booleans only (``yes``, ``1`` or
``"true"`` are errors), an integer field rejects ``1.5`` and ``true``.
"""

from __future__ import annotations

import collections.abc as abc
import dataclasses
import difflib
import math
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import BeforeValidator, ConfigDict, Field, Strict, TypeAdapter, ValidationError

T = TypeVar("T")

__all__ = [
    "Allowed",
    "Bool",
    "ConfigError",
    "ConfigLoader",
    "Dropout",
    "Float",
    "Int",
    "ModelConfig",
    "NonNegativeFloat",
    "NonNegativeInt",
    "PositiveFloat",
    "PositiveInt",
    "Probability",
    "UnitInterval",
    "check_keys",
    "did_you_mean",
    "from_dict",
    "load_yaml",
    "replace",
    "save_yaml",
    "to_dict",
    "validate_fields",
    "validate_kwargs",
    "validate_value",
    "yaml_load",
]


class ConfigError(ValueError):
    """A config key, value or file is wrong; the message names it."""


class ConfigLoader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 scalars: only ``true``/``false`` are booleans (YAML 1.1
    also reads ``yes``, ``no``, ``on``, ``off``, which then pass silently as flags) and ``1e-3`` is
    a float (YAML 1.1 needs a dot: ``1.0e-3``)."""


ConfigLoader.yaml_implicit_resolvers = {
    first: [r for r in resolvers if r[0] != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def yaml_load(text: str) -> Any:
    """Parse config YAML with :class:`ConfigLoader` (YAML 1.2 booleans and floats)."""
    return yaml.load(text, Loader=ConfigLoader)  # a SafeLoader subclass: no arbitrary objects


def did_you_mean(name: str, choices: typing.Iterable[str], n: int = 3) -> str:
    """`` (did you mean 'a', 'b'?)`` for the names in ``choices`` closest to ``name``, else ``""``.

    The one did-you-mean helper of gatelab: every "unknown key/name" message appends it.
    """
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=n)
    return f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""


# --------------------------------------------------------------------------- typed values


def _number_from_text(value: Any) -> Any:
    """``"1e-3"`` -> ``0.001``, ``"3"`` -> ``3`` (YAML 1.1 strings); anything else unchanged."""
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            num = float(text)
        except ValueError:
            return value
        return num if math.isfinite(num) else value
    return value


#: an integer (a numeric YAML string is read as one; ``true`` and ``1.5`` are errors)
Int = Annotated[int, Strict(), BeforeValidator(_number_from_text)]
#: a float (an integer or a numeric YAML string is accepted; ``true`` is an error)
Float = Annotated[float, Strict(), BeforeValidator(_number_from_text)]
#: ``true`` or ``false`` only
Bool = Annotated[bool, Strict()]


@dataclasses.dataclass(frozen=True)
class Allowed:
    """Annotation metadata: what a value may be, in words, for error messages.

    ``Annotated[int | str, Allowed("an integer >= 1 or 'auto'")]`` makes a bad value report
    ``key=value: expected an integer >= 1 or 'auto'`` instead of pydantic's per-branch text.
    """

    text: str


PositiveInt = Annotated[Int, Field(gt=0), Allowed("an integer >= 1")]
NonNegativeInt = Annotated[Int, Field(ge=0), Allowed("an integer >= 0")]
PositiveFloat = Annotated[Float, Field(gt=0), Allowed("a number > 0")]
NonNegativeFloat = Annotated[Float, Field(ge=0), Allowed("a number >= 0")]
#: a value in the closed interval [0, 1]
UnitInterval = Annotated[Float, Field(ge=0, le=1), Allowed("a number in [0, 1]")]
Probability = UnitInterval
#: a dropout rate: in [0, 1) (1 would zero every activation)
Dropout = Annotated[Float, Field(ge=0, lt=1), Allowed("a dropout rate in [0, 1)")]


_SCALARS = {int: Int, float: Float, bool: Bool}
_PLAIN = (str, type(None), Path, typing.Any)
_ADAPTERS: dict[Any, TypeAdapter[Any] | None] = {}
_ARBITRARY = ConfigDict(arbitrary_types_allowed=True)


def _strict(tp: Any) -> Any:
    """``tp`` with plain ``int``/``float``/``bool`` leaves replaced by :data:`Int`/:data:`Float`/
    :data:`Bool`, or ``None`` when ``tp`` holds a type a config value cannot be (a class, a
    callable ...): such parameters are checked for their name only."""
    if isinstance(tp, type) and tp in _SCALARS:
        return _SCALARS[tp]
    if tp in _PLAIN or tp is str:
        return tp
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        inner = _strict(args[0])
        return None if inner is None else typing.Annotated[(inner, *tp.__metadata__)]
    if origin is typing.Literal:
        return tp
    if origin is typing.Union or origin is types.UnionType:
        parts = [_strict(a) for a in args]
        return None if any(p is None for p in parts) else typing.Union[tuple(parts)]  # noqa: UP007
    if origin in (list, tuple, set, frozenset, dict, Sequence, Mapping, abc.Sequence, abc.Mapping):
        if not args:
            return origin
        parts = [a if a is Ellipsis else _strict(a) for a in args]
        if any(p is None for p in parts):
            return None
        return origin[tuple(parts)] if len(parts) > 1 else origin[parts[0]]
    if tp in (list, tuple, dict, set, abc.Sequence, abc.Mapping):
        return tp
    return None


def _adapter(tp: Any) -> TypeAdapter[Any] | None:
    try:
        return _ADAPTERS[tp]
    except KeyError:
        pass
    except TypeError:  # unhashable annotation
        return _build_adapter(tp)
    adapter = _build_adapter(tp)
    _ADAPTERS[tp] = adapter
    return adapter


def _build_adapter(tp: Any) -> TypeAdapter[Any] | None:
    strict = _strict(tp)
    if strict is None:
        return None
    try:
        return TypeAdapter(strict, config=_ARBITRARY)
    except Exception:  # an annotation pydantic cannot express: the key is still checked
        return None


def _allowed(tp: Any) -> str | None:
    """The :class:`Allowed` text of ``tp``; for a union, its members' texts joined by "or"
    (``PositiveInt | None`` -> ``an integer >= 1 or null``), if every member has one."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        for m in reversed(tp.__metadata__):  # the outermost annotation wins
            if isinstance(m, Allowed):
                return m.text
        return _allowed(typing.get_args(tp)[0])
    if origin is typing.Union or origin is types.UnionType:
        texts = ["null" if a is type(None) else _allowed(a) for a in typing.get_args(tp)]
        if all(texts):
            return " or ".join(typing.cast(list[str], texts))
    return None


def _explain(errors: list[dict[str, Any]]) -> tuple[str, str]:
    """``(location inside the value, what is allowed)`` from pydantic's error list."""
    first = errors[0]
    loc = [p for p in first.get("loc", ()) if isinstance(p, int)]
    where = "".join(f"[{i}]" for i in loc)
    msgs: list[str] = []
    ops = {"greater_than": "> {gt}", "greater_than_equal": ">= {ge}", "less_than": "< {lt}"}
    ops["less_than_equal"] = "<= {le}"
    words = {
        "bool_type": "a boolean (true or false)",
        "bool_parsing": "a boolean (true or false)",
        "int_type": "an integer",
        "int_parsing": "an integer",
        "int_from_float": "an integer",
        "float_type": "a number",
        "float_parsing": "a number",
        "string_type": "a string",
        "dict_type": "a mapping",
        "list_type": "a list",
        "tuple_type": "a list",
        "missing": "a value",
    }
    for e in errors:
        m = str(e.get("msg", "invalid value"))
        kind = e.get("type")
        if kind in words:
            m = words[kind]
        elif kind == "string_too_short":
            m = "a string of at least {min_length} character(s)".format(**e.get("ctx", {}))
        elif kind in ops:
            m = "a value " + ops[kind].format(**e.get("ctx", {}))
        m = m.removeprefix("Input should be ").removeprefix("Value error, ")
        if m not in msgs:
            msgs.append(m)
    return where, "expected " + " or ".join(msgs)


def validate_value(tp: Any, value: Any, key: str) -> Any:
    """Check ``value`` against annotation ``tp`` (strict booleans, numbers from YAML strings,
    ranges from ``Field(...)`` metadata) and return it converted.

    Raises:
        ConfigError: one line ``key=value: expected ...`` (``key[i]`` for an item of a list).
    """
    adapter = _adapter(tp)
    if adapter is None:
        return value
    try:
        return adapter.validate_python(value)
    except ValidationError as e:
        where, allowed = _explain(e.errors(include_url=False))
        text = _allowed(tp)
        if text is not None:
            allowed = f"expected {text}"
        shown = f"{key}={value!r}" + (f" (at {key}{where})" if where else "")
        raise ConfigError(f"{shown}: {allowed}") from None


def validate_fields(obj: Any, where: str = "", skip: typing.Iterable[str] = ()) -> None:
    """Validate (and convert in place) every field of dataclass instance ``obj`` against its
    annotation; nested dataclass fields and the names in ``skip`` are left to their owner."""
    hints = _field_types(type(obj))
    skipped = set(skip)
    for f in dataclasses.fields(obj):
        if f.name in skipped:
            continue
        tp = hints.get(f.name)
        if tp is None or _dataclass_in(tp) is not None:
            continue
        value = getattr(obj, f.name)
        new = validate_value(tp, value, f"{where}.{f.name}" if where else f.name)
        if new is not value:
            object.__setattr__(obj, f.name, new)


def validate_kwargs(
    params: Mapping[str, Any],
    kwargs: Mapping[str, Any],
    where: str,
    *,
    owner: str = "",
    open_ended: bool = False,
) -> dict[str, Any]:
    """Check keyword arguments against ``params`` (name -> annotation, ``Any`` = unchecked).

    Unknown names raise with the closest valid ones (unless ``open_ended``: the callee takes
    ``**kwargs`` of its own); values are checked with :func:`validate_value`. Returns the
    kwargs with YAML number strings converted (other values are returned as given).

    Raises:
        ConfigError: ``where.key=value: ...`` naming ``owner`` for unknown keys.
    """
    out = dict(kwargs)
    for key, value in kwargs.items():
        if key not in params:
            if open_ended:
                continue
            of = f" of {owner}" if owner else ""
            raise ConfigError(
                f"{where}.{key}={value!r}: unknown argument{of}{did_you_mean(key, params)}; "
                f"valid: {', '.join(params) or 'none'}"
            )
        new = validate_value(params[key], value, f"{where}.{key}")
        if isinstance(value, str) and not isinstance(new, str):
            out[key] = new
    return out


# --------------------------------------------------------------------------- dataclasses


def _field_types(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls, include_extras=True)
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
        hints = [f"{k!r}{did_you_mean(k, valid, n=1)}" for k in unknown]
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
    except ConfigError as e:  # a field check of cls naming the bare field: add the path
        msg = str(e)
        head = msg.split("=", 1)[0].split("[", 1)[0]
        if where and head.isidentifier() and head in kwargs:
            raise ConfigError(f"{where}.{msg}") from None
        raise


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
        data = yaml_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {' '.join(str(e).split())}") from None
    try:
        return from_dict(cls, data or {})
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def replace(cfg: T, **changes: Any) -> T:
    """``dataclasses.replace`` with the strict key check and a clear error."""
    check_keys(type(cfg), changes.keys())
    return dataclasses.replace(cfg, **changes)


# --------------------------------------------------------------------------- model configs


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """Base of every model's frozen ``<Model>Config`` dataclass, with named presets.

    A model module declares its hyper-parameters once, as typed and ranged fields of a frozen
    subclass (``d_model: PositiveInt = 64``, ``dropout: Dropout = 0.1``); the model's
    ``__init__(self, config=None, /, **overrides)`` takes the config (or keywords) through
    :meth:`build` and reads ``self.config``. Named presets are partial field mappings in the
    class variable ``presets`` (``{"etth1-96": {"d_model": 512, ...}}``); a registry entry may
    name one (``register_model(..., preset="S-3")``), and ``create_model(name, preset=...,
    **overrides)`` fills the config from it.

    Every field is checked against its annotation when the config is built (pydantic, via
    :func:`validate_fields`; a list becomes a tuple where a tuple is expected), then the
    cross-field rules of :meth:`check` run. Unknown keys, unknown presets and bad values raise
    :class:`ConfigError` as one line ``<Config>.<field>=<value>: <what is allowed>``.
    """

    presets: typing.ClassVar[Mapping[str, Mapping[str, Any]]] = {}

    def __post_init__(self) -> None:
        validate_fields(self, type(self).__name__)
        self.check()

    def check(self) -> None:
        """Cross-field rules (``d_model % num_heads == 0`` ...); raise :class:`ConfigError`."""

    @classmethod
    def field_names(cls) -> list[str]:
        """The config's keys, in declaration order."""
        return [f.name for f in dataclasses.fields(cls) if f.init]

    @classmethod
    def from_preset(cls: type[MC], preset: str | None = None, /, **overrides: Any) -> MC:
        """The config of named ``preset`` (``None``: the class defaults) with ``overrides``.

        Raises:
            ConfigError: unknown preset (listing the known ones), unknown key or bad value.
        """
        base: Mapping[str, Any] = {}
        if preset is not None:
            if preset not in cls.presets:
                raise ConfigError(
                    f"{cls.__name__}: unknown preset {preset!r}{did_you_mean(preset, cls.presets)}; "
                    f"presets: {', '.join(cls.presets) or 'none'}"
                )
            base = cls.presets[preset]
        return from_dict(cls, {**base, **overrides})

    @classmethod
    def build(cls: type[MC], config: MC | Mapping[str, Any] | None = None, /, **overrides: Any) -> MC:
        """A model constructor's one entry: a config instance, a mapping, or keywords (or a
        config plus keyword overrides). Strict: unknown keys raise :class:`ConfigError`."""
        if config is None:
            return cls.from_preset(None, **overrides)
        if isinstance(config, cls):
            return replace(config, **overrides) if overrides else config
        if isinstance(config, Mapping):
            return cls.from_preset(None, **{**config, **overrides})
        raise ConfigError(
            f"{cls.__name__}: expected a {cls.__name__}, a mapping or keywords, got {type(config).__name__}"
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain YAML/JSON-safe dict of every field (tuples as lists)."""
        return to_dict(self)


MC = TypeVar("MC", bound=ModelConfig)
