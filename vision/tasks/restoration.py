"""The image-restoration training task (Lightning) and the DnCNN baseline's model factory.

:class:`RestorationTask` (registered as ``restoration``) trains any image-to-image model whose
output is an image or MAXIM's ``outputs[stage][scale]`` with the paper's loss (Charbonnier +
0.1 x FFT loss summed over every stage and scale, :func:`~.metrics.restoration_loss`)
and reports PSNR / SSIM of the final output (:mod:`.metrics`, options as the official
evaluation). Optimizer and schedule come from the task config (MAXIM: AdamW, cosine).

Test step (full images, batch size 1 in the ``denoise`` / ``paired_restoration`` data modules):
per test set ``test/<set>/{loss,psnr,ssim}`` when the data module names its test sets
(``test_names``), else ``test/{loss,psnr,ssim}``; with ``score_input`` also the degraded input's
own ``input_psnr`` / ``input_ssim`` (the floor a restorer must beat), and with ``tile`` also
``tiled_psnr`` / ``tiled_ssim`` of tiled inference
(:func:`~gatelab.vision.models.maxim.tiled_forward`; for MAXIM an approximation, its grid
branch mixes the whole image).

Models: any registered model (``maxim``, ``maxim-2s`` ..., ``dncnn``). :func:`dncnn` is the
registry's factory of the DnCNN baseline (:class:`~gatelab.vision.models.dncnn.DnCNN`, tagged
``baseline``: no gates), sized by the data modules' ``model_kwargs``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torchmetrics
from torch import nn

from gatelab.core.config import ConfigError, NonNegativeInt, PositiveInt
from gatelab.core.harness.task import GatelabTask

from ..models.dncnn import DnCNN
from .metrics import (
    MetricOptions,
    final_output,
    prepare_for_metrics,
    psnr_ssim_metrics,
    restoration_loss,
)

__all__ = ["RestorationOptions", "RestorationTask", "dncnn"]


def dncnn(num_outputs: PositiveInt | None = None, **kwargs: Any) -> DnCNN:
    """The DnCNN baseline (keywords: :class:`~gatelab.vision.models.dncnn.DnCNN`'s).

    ``num_outputs`` (given by the restoration data modules' ``model_kwargs`` with
    ``in_channels``) must equal ``in_channels`` (default 3): DnCNN restores the image it gets.
    """
    channels = kwargs.get("in_channels", 3)
    if num_outputs is not None and num_outputs != channels:
        raise ConfigError(
            f"model 'dncnn': num_outputs={num_outputs!r} must equal in_channels={channels!r} "
            "(DnCNN predicts the image it is given)"
        )
    return DnCNN(**kwargs)


def _dncnn_example(model: nn.Module, batch: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Inputs of the registry's generic model test: ``[batch, C, 8, 8]`` images."""
    return (torch.rand(batch, int(model.in_channels), 8, 8),), {}


#: ``tiny`` of the registry's generic model test
_TINY_DNCNN = {"num_layers": 3, "features": 4}


@dataclasses.dataclass
class RestorationOptions:
    """``task.kwargs`` of :class:`RestorationTask`.

    ``freq_weight``: weight of the FFT loss (paper: 0.1; 0 = Charbonnier only);
    ``charbonnier_eps``: the Charbonnier epsilon (1e-3); ``y_channel``, ``crop_border``, ``clip``,
    ``quantize``: how PSNR/SSIM are computed (:class:`~.metrics.MetricOptions`);
    ``score_input``: also score the degraded input at test time (``input_psnr``/``input_ssim``);
    ``tile`` / ``tile_overlap``: also score tiled inference at test time (``tiled_psnr`` /
    ``tiled_ssim``; tiles of ``tile`` pixels overlapping by ``tile_overlap``; ``None``: off).
    """

    freq_weight: float = 0.1
    charbonnier_eps: float = 1e-3
    y_channel: bool = False
    crop_border: int = 0
    clip: bool = False
    quantize: bool = False
    score_input: bool = True
    tile: PositiveInt | None = None
    tile_overlap: NonNegativeInt = 32

    def __post_init__(self) -> None:
        if self.freq_weight < 0 or self.charbonnier_eps <= 0 or self.crop_border < 0:
            raise ConfigError(
                "task.kwargs: need freq_weight >= 0, charbonnier_eps > 0, crop_border >= 0, got "
                f"{self.freq_weight}, {self.charbonnier_eps}, {self.crop_border}"
            )
        if self.tile is not None and not 0 <= self.tile_overlap < self.tile:
            raise ConfigError(
                f"task.kwargs: need 0 <= tile_overlap < tile, got tile={self.tile!r}, "
                f"tile_overlap={self.tile_overlap!r}"
            )

    @property
    def metric_options(self) -> MetricOptions:
        return MetricOptions(self.y_channel, self.crop_border, self.clip, self.quantize)


class RestorationTask(GatelabTask):
    """Image restoration: batches ``(degraded, clean)``; loss over all outputs; PSNR/SSIM of the last.

    Test metrics are named per test set (``test/<set>/psnr``) when the data module has
    ``test_names`` (one name per test dataloader), else ``test/psnr``; see the module docstring
    for the ``input_`` and ``tiled_`` metrics.
    """

    Options = RestorationOptions
    logged_metrics = ("psnr", "ssim")

    def build_metrics(self) -> dict[str, torchmetrics.Metric]:
        return psnr_ssim_metrics()

    def compute_loss(self, preds: Any, target: torch.Tensor) -> torch.Tensor:
        o = self.options
        return restoration_loss(preds, target, freq_weight=o.freq_weight, eps=o.charbonnier_eps)

    def metric_inputs(self, preds: Any, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return prepare_for_metrics(final_output(preds), target, self.options.metric_options)

    # ---- test: full images, one metric set per test set ---------------------------------

    def _test_prefixes(self) -> list[str]:
        """``test/<set>/`` per test dataloader (the data module's ``test_names``), else ``test/``."""
        dm = getattr(self.trainer, "datamodule", None)
        names = [str(n) for n in (getattr(dm, "test_names", None) or [])]
        loaders = self.trainer.test_dataloaders
        n_loaders = len(loaders) if isinstance(loaders, (list, tuple)) else 1
        if names and len(names) != n_loaders:
            raise ValueError(
                f"{type(dm).__name__}.test_names has {len(names)} names ({names}) for {n_loaders} "
                "test dataloaders"
            )
        return [f"test/{n}/" for n in names] or ["test/"]

    def on_test_start(self) -> None:
        o = self.options
        kinds = ["", *(["input_"] if o.score_input else []), *(["tiled_"] if o.tile is not None else [])]
        self._test_metrics = nn.ModuleList(
            nn.ModuleDict(
                {
                    kind or "model": torchmetrics.MetricCollection(dict(psnr_ssim_metrics())).clone(
                        prefix=f"{prefix}{kind}"
                    )
                    for kind in kinds
                }
            )
            for prefix in self._test_prefixes()
        ).to(self.device)

    def _tiled(self, x: torch.Tensor) -> torch.Tensor:
        from ..models.maxim import tiled_forward

        o = self.options
        return tiled_forward(lambda t: final_output(self(t)), x, tile=int(o.tile), overlap=o.tile_overlap)

    def test_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        """Loss and PSNR/SSIM of the model (and of the input, and of tiled inference, when
        enabled) on one batch of the ``dataloader_idx``-th test set."""
        metrics = self._test_metrics[dataloader_idx]
        loss, preds, target = self.shared_step(batch, "test")
        self.check_finite_loss(loss, batch, "test", batch_idx)
        inputs, _ = self.split_batch(batch)
        bs = int(target.shape[0])
        opts = self.options.metric_options
        name = metrics["model"].prefix
        self.log(f"{name}loss", loss, on_epoch=True, add_dataloader_idx=False, batch_size=bs, sync_dist=True)
        outputs = {"model": final_output(preds)}
        if "input_" in metrics:
            outputs["input_"] = inputs
        if "tiled_" in metrics:
            outputs["tiled_"] = self._tiled(inputs)
        for kind, out in outputs.items():
            collection = metrics[kind]
            collection.update(*prepare_for_metrics(out, target, opts))
            self.log_dict(collection, on_epoch=True, add_dataloader_idx=False, batch_size=bs)
        return loss
