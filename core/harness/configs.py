"""Experiment configs: strict dataclasses saved and loaded as YAML (no Lightning import here).

An experiment is one YAML file (see ``docs/harness.md``)::

    name: tiny-regression
    seed: 0
    output_dir: runs
    model: {name: my-model, kwargs: {hidden: 16}}
    data:  {name: my-data, kwargs: {batch_size: 32}}
    task:
      name: regression            # registered task class
      kwargs: {loss: mse}         # that task's own options (strict, see GatelabTask.Options)
      optimizer: adamw
      lr: 1.0e-3
      scheduler: {name: cosine, warmup: 1}
    trainer:
      max_epochs: 10
      early_stopping: {monitor: val/loss, patience: 3}

Unknown keys anywhere raise :class:`~gatelab.core.config.ConfigError` naming the key path
(``trainer.early_stoping``) and the closest valid key. Numbers written as YAML strings such as
``1e-3`` (YAML 1.1 reads them as text) are converted for float/int fields; anything else that
is not a number raises.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from gatelab.core.config import ConfigError, from_dict, load_yaml, save_yaml, to_dict

__all__ = [
    "CheckpointConfig",
    "ComponentConfig",
    "EarlyStoppingConfig",
    "ExperimentConfig",
    "SchedulerConfig",
    "TaskConfig",
    "TrainerConfig",
    "apply_overrides",
    "load_experiment",
]

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULERS = ("none", "cosine", "step", "exponential", "plateau")
LOGGERS = ("csv", "tensorboard")


def _kinds(tp: Any) -> set[Any]:
    """The member types of an annotation (``float | None`` -> ``{float, NoneType}``)."""
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        return {typing.get_origin(a) or a for a in typing.get_args(tp)}
    return {origin or tp}


def _coerce(obj: Any, owner: str) -> None:
    """Convert string values of numeric fields (YAML's ``1e-3``) and reject non-numbers there."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        kinds = _kinds(hints.get(f.name))
        numeric = kinds & {int, float}
        value = getattr(obj, f.name)
        path = f"{owner}.{f.name}" if owner else f.name
        if not numeric or value is None or isinstance(value, bool):
            continue
        if isinstance(value, str):
            try:
                num = float(value)
            except ValueError:
                if str in kinds:
                    continue  # e.g. devices: "auto"; the consumer validates
                raise ConfigError(f"{path}={value!r} is not a number") from None
            if int in numeric and num.is_integer() and (float not in numeric or "." not in value):
                num = int(num)
            object.__setattr__(obj, f.name, num)
        elif isinstance(value, int) and numeric == {float}:
            object.__setattr__(obj, f.name, float(value))
        elif not isinstance(value, (int, float)) and not (kinds - {int, float, type(None)}):
            raise ConfigError(f"{path}={value!r} is not a number")


def _choice(owner: str, key: str, value: Any, choices: Sequence[Any]) -> None:
    if value not in choices:
        raise ConfigError(f"{owner}.{key}={value!r} is not one of {list(choices)}")


# --------------------------------------------------------------------------- task


@dataclasses.dataclass
class SchedulerConfig:
    """Learning-rate schedule (``task.scheduler``; a bare string ``cosine`` means ``{name: cosine}``).

    ``name``:

    * ``none``: constant learning rate;
    * ``cosine``: ``CosineAnnealingLR(T_max=t_max, eta_min)``; ``t_max`` defaults to the number
      of epochs (``interval: epoch``) or of optimizer steps (``interval: step``) after warm-up;
    * ``step``: ``StepLR(step_size, gamma)``;
    * ``exponential``: ``ExponentialLR(gamma)``;
    * ``plateau``: ``ReduceLROnPlateau(mode, factor, patience, min_lr)`` on ``task.monitor``.

    ``warmup`` > 0 prepends a linear warm-up from ``warmup_start_factor * lr`` to ``lr`` over
    ``warmup`` intervals (not with ``plateau``). ``interval`` is ``epoch`` or ``step``.
    """

    name: str = "none"
    interval: str = "epoch"
    frequency: int = 1
    t_max: int | None = None
    eta_min: float = 0.0
    step_size: int = 10
    gamma: float = 0.1
    factor: float = 0.1
    patience: int = 10
    mode: str = "min"
    min_lr: float = 0.0
    warmup: int = 0
    warmup_start_factor: float = 1e-3

    def __post_init__(self) -> None:
        _coerce(self, "task.scheduler")
        _choice("task.scheduler", "name", self.name, SCHEDULERS)
        _choice("task.scheduler", "interval", self.interval, ("epoch", "step"))
        _choice("task.scheduler", "mode", self.mode, ("min", "max"))
        if self.warmup < 0:
            raise ConfigError(f"task.scheduler.warmup={self.warmup} must be >= 0")
        if self.warmup and self.name == "plateau":
            raise ConfigError("task.scheduler.warmup is not supported with name=plateau")
        if not 0.0 < self.warmup_start_factor <= 1.0:
            raise ConfigError(
                f"task.scheduler.warmup_start_factor={self.warmup_start_factor} must be in (0, 1]"
            )


@dataclasses.dataclass
class TaskConfig:
    """The training task: which registered task class, its options, optimizer and schedule.

    ``name`` selects a task registered with
    :func:`gatelab.core.harness.experiment.register_task` (built in: ``regression``,
    ``classification``); ``kwargs`` are that task's own options, checked strictly against its
    ``Options`` dataclass. ``optimizer`` is ``adam`` (uses ``betas``, ``eps``), ``adamw`` (same,
    decoupled ``weight_decay``) or ``sgd`` (uses ``momentum``, ``nesterov``). ``monitor`` is the
    logged value the ``plateau`` scheduler watches.
    """

    name: str = "regression"
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    momentum: float = 0.9
    nesterov: bool = False
    scheduler: SchedulerConfig = dataclasses.field(default_factory=SchedulerConfig)
    monitor: str = "val/loss"

    def __post_init__(self) -> None:
        if isinstance(self.scheduler, str):
            self.scheduler = SchedulerConfig(name=self.scheduler)
        elif isinstance(self.scheduler, Mapping):
            self.scheduler = from_dict(SchedulerConfig, self.scheduler, "task.scheduler")
        if self.kwargs is None:
            self.kwargs = {}
        if not isinstance(self.kwargs, Mapping):
            raise ConfigError(f"task.kwargs must be a mapping, got {type(self.kwargs).__name__}")
        _coerce(self, "task")
        _choice("task", "optimizer", self.optimizer, OPTIMIZERS)
        betas = tuple(float(b) for b in self.betas)
        if len(betas) != 2:
            raise ConfigError(f"task.betas must have two values, got {list(self.betas)}")
        self.betas = betas  # type: ignore[assignment]
        if self.lr <= 0:
            raise ConfigError(f"task.lr={self.lr} must be > 0")


# --------------------------------------------------------------------------- trainer


@dataclasses.dataclass
class EarlyStoppingConfig:
    """``trainer.early_stopping``: stop when ``monitor`` has not improved by ``min_delta`` for
    ``patience`` validation checks (Lightning ``EarlyStopping``)."""

    monitor: str = "val/loss"
    mode: str = "min"
    patience: int = 3
    min_delta: float = 0.0
    check_finite: bool = True

    def __post_init__(self) -> None:
        _coerce(self, "trainer.early_stopping")
        _choice("trainer.early_stopping", "mode", self.mode, ("min", "max"))


@dataclasses.dataclass
class CheckpointConfig:
    """``trainer.checkpoint``: Lightning ``ModelCheckpoint`` in ``<run dir>/checkpoints``.

    Keeps the ``save_top_k`` best by ``monitor`` (``monitor: null`` keeps the latest) and
    ``last.ckpt`` when ``save_last``; ``enabled: false`` saves nothing.

    Resume cadence (see ``docs/harness.md``, "Resuming runs"): ``every_n_train_steps`` (an
    int >= 1) or ``train_time_interval`` (seconds, > 0; not both) additionally keep the latest
    mid-epoch checkpoint ``step-epoch=E-step=S.ckpt``, from which ``--resume auto`` continues
    bit-identically.
    """

    enabled: bool = True
    monitor: str | None = "val/loss"
    mode: str = "min"
    save_top_k: int = 1
    save_last: bool = True
    filename: str | None = None
    every_n_epochs: int | None = None
    every_n_train_steps: int | None = None
    train_time_interval: float | None = None

    def __post_init__(self) -> None:
        _coerce(self, "trainer.checkpoint")
        _choice("trainer.checkpoint", "mode", self.mode, ("min", "max"))
        for key in ("every_n_epochs", "every_n_train_steps"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ConfigError(f"trainer.checkpoint.{key}={value!r} must be an integer >= 1 (or null)")
        t = self.train_time_interval
        if t is not None and (isinstance(t, bool) or not isinstance(t, (int, float)) or not t > 0 or t == float("inf")):
            raise ConfigError(
                f"trainer.checkpoint.train_time_interval={t!r} must be a number of seconds > 0 (or null)"
            )
        if t is not None and self.every_n_train_steps is not None:
            raise ConfigError(
                f"trainer.checkpoint: every_n_train_steps={self.every_n_train_steps} and "
                f"train_time_interval={t} are mutually exclusive (Lightning); set one of them"
            )


@dataclasses.dataclass
class TrainerConfig:
    """Arguments of the Lightning ``Trainer`` built by :func:`~gatelab.core.harness.trainer.build_trainer`.

    Fields keep Lightning's names and meaning (``max_epochs``, ``accelerator``, ``devices``,
    ``strategy``, ``num_nodes``, ``precision``, ``limit_*_batches`` ...). Multi-GPU and
    multi-node runs use ``strategy: ddp`` with ``devices`` and ``num_nodes``. ``deterministic``
    is ``false``, ``true`` or ``"warn"`` (deterministic algorithms, warning instead of raising
    for ops without one). ``loggers`` lists ``csv`` and/or ``tensorboard``. ``log_dir`` is where
    logs and checkpoints go when the trainer is built on its own; experiments use their run
    directory.
    """

    max_epochs: int | None = 10
    max_steps: int = -1
    min_epochs: int | None = None
    max_time: str | int | float | dict[str, int | float] | None = None
    accelerator: str = "auto"
    devices: int | str | list[int] = "auto"
    strategy: str = "auto"
    num_nodes: int = 1
    precision: str | int | None = None
    gradient_clip_val: float | None = None
    gradient_clip_algorithm: str = "norm"
    accumulate_grad_batches: int = 1
    deterministic: bool | str = False
    benchmark: bool | None = None
    early_stopping: EarlyStoppingConfig | None = None
    checkpoint: CheckpointConfig = dataclasses.field(default_factory=CheckpointConfig)
    log_dir: str | None = None
    loggers: list[str] = dataclasses.field(default_factory=lambda: ["csv"])
    progress_bar: bool = True
    limit_train_batches: int | float | None = None
    limit_val_batches: int | float | None = None
    limit_test_batches: int | float | None = None
    limit_predict_batches: int | float | None = None
    val_check_interval: int | float | None = None
    check_val_every_n_epoch: int | None = 1
    num_sanity_val_steps: int | None = None
    log_every_n_steps: int = 50
    enable_model_summary: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.early_stopping, Mapping):
            self.early_stopping = from_dict(
                EarlyStoppingConfig, self.early_stopping, "trainer.early_stopping"
            )
        if isinstance(self.checkpoint, Mapping):
            self.checkpoint = from_dict(CheckpointConfig, self.checkpoint, "trainer.checkpoint")
        if self.checkpoint is None:
            self.checkpoint = CheckpointConfig(enabled=False)
        _coerce(self, "trainer")
        if isinstance(self.loggers, str):
            self.loggers = [self.loggers]
        self.loggers = list(self.loggers or [])
        for name in self.loggers:
            _choice("trainer", "loggers", name, LOGGERS)
        if self.deterministic not in (True, False, "warn"):
            raise ConfigError(f"trainer.deterministic={self.deterministic!r} must be true, false or 'warn'")
        _choice("trainer", "gradient_clip_algorithm", self.gradient_clip_algorithm, ("norm", "value"))
        _check_max_time(self.max_time)


_MAX_TIME_KEYS = ("days", "hours", "minutes", "seconds")


def _check_max_time(value: Any) -> None:
    """``trainer.max_time``: seconds (> 0), ``"DD:HH:MM:SS"`` or ``{days, hours, minutes, seconds}``
    (Lightning's ``Trainer(max_time=...)``; the budget spans resumes: the elapsed time is saved)."""
    key = "trainer.max_time"
    if value is None:
        return
    if isinstance(value, bool):
        raise ConfigError(f"{key}={value!r} must be seconds, 'DD:HH:MM:SS' or a mapping of {list(_MAX_TIME_KEYS)}")
    if isinstance(value, (int, float)):
        if not 0 < value < float("inf"):
            raise ConfigError(f"{key}={value!r} must be a number of seconds > 0")
        return
    if isinstance(value, str):
        parts = value.split(":")
        ok = len(parts) == 4 and all(p.strip().isdigit() for p in parts)
        if not ok or all(int(p) == 0 for p in parts):
            raise ConfigError(f"{key}={value!r} must be 'DD:HH:MM:SS' (non-negative integers, not all 0)")
        return
    if isinstance(value, Mapping):
        unknown = [k for k in value if k not in _MAX_TIME_KEYS]
        if unknown:
            raise ConfigError(f"{key}: unknown key {unknown[0]!r}; allowed {list(_MAX_TIME_KEYS)}")
        for k, v in value.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                raise ConfigError(f"{key}.{k}={v!r} must be a number >= 0")
        if not any(value.values()):
            raise ConfigError(f"{key}={dict(value)!r} must be > 0 in total")
        return
    raise ConfigError(f"{key}={value!r} must be seconds, 'DD:HH:MM:SS' or a mapping of {list(_MAX_TIME_KEYS)}")


def max_time_timedelta(value: Any) -> Any:
    """``trainer.max_time`` as Lightning takes it (``str``, or a ``timedelta`` for seconds/mappings)."""
    import datetime

    if value is None or isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return datetime.timedelta(**{k: float(v) for k, v in value.items()})
    return datetime.timedelta(seconds=float(value))


# --------------------------------------------------------------------------- experiment


@dataclasses.dataclass
class ComponentConfig:
    """A registered component by name plus its keyword arguments (``model:`` and ``data:``)."""

    name: str
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"component name must be a non-empty string, got {self.name!r}")
        if self.kwargs is None:
            self.kwargs = {}
        if not isinstance(self.kwargs, Mapping):
            raise ConfigError(f"{self.name}: kwargs must be a mapping, got {type(self.kwargs).__name__}")
        self.kwargs = dict(self.kwargs)


@dataclasses.dataclass
class ExperimentConfig:
    """One experiment: model + data + task + trainer, a seed and where runs go.

    ``model.name`` is a model registered with :func:`gatelab.core.registry.register_model` and
    ``model.kwargs`` its constructor arguments; ``data.name`` a data module registered with
    :func:`gatelab.core.harness.experiment.register_datamodule` and ``data.kwargs`` its factory's
    arguments. Runs are written to ``<output_dir>/<name>/seed<seed>/version_<n>``. ``test``:
    evaluate the best checkpoint on the test split after fitting (when the data module has one).
    """

    name: str
    model: ComponentConfig
    data: ComponentConfig
    task: TaskConfig = dataclasses.field(default_factory=TaskConfig)
    trainer: TrainerConfig = dataclasses.field(default_factory=TrainerConfig)
    seed: int = 0
    output_dir: str = "runs"
    test: bool = True

    def __post_init__(self) -> None:
        for key, cls in (("model", ComponentConfig), ("data", ComponentConfig)):
            value = getattr(self, key)
            if isinstance(value, str):
                setattr(self, key, ComponentConfig(name=value))
            elif isinstance(value, Mapping):
                setattr(self, key, from_dict(cls, value, key))
            elif not isinstance(value, ComponentConfig):
                raise ConfigError(f"{key}: expected a mapping {{name, kwargs}}, got {type(value).__name__}")
        if isinstance(self.task, Mapping):
            self.task = from_dict(TaskConfig, self.task, "task")
        if isinstance(self.trainer, Mapping):
            self.trainer = from_dict(TrainerConfig, self.trainer, "trainer")
        _coerce(self, "")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ConfigError(f"seed must be an integer, got {self.seed!r}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExperimentConfig:
        """Strict build from a mapping (unknown keys raise, naming the key path)."""
        return from_dict(cls, data)

    def to_dict(self) -> dict[str, Any]:
        """Plain YAML-safe dict."""
        return to_dict(self)

    def save(self, path: str | Path) -> Path:
        """Write as YAML."""
        return save_yaml(self, path)

    @classmethod
    def load(cls, path: str | Path, overrides: Sequence[str] = ()) -> ExperimentConfig:
        """Read a YAML file, apply ``key.sub=value`` overrides (see :func:`apply_overrides`)."""
        return load_experiment(path, overrides)


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` strings to a nested dict in place (and return it).

    ``value`` is parsed as YAML (``3`` -> int, ``1.0e-3`` -> float, ``[1, 2]`` -> list,
    ``null``, ``true``; anything else stays a string). Missing intermediate mappings are
    created; whether a key is valid is decided when the dataclasses are built, so a misspelt
    key raises :class:`ConfigError` there.
    """
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key.sub=value")
        path, raw = item.split("=", 1)
        keys = [k.strip() for k in path.strip().split(".")]
        if not all(keys):
            raise ConfigError(f"override {item!r}: empty key in {path!r}")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node: Any = data
        for i, k in enumerate(keys[:-1]):
            nxt = node.get(k)
            if nxt is None:
                nxt = node[k] = {}
            elif not isinstance(nxt, dict):
                raise ConfigError(f"override {item!r}: {'.'.join(keys[: i + 1])} is {nxt!r}, not a mapping")
            node = nxt
        node[keys[-1]] = value
    return data


def load_experiment(path: str | Path, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """Load an :class:`ExperimentConfig` from YAML, with ``key.sub=value`` overrides applied."""
    if not overrides:
        return load_yaml(ExperimentConfig, path)
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    apply_overrides(data, overrides)
    try:
        return from_dict(ExperimentConfig, data)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
