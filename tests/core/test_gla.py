"""Gated linear attention: recurrent vs a hand-written loop, chunk vs recurrent (values and gradients)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from gate_checks import check_capture, check_compile, check_grads, check_half_finite
from tolerances import assert_close

from gatelab.core import GatedLinearAttention, gla_chunk, gla_recurrent


def _loop_gla(q, k, v, gk, scale, S0=None):
    """Element-by-element GLA recurrence: S[a, c] <- exp(g[a]) S[a, c] + k[a] v[c]; o[c] = scale sum_a q[a] S[a, c]."""
    B, T, H, K = q.shape
    V = v.shape[-1]
    o = torch.zeros(B, T, H, V, dtype=torch.float64)
    final = torch.zeros(B, H, K, V, dtype=torch.float64)
    for b in range(B):
        for h in range(H):
            S = [[0.0 if S0 is None else float(S0[b, h, a, c]) for c in range(V)] for a in range(K)]
            for t in range(T):
                for a in range(K):
                    decay = math.exp(float(gk[b, t, h, a]))
                    for c in range(V):
                        S[a][c] = decay * S[a][c] + float(k[b, t, h, a]) * float(v[b, t, h, c])
                for c in range(V):
                    o[b, t, h, c] = scale * sum(float(q[b, t, h, a]) * S[a][c] for a in range(K))
            final[b, h] = torch.tensor(S, dtype=torch.float64)
    return o, final


def _inputs(B=2, T=13, H=2, K=4, V=5, strong=True, dtype=torch.float32):
    q, k, v = torch.randn(B, T, H, K), torch.randn(B, T, H, K), torch.randn(B, T, H, V)
    gk = F.logsigmoid(torch.randn(B, T, H, K) * 2)
    if strong:  # strongly negative log gates: exp(-cumsum) would overflow float32 within a chunk
        gk = torch.where(torch.rand(B, T, H, K) < 0.3, -40.0 * torch.rand(B, T, H, K) - 20.0, gk)
    S0 = torch.randn(B, H, K, V)
    return [t.to(dtype) for t in (q, k, v, gk, S0)]


def test_recurrent_matches_hand_loop():
    q, k, v, gk, S0 = _inputs(B=1, T=5, H=2, K=2, V=3)
    for init in (None, S0):
        o, S = gla_recurrent(q, k, v, gk, initial_state=init, output_final_state=True)
        ref_o, ref_S = _loop_gla(q, k, v, gk, 2**-0.5, init)
        assert_close(o, ref_o.float(), kind="reduction")
        assert_close(S, ref_S.float(), kind="reduction")
    o, S = gla_recurrent(q, k, v, gk, scale=0.3)
    assert S is None
    assert_close(o, _loop_gla(q, k, v, gk, 0.3)[0].float(), kind="reduction")


def test_chunk_matches_hand_loop():
    q, k, v, gk, S0 = _inputs(B=1, T=7, H=1, K=3, V=2)
    o, S = gla_chunk(q, k, v, gk, initial_state=S0, output_final_state=True, chunk_size=3)
    ref_o, ref_S = _loop_gla(q, k, v, gk, 3**-0.5, S0)
    assert_close(o, ref_o.float(), kind="reduction")
    assert_close(S, ref_S.float(), kind="reduction")


@pytest.mark.parametrize(("T", "chunk_size"), [(13, 4), (13, 5), (13, 16), (16, 4), (1, 4), (37, 16)])
def test_chunk_matches_recurrent_with_grads(T, chunk_size):
    ins = [t.requires_grad_() for t in _inputs(T=T)]
    q, k, v, gk, S0 = ins
    o_r, S_r = gla_recurrent(q, k, v, gk, initial_state=S0, output_final_state=True)
    o_c, S_c = gla_chunk(q, k, v, gk, initial_state=S0, output_final_state=True, chunk_size=chunk_size)
    torch.testing.assert_close(o_c, o_r, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(S_c, S_r, rtol=1e-4, atol=1e-5)
    # a random cotangent on both outputs so every gradient path is exercised
    wo, ws = torch.randn_like(o_r), torch.randn_like(S_r)
    g_r = torch.autograd.grad((o_r * wo).sum() + (S_r * ws).sum(), ins)
    g_c = torch.autograd.grad((o_c * wo).sum() + (S_c * ws).sum(), ins)
    for name, a, b in zip(("q", "k", "v", "gk", "initial_state"), g_c, g_r):
        assert torch.isfinite(a).all(), name
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=lambda m, name=name: f"d{name}: {m}")


def test_chunk_stable_for_very_negative_gates():
    B, T, H, K, V = 1, 64, 1, 3, 2
    q, k, v = torch.randn(B, T, H, K), torch.randn(B, T, H, K), torch.randn(B, T, H, V)
    gk = torch.full((B, T, H, K), -60.0, requires_grad=True)  # cumsum -3840: exp(-cumsum) is inf in fp32
    o, S = gla_chunk(q, k, v, gk, output_final_state=True, chunk_size=64)
    # with exp(-60) ~ 1e-26 the state forgets everything: o_t = scale * (q_t . k_t) v_t
    expected = (q * k).sum(-1, keepdim=True) * v * K**-0.5
    assert_close(o, expected, kind="reduction")
    assert_close(S, k[:, -1, :, :, None] * v[:, -1, :, None, :], kind="reduction")
    (o.sum() + S.sum()).backward()
    assert torch.isfinite(gk.grad).all()
    for dtype in (torch.float16, torch.bfloat16):
        oh, _ = gla_chunk(q.to(dtype), k.to(dtype), v.to(dtype), gk.detach().to(dtype), chunk_size=16)
        assert oh.dtype == dtype and torch.isfinite(oh).all()


def test_functional_errors():
    q, k, v, gk, S0 = _inputs(T=5)
    with pytest.raises(ValueError, match="gk must have"):
        gla_chunk(q, k, v, gk[..., :2])
    with pytest.raises(ValueError, match="v must have"):
        gla_recurrent(q, k, v[:, :3], gk)
    with pytest.raises(ValueError, match="initial_state"):
        gla_chunk(q, k, v, gk, initial_state=S0[:, :1])
    with pytest.raises(ValueError, match="chunk_size"):
        gla_chunk(q, k, v, gk, chunk_size=0)


def _layer_reference(m: GatedLinearAttention, x, S0=None):
    """The layer by hand: projections with explicit weights, the element loop, norm, swish gate."""
    B, T, _ = x.shape
    H, Dk, Dv = m.num_heads, m.head_k_dim, m.head_v_dim
    q = (x @ m.q_proj.weight.T).view(B, T, H, Dk)
    k = (x @ m.k_proj.weight.T).view(B, T, H, Dk)
    v = (x @ m.v_proj.weight.T).view(B, T, H, Dv)
    w1, w2, b2 = m.gk_proj[0].weight, m.gk_proj[1].weight, m.gk_proj[1].bias
    logits = x @ w1.T @ w2.T + b2
    gk = torch.log(1.0 / (1.0 + torch.exp(-logits))).view(B, T, H, Dk) / m.gate_logit_normalizer
    o, S = _loop_gla(q.detach(), k.detach(), v.detach(), gk.detach(), Dk**-0.5, S0)
    o = o.float()
    if m.norm == "layernorm":
        o = o - o.mean(-1, keepdim=True)
        o = o / torch.sqrt((o**2).mean(-1, keepdim=True) + m.norm_eps) * m.norm_weight + m.norm_bias
    else:
        o = o / torch.sqrt((o**2).mean(-1, keepdim=True) + m.norm_eps) * m.norm_weight
    r = x @ m.g_proj.weight.T
    gate = (r / (1.0 + torch.exp(-r))).view(B, T, H, Dv)
    y = (o * gate).reshape(B, T, -1) @ m.o_proj.weight.T
    return y, S.float(), torch.exp(gk), gate


@pytest.mark.parametrize("mode", ["chunk", "recurrent"])
@pytest.mark.parametrize("norm", ["rmsnorm", "layernorm"])
def test_layer_values(mode, norm):
    m = GatedLinearAttention(8, 2, mode=mode, norm=norm, gate_low_rank_dim=3, chunk_size=4)
    with torch.no_grad():
        m.norm_weight.uniform_(0.5, 1.5)
        if m.norm_bias is not None:
            m.norm_bias.uniform_(-0.5, 0.5)
    x = torch.randn(2, 7, 8)
    S0 = torch.randn(2, 2, m.head_k_dim, m.head_v_dim)
    with torch.no_grad():
        y, S = m(x, initial_state=S0, output_final_state=True)
        ref_y, ref_S, ref_forget, ref_gate = _layer_reference(m, x, S0)
    assert_close(y, ref_y, kind="reduction")
    assert_close(S, ref_S, kind="reduction")
    gates = check_capture(m, x, expect=(":forget", ":output"))
    assert_close(gates["GatedLinearAttention:forget"], ref_forget, kind="reduction")
    assert_close(gates["GatedLinearAttention:output"], ref_gate, kind="reduction")
    assert ((ref_forget > 0) & (ref_forget < 1)).all()


def test_layer_state_carry_and_modes_agree():
    m = GatedLinearAttention(8, 2, chunk_size=4)
    x = torch.randn(2, 11, 8)
    with torch.no_grad():
        full, S_full = m(x, output_final_state=True)
        first, S_mid = m(x[:, :6], output_final_state=True)
        second, S_end = m(x[:, 6:], initial_state=S_mid, output_final_state=True)
        m.mode = "recurrent"
        rec = m(x)
    assert_close(torch.cat([first, second], 1), full, kind="reduction")
    assert_close(S_end, S_full, kind="reduction")
    assert_close(rec, full, kind="reduction")


def test_layer_errors():
    with pytest.raises(ValueError, match="mode"):
        GatedLinearAttention(8, 2, mode="fused")
    with pytest.raises(ValueError, match="key_dim"):
        GatedLinearAttention(8, 3)
    with pytest.raises(ValueError, match="norm"):
        GatedLinearAttention(8, 2, norm="batchnorm")
    with pytest.raises(ValueError, match=r"\[B, T, dim=8\]"):
        GatedLinearAttention(8, 2)(torch.randn(2, 3, 4))
    with pytest.raises(TypeError):
        GatedLinearAttention(8, 2, expandk=0.5)


@pytest.mark.parametrize("mode", ["chunk", "recurrent"])
def test_shared_checks(mode):
    m = GatedLinearAttention(8, 2, mode=mode, bias=True, chunk_size=4)
    x = torch.randn(2, 7, 8)
    check_compile(m, x)
    m.train()
    check_grads(m, x)

    def make():
        mm = GatedLinearAttention(8, 2, mode=mode, chunk_size=4)
        with torch.no_grad():
            mm.gk_proj[1].weight.mul_(100.0)  # saturated forget gates: exp(gk) -> 0 or 1
        return mm

    def inputs(dtype):
        # |projections| reach ~1e3; the state sums k v products far beyond the fp16 range in float32
        return [(torch.randn(2, 9, 8).sign() * 300).to(dtype)]

    check_half_finite(make, inputs)
