"""AttentionGate (Attention U-Net grid gate) against the gate written out with F.conv / F.interpolate."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from gate_checks import check_capture, check_compile, check_grads, check_half_finite
from tolerances import assert_close

from gatelab.core import AttentionGate

CONV = {2: F.conv2d, 3: F.conv3d}
MODE = {2: "bilinear", 3: "trilinear"}


def _hand_gate(m: AttentionGate, x: torch.Tensor, g: torch.Tensor, norm: str | None):
    """The official "concatenation" gate, step by step, from the module's weights."""
    nd = x.dim() - 2
    conv, mode = CONV[nd], MODE[nd]
    s = m.sub_sample_factor
    theta_x = conv(x, m.theta.weight, None, stride=s)  # kernel = stride = s, no bias
    phi_g = conv(g, m.phi.weight, m.phi.bias)
    phi_g = F.interpolate(phi_g, size=theta_x.shape[2:], mode=mode, align_corners=False)
    f = torch.clamp(theta_x + phi_g, min=0.0)  # ReLU
    q = conv(f, m.psi.weight, m.psi.bias)
    alpha = 1.0 / (1.0 + torch.exp(-q))
    alpha = F.interpolate(alpha, size=x.shape[2:], mode=mode, align_corners=False)
    z = conv(alpha * x, m.W[0].weight, m.W[0].bias)
    dims = [0, *range(2, z.dim())] if norm == "batch" else list(range(2, z.dim()))
    if norm is None:
        return z, alpha
    mean = z.mean(dim=dims, keepdim=True)
    var = ((z - mean) ** 2).mean(dim=dims, keepdim=True)  # biased, as in training-mode normalisation
    shape = [1, -1] + [1] * nd
    y = (z - mean) / torch.sqrt(var + 1e-5) * m.W[1].weight.view(shape) + m.W[1].bias.view(shape)
    return y, alpha


@pytest.mark.parametrize(
    ("nd", "x_size", "g_size", "factor"),
    [
        (2, (10, 10), (4, 4), 2),  # 5x5 theta grid, phi_g resampled from 4x4
        (2, (8, 6), (4, 6), (2, 1)),  # anisotropic sub-sampling, g already on theta's grid
        (3, (6, 4, 4), (2, 2, 2), 2),
    ],
)
@pytest.mark.parametrize("norm", ["batch", "instance", None])
def test_matches_hand_written_gate(nd, x_size, g_size, factor, norm):
    m = AttentionGate(nd, 4, 6, 3, sub_sample_factor=factor, norm=norm).double()
    with torch.no_grad():  # non-trivial affine parameters, so the test sees them
        for p in m.W[1].parameters():
            p.normal_()
    x = torch.randn(2, 4, *x_size, dtype=torch.float64)
    g = torch.randn(2, 6, *g_size, dtype=torch.float64)
    y, alpha = m(x, g)
    y_ref, alpha_ref = _hand_gate(m, x, g, norm)
    assert alpha.shape == (2, 1, *x_size)
    assert_close(alpha, alpha_ref)
    assert_close(y, y_ref)
    assert alpha.min() >= 0 and alpha.max() <= 1


def test_gate_value_by_explicit_loop():
    """One gate pixel written out as sums over channels and kernel taps (no convolution call)."""
    m = AttentionGate(2, 3, 2, 2, norm=None).double()
    x = torch.randn(1, 3, 4, 4, dtype=torch.float64)
    g = torch.randn(1, 2, 2, 2, dtype=torch.float64)  # same grid as theta_x: no resampling
    _, alpha = m(x, g)
    wt, wp, bp, ws, bs = m.theta.weight, m.phi.weight, m.phi.bias, m.psi.weight, m.psi.bias
    for i in range(2):
        for j in range(2):
            q = bs[0].clone()
            for k in range(2):
                t = sum(
                    wt[k, c, a, b] * x[0, c, 2 * i + a, 2 * j + b]
                    for c in range(3)
                    for a in range(2)
                    for b in range(2)
                )
                p = bp[k] + sum(wp[k, c, 0, 0] * g[0, c, i, j] for c in range(2))
                q = q + ws[0, k, 0, 0] * torch.clamp(t + p, min=0.0)
            a = 1.0 / (1.0 + torch.exp(-q))
            # bilinear x2 upsampling with align_corners=False samples the source at (i + 0.5) / 2 - 0.5,
            # clamped at the border: the fine corner pixel (3i, 3j) takes the coarse corner (i, j) exactly
            torch.testing.assert_close(alpha[0, 0, 3 * i, 3 * j], a)


def test_defaults_and_parameter_shapes():
    # the official demo: GridAttentionBlock3D(in=16, inter=16, gating=64, sub_sample_factor=2)
    m = AttentionGate(3, 16, 64, 16)
    shapes = {n: tuple(p.shape) for n, p in m.named_parameters()}
    assert shapes == {
        "theta.weight": (16, 16, 2, 2, 2),
        "phi.weight": (16, 64, 1, 1, 1),
        "phi.bias": (16,),
        "psi.weight": (1, 16, 1, 1, 1),
        "psi.bias": (1,),
        "W.0.weight": (16, 16, 1, 1, 1),
        "W.0.bias": (16,),
        "W.1.weight": (16,),
        "W.1.bias": (16,),
    }
    assert AttentionGate(2, 16, 8).inter_channels == 8
    assert AttentionGate(2, 1, 8).inter_channels == 1
    # the official demo's shapes: x 10^3 with g 4^3
    y, alpha = m(torch.randn(2, 16, 10, 10, 10), torch.rand(2, 64, 4, 4, 4))
    assert y.shape == (2, 16, 10, 10, 10) and alpha.shape == (2, 1, 10, 10, 10)


def test_options():
    m = AttentionGate(2, 4, 4, norm=None, bias=False, upsample_mode="nearest", act="silu")
    assert m.phi.bias is None and m.psi.bias is None and m.W[0].bias is None
    assert m.upsample_mode == "nearest" and m.align_corners is None
    assert AttentionGate(3, 4, 4, upsample_mode="linear").upsample_mode == "trilinear"
    x, g = torch.randn(1, 4, 6, 6), torch.randn(1, 4, 3, 3)
    y, alpha = m(x, g)
    assert torch.isfinite(y).all() and ((alpha >= 0) & (alpha <= 1)).all()


def test_errors_name_the_shapes():
    m = AttentionGate(2, 4, 6)
    x, g = torch.randn(2, 4, 8, 8), torch.randn(2, 6, 4, 4)
    with pytest.raises(ValueError, match=r"x\.shape=\(2, 5, 8, 8\)"):
        m(torch.randn(2, 5, 8, 8), g)
    with pytest.raises(ValueError, match=r"g\.shape=\(2, 4, 4, 4\)"):
        m(x, torch.randn(2, 4, 4, 4))
    with pytest.raises(ValueError, match=r"g\.shape=\(2, 6, 4, 4, 4\)"):
        m(x, torch.randn(2, 6, 4, 4, 4))
    with pytest.raises(ValueError, match="same batch size"):
        m(x, torch.randn(3, 6, 4, 4))
    with pytest.raises(ValueError, match="smaller than sub_sample_factor"):
        m(torch.randn(2, 4, 1, 8), g)
    with pytest.raises(ValueError, match="spatial_dims"):
        AttentionGate(1, 4, 4)
    with pytest.raises(ValueError, match="bilinear"):
        AttentionGate(3, 4, 4, upsample_mode="bilinear")
    with pytest.raises(ValueError, match="unknown norm"):
        AttentionGate(2, 4, 4, norm="layer")
    with pytest.raises(ValueError, match="sub_sample_factor"):
        AttentionGate(2, 4, 4, sub_sample_factor=(2, 2, 2))
    with pytest.raises(TypeError):
        AttentionGate(2, 4, 4, mode="concatenation")  # unknown keywords are errors


@pytest.mark.parametrize("nd", [2, 3])
def test_checks(nd):
    xs, gs = (2, 4, *([6] * nd)), (2, 6, *([3] * nd))
    x, g = torch.randn(xs), torch.randn(gs)
    check_compile(AttentionGate(nd, 4, 6), x, g)
    gates = check_capture(AttentionGate(nd, 4, 6), x, g)
    (alpha,) = gates.values()
    assert alpha.shape == (2, 1, *([6] * nd)) and alpha.min() >= 0 and alpha.max() <= 1
    check_grads(AttentionGate(nd, 4, 6), x, g)

    def inputs(dtype):
        # extreme magnitudes: the attention logits saturate the sigmoid at both ends. BatchNorm in
        # training mode runs in fp16/bf16 on CPU here (this torch supports it)
        sign = torch.ones(xs).masked_fill(torch.rand(xs) < 0.5, -1.0)
        return (1e3 * sign).to(dtype), (1e3 * torch.randn(gs)).to(dtype)

    check_half_finite(lambda: AttentionGate(nd, 4, 6), inputs)
    check_half_finite(lambda: AttentionGate(nd, 4, 6, norm="instance"), inputs)
