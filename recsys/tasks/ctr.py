"""The CTR training task: binary cross-entropy + FuxiCTR's regularisers and learning-rate decay.

:class:`CTRTask` (registered as ``ctr``) is the harness's binary classification task with what
BARS/FuxiCTR training adds:

* ``embedding_regularizer`` / ``net_regularizer`` (FuxiCTR syntax: a float ``lam`` is L2, or
  ``"l2(lam)"``, ``"l1(lam)"``, ``"l1_l2(lam1, lam2)"``): the loss gains
  ``sum_{(p, lam)} lam / p * ||W||_p^p`` over all embedding parameters (every
  :class:`~gatelab.recsys.models.FieldEmbedding`: tables and numeric weights) and over all other
  parameters respectively -- FuxiCTR's ``BaseModel.regularization_loss``, on the whole tables
  each step;
* ``reduce_lr_on_plateau``: after each validation, if the monitored metric (``task.monitor``,
  ``monitor_mode``) did not improve by more than ``plateau_min_delta`` on its best value, every
  learning rate is multiplied by ``lr_decay_factor`` (floored at ``min_lr``) -- FuxiCTR's
  ``checkpoint_and_earlystop`` + ``lr_decay``. Pair it with the trainer's early stopping on the
  same metric (BARS: patience 2) and ``gradient_clip_val: 10`` (FuxiCTR's ``max_gradient_norm``).

Metrics: ``auc`` (torchmetrics ``BinaryAUROC``) and ``logloss`` (:class:`LogLoss`, eps 1e-7) on
``sigmoid(logit)``; ``train/loss`` is the BCE plus the regularisers (``train/bce`` without).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import torch
import torch.nn.functional as F
import torchmetrics

from gatelab.core.config import ConfigError
from gatelab.core.harness.task import GatelabTask, LogLoss

__all__ = ["CTROptions", "CTRTask", "parse_regularizer"]


def parse_regularizer(value: float | int | str | None, key: str = "regularizer") -> list[tuple[int, float]]:
    """FuxiCTR's regulariser syntax -> ``[(p, lam), ...]`` (``0``/``None`` -> ``[]``)."""
    if value is None:
        return []
    if isinstance(value, bool):
        raise ConfigError(
            f"task.kwargs.{key}: expected a number or 'l1(x)', 'l2(x)', 'l1_l2(x, y)', got {value!r}"
        )
    if isinstance(value, (int, float)):
        if value < 0:
            raise ConfigError(f"task.kwargs.{key}: must be >= 0, got {value}")
        return [(2, float(value))] if value > 0 else []
    text = str(value).strip().replace(" ", "")
    try:
        return parse_regularizer(float(text), key)
    except ValueError:
        pass
    m = re.fullmatch(r"(l1|l2)\(([^(),]+)\)", text)
    if m:
        return [(int(m.group(1)[1]), float(m.group(2)))]
    m = re.fullmatch(r"l1_l2\(([^(),]+),([^(),]+)\)", text)
    if m:
        return [(1, float(m.group(1))), (2, float(m.group(2)))]
    raise ConfigError(f"task.kwargs.{key}={value!r}: expected a number or 'l1(x)', 'l2(x)', 'l1_l2(x, y)'")


@dataclasses.dataclass
class CTROptions:
    """``task.kwargs`` of :class:`CTRTask` (see the module docstring)."""

    embedding_regularizer: float | str | None = 0.0
    net_regularizer: float | str | None = 0.0
    reduce_lr_on_plateau: bool = True
    lr_decay_factor: float = 0.1
    min_lr: float = 1e-6
    plateau_min_delta: float = 1e-6
    monitor_mode: str = "max"
    train_metrics: bool = False

    def __post_init__(self) -> None:
        self.emb_reg = parse_regularizer(self.embedding_regularizer, "embedding_regularizer")
        self.net_reg = parse_regularizer(self.net_regularizer, "net_regularizer")
        if self.monitor_mode not in ("max", "min"):
            raise ConfigError(f"task.kwargs.monitor_mode={self.monitor_mode!r} is not max or min")
        if not 0.0 < self.lr_decay_factor <= 1.0:
            raise ConfigError(f"task.kwargs.lr_decay_factor must be in (0, 1], got {self.lr_decay_factor}")


def _penalty(params: list[torch.nn.Parameter], terms: list[tuple[int, float]]) -> torch.Tensor | None:
    total: torch.Tensor | None = None
    for p, lam in terms:
        for w in params:
            t = w.abs().sum() if p == 1 else w.square().sum()
            t = (lam / p) * t
            total = t if total is None else total + t
    return total


class CTRTask(GatelabTask):
    """Binary CTR task: BCE-with-logits, AUC/logloss, FuxiCTR regularisers and LR decay."""

    Options = CTROptions
    extra_logged = ("bce",)
    logged_metrics = ("auc", "logloss")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.options.train_metrics:
            self.train_metrics = torchmetrics.MetricCollection({})
        from gatelab.recsys.models.layers import model_param_groups

        self._emb_params, self._net_params = model_param_groups(self.model)
        self._best: float | None = None

    def build_metrics(self) -> dict[str, torchmetrics.Metric]:
        return {"auc": torchmetrics.classification.BinaryAUROC(), "logloss": LogLoss()}

    def regularization(self) -> torch.Tensor | None:
        """The regularisation term added to the loss (``None`` when both are off)."""
        a = _penalty(self._emb_params, self.options.emb_reg)
        b = _penalty(self._net_params, self.options.net_reg)
        if a is None:
            return b
        return a if b is None else a + b

    def _logits(self, preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        z = preds.squeeze(-1) if preds.ndim == target.ndim + 1 and preds.shape[-1] == 1 else preds
        if z.shape != target.shape:
            raise ValueError(
                f"CTRTask: logits shape {tuple(preds.shape)} does not match target shape {tuple(target.shape)}"
            )
        return z

    def compute_loss(self, preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        z = self._logits(preds, target)
        bce = F.binary_cross_entropy_with_logits(z, target.to(z.dtype))
        reg = self.regularization() if self.training else None
        if self.training and self._trainer is not None:
            self.log("train/bce", bce, on_step=False, on_epoch=True, batch_size=target.shape[0])
        return bce if reg is None else bce + reg

    def metric_inputs(self, preds: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.sigmoid(self._logits(preds, target).float()), target.long()

    def on_train_epoch_end(self) -> None:
        """FuxiCTR's reduce-on-plateau after each validation (runs after the epoch's validation)."""
        if not self.options.reduce_lr_on_plateau or self._trainer is None:
            return
        value = self.trainer.callback_metrics.get(self.config.monitor)
        if value is None:
            return
        value = float(value)
        o = self.options
        improved = (
            self._best is None
            or (o.monitor_mode == "max" and value > self._best + o.plateau_min_delta)
            or (o.monitor_mode == "min" and value < self._best - o.plateau_min_delta)
        )
        if improved:
            self._best = value
            return
        for opt in self.trainer.optimizers:
            for group in opt.param_groups:
                group["lr"] = max(group["lr"] * o.lr_decay_factor, o.min_lr)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["ctr_plateau_best"] = self._best

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._best = checkpoint.get("ctr_plateau_best")
