"""TFT gates (GLU, GRN, GateAddNorm, VSN) against the equations written out with elementary ops."""

from __future__ import annotations

import math

import pytest
import torch
from gate_checks import check_capture, check_compile, check_grads, check_half_finite
from tolerances import assert_close

from gatelab.core import (
    GateAddNorm,
    GatedLinearUnit,
    GatedResidualNetwork,
    VariableSelectionNetwork,
    capture_gates,
)

D64 = torch.float64


# ---------------------------------------------------------------- hand-written building blocks
def sig(x):
    return 1.0 / (1.0 + torch.exp(-x))


def elu(x):
    return torch.where(x > 0, x, torch.exp(x) - 1.0)


def lin(x, w, b=None):
    """``x @ w.T + b`` for an nn.Linear-style ``w`` [out, in], written as a sum over inputs."""
    y = (x.unsqueeze(-2) * w).sum(-1)
    return y if b is None else y + b


def layer_norm(x, w, b, eps=1e-5):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def interp(x, n_out):
    """Linear interpolation of the last axis, align_corners=True, one output point at a time."""
    n_in = x.shape[-1]
    cols = []
    for j in range(n_out):
        src = j * (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
        i0 = math.floor(src)
        i1 = min(i0 + 1, n_in - 1)
        lam = src - i0
        cols.append((1 - lam) * x[..., i0] + lam * x[..., i1])
    return torch.stack(cols, -1)


def hand_glu(m: GatedLinearUnit, x):
    z = lin(x, m.fc.weight, m.fc.bias)
    n = m.out_dim
    return z[..., :n] * sig(z[..., n:]), sig(z[..., n:])


def hand_gate_add_norm(m: GateAddNorm, x, skip):
    if m.skip_dim != m.out_dim:
        skip = (
            lin(skip, m.resample.weight, m.resample.bias)
            if m.skip_mode == "linear"
            else interp(skip, m.out_dim)
        )
    if m.mask is not None:
        skip = skip * 2.0 * sig(m.mask)
    return layer_norm(hand_glu(m.glu, x)[0] + skip, m.norm.weight, m.norm.bias)


def hand_grn(m: GatedResidualNetwork, a, c=None):
    if m.dim == m.out_dim:
        s = a
    elif m.skip_mode == "linear":
        s = lin(a, m.skip.weight, m.skip.bias)
    else:
        s = layer_norm(
            interp(a, m.out_dim) * 2.0 * sig(m.skip.mask), m.skip.norm.weight, m.skip.norm.bias
        )
    h = lin(a, m.fc1.weight, m.fc1.bias)
    if c is not None:
        h = h + lin(c, m.context.weight)
    h = lin(elu(h), m.fc2.weight, m.fc2.bias)
    return hand_gate_add_norm(m.gate_norm, h, s)


def randomize(m: torch.nn.Module) -> torch.nn.Module:
    """Random values in every parameter (padding included), so nothing passes by being 0 or 1."""
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0.0, 0.7)
    return m.eval()


# ---------------------------------------------------------------- GLU / GateAddNorm / GRN values
def test_glu_matches_hand_written():
    m = randomize(GatedLinearUnit(5, 3, dtype=D64))
    x = torch.randn(2, 4, 5, dtype=D64)
    with capture_gates(m) as gates:
        y = m(x)
    y_ref, g_ref = hand_glu(m, x)
    assert y.shape == (2, 4, 3)
    assert_close(y, y_ref)
    assert_close(gates["GatedLinearUnit"], g_ref)


@pytest.mark.parametrize("skip", ["linear", "interpolate"])
@pytest.mark.parametrize("trainable_add", [False, True])
@pytest.mark.parametrize("skip_dim", [None, 7, 3])
def test_gate_add_norm_matches_hand_written(skip, trainable_add, skip_dim):
    m = randomize(GateAddNorm(6, 5, skip_dim=skip_dim, skip=skip, trainable_add=trainable_add, dtype=D64))
    x = torch.randn(3, 6, dtype=D64)
    s = torch.randn(3, skip_dim or 5, dtype=D64)
    assert_close(m(x, s), hand_gate_add_norm(m, x, s))


@pytest.mark.parametrize("skip", ["linear", "interpolate"])
@pytest.mark.parametrize(("d_in", "d_hid", "d_out"), [(5, 7, 5), (5, 4, 9), (6, 3, 2)])
@pytest.mark.parametrize("with_context", [False, True])
def test_grn_matches_hand_written(skip, d_in, d_hid, d_out, with_context):
    m = randomize(
        GatedResidualNetwork(
            d_in, d_hid, d_out, context_dim=4 if with_context else None, skip=skip, dtype=D64
        )
    )
    a = torch.randn(2, 3, d_in, dtype=D64)
    c = torch.randn(2, 1, 4, dtype=D64) if with_context else None  # static context broadcast over time
    y = m(a, c)
    assert y.shape == (2, 3, d_out)
    assert_close(y, hand_grn(m, a, c))


def test_grn_defaults_and_errors():
    m = GatedResidualNetwork(4)
    assert (m.hidden_dim, m.out_dim, m.skip) == (4, 4, None)
    assert torch.all(m.fc1.bias == 0) and m.context is None
    with pytest.raises(ValueError, match="context_dim=None"):
        m(torch.randn(2, 4), torch.randn(2, 3))
    with pytest.raises(ValueError, match=r"a\[..., 4\]"):
        m(torch.randn(2, 5))
    with pytest.raises(ValueError, match="skip must be one of"):
        GatedResidualNetwork(4, skip="project")
    with pytest.raises(TypeError):
        GatedResidualNetwork(4, hiden_size=3)  # misspelt keyword is an error
    with pytest.raises(ValueError, match="dim"):
        GatedResidualNetwork(0)


def test_grn_context_is_optional_at_call_time():
    m = randomize(GatedResidualNetwork(4, 5, 4, context_dim=3, dtype=D64))
    a = torch.randn(2, 4, dtype=D64)
    assert_close(m(a), hand_grn(m, a))


# ---------------------------------------------------------------- VSN: hand-written loop over variables
def hand_vsn(m: VariableSelectionNetwork, xs: dict, ctx=None):
    """The VSN variable by variable, reading each variable's slice of the grouped weights."""
    H = m.hidden_dim
    names = m.names
    pre = [names.index(n) for n in m.prescale]
    proj = [j for j in range(len(names)) if m.input_dims[j] != H] if m.skip_mode == "linear" else []
    res_only = [names.index(n) for n in m.resample_only]
    if m.skip_mode == "interpolate":
        rn = sorted({j for j in range(len(names)) if m.input_dims[j] != H} | set(res_only))
    else:
        rn = sorted(res_only)
    grn = [j for j in range(len(names)) if j not in res_only]
    embs, outs, gates = [], [], []
    for j, name in enumerate(names):
        d, h = m.input_dims[j], m.grn_hidden_dims[j]
        x = xs[name]
        if j in pre:
            i = pre.index(j)
            x = x * m.prescale_weight[i, :d] + m.prescale_bias[i, :d]  # Linear(1, d)
        embs.append(x)
        if d == H:
            s = x
        elif m.skip_mode == "linear":
            p = proj.index(j)
            s = (x.unsqueeze(-1) * m.skip_weight[p, :d]).sum(-2) + m.skip_bias[p]
        else:
            s = interp(x, H)
        if j in rn:
            r = rn.index(j)
            if m.skip_mode == "interpolate":
                s = s * 2.0 * sig(m.resample_mask[r])
            s = layer_norm(s, m.resample_norm_weight[r], m.resample_norm_bias[r])
        if j not in grn:
            outs.append(s)
            continue
        g = grn.index(j)
        z = elu((x.unsqueeze(-1) * m.fc1_weight[g, :d, :h]).sum(-2) + m.fc1_bias[g, :h])
        z = (z.unsqueeze(-1) * m.fc2_weight[g, :h, :h]).sum(-2) + m.fc2_bias[g, :h]
        z = (z.unsqueeze(-1) * m.glu_weight[g, :h]).sum(-2) + m.glu_bias[g]
        gates.append(sig(z[..., H:]))
        outs.append(layer_norm(z[..., :H] * sig(z[..., H:]) + s, m.norm_weight[g], m.norm_bias[g]))
    if m.weight_grn is None:
        w = torch.ones(*outs[0].shape[:-1], 1, dtype=outs[0].dtype)
    else:
        logits = hand_grn(m.weight_grn, torch.cat(embs, -1), ctx)
        e = torch.exp(logits - logits.max(-1, keepdim=True).values)
        w = e / e.sum(-1, keepdim=True)
    out = sum(w[..., j : j + 1] * outs[j] for j in range(len(names)))
    return out, w, torch.stack(gates, -2)


def _inputs(m: VariableSelectionNetwork, lead=(2, 3), dtype=D64):
    return {
        n: torch.randn(*lead, 1 if n in m.prescale else d, dtype=dtype)
        for n, d in zip(m.names, m.input_dims)
    }


VSN_CASES = {
    # paper layout: every variable embedded to d_model -> identity skips, no projection
    "paper-equal-sizes": dict(input_dims={"a": 4, "b": 4, "c": 4}, hidden_dim=4),
    # mixed sizes with learned projections, context, per-variable widths
    "linear-mixed": dict(
        input_dims={"a": 2, "b": 6, "c": 5, "d": 1},
        hidden_dim=5,
        context_dim=3,
        grn_hidden_dims=[2, 5, 4, 1],
        weight_hidden_dim=3,
    ),
    # pytorch-forecasting layout: interpolated skips, prescaled reals, resample-only embeddings
    "interpolate-pf": dict(
        input_dims={"r1": 3, "cat": 6, "r2": 5, "emb": 2, "r3": 7},
        hidden_dim=5,
        context_dim=4,
        skip="interpolate",
        prescale=["r1", "r2", "r3"],
        resample_only=["cat", "emb"],
        grn_hidden_dims=[3, 5, 5, 2, 5],
        weight_hidden_dim=5,
    ),
    "linear-resample-only": dict(input_dims=[3, 5, 5], hidden_dim=5, prescale=[0], resample_only=[1, 2]),
}


@pytest.mark.parametrize("case", sorted(VSN_CASES))
def test_vsn_matches_hand_written_loop(case):
    kw = VSN_CASES[case]
    m = randomize(VariableSelectionNetwork(**kw, dtype=D64))  # padding entries random too: must be masked
    xs = _inputs(m)
    ctx = torch.randn(2, 3, kw["context_dim"], dtype=D64) if kw.get("context_dim") else None
    with capture_gates(m) as gates:
        out, w = m(xs, ctx)
    out_ref, w_ref, g_ref = hand_vsn(m, xs, ctx)
    assert out.shape == (2, 3, m.hidden_dim) and w.shape == (2, 3, len(m.names))
    assert_close(w, w_ref)
    assert_close(out, out_ref, kind="reduction")
    assert_close(w.sum(-1), torch.ones(2, 3, dtype=D64))
    assert_close(gates["VariableSelectionNetwork:weights"], w_ref)
    assert_close(gates["VariableSelectionNetwork:glu"], g_ref)


def test_vsn_input_forms_agree_and_padding_gets_no_gradient():
    m = VariableSelectionNetwork(
        {"a": 2, "b": 6, "c": 1}, 4, prescale=["c"], grn_hidden_dims=[2, 4, 3], dtype=D64
    )
    xs = _inputs(m)
    out_d, w_d = m(xs)
    out_l, w_l = m([xs["a"], xs["b"], xs["c"]])
    out_t, w_t = m(torch.cat([xs["a"], xs["b"], xs["c"]], -1))
    for o, w in ((out_l, w_l), (out_t, w_t)):
        assert torch.equal(o, out_d) and torch.equal(w, w_d)
    out_d.square().sum().backward()
    # variable "a" (d=2, h=2): entries outside its [2, 2] block of fc1 are padding
    g = m.fc1_weight.grad[0]
    assert torch.all(g[2:] == 0) and torch.all(g[:, 2:] == 0) and g[:2, :2].abs().sum() > 0
    assert torch.all(m.fc2_weight.grad[2, 3:] == 0) and torch.all(m.fc2_weight.grad[2, :, 3:] == 0)
    assert torch.all(m.prescale_weight.grad[0, 1:] == 0)
    # initialisation leaves padding at exactly zero
    fresh = VariableSelectionNetwork({"a": 2, "b": 6}, 4, grn_hidden_dims=[2, 4])
    assert torch.all(fresh.fc1_weight[0, 2:] == 0) and torch.all(fresh.glu_weight[0, 2:] == 0)


def test_vsn_single_variable_has_unit_weights():
    m = randomize(VariableSelectionNetwork({"x": 3}, 5, skip="interpolate", dtype=D64))
    assert m.weight_grn is None
    xs = _inputs(m)
    out, w = m(xs)
    assert torch.equal(w, torch.ones(2, 3, 1, dtype=D64))
    assert_close(out, hand_vsn(m, xs)[0])


def test_vsn_errors():
    m = VariableSelectionNetwork({"a": 2, "b": 3}, 4, prescale=["b"])
    with pytest.raises(KeyError, match=r"missing \['b'\]"):
        m({"a": torch.randn(2, 2)})
    with pytest.raises(ValueError, match=r"variable 'b' must be \[..., 1\]"):
        m({"a": torch.randn(2, 2), "b": torch.randn(2, 3)})
    with pytest.raises(ValueError, match=r"\[..., 3\]"):
        m(torch.randn(2, 5))
    with pytest.raises(ValueError, match="unknown variable 'z'"):
        VariableSelectionNetwork({"a": 2}, 4, prescale=["z"])
    with pytest.raises(ValueError, match="grn_hidden_dims has 1 entries"):
        VariableSelectionNetwork({"a": 2, "b": 2}, 4, grn_hidden_dims=[3])
    with pytest.raises(ValueError, match="context_dim=None"):
        m({"a": torch.randn(2, 2), "b": torch.randn(2, 1)}, torch.randn(2, 3))


# ---------------------------------------------------------------- shared gate checks
def _vsn_small(dtype=None):
    return VariableSelectionNetwork(
        {"r": 3, "c": 4, "e": 2},
        4,
        context_dim=3,
        skip="interpolate",
        prescale=["r"],
        resample_only=["e"],
        grn_hidden_dims=[3, 4, 4],
        dtype=dtype,
    )


class _VsnTensors(torch.nn.Module):
    """The VSN taking its variables as positional tensors (the shared checks pass tensors only)."""

    def __init__(self):
        super().__init__()
        self.vsn = _vsn_small()

    def forward(self, r, c, e, ctx):
        return self.vsn({"r": r, "c": c, "e": e}, ctx)


def test_compile():
    m = _vsn_small()
    xs = _inputs(m, dtype=torch.float32)
    check_compile(m, xs, torch.randn(2, 3, 3))
    check_compile(
        GatedResidualNetwork(5, 4, 3, context_dim=2, skip="interpolate"),
        torch.randn(2, 5),
        torch.randn(2, 2),
    )
    check_compile(GateAddNorm(4, 3, skip_dim=5, trainable_add=True), torch.randn(2, 4), torch.randn(2, 5))


def test_half_precision_extreme_inputs():
    def inputs(dtype):
        big = 100.0  # saturates the gates; larger values overflow fp16 in the plain linear maps
        return [
            torch.tensor([[3.0], [-3.0]], dtype=dtype) * big,
            torch.randn(2, 4).sign().to(dtype) * big,
            torch.randn(2, 2).sign().to(dtype) * big,
            torch.randn(2, 3).sign().to(dtype) * big,
        ]

    check_half_finite(_VsnTensors, inputs)
    check_half_finite(
        lambda: GatedResidualNetwork(4, 4, 6, context_dim=2),
        lambda dt: [torch.tensor([[1e3, -1e3, 1e3, -1e3]], dtype=dt), torch.tensor([[1e3, -1e3]], dtype=dt)],
    )


def test_capture_and_grads():
    m = _vsn_small()
    xs = _inputs(m, dtype=torch.float32)
    ctx = torch.randn(2, 3, 3)
    gates = check_capture(m, xs, ctx, expect=(":weights", ":glu", "weight_grn.gate_norm.glu"))
    assert gates["VariableSelectionNetwork:glu"].shape == (2, 3, 2, 4)  # two GRN variables
    w = _VsnTensors()
    check_grads(w, xs["r"], xs["c"], xs["e"], ctx)
    check_grads(GatedResidualNetwork(5, 4, 3, context_dim=2), torch.randn(2, 5), torch.randn(2, 2))
    check_grads(GateAddNorm(4, 3, skip_dim=5, trainable_add=True), torch.randn(2, 4), torch.randn(2, 5))
    check_capture(GatedLinearUnit(3, 2), torch.randn(2, 3))
