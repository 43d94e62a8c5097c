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
