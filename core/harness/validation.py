"""Load-time checks of an experiment against what is registered (before any data is read).

:func:`~gatelab.core.harness.configs.load_experiment` checks every harness section on its own
(types, ranges, choices; no torch). :func:`validate_experiment` adds what needs the registered
components, still without building a model or reading data:

* ``model.kwargs`` against the registered model factory's signature and type hints; a factory
  that only takes ``**cfg`` is described by its return annotation's class ``__init__``
  (:func:`signature_params`). Ranges come from annotations such as
  :data:`gatelab.core.config.PositiveInt` on the model classes' ``__init__``;
* ``data.kwargs`` against the data-module factory's signature (``data_dir`` is supplied by the
  harness);
* ``task.kwargs`` against the task's ``Options`` dataclass, then the monitor keys
  (``trainer.early_stopping.monitor``, ``trainer.checkpoint.monitor``, ``task.monitor``)
  against the names the task logs (:meth:`GatelabTask.logged_names`);
* ``trainer.accelerator`` / ``trainer.strategy`` against Lightning's registries,
  ``trainer.extra`` against ``lightning.Trainer.__init__`` and every ``trainer.callbacks``
  entry: its class imported, a Lightning ``Callback``, its ``init_args`` checked against its
  ``__init__``.

Values given as YAML number strings (``1e-3``) are converted in place in the config; nothing
else is changed. Every failure is one :class:`~gatelab.core.config.ConfigError` line naming the
key path, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import typing
from collections.abc import Callable, Mapping
from typing import Any

from gatelab.core.config import ConfigError, did_you_mean, validate_kwargs

from .configs import ExperimentConfig

__all__ = ["signature_params", "validate_experiment"]

#: ``lightning.Trainer`` arguments gatelab builds itself, and the config key that sets them
_TRAINER_OWNED = {
    "logger": "trainer.loggers",
    "callbacks": "trainer.callbacks",
    "default_root_dir": "output_dir (the run directory)",
    "enable_checkpointing": "trainer.checkpoint.enabled",
    "enable_progress_bar": "trainer.progress_bar",
}
_KW = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def _hints(fn: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn, include_extras=True)
    except Exception:  # unresolvable forward references: names are still checked
        return {}


def signature_params(fn: Callable[..., Any], skip: tuple[str, ...] = ()) -> tuple[dict[str, Any], bool]:
    """``({name: annotation}, open_ended)`` for the keyword arguments ``fn`` accepts.

    A class is described by its ``__init__`` (without ``self``). A function whose only
    parameters are ``**kwargs`` is described by the class its return annotation names (the
    registry's ``def gateformer(**cfg) -> Gateformer: return Gateformer(**cfg)``), plus any
    named parameters of its own. A class whose ``__init__`` takes only ``**kwargs`` may name
    the dataclass those keywords are the fields of in a ``config_class`` attribute (MAXIM's
    ``MaximConfig``). ``open_ended`` is true when ``**kwargs`` still accepts any other name.
    Unannotated parameters map to ``Any`` (name checked, value not).
    """
    config_class = getattr(fn, "config_class", None) if isinstance(fn, type) else None
    if dataclasses.is_dataclass(config_class) and isinstance(config_class, type):
        hints = _hints(config_class)
        fields = dataclasses.fields(config_class)
        params = {f.name: hints.get(f.name, Any) for f in fields if f.init and f.name not in skip}
        presets = tuple(getattr(config_class, "presets", ()))
        if presets:  # create_model(name, preset=...): a ModelConfig's named presets
            params["preset"] = typing.Literal[presets]
        return params, False
    target = fn.__init__ if isinstance(fn, type) else fn
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):  # builtins without a signature: accept anything
        return {}, True
    hints = _hints(target)
    params: dict[str, Any] = {}
    var_kw = False
    for i, (name, p) in enumerate(sig.parameters.items()):
        if isinstance(fn, type) and i == 0 and name == "self":
            continue
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            var_kw = True
        elif p.kind in _KW and name not in skip:
            params[name] = hints.get(name, Any)
    if var_kw and not isinstance(fn, type):
        ret = _hints(fn).get("return")
        if isinstance(ret, type) and ret.__init__ is not object.__init__:
            inner, open_inner = signature_params(ret, skip)
            return {**inner, **params}, open_inner
    return params, var_kw


def _check_component(
    fn: Callable[..., Any], kwargs: dict[str, Any], where: str, owner: str, skip: tuple[str, ...] = ()
) -> None:
    params, open_ended = signature_params(fn, skip)
    kwargs.update(validate_kwargs(params, kwargs, where, owner=owner, open_ended=open_ended))


def _check_monitors(cfg: ExperimentConfig, task_cls: Any, options: Any) -> None:
    logged = task_cls.logged_names(options)
    if logged is None:
        return
    keys = []
    if cfg.trainer.early_stopping is not None:
        keys.append(("trainer.early_stopping.monitor", cfg.trainer.early_stopping.monitor))
    if cfg.trainer.checkpoint.enabled and cfg.trainer.checkpoint.monitor is not None:
        keys.append(("trainer.checkpoint.monitor", cfg.trainer.checkpoint.monitor))
    keys.append(("task.monitor", cfg.task.monitor))
    for key, name in keys:
        if name not in logged:
            raise ConfigError(
                f"{key}={name!r}: task {cfg.task.name!r} does not log it{did_you_mean(name, logged)}; "
                f"expected one of {', '.join(logged)}"
            )


#: names Lightning always accepts: no need to import it (seconds) to check them
_KNOWN_ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
_KNOWN_STRATEGIES = ("auto", "ddp", "ddp_spawn", "ddp_notebook", "fsdp", "single_device")


def _check_lightning_names(cfg: ExperimentConfig) -> None:
    if cfg.trainer.accelerator in _KNOWN_ACCELERATORS and cfg.trainer.strategy in _KNOWN_STRATEGIES:
        return
    from lightning.pytorch.accelerators import AcceleratorRegistry
    from lightning.pytorch.strategies import StrategyRegistry

    accelerators = ["auto", "gpu", *AcceleratorRegistry.available_accelerators()]
    if cfg.trainer.accelerator not in accelerators:
        raise ConfigError(
            f"trainer.accelerator={cfg.trainer.accelerator!r}: unknown accelerator"
            f"{did_you_mean(cfg.trainer.accelerator, accelerators)}; expected one of {', '.join(accelerators)}"
        )
    strategies = ["auto", *StrategyRegistry.available_strategies()]
    if cfg.trainer.strategy not in strategies:
        raise ConfigError(
            f"trainer.strategy={cfg.trainer.strategy!r}: unknown strategy"
            f"{did_you_mean(cfg.trainer.strategy, strategies)}; expected one of {', '.join(strategies)}"
        )


def _check_extra(cfg: ExperimentConfig) -> None:
    if not cfg.trainer.extra:
        return
    import lightning as L

    for key, value in cfg.trainer.extra.items():
        if key in _TRAINER_OWNED:
            raise ConfigError(
                f"trainer.extra.{key}={value!r}: gatelab sets this Trainer argument; use {_TRAINER_OWNED[key]}"
            )
    params, _ = signature_params(L.Trainer)
    for key in _TRAINER_OWNED:
        params.pop(key, None)
    cfg.trainer.extra.update(
        validate_kwargs(params, cfg.trainer.extra, "trainer.extra", owner="lightning.Trainer")
    )


def import_callback(class_path: str, where: str) -> type:
    """The Lightning ``Callback`` class named by dotted ``class_path`` (``ConfigError`` naming
    ``where`` when the module or the class is missing, or it is not a callback)."""
    from lightning.pytorch.callbacks import Callback

    module_name, _, attr = class_path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ConfigError(f"{where}={class_path!r}: cannot import module {module_name!r} ({e})") from None
    except Exception as e:  # a module that fails while importing: still one line
        raise ConfigError(
            f"{where}={class_path!r}: importing {module_name!r} failed: {type(e).__name__}: {e}"
        ) from None
    if not hasattr(module, attr):
        names = [n for n in dir(module) if not n.startswith("_")]
        raise ConfigError(
            f"{where}={class_path!r}: module {module_name!r} has no attribute {attr!r}{did_you_mean(attr, names)}"
        )
    cls = getattr(module, attr)
    if not (isinstance(cls, type) and issubclass(cls, Callback)):
        raise ConfigError(f"{where}={class_path!r}: expected a lightning.pytorch.callbacks.Callback subclass")
    return cls


def _check_callbacks(cfg: ExperimentConfig) -> None:
    for i, cb in enumerate(cfg.trainer.callbacks):
        where = f"trainer.callbacks[{i}]"
        cls = import_callback(cb.class_path, f"{where}.class_path")
        _check_component(cls, cb.init_args, f"{where}.init_args", cb.class_path)


def validate_experiment(cfg: ExperimentConfig | Mapping[str, Any]) -> ExperimentConfig:
    """Check ``cfg`` against the registered model, data module and task, and Lightning.

    Imports the registry (and so torch and the domains) and Lightning, builds nothing, reads
    no data. Returns the (possibly converted) config.

    Raises:
        ConfigError: the first problem, as one line naming the key path and value.
    """
    from gatelab.core.registry import DATAMODULES, TASKS, model_info, registered

    from .task import build_options

    if not isinstance(cfg, ExperimentConfig):
        cfg = ExperimentConfig.from_dict(cfg)
    try:
        info = model_info(cfg.model.name)
    except KeyError:
        models = registered()
        raise ConfigError(
            f"model.name={cfg.model.name!r}: unknown model{did_you_mean(cfg.model.name, models)}; "
            "see `gatelab list`"
        ) from None
    _check_component(info.fn, cfg.model.kwargs, "model.kwargs", f"model {cfg.model.name!r}")
    factory = DATAMODULES.get(cfg.data.name)
    _check_component(factory, cfg.data.kwargs, "data.kwargs", f"data module {cfg.data.name!r}")
    task_cls = TASKS.get(cfg.task.name)
    options = build_options(task_cls.Options, cfg.task.kwargs)
    _check_monitors(cfg, task_cls, options)
    _check_lightning_names(cfg)
    _check_extra(cfg)
    _check_callbacks(cfg)
    return cfg
