"""GatedConv1d (GCNN) against the gated convolution written as explicit sums over taps."""

from __future__ import annotations

import pytest
import torch
from gate_checks import check_capture, check_compile, check_grads, check_half_finite
from tolerances import assert_close

from gatelab.core import GatedConv1d, capture_gates

D64 = torch.float64


def _hand(m: GatedConv1d, x, left: int):
    """h[b, o, t] = A[b, o, t] * sigmoid(B[b, o, t]), A/B as sums over channels and taps.

    Input positions outside [0, T) count as zero; ``left`` is the number of zeros padded on the left.
    """
    B, C, T = x.shape
    w, bias, k, d, n = m.conv.weight, m.conv.bias, m.kernel_size, m.dilation, m.out_channels
    out = torch.zeros(B, n, T, dtype=x.dtype)
    gate = torch.zeros(B, n, T, dtype=x.dtype)
    for b in range(B):
        for o in range(n):
            for t in range(T):
                za = bias[o].clone() if bias is not None else torch.zeros((), dtype=x.dtype)
                zb = bias[n + o].clone() if bias is not None else torch.zeros((), dtype=x.dtype)
                for c in range(C):
                    for j in range(k):
                        s = t - left + j * d
                        if 0 <= s < T:
                            za = za + w[o, c, j] * x[b, c, s]
                            zb = zb + w[n + o, c, j] * x[b, c, s]
                g = 1.0 / (1.0 + torch.exp(-zb))
                gate[b, o, t] = g
                out[b, o, t] = za * g
    return out, gate


@pytest.mark.parametrize(("k", "dilation"), [(3, 1), (2, 3), (4, 2)])
@pytest.mark.parametrize("padding", ["causal", "same"])
def test_matches_hand_written(k, dilation, padding):
    m = GatedConv1d(3, 2, k, dilation=dilation, padding=padding, dtype=D64)
    x = torch.randn(2, 3, 7, dtype=D64)
    with capture_gates(m) as gates:
        y = m(x)
    total = (k - 1) * dilation
    y_ref, g_ref = _hand(m, x, total if padding == "causal" else total // 2)
    assert y.shape == (2, 2, 7)
    assert_close(y, y_ref)
    assert_close(gates["GatedConv1d"], g_ref)


def test_causal_output_ignores_the_future():
    m = GatedConv1d(2, 3, 3, dilation=2)
    x = torch.randn(1, 2, 10)
    x2 = x.clone()
    x2[..., 6:] = torch.randn(1, 2, 4)
    assert torch.equal(m(x)[..., :6], m(x2)[..., :6])
    assert not torch.equal(m(x)[..., 6:], m(x2)[..., 6:])


def test_residual_and_act():
    m = GatedConv1d(3, kernel_size=2, act="tanh", residual=True, dtype=D64)
    x = torch.randn(2, 3, 5, dtype=D64)
    value, gate = torch.nn.functional.conv1d(
        torch.nn.functional.pad(x, (1, 0)), m.conv.weight, m.conv.bias
    ).chunk(2, 1)
    assert_close(m(x), x + torch.tanh(value) / (1.0 + torch.exp(-gate)))
    with pytest.raises(ValueError, match="residual=True needs in_channels == out_channels"):
        GatedConv1d(3, 4, residual=True)


def test_errors():
    with pytest.raises(ValueError, match="padding"):
        GatedConv1d(3, padding="valid")
    with pytest.raises(ValueError, match=r"\[B, 3, T\]"):
        GatedConv1d(3)(torch.randn(2, 4, 5))


def test_shared_checks():
    m = GatedConv1d(4, 6, 3, dilation=2, residual=False)
    x = torch.randn(2, 4, 9)
    check_compile(m, x)
    check_compile(GatedConv1d(4, padding="same", residual=True), x)
    check_capture(m, x)
    check_grads(m, x)
    # |x| = 50 drives the logits to |z| ~ 1e2 (saturated gate); larger inputs would overflow the
    # fp16 weight gradient sum(grad * x) of any convolution, gated or not
    check_half_finite(
        lambda: GatedConv1d(4, 6, 3, residual=False),
        lambda dt: [(torch.randn(1, 4, 5).sign() * 50.0).to(dt)],
    )
