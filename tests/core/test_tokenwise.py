"""TokenwiseGate against g*a + (1-g)*b with g written out per token."""

from __future__ import annotations

import math

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


# ---- N streams (issue 16 point 3) -------------------------------------------------------------


def _hand_n(m: TokenwiseGate, streams, stream_mask=None):
    """out = sum_s w_s x_s with the weights written out token by token (and feature by feature)."""
    w, c = m.proj.weight.detach(), None if m.proj.bias is None else m.proj.bias.detach()
    n, d = m.num_streams, m.dim
    per = 1 if m.mode == "scalar" else d
    B, T = streams[0].shape[:2]
    out = torch.zeros_like(streams[0])
    weights = torch.zeros(B, T, n, per, dtype=streams[0].dtype)
    for i in range(B):
        for t in range(T):
            z = torch.cat([x[i, t] for x in streams])
            for f in range(per):
                logits = []
                for s in range(n):
                    row = s * per + f
                    logits.append(float((w[row] * z).sum() + (c[row] if c is not None else 0.0)))
                present = [True] * n if stream_mask is None else [bool(stream_mask[i, s]) for s in range(n)]
                if m.weighting == "softmax":
                    e = [math.exp(lg) if p else 0.0 for lg, p in zip(logits, present)]
                    total = sum(e)
                    ws = [v / total if total > 0 else 0.0 for v in e]
                else:
                    ws = [1.0 / (1.0 + math.exp(-lg)) if p else 0.0 for lg, p in zip(logits, present)]
                for s in range(n):
                    weights[i, t, s, f] = ws[s]
                    cols = slice(None) if per == 1 else slice(f, f + 1)
                    out[i, t, cols] += ws[s] * streams[s][i, t, cols]
    return out, (weights.squeeze(-1) if per == 1 else weights)


@pytest.mark.parametrize("mode", ["scalar", "vector"])
@pytest.mark.parametrize("weighting", ["softmax", "sigmoid"])
@pytest.mark.parametrize("bias", [True, False])
def test_three_streams_match_hand_written(mode, weighting, bias):
    torch.manual_seed(0)
    m = TokenwiseGate(4, num_streams=3, weighting=weighting, mode=mode, bias=bias, dtype=D64)
    xs = [torch.randn(2, 3, 4, dtype=D64) for _ in range(3)]
    with capture_gates(m) as gates:
        y = m(*xs)
    y_ref, w_ref = _hand_n(m, xs)
    assert gates["TokenwiseGate"].shape == ((2, 3, 3) if mode == "scalar" else (2, 3, 3, 4))
    assert_close(y, y_ref)
    assert_close(gates["TokenwiseGate"], w_ref)
    assert_close(m(*xs), y)  # the capture path is the only path: same output without capture
    if weighting == "softmax":
        assert_close(w_ref.sum(dim=2), torch.ones_like(w_ref.sum(dim=2)))


@pytest.mark.parametrize("weighting", ["softmax", "sigmoid"])
def test_stream_mask_drops_absent_streams(weighting):
    torch.manual_seed(1)
    m = TokenwiseGate(3, num_streams=3, weighting=weighting, dtype=D64)
    xs = [torch.randn(3, 2, 3, dtype=D64) for _ in range(3)]
    present = torch.tensor([[True, True, True], [True, False, True], [False, False, False]])
    with capture_gates(m) as gates:
        y = m(*xs, stream_mask=present[:, None, :, None])
    y_ref, w_ref = _hand_n(m, xs, present)
    assert_close(y, y_ref)
    assert_close(gates["TokenwiseGate"], w_ref)
    assert (gates["TokenwiseGate"][1, :, 1] == 0).all()
    assert (y[2] == 0).all()  # no stream present: no contribution (and no NaN)
    if weighting == "softmax":
        assert_close(gates["TokenwiseGate"][1].sum(-1), torch.ones(2, dtype=D64))


def test_two_streams_softmax_equals_complement_with_difference_logit():
    """softmax over (l_a, l_b) is sigmoid(l_a - l_b): the complement gate is the 2-stream case."""
    torch.manual_seed(2)
    soft = TokenwiseGate(5, num_streams=2, weighting="softmax", mode="vector", dtype=D64)
    comp = TokenwiseGate(5, mode="vector", dtype=D64)
    with torch.no_grad():
        comp.proj.weight.copy_(soft.proj.weight[:5] - soft.proj.weight[5:])
        comp.proj.bias.copy_(soft.proj.bias[:5] - soft.proj.bias[5:])
    a, b = torch.randn(2, 4, 5, dtype=D64), torch.randn(2, 4, 5, dtype=D64)
    assert_close(soft(a, b), comp(a, b))


def test_default_weighting_and_init_gate_per_stream():
    assert TokenwiseGate(4).weighting == "complement"
    assert TokenwiseGate(4, num_streams=3).weighting == "softmax"
    m = TokenwiseGate(4, num_streams=3, mode="vector", init_gate=(0.2, 0.3, 0.5), dtype=D64)
    z = torch.zeros(2, 4, dtype=D64)
    with capture_gates(m) as gates:
        m(z, z, z)
    want = torch.tensor([0.2, 0.3, 0.5], dtype=D64)[:, None].expand(3, 4)
    assert_close(gates["TokenwiseGate"], want.expand(2, 3, 4))
    s = TokenwiseGate(4, num_streams=3, weighting="sigmoid", init_gate=0.25, dtype=D64)
    with capture_gates(s) as gates:
        s(z, z, z)
    assert_close(gates["TokenwiseGate"], torch.full((2, 3), 0.25, dtype=D64))


def test_n_stream_errors():
    with pytest.raises(ValueError, match="num_streams must be >= 2"):
        TokenwiseGate(4, num_streams=1)
    with pytest.raises(ValueError, match="exactly 2 streams"):
        TokenwiseGate(4, num_streams=3, weighting="complement")
    with pytest.raises(ValueError, match="weighting must be one of"):
        TokenwiseGate(4, num_streams=3, weighting="max")
    with pytest.raises(ValueError, match="gate_act='tanh' is unused"):
        TokenwiseGate(4, num_streams=3, gate_act="tanh")
    with pytest.raises(ValueError, match="summing to 1"):
        TokenwiseGate(4, num_streams=3, init_gate=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="one value or 3 values"):
        TokenwiseGate(4, num_streams=3, weighting="sigmoid", init_gate=(0.5, 0.5))
    with pytest.raises(ValueError, match="one number"):
        TokenwiseGate(4, init_gate=(0.5,))
    m = TokenwiseGate(4, num_streams=3)
    x = torch.randn(2, 4)
    with pytest.raises(ValueError, match="expected 3 streams, got 2"):
        m(x, x)
    with pytest.raises(ValueError, match=r"stream 2 is \(2, 5\)"):
        m(x, x, torch.randn(2, 5))
    with pytest.raises(ValueError, match="does not broadcast"):
        m(x, x, x, stream_mask=torch.ones(2, 2, 1, dtype=torch.bool))
    with pytest.raises(TypeError, match="must be bool"):
        m(x, x, x, stream_mask=torch.ones(2, 3, 1))
    with pytest.raises(ValueError, match="stream_mask needs"):
        TokenwiseGate(4)(x, x, stream_mask=torch.ones(2, 2, 1, dtype=torch.bool))


@pytest.mark.parametrize("mode", ["scalar", "vector"])
@pytest.mark.parametrize("weighting", ["softmax", "sigmoid"])
def test_three_stream_shared_checks(mode, weighting):
    m = TokenwiseGate(6, num_streams=3, weighting=weighting, mode=mode)
    xs = [torch.randn(2, 5, 6) for _ in range(3)]
    check_compile(m, *xs)
    check_capture(m, *xs)
    check_grads(m, *xs)
    big = [6e4, -6e4, 3e4, -3e4, 1e4, -1e4]
    check_half_finite(
        lambda: TokenwiseGate(6, num_streams=3, weighting=weighting, mode=mode),
        lambda dt: [
            torch.tensor([big], dtype=dt),
            torch.tensor([[-v for v in big]], dtype=dt),
            torch.tensor([big[::-1]], dtype=dt),
        ],
    )
