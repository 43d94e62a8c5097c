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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BeforeValidator, Field

from gatelab.core.config import (
    Allowed,
    Bool,
    ConfigError,
    Float,
    Int,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    UnitInterval,
    from_dict,
    save_yaml,
    to_dict,
    validate_fields,
    yaml_load,
)

__all__ = [
    "CallbackConfig",
    "CheckpointConfig",
    "ComponentConfig",
    "EarlyStoppingConfig",
    "ExperimentConfig",
    "SchedulerConfig",
    "TaskConfig",
    "TrainerConfig",
    "apply_overrides",
    "load_experiment",
    "merge_configs",
    "read_config_file",
]

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULERS = ("none", "cosine", "step", "exponential", "plateau")
LOGGERS = ("csv", "tensorboard")
#: Lightning's accepted ``precision`` values (``lightning.fabric.plugins.precision.precision._PRECISION_INPUT``)
PRECISIONS = (
    64, 32, 16, "64", "32", "16", "bf16", "transformer-engine", "transformer-engine-float16",
    "16-true", "16-mixed", "bf16-true", "bf16-mixed", "32-true", "64-true",
)  # fmt: skip

Optimizer = Literal[OPTIMIZERS]  # type: ignore[valid-type]
#: ``task.compile`` values besides ``false``/``true``: ``torch.compile`` modes (``true`` = ``"default"``)
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune-no-cudagraphs")
Compile = Annotated[
    Bool | Literal[COMPILE_MODES],  # type: ignore[valid-type]
    Allowed(f"false, true or a torch.compile mode {list(COMPILE_MODES)}"),
]
SchedulerName = Literal[SCHEDULERS]  # type: ignore[valid-type]
Mode = Literal["min", "max"]
Name = Annotated[str, Field(min_length=1), Allowed("a non-empty name")]
Monitor = Annotated[str, Field(min_length=1), Allowed("a logged metric name such as 'val/loss'")]
Beta = Annotated[Float, Field(ge=0, lt=1)]
#: Lightning's ``max_epochs``/``max_steps``: ``-1`` means no limit
Limit = Annotated[Int, Field(ge=-1), Allowed("an integer >= -1 (-1: no limit)")]
#: ``limit_*_batches``: a number of batches (int) or a fraction of them (float)
BatchLimit = Annotated[
    NonNegativeInt | UnitInterval | None,
    Allowed("an integer >= 0 (batches), a fraction in [0.0, 1.0] or null"),
]
Devices = Annotated[
    PositiveInt | Literal[-1, "auto"] | Annotated[list[NonNegativeInt], Field(min_length=1)],
    BeforeValidator(lambda v: _devices_from_text(v)),
    Allowed("an integer >= 1, -1 (all), 'auto' or a non-empty list of device indices"),
]
Precision = Annotated[
    Literal[PRECISIONS] | None,  # type: ignore[valid-type]
    Allowed(f"one of Lightning's precisions {list(PRECISIONS)} or null"),
]
CallbackPath = Annotated[
    str,
    Field(pattern=r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$"),
    Allowed("a dotted import path 'package.module.Class'"),
]


def _devices_from_text(value: Any) -> Any:
    """``"2"`` -> ``2``, ``"0,1"`` -> ``[0, 1]`` (Lightning's string forms); else unchanged."""
    if isinstance(value, str) and value.strip() not in ("auto", ""):
        parts = [p.strip() for p in value.split(",") if p.strip()]
        try:
            nums = [int(p) for p in parts]
        except ValueError:
            return value
        return nums[0] if len(nums) == 1 and "," not in value else nums
    return value


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

    name: SchedulerName = "none"
    interval: Literal["epoch", "step"] = "epoch"
    frequency: PositiveInt = 1
    t_max: PositiveInt | None = None
    eta_min: NonNegativeFloat = 0.0
    step_size: PositiveInt = 10
    gamma: Annotated[Float, Field(gt=0, le=1), Allowed("a decay factor in (0, 1]")] = 0.1
    factor: Annotated[Float, Field(gt=0, lt=1), Allowed("a reduction factor in (0, 1)")] = 0.1
    patience: NonNegativeInt = 10
    mode: Mode = "min"
    min_lr: NonNegativeFloat = 0.0
    warmup: NonNegativeInt = 0
    warmup_start_factor: Annotated[Float, Field(gt=0, le=1), Allowed("a factor in (0, 1]")] = 1e-3

    def __post_init__(self) -> None:
        validate_fields(self, "task.scheduler")
        if self.warmup and self.name == "plateau":
            raise ConfigError(
                f"task.scheduler.warmup={self.warmup}: expected 0 with name=plateau (warmup is not supported with plateau)"
            )


@dataclasses.dataclass
class TaskConfig:
    """The training task: which registered task class, its options, optimizer and schedule.

    ``name`` selects a task registered with
    :func:`gatelab.core.harness.experiment.register_task` (built in: ``regression``,
    ``classification``); ``kwargs`` are that task's own options, checked strictly against its
    ``Options`` dataclass. ``optimizer`` is ``adam`` (uses ``betas``, ``eps``), ``adamw`` (same,
    decoupled ``weight_decay``) or ``sgd`` (uses ``momentum``, ``nesterov``). ``monitor`` is the
    logged value the ``plateau`` scheduler watches. ``compile``: ``false`` (default) trains
    the eager model; ``true`` or a ``torch.compile`` mode (``"default"``, ``"reduce-overhead"``,
    ``"max-autotune-no-cudagraphs"``) compiles the task's model once, in place
    (``nn.Module.compile``: parameter names and saved state dicts are unchanged).
    ``optimizer_impl`` picks torch's implementation of the update: ``"auto"`` (default: the
    fused kernel for ``adam`` / ``adamw``, one pass over all parameters instead of a Python loop,
    several times faster on models with many small tensors; torch's own choice for ``sgd``),
    ``"fused"``, ``"foreach"`` or ``"for-loop"`` (torch's CPU default before gatelab chose
    ``fused``). The update is the same formula; results differ from the for-loop by float
    rounding (about 1e-7 relative per step).
    """

    name: Name = "regression"
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    optimizer: Optimizer = "adamw"
    lr: PositiveFloat = 1e-3
    weight_decay: NonNegativeFloat = 0.0
    betas: Annotated[tuple[Beta, Beta], Allowed("two numbers in [0, 1)")] = (0.9, 0.999)
    eps: PositiveFloat = 1e-8
    momentum: NonNegativeFloat = 0.9
    nesterov: Bool = False
    optimizer_impl: Literal["auto", "fused", "foreach", "for-loop"] = "auto"
    scheduler: SchedulerConfig = dataclasses.field(default_factory=SchedulerConfig)
    monitor: Monitor = "val/loss"
    compile: Compile = False

    def __post_init__(self) -> None:
        if isinstance(self.scheduler, str):
            self.scheduler = from_dict(SchedulerConfig, {"name": self.scheduler}, "task.scheduler")
        elif isinstance(self.scheduler, Mapping) or self.scheduler is None:
            self.scheduler = from_dict(SchedulerConfig, self.scheduler, "task.scheduler")
        elif not isinstance(self.scheduler, SchedulerConfig):
            raise ConfigError(
                f"task.scheduler={self.scheduler!r}: expected a scheduler name or a mapping {{name, ...}}"
            )
        if self.kwargs is None:
            self.kwargs = {}
        validate_fields(self, "task")


# --------------------------------------------------------------------------- trainer


@dataclasses.dataclass
class EarlyStoppingConfig:
    """``trainer.early_stopping``: stop when ``monitor`` has not improved by ``min_delta`` for
    ``patience`` validation checks (Lightning ``EarlyStopping``)."""

    monitor: Monitor = "val/loss"
    mode: Mode = "min"
    patience: NonNegativeInt = 3
    min_delta: NonNegativeFloat = 0.0
    check_finite: Bool = True

    def __post_init__(self) -> None:
        validate_fields(self, "trainer.early_stopping")


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

    enabled: Bool = True
    monitor: Monitor | None = "val/loss"
    mode: Mode = "min"
    save_top_k: Annotated[Int, Field(ge=-1), Allowed("an integer >= -1 (-1: keep all)")] = 1
    save_last: Bool = True
    filename: Annotated[str, Field(min_length=1)] | None = None
    every_n_epochs: PositiveInt | None = None
    every_n_train_steps: PositiveInt | None = None
    train_time_interval: Annotated[
        PositiveFloat, Field(allow_inf_nan=False), Allowed("a number of seconds > 0")
    ] | None = None

    def __post_init__(self) -> None:
        validate_fields(self, "trainer.checkpoint")
        t = self.train_time_interval
        if t is not None and self.every_n_train_steps is not None:
            raise ConfigError(
                f"trainer.checkpoint: every_n_train_steps={self.every_n_train_steps} and "
                f"train_time_interval={t} are mutually exclusive (Lightning); set one of them"
            )


@dataclasses.dataclass
class CallbackConfig:
    """One extra Lightning callback in ``trainer.callbacks``: ``{class_path, init_args}``.

    ``class_path`` is a dotted import path (``lightning.pytorch.callbacks.StochasticWeightAveraging``);
    ``init_args`` its keyword arguments. The import and the argument names are checked before
    any data is read (:func:`gatelab.core.harness.validation.validate_experiment`).
    """

    class_path: CallbackPath
    init_args: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.init_args is None:
            self.init_args = {}
        validate_fields(self, "")


@dataclasses.dataclass
class TrainerConfig:
    """Arguments of the Lightning ``Trainer`` built by :func:`~gatelab.core.harness.trainer.build_trainer`.

    Fields keep Lightning's names and meaning (``max_epochs``, ``accelerator``, ``devices``,
    ``strategy``, ``num_nodes``, ``precision``, ``limit_*_batches`` ...). Multi-GPU and
    multi-node runs use ``strategy: ddp`` with ``devices`` and ``num_nodes``. ``deterministic``
    is ``false``, ``true`` or ``"warn"`` (deterministic algorithms, warning instead of raising
    for ops without one). ``sync_batchnorm`` converts BatchNorm layers to ``SyncBatchNorm`` under
    DDP/FSDP (batch statistics over the global batch; GPU only in PyTorch). ``loggers`` lists ``csv`` and/or ``tensorboard``. ``log_dir`` is where
    logs and checkpoints go when the trainer is built on its own; experiments use their run
    directory.

    Any other ``lightning.Trainer`` argument goes in ``extra`` (``{sync_batchnorm: true,
    max_time: "00:01:00:00"}``; names checked against ``Trainer.__init__``), and further
    callbacks in ``callbacks`` (a list of ``{class_path, init_args}`` or bare class paths).
    """

    max_epochs: Limit | None = 10
    max_steps: Limit = -1
    min_epochs: NonNegativeInt | None = None
    max_time: Any = None  # seconds, "DD:HH:MM:SS" or {days, hours, minutes, seconds}: _check_max_time
    accelerator: Name = "auto"
    devices: Devices = "auto"
    strategy: Name = "auto"
    num_nodes: PositiveInt = 1
    precision: Precision = None
    gradient_clip_val: NonNegativeFloat | None = None
    gradient_clip_algorithm: Literal["norm", "value"] = "norm"
    accumulate_grad_batches: PositiveInt = 1
    deterministic: Annotated[Bool | Literal["warn"], Allowed("true, false or 'warn'")] = False
    benchmark: Bool | None = None
    early_stopping: EarlyStoppingConfig | None = None
    checkpoint: CheckpointConfig = dataclasses.field(default_factory=CheckpointConfig)
    log_dir: Annotated[str, Field(min_length=1)] | None = None
    loggers: Annotated[list[Literal[LOGGERS]], Allowed("a list of 'csv', 'tensorboard'")] = (
        dataclasses.field(default_factory=lambda: ["csv"])
    )
    progress_bar: Bool = True
    limit_train_batches: BatchLimit = None
    limit_val_batches: BatchLimit = None
    limit_test_batches: BatchLimit = None
    limit_predict_batches: BatchLimit = None
    val_check_interval: Annotated[
        PositiveInt | Annotated[Float, Field(gt=0, le=1)] | None,
        Allowed("an integer >= 1 (batches), a fraction in (0.0, 1.0] or null"),
    ] = None
    check_val_every_n_epoch: PositiveInt | None = 1
    num_sanity_val_steps: Limit | None = None
    log_every_n_steps: NonNegativeInt = 50
    enable_model_summary: Bool = True
    sync_batchnorm: Bool = False
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    callbacks: list[CallbackConfig] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        if isinstance(self.early_stopping, Mapping):
            self.early_stopping = from_dict(
                EarlyStoppingConfig, self.early_stopping, "trainer.early_stopping"
            )
        elif self.early_stopping is not None and not isinstance(self.early_stopping, EarlyStoppingConfig):
            raise ConfigError(
                f"trainer.early_stopping={self.early_stopping!r}: expected a mapping {{monitor, patience, ...}} or null"
            )
        if isinstance(self.checkpoint, Mapping):
            self.checkpoint = from_dict(CheckpointConfig, self.checkpoint, "trainer.checkpoint")
        if self.checkpoint is None:
            self.checkpoint = CheckpointConfig(enabled=False)
        elif not isinstance(self.checkpoint, CheckpointConfig):
            raise ConfigError(
                f"trainer.checkpoint={self.checkpoint!r}: expected a mapping {{monitor, save_top_k, ...}} or null"
            )
        if isinstance(self.loggers, str):
            self.loggers = [self.loggers]
        if self.loggers is None:
            self.loggers = []
        if self.extra is None:
            self.extra = {}
        if self.callbacks is None:
            self.callbacks = []
        if not isinstance(self.callbacks, (list, tuple)):
            raise ConfigError(
                f"trainer.callbacks={self.callbacks!r}: expected a list of {{class_path, init_args}}"
            )
        built = []
        for i, cb in enumerate(self.callbacks):
            where = f"trainer.callbacks[{i}]"
            if isinstance(cb, str):
                cb = {"class_path": cb}
            if isinstance(cb, Mapping):
                try:
                    cb = from_dict(CallbackConfig, cb, where)
                except ConfigError as e:
                    raise ConfigError(_prefixed(where, str(e))) from None
            elif not isinstance(cb, CallbackConfig):
                raise ConfigError(f"{where}={cb!r}: expected {{class_path, init_args}} or a class path")
            built.append(cb)
        self.callbacks = built
        validate_fields(self, "trainer", skip=("callbacks",))
        _check_max_time(self.max_time)
        owned = sorted(set(self.extra) & {f.name for f in dataclasses.fields(self)})
        if owned:
            raise ConfigError(
                f"trainer.extra.{owned[0]}={self.extra[owned[0]]!r}: expected it as trainer.{owned[0]} "
                "(extra holds only Trainer arguments TrainerConfig has no field for)"
            )


def _prefixed(where: str, message: str) -> str:
    """``where.`` in front of a message that starts with a bare ``key=`` (a component's own field)."""
    head = message.split("=", 1)[0]
    if "=" in message and head.isidentifier():
        return f"{where}.{message}"
    return message


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
    """A registered component by name plus its keyword arguments (``model:`` and ``data:``).

    ``kwargs`` are checked against the registered constructor's signature by
    :func:`gatelab.core.harness.validation.validate_experiment` (it needs the registry).
    """

    name: Name
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kwargs is None:
            self.kwargs = {}
        validate_fields(self, "")
        self.kwargs = dict(self.kwargs)


@dataclasses.dataclass
class ExperimentConfig:
    """One experiment: model + data + task + trainer, a seed and where runs go.

    ``model.name`` is a model registered with :func:`gatelab.core.registry.register_model` and
    ``model.kwargs`` its constructor arguments; ``data.name`` a data module registered with
    :func:`gatelab.core.harness.experiment.register_datamodule` and ``data.kwargs`` its factory's
    arguments. Runs are written to ``<output_dir>/<name>/seed<seed>/version_<n>``. ``test``:
    evaluate the best checkpoint on the test split after fitting (when the data module has one).
    ``seed`` is an integer in [0, 2**32 - 1] (NumPy's seed range).
    """

    name: Name
    model: ComponentConfig
    data: ComponentConfig
    task: TaskConfig = dataclasses.field(default_factory=TaskConfig)
    trainer: TrainerConfig = dataclasses.field(default_factory=TrainerConfig)
    seed: Annotated[Int, Field(ge=0, le=2**32 - 1), Allowed("an integer in [0, 2**32 - 1]")] = 0
    output_dir: Annotated[str, Field(min_length=1)] = "runs"
    test: Bool = True

    def __post_init__(self) -> None:
        for key, cls in (("model", ComponentConfig), ("data", ComponentConfig)):
            value = getattr(self, key)
            if isinstance(value, str):
                value = {"name": value}
            if isinstance(value, Mapping):
                try:
                    value = from_dict(cls, value, key)
                except ConfigError as e:
                    raise ConfigError(_prefixed(key, str(e))) from None
                setattr(self, key, value)
            elif not isinstance(value, ComponentConfig):
                raise ConfigError(f"{key}={value!r}: expected a name or a mapping {{name, kwargs}}")
        for key, cls in (("task", TaskConfig), ("trainer", TrainerConfig)):
            value = getattr(self, key)
            if isinstance(value, Mapping) or value is None:
                setattr(self, key, from_dict(cls, value, key))
            elif not isinstance(value, cls):
                raise ConfigError(f"{key}={value!r}: expected a mapping")
        validate_fields(self, "")

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


_SHORTHANDS = (("model",), ("data",), ("task", "scheduler"))


def _expand_shorthands(data: dict[str, Any]) -> dict[str, Any]:
    """``model: m`` -> ``model: {name: m}`` (also ``data``, ``task.scheduler``), so files merge."""
    for path in _SHORTHANDS:
        node: Any = data
        for k in path[:-1]:
            node = node.get(k) if isinstance(node, dict) else None
        if isinstance(node, dict) and isinstance(node.get(path[-1]), str):
            node[path[-1]] = {"name": node[path[-1]]}
    return data


def merge_configs(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge ``over`` into ``base`` (in place; returned): mappings merge key by key, any
    other value (scalars, lists) replaces the earlier one."""
    for key, value in over.items():
        old = base.get(key)
        if isinstance(old, dict) and isinstance(value, Mapping):
            merge_configs(old, value)
        else:
            base[key] = dict(value) if isinstance(value, Mapping) else value
    return base


def _yaml_error(path: Path, e: yaml.YAMLError) -> ConfigError:
    mark = getattr(e, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    return ConfigError(f"{path}: invalid YAML{where}: {problem}")


def read_config_file(path: str | Path) -> dict[str, Any]:
    """One YAML config file as a dict (shorthands expanded).

    Raises:
        ConfigError: missing file, invalid YAML (line and column), an empty file, or a top
            level that is not a mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read the config file: {e}") from None
    try:
        data = yaml_load(text)
    except yaml.YAMLError as e:
        raise _yaml_error(path, e) from None
    if data is None:
        raise ConfigError(f"{path}: the config file is empty (expected a mapping of config keys)")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    bad = [k for k in data if not isinstance(k, str)]
    if bad:
        raise ConfigError(f"{path}: config keys must be strings, got {bad[0]!r}")
    return _expand_shorthands(data)


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` strings to a nested dict in place (and return it).

    ``value`` is parsed as YAML (``3`` -> int, ``1.0e-3`` -> float, ``[1, 2]`` -> list,
    ``null``, ``true``; anything else stays a string). Missing intermediate mappings are
    created; whether a key is valid is decided when the dataclasses are built, so a misspelt
    key raises :class:`ConfigError` there.
    """
    _expand_shorthands(data)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key.sub=value")
        path, raw = item.split("=", 1)
        keys = [k.strip() for k in path.strip().split(".")]
        if not all(keys):
            raise ConfigError(f"override {item!r}: empty key in {path!r}")
        try:
            value = yaml_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw  # not YAML (e.g. "a: b: c"): the text itself, checked like any string
        node: Any = data
        for i, k in enumerate(keys[:-1]):
            nxt = node.get(k)
            if nxt is None:
                nxt = node[k] = {}
            elif not isinstance(nxt, dict):
                raise ConfigError(f"override {item!r}: {'.'.join(keys[: i + 1])} is {nxt!r}, not a mapping")
            node = nxt
        node[keys[-1]] = value
        _expand_shorthands(data)
    return data


def load_experiment(
    path: str | Path | Sequence[str | Path], overrides: Sequence[str] = ()
) -> ExperimentConfig:
    """Load an :class:`ExperimentConfig` from one or several YAML files, then ``key.sub=value``
    overrides.

    Several files merge in order (later wins; mappings merge key by key, see
    :func:`merge_configs`), then ``overrides`` apply. Every section's types and ranges are
    checked here (no torch, no registry); the registered components' kwargs and the monitors
    are checked by :func:`gatelab.core.harness.validation.validate_experiment`.

    Raises:
        ConfigError: one line naming the file(s), the key path, the value and what is allowed.
    """
    paths = [Path(path)] if isinstance(path, (str, Path)) else [Path(p) for p in path]
    if not paths:
        raise ConfigError("no config file given")
    data: dict[str, Any] = {}
    for p in paths:
        merge_configs(data, read_config_file(p))
    label = " + ".join(str(p) for p in paths)
    try:
        apply_overrides(data, overrides)
        return from_dict(ExperimentConfig, data)
    except ConfigError as e:
        raise ConfigError(f"{label}: {e}") from None
