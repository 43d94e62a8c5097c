"""FeatureGate (FinalMLP context gating) against the gate written out with elementary ops."""

from __future__ import annotations

import pytest
import torch
from gate_checks import check_capture, check_compile, check_grads, check_half_finite
from tolerances import assert_close

from gatelab.core import FeatureGate, capture_gates

D64 = torch.float64


def _hand(m: FeatureGate, x, ctx):
    """ReLU MLP then 2 * sigmoid, one output unit at a time."""
    lins = [mod for mod in m.mlp if isinstance(mod, torch.nn.Linear)]
    h = ctx
    for i, lin in enumerate(lins):
        h = torch.stack([(h * lin.weight[o]).sum(-1) + lin.bias[o] for o in range(lin.out_features)], -1)
        if i < len(lins) - 1:
            h = torch.clamp(h, min=0.0)
    g = 1.0 / (1.0 + torch.exp(-h))
    factor = 2.0 * g
    if m.mask is not None:
        factor = factor * 2.0 / (1.0 + torch.exp(-m.mask))
    return x * factor, g


def _randomize(m):
    with torch.no_grad():
        for p in m.parameters():
            p.normal_()
    return m


@pytest.mark.parametrize("hidden", [(), (5,), (5, 3)])
@pytest.mark.parametrize("feature_mask", [False, True])
def test_matches_hand_written_with_context(hidden, feature_mask):
    m = _randomize(FeatureGate(6, 4, hidden, feature_mask=feature_mask, dtype=D64))
    x, ctx = torch.randn(3, 6, dtype=D64), torch.randn(3, 4, dtype=D64)
    with capture_gates(m) as gates:
        y = m(x, ctx)
    y_ref, g_ref = _hand(m, x, ctx)
    assert_close(y, y_ref)
    assert_close(gates["FeatureGate"], g_ref)
    assert ("FeatureGate:mask" in gates) == feature_mask


def test_learned_context_is_a_static_gate():
    m = _randomize(FeatureGate(6, 4, (5,), learned_context=True, dtype=D64))
    x = torch.randn(3, 6, dtype=D64)
    y_ref, _ = _hand(m, x, m.context.expand(3, 4))  # FuxiCTR repeats the bias vector per row
    assert_close(m(x), y_ref)
    with pytest.raises(ValueError, match="learned_context=True"):
        m(x, torch.randn(3, 4, dtype=D64))


def test_initial_gate_is_identity_and_errors():
    m = FeatureGate(8, 3, (4,), learned_context=True, feature_mask=True)
    x = torch.randn(2, 8)
    assert torch.equal(m(x), x)  # zero context, zero biases: 2 * sigmoid(0) * (2 * sigmoid(0)) = 1
    g = FeatureGate(8, 3)
    with pytest.raises(ValueError, match="context tensor is required"):
        g(x)
    with pytest.raises(ValueError, match=r"context\[..., 3\]"):
        g(x, torch.randn(2, 4))
    with pytest.raises(ValueError, match=r"x\[..., 8\]"):
        g(torch.randn(2, 7), torch.randn(2, 3))
    with pytest.raises(ValueError, match="hidden_dims"):
        FeatureGate(8, 3, (0,))


def test_shared_checks():
    m = FeatureGate(6, 4, (5,), feature_mask=True, dropout=0.1)
    x, ctx = torch.randn(3, 6), torch.randn(3, 4)
    check_compile(m, x, ctx)
    check_compile(FeatureGate(6, 4, learned_context=True), x)
    check_capture(m, x, ctx, expect=("FeatureGate", ":mask"))
    check_grads(m.train(), x, ctx)
    check_grads(FeatureGate(6, 4, learned_context=True), x)
    check_half_finite(
        lambda: FeatureGate(6, 4, (5,), feature_mask=True),
        # a context of +-100 drives the gate logits to |z| ~ 1e2-1e3 (saturated); much larger
        # values overflow fp16 in the MLP's plain linear maps (or their weight gradients), gate or not
        lambda dt: [
            torch.tensor([[50.0, -50.0, 20.0, -20.0, 0.0, 1.0]], dtype=dt),
            torch.tensor([[100.0, -100.0, 50.0, -50.0]], dtype=dt),
        ],
    )
