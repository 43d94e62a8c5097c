"""Triton SwiGLU/GEGLU kernels vs the PyTorch reference: outputs and both input gradients.

CPU tests run the kernels through the Triton interpreter (``TRITON_INTERPRET=1``, set by
tests/conftest.py before triton is imported), so shapes are kept small. The ``gpu`` tests compile
the kernels for CUDA; run them with ``TRITON_INTERPRET=0 pytest -m gpu tests/core/kernels`` (under the
interpreter they still run, on device tensors copied through the host, but auto-selection is off).
"""

from __future__ import annotations

import math

import pytest
import torch
from tolerances import assert_close

from gatelab.core.glu_family import GluMlp
from gatelab.core.kernels import dispatch, select, use_backend
from gatelab.core.kernels.glu import triton_available, triton_interpreted

OPS = ("swiglu", "geglu")
DTYPES = (torch.float32, torch.bfloat16, torch.float16)

_why = triton_available()
needs_interpreter = pytest.mark.skipif(
    _why is not None or not triton_interpreted(),
    reason=f"CPU kernel tests need triton and TRITON_INTERPRET=1 ({_why or 'TRITON_INTERPRET is off'})",
)


def _hand_act(op: str, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(act(g), act'(g)) written out in elementary ops (used in float64)."""
    if op == "swiglu":
        s = 1.0 / (1.0 + torch.exp(-g))
        return g * s, s + g * s * (1.0 - s)
    cdf = 0.5 * (1.0 + torch.erf(g / math.sqrt(2.0)))
    pdf = torch.exp(-0.5 * g * g) / math.sqrt(2.0 * math.pi)
    return g * cdf, cdf + g * pdf


def _run(op: str, backend: str, gate: torch.Tensor, value: torch.Tensor, dout: torch.Tensor | None = None):
    """Forward + backward on ``backend``; returns (out, dgate, dvalue) for leaf copies of the inputs."""
    g = gate.detach().clone().requires_grad_(True)
    v = value.detach().clone().requires_grad_(True)
    with use_backend(backend):
        assert select(op, g, v)[0] == backend
        out = dispatch(op, g, v)
    if dout is None:
        out.float().sum().backward()  # expanded (stride-0) upstream gradient
    else:
        out.backward(dout)
    return out.detach(), g.grad, v.grad


def _compare(op: str, gate: torch.Tensor, value: torch.Tensor, dout: torch.Tensor | None = None) -> None:
    got = _run(op, "triton", gate, value, dout)
    want = _run(op, "reference", gate, value, dout)
    for name, a, b in zip(("out", "dgate", "dvalue"), got, want):
        assert a.dtype == b.dtype == gate.dtype, name
        assert a.shape == b.shape == gate.shape, name
        assert_close(a, b, msg=f"{op} {gate.dtype} {tuple(gate.shape)}: {name}")


@needs_interpreter
@pytest.mark.parametrize("op", OPS)
def test_float32_matches_hand_written_float64(op):
    gate, value = torch.randn(5, 129), torch.randn(5, 129)
    dout = torch.randn(5, 129)
    out, dg, dv = _run(op, "triton", gate, value, dout)
    g, v, d = gate.double(), value.double(), dout.double()
    a, da = _hand_act(op, g)
    torch.testing.assert_close(out, (a * v).float(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(dv, (d * a).float(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(dg, (d * v * da).float(), rtol=1e-5, atol=1e-6)


@needs_interpreter
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", [(3, 37), (1, 1), (5, 129), (2, 3, 17)], ids=str)
def test_matches_reference(op, dtype, shape):
    gate = (2.0 * torch.randn(shape)).to(dtype)
    value = torch.randn(shape).to(dtype)
    _compare(op, gate, value, dout=torch.randn(shape).to(dtype))


@needs_interpreter
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_chunk_views_of_fused_projection(op, dtype):
    # [N, 2H] -> value, gate halves with row stride 2H; gradients flow back into one [N, 2H] tensor
    n, h = 6, 45
    x0 = torch.randn(n, 2 * h).to(dtype)
    dout = torch.randn(n, h).to(dtype)
    res = {}
    for backend in ("triton", "reference"):
        x = x0.clone().requires_grad_(True)
        value, gate = x.chunk(2, dim=-1)
        assert gate.stride() == (2 * h, 1) and not gate.is_contiguous()
        with use_backend(backend):
            out = dispatch(op, gate, value)
        out.backward(dout)
        res[backend] = (out.detach(), x.grad)
    assert_close(res["triton"][0], res["reference"][0], msg="out")
    assert_close(res["triton"][1], res["reference"][1], msg="d[value, gate]")


@needs_interpreter
def test_chunk_views_are_not_copied():
    from gatelab.core.kernels._triton_common import rows2d

    x = torch.randn(2, 3, 10)
    _, gate = x.chunk(2, dim=-1)
    rows = rows2d(gate)
    assert rows.shape == (6, 5) and rows.stride() == (10, 1)
    assert rows.data_ptr() == gate.data_ptr()


@needs_interpreter
@pytest.mark.parametrize("op", OPS)
def test_mixed_row_strides_and_transposed_grad(op):
    n, h = 4, 19
    gate = torch.randn(n, 3 * h)[:, h : 2 * h]  # row stride 3h
    value = torch.randn(n, h)  # row stride h
    dout = torch.randn(h, n).t()  # last-dim stride n: the kernel wrapper makes it contiguous
    _compare(op, gate, value, dout)


@needs_interpreter
@pytest.mark.parametrize("op", OPS)
def test_sum_gradient_stride_zero(op):
    _compare(op, torch.randn(3, 37), torch.randn(3, 37), dout=None)


@needs_interpreter
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("shape", [(0, 5), (4, 0), (2, 0, 3)], ids=str)
def test_zero_size(op, shape):
    out, dg, dv = _run(op, "triton", torch.randn(shape), torch.randn(shape), dout=torch.randn(shape))
    assert out.shape == dg.shape == dv.shape == shape


# The interpreter evaluates with numpy, which warns on the intended overflows: exp(-g) -> inf gives
# sigmoid(g) = 0 for very negative g, and g * g -> inf gives the GELU pdf exp(-g^2/2) = 0.
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@needs_interpreter
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_extreme_gates_finite_and_match(op, dtype):
    big = torch.finfo(dtype).max / 2
    gate = torch.tensor([[-big, -1e4, -30.0, -1.28, -0.75, 0.0, 0.5, 30.0, 1e4, big]]).to(dtype)
    value = torch.linspace(-1, 1, gate.numel()).reshape(gate.shape).to(dtype)
    dout = torch.ones_like(gate)
    got = _run(op, "triton", gate, value, dout)
    for t in got:
        assert torch.isfinite(t).all(), t
    _compare(op, gate, value, dout)


@needs_interpreter
def test_only_one_input_requires_grad():
    gate = torch.randn(3, 7, requires_grad=True)
    value = torch.randn(3, 7)
    with use_backend("triton"):
        dispatch("swiglu", gate, value).sum().backward()
    _, da = _hand_act("swiglu", gate.detach().double())
    torch.testing.assert_close(gate.grad, (value.double() * da).float(), rtol=1e-5, atol=1e-6)


@needs_interpreter
@pytest.mark.parametrize("act", ["silu", "gelu"])
def test_glumlp_triton_matches_reference(act):
    m = GluMlp(8, 12, 5, act=act)
    x = torch.randn(2, 3, 8)
    res = {}
    for backend in ("triton", "reference"):
        m.zero_grad()
        xi = x.clone().requires_grad_(True)
        with use_backend(backend):
            m(xi).square().sum().backward()
        res[backend] = [xi.grad] + [p.grad.clone() for p in m.parameters()]
    with use_backend("triton"):
        y_t = m(x)
    y_r = m(x)
    assert_close(y_t, y_r, kind="reduction")
    for a, b in zip(res["triton"], res["reference"]):
        assert_close(a, b, kind="reduction")


@needs_interpreter
@pytest.mark.parametrize("op", OPS)
def test_explicit_triton_inside_torch_compile(op):
    # the kernels are opaque custom ops inside GluTritonFunction, so fullgraph tracing succeeds
    gate, value = torch.randn(3, 37), torch.randn(3, 37)
    dout = torch.randn(3, 37)
    want = _run(op, "reference", gate, value, dout)
    g = gate.clone().requires_grad_(True)
    v = value.clone().requires_grad_(True)
    torch._dynamo.reset()
    with use_backend("triton"):
        out = torch.compile(lambda a, b: dispatch(op, a, b), backend="aot_eager", fullgraph=True)(g, v)
    out.backward(dout)
    for name, a, b in zip(("out", "dgate", "dvalue"), (out.detach(), g.grad, v.grad), want):
        assert_close(a, b, msg=name)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", [(257, 1000), (4, 3, 4097), (1, 1)], ids=str)
def test_gpu_matches_reference(op, dtype, shape):
    why = triton_available()
    if why is not None:
        pytest.skip(why)
    gate = (2.0 * torch.randn(shape, device="cuda")).to(dtype)
    value = torch.randn(shape, device="cuda").to(dtype)
    if not triton_interpreted():
        assert select(op, gate, value)[0] == "triton"  # auto picks the compiled kernel on CUDA
    _compare(op, gate, value, dout=torch.randn(shape, device="cuda").to(dtype))
    x = torch.randn((*shape[:-1], 2 * shape[-1]), device="cuda").to(dtype)
    value, gate = x.chunk(2, dim=-1)
    _compare(op, gate, value, dout=None)


# ---------------------------------------------------------------------------- packed ops
PACKED = {"swiglu": "swiglu_packed", "geglu": "geglu_packed"}


def _unpacked_grads(op: str, x: torch.Tensor, dout: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(out, dx) of the unpacked reference on chunk views (autograd concatenates the halves)."""
    xi = x.clone().requires_grad_(True)
    value, gate = xi.chunk(2, dim=-1)
    with use_backend("reference"):
        out = dispatch(op, gate, value)
    out.backward(dout)
    return out.detach(), xi.grad


def _packed_grads(
    op: str, backend: str, x: torch.Tensor, dout: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    xi = x.clone().requires_grad_(True)
    with use_backend({PACKED[op]: backend}):
        out = dispatch(PACKED[op], xi)
    out.backward(dout)
    return out.detach(), xi.grad


def _ops_in_backward(out: torch.Tensor, dout: torch.Tensor) -> set[str]:
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        out.backward(dout)
    return {e.name for e in prof.events()}


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_packed_reference_equals_unpacked_bitwise(op, dtype):
    # the packed reference computes what eager autograd of the unpacked formula computes, op for op
    x = torch.randn(3, 4, 2 * 9).to(dtype)
    dout = torch.randn(3, 4, 9).to(dtype)
    want = _unpacked_grads(op, x, dout)
    got = _packed_grads(op, "reference", x, dout)
    for a, b in zip(got, want):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert torch.equal(a, b)


@pytest.mark.parametrize("op", OPS)
def test_packed_reference_backward_writes_one_buffer(op):
    x = torch.randn(5, 2 * 6, requires_grad=True)
    dout = torch.randn(5, 6)
    value, gate = x.chunk(2, dim=-1)
    unpacked = _ops_in_backward(dispatch(op, gate, value), dout)
    assert "aten::cat" in unpacked or "aten::split_backward" in unpacked  # autograd joins two halves
    x.grad = None
    names = _ops_in_backward(dispatch(PACKED[op], x), dout)
    assert "aten::cat" not in names and "aten::split_backward" not in names
    assert not any("cat" in n for n in names), sorted(names)
    assert x.grad.shape == x.shape and x.grad.is_contiguous()


@needs_interpreter
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_packed_triton_matches_reference(op, dtype):
    x = torch.randn(2, 3, 2 * 21).to(dtype)
    dout = torch.randn(2, 3, 21).to(dtype)
    got = _packed_grads(op, "triton", x, dout)
    want = _packed_grads(op, "reference", x, dout)
    for a, b in zip(got, want):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert_close(a, b, dtype=dtype)


@needs_interpreter
def test_packed_triton_backward_writes_one_buffer(monkeypatch):
    import gatelab.core.kernels.glu_triton as gt

    launches = []
    real = gt._backward_into

    def spy(dout, gate, value, dg, dv, act):
        launches.append((dg.data_ptr() - dv.data_ptr(), dg.stride(), dv.stride()))
        return real(dout, gate, value, dg, dv, act)

    monkeypatch.setattr(gt, "_backward_into", spy)
    x = torch.randn(4, 2 * 5, requires_grad=True)
    with use_backend("triton"):
        out = dispatch("swiglu_packed", x)
    out.backward(torch.randn(4, 5))
    # one launch writing both halves of one [4, 10] buffer: the gate half starts H elements later
    assert launches == [(5 * x.element_size(), (10, 1), (10, 1))]
    assert x.grad.shape == (4, 10)


def test_packed_verifier_and_errors(monkeypatch):
    from gatelab.core.kernels.glu import swiglu_packed, verify_packed_inputs

    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert verify_packed_inputs(torch.randn(3, 8)) is None
    assert "even" in verify_packed_inputs(torch.randn(3, 7))
    assert "stride" in verify_packed_inputs(torch.randn(8, 3).t())
    assert "float64" in verify_packed_inputs(torch.randn(3, 8, dtype=torch.float64))
    assert "return_gate" in verify_packed_inputs(torch.randn(3, 8), return_gate=True)
    with pytest.raises(ValueError, match=r"\[\.\.\., 2H\].*\(3, 7\)"):
        swiglu_packed(torch.randn(3, 7))


@needs_interpreter
@pytest.mark.parametrize("act", ["silu", "gelu"])
def test_glumlp_and_glu_use_the_packed_op(act):
    from kernel_checks import count_calls

    from gatelab.core.glu_family import glu

    op = "swiglu_packed" if act == "silu" else "geglu_packed"
    m = GluMlp(8, 6, act=act)
    x = torch.randn(2, 8, requires_grad=True)
    with use_backend("triton"), count_calls(op) as calls:
        m(x).sum().backward()
        glu(torch.randn(3, 12), op.removesuffix("_packed"))
    assert calls[0] == 2
