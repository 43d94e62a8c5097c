"""Dropout whose mask costs half a 32-bit random draw per element instead of a Bernoulli sample.

On CPU, PyTorch's dropout draws its mask with ``bernoulli_`` (one Mersenne-Twister draw and a
float compare per element, about 50x the cost of the multiply that applies it); in small models
such as TFT at ``d_model = 16`` this is the largest single cost of a training step.
:class:`FastDropout` draws ``ceil(N / 2)`` integers with ``random_()`` (uniform on ``[0, 2^31)``),
reads each as two 16-bit halves and keeps 15 uniform bits of each, ``u`` on ``[0, 32768)``; an
element is kept when ``u >= t`` with ``t = round(p * 32768)``: the drop probability is
``p' = t / 32768`` (``|p' - p| <= 2^-16``, e.g. ``p = 0.1`` drops with ``0.100006``), and kept
values are scaled by ``1 / (1 - p')`` so the expectation is exactly the input. One mask tensor ``m = keep / (1 - p')`` is built and the output
is ``x * m`` (autograd saves ``m``: the backward is ``grad * m``).

Paths: eval mode or ``p = 0`` return the input; ``p = 1`` returns zeros; inside ``torch.compile``
the layer calls ``torch.nn.functional.dropout`` (the compiler generates its own fast random
numbers); on CUDA too (its Philox dropout is already fast). The random stream is the global
(or the tensor's device) generator, so ``torch.manual_seed`` makes masks reproducible.

Deviations from ``torch.nn.Dropout``: the drop probability is quantised to ``1/32768`` (above)
and the masks differ from ``nn.Dropout``'s for the same seed. ``inplace=True`` is not supported.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FastDropout", "fast_dropout"]

_LEVELS = 32768  # 15 random bits per element


def fast_dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """Functional :class:`FastDropout`: ``x * keep / (1 - p')`` (see the module docstring).

    Shapes: any ``x``; returns ``x``'s shape and dtype.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"fast_dropout: p must be in [0, 1], got {p!r}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    if x.device.type != "cpu" or not x.is_floating_point() or torch.compiler.is_compiling():
        return F.dropout(x, p, True)
    t = round(p * _LEVELS)
    if t == 0:
        return x
    if t == _LEVELS:
        return x * 0.0
    n = x.numel()
    bits = torch.empty((n + 1) // 2, dtype=torch.int32, device=x.device).random_()
    # the low half of each draw has 16 uniform bits, the high half 15 (the sign bit is 0): keep 15
    u = bits.view(torch.int16)[:n].view(x.shape).bitwise_and_(_LEVELS - 1)  # uniform on [0, 32768)
    # integers: clamp(u - (t - 1), 0, 1) is 1 exactly when u >= t (in-place float ops are much
    # cheaper on CPU than torch.where or a bool mask)
    # in float32 at least (bfloat16 cannot hold every integer below 32768)
    dt = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    mask = u.to(dt).sub_(t - 1).clamp_(0.0, 1.0).mul_(_LEVELS / (_LEVELS - t)).to(x.dtype)
    return x * mask


class FastDropout(nn.Dropout):
    """``nn.Dropout`` with a cheaper mask on CPU (:func:`fast_dropout`); same ``p``, same module
    interface (``isinstance(m, nn.Dropout)`` holds, no parameters or buffers)."""

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        if inplace:
            raise ValueError("FastDropout: inplace=True is not supported")
        super().__init__(p, inplace=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fast_dropout(x, self.p, self.training)
