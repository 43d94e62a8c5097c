"""Triton feature gate (FinalMLP) and gated cross step (GDCN) vs the reference, and their layers.

CPU tests run the kernels under the Triton interpreter (tests/conftest.py sets TRITON_INTERPRET=1).
"""

from __future__ import annotations

import pytest
import torch
from kernel_checks import DTYPES, compare, count_calls, needs_cuda, needs_interpreter, run
from tolerances import assert_close

from gatelab.core import FeatureGate, GatedCrossLayer, GatedCrossNetwork
from gatelab.core.kernels import dispatch, select, use_backend
from gatelab.core.kernels.feature_gate import verify_feature_gate, verify_gated_cross

FG_ARGS = ("dx", "dz", "dscale", "dmask")
GC_ARGS = ("dc0", "dxw", "dg", "dcl", "dbias")


def _fg_inputs(case: str, dtype: torch.dtype, device: str = "cpu"):
    x = torch.randn(6, 37, device=device).to(dtype)
    if case == "context":
        z, mask = 3 * torch.randn(6, 37, device=device), None
    elif case == "learned_context":  # gate [F] shared by the batch
        z, mask = 3 * torch.randn(37, device=device), None
    else:  # "mask"
        z, mask = 3 * torch.randn(6, 37, device=device), torch.randn(37, device=device)
    return x, z.to(dtype), (mask.to(dtype) if mask is not None else None)


@needs_interpreter
def test_feature_gate_float32_matches_hand_written_float64():
    x, z, mask = _fg_inputs("mask", torch.float32)
    outs, grads = run("feature_gate", "triton", [x, z, 2.0], {"mask": mask})
    cot = torch.randn(x.shape, generator=torch.Generator().manual_seed(1)).double()
    xd, zd, md = x.double(), z.double(), mask.double()
    s, sm = 1 / (1 + torch.exp(-zd)), 1 / (1 + torch.exp(-md))
    f = 2.0 * s * 2.0 * sm
    kw = {"rtol": 1e-5, "atol": 1e-6}
    torch.testing.assert_close(outs[0], (xd * f).float(), **kw)
    torch.testing.assert_close(grads[0], (cot * f).float(), **kw)
    torch.testing.assert_close(grads[1], (cot * xd * 2.0 * 2.0 * sm * s * (1 - s)).float(), **kw)
    dmask = (cot * xd * 2.0 * s * 2.0 * sm * (1 - sm)).sum(0)
    torch.testing.assert_close(grads[3], dmask.float(), rtol=1e-4, atol=1e-5)


@needs_interpreter
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", ["context", "learned_context", "mask"])
def test_feature_gate_matches_reference(case, dtype):
    x, z, mask = _fg_inputs(case, dtype)
    kind = "pointwise" if case == "context" else "reduction"  # broadcast operands' grads are sums
    compare("feature_gate", [x, z, 2.0], {"mask": mask}, kind=kind, out_names=("out",), arg_names=FG_ARGS)


@needs_interpreter
def test_feature_gate_strided_inputs_and_other_scale():
    x = torch.randn(5, 2 * 19)[:, ::2]  # column stride 2: made contiguous by the layout
    z = torch.randn(19, 5).t()  # transposed: read in place
    compare("feature_gate", [x, z, 1.5], out_names=("out",), arg_names=FG_ARGS[:3])


def _gc_inputs(dtype: torch.dtype, bias: bool = True, device: str = "cpu"):
    D = 29
    c0, xw, g, cl = (torch.randn(7, D, device=device).to(dtype) for _ in range(4))
    b = torch.rand(D, device=device).to(dtype) if bias else None
    return [c0, xw, (3 * g.float()).to(dtype), cl, b]


@needs_interpreter
def test_gated_cross_float32_matches_hand_written_float64():
    args = _gc_inputs(torch.float32)
    outs, grads = run("gated_cross", "triton", args)
    cot = torch.randn(outs[0].shape, generator=torch.Generator().manual_seed(1)).double()
    c0, xw, g, cl, b = (t.double() for t in args)
    s = 1 / (1 + torch.exp(-g))
    c = xw + b
    kw = {"rtol": 1e-5, "atol": 1e-6}
    torch.testing.assert_close(outs[0], (c0 * c * s + cl).float(), **kw)
    for got, want in zip(grads, (cot * c * s, cot * c0 * s, cot * c0 * c * s * (1 - s), cot)):
        torch.testing.assert_close(got, want.float(), **kw)
    torch.testing.assert_close(grads[4], (cot * c0 * s).sum(0).float(), rtol=1e-4, atol=1e-5)


@needs_interpreter
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("bias", [True, False])
def test_gated_cross_matches_reference(dtype, bias):
    compare("gated_cross", _gc_inputs(dtype, bias), kind="reduction", out_names=("out",), arg_names=GC_ARGS)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@needs_interpreter
@pytest.mark.parametrize("dtype", (torch.float16, torch.bfloat16), ids=str)
def test_extreme_gates_finite(dtype):
    big = torch.finfo(dtype).max / 4
    z = torch.tensor([[-big, -1e4, -20.0, 0.0, 20.0, 1e4, big]]).to(dtype)
    x = torch.linspace(-1, 1, 7).reshape(1, 7).to(dtype)
    for op, args in (("feature_gate", [x, z, 2.0]), ("gated_cross", [x, x, z, x, None])):
        outs, grads = run(op, "triton", args)
        for t in outs + [g for g in grads if g is not None]:
            assert torch.isfinite(t).all(), op


def test_verifier_reasons(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    x = torch.randn(4, 6)
    assert verify_feature_gate(x, torch.randn(6), 2.0, torch.randn(6)) is None
    assert "do not broadcast" in verify_feature_gate(x, torch.randn(5), 2.0)
    assert "do not broadcast" in verify_feature_gate(torch.randn(1, 6), torch.randn(4, 6), 2.0)
    assert "Python number" in verify_feature_gate(x, x, torch.tensor(2.0))
    assert "float64" in verify_feature_gate(x.double(), x.double(), 2.0)
    assert verify_gated_cross(x, x, x, x, torch.randn(6)) is None
    assert "do not broadcast" in verify_gated_cross(x, x, x, x, torch.randn(5))
    assert "differs" in verify_gated_cross(x, x, x.half(), x)


@needs_interpreter
@pytest.mark.parametrize("mode", ["context", "learned", "mask"])
def test_feature_gate_layer_uses_the_kernel(mode):
    m = FeatureGate(12, 5, (8,), learned_context=mode == "learned", feature_mask=mode == "mask", dropout=0.0)
    if m.mask is not None:
        torch.nn.init.normal_(m.mask)
    x = torch.randn(3, 12)
    ctx = None if mode == "learned" else torch.randn(3, 5)
    res = {}
    for backend in ("triton", "reference"):
        m.zero_grad()
        xi = x.clone().requires_grad_(True)
        with use_backend({"feature_gate": backend}), count_calls("feature_gate") as calls:
            y = m(xi, ctx)
            y.square().sum().backward()
        assert calls[0] == (backend == "triton")
        res[backend] = [y.detach(), xi.grad] + [p.grad.clone() for p in m.parameters()]
    for a, b in zip(res["triton"], res["reference"]):
        assert_close(a, b, kind="reduction")


@needs_interpreter
def test_gated_cross_network_uses_the_kernel():
    m = GatedCrossNetwork(10, 2)
    x = torch.randn(4, 10)
    res = {}
    for backend in ("triton", "reference"):
        m.zero_grad()
        xi = x.clone().requires_grad_(True)
        with use_backend({"gated_cross": backend}), count_calls("gated_cross") as calls:
            y = m(xi)
            y.square().sum().backward()
        assert calls[0] == (2 if backend == "triton" else 0)
        res[backend] = [y.detach(), xi.grad] + [p.grad.clone() for p in m.parameters()]
    for a, b in zip(res["triton"], res["reference"]):
        assert_close(a, b, kind="reduction")
    assert isinstance(m.layers[0], GatedCrossLayer)


@needs_interpreter
@pytest.mark.parametrize("op", ["feature_gate", "gated_cross"])
def test_explicit_triton_inside_torch_compile(op):
    args = (
        [*_fg_inputs("mask", torch.float32)[:2], 2.0] if op == "feature_gate" else _gc_inputs(torch.float32)
    )
    want_o, want_g = run(op, "reference", args)
    leaves = [a.clone().requires_grad_(True) if isinstance(a, torch.Tensor) else a for a in args]
    torch._dynamo.reset()
    with use_backend("triton"):
        out = torch.compile(lambda *a: dispatch(op, *a), backend="aot_eager", fullgraph=True)(*leaves)
    out.float().mul(torch.randn(out.shape, generator=torch.Generator().manual_seed(1))).sum().backward()
    assert_close(out.detach(), want_o[0])
    for leaf, want in zip(leaves, want_g):
        if isinstance(leaf, torch.Tensor):
            assert_close(leaf.grad, want, kind="reduction")


def test_auto_on_cpu_uses_reference():
    x, z, _ = _fg_inputs("context", torch.float32)
    assert select("feature_gate", x, z, 2.0)[0] == "reference"
    assert select("gated_cross", *_gc_inputs(torch.float32))[0] == "reference"


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_gpu_matches_reference_and_auto_selects_triton(dtype):
    from gatelab.core.kernels.glu import triton_interpreted

    for case in ("context", "learned_context", "mask"):
        x, z, mask = _fg_inputs(case, dtype, "cuda")
        assert triton_interpreted() or select("feature_gate", x, z, 2.0, mask)[0] == "triton"
        compare("feature_gate", [x, z, 2.0], {"mask": mask}, kind="reduction", arg_names=FG_ARGS)
    args = _gc_inputs(dtype, True, "cuda")
    assert triton_interpreted() or select("gated_cross", *args)[0] == "triton"
    compare("gated_cross", args, kind="reduction", arg_names=GC_ARGS)
