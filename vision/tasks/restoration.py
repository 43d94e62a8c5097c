"""The image-restoration training task (Lightning) and a training/evaluation helper.

:class:`RestorationTask` (registered as ``restoration``) trains any image-to-image model whose
output is an image or MAXIM's ``outputs[stage][scale]`` with the paper's loss (Charbonnier +
0.1 x FFT loss summed over every stage and scale, :func:`~.metrics.restoration_loss`)
and reports PSNR / SSIM of the final output (:mod:`.metrics`, options as the official
evaluation). Optimizer and schedule come from the task config (MAXIM: AdamW, cosine).

Models: a registered model name (``maxim``, ``maxim-2s`` ...) or ``dncnn`` (the unregistered
DnCNN baseline, :class:`gatelab.vision.models.dncnn.DnCNN`).

:func:`fit_restoration` runs one training through the harness (``build_trainer``,
``seed_everything``; resumable with ``resume=``) and :func:`evaluate_images` computes per-image
PSNR / SSIM of a model (or of the degraded input) on a dataset, with optional tiling.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
import torchmetrics
from torch import nn

from gatelab.core.config import ConfigError
from gatelab.core.harness.configs import TaskConfig, TrainerConfig
from gatelab.core.harness.task import GatelabTask

from .metrics import (
    MetricOptions,
    final_output,
    prepare_for_metrics,
    psnr_ssim_metrics,
    restoration_loss,
)

__all__ = ["BASELINES", "RestorationOptions", "RestorationTask", "evaluate_images", "fit_restoration"]


def _dncnn(**kwargs: Any) -> nn.Module:
    from ..models.dncnn import DnCNN

    kwargs.pop("num_outputs", None)  # data modules size models with in_channels and num_outputs
    return DnCNN(**kwargs)


# baselines without core gates (not in the model registry), buildable by name in this task
BASELINES: dict[str, Callable[..., nn.Module]] = {"dncnn": _dncnn}


@dataclasses.dataclass
class RestorationOptions:
    """``task.kwargs`` of :class:`RestorationTask`.

    ``freq_weight``: weight of the FFT loss (paper: 0.1; 0 = Charbonnier only);
    ``charbonnier_eps``: the Charbonnier epsilon (1e-3); ``y_channel``, ``crop_border``, ``clip``,
    ``quantize``: how PSNR/SSIM are computed (:class:`~.metrics.MetricOptions`).
    """

    freq_weight: float = 0.1
    charbonnier_eps: float = 1e-3
    y_channel: bool = False
    crop_border: int = 0
    clip: bool = False
    quantize: bool = False

    def __post_init__(self) -> None:
        if self.freq_weight < 0 or self.charbonnier_eps <= 0 or self.crop_border < 0:
            raise ConfigError(
                "task.kwargs: need freq_weight >= 0, charbonnier_eps > 0, crop_border >= 0, got "
                f"{self.freq_weight}, {self.charbonnier_eps}, {self.crop_border}"
            )

    @property
    def metric_options(self) -> MetricOptions:
        return MetricOptions(self.y_channel, self.crop_border, self.clip, self.quantize)


class RestorationTask(GatelabTask):
    """Image restoration: batches ``(degraded, clean)``; loss over all outputs; PSNR/SSIM of the last.

    With several test dataloaders (one per test set) Lightning logs ``test/psnr/dataloader_idx_k``.
    """

    Options = RestorationOptions
    logged_metrics = ("psnr", "ssim")

    def __init__(
        self,
        model_name: str | None = None,
        model_kwargs: Mapping[str, Any] | None = None,
        task: TaskConfig | Mapping[str, Any] | None = None,
        model: nn.Module | None = None,
    ) -> None:
        if model is None and model_name in BASELINES:
            model = BASELINES[model_name](**dict(model_kwargs or {}))
        super().__init__(model_name=model_name, model_kwargs=model_kwargs, task=task, model=model)

    def build_metrics(self) -> dict[str, torchmetrics.Metric]:
        return psnr_ssim_metrics()

    def compute_loss(self, preds: Any, target: torch.Tensor) -> torch.Tensor:
        o = self.options
        return restoration_loss(preds, target, freq_weight=o.freq_weight, eps=o.charbonnier_eps)

    def metric_inputs(self, preds: Any, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return prepare_for_metrics(final_output(preds), target, self.options.metric_options)

    # ---- several test sets (the ``denoise`` data module tests on CBSD68, Kodak24, McMaster) ----

    def _test_set_names(self) -> list[str]:
        dm = getattr(self.trainer, "datamodule", None)
        names = list(getattr(dm, "test_names", None) or [])
        return names if len(names) > 1 else []

    def on_test_start(self) -> None:
        names = self._test_set_names()
        self._per_set = nn.ModuleDict(
            {
                n: torchmetrics.MetricCollection(dict(psnr_ssim_metrics())).clone(prefix=f"test/{n}/")
                for n in names
            }
        ).to(self.device)

    def test_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        """With several test sets, metrics are logged per set as ``test/<set>/psnr`` (and
        ``test/<set>/ssim``, ``test/<set>/loss``); with one, as ``test/psnr``."""
        per_set = getattr(self, "_per_set", None)
        if not per_set:
            return self._step(batch, "test")
        name = list(per_set)[dataloader_idx]
        loss, preds, target = self.shared_step(batch, "test")
        metrics = per_set[name]
        metrics.update(*self.metric_inputs(preds, target))
        self.log(
            f"test/{name}/loss", loss, on_epoch=True, add_dataloader_idx=False, batch_size=target.shape[0]
        )
        self.log_dict(metrics, on_epoch=True, add_dataloader_idx=False, batch_size=target.shape[0])
        return loss


def fit_restoration(
    model_name: str,
    model_kwargs: Mapping[str, Any],
    datamodule: Any,
    *,
    task: TaskConfig,
    trainer: TrainerConfig,
    run_dir: str | Path,
    seed: int = 0,
    resume: str | Path | None = None,
) -> tuple[RestorationTask, Any, float]:
    """Train ``model_name`` (registered, or a :data:`BASELINES` name) on ``datamodule``.

    The same path for every model: :func:`~gatelab.core.harness.trainer.seed_everything`, a
    :class:`RestorationTask`, :func:`~gatelab.core.harness.trainer.build_trainer` writing
    checkpoints (``last.ckpt``) and CSV logs under ``run_dir``. ``resume``: a checkpoint to
    continue from (weights, optimizer, scheduler, step and epoch counters).

    Returns ``(task, lightning trainer, wall seconds of fitting)``.
    """
    from gatelab.core.harness.trainer import build_trainer, seed_everything

    if resume is not None and not Path(resume).is_file():
        raise ConfigError(f"checkpoint to resume from not found: {resume}")
    seed_everything(seed, trainer.deterministic)
    mk = dict(datamodule.model_kwargs()) if hasattr(datamodule, "model_kwargs") else {}
    mk.update(model_kwargs)
    lit = RestorationTask(model_name=model_name, model_kwargs=mk, task=task)
    tr = build_trainer(trainer, run_dir=run_dir)
    t0 = time.perf_counter()
    tr.fit(lit, datamodule=datamodule, ckpt_path=str(resume) if resume else None)
    return lit, tr, time.perf_counter() - t0


@torch.no_grad()
def evaluate_images(
    restore: Callable[[torch.Tensor], torch.Tensor] | None,
    dataset: Any,
    opts: MetricOptions | None = None,
    *,
    progress: str | None = None,
) -> dict[str, float]:
    """Mean per-image PSNR (dB) and SSIM of ``restore(degraded)`` against ``clean`` over ``dataset``.

    ``restore=None`` scores the degraded input itself. ``dataset`` yields ``(degraded, clean)``
    ``[C, H, W]`` pairs (any sizes). Uses the same torchmetrics objects as the task.
    """
    opts = opts if opts is not None else MetricOptions()
    metrics = psnr_ssim_metrics()
    it = range(len(dataset))
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc=progress, leave=False)
    for i in it:
        x, y = dataset[i]
        x, y = x.unsqueeze(0), y.unsqueeze(0)
        out = x if restore is None else restore(x)
        p, t = prepare_for_metrics(out, y, opts)
        for m in metrics.values():
            m.update(p, t)
    return {k: float(m.compute()) for k, m in metrics.items()}
