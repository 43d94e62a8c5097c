"""GatedCrossLayer / GatedCrossNetwork (GDCN) against the equation written element by element."""

from __future__ import annotations

import pytest
import torch
from gate_checks import check_capture, check_compile, check_grads, check_half_finite
from tolerances import assert_close

from gatelab.core import GatedCrossLayer, capture_gates
from gatelab.core.gated_cross import GatedCrossNetwork

D64 = torch.float64


def _hand(m: GatedCrossLayer, c0, cl):
    """c_{l+1,i} = c_{0,i} (sum_j W_ij c_lj + b_i) sigmoid(sum_j Wg_ij c_lj) + c_li, per row and feature."""
    out = torch.empty_like(cl)
    gate = torch.empty_like(cl)
    for r in range(cl.shape[0]):
        for i in range(m.dim):
            cross = sum(m.w.weight[i, j] * cl[r, j] for j in range(m.dim)) + (
                m.b[i] if m.b is not None else 0.0
            )
            g = 1.0 / (1.0 + torch.exp(-sum(m.wg.weight[i, j] * cl[r, j] for j in range(m.dim))))
            gate[r, i] = g
            out[r, i] = c0[r, i] * cross * g + cl[r, i]
    return out, gate


@pytest.mark.parametrize("bias", [True, False])
def test_matches_hand_written(bias):
    m = GatedCrossLayer(5, bias=bias, dtype=D64)
    c0, cl = torch.randn(3, 5, dtype=D64), torch.randn(3, 5, dtype=D64)
    with capture_gates(m) as gates:
        y = m(c0, cl)
    y_ref, g_ref = _hand(m, c0, cl)
    assert_close(y, y_ref)
    assert_close(gates["GatedCrossLayer"], g_ref)


def test_init_follows_fuxictr():
    torch.manual_seed(1)
    m = GatedCrossLayer(200)
    assert m.b.min() >= 0 and m.b.max() <= 1 and m.b.std() > 0.2  # U(0, 1)
    assert abs(m.w.weight.std().item() - (2.0 / 400) ** 0.5) < 0.005  # Xavier-normal


def test_network_stacks_layers_on_c0():
    net = GatedCrossNetwork(4, 3, dtype=D64)
    x = torch.randn(2, 4, dtype=D64)
    c = x
    for layer in net.layers:
        c = _hand(layer, x, c)[0]
    assert_close(net(x), c)
    with capture_gates(net) as gates:
        net(x)
    assert sorted(gates) == ["layers.0", "layers.1", "layers.2"]
    with pytest.raises(ValueError, match="num_layers"):
        GatedCrossNetwork(4, 0)


def test_errors():
    with pytest.raises(ValueError, match=r"\[..., 4\]"):
        GatedCrossLayer(4)(torch.randn(2, 4), torch.randn(2, 5))
    with pytest.raises(ValueError, match="dim"):
        GatedCrossLayer(0)


def test_shared_checks():
    m = GatedCrossLayer(6)
    c0, cl = torch.randn(3, 6), torch.randn(3, 6)
    check_compile(m, c0, cl)
    check_compile(GatedCrossNetwork(6, 2), c0)
    check_capture(m, c0, cl)
    check_grads(m, c0, cl)
    check_grads(GatedCrossNetwork(6, 2), c0)
    # saturating gate logits; c0 * cross stays in range (|c0| ~ 10, |W cl| ~ 1e3)
    check_half_finite(
        lambda: GatedCrossLayer(6),
        lambda dt: [
            torch.tensor([[10.0, -10.0, 5.0, -5.0, 1.0, 0.0]], dtype=dt),
            torch.tensor([[1e3, -1e3, 5e2, -5e2, 1e3, -1e3]], dtype=dt),
        ],
    )


def _plain_step(c0, cl, weight, bias):
    """The gated cross step written as the paper's formula, autograd through every op."""
    d = cl.shape[-1]
    cross = cl @ weight[:d].t() + (0.0 if bias is None else bias)
    return c0 * cross * torch.sigmoid(cl @ weight[d:].t()) + cl


@pytest.mark.parametrize("dtype", [torch.float32, D64])
@pytest.mark.parametrize("bias", [True, False])
def test_fused_step_equals_formula_values_and_grads(dtype, bias):
    """fused_gated_cross == the plain formula: values and the gradients of c0, cl, W, b
    (float64: 1e-10 relative; float32: 1e-5 relative, the POINTWISE table)."""
    from gatelab.core.gated_cross import fused_gated_cross

    torch.manual_seed(0)
    d = 9
    leaves = [
        torch.randn(6, d, dtype=dtype),
        torch.randn(6, d, dtype=dtype),
        torch.randn(2 * d, d, dtype=dtype) / 3,
        torch.rand(d, dtype=dtype) if bias else None,
    ]
    grads = []
    outs = []
    for fn in (fused_gated_cross, _plain_step):
        args = [None if t is None else t.clone().requires_grad_() for t in leaves]
        out = fn(*args)
        dout = torch.linspace(-1, 1, out.numel(), dtype=dtype).view_as(out)
        outs.append(out.detach())
        grads.append(torch.autograd.grad(out, [a for a in args if a is not None], dout))
    assert_close(outs[0], outs[1], kind="reduction")
    for g_fused, g_plain in zip(*grads):
        assert_close(g_fused, g_plain, kind="reduction")
    if dtype == D64:
        args = [None if t is None else t.clone().requires_grad_() for t in leaves]
        assert torch.autograd.gradcheck(fused_gated_cross, args)


def test_fused_step_used_by_the_layer_and_equal_to_the_modules():
    """The layer's fast path (one stacked matmul, fused step) gives the same values and parameter
    gradients as calling w and wg (forced by a no-op forward hook, which disables the fast path)."""
    torch.manual_seed(1)
    net = GatedCrossNetwork(8, 3)
    x = torch.randn(5, 8, requires_grad=True)
    out_fast = net(x)
    assert out_fast.grad_fn is not None and "FusedGatedCross" in type(out_fast.grad_fn).__name__
    g_fast = torch.autograd.grad(out_fast.square().sum(), [x, *net.parameters()])
    handles = [layer.w.register_forward_hook(lambda m, i, o: None) for layer in net.layers]
    out_plain = net(x)
    assert "FusedGatedCross" not in type(out_plain.grad_fn).__name__
    g_plain = torch.autograd.grad(out_plain.square().sum(), [x, *net.parameters()])
    for h in handles:
        h.remove()
    assert_close(out_fast, out_plain, kind="reduction")
    for a, b in zip(g_fast, g_plain):
        assert_close(a, b, kind="reduction")
    assert set(net.state_dict()) == {f"layers.{i}.{k}" for i in range(3) for k in ("b", "w.weight", "wg.weight")}


def test_fused_step_errors():
    from gatelab.core.gated_cross import fused_gated_cross

    with pytest.raises(ValueError, match=r"weight must be \[8, 4\]"):
        fused_gated_cross(torch.randn(2, 4), torch.randn(2, 4), torch.randn(4, 4))
    with pytest.raises(ValueError, match="one shape"):
        fused_gated_cross(torch.randn(1, 4), torch.randn(2, 4), torch.randn(8, 4))
