"""The one cheap CPU dropout of gatelab: a keep mask from 16-bit random integers.

On CPU, PyTorch's dropout draws its mask with ``bernoulli_`` (one generator call and a float
compare per element, far more than the multiply that applies it); in the small and narrow layers
of TFT, Gateformer/iTransformer and the CTR MLPs this is a large part of a training step.
:func:`dropout_mask` instead draws ``ceil(N / 4)`` uniform 64-bit words with ``random_()`` and
reads each as four 16-bit integers ``u`` (uniform on ``[0, 65536)``); an element is kept when
``u >= t`` with ``t = round(p * 65536)``, so the drop probability is ``p' = t / 65536``:

* ``|p' - p| <= 2^-17`` (7.6e-6), and ``p' = p`` exactly when ``65536 p`` is an integer
  (``p = 0.5, 0.25, 0.125, ...``); e.g. ``p = 0.1`` drops with ``0.100006``, ``0.3`` with ``0.300003``;
* kept values are scaled by ``1 / (1 - p')``, so ``E[mask] = 1`` exactly (the expectation of the
  output is the input, whatever the rounding);
* ``p < 2^-17`` rounds to ``p' = 0`` (nothing dropped), ``p > 1 - 2^-17`` to ``p' = 1`` (all dropped).

Why this algorithm (issue 17 follow-up: three domain copies merged into this one). An
interleaved in-process microbenchmark, one thread, torch 2.14, the shared 2-core CPU, median of 7
rounds per shape, ``p`` in {0.1, 0.5}, time relative to the 31-bit compare
(``random_()`` on ``int32`` per element, ``< round((1 - p) 2^31)``, exact to ``2^-31``; the former
Gateformer ``dropout_noise``), shapes ``[128, 16]``, ``[1024, 64]``, ``[4096, 400]`` and attention
``[32 | 224, 8, 13, 13]``, ``[32, 8, 21, 21]``:

* 16-bit lanes of 64-bit draws, float ``clamp`` compare (this module): 0.44-0.72x (1.13x on
  ``[128, 16]``, where the fixed per-call cost dominates);
* 15-bit lanes of 31-bit draws (the former ``FastDropout``, ``p`` to ``2^-16``): 0.46-0.71x,
  1.3x on ``[128, 16]``;
* random bytes / 16-bit with a bool mask and ``masked_fill`` (the former recsys ``dropout_keep``):
  0.85-1.9x;
* ``bernoulli_``: 1.5-3.7x.

The 16-bit mask is about 1.5-2x faster than the exact 31-bit compare on every shape above
``[128, 16]`` (a clear margin), and of the two equally fast ones the more exact, so it is the one
kept; its ``p`` error of at most ``2^-17`` is far below the sampling noise of any dropout rate
(the scale keeps the expectation exact). These are one noisy run's numbers, not a benchmark record.

Paths (all of :func:`fast_dropout`, :class:`FastDropout`, :func:`relu_dropout`): evaluation mode
or ``p = 0`` return the input (``relu`` of it); ``p = 1`` returns zeros; off the CPU, for a
non-floating tensor, or inside ``torch.compile`` they call ``torch.nn.functional.dropout`` (CUDA's
Philox dropout is already fast, and the compiler generates its own random numbers). The random
stream is the global CPU generator, so ``torch.manual_seed`` makes masks reproducible.

Deviations from ``torch.nn.Dropout``: ``p`` rounded as above, and the masks differ from
``nn.Dropout``'s for the same seed (another random stream). ``FastDropout(inplace=True)`` is not supported.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FastDropout", "dropout_mask", "fast_dropout", "relu_dropout"]

_LEVELS = 65536  # 16 random bits per element


def _check_p(name: str, p: float) -> None:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name}: p must be in [0, 1], got {p!r}")


def _slow_path(x: torch.Tensor) -> bool:
    """True where the mask of :func:`dropout_mask` is not used: off the CPU, a non-float tensor,
    or while ``torch.compile`` traces."""
    return x.device.type != "cpu" or not x.is_floating_point() or torch.compiler.is_compiling()


def dropout_mask(x: torch.Tensor, p: float) -> torch.Tensor:
    """The scaled keep mask of inverted dropout: ``keep / (1 - p')`` with ``P(keep) = 1 - p'``.

    ``p' = round(p * 65536) / 65536`` (module docstring: ``|p' - p| <= 2^-17``, ``E[mask] = 1``
    exactly). Shapes: returns a tensor of ``x``'s shape, dtype and device holding ``0`` and
    ``1 / (1 - p')`` (no gradient; ``x``'s values are not read). On the CPU the 16-bit-integer
    mask; elsewhere ``bernoulli_(1 - p)`` (exact ``p``). ``p = 1`` gives zeros.
    """
    _check_p("dropout_mask", p)
    if x.device.type != "cpu" or not x.is_floating_point():
        if p == 1.0:
            return torch.zeros_like(x)
        return torch.empty_like(x).bernoulli_(1.0 - p).div_(1.0 - p)
    t = round(p * _LEVELS)
    if t == 0:
        return torch.ones_like(x)
    if t == _LEVELS:
        return torch.zeros_like(x)
    n = x.numel()
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=x.device)
    words.random_(-(2**63), 2**63 - 1)  # all 64 bits uniform (bias 2^-64: the range excludes one value)
    u = words.view(torch.int16)[:n].view(x.shape)  # uniform on [-32768, 32768), so u + 32768 is uniform on [0, 65536)
    # in float32 at least (bfloat16 cannot hold every integer below 32768); clamp(u - c, 0, 1) is 1
    # exactly when u + 32768 >= t (in-place float ops are cheaper on CPU than a bool mask + where)
    dt = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    mask = u.to(dt).sub_(t - _LEVELS // 2 - 1).clamp_(0.0, 1.0).mul_(_LEVELS / (_LEVELS - t))
    return mask.to(x.dtype)


def fast_dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """Inverted dropout ``x * dropout_mask(x, p)`` (see the module docstring for paths and ``p``).

    Shapes: any ``x``; returns ``x``'s shape and dtype. The backward is ``grad * mask``.
    """
    _check_p("fast_dropout", p)
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    if _slow_path(x):
        return F.dropout(x, p, True)
    return x * dropout_mask(x, p)


class FastDropout(nn.Dropout):
    """``nn.Dropout`` with the cheaper CPU mask (:func:`fast_dropout`); same ``p``, same module
    interface (``isinstance(m, nn.Dropout)`` holds, no parameters or buffers)."""

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        if inplace:
            raise ValueError("FastDropout: inplace=True is not supported")
        super().__init__(p, inplace=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fast_dropout(x, self.p, self.training)


class _ReLUDropout(torch.autograd.Function):
    """``relu(x) * mask`` (in place of ``x`` when ``inplace``; then ``x`` must be a fresh
    intermediate nobody else saved). Saves only the output: ``dx = dout * scale`` where the output
    is positive, else 0 (the output is positive exactly where ``x > 0`` and the element is kept)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, x: torch.Tensor, mask: torch.Tensor, scale: float, inplace: bool
    ) -> torch.Tensor:
        if inplace:
            ctx.mark_dirty(x)
            out = x.clamp_min_(0.0)
        else:
            out = x.clamp_min(0.0)
        out.mul_(mask)
        ctx.save_for_backward(out)
        ctx.scale = scale
        return out

    @staticmethod
    def backward(ctx: Any, dout: torch.Tensor) -> tuple[torch.Tensor, None, None, None]:  # type: ignore[override]
        (out,) = ctx.saved_tensors
        return torch.ops.aten.threshold_backward(dout, out, 0.0).mul_(ctx.scale), None, None, None


def relu_dropout(x: torch.Tensor, p: float, training: bool = True, *, inplace: bool = False) -> torch.Tensor:
    """``fast_dropout(relu(x), p, training)`` as one autograd node on the CPU.

    Equal to ``relu(x) * dropout_mask(x, p)`` with the same draws (same seed). With
    ``inplace=True`` ``x`` is overwritten (only for a fresh intermediate such as a ``Linear`` or
    ``BatchNorm1d`` output). Saves only the output, which the next ``Linear`` saves anyway.
    Fallbacks as :func:`fast_dropout` (eval / ``p = 0``: ``relu``; off the CPU or compiling:
    ``F.dropout(F.relu(x))``). Shapes: any -> same.
    """
    _check_p("relu_dropout", p)
    if not training or p == 0.0:
        return torch.relu_(x) if inplace else torch.relu(x)
    if p == 1.0:
        return x.mul_(0.0) if inplace else x * 0.0
    if _slow_path(x):
        return F.dropout(F.relu(x, inplace=inplace), p, True)
    t = round(p * _LEVELS)
    scale = _LEVELS / (_LEVELS - t) if t < _LEVELS else 0.0
    return _ReLUDropout.apply(x, dropout_mask(x, p), scale, inplace)
