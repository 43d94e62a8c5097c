"""The one cheap CPU dropout (core/layers/dropout.py): dropout_mask, fast_dropout, FastDropout,
relu_dropout. Drop-rate statistics, exact unbiased scaling, gradients, seeding, fallbacks.

Tolerances: drop fractions of ``n`` draws are within 5 binomial standard deviations of
``p' = round(p * 65536) / 65536``; values are compared exactly (``torch.equal``) where the math
is exact, else float32 ``assert_close`` defaults.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gatelab.core.layers import dropout as core_dropout
from gatelab.core.layers.dropout import FastDropout, dropout_mask, fast_dropout, relu_dropout


def rounded(p: float) -> float:
    return round(p * 65536) / 65536


def within_5_sigma(frac: float, q: float, n: int) -> bool:
    return abs(frac - q) < 5 * math.sqrt(q * (1 - q) / n)


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 0.9])
def test_drop_fraction_and_scale(p):
    torch.manual_seed(0)
    n = 1_000_003  # not a multiple of 4: the last draw is cut
    y = fast_dropout(torch.ones(n), p)
    q = rounded(p)
    assert abs(q - p) <= 2**-17  # the documented bound
    assert within_5_sigma((y == 0).double().mean().item(), q, n)
    kept = y[y != 0]
    assert torch.equal(kept, torch.full_like(kept, 1.0 / (1.0 - q)))  # one scale: E[y] = x exactly


def test_every_lane_is_uniform():
    """All four 16-bit lanes of each 64-bit draw feed elements: positions mod 4 drop alike."""
    torch.manual_seed(1)
    m = dropout_mask(torch.empty(1_000_000), 0.5)
    for lane in range(4):
        sub = m[lane::4]
        assert within_5_sigma((sub == 0).double().mean().item(), 0.5, sub.numel()), lane


def test_threshold_is_exact_on_known_bits(monkeypatch):
    """The compare itself: with the generator's words replaced by known 16-bit lanes ``u``
    (signed, uniform on [-32768, 32768) when the words are uniform), an element is kept exactly
    when ``u + 32768 >= t``, ``t = round(p * 65536)``."""
    p = 0.3
    t = round(p * 65536)
    lanes = torch.tensor([-32768, t - 32769, t - 32768, t - 32767, 32767, -1, 0, 1], dtype=torch.int16)
    words = lanes.view(torch.int64)  # two 64-bit words, four lanes each

    def fake_random_(self, *args, **kwargs):
        return self.copy_(words[: self.numel()])

    monkeypatch.setattr(torch.Tensor, "random_", fake_random_)
    m = dropout_mask(torch.empty(2, 4), p)
    want = ((lanes.long() + 32768) >= t).float().view(2, 4) * (65536 / (65536 - t))
    assert torch.equal(m, want)
    assert m.flatten().tolist()[:4] == [0.0, 0.0, want.max().item(), want.max().item()]


def test_gradient_is_the_mask_and_seed_reproducible():
    x = torch.randn(7, 5, dtype=torch.float64, requires_grad=True)
    torch.manual_seed(3)
    y = fast_dropout(x, 0.25)
    y.backward(torch.ones_like(y))
    assert set(x.grad.unique().tolist()) <= {0.0, 1 / 0.75}  # 65536 * 0.25 is an integer: exact p
    assert torch.equal(y.detach(), x.detach() * x.grad)  # y = x * mask, d y / d x = mask
    torch.manual_seed(3)
    assert torch.equal(fast_dropout(x.detach(), 0.25), y.detach())
    torch.manual_seed(3)
    assert torch.equal(dropout_mask(x, 0.25), x.grad)  # fast_dropout is x * dropout_mask (same draws)
    assert not torch.equal(dropout_mask(x, 0.25), dropout_mask(x, 0.25))  # fresh draws per call


def test_dtypes_and_shapes():
    for dt in (torch.float32, torch.float64, torch.bfloat16, torch.float16):
        m = dropout_mask(torch.empty(3, 5, 7, dtype=dt), 0.5)
        assert m.shape == (3, 5, 7) and m.dtype == dt
        assert set(m.float().unique().tolist()) <= {0.0, 2.0}
    assert dropout_mask(torch.empty(0, 4), 0.3).shape == (0, 4)


def test_fallbacks(monkeypatch):
    x = torch.randn(4, 3)
    m = FastDropout(0.2)
    assert isinstance(m, nn.Dropout) and not list(m.parameters())
    m.eval()
    assert m(x) is x
    assert fast_dropout(x, 0.2, training=False) is x and fast_dropout(x, 0.0) is x
    assert torch.equal(fast_dropout(x, 1.0), torch.zeros_like(x))
    assert torch.equal(dropout_mask(x, 1.0), torch.zeros_like(x))
    assert torch.equal(dropout_mask(x, 0.0), torch.ones_like(x))
    assert torch.equal(dropout_mask(x, 2**-18), torch.ones_like(x))  # rounds to p' = 0
    torch.testing.assert_close(relu_dropout(x, 0.3, training=False), torch.relu(x))
    torch.testing.assert_close(relu_dropout(x, 0.0), torch.relu(x))
    assert torch.equal(relu_dropout(x, 1.0), torch.zeros_like(x))
    # off the CPU: F.dropout (the meta device stands in for CUDA here)
    meta = torch.empty(4, 3, device="meta")
    assert fast_dropout(meta, 0.3).device.type == "meta"
    assert dropout_mask(meta, 0.3).device.type == "meta"
    # while torch.compile traces: F.dropout, never the integer mask
    calls = []

    def spy(t, p, training=True, inplace=False):
        calls.append(p)
        return t

    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    monkeypatch.setattr(F, "dropout", spy)
    monkeypatch.setattr(core_dropout, "dropout_mask", None)  # would raise if reached
    fast_dropout(x, 0.3)
    relu_dropout(x, 0.4)
    assert calls == [0.3, 0.4]


def test_bad_input():
    x = torch.randn(4, 3)
    for fn in (lambda: fast_dropout(x, 1.5), lambda: dropout_mask(x, -0.1), lambda: relu_dropout(x, 1.01)):
        with pytest.raises(ValueError, match=r"p must be in \[0, 1\], got"):
            fn()
    with pytest.raises(ValueError, match="inplace"):
        FastDropout(0.1, inplace=True)


@pytest.mark.parametrize("p", [0.5, 0.3])
@pytest.mark.parametrize("inplace", [False, True])
def test_relu_dropout_equals_relu_times_mask(p, inplace):
    """relu_dropout == relu(x) * dropout_mask(x, p) (same seed, same draws); gradient
    dout * mask * [x > 0]."""
    x = torch.randn(64, 33)
    torch.manual_seed(3)
    mask = dropout_mask(x, p)
    want = torch.relu(x) * mask
    want_grad = torch.where(x > 0, mask, 0.0) * 2.0  # dout = 2
    leaf = x.clone().requires_grad_()
    inp = leaf * 1.0 if inplace else leaf  # in place needs a non-leaf intermediate
    torch.manual_seed(3)
    got = relu_dropout(inp, p, inplace=inplace)
    assert torch.equal(got, want)
    if inplace:
        assert got.data_ptr() == inp.data_ptr()
    (got * 2.0).sum().backward()
    torch.testing.assert_close(leaf.grad, want_grad)


def test_relu_dropout_gradcheck():
    x = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    x.data[x.data.abs() < 1e-3] = 0.5  # away from the kink of relu

    def f(t):
        torch.manual_seed(11)
        return relu_dropout(t, 0.4)

    assert torch.autograd.gradcheck(f, (x,))
