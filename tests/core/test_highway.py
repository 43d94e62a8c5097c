"""HighwayGate and ResidualGate against their equations written element by element."""

from __future__ import annotations

import pytest
import torch
from gate_checks import check_capture, check_compile, check_grads, check_half_finite
from tolerances import assert_close

from gatelab.core import HighwayGate, ResidualGate, capture_gates

D64 = torch.float64


def _sig(z):
    return 1.0 / (1.0 + torch.exp(-z))


def _affine(x, w, b):
    return torch.stack([(x * w[o]).sum(-1) + (b[o] if b is not None else 0.0) for o in range(w.shape[0])], -1)


def test_highway_matches_hand_written():
    m = HighwayGate(5, dtype=D64)
    torch.nn.init.normal_(m.gate.bias)
    x = torch.randn(3, 5, dtype=D64)
    with capture_gates(m) as gates:
        y = m(x)
    h = torch.clamp(_affine(x, m.transform.weight, m.transform.bias), min=0.0)
    t = _sig(_affine(x, m.gate.weight, m.gate.bias))
    assert_close(y, t * h + (1.0 - t) * x)
    assert_close(gates["HighwayGate"], t)


def test_highway_negative_gate_bias_init_carries_input():
    m = HighwayGate(4, gate_bias_init=-3.0)
    assert torch.all(m.gate.bias == -3.0)
    with torch.no_grad():
        m.gate.weight.zero_()
    x = torch.randn(2, 4)
    with capture_gates(m) as gates:
        m(x)
    assert_close(gates["HighwayGate"], torch.full((2, 4), 1.0 / (1.0 + torch.exp(torch.tensor(3.0)).item())))
    m2 = HighwayGate(4, bias=False)
    assert m2.transform.bias is None and m2.gate.bias is not None


@pytest.mark.parametrize("mode", ["scalar", "vector"])
def test_residual_gate_parameter_modes(mode):
    m = ResidualGate(4, mode=mode, dtype=D64)
    x, f = torch.randn(3, 4, dtype=D64), torch.randn(3, 4, dtype=D64)
    assert torch.equal(m(x, f), x)  # ReZero: alpha = 0 at start, the block is the identity
    with torch.no_grad():
        m.alpha.normal_()
    with capture_gates(m) as gates:
        y = m(x, f)
    alpha = m.alpha.detach()
    expect = torch.stack([x[:, i] + alpha[i if mode == "vector" else 0] * f[:, i] for i in range(4)], -1)
    assert_close(y, expect)
    assert gates["ResidualGate"].shape == ((1,) if mode == "scalar" else (4,))
    assert torch.all(ResidualGate(4, mode=mode, init=0.1).alpha == 0.1)


def test_residual_gate_input_mode():
    m = ResidualGate(4, mode="input", dtype=D64)
    assert torch.all(m.proj.bias == -2.0)
    torch.nn.init.normal_(m.proj.bias)
    x, f = torch.randn(3, 4, dtype=D64), torch.randn(3, 4, dtype=D64)
    with capture_gates(m) as gates:
        y = m(x, f)
    g = _sig(_affine(x, m.proj.weight, m.proj.bias))
    assert_close(y, x + g * f)
    assert_close(gates["ResidualGate"], g)


def test_errors():
    with pytest.raises(ValueError, match="mode"):
        ResidualGate(4, mode="gru")
    with pytest.raises(ValueError, match=r"\[..., 4\]"):
        ResidualGate(4)(torch.randn(2, 4), torch.randn(2, 5))
    with pytest.raises(ValueError, match=r"x\[..., 4\]"):
        HighwayGate(4)(torch.randn(2, 3))


@pytest.mark.parametrize("mode", ["scalar", "vector", "input"])
def test_shared_checks(mode):
    x, f = torch.randn(2, 3, 6), torch.randn(2, 3, 6)
    m = ResidualGate(6, mode=mode, init=0.5)
    check_compile(m, x, f)
    check_capture(m, x, f)
    check_grads(m, x, f)
    check_half_finite(
        lambda: ResidualGate(6, mode=mode, init=0.5),
        lambda dt: [
            torch.tensor([[1e4, -1e4, 5e3, -5e3, 1e4, -1e4]], dtype=dt),
            torch.full((1, 6), 1e4, dtype=dt),
        ],
    )
    if mode == "input":
        h = HighwayGate(6)
        check_compile(h, x)
        check_capture(h, x)
        check_grads(h, x)
        check_half_finite(
            lambda: HighwayGate(6), lambda dt: [torch.tensor([[1e4, -1e4, 5e3, -5e3, 1e3, -1e3]], dtype=dt)]
        )
