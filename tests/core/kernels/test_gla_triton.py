"""Triton chunked GLA vs the recurrent definition and the chunk reference (outputs, every gradient).

CPU tests run the kernels under the Triton interpreter (tests/conftest.py sets TRITON_INTERPRET=1);
every shape spans more than one 64-step chunk with a partial last chunk and odd head dims.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from kernel_checks import compare, count_calls, needs_cuda, needs_interpreter, run
from tolerances import assert_close

from gatelab.core import GatedLinearAttention
from gatelab.core.kernels import dispatch, select, use_backend
from gatelab.core.kernels.gla import gla_recurrent, verify_gla_chunk

OUTS = ("o", "final_state")
ARGS = ("dq", "dk", "dv", "dgk", "dinitial_state")


def _inputs(B, T, H, K, V, dtype, *, h0=True, final=True, gate_scale=0.25, device="cpu"):
    q, k = (torch.randn(B, T, H, K, device=device).to(dtype) for _ in range(2))
    v = torch.randn(B, T, H, V, device=device).to(dtype)
    gk = (F.logsigmoid(torch.randn(B, T, H, K, device=device)) * gate_scale).to(dtype)
    kw = {"initial_state": torch.randn(B, H, K, V, device=device)} if h0 else {}
    kw["output_final_state"] = final
    return [q, k, v, gk], kw


def _names(kw):
    """Output names and the gradient names of (q, k, v, gk, *kw) in kw's order."""
    return OUTS, ARGS[:4] + (("dinitial_state",) if "initial_state" in kw else ()) + ("d_output_final_state",)


@needs_interpreter
def test_float32_matches_recurrent_definition_in_float64():
    args, kw = _inputs(1, 70, 2, 16, 32, torch.float32)
    outs, grads = run("gla_chunk", "triton", args, kw)
    leaves = [t.double().requires_grad_(True) for t in [*args, kw["initial_state"]]]
    o, ht = gla_recurrent(*leaves[:4], initial_state=leaves[4], output_final_state=True)
    gen = torch.Generator().manual_seed(1)  # the cotangents kernel_checks.run drew
    (o * torch.randn(o.shape, generator=gen).double()).sum().add(
        (ht * torch.randn(ht.shape, generator=gen).double()).sum()
    ).backward()
    assert_close(outs[0], o.detach().float(), kind="reduction")
    assert_close(outs[1], ht.detach().float(), kind="reduction")
    for name, got, leaf in zip(ARGS, grads, leaves):
        assert_close(got, leaf.grad.float(), kind="reduction", msg=name)


@needs_interpreter
@pytest.mark.parametrize(
    "shape,h0,final",
    [((1, 70, 2, 16, 32), True, True), ((2, 20, 1, 8, 12), False, False), ((1, 130, 1, 40, 24), True, False)],
    ids=["h0+final", "short,no-state", "3-chunks,K40"],
)
def test_float32_matches_reference(shape, h0, final):
    args, kw = _inputs(*shape, torch.float32, h0=h0, final=final)
    outs, args_names = _names(kw)
    compare("gla_chunk", args, kw, kind="reduction", out_names=outs, arg_names=args_names)


@needs_interpreter
@pytest.mark.parametrize("dtype", (torch.bfloat16, torch.float16), ids=str)
def test_half_matches_reference(dtype):
    # The kernels round the matmul operands to the input dtype (tensor cores, as flash-linear-attention);
    # the reference runs in float32. Each output and gradient is a sum over up to T rounded products
    # whose terms may cancel, so it is held to the dtype's normwise bound (tolerances.NORMWISE, the
    # error of one rounding over the whole tensor) rather than elementwise: e.g. one bf16 dk entry of
    # ~1.0 can be 7 ulps off where its 64 terms cancel. float32 states and gradients count as the
    # input dtype (they are computed from half-precision products).
    args, kw = _inputs(1, 70, 2, 16, 32, dtype)
    outs, args_names = _names(kw)
    compare(
        "gla_chunk", args, kw, dtype=dtype, normwise=outs + args_names, out_names=outs, arg_names=args_names
    )


@pytest.mark.filterwarnings("error::RuntimeWarning")  # the interpreter warns on any exp overflow
@needs_interpreter
def test_strongly_negative_gates_stay_finite_and_match():
    # per-step log gates down to -20: a chunk's cumulative gate reaches -1000; any e^{-cumsum}
    # factorisation would overflow float32 (and no exponent may be positive, even in padded rows)
    args, kw = _inputs(1, 70, 1, 16, 16, torch.float32, gate_scale=20.0)
    outs, grads = run("gla_chunk", "triton", args, kw)
    for t in [*outs, *grads]:
        assert t is None or torch.isfinite(t).all()
    outs_n, args_n = _names(kw)
    compare("gla_chunk", args, kw, kind="reduction", out_names=outs_n, arg_names=args_n)


def test_verifier_reasons(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    (q, k, v, gk), kw = _inputs(1, 5, 2, 4, 3, torch.float32)
    assert verify_gla_chunk(q, k, v, gk, **kw) is None
    assert verify_gla_chunk(q.half(), k.half(), v.half(), gk, **kw) is None  # float32 gates with half q/k/v
    assert "dtype" in verify_gla_chunk(q.half(), k, v, gk)
    assert "[B, T, H, K]" in verify_gla_chunk(q[0], k, v, gk)
    assert "q's shape" in verify_gla_chunk(q, k[:, :4], v, gk)
    assert "initial_state" in verify_gla_chunk(q, k, v, gk, initial_state=torch.zeros(1, 2, 4, 4))
    assert "empty" in verify_gla_chunk(q[:, :0], k[:, :0], v[:, :0], gk[:, :0])
    assert "float64" in verify_gla_chunk(q.double(), k.double(), v.double(), gk.double())


@needs_interpreter
def test_layer_uses_the_kernel():
    m = GatedLinearAttention(32, 2, mode="chunk")
    x = torch.randn(1, 67, 32)
    h0 = torch.randn(1, 2, 8, 16)
    res = {}
    for backend in ("triton", "reference"):
        m.zero_grad()
        xi, hi = x.clone().requires_grad_(True), h0.clone().requires_grad_(True)
        with use_backend({"gla_chunk": backend}), count_calls("gla_chunk") as calls:
            y, state = m(xi, initial_state=hi, output_final_state=True)
            (y.square().sum() + state.sum()).backward()
        assert calls[0] == (backend == "triton")
        res[backend] = [y.detach(), state.detach(), xi.grad, hi.grad] + [
            p.grad.clone() for p in m.parameters()
        ]
    for a, b in zip(res["triton"], res["reference"]):
        assert_close(a, b, kind="reduction")


@needs_interpreter
def test_explicit_triton_inside_torch_compile():
    args, kw = _inputs(1, 20, 1, 8, 8, torch.float32)
    want_o, want_g = run("gla_chunk", "reference", args, kw)
    leaves = [t.clone().requires_grad_(True) for t in args]
    h0 = kw["initial_state"].clone().requires_grad_(True)

    def f(q, k, v, g, s):
        return dispatch("gla_chunk", q, k, v, g, initial_state=s, output_final_state=True)

    torch._dynamo.reset()
    with use_backend("triton"):
        o, ht = torch.compile(f, backend="aot_eager", fullgraph=True)(*leaves, h0)
    gen = torch.Generator().manual_seed(1)
    (o * torch.randn(o.shape, generator=gen)).sum().add(
        (ht * torch.randn(ht.shape, generator=gen)).sum()
    ).backward()
    assert_close(o.detach(), want_o[0], kind="reduction")
    assert_close(ht.detach(), want_o[1], kind="reduction")
    for leaf, want in zip([*leaves, h0], want_g):
        assert_close(leaf.grad, want, kind="reduction")


def test_auto_on_cpu_uses_reference():
    args, kw = _inputs(1, 5, 1, 4, 4, torch.float32)
    assert select("gla_chunk", *args, **kw)[0] == "reference"


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("dtype", (torch.float32, torch.bfloat16, torch.float16), ids=str)
@pytest.mark.parametrize("shape", [(2, 1000, 4, 64, 128), (1, 77, 2, 100, 36)], ids=str)
def test_gpu_matches_reference_and_auto_selects_triton(shape, dtype):
    from gatelab.core.kernels.glu import triton_interpreted

    args, kw = _inputs(*shape, dtype, device="cuda")
    assert triton_interpreted() or select("gla_chunk", *args, **kw)[0] == "triton"
    outs, args_names = _names(kw)
    half = dtype != torch.float32  # see test_half_matches_reference for the normwise comparison
    compare(
        "gla_chunk",
        args,
        kw,
        kind="reduction",
        dtype=dtype,
        normwise=outs + args_names if half else (),
        out_names=outs,
        arg_names=args_names,
    )


# A bfloat16 layer against its float32 twin: bf16 rounds every projection, q/k/v, the dot operands
# and the output (unit roundoff 2**-8 = 3.9e-3); a few roundings compound through the projections,
# the recurrence and the output projection. Stated tolerance, 2-norm relative over each tensor
# (measured about 1e-2 for the output, the input gradient and every parameter gradient).
BF16_LAYER_RTOL = 2e-2


@needs_interpreter
@pytest.mark.parametrize("backend", ("triton", "reference"))
def test_layer_bf16_end_to_end_matches_float32(backend, monkeypatch):
    import copy

    import gatelab.core.gla as gla_mod

    m32 = GatedLinearAttention(32, 2, mode="chunk")
    m16 = copy.deepcopy(m32).to(torch.bfloat16)
    x = torch.randn(1, 67, 32)
    seen = []
    real = gla_mod.dispatch

    def spy(op, *a, **k):
        seen.append((op, a[0].dtype, a[1].dtype, a[2].dtype, a[3].dtype, k.get("output_dtype")))
        return real(op, *a, **k)

    monkeypatch.setattr(gla_mod, "dispatch", spy)
    x32 = x.clone().requires_grad_(True)
    x16 = x.to(torch.bfloat16).requires_grad_(True)
    with use_backend({"gla_chunk": backend}), count_calls("gla_chunk") as calls:
        y32 = m32(x32)
        y16 = m16(x16)
        gen = torch.Generator().manual_seed(3)
        dy = torch.randn(y32.shape, generator=gen)
        (y32 * dy).sum().backward()
        (y16.float() * dy).sum().backward()
    assert calls[0] == (2 if backend == "triton" else 0)
    # q, k, v reach the op in bf16 (no float32 copies); the log gates and the requested o are float32
    assert seen[1] == (
        "gla_chunk",
        torch.bfloat16,
        torch.bfloat16,
        torch.bfloat16,
        torch.float32,
        torch.float32,
    )
    assert y16.dtype == torch.bfloat16 and x16.grad.dtype == torch.bfloat16
    for name, a, b in [("y", y16, y32), ("dx", x16.grad, x32.grad)] + [
        (n, p16.grad, p32.grad) for (n, p16), p32 in zip(m16.named_parameters(), m32.parameters())
    ]:
        a, b = a.detach().double(), b.detach().double()
        rel = ((a - b).norm() / b.norm()).item()
        assert rel <= BF16_LAYER_RTOL, f"{backend}: {name}: relative error {rel:.2e} > {BF16_LAYER_RTOL}"


@needs_interpreter
@pytest.mark.parametrize("backend", ("triton", "reference"))
def test_output_dtype_float32_for_half_inputs(backend):
    # float16 q/k/v whose un-normalised output exceeds float16's range: o in float32 stays finite
    # and equals the float32 computation; the default (q's dtype) overflows to inf
    args, _ = _inputs(1, 20, 1, 16, 16, torch.float16, h0=False, final=False)
    args = [a * 30 if i < 3 else a for i, a in enumerate(args)]
    with use_backend({"gla_chunk": backend}):
        o32, _ = dispatch("gla_chunk", *args, output_dtype=torch.float32)
        o16, _ = dispatch("gla_chunk", *args)
    want, _ = gla_recurrent(*[a.float() for a in args])
    assert o32.dtype == torch.float32 and o16.dtype == torch.float16
    assert torch.isfinite(o32).all() and not torch.isfinite(o16).all()
    assert ((o32 - want).norm() / want.norm()).item() < 1e-2  # fp16 operands, float32 accumulation


def test_verifier_output_dtype():
    (q, k, v, gk), _ = _inputs(1, 5, 1, 4, 4, torch.float16)
    assert verify_gla_chunk(q, k, v, gk, output_dtype=torch.float32) is None
    assert verify_gla_chunk(q, k, v, gk, output_dtype=torch.float16) is None
    assert "output_dtype" in verify_gla_chunk(q, k, v, gk, output_dtype=torch.bfloat16)
