"""TokenwiseGate against g*a + (1-g)*b with g written out per token."""

from __future__ import annotations

import pytest
import torch
from gate_checks import check_capture, check_compile, check_grads, check_half_finite
from tolerances import assert_close

from gatelab.core import TokenwiseGate, capture_gates

D64 = torch.float64


def _hand(m: TokenwiseGate, a, b):
    w, c = m.proj.weight, m.proj.bias
    out = torch.empty_like(a)
    gates = torch.empty(*a.shape[:-1], w.shape[0], dtype=a.dtype)
    for i in range(a.shape[0]):
        for t in range(a.shape[1]):
            z = torch.cat([a[i, t], b[i, t]])
            for o in range(w.shape[0]):
                logit = (w[o] * z).sum() + (c[o] if c is not None else 0.0)
                gates[i, t, o] = 1.0 / (1.0 + torch.exp(-logit))
            out[i, t] = gates[i, t] * a[i, t] + (1.0 - gates[i, t]) * b[i, t]
    return out, gates


@pytest.mark.parametrize("mode", ["scalar", "vector"])
@pytest.mark.parametrize("bias", [True, False])
def test_matches_hand_written(mode, bias):
    m = TokenwiseGate(4, mode=mode, bias=bias, dtype=D64)
    a, b = torch.randn(2, 3, 4, dtype=D64), torch.randn(2, 3, 4, dtype=D64)
    with capture_gates(m) as gates:
        y = m(a, b)
    y_ref, g_ref = _hand(m, a, b)
    assert gates["TokenwiseGate"].shape == (2, 3, 1 if mode == "scalar" else 4)
    assert_close(y, y_ref)
    assert_close(gates["TokenwiseGate"], g_ref)


def test_init_gate_sets_the_starting_value():
    m = TokenwiseGate(5, mode="vector", init_gate=0.9, dtype=D64)
    z = torch.zeros(1, 5, dtype=D64)
    with capture_gates(m) as gates:
        m(z, z)
    assert_close(gates["TokenwiseGate"], torch.full((1, 5), 0.9, dtype=D64))
    a, b = torch.ones(1, 5, dtype=D64) * 1e-3, torch.zeros(1, 5, dtype=D64)
    assert torch.allclose(m(a, b), 0.9 * a, rtol=1e-2)
    with pytest.raises(ValueError, match="bias=True"):
        TokenwiseGate(5, init_gate=0.5, bias=False)
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        TokenwiseGate(5, init_gate=1.0)


def test_errors():
    with pytest.raises(ValueError, match="mode"):
        TokenwiseGate(4, mode="channel")
    with pytest.raises(ValueError, match=r"\[..., 4\]"):
        TokenwiseGate(4)(torch.randn(2, 4), torch.randn(2, 3))


@pytest.mark.parametrize("mode", ["scalar", "vector"])
def test_shared_checks(mode):
    m = TokenwiseGate(6, mode=mode)
    a, b = torch.randn(2, 5, 6), torch.randn(2, 5, 6)
    check_compile(m, a, b)
    check_capture(m, a, b)
    check_grads(m, a, b)
    check_half_finite(
        lambda: TokenwiseGate(6, mode=mode),
        lambda dt: [
            torch.tensor([[6e4, -6e4, 3e4, -3e4, 1e4, -1e4]], dtype=dt),  # a - b would overflow
            torch.tensor([[-6e4, 6e4, -3e4, 3e4, -1e4, 1e4]], dtype=dt),
        ],
    )
