"""SqueezeExcite and CBAM against hand-written loops / elementary ops."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from gate_checks import check_capture, check_compile, check_grads, check_half_finite
from tolerances import assert_close

from gatelab.core import CBAM, SqueezeExcite, capture_gates


def _sigmoid(t: torch.Tensor) -> torch.Tensor:
    return 1.0 / (1.0 + torch.exp(-t))


# ----------------------------------------------------------------------------- SqueezeExcite


@pytest.mark.parametrize("spatial", [(5,), (3, 4), (2, 3, 2)])
def test_se_matches_explicit_loops(spatial):
    C = 6
    m = SqueezeExcite(C, 3).double()
    x = torch.randn(2, C, *spatial, dtype=torch.float64)
    y = m(x)
    W1, b1, W2, b2 = m.fc1.weight, m.fc1.bias, m.fc2.weight, m.fc2.bias
    n = math.prod(spatial)
    expected = torch.empty_like(x)
    for b in range(2):
        flat = x[b].reshape(C, n)
        z = [sum(flat[c, i] for i in range(n)) / n for c in range(C)]
        h = [max(b1[r] + sum(W1[r, c] * z[c] for c in range(C)), 0.0) for r in range(3)]
        for c in range(C):
            s = _sigmoid(b2[c] + sum(W2[c, r] * h[r] for r in range(3)))
            expected[b, c] = s * x[b, c]
    assert_close(y, expected)


def test_se_reduction_width_and_options():
    assert SqueezeExcite(64).rd_channels == 4  # C / 16
    assert SqueezeExcite(8).rd_channels == 1  # never 0
    assert SqueezeExcite(24).rd_channels == 2  # 1.5 rounds to 2
    assert SqueezeExcite(64, rd_ratio=0.25, rd_divisor=8).rd_channels == 16
    assert SqueezeExcite(64, 5).rd_channels == 5
    m = SqueezeExcite(8, 2, bias=False, act="silu", gate_act="tanh")
    assert m.fc1.bias is None and m.fc2.bias is None
    x = torch.randn(2, 8, 3, 3)
    s = torch.tanh(m.fc2(F.silu(m.fc1(x.mean((2, 3))))))
    assert_close(m(x), x * s[:, :, None, None])
    with pytest.raises(ValueError, match=r"shape \(2, 7, 3, 3\)"):
        m(torch.randn(2, 7, 3, 3))
    with pytest.raises(ValueError, match=r"shape \(2, 8\)"):
        m(torch.randn(2, 8))
    with pytest.raises(ValueError, match="rd_channels"):
        SqueezeExcite(8, 0)
    with pytest.raises(TypeError):
        SqueezeExcite(8, reduction=4)


@pytest.mark.parametrize("spatial", [(6,), (4, 4), (3, 3, 3)])
def test_se_checks(spatial):
    x = torch.randn(2, 8, *spatial)
    check_compile(SqueezeExcite(8), x)
    gates = check_capture(SqueezeExcite(8), x)
    (s,) = gates.values()
    assert s.shape == (2, 8) and s.min() >= 0 and s.max() <= 1
    check_grads(SqueezeExcite(8), x)

    def make():
        m = SqueezeExcite(8)
        with torch.no_grad():
            m.fc2.weight.mul_(100.0)  # gate logits of order 1e3-1e4: the sigmoid saturates
        return m

    def inputs(dtype):
        # +-100 inputs. Much larger inputs make the *true* gradient of fc2.weight (of order
        # |x|^2 * |S|) exceed the fp16 range: a property of the function, not of the code
        sign = torch.ones(2, 8, *spatial).masked_fill(torch.rand(2, 8, *spatial) < 0.5, -1.0)
        return ((100.0 * sign).to(dtype),)

    check_half_finite(make, inputs)


# ----------------------------------------------------------------------------- CBAM


def _hand_cbam(m: CBAM, x: torch.Tensor, norm: str | None):
    """CBAM with explicit loops over batch, channels and kernel taps (2D or 3D)."""
    B, C = x.shape[:2]
    S = x.shape[2:]
    nd = len(S)
    k = m.kernel_size
    W1, b1, W2, b2 = m.fc1.weight, m.fc1.bias, m.fc2.weight, m.fc2.bias
    R = W1.shape[0]

    def mlp(z):  # z: list of C scalars
        h = [torch.clamp(b1[r] + sum(W1[r, c] * z[c] for c in range(C)), min=0.0) for r in range(R)]
        return [b2[c] + sum(W2[c, r] * h[r] for r in range(R)) for c in range(C)]

    xp = torch.empty_like(x)
    m_c = torch.empty(B, C, dtype=x.dtype)
    for b in range(B):
        avg = [x[b, c].mean() for c in range(C)]
        mx = [x[b, c].max() for c in range(C)]
        ma, mm = mlp(avg), mlp(mx)
        for c in range(C):
            m_c[b, c] = _sigmoid(ma[c] + mm[c])
            xp[b, c] = m_c[b, c] * x[b, c]
    desc = torch.stack([xp.mean(dim=1), xp.amax(dim=1)], dim=1)  # [B, 2, *S], mean first
    pad = k // 2
    padded = F.pad(desc, [pad] * (2 * nd))
    w = m.spatial_conv.weight
    conv = torch.zeros(B, 1, *S, dtype=x.dtype)
    for b in range(B):
        for pos in itertools.product(*[range(s) for s in S]):
            acc = (
                torch.zeros((), dtype=x.dtype)
                if m.spatial_conv.bias is None
                else m.spatial_conv.bias[0].clone()
            )
            for ch in range(2):
                for tap in itertools.product(*[range(k)] * nd):
                    src = tuple(p + t for p, t in zip(pos, tap))
                    acc = acc + w[(0, ch, *tap)] * padded[(b, ch, *src)]
            conv[(b, 0, *pos)] = acc
    if norm == "batch":  # training mode: batch statistics over (B, *S)
        mean = conv.mean()
        var = ((conv - mean) ** 2).mean()
        conv = (conv - mean) / torch.sqrt(var + 1e-5) * m.spatial_norm.weight[0] + m.spatial_norm.bias[0]
    m_s = _sigmoid(conv)
    return m_s * xp, m_c, m_s


@pytest.mark.parametrize(("spatial", "k"), [((5, 4), 3), ((3, 4, 3), 3), ((4, 4), 7)])
@pytest.mark.parametrize("norm", ["batch", None])
def test_cbam_matches_explicit_loops(spatial, k, norm):
    C = 4
    m = CBAM(len(spatial), C, 2, kernel_size=k, spatial_norm=norm).double()
    with torch.no_grad():  # the official init zeroes BN weight and biases: randomise so they matter
        for p in m.parameters():
            if p.dim() == 1:
                p.normal_()
    x = torch.randn(2, C, *spatial, dtype=torch.float64)
    with capture_gates(m) as gates:
        y = m(x)
    y_ref, m_c, m_s = _hand_cbam(m, x, norm)
    assert_close(y, y_ref)
    assert_close(gates["CBAM:channel"], m_c)
    assert_close(gates["CBAM:spatial"], m_s)


def test_cbam_init_and_options():
    m = CBAM(2, 32)
    assert m.rd_channels == 2 and m.spatial_conv.bias is None
    assert m.spatial_norm.momentum == 0.01
    assert torch.all(m.spatial_norm.weight == 0) and torch.all(m.fc1.bias == 0)
    x = torch.randn(2, 32, 5, 5)
    with capture_gates(m) as gates:
        m(x)
    torch.testing.assert_close(gates["CBAM:spatial"], torch.full((2, 1, 5, 5), 0.5))  # official init
    m = CBAM(3, 8, spatial_norm=None, bias=False, kernel_size=5)
    assert m.spatial_conv.bias is not None and m.fc1.bias is None
    assert tuple(m.spatial_conv.weight.shape) == (1, 2, 5, 5, 5)
    assert isinstance(CBAM(2, 8, spatial_norm="instance").spatial_norm, torch.nn.InstanceNorm2d)
    with pytest.raises(ValueError, match=r"shape \(2, 8, 4, 4, 4\)"):
        CBAM(2, 8)(torch.randn(2, 8, 4, 4, 4))
    with pytest.raises(ValueError, match="odd"):
        CBAM(2, 8, kernel_size=4)
    with pytest.raises(ValueError, match="spatial_dims"):
        CBAM(1, 8)
    with pytest.raises(TypeError):
        CBAM(2, 8, no_spatial=True)


@pytest.mark.parametrize("nd", [2, 3])
def test_cbam_checks(nd):
    shape = (2, 8, *([4] * nd))
    x = torch.randn(shape)

    def make():
        m = CBAM(nd, 8, kernel_size=3)
        with torch.no_grad():
            m.spatial_norm.weight.fill_(1.0)  # not the zero init, so gradients reach the conv
        return m

    def make_saturating():
        m = make()
        with torch.no_grad():
            m.fc2.weight.mul_(100.0)  # channel-gate logits of order 1e3-1e4
            m.spatial_norm.weight.fill_(1e3)  # spatial-gate logits of order 1e3
        return m

    check_compile(make(), x)
    gates = check_capture(make(), x, expect=(":channel", ":spatial"))
    assert gates["CBAM:channel"].shape == (2, 8) and gates["CBAM:spatial"].shape == (2, 1, *([4] * nd))
    check_grads(make(), x)

    def inputs(dtype):
        # +-100: larger inputs make the true MLP weight gradients (of order |x|^2 * |S|) overflow fp16
        sign = torch.ones(shape).masked_fill(torch.rand(shape) < 0.5, -1.0)
        return ((100.0 * sign).to(dtype),)

    # training-mode BatchNorm runs in fp16/bf16 on CPU with this torch, so no eval-mode workaround
    check_half_finite(make_saturating, inputs)
    check_half_finite(lambda: CBAM(nd, 8, kernel_size=3, spatial_norm=None), inputs)
