"""The TFT fast paths against straightforward references.

* the batched variable selection network (all per-variable GRNs in one ``baddbmm`` per layer,
  variable-major layout, padded weights masked) against a per-variable loop written from the
  equations (Lim et al. 2021 eqs. 6-8; pytorch-forecasting's options), every parameter randomised
  (the padding of the grouped weights too, which the fast path must ignore);
* the four static-context GRNs run as one stacked GRN against calling the modules;
* the cached attention masks against masks built from scratch;
* the input embedding (grouped categoricals summed by one matmul, reals lifted by one
  block-diagonal linear map) against per-variable lookups and products, values and gradients.

Tolerance (float32): ``rtol=1e-5, atol=1e-6`` (float rounding of different summation orders);
masks are compared exactly.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gatelab.core import VariableSelectionNetwork
from gatelab.timeseries.models.tft import _TINY, TemporalFusionTransformer, example_batch

RTOL, ATOL = 1e-5, 1e-6


def _randomise(module: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)


def _idx(t: torch.Tensor | None) -> list[int]:
    return [] if t is None else t.tolist()


def reference_vsn(v: VariableSelectionNetwork, raw: torch.Tensor, context: torch.Tensor | None) -> tuple:
    """One variable at a time, from the equations; reads the grouped weights' valid blocks only."""
    H = v.hidden_dim
    pre, proj, rn, grn = _idx(v._pre_idx), _idx(v._proj_idx), _idx(v._rn_idx), list(v._grn_vars)
    outs, embeddings, off = [], [], 0
    for j, (d, s) in enumerate(zip(v.input_dims, v._raw_sizes)):
        x = raw[..., off : off + s]
        off += s
        if j in pre:  # Linear(1, d_j)
            k = pre.index(j)
            x = x * v.prescale_weight[k, :d] + v.prescale_bias[k, :d]
        embeddings.append(x)
        if d == H:  # skip R_j
            r = x
        elif v.skip_mode == "interpolate":
            r = F.interpolate(x.reshape(-1, 1, d), H, mode="linear", align_corners=True).reshape(*x.shape[:-1], H)
        else:
            k = proj.index(j)
            r = x @ v.skip_weight[k, :d] + (v.skip_bias[k] if v.skip_bias is not None else 0.0)
        if j in rn:  # LayerNorm(2 sigmoid(m_j) R_j(x))
            k = rn.index(j)
            if v.resample_mask is not None:
                r = r * (2.0 * torch.sigmoid(v.resample_mask[k]))
            r = F.layer_norm(r, (H,), v.resample_norm_weight[k], v.resample_norm_bias[k])
        if j in grn:  # GRN_j: LayerNorm(GLU(W1 ELU(W2 x + b2) + b1) + R_j(x))
            k, h_j = grn.index(j), v.grn_hidden_dims[j]
            h = F.elu(x @ v.fc1_weight[k, :d, :h_j] + v.fc1_bias[k, :h_j])
            h = h @ v.fc2_weight[k, :h_j, :h_j] + v.fc2_bias[k, :h_j]
            value = h @ v.glu_weight[k, :h_j, :H] + v.glu_bias[k, :H]
            gate = torch.sigmoid(h @ v.glu_weight[k, :h_j, H:] + v.glu_bias[k, H:])
            r = F.layer_norm(value * gate + r, (H,), v.norm_weight[k], v.norm_bias[k])
        outs.append(r)
    weights = torch.softmax(v.weight_grn(torch.cat(embeddings, -1), context), dim=-1)
    out = sum(weights[..., j : j + 1] * o for j, o in enumerate(outs))
    return out, weights


VSN_CASES = {
    "paper": dict(input_dims={"a": 8, "b": 3, "c": 8, "d": 5}, hidden_dim=8, context_dim=4),
    "pytorch-forecasting": dict(
        input_dims={"cat1": 3, "cat2": 8, "r1": 4, "r2": 4, "r3": 6},
        hidden_dim=8,
        context_dim=4,
        skip="interpolate",
        prescale=["r1", "r2", "r3"],
        resample_only=["cat1", "cat2"],
        grn_hidden_dims=[3, 8, 4, 4, 6],
        weight_hidden_dim=5,
    ),
    "grn-vars-not-contiguous": dict(
        input_dims={"a": 4, "b": 8, "c": 2, "d": 8},
        hidden_dim=8,
        skip="interpolate",
        resample_only=["b"],
        grn_hidden_dims=[4, 8, 2, 8],
    ),
}


@pytest.mark.parametrize("case", sorted(VSN_CASES))
def test_batched_vsn_equals_per_variable_reference(case):
    torch.manual_seed(0)
    v = VariableSelectionNetwork(**VSN_CASES[case], dropout=0.1).eval()
    _randomise(v, 1)
    raw = torch.randn(3, 5, sum(v._raw_sizes), dtype=torch.float32)
    ctx = torch.randn(3, 1, v.context_dim) if v.context_dim else None
    out, w = v(raw, ctx)
    ref_out, ref_w = reference_vsn(v, raw, ctx)
    torch.testing.assert_close(w, ref_w, rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(out, ref_out, rtol=RTOL, atol=ATOL)
    # gradients too (float64: the comparison tests the math, not the rounding)
    # (built in float64: its fixed interpolation matrices are rounded to the build dtype)
    v64 = VariableSelectionNetwork(**VSN_CASES[case], dropout=0.1, dtype=torch.float64).eval()
    v64.load_state_dict({k: t.double() for k, t in v.state_dict().items()})
    v = v64
    raw = raw.double().requires_grad_()
    ctx = ctx.double() if ctx is not None else None
    v(raw, ctx)[0].sum().backward()
    g_fast = raw.grad.clone()
    raw.grad = None
    reference_vsn(v, raw, ctx)[0].sum().backward()
    torch.testing.assert_close(g_fast, raw.grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", sorted(VSN_CASES))
def test_batched_vsn_parameter_gradients_equal_the_reference(case):
    """float64: every parameter's gradient (the padding of the grouped weights gets none)."""
    torch.manual_seed(0)
    v = VariableSelectionNetwork(**VSN_CASES[case], dropout=0.1, dtype=torch.float64).eval()
    _randomise(v, 3)
    raw = torch.randn(3, 5, sum(v._raw_sizes), dtype=torch.float64)
    ctx = torch.randn(3, 1, v.context_dim, dtype=torch.float64) if v.context_dim else None
    g_out = torch.randn(3, 5, v.hidden_dim, dtype=torch.float64)
    params = dict(v.named_parameters())

    def grads(fn):
        out, w = fn(v, raw, ctx)
        got = torch.autograd.grad((out * g_out).sum() + w.square().sum(), list(params.values()), allow_unused=True)
        return {k: torch.zeros_like(p) if g is None else g for (k, p), g in zip(params.items(), got)}

    fast = grads(lambda m, r, c: m(r, c))
    ref = grads(reference_vsn)
    for k in params:
        torch.testing.assert_close(fast[k], ref[k], rtol=1e-10, atol=1e-12, msg=lambda m, k=k: f"{k}: {m}")


@pytest.mark.parametrize("layout", ["paper", "pytorch-forecasting"])
def test_input_embedding_equals_per_variable_lookups(layout):
    """Values and gradients (float64) of every part against lookups and products per variable."""
    m = TemporalFusionTransformer(**_TINY, layout=layout, dtype=torch.float64)
    _randomise(m, 4)
    emb = m.input_embedding
    x = example_batch(m, 3)
    cont = x["encoder_cont"].double().requires_grad_()
    cat = x["encoder_cat"]
    lo = {n: sum(emb.cardinalities[: emb.cat_names.index(n)]) for n in emb.cat_names}
    groups = _TINY["categorical_groups"]

    def reference(part: str) -> torch.Tensor:
        cats, reals = emb.parts[part]
        feats = []
        for n in cats:
            d = emb.sizes[n]
            cols = [m.x_categoricals.index(c) for c in groups.get(n, [n])]
            feats.append(sum(emb.cat_weight[lo[n] + cat[..., c], :d] for c in cols))
        for n in reals:
            j, d = emb.real_names.index(n), emb.sizes[n]
            feats.append(cont[..., m.x_reals.index(n), None] * emb.real_weight[j, :d] + emb.real_bias[j, :d])
        return torch.cat(feats, dim=-1)

    params = [emb.cat_weight, emb.real_weight, emb.real_bias, cont]
    for part in ("static", "encoder", "decoder"):
        c, r = (cat[:, 0], cont[:, 0]) if part == "static" else (cat, cont)
        fast = emb(c, r, part)
        want = reference(part) if part != "static" else reference(part)[:, 0]
        torch.testing.assert_close(fast, want, rtol=1e-12, atol=1e-14)
        g = torch.randn_like(fast)
        g_fast = torch.autograd.grad((fast * g).sum(), params)
        g_ref = torch.autograd.grad((want * g).sum(), params)
        for a, b in zip(g_fast, g_ref):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("layout", ["paper", "pytorch-forecasting"])
def test_stacked_static_encoders_equal_the_four_grns(layout):
    torch.manual_seed(0)
    m = TemporalFusionTransformer(**_TINY, layout=layout).eval()
    _randomise(m, 2)
    static = torch.randn(6, m.d_model)
    fast = m._static_contexts(static)
    ref = [g(static) for g in m._static_encoders()]
    for a, b in zip(fast, ref):
        torch.testing.assert_close(a, b, rtol=RTOL, atol=ATOL)
    # a hook on one of them: the modules are called (and the hook fires)
    seen = []
    h = m.static_context_enrichment.register_forward_hook(lambda *a: seen.append(1))
    try:
        again = m._static_contexts(static)
    finally:
        h.remove()
    assert seen == [1]
    for a, b in zip(again, ref):
        torch.testing.assert_close(a, b, rtol=0.0, atol=0.0)
    # the whole model: the stacked path and the module path give the same forecasts
    x = example_batch(m, 4)
    out = m(x).prediction
    h = m.static_context_variable_selection.register_forward_pre_hook(lambda *a: None)
    try:
        slow = m(x).prediction
    finally:
        h.remove()
    torch.testing.assert_close(out, slow, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("causal, attend_to_self", [(True, True), (True, False), (False, None)])
def test_cached_attention_masks_equal_fresh_ones(causal, attend_to_self):
    m = TemporalFusionTransformer(**_TINY, causal_attention=causal, attend_to_self=attend_to_self)
    for Te, Td in [(5, 3), (4, 3), (5, 3), (0, 2)]:
        enc_len = torch.tensor([Te, max(Te - 2, 0), 1 if Te else 0])
        dec_len = torch.tensor([Td, Td - 1, 1])
        for el, dl in [(enc_len, dec_len), (None, None)]:
            got = m._attention_blocked(el, dl, 3, Te, Td, torch.device("cpu"))
            i, j = torch.arange(Td)[:, None], torch.arange(Td)[None, :]
            enc = (
                torch.arange(Te)[None, None, :] >= el[:, None, None]
                if el is not None
                else torch.zeros(1, 1, Te, dtype=torch.bool)
            )
            if causal:
                dec = ((j > i) if m.attend_to_self else (j >= i)).unsqueeze(0)
            elif dl is not None:
                dec = j.unsqueeze(0) >= dl[:, None, None]
            else:
                dec = torch.zeros(1, 1, Td, dtype=torch.bool)
            want = torch.cat([enc.expand(3, Td, Te), dec.expand(3, Td, Td)], dim=-1)
            assert torch.equal(got, want), (Te, Td, el, dl)
    assert len(m._mask_cache) == 3  # (5, 3), (4, 3), (0, 2)
