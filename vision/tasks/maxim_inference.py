"""MAXIM inference as the official ``run_eval.py`` does it: odd-size padding and the x8 self-ensemble.

The official evaluation (``google-research/maxim``, ``maxim/run_eval.py``, ``_process_file``)
restores one image ``[H, W, C]`` in [0, 1] as follows, reproduced here on NCHW batches:

1. ``make_shape_even``: reflect-pad one row at the bottom if ``H`` is odd, one column at the
   right if ``W`` is odd (:func:`make_shape_even`);
2. ``mod_padding_symmetric(factor=64)``: reflect-pad ``pad // 2`` on *both* sides of each axis,
   ``pad = ceil_to(H_even, 64) - H_even`` (0 when already a multiple); the sizes are even after
   step 1, so the halves are whole (:func:`mod_padding_symmetric`);
3. with ``--geometric_ensemble``: the 8 views of :func:`geometric_views` (``np.rot90`` by
   ``k = 0..3``, then the same of the left-right flip), each restored, mapped back and averaged
   (:func:`merge_geometric_views`);
4. the last stage's full-scale output ``preds[-1][-1]``, cropped back: rows
   ``[H'/2 - H_even/2, ... + H)`` of the ``H'`` restored rows (the make-even row is dropped too),
   columns alike.

Reflect padding is numpy's ``mode="reflect"`` (edge not repeated) for *any* pad width: a pad wider
than the image reflects again (``np.pad``/``jnp.pad`` semantics; ``torch.nn.functional.pad``
refuses pads >= the size), so a 10 x 10 image padded to 64 x 64 works as in the official code.

Deviations: the official ensemble stacks the 8 views into one batch, which fails unless the
padded image is square; here views of equal shape are batched together and non-square images
work (same numbers). The official flag ``--ensemble_times`` is read but never defined (the script
fails with ``--geometric_ensemble``); ``times=8`` (rotations and flips) is its evident intent,
``times=4`` (rotations only) is its other branch. Batches of several images are allowed: every
step acts on each image alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch

__all__ = [
    "crop_run_eval",
    "geometric_views",
    "make_shape_even",
    "merge_geometric_views",
    "mod_padding_symmetric",
    "reflect_pad",
    "restore",
]

#: the official ``run_eval`` padding factor (the size multiple of every released MAXIM)
RUN_EVAL_FACTOR = 64


def _reflect_index(n: int, lo: int, hi: int, device: torch.device) -> torch.Tensor:
    """Source indices of numpy's ``reflect`` padding of an axis of length ``n`` by ``(lo, hi)``."""
    i = torch.arange(-lo, n + hi, device=device)
    if n == 1:
        return torch.zeros_like(i)
    period = 2 * (n - 1)
    m = torch.remainder(i, period)
    return torch.where(m >= n, period - m, m)


def reflect_pad(x: torch.Tensor, pads: tuple[int, int, int, int]) -> torch.Tensor:
    """Numpy-``reflect`` pad the last two axes of ``x`` ``[..., H, W]`` by ``(top, bottom, left, right)``.

    Same values as ``np.pad(x, ..., mode="reflect")`` for any non-negative widths (a pad wider
    than ``H - 1`` reflects again at the far edge).
    """
    top, bottom, left, right = pads
    if min(pads) < 0:
        raise ValueError(f"reflect_pad: pads must be >= 0, got (top, bottom, left, right)={pads}")
    h, w = x.shape[-2], x.shape[-1]
    if h == 0 or w == 0:
        raise ValueError(f"reflect_pad: cannot pad an empty image of shape {tuple(x.shape)}")
    if top or bottom:
        x = x.index_select(-2, _reflect_index(h, top, bottom, x.device))
    if left or right:
        x = x.index_select(-1, _reflect_index(w, left, right, x.device))
    return x


def make_shape_even(x: torch.Tensor) -> torch.Tensor:
    """Official ``make_shape_even`` on ``[..., H, W]``: one reflected row / column at the bottom /
    right where ``H`` / ``W`` is odd."""
    h, w = x.shape[-2], x.shape[-1]
    return reflect_pad(x, (0, h % 2, 0, w % 2))


def mod_padding_symmetric(x: torch.Tensor, factor: int = RUN_EVAL_FACTOR) -> torch.Tensor:
    """Official ``mod_padding_symmetric``: reflect-pad ``pad // 2`` on both sides of ``H`` and ``W``.

    ``pad = ((n + factor) // factor) * factor - n`` if ``n % factor`` else 0 (the official
    formula); for an odd ``pad`` one pixel less than ``pad`` is added, as there (which is why
    :func:`restore` makes the sizes even first).
    """
    if not isinstance(factor, int) or factor < 1:
        raise ValueError(f"mod_padding_symmetric: factor must be a positive int, got {factor!r}")
    h, w = x.shape[-2], x.shape[-1]
    padh = ((h + factor) // factor) * factor - h if h % factor else 0
    padw = ((w + factor) // factor) * factor - w if w % factor else 0
    return reflect_pad(x, (padh // 2, padh // 2, padw // 2, padw // 2))


def crop_run_eval(pred: torch.Tensor, size: tuple[int, int], even_size: tuple[int, int]) -> torch.Tensor:
    """Official unpadding: rows ``[H'//2 - H_even//2, +H)`` and columns alike of ``pred`` ``[..., H', W']``."""
    (h, w), (he, we) = size, even_size
    hs = pred.shape[-2] // 2 - he // 2
    ws = pred.shape[-1] // 2 - we // 2
    return pred[..., hs : hs + h, ws : ws + w]


def geometric_views(x: torch.Tensor, times: int = 8) -> list[torch.Tensor]:
    """Official ``augment_image`` on ``[..., H, W]``: ``rot90(x, k)`` for ``k = 0..3`` and, for
    ``times=8``, then ``rot90(fliplr(x), k)`` (``np.rot90`` on ``(H, W)`` = ``torch.rot90`` on
    ``(-2, -1)``; ``np.fliplr`` flips ``W``)."""
    if times not in (4, 8):
        raise ValueError(f"geometric_views: times must be 4 or 8 (the official options), got {times!r}")
    views = [torch.rot90(x, k, dims=(-2, -1)) for k in range(4)]
    if times == 8:
        flipped = torch.flip(x, dims=(-1,))
        views += [torch.rot90(flipped, k, dims=(-2, -1)) for k in range(4)]
    return views


def merge_geometric_views(preds: Sequence[torch.Tensor], times: int = 8) -> torch.Tensor:
    """Official ``deaugment_image``: undo each view's transform (``rot90(p, 4 - k)``, then
    ``fliplr`` for the flipped views) and average the ``times`` results."""
    if times not in (4, 8) or len(preds) != times:
        raise ValueError(f"merge_geometric_views: need times in (4, 8) predictions, got times={times!r}, {len(preds)} predictions")
    back = [torch.rot90(preds[k], 4 - k, dims=(-2, -1)) for k in range(4)]
    if times == 8:
        back += [torch.flip(torch.rot90(preds[4 + k], 4 - k, dims=(-2, -1)), dims=(-1,)) for k in range(4)]
    return torch.stack(back, dim=0).mean(dim=0)


def _final(out: Any) -> torch.Tensor:
    """``preds[-1][-1]`` of a multi-stage multi-scale output (as ``run_eval``), else the tensor."""
    while isinstance(out, (list, tuple)):
        out = out[-1]
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"restore: the model returned {type(out).__name__}, expected a tensor or nested lists of them")
    return out


def _run_views(fn: Callable[[torch.Tensor], Any], views: list[torch.Tensor]) -> list[torch.Tensor]:
    """``fn`` on each view, batching views of equal shape together (rotations swap H and W)."""
    out: list[torch.Tensor | None] = [None] * len(views)
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, v in enumerate(views):
        groups.setdefault(tuple(v.shape), []).append(i)
    for idx in groups.values():
        b = views[idx[0]].shape[0]
        pred = _final(fn(torch.cat([views[i] for i in idx], dim=0)))
        for n, i in enumerate(idx):
            out[i] = pred[n * b : (n + 1) * b]
    return [p for p in out if p is not None]


def restore(
    fn: Callable[[torch.Tensor], Any],
    x: torch.Tensor,
    *,
    padding: Literal["run_eval", "model"] = "run_eval",
    geometric_ensemble: bool = False,
    times: int = 8,
    factor: int = RUN_EVAL_FACTOR,
) -> torch.Tensor:
    """Restore ``x`` ``[B, C, H, W]`` (values in [0, 1]) with ``fn`` as the official ``run_eval``.

    Args:
        fn: the model: ``fn(batch)`` returns the restored batch, or MAXIM's nested
            ``outputs[stage][scale]`` (the last of the last is taken, as ``run_eval``).
        x: images ``[B, C, H, W]``, any ``H, W >= 1``.
        padding: ``"run_eval"``: make even, then symmetric reflect padding to ``factor``, crop
            back (see the module docstring); ``"model"``: ``fn`` gets ``x`` as it is (MAXIM
            then pads internally, :meth:`~gatelab.vision.models.maxim.Maxim.forward`).
        geometric_ensemble: average the ``times`` rotated / flipped views (``run_eval
            --geometric_ensemble``).
        times: 8 (rotations and flips) or 4 (rotations).
        factor: the padding multiple (``run_eval``: 64, the released models' size multiple).

    Returns ``[B, C_out, H, W]``. Runs under ``torch.no_grad()``; the caller sets eval mode.
    """
    if x.dim() != 4:
        raise ValueError(f"restore: x must be [B, C, H, W], got shape {tuple(x.shape)}")
    if padding not in ("run_eval", "model"):
        raise ValueError(f"restore: padding={padding!r}: expected 'run_eval' or 'model'")
    h, w = x.shape[-2], x.shape[-1]
    with torch.no_grad():
        xp = x
        if padding == "run_eval":
            xp = make_shape_even(xp)
        even = (xp.shape[-2], xp.shape[-1])
        if padding == "run_eval":
            xp = mod_padding_symmetric(xp, factor)
        if geometric_ensemble:
            pred = merge_geometric_views(_run_views(fn, geometric_views(xp, times)), times)
        else:
            pred = _final(fn(xp))
        if padding == "run_eval":
            return crop_run_eval(pred, (h, w), even)
        return pred
