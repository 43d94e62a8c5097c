"""GatedAttentionUnit against the GAU equations written out token pair by token pair."""

from __future__ import annotations

import math

import pytest
import torch
from gate_checks import check_capture, check_compile, check_grads, check_half_finite
from tolerances import assert_close

from gatelab.core import GatedAttentionUnit, capture_gates

D64 = torch.float64


def _perturbed(m: GatedAttentionUnit) -> GatedAttentionUnit:
    """Non-trivial gamma/beta/position bias (they start at N(0, .02) / 0)."""
    torch.manual_seed(11)
    with torch.no_grad():
        m.gamma.normal_(0.0, 1.0)
        m.beta.normal_(0.0, 0.5)
        if m.rel_pos is not None:
            m.rel_pos.normal_(0.0, 0.5)
    return m


def _hand(m: GatedAttentionUnit, x, *, causal=False, pad=None):
    """O_i = W_o (u_i * sum_j A_ij v_j) + b_o with every A_ij computed on its own."""
    W, b = m.to_uvz.weight.detach(), m.to_uvz.bias.detach()
    e, s = m.hidden_dim, m.qk_dim
    g, beta = m.gamma.detach(), m.beta.detach()
    B, n, _ = x.shape
    out = torch.zeros(B, n, m.dim, dtype=x.dtype)
    for bi in range(B):
        uvz = [torch.nn.functional.silu(W @ x[bi, t] + b) for t in range(n)]
        u = [h[:e] for h in uvz]
        v = [h[e : 2 * e] for h in uvz]
        q = [h[2 * e :] * g[0] + beta[0] for h in uvz]
        k = [h[2 * e :] * g[1] + beta[1] for h in uvz]
        valid = [pad is None or not bool(pad[bi, j]) for j in range(n)]
        n_k = sum(valid) if pad is not None else n
        for i in range(n):
            raw = []
            for j in range(n):
                rel = max(-m.max_rel_pos, min(m.max_rel_pos, j - i)) + m.max_rel_pos
                r = float(m.rel_pos.detach()[rel])
                see = valid[j] and (not causal or j <= i)
                raw.append((float(q[i] @ k[j]), r, see))
            if m.attention == "relu2":
                a = [max(sc / n_k + r, 0.0) ** 2 if see else 0.0 for sc, r, see in raw]
            else:
                ex = [math.exp(sc / math.sqrt(s) + r) if see else 0.0 for sc, r, see in raw]
                a = [val / sum(ex) for val in ex]
            ctx = sum(a[j] * v[j] for j in range(n))
            out[bi, i] = m.out.weight.detach() @ (u[i] * ctx) + m.out.bias.detach()
    return out


@pytest.mark.parametrize("attention", ["relu2", "softmax"])
@pytest.mark.parametrize("causal", [False, True])
def test_matches_hand_written(attention, causal):
    m = _perturbed(GatedAttentionUnit(4, 6, 3, attention=attention, max_rel_pos=2, dtype=D64))
    x = torch.randn(2, 5, 4, dtype=D64)
    with capture_gates(m) as gates:
        y = m(x, is_causal=causal)
    assert_close(y, _hand(m, x, causal=causal))
    assert gates["GatedAttentionUnit"].shape == (2, 5, 6)  # u, the gating branch
    assert_close(m(x, is_causal=causal), y)


@pytest.mark.parametrize("attention", ["relu2", "softmax"])
def test_padding_mask_matches_hand_written_and_the_unpadded_sequence(attention):
    m = _perturbed(GatedAttentionUnit(4, 6, 3, attention=attention, max_rel_pos=2, dtype=D64))
    x = torch.randn(2, 6, 4, dtype=D64)
    pad = torch.zeros(2, 6, dtype=torch.bool)
    pad[1, 4:] = True
    y = m(x, key_padding_mask=pad)
    assert_close(y, _hand(m, x, pad=pad))
    # row 1 equals the same sequence without its padding (relative positions: shift-free)
    assert_close(y[1, :4], m(x[1:2, :4])[0])
    x2 = x.clone()
    x2[1, 4:] = 1e3  # padded content never reaches the valid positions
    assert_close(m(x2, key_padding_mask=pad)[1, :4], y[1, :4])


@pytest.mark.parametrize("attention", ["relu2", "softmax"])
def test_causal_outputs_do_not_see_the_future(attention):
    m = _perturbed(GatedAttentionUnit(8, attention=attention, qk_dim=4, dtype=D64))
    x = torch.randn(1, 7, 8, dtype=D64)
    y = m(x, is_causal=True)
    x2 = x.clone()
    x2[0, 4:] = torch.randn(3, 8, dtype=D64)
    y2 = m(x2, is_causal=True)
    assert_close(y2[0, :4], y[0, :4])
    assert not torch.allclose(y2[0, 4:], y[0, 4:])


def test_no_position_bias_and_defaults():
    m = GatedAttentionUnit(6, qk_dim=4, max_rel_pos=None)
    assert m.rel_pos is None and m.hidden_dim == 12
    assert torch.equal(m.position_bias(3), torch.zeros(3, 3))
    assert m(torch.randn(2, 3, 6)).shape == (2, 3, 6)


def test_errors():
    with pytest.raises(ValueError, match="attention must be one of"):
        GatedAttentionUnit(4, attention="linear")
    with pytest.raises(ValueError, match="qk_dim must be a positive int"):
        GatedAttentionUnit(4, qk_dim=0)
    with pytest.raises(ValueError, match="dropout"):
        GatedAttentionUnit(4, dropout=1.0)
    m = GatedAttentionUnit(4, qk_dim=2)
    with pytest.raises(ValueError, match=r"expected x \[B, n, 4\], got \(2, 3, 5\)"):
        m(torch.randn(2, 3, 5))
    with pytest.raises(ValueError, match=r"key_padding_mask must be bool \[B, n\] = \(2, 3\)"):
        m(torch.randn(2, 3, 4), key_padding_mask=torch.zeros(2, 4, dtype=torch.bool))


@pytest.mark.parametrize("attention", ["relu2", "softmax"])
def test_shared_checks(attention):
    m = GatedAttentionUnit(8, 8, 4, attention=attention, max_rel_pos=3)
    x = torch.randn(2, 5, 8)
    check_compile(m, x)
    check_capture(m, x)
    check_grads(m, x)


@pytest.mark.parametrize("attention", ["relu2", "softmax"])
def test_half_precision_stays_finite_where_half_intermediates_overflow(attention):
    def make():
        m = GatedAttentionUnit(4, 4, 4, attention=attention, max_rel_pos=None)
        with torch.no_grad():  # large q.k (1e3 per pair, squared: 1e6 > the float16 range) ...
            m.gamma.fill_(1.0)
            m.beta.zero_()
            m.to_uvz.weight[:4].fill_(0.05)  # u ~ 1.3
            m.to_uvz.weight[4:8].fill_(1e-3)  # v ~ 0.016
            m.to_uvz.weight[8:].fill_(0.5)  # z = 16: q.k / n = 341, A = 1.2e5
            m.to_uvz.bias.zero_()
            m.out.bias.zero_()
            m.out.weight.fill_(1e-3)  # ... while u * (A v) ~ 7e3 and the output fit
        return m

    x = torch.full((1, 3, 4), 8.0)
    want = make()(x)
    assert torch.isfinite(want).all() and (attention == "softmax" or want.abs().max() > 1.0)
    check_half_finite(make, lambda dt: [x.to(dt)])
    for dt in (torch.float16, torch.bfloat16):
        got = make().to(dt)(x.to(dt)).float()
        torch.testing.assert_close(got, want, rtol=5e-2, atol=1e-2)  # bf16: 8-bit mantissa, squared
