"""The oneDNN routing of batch-1 CPU convolutions (gatelab.core.layers.conv): same values and
gradients as nn.Conv{2,3}d (float32, relative 1e-5 of the largest entry), same state dict, and
the fallback for every call outside the fast path's conditions."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gatelab.core.layers import conv as fast


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()


@pytest.mark.parametrize(
    ("nd", "cin", "cout", "k", "pad", "size", "channels_last", "bias"),
    [
        (3, 3, 5, 3, 1, (6, 7, 5), False, True),
        (3, 4, 6, 3, 1, (5, 6, 4), True, True),
        (3, 2, 3, (3, 1, 3), (1, 0, 1), (6, 5, 4), False, False),
        (3, 2, 4, 5, 1, (7, 7, 7), False, True),  # padding < k // 2: a shrinking convolution
        (2, 3, 4, 3, 1, (9, 8), False, True),
        (2, 3, 4, 3, 2, (6, 5), True, True),  # padding k - 1: a growing convolution
    ],
)
def test_matches_native_convolution(nd, cin, cout, k, pad, size, channels_last, bias):
    torch.manual_seed(0)
    ref = (nn.Conv2d, nn.Conv3d)[nd - 2](cin, cout, k, padding=pad, bias=bias)
    mine = fast.conv(nd)(cin, cout, k, padding=pad, bias=bias)
    mine.load_state_dict(ref.state_dict())
    x = torch.randn(1, cin, *size)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last if nd == 2 else torch.channels_last_3d)
    assert fast.onednn_eligible(x, mine.weight, mine.stride, mine.padding, mine.dilation, mine.groups)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    y1, y2 = ref(x1), mine(x2)
    assert y1.shape == y2.shape
    g = torch.randn_like(y1)
    y1.backward(g)
    y2.backward(g)
    assert _rel(y2, y1) < 1e-5
    assert _rel(x2.grad, x1.grad) < 1e-5
    assert _rel(mine.weight.grad, ref.weight.grad) < 1e-5
    if bias:
        assert _rel(mine.bias.grad, ref.bias.grad) < 1e-5
    assert x2.grad.shape == x.shape and mine.weight.grad.shape == mine.weight.shape


def test_fast_path_is_taken_at_batch_one(monkeypatch):
    calls = []
    real = fast._OneDnnConv.apply
    monkeypatch.setattr(fast._OneDnnConv, "apply", lambda *a: calls.append(1) or real(*a))
    m = fast.Conv3d(2, 3, 3, padding=1)
    m(torch.randn(1, 2, 4, 4, 4))
    assert calls == [1]


@pytest.mark.parametrize(
    "case",
    ["batch2", "stride2", "dilation2", "groups2", "float64", "kernel1", "reflect", "same"],
)
def test_falls_back_outside_the_fast_path(case, monkeypatch):
    monkeypatch.setattr(fast._OneDnnConv, "apply", lambda *a: pytest.fail("fast path taken"))
    kw = {"padding": 1}
    batch, dtype, k = 1, torch.float32, 3
    if case == "batch2":
        batch = 2
    elif case == "stride2":
        kw["stride"] = 2
    elif case == "dilation2":
        kw["dilation"] = 2
    elif case == "groups2":
        kw["groups"] = 2
    elif case == "float64":
        dtype = torch.float64
    elif case == "kernel1":
        k, kw = 1, {}
    elif case == "reflect":
        kw["padding_mode"] = "reflect"
    elif case == "same":
        kw = {"padding": "same"}
    m = fast.Conv3d(4, 4, k, dtype=dtype, **kw)
    ref = nn.Conv3d(4, 4, k, dtype=dtype, **kw)
    ref.load_state_dict(m.state_dict())
    x = torch.randn(batch, 4, 5, 5, 5, dtype=dtype)
    torch.testing.assert_close(m(x), ref(x), rtol=0, atol=0)


def test_disabled_onednn_falls_back(monkeypatch):
    monkeypatch.setattr(fast._OneDnnConv, "apply", lambda *a: pytest.fail("fast path taken"))
    m = fast.Conv2d(2, 2, 3, padding=1)
    with torch.backends.mkldnn.flags(enabled=False):
        m(torch.randn(1, 2, 5, 5))


def test_same_state_dict_and_errors():
    assert isinstance(fast.Conv3d(1, 1, 3), nn.Conv3d)
    assert fast.Conv2d(2, 3, 3).state_dict().keys() == nn.Conv2d(2, 3, 3).state_dict().keys()
    assert fast.conv(3, fast=False) is nn.Conv3d
    with pytest.raises(ValueError, match="spatial_dims must be 2 or 3, got 1"):
        fast.conv(1)


@pytest.mark.parametrize(("nd", "bias"), [(2, True), (2, False), (3, True)])
def test_pointwise_path_on_channels_last_matches_native(nd, bias, monkeypatch):
    """1x1 convolutions of channels_last input run as one F.linear: same values and gradients
    (float32, relative 1e-5), channels_last output; contiguous input keeps the native path."""
    calls = []
    real = fast.pointwise_conv
    monkeypatch.setattr(fast, "pointwise_conv", lambda *a: calls.append(1) or real(*a))
    torch.manual_seed(0)
    ref = (nn.Conv2d, nn.Conv3d)[nd - 2](6, 3, 1, bias=bias)
    mine = fast.conv(nd)(6, 3, 1, bias=bias)
    mine.load_state_dict(ref.state_dict())
    fmt = torch.channels_last if nd == 2 else torch.channels_last_3d
    x = torch.randn(2, 6, *([5, 4, 3][:nd])).contiguous(memory_format=fmt)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    y1, y2 = ref(x1), mine(x2)
    assert calls == [1] and y2.is_contiguous(memory_format=fmt)
    g = torch.randn_like(y1)
    y1.backward(g)
    y2.backward(g)
    assert _rel(y2, y1) < 1e-5 and _rel(x2.grad, x1.grad) < 1e-5
    assert _rel(mine.weight.grad, ref.weight.grad) < 1e-5
    if bias:
        assert _rel(mine.bias.grad, ref.bias.grad) < 1e-5
    mine(torch.randn(2, 6, *([5, 4, 3][:nd])))  # contiguous: native
    strided = fast.conv(nd)(6, 3, 1, stride=2)
    strided(x)  # stride 2: native
    assert calls == [1]
