"""BilinearFusion (FinalMLP multi-head bilinear aggregation) against explicit sums."""

from __future__ import annotations

import pytest
import torch
from gate_checks import check_capture, check_compile, check_grads, check_half_finite
from tolerances import assert_close

from gatelab.core import BilinearFusion, capture_gates

D64 = torch.float64


def _hand(m: BilinearFusion, x, y):
    """out_o = b_o + w_x,o.x + w_y,o.y + sum_h sum_ij x_h,i W_h,o,i,j y_h,j, as explicit loops."""
    k, dx, dy = m.num_heads, m.head_x, m.head_y
    rows = []
    heads_all = []
    for r in range(x.shape[0]):
        outs, heads = [], []
        for o in range(m.out_dim):
            val = (x[r] * m.w_x.weight[o]).sum() + (y[r] * m.w_y.weight[o]).sum()
            if m.bias is not None:
                val = val + m.bias[o]
            per_head = []
            for h in range(k):
                t = sum(
                    x[r, h * dx + i] * m.w_xy[h, o, i, j] * y[r, h * dy + j]
                    for i in range(dx)
                    for j in range(dy)
                )
                per_head.append(t)
                val = val + t
            outs.append(val)
            heads.append(torch.stack(per_head))
        rows.append(torch.stack(outs))
        heads_all.append(torch.stack(heads, -1))  # [k, out]
    return torch.stack(rows), torch.stack(heads_all)


@pytest.mark.parametrize(("x_dim", "y_dim", "out_dim", "heads"), [(4, 6, 1, 1), (6, 4, 3, 2), (6, 9, 2, 3)])
@pytest.mark.parametrize("bias", [True, False])
def test_matches_hand_written(x_dim, y_dim, out_dim, heads, bias):
    m = BilinearFusion(x_dim, y_dim, out_dim, num_heads=heads, bias=bias, dtype=D64)
    if bias:
        torch.nn.init.normal_(m.bias)
    x, y = torch.randn(3, x_dim, dtype=D64), torch.randn(3, y_dim, dtype=D64)
    with capture_gates(m) as gates:
        out = m(x, y)
    ref, heads_ref = _hand(m, x, y)
    assert out.shape == (3, out_dim)
    assert_close(out, ref)
    assert_close(gates["BilinearFusion:heads"], heads_ref)


def test_fuxictr_weight_layout():
    """FuxiCTR stores w_xy as [k*dx*dy, out] and reads it as view(k, dx, out, dy)."""
    k, dx, dy, out = 2, 3, 2, 2
    m = BilinearFusion(k * dx, k * dy, out, num_heads=k, dtype=D64)
    theirs = torch.randn(k * dx * dy, out, dtype=D64)
    with torch.no_grad():
        m.w_xy.copy_(theirs.view(k, dx, out, dy).permute(0, 2, 1, 3))
    x, y = torch.randn(4, k * dx, dtype=D64), torch.randn(4, k * dy, dtype=D64)
    # FuxiCTR's bilinear term, re-derived: matmul(x_h, W.view(k, dx, -1)).view(-1, k, out, dy) @ y_h
    hx, hy = x.view(-1, k, dx), y.view(-1, k, dy)
    t = torch.matmul(hx.unsqueeze(2), theirs.view(k, dx, -1)).view(-1, k, out, dy)
    xy = torch.matmul(t, hy.unsqueeze(-1)).squeeze(-1).sum(1)
    lin = m.w_x(x) + m.w_y(y) + m.bias
    assert_close(m(x, y), lin + xy)


def test_errors():
    with pytest.raises(ValueError, match="divisible by num_heads=4"):
        BilinearFusion(8, 6, num_heads=4)
    m = BilinearFusion(4, 6)
    with pytest.raises(ValueError, match=r"x\[..., 4\] and y\[..., 6\]"):
        m(torch.randn(2, 4), torch.randn(2, 5))


def test_shared_checks():
    m = BilinearFusion(6, 4, 2, num_heads=2)
    x, y = torch.randn(3, 5, 6), torch.randn(3, 5, 4)
    check_compile(m, x, y)
    check_capture(m, x, y, expect=(":heads",))
    check_grads(m, x, y)
    check_half_finite(
        lambda: BilinearFusion(6, 4, 1, num_heads=2),
        lambda dt: [torch.full((2, 6), 30.0, dtype=dt), torch.full((2, 4), -30.0, dtype=dt)],
    )
