"""The Lightning training task every domain subclasses, plus two generic tasks.

:class:`GatelabTask` holds a registered model and a :class:`~.configs.TaskConfig`; it builds
the optimizer and the learning-rate schedule from the config, runs train/val/test steps through
one overridable :meth:`GatelabTask.shared_step`, logs ``<stage>/loss`` and the task's torchmetrics
(one ``MetricCollection`` per stage, prefixed ``train/``, ``val/``, ``test/``; synchronised across
DDP ranks), and saves its hyperparameters (model name, model kwargs, task config) so
``TaskClass.load_from_checkpoint(path)`` rebuilds the model for evaluation.

A domain task overrides what differs, usually only::

    class ForecastTask(GatelabTask):
        @dataclasses.dataclass
        class Options:                 # the task's own keys under task.kwargs (strict)
            quantiles: tuple[float, ...] = (0.1, 0.5, 0.9)

        def build_metrics(self):       # name -> torchmetrics.Metric
            return {"mse": MeanSquaredError(), "mae": MeanAbsoluteError()}

        def compute_loss(self, preds, target):
            return quantile_loss(preds, target, self.options.quantiles)

and registers it with :func:`gatelab.core.harness.experiment.register_task`.

This module imports Lightning; import it lazily (inside functions) from domain ``__init__``
modules so ``gatelab list`` stays fast.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import lightning as L
import torch
import torch.nn.functional as F
import torchmetrics
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from gatelab.core.config import ConfigError, from_dict, to_dict, validate_kwargs

from .configs import SchedulerConfig, TaskConfig
from .errors import NonFiniteLossError

__all__ = [
    "ClassificationTask",
    "GatelabTask",
    "LogLoss",
    "RegressionTask",
    "TaskConfig",
    "build_optimizer",
    "build_scheduler",
    "first_non_finite",
]

STAGES = ("train", "val", "test")


# --------------------------------------------------------------------------- optimizer / schedule


def _impl_kwargs(cfg: TaskConfig) -> dict[str, bool]:
    impl = cfg.optimizer_impl
    if impl == "auto":
        return {"fused": True} if cfg.optimizer in ("adam", "adamw") else {}
    if impl == "fused":
        return {"fused": True}
    if impl == "foreach":
        return {"foreach": True}
    if impl == "for-loop":
        return {"foreach": False}
    raise ConfigError(f"task.optimizer_impl={impl!r} is not one of auto, fused, foreach, for-loop")


def build_optimizer(params: Any, cfg: TaskConfig) -> Optimizer:
    """``torch.optim`` optimizer named by ``cfg.optimizer``.

    * ``adam``: ``Adam(lr, betas, eps, weight_decay)`` (L2 penalty added to the gradient);
    * ``adamw``: ``AdamW(lr, betas, eps, weight_decay)`` (decoupled weight decay, Loshchilov &
      Hutter 2019);
    * ``sgd``: ``SGD(lr, momentum, nesterov, weight_decay)``.

    Weight decay applies to every parameter given (no bias/norm exclusion).
    ``cfg.optimizer_impl`` chooses torch's implementation: ``auto`` = ``fused=True`` for Adam and
    AdamW (one kernel over every parameter; on a 300-tensor model 2.1 ms instead of 9.1 ms per
    update on one CPU thread), torch's default for SGD; ``fused`` / ``foreach`` / ``for-loop``
    force one.
    """
    impl = _impl_kwargs(cfg)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(
            params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay, **impl
        )
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(
            params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay, **impl
        )
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
            weight_decay=cfg.weight_decay, **impl,
        )  # fmt: skip
    raise ConfigError(f"task.optimizer={cfg.optimizer!r} is not one of adam, adamw, sgd")


def build_scheduler(
    optimizer: Optimizer, cfg: SchedulerConfig, total: int | None = None
) -> LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau | None:
    """Learning-rate scheduler for ``cfg`` (``None`` for ``name: none`` without warm-up).

    ``total`` is the length of training in ``cfg.interval`` units (epochs or optimizer steps),
    used as the cosine period ``T_max = total - warmup`` when ``cfg.t_max`` is not set. With
    ``warmup = w > 0`` the factor rises linearly from ``warmup_start_factor`` to 1 over ``w``
    intervals (``LinearLR``), then the main schedule starts (``SequentialLR``).
    """
    sch = torch.optim.lr_scheduler
    main: Any
    if cfg.name == "none":
        main = None
    elif cfg.name == "cosine":
        t_max = cfg.t_max
        if t_max is None:
            if total is None or total <= 0:
                raise ConfigError(
                    "task.scheduler.t_max is required for cosine when the training length is unknown "
                    "(set trainer.max_epochs or trainer.max_steps)"
                )
            t_max = total - cfg.warmup
        if t_max <= 0:
            raise ConfigError(
                f"task.scheduler: cosine period {t_max} <= 0 (warmup {cfg.warmup} >= length {total})"
            )
        main = sch.CosineAnnealingLR(optimizer, T_max=t_max, eta_min=cfg.eta_min)
    elif cfg.name == "step":
        main = sch.StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.gamma)
    elif cfg.name == "exponential":
        main = sch.ExponentialLR(optimizer, gamma=cfg.gamma)
    elif cfg.name == "plateau":
        return sch.ReduceLROnPlateau(
            optimizer, mode=cfg.mode, factor=cfg.factor, patience=cfg.patience, min_lr=cfg.min_lr
        )
    else:
        raise ConfigError(
            f"task.scheduler.name={cfg.name!r} is not one of none, cosine, step, exponential, plateau"
        )
    if cfg.warmup <= 0:
        return main
    warm = sch.LinearLR(
        optimizer, start_factor=cfg.warmup_start_factor, end_factor=1.0, total_iters=cfg.warmup
    )
    if main is None:
        return warm
    return sch.SequentialLR(optimizer, schedulers=[warm, main], milestones=[cfg.warmup])


# --------------------------------------------------------------------------- metrics


class LogLoss(torchmetrics.Metric):
    """Mean binary cross-entropy of probabilities (CTR "logloss").

    ``logloss = -1/N sum_i [y_i log p_i + (1 - y_i) log(1 - p_i)]`` with ``p`` clipped to
    ``[eps, 1 - eps]`` (``eps = 1e-7``, as sklearn's ``log_loss`` used by FuxiCTR).
    Inputs: probabilities ``p`` and targets ``y`` in {0, 1}, any equal shapes. Accumulates in
    float64; sums are reduced across DDP ranks.
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(self, eps: float = 1e-7, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.eps = eps
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        if preds.shape != target.shape:
            raise ValueError(
                f"LogLoss: preds shape {tuple(preds.shape)} != target shape {tuple(target.shape)}"
            )
        p = preds.double().clamp(self.eps, 1.0 - self.eps)
        y = target.double()
        self.total += -(y * torch.log(p) + (1.0 - y) * torch.log1p(-p)).sum()
        self.count += y.numel()

    def compute(self) -> torch.Tensor:
        return self.total / self.count


# --------------------------------------------------------------------------- the task


@dataclasses.dataclass
class NoOptions:
    """A task without options of its own: any ``task.kwargs`` key is an error."""


def build_options(options_cls: type, kwargs: Mapping[str, Any] | None) -> Any:
    """``task.kwargs`` -> the task's ``Options`` dataclass: names checked strictly (did-you-mean),
    values checked against the field annotations (pydantic, see :mod:`gatelab.core.config`)
    before the dataclass's own ``__post_init__`` checks run.

    Raises:
        ConfigError: ``task.kwargs.<key>=<value>: expected ...``.
    """
    kwargs = dict(kwargs or {})
    try:
        hints = typing.get_type_hints(options_cls, include_extras=True)
    except Exception:  # unresolvable annotations: names are still checked by from_dict
        hints = {}
    fields = {f.name: hints.get(f.name, Any) for f in dataclasses.fields(options_cls) if f.init}
    for key in kwargs:
        if key not in fields:  # from_dict names the key with its did-you-mean
            return from_dict(options_cls, kwargs, "task.kwargs")
    kwargs = validate_kwargs(fields, kwargs, "task.kwargs", owner=options_cls.__name__)
    return from_dict(options_cls, kwargs, "task.kwargs")


def first_non_finite(obj: Any, path: str = "batch") -> str | None:
    """``'batch["numeric"][3, 0] = nan'`` for the first NaN/inf entry of a floating tensor in
    ``obj`` (tensors, mappings, sequences, dataclasses walked in order), else ``None``."""
    if isinstance(obj, torch.Tensor):
        if not (obj.is_floating_point() or obj.is_complex()) or obj.numel() == 0:
            return None
        bad = ~torch.isfinite(obj.detach())
        if not bool(bad.any()):
            return None
        idx = tuple(int(i) for i in torch.nonzero(bad)[0].tolist())
        value = obj.detach()[idx].item()
        where = f"[{', '.join(map(str, idx))}]" if idx else ""
        return f"{path}{where} = {value} (shape {tuple(obj.shape)}, {int(bad.sum())} non-finite)"
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            found = first_non_finite(v, f"{path}[{k!r}]")
            if found:
                return found
    elif isinstance(obj, (tuple, list)):
        for i, v in enumerate(obj):
            found = first_non_finite(v, f"{path}[{i}]")
            if found:
                return found
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            found = first_non_finite(getattr(obj, f.name), f"{path}.{f.name}")
            if found:
                return found
    return None


def _batch_size(target: Any) -> int | None:
    if isinstance(target, torch.Tensor) and target.ndim > 0:
        return int(target.shape[0])
    return None


class GatelabTask(L.LightningModule):
    """Base Lightning task: model + optimizer/schedule from config + loss and metrics per stage.

    Args:
        model_name: registered model (``gatelab.core.registry``); rebuilt from it on
            ``load_from_checkpoint``.
        model_kwargs: constructor arguments of the model.
        task: a :class:`TaskConfig` or its dict (``task.kwargs`` is parsed strictly into the
            subclass's ``Options`` dataclass, available as ``self.options``).
        model: an already-built model (then ``model_name`` is only recorded); re-loading such a
            checkpoint needs ``load_from_checkpoint(path, model=...)``.

    Hyperparameters must stay plain values (numbers, strings, lists, dicts): evaluation loads
    checkpoints with ``torch.load(weights_only=True)``.

    Override points (all optional except a loss): :meth:`build_metrics`,
    :meth:`compute_loss`, :meth:`split_batch`, :meth:`metric_inputs`, :meth:`shared_step`.
    Batches are ``(inputs, target)`` by default; ``inputs`` may be a tensor, a tuple (positional
    arguments) or a mapping (keyword arguments) of the model's forward. Logged values:
    ``train/loss`` (per step and epoch), ``val/loss``, ``test/loss`` and ``<stage>/<metric>``
    per epoch, all reduced across DDP ranks.
    """

    Options: ClassVar[type] = NoOptions
    #: names the task logs per stage besides ``loss`` and its metrics (``{stage}/<name>``),
    #: for the load-time check of monitor keys
    extra_logged: ClassVar[tuple[str, ...]] = ()
    #: every metric name :meth:`build_metrics` may return under any options, as a literal tuple
    #: (read from source by the load-time monitor check, without importing the task);
    #: ``None``: not declared (the check then imports the task)
    logged_metrics: ClassVar[tuple[str, ...] | None] = None

    def __init__(
        self,
        model_name: str | None = None,
        model_kwargs: Mapping[str, Any] | None = None,
        task: TaskConfig | Mapping[str, Any] | None = None,
        model: nn.Module | None = None,
    ) -> None:
        super().__init__()
        cfg = task if isinstance(task, TaskConfig) else from_dict(TaskConfig, task or {}, "task")
        self.config = cfg
        self.options = build_options(self.Options, cfg.kwargs)
        self.save_hyperparameters(
            {"model_name": model_name, "model_kwargs": dict(model_kwargs or {}), "task": to_dict(cfg)}
        )
        if model is None:
            if model_name is None:
                raise ConfigError(f"{type(self).__name__}: give model_name (a registered model) or model")
            from gatelab.core.registry import create_model

            model = create_model(model_name, **dict(model_kwargs or {}))
        self.model = model
        metrics = self.build_metrics()
        collection = (
            metrics
            if isinstance(metrics, torchmetrics.MetricCollection)
            else torchmetrics.MetricCollection(dict(metrics))
        )
        self.train_metrics = collection.clone(prefix="train/")
        self.val_metrics = collection.clone(prefix="val/")
        self.test_metrics = collection.clone(prefix="test/")

    # ---- what the task logs (known before any model or data is built) -------------------------

    @classmethod
    def metric_names(cls, options: Any) -> list[str] | None:
        """Names of the metrics :meth:`build_metrics` returns for ``options``, without a model.

        The default calls ``build_metrics`` on a stand-in holding only ``options``; a task whose
        metrics depend on the model overrides this. ``None``: not knowable before the model is
        built (monitor keys are then not checked at load time).
        """
        stand_in = types.SimpleNamespace(options=options)
        try:
            metrics = cls.build_metrics(stand_in)  # type: ignore[arg-type]
        except Exception:  # the metrics need the model or data: unknown until then
            return None
        return [str(k) for k in metrics]

    @classmethod
    def logged_names(cls, options: Any) -> list[str] | None:
        """Every value a monitor may watch: ``train/`` and ``val/`` + ``loss``, the metric names
        and :attr:`extra_logged`, plus ``train/loss_step`` and ``train/loss_epoch``."""
        names = cls.metric_names(options)
        if names is None:
            return None
        base = ["loss", *names, *cls.extra_logged]
        out = [f"{stage}/{n}" for stage in ("val", "train") for n in base]
        return [*dict.fromkeys(out), "train/loss_step", "train/loss_epoch"]

    # ---- override points -------------------------------------------------------------------

    def build_metrics(self) -> Mapping[str, torchmetrics.Metric] | torchmetrics.MetricCollection:
        """Metrics by their ledger names (``{"mse": MeanSquaredError()}``); none by default."""
        return {}

    def compute_loss(self, preds: Any, target: Any) -> torch.Tensor:
        """Scalar training loss."""
        raise NotImplementedError(f"{type(self).__name__} must implement compute_loss() or shared_step()")

    def split_batch(self, batch: Any) -> tuple[Any, Any]:
        """``(inputs, target)`` from a batch: a pair, or a mapping with a ``"target"`` key
        (the remaining keys are the model's keyword arguments)."""
        if isinstance(batch, Mapping):
            if "target" not in batch:
                raise ValueError(f"batch mapping has no 'target' key (keys: {sorted(batch)})")
            return {k: v for k, v in batch.items() if k != "target"}, batch["target"]
        if isinstance(batch, (tuple, list)) and len(batch) == 2:
            return batch[0], batch[1]
        raise ValueError(
            f"{type(self).__name__}: expected a batch (inputs, target) or a mapping with 'target', "
            f"got {type(batch).__name__}{f' of length {len(batch)}' if isinstance(batch, (tuple, list)) else ''}; "
            "override split_batch() for other layouts"
        )

    def metric_inputs(self, preds: Any, target: Any) -> tuple[Any, Any]:
        """What the metrics' ``update(preds, target)`` receives (e.g. probabilities from logits)."""
        return preds, target

    def shared_step(self, batch: Any, stage: str) -> tuple[torch.Tensor, Any, Any]:
        """One train/val/test step: ``(loss, preds, target)``."""
        inputs, target = self.split_batch(batch)
        preds = self._call(inputs)
        return self.compute_loss(preds, target), preds, target

    # ---- Lightning hooks -------------------------------------------------------------------

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.model(*args, **kwargs)

    def _call(self, inputs: Any) -> Any:
        if isinstance(inputs, Mapping):
            return self(**inputs)
        if isinstance(inputs, (tuple, list)):
            return self(*inputs)
        return self(inputs)

    def metrics_for(self, stage: str) -> torchmetrics.MetricCollection:
        """The metric collection of ``stage`` (``train``, ``val`` or ``test``)."""
        return {"train": self.train_metrics, "val": self.val_metrics, "test": self.test_metrics}[stage]

    def check_finite_loss(self, loss: torch.Tensor, batch: Any, stage: str, batch_idx: int | None) -> None:
        """Raise :class:`~gatelab.core.harness.errors.NonFiniteLossError` when ``loss`` is NaN or
        infinite, naming the stage, global step, batch index and the first non-finite input.
        Called on every step (one device-to-host sync per step)."""
        if not isinstance(loss, torch.Tensor) or bool(torch.isfinite(loss.detach()).all()):
            return
        found = first_non_finite(batch)
        cause = (
            f"first non-finite input: {found}"
            if found
            else "every input is finite: the model or the loss diverged (lower the learning rate, "
            "clip gradients, or check the loss)"
        )
        raise NonFiniteLossError(
            f"{stage}: non-finite loss {loss.detach().float().flatten()[0].item()} at global step "
            f"{self.global_step}, epoch {self.current_epoch}, batch index {batch_idx}; {cause}"
        )

    def _step(self, batch: Any, stage: str, batch_idx: int | None = None) -> torch.Tensor:
        loss, preds, target = self.shared_step(batch, stage)
        self.check_finite_loss(loss, batch, stage, batch_idx)
        bs = _batch_size(target)
        self.log(
            f"{stage}/loss",
            loss,
            on_step=stage == "train",
            on_epoch=True,
            prog_bar=True,
            sync_dist=True,
            batch_size=bs,
        )
        metrics = self.metrics_for(stage)
        if len(metrics):
            p, t = self.metric_inputs(preds.detach() if isinstance(preds, torch.Tensor) else preds, target)
            metrics.update(p, t)
            self.log_dict(metrics, on_step=False, on_epoch=True, batch_size=bs)
        return loss

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train", batch_idx)

    def validation_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "val", batch_idx)

    def test_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "test", batch_idx)

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> Any:
        try:
            inputs, _ = self.split_batch(batch)
        except ValueError:
            inputs = batch
        return self._call(inputs)

    def _training_length(self) -> int | None:
        """Length of training in scheduler intervals (epochs or optimizer steps), if known."""
        trainer = self._trainer
        if trainer is None:
            return None
        if self.config.scheduler.interval == "step":
            total = trainer.estimated_stepping_batches
            return int(total) if math.isfinite(total) else None
        if trainer.max_epochs is not None and trainer.max_epochs > 0:
            return int(trainer.max_epochs)
        return None

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store the data module's ``preprocessing()`` (what the model needs to run on new data:
        encoders, scalers, vocabularies, normalisation) under ``checkpoint["gatelab_preprocessing"]``,
        so ``gatelab export`` writes it next to the weights. Subclasses that override this call
        ``super().on_save_checkpoint(checkpoint)``."""
        trainer = self._trainer
        dm = getattr(trainer, "datamodule", None) if trainer is not None else None
        prep = getattr(dm, "preprocessing", None)
        if callable(prep):
            value = prep()
            if value is not None:
                checkpoint["gatelab_preprocessing"] = value

    def configure_model(self) -> None:
        """Compile the model once when ``task.compile`` asks for it (Lightning calls this hook
        at the start of every fit/validate/test/predict; later calls do nothing).

        ``nn.Module.compile`` compiles ``self.model``'s forward in place: the module, its
        parameter names and its state dict stay as in eager mode (no ``_orig_mod.`` prefix), so
        checkpoints, resume and ``save_pretrained`` are unaffected. ``true`` means ``"default"``.
        """
        mode = self.config.compile
        if mode is False or getattr(self, "_compiled_mode", None) is not None:
            return
        mode = "default" if mode is True else mode
        self.model.compile(mode=mode)
        self._compiled_mode = mode

    def configure_optimizers(self) -> Any:
        params = [p for p in self.parameters() if p.requires_grad]
        optimizer = build_optimizer(params, self.config)
        sched_cfg = self.config.scheduler
        total = self._training_length() if sched_cfg.name == "cosine" and sched_cfg.t_max is None else None
        scheduler = build_scheduler(optimizer, sched_cfg, total)
        if scheduler is None:
            return optimizer
        lr_scheduler: dict[str, Any] = {
            "scheduler": scheduler,
            "interval": sched_cfg.interval,
            "frequency": sched_cfg.frequency,
        }
        if sched_cfg.name == "plateau":
            lr_scheduler["monitor"] = self.config.monitor
        return {"optimizer": optimizer, "lr_scheduler": lr_scheduler}


# --------------------------------------------------------------------------- generic tasks


@dataclasses.dataclass
class RegressionOptions:
    """``task.kwargs`` of :class:`RegressionTask`.

    ``loss``: ``mse``, ``mae``, ``huber`` (``huber_delta``) or ``smooth_l1`` (``beta = huber_delta``).
    """

    loss: Literal["mse", "mae", "huber", "smooth_l1"] = "mse"
    huber_delta: float = 1.0

    def __post_init__(self) -> None:
        if self.loss not in ("mse", "mae", "huber", "smooth_l1"):
            raise ConfigError(f"task.kwargs.loss={self.loss!r} is not one of mse, mae, huber, smooth_l1")


class RegressionTask(GatelabTask):
    """Point regression/forecasting: ``loss(preds, target)`` on equal shapes; metrics mse, mae.

    ``mse = mean((y_hat - y)^2)``, ``mae = mean(|y_hat - y|)`` over all elements. Shapes of
    ``preds`` and ``target`` must match exactly (no silent broadcasting).

    A mapping batch may carry ``"target_observed"`` (bool, the target's shape: the availability
    mask of a missing-data policy): it is not a model input, and the loss and the metrics are
    taken over the observed target elements only.
    """

    Options = RegressionOptions
    logged_metrics = ("mse", "mae")
    target_mask_key = "target_observed"

    def split_batch(self, batch: Any) -> tuple[Any, Any]:
        if isinstance(batch, Mapping) and self.target_mask_key in batch:
            batch = {k: v for k, v in batch.items() if k != self.target_mask_key}
        return super().split_batch(batch)

    def shared_step(self, batch: Any, stage: str) -> tuple[torch.Tensor, Any, Any]:
        mask = batch.get(self.target_mask_key) if isinstance(batch, Mapping) else None
        inputs, target = self.split_batch(batch)
        preds = self._call(inputs)
        if mask is None:
            return self.compute_loss(preds, target), preds, target
        if tuple(mask.shape) != tuple(target.shape):
            raise ValueError(
                f"{type(self).__name__}: {self.target_mask_key} shape {tuple(mask.shape)} != target shape {tuple(target.shape)}"
            )
        if preds.shape != target.shape:
            self.compute_loss(preds, target)  # raises, naming both shapes
        mask = mask.bool()
        if not bool(mask.any()):  # nothing observed in this batch: a zero loss that keeps the graph
            return (preds * 0.0).sum(), preds[mask], target[mask]
        return self.compute_loss(preds[mask], target[mask]), preds[mask], target[mask]

    def build_metrics(self) -> dict[str, torchmetrics.Metric]:
        return {"mse": torchmetrics.MeanSquaredError(), "mae": torchmetrics.MeanAbsoluteError()}

    def compute_loss(self, preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if preds.shape != target.shape:
            raise ValueError(
                f"{type(self).__name__}: prediction shape {tuple(preds.shape)} != target shape {tuple(target.shape)}"
            )
        o = self.options
        if o.loss == "mse":
            return F.mse_loss(preds, target)
        if o.loss == "mae":
            return F.l1_loss(preds, target)
        if o.loss == "huber":
            return F.huber_loss(preds, target, delta=o.huber_delta)
        return F.smooth_l1_loss(preds, target, beta=o.huber_delta)


@dataclasses.dataclass
class ClassificationOptions:
    """``task.kwargs`` of :class:`ClassificationTask`.

    ``mode``: ``binary`` (one logit per sample, ``[B]`` or ``[B, 1]``; targets in {0, 1}) or
    ``multiclass`` (logits ``[B, C]``; integer targets ``[B]``; needs ``num_classes``).
    ``label_smoothing`` applies to the multiclass cross-entropy.
    """

    mode: Literal["binary", "multiclass"] = "binary"
    num_classes: int | None = None
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        if self.mode not in ("binary", "multiclass"):
            raise ConfigError(f"task.kwargs.mode={self.mode!r} is not one of binary, multiclass")
        if self.mode == "multiclass" and (self.num_classes is None or self.num_classes < 2):
            raise ConfigError("task.kwargs.num_classes (>= 2) is required for mode=multiclass")


class ClassificationTask(GatelabTask):
    """Binary (CTR) or multiclass classification from logits.

    * binary: ``loss = BCEWithLogits(z, y)``; metrics ``auc`` (ROC AUC), ``logloss``
      (:class:`LogLoss`), ``accuracy`` (threshold 0.5) on ``p = sigmoid(z)``;
    * multiclass: ``loss = CrossEntropy(z, y)`` (optional label smoothing); metric ``accuracy``
      (micro, top-1).
    """

    Options = ClassificationOptions
    logged_metrics = ("auc", "logloss", "accuracy")

    def build_metrics(self) -> dict[str, torchmetrics.Metric]:
        o = self.options
        if o.mode == "binary":
            return {
                "auc": torchmetrics.classification.BinaryAUROC(),
                "logloss": LogLoss(),
                "accuracy": torchmetrics.classification.BinaryAccuracy(),
            }
        return {
            "accuracy": torchmetrics.classification.MulticlassAccuracy(
                num_classes=o.num_classes, average="micro"
            )
        }

    def _binary_logits(self, preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        z = preds.squeeze(-1) if preds.ndim == target.ndim + 1 and preds.shape[-1] == 1 else preds
        if z.shape != target.shape:
            raise ValueError(
                f"{type(self).__name__}(binary): logits shape {tuple(preds.shape)} does not match "
                f"target shape {tuple(target.shape)} (expected [B] or [B, 1] for target [B])"
            )
        return z

    def compute_loss(self, preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.options.mode == "binary":
            z = self._binary_logits(preds, target)
            return F.binary_cross_entropy_with_logits(z, target.to(z.dtype))
        if preds.ndim != 2 or preds.shape[-1] != self.options.num_classes:
            raise ValueError(
                f"{type(self).__name__}(multiclass): logits shape {tuple(preds.shape)}, expected [B, {self.options.num_classes}]"
            )
        return F.cross_entropy(preds, target.long(), label_smoothing=self.options.label_smoothing)

    def metric_inputs(self, preds: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.options.mode == "binary":
            z = self._binary_logits(preds, target)
            return torch.sigmoid(z.float()), target.long()
        return preds, target.long()
