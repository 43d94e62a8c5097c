"""capture_gates / record_gate semantics."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gatelab.core import GateCapture, TokenwiseGate, capture_gates, is_capturing, record_gate


class _Two(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.first = TokenwiseGate(4)
        self.second = TokenwiseGate(4, mode="vector")

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        h = self.first(a, b)
        h = self.first(h, b)  # reused module: two records under one name
        return self.second(h, a)


def test_names_values_and_repeated_calls():
    m = _Two()
    a, b = torch.randn(3, 4), torch.randn(3, 4)
    with capture_gates(m) as gates:
        out = m(a, b)
    assert isinstance(gates, GateCapture)
    assert set(gates) == {"first", "second"}
    assert len(gates.all("first")) == 2 and len(gates.all("second")) == 1
    assert gates["first"].shape == (3, 1) and gates["second"].shape == (3, 4)
    # the recorded value is the gate: recompute the last call by hand
    h1 = m.first(a, b)
    g = torch.sigmoid(torch.cat([h1, b], -1) @ m.first.proj.weight.T + m.first.proj.bias)
    torch.testing.assert_close(gates["first"], g.detach())
    assert not gates["first"].requires_grad
    assert torch.isfinite(out).all()


def test_include_pattern_detach_and_cpu():
    m = _Two()
    a, b = torch.randn(2, 4), torch.randn(2, 4)
    with capture_gates(m, include="sec*", detach=False, to_cpu=True) as gates:
        m(a, b)
    assert list(gates) == ["second"]
    assert gates["second"].requires_grad  # graph kept for gate losses


def test_no_op_outside_and_nested_blocks():
    m = _Two()
    a, b = torch.randn(2, 4), torch.randn(2, 4)
    assert not is_capturing()
    with capture_gates(m) as outer:
        assert is_capturing()
        with capture_gates(m.second) as inner:
            m(a, b)
        m(a, b)
    assert not is_capturing()
    assert len(outer.all("second")) == 2
    # the inner block names modules relative to its own root (the root is its class name)
    assert list(inner) == ["TokenwiseGate"] and len(inner.all("TokenwiseGate")) == 1


def test_unknown_name_lists_recorded_and_suffix():
    class M(nn.Module):
        def forward(self, x):
            record_gate(self, x, suffix="alpha")
            return x

    m = M()
    with capture_gates(m) as gates:
        m(torch.ones(1))
    assert list(gates) == ["M:alpha"]
    with pytest.raises(KeyError, match="recorded"):
        gates["nope"]
    with pytest.raises(KeyError, match="recorded"):
        gates.all("nope")


def test_module_outside_the_captured_model_is_ignored():
    m, other = _Two(), TokenwiseGate(4)
    with capture_gates(m) as gates:
        other(torch.randn(1, 4), torch.randn(1, 4))
    assert len(gates) == 0
