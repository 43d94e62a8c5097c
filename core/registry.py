"""One generic registry for everything gatelab looks up by name.

Five registries share the :class:`Registry` class: :data:`MODELS` (``create_model``),
:data:`DATAMODULES` and :data:`TASKS` (``data.name`` / ``task.name`` of experiment configs),
:data:`DATASETS` (:class:`~gatelab.core.harness.data.DatasetSpec`) and :data:`TABLES`
(:class:`~gatelab.core.harness.repro.ReproTable`). Every registry

* takes **lazy entries**: the target is a ``"package.module:attr"`` string imported on first use
  (``attr`` may be a dotted path; a mapping along the way is indexed by key), so declaring an
  entry imports nothing. A target ``"package.module"`` without ``:attr`` means "importing the
  module registers the object itself" (a ``register_table(...)`` call in that module);
* keeps **metadata** next to the target (for models: paper, gates, tiny config ...), readable
  without importing the target;
* has **open domains**: any lower-case identifier is a domain (``"timeseries"``, ``"mylab"``);
* answers an unknown name with one message built by :func:`gatelab.core.config.did_you_mean`;
* lists names as a sorted ``list[str]`` (``names()``); metadata comes from ``entry()`` /
  ``get()`` (and the ``*_info`` / ``get_*`` wrappers).

Where registrations come from: each built-in domain keeps all of its registrations in
``gatelab.<domain>.registry`` (``timeseries``, ``recsys``, ``vision``, ``multimodal``), imported
the first time a name is not found or a list is asked for (:func:`load_registrations`); then every
entry point of the group ``gatelab.plugins`` is loaded (a module that registers on import, or a
callable that is called), so a third-party package plugs in with, in its ``pyproject.toml``::

    [project.entry-points."gatelab.plugins"]
    mylab = "mylab.gatelab_registry"

This module imports neither torch nor any domain: ``import gatelab`` stays cheap, and
``create_model("gateformer")`` imports only Gateformer's own module.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
import sys
import threading
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .config import ConfigError, did_you_mean

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

__all__ = [
    "BUILTIN_DOMAINS",
    "DATAMODULES",
    "DATASETS",
    "MODELS",
    "PLUGIN_GROUP",
    "PREPARERS",
    "TABLES",
    "TASKS",
    "Entry",
    "ModelInfo",
    "Registry",
    "UnknownNameError",
    "create_model",
    "list_models",
    "load_registrations",
    "model_info",
    "register_model",
    "registered",
]

T = TypeVar("T")

#: domains shipped with gatelab; each keeps its registrations in ``gatelab.<domain>.registry``
BUILTIN_DOMAINS = ("timeseries", "recsys", "vision", "multimodal")
#: entry-point group of third-party registrations
PLUGIN_GROUP = "gatelab.plugins"

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")
_DOMAIN_RE = re.compile(r"[a-z][a-z0-9_]*")


class UnknownNameError(ConfigError, KeyError):
    """A name that no registry entry has (a :class:`ConfigError`, and a ``KeyError`` for lookups)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


# --------------------------------------------------------------------------- loading


_load_lock = threading.RLock()
_loaded = False
_loading = False


def load_registrations() -> None:
    """Import every built-in domain's ``registry`` module, then the ``gatelab.plugins`` entry points.

    Idempotent and cheap after the first call. A built-in domain that fails to import raises
    (that is a bug); a plugin that fails is reported with a :class:`RuntimeWarning` naming it and
    skipped, so one broken third-party package does not disable gatelab.
    """
    global _loaded, _loading
    if _loaded or _loading:
        return
    with _load_lock:
        if _loaded or _loading:
            return
        _loading = True
        try:
            for domain in BUILTIN_DOMAINS:
                importlib.import_module(f"gatelab.{domain}.registry")
            _load_plugins()
            _loaded = True
        finally:
            _loading = False


def _load_plugins() -> None:
    from importlib.metadata import entry_points

    for ep in entry_points(group=PLUGIN_GROUP):
        try:
            obj = ep.load()
            if callable(obj) and not inspect.ismodule(obj):
                obj()
        except Exception as e:  # reported, not fatal: see load_registrations
            warnings.warn(
                f"gatelab plugin {ep.name!r} ({ep.value}) failed to load: {type(e).__name__}: {e}",
                RuntimeWarning,
                stacklevel=3,
            )


# --------------------------------------------------------------------------- entries


def _module_initializing(module: str) -> bool:
    """Whether ``module`` is being imported right now (its top level is running)."""
    mod = sys.modules.get(module)
    return mod is not None and bool(getattr(getattr(mod, "__spec__", None), "_initializing", False))


def _walk(obj: Any, path: str, where: str) -> Any:
    for part in path.split("."):
        if isinstance(obj, Mapping):
            if part not in obj:
                raise AttributeError(f"{where}: key {part!r} not found{did_you_mean(part, obj)}")
            obj = obj[part]
        else:
            obj = getattr(obj, part)
    return obj


@dataclasses.dataclass(eq=False)
class Entry:
    """One registered name: its target (an object or a ``"module:attr"`` string), domain and metadata."""

    name: str
    target: Any
    domain: str
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)
    _obj: Any = dataclasses.field(default=None, repr=False)
    _resolved: bool = dataclasses.field(default=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.target, str):
            self._obj, self._resolved = self.target, True

    @property
    def lazy(self) -> bool:
        """True while the target is a string that has not been imported yet."""
        return not self._resolved

    @property
    def module(self) -> str | None:
        """The module a lazy target names (``None`` for an object registered directly)."""
        return self.target.partition(":")[0] if isinstance(self.target, str) else None


class Registry(Generic[T]):
    """Named entries of one kind (models, data modules, ...), with lazy targets and metadata.

    Args:
        kind: what an entry is, for messages (``"data module"``).
        key: the config key naming an entry, for messages (``"data.name"``); ``None`` for none.
        error: exception class raised for an unknown name (called with the message).
        check: ``check(name, obj)`` validates a resolved target (raise ``TypeError`` / ``ValueError``).
        same: ``same(old, new)`` says whether re-registering ``new`` over ``old`` is harmless
            (default: identity or equality).
        hint: appended to the unknown-name message (``"see `gatelab list`"``).
    """

    def __init__(
        self,
        kind: str,
        *,
        key: str | None = None,
        error: Callable[[str], Exception] = UnknownNameError,
        check: Callable[[str, Any], None] | None = None,
        same: Callable[[Any, Any], bool] | None = None,
        hint: str = "",
    ) -> None:
        self.kind = kind
        self.key = key
        self.error = error
        self.check = check
        self.same = same or (lambda a, b: a is b or a == b)
        self.hint = hint
        self._entries: dict[str, Entry] = {}

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self._entries)} entries)"

    def __contains__(self, name: object) -> bool:
        """Whether ``name`` is registered *now* (does not load the domains)."""
        return name in self._entries

    # ------------------------------------------------------------------ registering

    def register(
        self, name: str, target: Any, *, domain: str = "core", replace: bool = False, **meta: Any
    ) -> Entry:
        """Register ``target`` (an object, or a ``"module:attr"`` / ``"module"`` string) as ``name``.

        Re-registering the same target is a no-op (metadata is refreshed). An object may take the
        place of a lazy entry naming the module that is registering it (a module that declares its
        own object, e.g. ``register_table(...)`` at import). Any other clash raises
        ``ValueError`` unless ``replace=True``.
        """
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
            raise ValueError(
                f"{self.kind} name {name!r}: use letters, digits and '-', '_', '.', '+' (no spaces)"
            )
        if not isinstance(domain, str) or not _DOMAIN_RE.fullmatch(domain):
            raise ValueError(
                f"{self.kind} {name!r}: domain {domain!r} must be a lower-case identifier (e.g. 'mylab')"
            )
        if isinstance(target, str) and not re.fullmatch(r"[\w.]+(:[\w.-]+)?", target):
            raise ValueError(f"{self.kind} {name!r}: lazy target {target!r} is not 'package.module:attr'")
        new = Entry(name, target, domain, dict(meta))
        old = self._entries.get(name)
        if old is None or replace:
            self._entries[name] = new
            return new
        if old.domain != domain:
            raise ValueError(
                f"{self.kind} {name!r} is already registered by domain {old.domain!r} "
                f"({self._describe(old)}); cannot register it for domain {domain!r}"
            )
        if isinstance(target, str):
            if old.target == target or self._declares(target, old):
                old.meta.update(meta)
                return old
        elif old.lazy:
            if _module_initializing(old.module or ""):  # the lazily named module registers itself
                old._obj, old._resolved = target, True
                old.meta.update(meta)
                return old
            if self.same(self._resolve(old), target):
                old.meta.update(meta)
                return old
        elif self.same(old._obj, target):
            old.meta.update(meta)
            return old
        raise ValueError(f"{self.kind} {name!r} is already registered ({self._describe(old)})")

    @staticmethod
    def _declares(target: str, old: Entry) -> bool:
        """Whether lazy ``target`` names the object ``old`` already holds (its module was imported first)."""
        if isinstance(old.target, str):
            return False
        mod, _, attr = target.partition(":")
        module = sys.modules.get(mod)
        if module is None:
            return False
        if not attr:  # "module": it registers itself, and it has been imported
            return True
        try:
            return _walk(module, attr, target) is old._obj
        except AttributeError:
            return False

    def unregister(self, name: str) -> None:
        """Remove ``name`` (tests and plugins re-registering; unknown names raise)."""
        if name not in self._entries:
            raise self._unknown(name)
        del self._entries[name]

    @staticmethod
    def _describe(entry: Entry) -> str:
        if isinstance(entry.target, str):
            return entry.target
        obj = entry._obj
        mod = getattr(obj, "__module__", None) or type(obj).__module__
        qual = getattr(obj, "__qualname__", None) or type(obj).__qualname__
        return f"{mod}:{qual}"

    # ------------------------------------------------------------------ looking up

    def _unknown(self, name: str) -> Exception:
        known = sorted(self._entries)
        where = f"{self.key}={name!r}: unknown {self.kind}" if self.key else f"unknown {self.kind} {name!r}"
        hint = f"; {self.hint}" if self.hint else ""
        return self.error(
            f"{where}{did_you_mean(name, known)}; registered: {', '.join(known) or 'none'}{hint}"
        )

    def entry(self, name: str) -> Entry:
        """The entry ``name`` (metadata, target not imported); loads the domains if it is unknown."""
        if name not in self._entries:
            load_registrations()
        try:
            return self._entries[name]
        except KeyError:
            raise self._unknown(name) from None

    def get(self, name: str) -> T:
        """The object registered as ``name``, importing a lazy target now."""
        return self._resolve(self.entry(name))

    def _resolve(self, entry: Entry) -> Any:
        if entry._resolved:
            return entry._obj
        mod_name, _, attr = entry.target.partition(":")
        what = f"{self.kind} {entry.name!r}"
        try:
            module = importlib.import_module(mod_name)
            obj = _walk(module, attr, f"{mod_name}:{attr}") if attr else None
        except (ImportError, AttributeError) as e:
            raise ImportError(
                f"{what}: cannot import its target {entry.target!r}: {type(e).__name__}: {e}"
            ) from e
        if entry._resolved:  # the module registered its object while being imported
            if attr and obj is not entry._obj:
                raise ValueError(
                    f"{what}: {entry.target!r} is not the object that {mod_name} registered under that name"
                )
            obj = entry._obj
        elif not attr:
            raise ImportError(f"{what}: importing {mod_name} did not register it")
        if self.check is not None:
            self.check(entry.name, obj)
        entry._obj, entry._resolved = obj, True
        return obj

    def names(self, domain: str | None = None, where: Callable[[Entry], bool] | None = None) -> list[str]:
        """Sorted names (after loading the domains), optionally of one domain / matching ``where``.

        An unknown ``domain`` raises :class:`ConfigError` naming the known ones.
        """
        load_registrations()
        if domain is not None:
            self._check_domain(domain)
        return sorted(
            n
            for n, e in self._entries.items()
            if (domain is None or e.domain == domain) and (where is None or where(e))
        )

    def _check_domain(self, domain: str) -> None:
        known = self.domains()
        if domain not in known:
            raise ConfigError(
                f"unknown domain {domain!r} for {self.kind}s{did_you_mean(domain, known)}; "
                f"domains: {', '.join(known) or 'none'}"
            )

    def domains(self) -> list[str]:
        """Sorted domains that have at least one entry (after loading the domains)."""
        load_registrations()
        return sorted({e.domain for e in self._entries.values()})

    def entries(self) -> dict[str, Entry]:
        """Every entry by name, sorted (after loading the domains; targets not imported)."""
        load_registrations()
        return dict(sorted(self._entries.items()))


# --------------------------------------------------------------------------- the five registries


def _check_datamodule(name: str, obj: Any) -> None:
    if not callable(obj):
        raise TypeError(f"data module {name!r}: the factory must be callable, got {type(obj).__name__}")


def _check_task(name: str, obj: Any) -> None:
    if not isinstance(obj, type):
        raise TypeError(f"task {name!r}: expected a GatelabTask subclass, got {type(obj).__name__}")


def _check_named(kind: str, cls_path: str) -> Callable[[str, Any], None]:
    def check(name: str, obj: Any) -> None:
        mod, _, cls_name = cls_path.partition(":")
        cls = getattr(importlib.import_module(mod), cls_name)
        if not isinstance(obj, cls):
            raise TypeError(f"{kind} {name!r}: expected a {cls_name}, got {type(obj).__name__}")
        if obj.name != name:
            raise ValueError(f"{kind} {name!r}: the registered {cls_name} is named {obj.name!r}")

    return check


def _dataset_error(message: str) -> Exception:
    from gatelab.core.harness.errors import DatasetNotFoundError

    return DatasetNotFoundError(message)


MODELS: Registry[Callable[..., nn.Module]] = Registry("model", hint="see `gatelab list`")
DATAMODULES: Registry[Callable[..., Any]] = Registry("data module", key="data.name", check=_check_datamodule)
TASKS: Registry[type] = Registry("task", key="task.name", check=_check_task)
DATASETS: Registry[Any] = Registry(
    "dataset", error=_dataset_error, check=_check_named("dataset", "gatelab.core.harness.data:DatasetSpec")
)
TABLES: Registry[Any] = Registry(
    "repro table",
    check=_check_named("repro table", "gatelab.core.harness.repro:ReproTable"),
    hint="see `gatelab repro --list`",
)

#: data-preparation commands (``gatelab prepare NAME``): ``main(argv) -> exit code`` of each
PREPARERS: Registry[Any] = Registry("data preparation", hint="see `gatelab prepare --list`")

TASKS.register("regression", "gatelab.core.harness.task:RegressionTask")
TASKS.register("classification", "gatelab.core.harness.task:ClassificationTask")


# --------------------------------------------------------------------------- models

ExampleInputs = Callable[[Any, int], tuple[tuple[Any, ...], dict[str, Any]]]


def _core_exports() -> Mapping[str, str]:
    from gatelab import core  # light: its names are lazy, _EXPORTS is a plain mapping

    return core._EXPORTS


def _resolve_ref(value: Any, what: str) -> Any:
    if isinstance(value, str):
        mod, _, attr = value.partition(":")
        if not attr:
            raise ValueError(f"{what}: {value!r} is not 'package.module:attr'")
        try:
            return _walk(importlib.import_module(mod), attr, value)
        except (ImportError, AttributeError) as e:
            raise ImportError(f"{what}: cannot import {value!r}: {type(e).__name__}: {e}") from e
    return value


class ModelInfo:
    """What the registry knows about one model variant.

    ``name``, ``domain``, ``paper``, ``gates``, ``description`` and ``tags`` are plain data;
    ``fn`` (the factory), ``tiny`` (keyword arguments of a small instance) and
    ``example_inputs`` (``fn(model, batch) -> (args, kwargs)``) import the model's module on
    first access when they were declared as ``"module:attr"`` strings.
    """

    def __init__(self, entry: Entry) -> None:
        self._entry = entry
        meta = entry.meta
        self.name: str = entry.name
        self.domain: str = entry.domain
        self.paper: str = meta.get("paper", "")
        self.gates: tuple[str, ...] = tuple(meta.get("gates", ()))
        self.tags: tuple[str, ...] = tuple(meta.get("tags", ()))

    def __repr__(self) -> str:
        return f"ModelInfo({self.name!r}, domain={self.domain!r}, gates={self.gates!r})"

    @property
    def target(self) -> Any:
        """The factory as registered (a ``"module:attr"`` string for lazy entries)."""
        return self._entry.target

    @property
    def fn(self) -> Callable[..., nn.Module]:
        """The factory (imported now for a lazy entry)."""
        return MODELS.get(self.name)

    @property
    def description(self) -> str:
        """One line for ``gatelab list``: as declared, else the factory docstring's first line."""
        return self._entry.meta.get("description") or (inspect.getdoc(self.fn) or "").split("\n")[0]

    @property
    def tiny(self) -> dict[str, Any]:
        """Keyword arguments of a small instance (a fresh dict; ``{}`` if none declared)."""
        value = _resolve_ref(self._entry.meta.get("tiny"), f"model {self.name!r} tiny")
        if callable(value):
            value = value()
        return dict(value or {})

    @property
    def example_inputs(self) -> ExampleInputs | None:
        """``fn(model, batch_size) -> (args, kwargs)`` for a forward call of the tiny model."""
        return _resolve_ref(self._entry.meta.get("example_inputs"), f"model {self.name!r} example_inputs")


def register_model(
    name: str,
    factory: Callable[..., nn.Module] | str | None = None,
    *,
    domain: str,
    paper: str,
    gates: Iterable[str],
    description: str = "",
    tiny: Mapping[str, Any] | Callable[[], Mapping[str, Any]] | str | None = None,
    example_inputs: ExampleInputs | str | None = None,
    tags: Iterable[str] = (),
    preset: str | None = None,
) -> Any:
    """Register a model factory under ``name``; without ``factory``, a decorator.

    Args:
        name: registry key (lower-case, ``-`` separated), unique across domains.
        factory: ``factory(**cfg) -> nn.Module``, or ``"package.module:attr"`` imported by
            :func:`create_model` only (declaring it imports nothing).
        domain: any lower-case identifier: ``"timeseries"``, or a third-party ``"mylab"``.
        paper: citation of the paper the model follows.
        gates: names of the :mod:`gatelab.core` gate classes the model is assembled from
            (checked against ``gatelab.core``'s exports without importing torch).
        description: one line for ``gatelab list``; defaults to the factory docstring's first line.
        tiny: keyword arguments of a small instance for the generic model test: a mapping, a
            callable returning one, or a ``"module:attr"`` naming either.
        example_inputs: ``fn(model, batch_size) -> (args, kwargs)`` for a forward call of the tiny
            model, or its ``"module:attr"``.
        tags: free labels (``"baseline"`` marks a model without gates).
        preset: for a model class with a ``config_class``, the named preset of that config
            :func:`create_model` starts from (``"maxim-3s"`` -> ``MaximConfig.presets["S-3"]``).

    Returns:
        The registered entry when ``factory`` is given, else a decorator returning the function.
    """
    gates = tuple(gates)
    exports = _core_exports()
    unknown = [g for g in gates if g not in exports]
    if unknown:
        hints = "".join(did_you_mean(g, exports) for g in unknown)
        raise ValueError(f"register_model({name!r}): {unknown} are not gatelab.core exports{hints}")
    if not isinstance(paper, str) or not paper:
        raise ValueError(f"register_model({name!r}): paper must be a non-empty citation")
    meta = dict(
        preset=preset,
        paper=paper,
        gates=gates,
        description=description,
        tiny=tiny,
        example_inputs=example_inputs,
        tags=tuple(tags),
    )
    if factory is not None:
        return MODELS.register(name, factory, domain=domain, **meta)
    if not _DOMAIN_RE.fullmatch(str(domain)):  # fail at the decorator line, not at decoration
        raise ValueError(f"model {name!r}: domain {domain!r} must be a lower-case identifier (e.g. 'mylab')")

    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        MODELS.register(name, fn, domain=domain, **meta)
        return fn

    return deco


def model_info(name: str) -> ModelInfo:
    """Metadata of registered model ``name`` (:class:`UnknownNameError`, a ``KeyError``, if unknown)."""
    return ModelInfo(MODELS.entry(name))


def create_model(
    name: str, preset: str | None = None, checkpoint_path: str | None = None, **cfg: Any
) -> nn.Module:
    """Build registered model ``name`` with keyword config ``cfg`` (unknown keys raise :class:`ConfigError`).

    A model class with a ``config_class`` (a :class:`~gatelab.core.config.ModelConfig`) is
    built from its config filled from ``preset`` (default: the preset the registry entry
    names, else the config's defaults) and the ``cfg`` overrides. ``checkpoint_path`` loads
    weights strictly, as timm's ``create_model`` does (a ``save_pretrained`` folder, a
    ``.safetensors`` file or a gatelab task's checkpoint: :func:`gatelab.core.weights.load_weights`).
    Imports only the model's own module (and what it imports).
    """
    fn = MODELS.get(name)
    config_class = getattr(fn, "config_class", None)
    if preset is None:
        preset = MODELS.entry(name).meta.get("preset")
    if preset is not None and not (isinstance(config_class, type) and hasattr(config_class, "from_preset")):
        raise ConfigError(f"model {name!r} has no presets (preset={preset!r})")
    try:
        model = fn(config_class.from_preset(preset, **cfg)) if preset is not None else fn(**cfg)
    except (TypeError, ValueError) as e:
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(_constructor_error(name, cfg, e)) from None
    if hasattr(model, "state_dict"):  # an nn.Module (torch is not imported here)
        model.registry_name = name  # what gatelab.core.pretrained.save_pretrained records
    if checkpoint_path is not None:
        from gatelab.core.weights import load_weights

        load_weights(model, checkpoint_path)
    return model


def _constructor_error(name: str, cfg: dict[str, Any], e: Exception) -> str:
    """One line for a ``ValueError``/``TypeError`` of a model constructor, naming the key it
    mentions (``model.kwargs.d_model=0: ...``) when there is one."""
    import re

    msg = " ".join(str(e).split()) or type(e).__name__
    for key in sorted(cfg, key=len, reverse=True):
        if re.search(rf"(?<![\w.]){re.escape(key)}(?!\w)", msg):
            return f"model {name!r}: model.kwargs.{key}={cfg[key]!r}: {msg}"
    return f"create_model({name!r}): {msg}"


def list_models(domain: str | None = None, gate: str | None = None, tag: str | None = None) -> list[str]:
    """Sorted names of registered models, optionally of one domain, using one core gate, with one tag."""
    return MODELS.names(
        domain,
        where=lambda e: (
            (gate is None or gate in e.meta.get("gates", ()))
            and (tag is None or tag in e.meta.get("tags", ()))
        ),
    )


def registered() -> dict[str, ModelInfo]:
    """Every registered model by name (after loading the domains; no model module is imported)."""
    return {name: ModelInfo(e) for name, e in MODELS.entries().items()}
