"""FastDropout (core/layers/dropout.py): statistics, exact unbiased scaling, gradient, paths.

Tolerances: the drop fraction of 2e6 draws is within 5 standard deviations of ``p' = round(p *
32768) / 32768`` (binomial); values are compared exactly (``torch.equal``) where the math is
exact.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gatelab.core.layers.dropout import FastDropout, fast_dropout


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 0.9])
def test_drop_fraction_and_scale(p):
    torch.manual_seed(0)
    n = 2_000_001  # odd: the last half-draw is cut off
    y = fast_dropout(torch.ones(n), p)
    q = round(p * 32768) / 32768
    dropped = (y == 0).double().mean().item()
    assert abs(dropped - q) < 5 * math.sqrt(q * (1 - q) / n)
    kept = y[y != 0]
    assert torch.equal(kept, torch.full_like(kept, 1.0 / (1.0 - q)))  # one scale, E[y] = x exactly


def test_every_lane_is_uniform():
    """Both 16-bit halves of each draw feed elements: even and odd positions drop alike."""
    torch.manual_seed(1)
    y = fast_dropout(torch.ones(1_000_000), 0.5)
    for lane in (y[0::2], y[1::2]):
        assert abs((lane == 0).double().mean().item() - 0.5) < 5 * math.sqrt(0.25 / lane.numel())


def test_gradient_is_the_mask_and_seed_reproducible():
    x = torch.randn(7, 5, dtype=torch.float64, requires_grad=True)
    torch.manual_seed(3)
    y = fast_dropout(x, 0.25)
    y.backward(torch.ones_like(y))
    scale = 32768 / (32768 - round(0.25 * 32768))
    assert set(x.grad.unique().tolist()) <= {0.0, scale}
    assert torch.equal(y.detach(), x.detach() * x.grad)  # y = x * mask, d y / d x = mask
    torch.manual_seed(3)
    assert torch.equal(fast_dropout(x.detach(), 0.25), y.detach())


def test_paths_and_module():
    x = torch.randn(4, 3)
    m = FastDropout(0.2)
    assert isinstance(m, nn.Dropout) and not list(m.parameters())
    m.eval()
    assert m(x) is x
    assert fast_dropout(x, 0.0) is x
    assert torch.equal(fast_dropout(x, 1.0), torch.zeros_like(x))
    assert fast_dropout(torch.ones(1000, dtype=torch.bfloat16), 0.5).dtype == torch.bfloat16
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\], got 1.5"):
        fast_dropout(x, 1.5)
    with pytest.raises(ValueError, match="inplace"):
        FastDropout(0.1, inplace=True)
