"""Restoration losses and metrics: Charbonnier, frequency (FFT) loss, PSNR / SSIM as MAXIM evaluates.

Losses (Tu et al. 2022, Sec. 3.4; the paper follows MPRNet and MIMO-UNet)::

    L = sum_stages sum_scales [ L_char(R, T) + lambda * L_freq(R, T) ],   lambda = 0.1
    L_char(R, T) = mean( sqrt((R - T)^2 + eps^2) ),                      eps = 1e-3
    L_freq(R, T) = mean( |Re FFT2(R - T)| and |Im FFT2(R - T)| )          (unnormalised 2-D FFT)

where ``T`` at a coarser scale is the target resized like the model's input pyramid
(``nearest``, :func:`downsample_like`).

Metrics, as the official ``maxim/run_eval.py`` (``calculate_psnr``, BasicSR's convention):
images on the 0-255 scale, ``crop_border`` pixels removed on each side, optionally the Y channel
of BT.601 YCbCr (``Y = 16 + (65.481 R + 128.553 G + 24.966 B)`` with ``R, G, B`` in ``[0, 1]``),
PSNR per image ``10 log10(255^2 / MSE)`` averaged over images. The official script neither clips
nor rounds the prediction (``clip``/``quantize`` are options here, off by default). SSIM (not in
the official script) is BasicSR's: Gaussian window 11, sigma 1.5, ``K1 = 0.01, K2 = 0.03``,
valid region only, per channel then averaged -- computed from ``torchmetrics``' SSIM map
(:class:`ValidSSIM`).
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
import torchmetrics

__all__ = [
    "MetricOptions",
    "ValidSSIM",
    "charbonnier_loss",
    "downsample_like",
    "frequency_loss",
    "prepare_for_metrics",
    "psnr_ssim_metrics",
    "restoration_loss",
    "rgb_to_y",
]


def charbonnier_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """``mean(sqrt((pred - target)^2 + eps^2))`` (MPRNet's Charbonnier loss)."""
    return torch.sqrt((pred - target) ** 2 + eps * eps).mean()


def frequency_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute real and imaginary part of ``FFT2(pred - target)`` over ``H, W``
    (unnormalised, as MIMO-UNet's ``torch.rfft``-based loss, computed on the full spectrum)."""
    d = torch.fft.fft2((pred - target).float(), dim=(-2, -1))
    return torch.view_as_real(d).abs().mean()


def downsample_like(target: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``target`` resized to ``like``'s ``H, W`` by ``nearest-exact`` (the model's input pyramid)."""
    if target.shape[-2:] == like.shape[-2:]:
        return target
    return F.interpolate(target, size=like.shape[-2:], mode="nearest-exact")


def _flatten(preds: object) -> list[torch.Tensor]:
    if isinstance(preds, torch.Tensor):
        return [preds]
    if isinstance(preds, (list, tuple)):
        return [t for p in preds for t in _flatten(p)]
    raise TypeError(
        f"restoration outputs must be tensors or (nested) lists of them, got {type(preds).__name__}"
    )


def restoration_loss(
    preds: object, target: torch.Tensor, *, freq_weight: float = 0.1, eps: float = 1e-3
) -> torch.Tensor:
    """Sum over every output (all stages and scales) of ``L_char + freq_weight * L_freq``."""
    total = target.new_zeros(())
    for p in _flatten(preds):
        t = downsample_like(target, p)
        if p.shape != t.shape:
            raise ValueError(f"output shape {tuple(p.shape)} does not match target {tuple(t.shape)}")
        total = total + charbonnier_loss(p, t, eps)
        if freq_weight:
            total = total + freq_weight * frequency_loss(p, t)
    return total


def final_output(preds: object) -> torch.Tensor:
    """The restored image: the last output of the last stage (``preds[-1][-1]``) or ``preds``."""
    return _flatten(preds)[-1]


def rgb_to_y(img: torch.Tensor) -> torch.Tensor:
    """BT.601 luma of ``[B, 3, H, W]`` RGB in ``[0, 1]`` -> ``[B, 1, H, W]`` in ``[16/255, 235/255]``
    (MATLAB ``rgb2ycbcr``, as ``run_eval.rgb2ycbcr(y_only=True)``)."""
    w = img.new_tensor([65.481, 128.553, 24.966]).view(1, 3, 1, 1)
    return ((img * w).sum(1, keepdim=True) + 16.0) / 255.0


@dataclasses.dataclass(frozen=True)
class MetricOptions:
    """How predictions are prepared before PSNR/SSIM (defaults: the official ``run_eval.py``)."""

    y_channel: bool = False
    crop_border: int = 0
    clip: bool = False
    quantize: bool = False


def prepare_for_metrics(
    pred: torch.Tensor, target: torch.Tensor, opts: MetricOptions = MetricOptions()
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply ``clip`` (to [0, 1]), ``quantize`` (round to 1/255), ``crop_border`` and ``y_channel``
    to ``[B, C, H, W]`` images in ``[0, 1]``; returns float64 tensors on the 0-1 scale."""
    if pred.shape != target.shape:
        raise ValueError(f"prediction shape {tuple(pred.shape)} != target shape {tuple(target.shape)}")
    p, t = pred.detach().double(), target.detach().double()
    if opts.clip:
        p = p.clamp(0.0, 1.0)
    if opts.quantize:
        p = torch.round(p * 255.0) / 255.0
    b = opts.crop_border
    if b:
        p, t = p[..., b:-b, b:-b], t[..., b:-b, b:-b]
    if opts.y_channel and p.shape[1] == 3:
        p, t = rgb_to_y(p), rgb_to_y(t)
    return p, t


class ValidSSIM(torchmetrics.Metric):
    """Mean per-image SSIM over the *valid* region (BasicSR / MATLAB ``ssim`` convention).

    torchmetrics' ``structural_similarity_index_measure`` reflect-pads the images and averages
    the SSIM map over every pixel; BasicSR (used for MAXIM's and most restoration papers' tables)
    averages only the windows that lie inside the image. This metric takes torchmetrics' full
    SSIM map (Gaussian window 11, sigma 1.5, ``K1 = 0.01, K2 = 0.03``) and drops its 5-pixel
    border, which leaves exactly the valid windows. Inputs ``[B, C, H, W]`` on the 0-1 scale,
    ``H, W >= 11``.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        from torchmetrics.functional.image import structural_similarity_index_measure as ssim

        if preds.shape != target.shape or preds.dim() != 4 or min(preds.shape[-2:]) < 11:
            raise ValueError(
                f"ValidSSIM: need equal [B, C, H, W] shapes with H, W >= 11, got {tuple(preds.shape)} "
                f"and {tuple(target.shape)}"
            )
        _, full = ssim(
            preds,
            target,
            gaussian_kernel=True,
            sigma=1.5,
            kernel_size=11,
            data_range=1.0,
            k1=0.01,
            k2=0.03,
            reduction="none",
            return_full_image=True,
        )
        per_image = full[..., 5:-5, 5:-5].reshape(full.shape[0], -1).double().mean(-1)
        self.total += per_image.sum()
        self.count += per_image.numel()

    def compute(self) -> torch.Tensor:
        return self.total / self.count


def psnr_ssim_metrics() -> dict[str, torchmetrics.Metric]:
    """``psnr`` (per image, averaged) and ``ssim`` (:class:`ValidSSIM`) on the 0-1 scale
    (PSNR is scale-invariant; SSIM's constants scale with ``data_range``)."""
    return {
        "psnr": torchmetrics.image.PeakSignalNoiseRatio(
            data_range=1.0, dim=(1, 2, 3), reduction="elementwise_mean"
        ),
        "ssim": ValidSSIM(),
    }
