"""Load-time checks of an experiment against what is registered (before any data is read).

:func:`~gatelab.core.harness.configs.load_experiment` checks every harness section on its own
(types, ranges, choices; no torch). :func:`validate_experiment` adds what needs the registered
components, still without building a model or reading data. It reads them from source first
(:mod:`gatelab.core.harness.schema`: no torch, no Lightning, well under a second on a cold
start), and imports a component only once every static check has passed, for what its source
does not settle (see :func:`validate_experiment`). The checks:

* ``model.kwargs`` against the registered model factory's signature and type hints; a factory
  that only takes ``**cfg`` is described by its return annotation's class ``__init__``
  (:func:`signature_params`). Ranges come from annotations such as
  :data:`gatelab.core.config.PositiveInt` on the model classes' ``__init__``;
* ``data.kwargs`` against the data-module factory's signature (``data_dir`` is supplied by the
  harness);
* ``task.kwargs`` against the task's ``Options`` dataclass, then the monitor keys
  (``trainer.early_stopping.monitor``, ``trainer.checkpoint.monitor``, ``task.monitor``)
  against the names the task logs (statically: every name in its ``logged_metrics``; after
  import: :meth:`GatelabTask.logged_names` for these options);
* ``trainer.accelerator`` / ``trainer.strategy`` against Lightning's registered names,
  ``trainer.extra`` against ``lightning.Trainer.__init__`` and every ``trainer.callbacks``
  entry: its class found, a Lightning ``Callback``, its ``init_args`` checked against its
  ``__init__``;
* a checkpoint to evaluate or resume from, as a file (:func:`check_checkpoint_file`).

Values given as YAML number strings (``1e-3``) are converted in place in the config; nothing
else is changed. Every failure is one :class:`~gatelab.core.config.ConfigError` line naming the
key path, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import io
import os
import pickle
import typing
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from gatelab.core.config import ConfigError, check_keys, did_you_mean, validate_kwargs, yaml_load

from . import schema
from .configs import ExperimentConfig

__all__ = [
    "CheckpointFileError",
    "check_checkpoint_file",
    "import_callback",
    "signature_params",
    "validate_experiment",
]

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


_Deferred = list[Callable[[], None]]


def _static_component(
    entry: Any,
    get: Callable[[], Any],
    kwargs: dict[str, Any],
    where: str,
    owner: str,
    deferred: _Deferred,
    skip: tuple[str, ...] = (),
) -> None:
    """Check ``kwargs`` against registry ``entry`` read from source (:mod:`.schema`): names, and
    the values whose annotation the reader resolved. A value for a parameter whose annotation
    names something heavy (a torch class), or a target the reader cannot read, is checked by
    the import path afterwards (appended to ``deferred``)."""
    if not entry.lazy:  # registered as an object: already imported
        _check_component(get(), kwargs, where, owner, skip)
        return
    try:
        found = schema.read_params(entry.target, skip)
    except schema.StaticReadError:
        deferred.append(lambda: _check_component(get(), kwargs, where, owner, skip))
        return
    static = {n: (Any if n in found.unresolved else t) for n, t in found.params.items()}
    kwargs.update(validate_kwargs(static, kwargs, where, owner=owner, open_ended=found.open_ended))
    later = [k for k in kwargs if k in found.unresolved or (found.open_ended and k not in found.params)]
    if later:

        def check_rest() -> None:
            params, open_ended = signature_params(get(), skip)
            rest = {k: kwargs[k] for k in later}
            kwargs.update(validate_kwargs(params, rest, where, owner=owner, open_ended=open_ended))

        deferred.append(check_rest)


def _monitor_keys(cfg: ExperimentConfig) -> list[tuple[str, str]]:
    keys = []
    if cfg.trainer.early_stopping is not None:
        keys.append(("trainer.early_stopping.monitor", cfg.trainer.early_stopping.monitor))
    if cfg.trainer.checkpoint.enabled and cfg.trainer.checkpoint.monitor is not None:
        keys.append(("trainer.checkpoint.monitor", cfg.trainer.checkpoint.monitor))
    keys.append(("task.monitor", cfg.task.monitor))
    return keys


def _check_monitors(cfg: ExperimentConfig, task_cls: Any, options: Any) -> None:
    logged = task_cls.logged_names(options)
    if logged is None:
        return
    _check_logged(cfg, logged)


def _check_logged(cfg: ExperimentConfig, logged: list[str]) -> None:
    for key, name in _monitor_keys(cfg):
        if name not in logged:
            raise ConfigError(
                f"{key}={name!r}: task {cfg.task.name!r} does not log it{did_you_mean(name, logged)}; "
                f"expected one of {', '.join(logged)}"
            )


def _static_task(cfg: ExperimentConfig, entry: Any, deferred: _Deferred) -> None:
    """``task.kwargs`` against the task's ``Options`` read from source, and the monitor keys
    against every name the task may log (its ``logged_metrics`` declaration); the exact checks
    (``Options.__post_init__``, the names for these options) are deferred to the import path."""
    from gatelab.core.registry import TASKS

    def exact() -> None:
        from .task import build_options

        task_cls = TASKS.get(cfg.task.name)
        options = build_options(task_cls.Options, cfg.task.kwargs)
        _check_monitors(cfg, task_cls, options)

    if not entry.lazy:
        exact()
        return
    deferred.append(exact)
    try:
        found = schema.read_options(entry.target)
    except schema.StaticReadError:
        return
    static = {n: (Any if n in found.unresolved else t) for n, t in found.params.items()}
    owner = found.origin.rpartition(":")[2]
    # unknown keys: the message build_options (from_dict) gives
    check_keys(dataclasses.make_dataclass(owner, [(n, Any) for n in static]), cfg.task.kwargs, "task.kwargs")
    cfg.task.kwargs.update(validate_kwargs(static, cfg.task.kwargs, "task.kwargs", owner=owner))
    try:
        metrics = schema.read_class_attr(entry.target, "logged_metrics")
        extra = schema.read_class_attr(entry.target, "extra_logged")
    except (schema.StaticReadError, KeyError):
        return
    if metrics is None:
        return
    base = ["loss", *metrics, *extra]
    logged = [*dict.fromkeys(f"{stage}/{n}" for stage in ("val", "train") for n in base)]
    _check_logged(cfg, [*logged, "train/loss_step", "train/loss_epoch"])


#: Lightning's registered accelerator and strategy names (``AcceleratorRegistry`` /
#: ``StrategyRegistry`` of the pinned Lightning; tests/core/harness/test_schema.py keeps them
#: equal), so that a name is checked without importing Lightning (seconds)
_KNOWN_ACCELERATORS = ("auto", "gpu", "cpu", "cuda", "mps", "tpu")
_KNOWN_STRATEGIES = (
    "auto",
    "ddp",
    "ddp_spawn",
    "ddp_fork",
    "ddp_notebook",
    "ddp_find_unused_parameters_false",
    "ddp_find_unused_parameters_true",
    "ddp_spawn_find_unused_parameters_false",
    "ddp_spawn_find_unused_parameters_true",
    "ddp_fork_find_unused_parameters_false",
    "ddp_fork_find_unused_parameters_true",
    "ddp_notebook_find_unused_parameters_false",
    "ddp_notebook_find_unused_parameters_true",
    "deepspeed",
    "deepspeed_stage_1",
    "deepspeed_stage_2",
    "deepspeed_stage_2_offload",
    "deepspeed_stage_3",
    "deepspeed_stage_3_offload",
    "deepspeed_stage_3_offload_nvme",
    "fsdp",
    "fsdp_cpu_offload",
    "single_device",
    "single_xla",
    "xla_debug",
    "xla",
    "single_tpu",
)


def _check_lightning_names(cfg: ExperimentConfig) -> None:
    for key, value, known in (
        ("trainer.accelerator", cfg.trainer.accelerator, _KNOWN_ACCELERATORS),
        ("trainer.strategy", cfg.trainer.strategy, _KNOWN_STRATEGIES),
    ):
        if value not in known:
            what = key.rpartition(".")[2]
            raise ConfigError(
                f"{key}={value!r}: unknown {what}{did_you_mean(value, known)}; expected one of {', '.join(known)}"
            )


#: where Lightning defines ``Trainer`` (``lightning.Trainer`` re-exports it), read statically
_TRAINER = "lightning.pytorch.trainer.trainer:Trainer"
_CALLBACK = "lightning.pytorch.callbacks.callback:Callback"


def _check_owned(cfg: ExperimentConfig) -> None:
    for key, value in cfg.trainer.extra.items():
        if key in _TRAINER_OWNED:
            raise ConfigError(
                f"trainer.extra.{key}={value!r}: gatelab sets this Trainer argument; use {_TRAINER_OWNED[key]}"
            )


def _static_extra(cfg: ExperimentConfig, deferred: _Deferred) -> None:
    """``trainer.extra`` against ``Trainer.__init__`` read from Lightning's installed source."""
    if not cfg.trainer.extra:
        return
    _check_owned(cfg)
    entry = _LazyEntry(_TRAINER)

    def get() -> Any:
        import lightning as L

        return L.Trainer

    _static_component(
        entry,
        get,
        cfg.trainer.extra,
        "trainer.extra",
        "lightning.Trainer",
        deferred,
        skip=tuple(_TRAINER_OWNED),
    )


@dataclasses.dataclass(frozen=True)
class _LazyEntry:
    """A ``"module:attr"`` read like a lazy registry entry (Trainer, callbacks)."""

    target: str
    lazy: bool = True


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


def _static_callbacks(cfg: ExperimentConfig, deferred: _Deferred) -> None:
    """Each ``trainer.callbacks`` entry resolved in source: the module and the class exist, the
    class derives from Lightning's ``Callback``, its ``init_args`` fit its ``__init__``. What
    the source does not settle (a class made at run time, a module without source) is imported
    afterwards, as before."""
    for i, cb in enumerate(cfg.trainer.callbacks):
        where = f"trainer.callbacks[{i}]"
        module_name, _, attr = cb.class_path.rpartition(".")
        target = f"{module_name}:{attr}"

        def full(cb: Any = cb, where: str = where) -> None:
            cls = import_callback(cb.class_path, f"{where}.class_path")
            _check_component(cls, cb.init_args, f"{where}.init_args", cb.class_path)

        try:
            schema.find_source(module_name)
        except schema.Missing as e:
            raise ConfigError(
                f"{where}.class_path={cb.class_path!r}: cannot import module {module_name!r} ({e})"
            ) from None
        except schema.StaticReadError:
            deferred.append(full)
            continue
        try:
            schema.resolve(module_name, attr)
        except schema.Missing:
            try:
                names = schema.module_names(module_name)
            except schema.StaticReadError:
                deferred.append(full)
                continue
            raise ConfigError(
                f"{where}.class_path={cb.class_path!r}: module {module_name!r} has no attribute {attr!r}"
                f"{did_you_mean(attr, names)}"
            ) from None
        except schema.StaticReadError:
            deferred.append(full)
            continue
        try:
            derives = schema.is_subclass(target, _CALLBACK)
        except schema.StaticReadError:  # a base that cannot be followed: import it
            deferred.append(full)
            continue
        if not derives:
            raise ConfigError(
                f"{where}.class_path={cb.class_path!r}: expected a lightning.pytorch.callbacks.Callback subclass"
            )
        _static_component(
            _LazyEntry(target),
            lambda cb=cb, where=where: import_callback(cb.class_path, f"{where}.class_path"),
            cb.init_args,
            f"{where}.init_args",
            cb.class_path,
            deferred,
        )


# --------------------------------------------------------------------------- checkpoints


class CheckpointFileError(ConfigError):
    """A checkpoint file that cannot be the one asked for (the message names the file)."""


class _Stub(dict):
    """Whatever a checkpoint's pickle names (tensors, classes): never imported, never run."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def __setstate__(self, state: Any) -> None:
        pass

    def append(self, item: Any) -> None:
        pass

    def extend(self, items: Any) -> None:
        pass


_PLAIN_GLOBALS = {
    ("collections", "OrderedDict"): dict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
}


def _peek(archive: zipfile.ZipFile, pkl: str) -> dict[str, Any] | None:
    """The top-level mapping of a ``torch.save`` zip checkpoint, from its ``data.pkl`` with every
    global stubbed out (no torch, no code of the pickle runs); ``None`` when it cannot be read."""

    class Peek(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            return _PLAIN_GLOBALS.get((module, name), _Stub)

        def persistent_load(self, pid: Any) -> Any:
            return None

    try:
        with archive.open(pkl) as f:
            obj = Peek(io.BytesIO(f.read())).load()
    except Exception:  # not readable this way: torch reads it later and reports
        return None
    return obj if isinstance(obj, dict) and not isinstance(obj, _Stub) else None


def check_checkpoint_file(
    path: str | os.PathLike[str], cfg: ExperimentConfig, *, training: bool = False
) -> None:
    """What a checkpoint file says without torch: it exists, it is a complete ``torch.save``
    zip archive (a truncated file has no central directory), and the model and task it was
    trained with (its ``hyper_parameters``, else the run directory's ``config.yaml``) are the
    config's; ``training``: it holds the state a resume needs. Anything it cannot settle is
    left to the checkpoint load that follows (:func:`~gatelab.core.harness.resume.check_checkpoint`).

    Raises:
        ConfigError: one line naming the file and what is wrong.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointFileError(f"checkpoint not found: {path}")
    with open(path, "rb") as f:
        head = f.read(4)
    if not zipfile.is_zipfile(path):
        if head.startswith(b"PK"):
            raise CheckpointFileError(
                f"checkpoint {path}: not a readable checkpoint (truncated or corrupt zip archive)"
            )
        if head[:1] == b"\x80":  # a legacy (pre-zip) torch.save pickle: torch reads it later
            return
        what = "empty file" if not head else "not a torch.save file"
        raise CheckpointFileError(f"checkpoint {path}: not a readable checkpoint ({what})")
    try:
        with zipfile.ZipFile(path) as archive:
            pkls = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
            if len(pkls) != 1:
                raise CheckpointFileError(
                    f"checkpoint {path}: not a readable checkpoint (no data.pkl in the archive)"
                )
            top = _peek(archive, pkls[0])
    except (zipfile.BadZipFile, OSError) as e:
        raise CheckpointFileError(f"checkpoint {path}: not a readable checkpoint ({e})") from None
    model = task = None
    if top is not None:
        missing = [
            k for k in ("state_dict", "loops", "optimizer_states")[: 3 if training else 1] if k not in top
        ]
        if missing:
            raise CheckpointFileError(
                f"checkpoint {path}: not a Lightning training checkpoint (missing {', '.join(missing)})"
            )
    hp = top.get("hyper_parameters") if top is not None else None
    if isinstance(hp, dict):
        model = hp.get("model_name")
        task = (hp.get("task") or {}).get("name") if isinstance(hp.get("task"), dict) else None
    else:  # <run dir>/checkpoints/<file>: the run's saved config
        saved = path.parent.parent / "config.yaml"
        try:
            data = yaml_load(saved.read_text()) if saved.is_file() else None
        except Exception:  # an unreadable saved config settles nothing
            data = None
        if isinstance(data, dict):
            m, t = data.get("model"), data.get("task")
            model = m.get("name") if isinstance(m, dict) else m
            task = t.get("name") if isinstance(t, dict) else t
    if isinstance(model, str) and model != cfg.model.name:
        raise CheckpointFileError(
            f"checkpoint {path} holds model {model!r}, but the config names {cfg.model.name!r}"
        )
    if isinstance(task, str) and task != cfg.task.name:
        raise CheckpointFileError(
            f"checkpoint {path} was trained with task {task!r}, but the config names {cfg.task.name!r}"
        )


def validate_experiment(
    cfg: ExperimentConfig | Mapping[str, Any],
    *,
    checkpoint: str | os.PathLike[str] | None = None,
    resume: bool = False,
) -> ExperimentConfig:
    """Check ``cfg`` against the registered model, data module and task, and Lightning.

    Static checks first (:mod:`.schema` reads the registered components and Lightning from
    source: no torch, no Lightning), in config order; only when they all pass are the
    components imported for what source cannot settle (a ``__post_init__`` rule of the task's
    ``Options``, the exact names the task logs, an annotation naming a torch type, a factory
    built at run time). Builds nothing, reads no data. ``checkpoint`` (a path to evaluate, or
    to resume from with ``resume=True``) is checked as a file (:func:`check_checkpoint_file`).
    Returns the (possibly converted) config.

    Raises:
        ConfigError: the first problem, as one line naming the key path and value.
    """
    from gatelab.core.registry import DATAMODULES, MODELS, TASKS, model_info, registered

    if not isinstance(cfg, ExperimentConfig):
        cfg = ExperimentConfig.from_dict(cfg)
    deferred: _Deferred = []
    try:
        model_entry = MODELS.entry(cfg.model.name)
    except KeyError:
        models = registered()
        raise ConfigError(
            f"model.name={cfg.model.name!r}: unknown model{did_you_mean(cfg.model.name, models)}; "
            "see `gatelab list`"
        ) from None
    _static_component(
        model_entry,
        lambda: model_info(cfg.model.name).fn,
        cfg.model.kwargs,
        "model.kwargs",
        f"model {cfg.model.name!r}",
        deferred,
    )
    data_entry = DATAMODULES.entry(cfg.data.name)
    _static_component(
        data_entry,
        lambda: DATAMODULES.get(cfg.data.name),
        cfg.data.kwargs,
        "data.kwargs",
        f"data module {cfg.data.name!r}",
        deferred,
    )
    _static_task(cfg, TASKS.entry(cfg.task.name), deferred)
    _check_lightning_names(cfg)
    _static_extra(cfg, deferred)
    _static_callbacks(cfg, deferred)
    if checkpoint is not None:
        check_checkpoint_file(checkpoint, cfg, training=resume)
    for check in deferred:  # the import path, for what the source did not settle
        check()
    return cfg
