"""Sliding-window inference for dense prediction on images and volumes larger than the training patch.

``sliding_window_inference(x, roi_size, predictor)`` tiles ``x [B, C, *S]`` with windows of
``roi_size`` overlapping by ``overlap`` (fraction of the window), runs ``predictor`` on batches of
windows and blends the window outputs with an importance map ``w``::

    y(p) = sum_windows w(p - start) * f(x[window])(p - start) / sum_windows w(p - start)

``mode="constant"``: ``w = 1`` (plain average); ``mode="gaussian"``: ``w`` is MONAI's
``compute_importance_map`` (monai.data.utils, MONAI 1.6): per axis of size ``n`` the untruncated
Gaussian ``exp(-t^2 / (2 sigma^2))`` at ``t = -(n-1)/2 .. (n-1)/2`` with
``sigma = sigma_scale * n``, multiplied over the axes (peak 1 only for odd sizes; no rescaling),
then floored at ``max(min(w), 1e-3)`` so every pixel has weight (window borders, which see less
context, count less: nnU-Net / MONAI's choice). ``importance_map`` equals MONAI's to float32
rounding (tests/vision/tasks/test_inference.py compares them when MONAI is installed). MONAI has no
3-sigma truncation in this function (older MONAI versions built the map by Gaussian-filtering a
delta image, truncated at 4 sigma, and normalised it by its maximum; the blend is unchanged by
that scale).

Predictors may return attention maps: ``predictor(windows) -> (logits, maps)`` with ``maps`` a
mapping ``name -> [N, G, *s]`` (e.g. :class:`~gatelab.vision.models.unet.UNet` with
``return_attention=True``: one map per gated level at that level's resolution). Each map is
resampled to the window grid (``F.interpolate``, (bi/tri)linear, ``align_corners=False``) and
blended with the same weights as the logits; the call then returns ``(logits, maps)`` with maps
``[B, G, *S]`` at the input's resolution.

``mirror_axes`` (test-time augmentation, nnU-Net's mirroring): every window is also predicted
flipped over each non-empty subset of the given spatial axes (``2^k`` passes for ``k`` axes);
the outputs (logits and maps) are flipped back and averaged before blending.

Window starts per axis: ``0, step, 2 step, ...`` with ``step = max(1, round(roi * (1 - overlap)))``,
plus a last window flush with the far edge. Inputs smaller than the window are zero-padded
(``pad_value``) at the far end and the output cropped back. Written for gatelab (no MONAI
dependency). Differences from MONAI's ``sliding_window_inference`` (``padding_mode="constant"``):
MONAI pads symmetrically (ours: at the far end only) and its step is ``floor`` instead of
``round`` of ``roi * (1 - overlap)``; the weights are the same.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, overload

import torch
import torch.nn.functional as F

__all__ = ["importance_map", "mirror_predictor", "sliding_window_inference", "window_starts"]

MODES = ("constant", "gaussian")
#: the floor of the Gaussian importance map (MONAI's ``compute_importance_map``)
MIN_WEIGHT = 1e-3

Prediction = torch.Tensor | tuple[torch.Tensor, Mapping[str, torch.Tensor]]


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
    sigma_scale: float | Sequence[float] = 0.125,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Window weights ``[*roi_size]``: ones, or MONAI's Gaussian (see the module docstring).

    ``sigma_scale``: one fraction for every axis or one per axis (``sigma = sigma_scale * n``).
    """
    if mode not in MODES:
        raise ValueError(f"sliding window mode={mode!r} is not one of {MODES}")
    roi = tuple(int(n) for n in roi_size)
    if mode == "constant":
        return torch.ones(roi, device=device, dtype=dtype)
    scales = (float(sigma_scale),) * len(roi) if isinstance(sigma_scale, (int, float)) else tuple(sigma_scale)
    if len(scales) != len(roi) or any(s <= 0 for s in scales):
        raise ValueError(
            f"importance_map: sigma_scale={sigma_scale!r} must be positive, one value or one per axis of {roi}"
        )
    w = torch.ones((), device=device, dtype=torch.float32)
    for n, s in zip(roi, scales, strict=True):
        t = torch.arange(-(n - 1) / 2.0, (n - 1) / 2.0 + 1, dtype=torch.float32, device=device)
        g = torch.exp(t**2 / (-2 * (n * s) ** 2))
        w = w.unsqueeze(-1) * g
    floor = max(float(w.min()), MIN_WEIGHT)
    return torch.clamp(w, min=floor).to(dtype)


def _split(pred: Any, n: int, roi: tuple[int, ...]) -> tuple[torch.Tensor, dict[str, torch.Tensor] | None]:
    """``(logits, maps or None)`` of one predictor output, checked against ``[n, K, *roi]``."""
    maps: dict[str, torch.Tensor] | None = None
    logits = pred
    if isinstance(pred, (tuple, list)):
        if len(pred) != 2 or not isinstance(pred[1], Mapping):
            raise ValueError(
                "sliding_window_inference: a predictor returning a tuple must return (logits, maps) with maps a "
                f"mapping name -> [N, G, *s], got a {type(pred).__name__} of {len(pred)} items"
            )
        logits, maps = pred[0], dict(pred[1])
    if not isinstance(logits, torch.Tensor) or logits.shape[0] != n or tuple(logits.shape[2:]) != roi:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(
            f"sliding_window_inference: predictor must map [N, C, *{roi}] to [N, K, *{roi}] "
            f"(or ([N, K, *{roi}], maps)), got {shape}"
        )
    if maps is not None:
        for name, m in maps.items():
            if not isinstance(m, torch.Tensor) or m.dim() != len(roi) + 2 or m.shape[0] != n:
                shape = tuple(m.shape) if isinstance(m, torch.Tensor) else type(m).__name__
                raise ValueError(
                    f"sliding_window_inference: attention map {name!r} must be [N={n}, G, *s] with "
                    f"{len(roi)} spatial axes, got {shape}"
                )
    return logits, maps


def mirror_predictor(
    predictor: Callable[[torch.Tensor], Prediction], axes: Sequence[int], spatial_dims: int
) -> Callable[[torch.Tensor], Prediction]:
    """``predictor`` averaged over mirrored inputs (test-time augmentation).

    For every subset of ``axes`` (spatial axes, ``0 .. spatial_dims - 1``; the empty subset is
    the input as is) the input is flipped over those axes, predicted, and the output flipped back;
    the ``2^len(axes)`` outputs are averaged. Outputs ``(logits, maps)`` have each map flipped
    back at its own resolution and averaged too.
    """
    ax = tuple(int(a) for a in axes)
    if not ax or len(set(ax)) != len(ax) or any(not 0 <= a < spatial_dims for a in ax):
        raise ValueError(
            f"mirror_axes={tuple(axes)!r}: need distinct spatial axes in [0, {spatial_dims - 1}] (at least one)"
        )
    combos = [tuple(2 + a for a in c) for k in range(len(ax) + 1) for c in itertools.combinations(ax, k)]

    def mirrored(x: torch.Tensor) -> Prediction:
        total: torch.Tensor | None = None
        total_maps: dict[str, torch.Tensor] | None = None
        with_maps = False
        for dims in combos:
            out = predictor(x.flip(dims) if dims else x)
            logits, maps = _split(out, x.shape[0], tuple(x.shape[2:]))
            with_maps = maps is not None
            logits = logits.float().flip(dims) if dims else logits.float()
            total = logits if total is None else total + logits
            if maps is not None:
                flipped = {k: (m.float().flip(dims) if dims else m.float()) for k, m in maps.items()}
                if total_maps is None:
                    total_maps = flipped
                else:
                    if set(flipped) != set(total_maps):
                        raise ValueError("mirror_predictor: the predictor returned different map names per pass")
                    total_maps = {k: total_maps[k] + flipped[k] for k in total_maps}
        assert total is not None
        mean = total / len(combos)
        if with_maps and total_maps is not None:
            return mean, {k: v / len(combos) for k, v in total_maps.items()}
        return mean

    return mirrored


@overload
def sliding_window_inference(
    inputs: torch.Tensor,
    roi_size: int | Sequence[int],
    predictor: Callable[[torch.Tensor], torch.Tensor],
    *,
    overlap: float = ...,
    mode: str = ...,
    sigma_scale: float | Sequence[float] = ...,
    sw_batch_size: int = ...,
    pad_value: float = ...,
    mirror_axes: Sequence[int] | None = ...,
) -> torch.Tensor: ...


@overload
def sliding_window_inference(
    inputs: torch.Tensor,
    roi_size: int | Sequence[int],
    predictor: Callable[[torch.Tensor], tuple[torch.Tensor, Mapping[str, torch.Tensor]]],
    *,
    overlap: float = ...,
    mode: str = ...,
    sigma_scale: float | Sequence[float] = ...,
    sw_batch_size: int = ...,
    pad_value: float = ...,
    mirror_axes: Sequence[int] | None = ...,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]: ...


def sliding_window_inference(
    inputs: torch.Tensor,
    roi_size: int | Sequence[int],
    predictor: Callable[[torch.Tensor], Any],
    *,
    overlap: float = 0.5,
    mode: str = "gaussian",
    sigma_scale: float | Sequence[float] = 0.125,
    sw_batch_size: int = 4,
    pad_value: float = 0.0,
    mirror_axes: Sequence[int] | None = None,
) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Blend ``predictor`` over overlapping windows of ``inputs [B, C, *S]``; returns ``[B, K, *S]``
    (or ``([B, K, *S], {name: [B, G, *S]})`` when the predictor returns attention maps).

    Args:
        inputs: a batch of images (``[B, C, H, W]``) or volumes (``[B, C, D, H, W]``).
        roi_size: window size (int for every axis, or one per axis).
        predictor: ``f([N, C, *roi]) -> [N, K, *roi]`` (e.g. ``model`` in eval mode), or
            ``-> ([N, K, *roi], {name: [N, G, *s]})`` (maps at any resolution, resampled to the window).
        overlap: window overlap in ``[0, 1)``.
        mode: ``"gaussian"`` or ``"constant"`` importance weighting.
        sigma_scale: Gaussian ``sigma`` as a fraction of the window size (one, or one per axis).
        sw_batch_size: windows per ``predictor`` call (over all batch items).
        pad_value: fill value when an input is smaller than the window.
        mirror_axes: spatial axes (``0 .. nd-1``) for mirror test-time augmentation
            (:func:`mirror_predictor`); ``None``: off.
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
    if mirror_axes is not None:
        predictor = mirror_predictor(predictor, mirror_axes, nd)
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
    out_maps: dict[str, torch.Tensor] | None = None
    norm = torch.zeros(padded, device=inputs.device, dtype=torch.float32)
    per_call = max(1, sw_batch_size // batch) if batch <= sw_batch_size else 1
    interp = {1: "linear", 2: "bilinear", 3: "trilinear"}.get(nd, "nearest")
    for i in range(0, len(starts), per_call):
        chunk = starts[i : i + per_call]
        slices = [tuple(slice(s, s + r) for s, r in zip(st, roi, strict=True)) for st in chunk]
        windows = torch.cat([x[(slice(None), slice(None), *sl)] for sl in slices], dim=0)
        pred, maps = _split(predictor(windows), windows.shape[0], roi)
        if out is None:
            out = torch.zeros((batch, pred.shape[1], *padded), device=inputs.device, dtype=torch.float32)
            if maps is not None:
                out_maps = {
                    k: torch.zeros((batch, m.shape[1], *padded), device=inputs.device, dtype=torch.float32)
                    for k, m in maps.items()
                }
        if (maps is None) != (out_maps is None) or (maps is not None and set(maps) != set(out_maps or {})):
            raise ValueError("sliding_window_inference: the predictor returned attention maps for some windows only")
        pred = pred.float() * weight
        resized: dict[str, torch.Tensor] = {}
        for k, m in (maps or {}).items():
            m = m.float()
            if tuple(m.shape[2:]) != roi:
                m = F.interpolate(m, size=roi, mode=interp, align_corners=False)
            resized[k] = m * weight
        for j, sl in enumerate(slices):
            region = (slice(None), slice(None), *sl)
            out[region] += pred[j * batch : (j + 1) * batch]
            for k, m in resized.items():
                assert out_maps is not None
                out_maps[k][region] += m[j * batch : (j + 1) * batch]
            norm[sl] += weight
    assert out is not None
    crop = (slice(None), slice(None), *(slice(0, s) for s in size))
    dtype = inputs.dtype if inputs.is_floating_point() else torch.float32
    logits = (out / norm)[crop].to(dtype)
    if out_maps is None:
        return logits
    return logits, {k: (v / norm)[crop].to(dtype) for k, v in out_maps.items()}
