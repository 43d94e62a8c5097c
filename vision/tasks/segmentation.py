"""Semantic segmentation task: Dice + cross-entropy loss, Dice / IoU / AUC metrics, sliding-window evaluation.

Registered as ``task.name: segmentation``. Batches are mappings ``{"image": [B, C, *S],
"target": [B, *S] int64 class indices, "valid": [B, *S] bool}`` (what the segmentation data
modules yield); ``valid`` marks the pixels that count (a field of view, or not padding).

Loss (``V`` = valid pixels of sample ``b``, ``p = softmax(logits)``, ``y`` one-hot targets)::

    CE   = sum_{b, i in V} -log p_{b,i,y_bi} / |V|                       (mean over all valid pixels)
    Dice = 1 - mean_{b, k} (2 sum_{i in V} p_bik y_bik + s) / (sum_{i in V} p_bik + sum_{i in V} y_bik + s)
    loss = ce_weight * CE + dice_weight * Dice

the soft Dice of the official Attention U-Net code (``SoftDiceLoss``: per sample and class,
smoothing ``s = 0.01``, background included unless ``dice_include_background: false``).

Metrics (torchmetrics), over every valid pixel of the evaluated split pooled together:

* two classes: ``dice`` = ``BinaryF1Score`` (= Dice of the foreground class at ``p_1 > 0.5``, i.e.
  argmax), ``iou`` = ``BinaryJaccardIndex``, and with ``auc: true`` ``auc`` = ``BinaryAUROC`` of
  ``p_1`` (exact, all pixels);
* more classes: ``dice`` / ``iou`` = mean over foreground classes of the per-class
  ``MulticlassF1Score`` / ``MulticlassJaccardIndex`` of the argmax.

Training batches are scored only when ``train_metrics: true`` (pixel AUC over thousands of patches
would hold every pixel in memory). Validation and test batches are whole images, predicted with
:func:`~gatelab.vision.tasks.inference.sliding_window_inference` when ``roi_size`` is set (else one
forward pass of the whole image).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
import torchmetrics
from torchmetrics.classification import (
    BinaryAUROC,
    BinaryF1Score,
    BinaryJaccardIndex,
    MulticlassF1Score,
    MulticlassJaccardIndex,
)

from gatelab.core.config import ConfigError
from gatelab.core.harness.task import GatelabTask

from .inference import MODES, sliding_window_inference

__all__ = ["SegmentationOptions", "SegmentationTask", "dice_ce_loss", "soft_dice_loss"]


def _check(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    if logits.dim() < 3 or target.shape != (logits.shape[0], *logits.shape[2:]):
        raise ValueError(
            f"segmentation loss: logits [B, K, *S] and target [B, *S] expected, got logits {tuple(logits.shape)} "
            f"and target {tuple(target.shape)}"
        )
    if valid is None:
        return torch.ones_like(target, dtype=torch.bool)
    if valid.shape != target.shape:
        raise ValueError(
            f"segmentation loss: valid {tuple(valid.shape)} must match target {tuple(target.shape)}"
        )
    return valid.bool()


def soft_dice_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    valid: torch.Tensor | None = None,
    *,
    smooth: float = 0.01,
    include_background: bool = True,
) -> torch.Tensor:
    """``1 - mean_{b,k} (2 sum p y + s) / (sum p + sum y + s)`` over valid pixels (module docstring)."""
    valid = _check(logits, target, valid)
    k = logits.shape[1]
    p = torch.softmax(logits.float(), dim=1).flatten(2)  # [B, K, N]
    y = F.one_hot(target.long().clamp(0, k - 1), k).movedim(-1, 1).flatten(2).float()
    w = valid.flatten(1).unsqueeze(1).float()
    p, y = p * w, y * w
    inter = (p * y).sum(-1)
    denom = p.sum(-1) + y.sum(-1)
    score = (2.0 * inter + smooth) / (denom + smooth)  # [B, K]
    if not include_background:
        score = score[:, 1:]
    return 1.0 - score.mean()


def dice_ce_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    valid: torch.Tensor | None = None,
    *,
    dice_weight: float = 1.0,
    ce_weight: float = 1.0,
    smooth: float = 0.01,
    include_background: bool = True,
) -> torch.Tensor:
    """``ce_weight * CE + dice_weight * soft Dice`` over valid pixels (see the module docstring)."""
    valid = _check(logits, target, valid)
    k = logits.shape[1]
    if bool(((target < 0) | (target >= k))[valid].any()):
        raise ValueError(f"segmentation loss: target classes must be in [0, {k - 1}]")
    loss = logits.new_zeros((), dtype=torch.float32)
    if ce_weight:
        ce = F.cross_entropy(logits.float(), target.long().clamp(0, k - 1), reduction="none")
        loss = loss + ce_weight * (ce * valid).sum() / valid.sum().clamp(min=1)
    if dice_weight:
        loss = loss + dice_weight * soft_dice_loss(
            logits, target, valid, smooth=smooth, include_background=include_background
        )
    return loss


class _ForegroundF1(MulticlassF1Score):
    """Mean over classes ``1..K-1`` of the per-class F1 (Dice) of the argmax."""

    def compute(self) -> torch.Tensor:
        return super().compute()[1:].mean()


class _ForegroundIoU(MulticlassJaccardIndex):
    """Mean over classes ``1..K-1`` of the per-class IoU of the argmax."""

    def compute(self) -> torch.Tensor:
        return super().compute()[1:].mean()


@dataclasses.dataclass
class SegmentationOptions:
    """``task.kwargs`` of :class:`SegmentationTask`.

    ``dice_weight`` / ``ce_weight``: loss weights; ``dice_smooth``: ``s``;
    ``dice_include_background``: count class 0 in the soft Dice; ``roi_size``: sliding-window size
    for validation/test (``null``: whole image in one pass); ``sw_overlap``, ``sw_batch_size``,
    ``sw_mode`` (``gaussian`` | ``constant``), ``sw_mirror_axes`` (spatial axes of mirror test-time
    augmentation, ``null``: off): sliding-window settings; ``auc``: also report pixel
    ROC AUC (two classes only); ``train_metrics``: score training batches too.
    """

    dice_weight: float = 1.0
    ce_weight: float = 1.0
    dice_smooth: float = 0.01
    dice_include_background: bool = True
    roi_size: list[int] | int | None = None
    sw_overlap: float = 0.5
    sw_batch_size: int = 4
    sw_mode: str = "gaussian"
    sw_mirror_axes: list[int] | None = None
    auc: bool = False
    train_metrics: bool = False

    def __post_init__(self) -> None:
        if self.dice_weight < 0 or self.ce_weight < 0 or self.dice_weight + self.ce_weight == 0:
            raise ConfigError("task.kwargs: dice_weight and ce_weight must be >= 0, not both 0")
        if self.sw_mode not in MODES:
            raise ConfigError(f"task.kwargs.sw_mode={self.sw_mode!r} is not one of {MODES}")
        if not 0.0 <= self.sw_overlap < 1.0:
            raise ConfigError(f"task.kwargs.sw_overlap={self.sw_overlap} must be in [0, 1)")
        axes = self.sw_mirror_axes
        if axes is not None and (
            not axes or len(set(axes)) != len(axes) or any(not isinstance(a, int) or a < 0 for a in axes)
        ):
            raise ConfigError(
                f"task.kwargs.sw_mirror_axes={axes!r}: distinct spatial axes >= 0 (0 = first spatial axis), or null"
            )


class SegmentationTask(GatelabTask):
    """Dense K-class segmentation (see the module docstring for loss and metrics)."""

    Options = SegmentationOptions
    logged_metrics = ("dice", "iou", "auc")

    @classmethod
    def metric_names(cls, options: Any) -> list[str]:
        """``dice``, ``iou`` (and ``auc`` with ``options.auc``), as :meth:`build_metrics`."""
        return ["dice", "iou", *(["auc"] if options.auc else [])]

    @property
    def num_classes(self) -> int:
        k = getattr(self.model, "num_classes", None)
        if not isinstance(k, int) or k < 2:
            raise ConfigError(f"SegmentationTask: the model must expose num_classes >= 2, got {k!r}")
        return k

    def build_metrics(self) -> dict[str, torchmetrics.Metric]:
        k = self.num_classes
        if k == 2:
            metrics: dict[str, torchmetrics.Metric] = {
                "dice": BinaryF1Score(threshold=0.5),
                "iou": BinaryJaccardIndex(threshold=0.5),
            }
            if self.options.auc:
                metrics["auc"] = BinaryAUROC(thresholds=None)
            return metrics
        if self.options.auc:
            raise ConfigError("task.kwargs.auc is only defined for two classes")
        return {
            "dice": _ForegroundF1(num_classes=k, average="none"),
            "iou": _ForegroundIoU(num_classes=k, average="none"),
        }

    def metrics_for(self, stage: str) -> torchmetrics.MetricCollection:
        if stage == "train" and not self.options.train_metrics:
            return torchmetrics.MetricCollection({})
        return super().metrics_for(stage)

    def split_batch(self, batch: Any) -> tuple[Any, Any]:
        if not isinstance(batch, Mapping) or "image" not in batch or "target" not in batch:
            raise ValueError(
                "SegmentationTask: batches must be mappings with 'image', 'target' (and 'valid'), got "
                f"{type(batch).__name__}{f' with keys {sorted(batch)}' if isinstance(batch, Mapping) else ''}"
            )
        valid = batch.get("valid")
        if valid is None:
            valid = torch.ones_like(batch["target"], dtype=torch.bool)
        return batch["image"], (batch["target"], valid)

    def predict_logits(self, image: torch.Tensor) -> torch.Tensor:
        """Logits of whole images: sliding window over ``roi_size`` windows, or one forward pass."""
        o = self.options
        if o.roi_size is None:
            return self.model(image)
        return sliding_window_inference(
            image,
            o.roi_size,
            self.model,
            overlap=o.sw_overlap,
            mode=o.sw_mode,
            sw_batch_size=o.sw_batch_size,
            mirror_axes=o.sw_mirror_axes,
        )

    def shared_step(self, batch: Any, stage: str) -> tuple[torch.Tensor, Any, Any]:
        image, (target, valid) = self.split_batch(batch)
        logits = self.model(image) if stage == "train" else self.predict_logits(image)
        o = self.options
        loss = dice_ce_loss(
            logits,
            target,
            valid,
            dice_weight=o.dice_weight,
            ce_weight=o.ce_weight,
            smooth=o.dice_smooth,
            include_background=o.dice_include_background,
        )
        return loss, (logits, valid), target

    def metric_inputs(self, preds: Any, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, valid = preds
        probs = torch.softmax(logits.detach().float(), dim=1)
        mask = valid.bool()
        if self.num_classes == 2:
            return probs[:, 1][mask], target[mask].long()
        return probs.movedim(1, -1)[mask], target[mask].long()

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        """Class probabilities ``[B, K, *S]`` of whole images."""
        image = batch["image"] if isinstance(batch, Mapping) else batch
        return torch.softmax(self.predict_logits(image).float(), dim=1)
