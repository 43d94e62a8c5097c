"""Sliding-window inference for dense prediction on images and volumes larger than the training patch.

``sliding_window_inference(x, roi_size, predictor)`` tiles ``x [B, C, *S]`` with windows of
``roi_size`` overlapping by ``overlap`` (fraction of the window), runs ``predictor`` on batches of
windows and blends the window outputs with an importance map ``w``::

    y(p) = sum_windows w(p - start) * f(x[window])(p - start) / sum_windows w(p - start)

``mode="constant"``: ``w = 1`` (plain average); ``mode="gaussian"``: ``w`` is a Gaussian centred on
the window with ``sigma = sigma_scale * roi_size`` per axis (nnU-Net / MONAI's choice: window
borders, which see less context, count less), floored at its smallest positive value so every
pixel has weight. Window starts per axis: ``0, step, 2 step, ...`` with
``step = max(1, round(roi * (1 - overlap)))``, plus a last window flush with the far edge. Inputs
smaller than the window are zero-padded (``pad_value``) at the far end and the output cropped back.

Written for gatelab (no MONAI dependency); same semantics as MONAI's
``sliding_window_inference`` with ``padding_mode="constant"``, except that padding is at the far end only.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

__all__ = ["importance_map", "sliding_window_inference", "window_starts"]

MODES = ("constant", "gaussian")


def window_starts(size: int, roi: int, overlap: float) -> list[int]:
    """Start offsets of the windows along one axis (the last one ends at ``size``)."""
    if roi >= size:
        return [0]
    step = max(1, round(roi * (1.0 - overlap)))
    starts = list(range(0, size - roi + 1, step))
    if starts[-1] != size - roi:
        starts.append(size - roi)
    return starts


def importance_map(
    roi_size: Sequence[int],
    mode: str = "gaussian",
    sigma_scale: float = 0.125,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Window weights ``[*roi_size]``: ones, or a separable Gaussian (see the module docstring)."""
    if mode not in MODES:
        raise ValueError(f"sliding window mode={mode!r} is not one of {MODES}")
    if mode == "constant":
        return torch.ones(tuple(roi_size), device=device, dtype=dtype)
    w = torch.ones((), device=device, dtype=torch.float64)
    for n in roi_size:
        center = (n - 1) / 2.0
        sigma = max(sigma_scale * n, 1e-3)
        g = torch.exp(-0.5 * ((torch.arange(n, device=device, dtype=torch.float64) - center) / sigma) ** 2)
        w = w.unsqueeze(-1) * g
    w = w / w.max()
    w = torch.clamp(w, min=float(w[w > 0].min()))
    return w.to(dtype)


def sliding_window_inference(
    inputs: torch.Tensor,
    roi_size: int | Sequence[int],
    predictor: Callable[[torch.Tensor], torch.Tensor],
    *,
    overlap: float = 0.5,
    mode: str = "gaussian",
    sigma_scale: float = 0.125,
    sw_batch_size: int = 4,
    pad_value: float = 0.0,
) -> torch.Tensor:
    """Blend ``predictor`` over overlapping windows of ``inputs [B, C, *S]``; returns ``[B, K, *S]``.

    Args:
        inputs: a batch of images (``[B, C, H, W]``) or volumes (``[B, C, D, H, W]``).
        roi_size: window size (int for every axis, or one per axis).
        predictor: ``f([N, C, *roi]) -> [N, K, *roi]`` (e.g. ``model`` in eval mode).
        overlap: window overlap in ``[0, 1)``.
        mode: ``"gaussian"`` or ``"constant"`` importance weighting.
        sigma_scale: Gaussian ``sigma`` as a fraction of the window size.
        sw_batch_size: windows per ``predictor`` call (over all batch items).
        pad_value: fill value when an input is smaller than the window.
    """
    nd = inputs.dim() - 2
    if nd < 1:
        raise ValueError(
            f"sliding_window_inference: inputs must be [B, C, *spatial], got {tuple(inputs.shape)}"
        )
    roi = (roi_size,) * nd if isinstance(roi_size, int) else tuple(int(r) for r in roi_size)
    if len(roi) != nd or any(r < 1 for r in roi):
        raise ValueError(f"sliding_window_inference: roi_size {roi_size!r} must give {nd} positive sizes")
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"sliding_window_inference: overlap must be in [0, 1), got {overlap}")
    if sw_batch_size < 1:
        raise ValueError(f"sliding_window_inference: sw_batch_size must be >= 1, got {sw_batch_size}")
    size = tuple(inputs.shape[2:])
    padded = tuple(max(s, r) for s, r in zip(size, roi, strict=True))
    x = inputs
    if padded != size:
        pad: list[int] = []
        for s, p in zip(reversed(size), reversed(padded), strict=True):
            pad += [0, p - s]
        x = F.pad(inputs, pad, value=pad_value)
    starts = list(
        itertools.product(*(window_starts(p, r, overlap) for p, r in zip(padded, roi, strict=True)))
    )
    batch = inputs.shape[0]
    weight = importance_map(roi, mode, sigma_scale, device=inputs.device)
    out: torch.Tensor | None = None
    norm = torch.zeros(padded, device=inputs.device, dtype=torch.float32)
    per_call = max(1, sw_batch_size // batch) if batch <= sw_batch_size else 1
    for i in range(0, len(starts), per_call):
        chunk = starts[i : i + per_call]
        slices = [tuple(slice(s, s + r) for s, r in zip(st, roi, strict=True)) for st in chunk]
        windows = torch.cat([x[(slice(None), slice(None), *sl)] for sl in slices], dim=0)
        pred = predictor(windows)
        if (
            not isinstance(pred, torch.Tensor)
            or pred.shape[0] != windows.shape[0]
            or tuple(pred.shape[2:]) != roi
        ):
            shape = tuple(pred.shape) if isinstance(pred, torch.Tensor) else type(pred).__name__
            raise ValueError(
                f"sliding_window_inference: predictor must map [N, C, *{roi}] to [N, K, *{roi}], got {shape}"
            )
        if out is None:
            out = torch.zeros((batch, pred.shape[1], *padded), device=inputs.device, dtype=torch.float32)
        pred = pred.float() * weight
        for k, sl in enumerate(slices):
            out[(slice(None), slice(None), *sl)] += pred[k * batch : (k + 1) * batch]
            norm[sl] += weight
    assert out is not None
    out = out / norm
    crop = tuple(slice(0, s) for s in size)
    return out[(slice(None), slice(None), *crop)].to(
        inputs.dtype if inputs.is_floating_point() else torch.float32
    )
