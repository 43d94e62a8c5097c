"""Triton token-wise gate (projection fused with the sigmoid mix) vs the reference, and its layer.

CPU tests run the kernels under the Triton interpreter (tests/conftest.py sets TRITON_INTERPRET=1).
"""

from __future__ import annotations

import pytest
import torch
from kernel_checks import DTYPES, compare, count_calls, needs_cuda, needs_interpreter, run
from tolerances import assert_close

from gatelab.core import TokenwiseGate
from gatelab.core.kernels import dispatch, select, use_backend
from gatelab.core.kernels.tokenwise import verify_tokenwise_gate

OUT = ("out",)
ARGS = ("da", "db", "dweight", "dbias")


def _inputs(shape: tuple[int, ...], mode: str, dtype: torch.dtype, bias: bool = True, device: str = "cpu"):
    D = shape[-1]
    E = 1 if mode == "scalar" else D
    a = torch.randn(shape, device=device).to(dtype)
    b = torch.randn(shape, device=device).to(dtype)
    w = (torch.randn(E, 2 * D, device=device) / D**0.5).to(dtype)
    c = torch.randn(E, device=device).to(dtype) if bias else None
    return [a, b, w, c]


@needs_interpreter
@pytest.mark.parametrize("mode", ["scalar", "vector"])
def test_float32_matches_hand_written_float64(mode):
    args = _inputs((5, 19), mode, torch.float32)
    outs, grads = run("tokenwise_gate", "triton", args)
    a, b, w, c = (t.double().requires_grad_(True) for t in args)
    logits = a @ w[:, :19].t() + b @ w[:, 19:].t() + c  # the projection of [a; b], split by halves
    g = 1 / (1 + torch.exp(-logits))
    out = g * a + (1 - g) * b
    cot = torch.randn(out.shape, generator=torch.Generator().manual_seed(1)).double()
    (out * cot).sum().backward()
    torch.testing.assert_close(outs[0], out.detach().float(), rtol=1e-5, atol=1e-6)
    for got, want in zip(grads, (a.grad, b.grad, w.grad, c.grad)):
        torch.testing.assert_close(got, want.float(), rtol=1e-4, atol=1e-5)


@needs_interpreter
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("mode", ["scalar", "vector"])
@pytest.mark.parametrize("shape", [(3, 5, 11), (37, 20)], ids=str)
def test_matches_reference(shape, mode, dtype):
    compare("tokenwise_gate", _inputs(shape, mode, dtype), kind="reduction", out_names=OUT, arg_names=ARGS)


@needs_interpreter
@pytest.mark.parametrize("mode", ["scalar", "vector"])
def test_no_bias_and_strided_rows(mode):
    D = 17
    a = torch.randn(6, 2 * D)[:, :D]  # row stride 2D, read in place
    b = torch.randn(6, 3 * D)[:, D : 2 * D]
    w = torch.randn(1 if mode == "scalar" else D, 2 * D) / D**0.5
    compare("tokenwise_gate", [a, b, w, None], kind="reduction", out_names=OUT, arg_names=ARGS)


def test_verifier_reasons(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    a, b, w, c = _inputs((4, 6), "vector", torch.float32)
    assert verify_tokenwise_gate(a, b, w, c) is None
    assert verify_tokenwise_gate(a, b, w[:1], c[:1]) is None
    assert "one shape" in verify_tokenwise_gate(a, b[:3], w, c)
    assert "weight must be" in verify_tokenwise_gate(a, b, w[:3], c)
    assert "bias must be" in verify_tokenwise_gate(a, b, w, c[:2])
    assert "stride" in verify_tokenwise_gate(torch.randn(6, 4).t(), torch.randn(6, 4).t(), w, c)
    assert "float64" in verify_tokenwise_gate(a.double(), b.double(), w.double(), c.double())


@needs_interpreter
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("mode", ["scalar", "vector"])
def test_layer_uses_the_kernel_and_keeps_half_precision_rule(mode, dtype):
    m = TokenwiseGate(9, mode=mode, init_gate=0.7).to(dtype)
    a, b = torch.randn(2, 3, 9).to(dtype), torch.randn(2, 3, 9).to(dtype)
    res = {}
    for backend in ("triton", "reference"):
        m.zero_grad()
        ai, bi = a.clone().requires_grad_(True), b.clone().requires_grad_(True)
        with use_backend({"tokenwise_gate": backend}), count_calls("tokenwise_gate") as calls:
            y = m(ai, bi)
            y.float().square().sum().backward()
        assert calls[0] == (backend == "triton")
        assert y.dtype == dtype
        res[backend] = [y.detach(), ai.grad, bi.grad] + [p.grad.clone() for p in m.parameters()]
    for x, y in zip(res["triton"], res["reference"]):
        assert_close(x, y, kind="reduction")


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@needs_interpreter
@pytest.mark.parametrize("mode", ["scalar", "vector"])
def test_float16_opposite_streams_stay_finite(mode):
    # a - b = 7e4 overflows float16 (why the layer mixes in float32); out, da and db stay finite and
    # match the reference (the weight gradient dlogit * a ~ 1e9 is not representable in float16 at all)
    a = torch.full((2, 4), 4e4, dtype=torch.float16)
    b = torch.full((2, 4), -3e4, dtype=torch.float16)
    w = torch.full((1 if mode == "scalar" else 4, 8), 1e-3, dtype=torch.float16)
    args = [a, b, w, torch.zeros(w.shape[0], dtype=torch.float16)]
    outs, grads = run("tokenwise_gate", "triton", args)
    ref_o, ref_g = run("tokenwise_gate", "reference", args)
    for got, want in zip([outs[0], grads[0], grads[1]], [ref_o[0], ref_g[0], ref_g[1]]):
        assert torch.isfinite(got).all()
        assert_close(got, want, kind="reduction")


@needs_interpreter
@pytest.mark.parametrize("mode", ["scalar", "vector"])
def test_explicit_triton_inside_torch_compile(mode):
    args = _inputs((4, 16), mode, torch.float32)
    want_o, want_g = run("tokenwise_gate", "reference", args)
    leaves = [t.clone().requires_grad_(True) for t in args]
    torch._dynamo.reset()
    with use_backend("triton"):
        out = torch.compile(lambda *x: dispatch("tokenwise_gate", *x), backend="aot_eager", fullgraph=True)(
            *leaves
        )
    out.mul(torch.randn(out.shape, generator=torch.Generator().manual_seed(1))).sum().backward()
    assert_close(out.detach(), want_o[0], kind="reduction")
    for leaf, want in zip(leaves, want_g):
        assert_close(leaf.grad, want, kind="reduction")


def test_auto_on_cpu_uses_reference():
    assert select("tokenwise_gate", *_inputs((2, 4), "vector", torch.float32))[0] == "reference"


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("mode", ["scalar", "vector"])
@pytest.mark.parametrize("shape", [(1000, 256), (3, 7, 129)], ids=str)
def test_gpu_matches_reference_and_auto_selects_triton(shape, mode, dtype):
    from gatelab.core.kernels.glu import triton_interpreted

    args = _inputs(shape, mode, dtype, device="cuda")
    assert triton_interpreted() or select("tokenwise_gate", *args)[0] == "triton"
    compare("tokenwise_gate", args, kind="reduction", out_names=OUT, arg_names=ARGS)
