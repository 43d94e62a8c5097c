"""OutputGatedAttention against a hand-written per-head, per-query attention loop."""

from __future__ import annotations

import math

import pytest
import torch
from gate_checks import check_capture, check_compile, check_grads, check_half_finite
from tolerances import assert_close

from gatelab.core import OutputGatedAttention, capture_gates


def _reference(m: OutputGatedAttention, x, kv=None, allowed=None):
    """Loop over batch, head and query; ``allowed[b, h, i, j]`` True = key j visible to query i."""
    kv = x if kv is None else kv
    B, Tq, _ = x.shape
    Tk = kv.shape[1]
    H, Dh, g = m.num_heads, m.head_dim, m.gate_dim
    Wq, Wk, Wv, Wo = m.q_proj.weight, m.k_proj.weight, m.v_proj.weight, m.out_proj.weight
    bq = m.q_proj.bias if m.q_proj.bias is not None else torch.zeros(Wq.shape[0])
    bk = m.k_proj.bias if m.k_proj.bias is not None else torch.zeros(Wk.shape[0])
    bv = m.v_proj.bias if m.v_proj.bias is not None else torch.zeros(Wv.shape[0])
    bo = m.out_proj.bias if m.out_proj.bias is not None else torch.zeros(Wo.shape[0])
    out = torch.zeros(B, Tq, m.dim)
    gates = torch.zeros(B, Tq, H, max(g, 1))
    for b in range(B):
        for t in range(Tq):
            heads = []
            for h in range(H):
                row = h * (Dh + g)  # documented fused layout: [q_h, gate_h] head by head
                q = Wq[row : row + Dh] @ x[b, t] + bq[row : row + Dh]
                scores = []
                for j in range(Tk):
                    k = Wk[h * Dh : (h + 1) * Dh] @ kv[b, j] + bk[h * Dh : (h + 1) * Dh]
                    scores.append(float(q @ k) / math.sqrt(Dh))
                vis = [j for j in range(Tk) if allowed is None or bool(allowed[b, h, t, j])]
                o = torch.zeros(Dh)
                if vis:
                    mx = max(scores[j] for j in vis)
                    den = sum(math.exp(scores[j] - mx) for j in vis)
                    for j in vis:
                        v = Wv[h * Dh : (h + 1) * Dh] @ kv[b, j] + bv[h * Dh : (h + 1) * Dh]
                        o = o + math.exp(scores[j] - mx) / den * v
                if g:
                    logit = Wq[row + Dh : row + Dh + g] @ x[b, t] + bq[row + Dh : row + Dh + g]
                    gate = 1.0 / (1.0 + torch.exp(-logit))
                    gates[b, t, h, :g] = gate
                    o = o * gate
                heads.append(o)
            out[b, t] = Wo @ torch.cat(heads) + bo
    return out, gates


@pytest.mark.parametrize("gate", ["headwise", "elementwise", None])
def test_self_attention_values(gate):
    m = OutputGatedAttention(8, 2, gate=gate)
    x = torch.randn(2, 5, 8)
    with torch.no_grad():
        got = m(x)
        ref, ref_g = _reference(m, x)
    assert_close(got, ref, kind="reduction")
    if gate is None:
        assert m.q_proj.out_features == 8
    else:
        with capture_gates(m) as gates:
            m(x)
        want = ref_g[..., 0] if gate == "headwise" else ref_g
        assert_close(gates[next(iter(gates))], want, kind="reduction")


def test_gate_parameter_counts():
    # Fused q/gate projection sizes: head-wise adds H rows, element-wise adds dim rows.
    assert OutputGatedAttention(12, 3, gate="headwise").q_proj.weight.shape == (12 + 3, 12)
    assert OutputGatedAttention(12, 3, gate="elementwise").q_proj.weight.shape == (24, 12)
    assert OutputGatedAttention(12, 3, gate=None).q_proj.weight.shape == (12, 12)


def test_masks_and_causal_values():
    m = OutputGatedAttention(8, 2, gate="elementwise", qkv_bias=False)
    B, T = 2, 5
    x = torch.randn(B, T, 8)
    attn_mask = torch.rand(T, T) > 0.3
    kpm = torch.zeros(B, T, dtype=torch.bool)
    kpm[1, 3:] = True
    allowed = torch.zeros(B, 2, T, T, dtype=torch.bool)
    for b in range(B):
        for h in range(2):
            for i in range(T):
                for j in range(T):
                    allowed[b, h, i, j] = bool(attn_mask[i, j]) and not bool(kpm[b, j]) and j <= i
    with torch.no_grad():
        got = m(x, attn_mask=attn_mask, key_padding_mask=kpm, is_causal=True)
        got_w, weights = m(x, attn_mask=attn_mask, key_padding_mask=kpm, is_causal=True, need_weights=True)
        ref, _ = _reference(m, x, allowed=allowed)
        causal_only = m(x, is_causal=True)
        ref_causal, _ = _reference(m, x, allowed=torch.ones(T, T, dtype=torch.bool).tril().expand(B, 2, T, T))
    assert_close(got, ref, kind="reduction")
    assert_close(got_w, ref, kind="reduction")
    assert_close(causal_only, ref_causal, kind="reduction")
    assert weights.shape == (B, 2, T, T)
    assert (weights[~allowed] == 0).all()
    rows = allowed.any(-1)
    assert_close(weights.sum(-1)[rows], torch.ones(int(rows.sum())))


def test_fully_masked_query_row_is_finite():
    m = OutputGatedAttention(8, 2)
    x = torch.randn(2, 4, 8, requires_grad=True)
    attn_mask = torch.ones(4, 4, dtype=torch.bool)
    attn_mask[2] = False  # query 2 sees no key
    kpm = torch.zeros(2, 4, dtype=torch.bool)
    kpm[1] = True  # batch 1: every key is padding
    for need_weights in (False, True):
        out = m(x, attn_mask=attn_mask, key_padding_mask=kpm, need_weights=need_weights)
        y = out[0] if need_weights else out
        assert torch.isfinite(y).all()
        y.sum().backward()
        assert torch.isfinite(x.grad).all()
        x.grad = None
        # a query with no visible key contributes only the output bias
        assert_close(y[0, 2].detach(), m.out_proj.bias.detach())
        assert_close(y[1].detach(), m.out_proj.bias.detach().expand(4, 8))
    for dtype in (torch.float16, torch.bfloat16):
        mh = OutputGatedAttention(8, 2).to(dtype)
        assert torch.isfinite(mh(x.detach().to(dtype), attn_mask=attn_mask, key_padding_mask=kpm)).all()


def test_cross_attention_values():
    m = OutputGatedAttention(8, 4, gate="headwise", kv_dim=6)
    x, kv = torch.randn(2, 3, 8), torch.randn(2, 7, 6)
    kpm = torch.zeros(2, 7, dtype=torch.bool)
    kpm[0, 5:] = True
    allowed = (~kpm)[:, None, None, :].expand(2, 4, 3, 7)
    with torch.no_grad():
        assert_close(
            m(x, kv, key_padding_mask=kpm), _reference(m, x, kv, allowed=allowed)[0], kind="reduction"
        )


def test_errors():
    with pytest.raises(ValueError, match="divisible"):
        OutputGatedAttention(10, 3)
    with pytest.raises(ValueError, match="gate"):
        OutputGatedAttention(8, 2, gate="channel")
    m = OutputGatedAttention(8, 2)
    with pytest.raises(ValueError, match=r"\[B, T, dim=8\]"):
        m(torch.randn(2, 3, 6))
    with pytest.raises(ValueError, match="kv must have shape"):
        m(torch.randn(2, 3, 8), torch.randn(3, 4, 8))
    with pytest.raises(TypeError, match="boolean"):
        m(torch.randn(2, 3, 8), attn_mask=torch.zeros(3, 3))
    with pytest.raises(ValueError, match="not broadcastable"):
        m(torch.randn(2, 3, 8), attn_mask=torch.ones(4, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="key_padding_mask"):
        m(torch.randn(2, 3, 8), key_padding_mask=torch.zeros(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="pass kv"):
        OutputGatedAttention(8, 2, kv_dim=4)(torch.randn(2, 3, 8))
    with pytest.raises(TypeError):
        OutputGatedAttention(8, 2, heads=2)  # no silently swallowed kwargs


@pytest.mark.parametrize("gate", ["headwise", "elementwise"])
def test_shared_checks(gate):
    m = OutputGatedAttention(8, 2, gate=gate)
    x = torch.randn(2, 5, 8)
    kpm = torch.zeros(2, 5, dtype=torch.bool)
    kpm[1, 2:] = True

    class Masked(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = m

        def forward(self, x):
            return self.attn(x, key_padding_mask=kpm, is_causal=True, need_weights=True)

    check_compile(Masked(), x)
    check_compile(m, x)
    m.train()
    check_grads(m, x)
    gates = check_capture(m, x)
    (g,) = gates.values()
    assert g.shape == ((2, 5, 2) if gate == "headwise" else (2, 5, 2, 4))
    assert ((g > 0) & (g < 1)).all()

    def make():
        mm = OutputGatedAttention(8, 2, gate=gate)
        with torch.no_grad():
            mm.q_proj.weight.mul_(30.0)  # saturating gate and softmax logits
        return mm

    def inputs(dtype):
        return [torch.randn(2, 5, 8).sign().to(dtype) * 100]

    check_half_finite(make, inputs)

    class WithWeights(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = make()

        def forward(self, x):
            return self.attn(x, is_causal=True, need_weights=True)

    check_half_finite(WithWeights, inputs)
