"""Lightning task training the Temporal Fusion Transformer on pytorch-forecasting style batches.

Batches are pytorch-forecasting's ``(x, (target, weight))`` (what ``TimeSeriesDataSet.to_dataloader``
yields, and the gatelab TFT data modules): ``x`` goes to the model as is, the loss is
:func:`gatelab.timeseries.tasks.metrics.quantile_loss` on the model's quantile forecasts in the
target's scale, over the valid decoder cells (``x["decoder_lengths"]``), weighted by ``weight``
when the dataset has one -- the same objective as pytorch-forecasting's ``QuantileLoss``.

Logged metrics (per stage): ``mae`` (of the median forecast) and the paper's q-risk ``q50``,
``q90`` (:class:`~gatelab.timeseries.tasks.metrics.QRisk`; the levels are the task option
``qrisk``, each must be one of the model's quantiles).

A model without trainable parameters (``naive-last-value``) has no optimizer: it is evaluated
with ``trainer.max_epochs: 0`` (the test metrics are its own; any other budget is an error).

Options (``task.kwargs``): ``qrisk`` (levels, default ``[0.5, 0.9]``) and ``plateau_cooldown``
(epochs the ``plateau`` scheduler waits after a reduction, pytorch-forecasting uses its
patience).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torchmetrics

from gatelab.core.config import ConfigError
from gatelab.core.harness.task import GatelabTask

from .metrics import PointMAE, QRisk, quantile_loss, valid_mask

__all__ = ["TFTTask"]


@dataclasses.dataclass
class TFTOptions:
    """``task.kwargs`` of :class:`TFTTask`."""

    qrisk: tuple[float, ...] = (0.5, 0.9)
    plateau_cooldown: int = 0

    def __post_init__(self) -> None:
        if self.plateau_cooldown < 0:
            raise ConfigError(f"task.kwargs.plateau_cooldown must be >= 0, got {self.plateau_cooldown}")


class TFTTask(GatelabTask):
    """Quantile-loss training of :class:`~gatelab.timeseries.models.tft.TemporalFusionTransformer`."""

    Options = TFTOptions

    @classmethod
    def metric_names(cls, options: Any) -> list[str]:
        """``mae`` and ``q<100 q>`` for each ``qrisk`` quantile (as :meth:`build_metrics`)."""
        return ["mae", *(f"q{round(float(q) * 100)}" for q in options.qrisk)]

    def build_metrics(self) -> dict[str, torchmetrics.Metric]:
        qs = [float(q) for q in self.model.quantiles]
        median = min(range(len(qs)), key=lambda i: abs(qs[i] - 0.5))
        metrics: dict[str, torchmetrics.Metric] = {"mae": PointMAE(median)}
        for q in self.options.qrisk:
            if float(q) not in qs:
                raise ConfigError(f"task.kwargs.qrisk: {q} is not one of the model's quantiles {qs}")
            metrics[f"q{round(float(q) * 100)}"] = QRisk(float(q), qs.index(float(q)))
        return metrics

    def split_batch(self, batch: Any) -> tuple[Any, Any]:
        if not (isinstance(batch, (tuple, list)) and len(batch) == 2 and isinstance(batch[0], dict)):
            raise ValueError(
                "TFTTask: expected a pytorch-forecasting batch (x: dict, (target, weight)), "
                f"got {type(batch).__name__}"
            )
        x, y = batch
        target, weight = y if isinstance(y, (tuple, list)) else (y, None)
        if isinstance(target, (tuple, list)):
            raise ValueError("TFTTask: multi-target batches are not supported")
        return x, (target, weight)

    def shared_step(self, batch: Any, stage: str) -> tuple[torch.Tensor, Any, Any]:
        x, (target, weight) = self.split_batch(batch)
        out = self.model(x)
        mask = valid_mask(x.get("decoder_lengths"), target.shape)
        loss = quantile_loss(out.prediction, target, self.model.quantiles, mask, weight)
        return loss, (out.prediction, mask), target

    def metric_inputs(self, preds: Any, target: Any) -> tuple[Any, Any]:
        prediction, mask = preds
        prediction = prediction.detach()
        if mask is None:
            return prediction.reshape(-1, prediction.shape[-1]), target.reshape(-1)
        return prediction[mask], target[mask]

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> Any:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self.model(x)

    def configure_optimizers(self) -> Any:
        if not any(p.requires_grad for p in self.parameters()):
            # a model without parameters (the naive baseline) is evaluated, never trained
            trainer = self._trainer
            if trainer is not None and trainer.max_epochs != 0 and trainer.max_steps != 0:
                raise ConfigError(
                    f"model {self.hparams.get('model_name')!r} has no trainable parameters: evaluate it "
                    f"with trainer.max_epochs: 0 (got max_epochs={trainer.max_epochs})"
                )
            return None
        conf = super().configure_optimizers()
        if self.options.plateau_cooldown and isinstance(conf, dict):
            sched = conf["lr_scheduler"]["scheduler"]
            if not isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
                raise ConfigError("task.kwargs.plateau_cooldown needs task.scheduler.name: plateau")
            sched.cooldown = self.options.plateau_cooldown
        return conf
