"""Triton sigmoid output gate vs the reference (and hand-written float64), and its use by attention.

CPU tests run the kernels under the Triton interpreter (tests/conftest.py sets TRITON_INTERPRET=1).
"""

from __future__ import annotations

import pytest
import torch
from kernel_checks import DTYPES, compare, count_calls, needs_cuda, needs_interpreter, run
from tolerances import assert_close

from gatelab.core import OutputGatedAttention
from gatelab.core.kernels import dispatch, select, use_backend
from gatelab.core.kernels.sigmoid_gate import verify_sigmoid_gate

OUT = ("out",)
ARGS = ("do", "dlogits")


def _layout(name: str, dtype: torch.dtype, device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    B, T, H, D = 2, 3, 3, 5
    if name == "headwise":  # the layer's views: transposed SDPA output, gate slice of the q projection
        o = torch.randn(B, H, T, D, device=device).to(dtype).transpose(1, 2)
        g = (3 * torch.randn(B, T, H, D + 1, device=device)).to(dtype)[..., D:]
    elif name == "elementwise":
        o = torch.randn(B, H, T, D, device=device).to(dtype).transpose(1, 2)
        g = (3 * torch.randn(B, T, H, 2 * D, device=device)).to(dtype)[..., D:]
    elif name == "odd":
        o = torch.randn(7, 37, device=device).to(dtype)
        g = (3 * torch.randn(7, 37, device=device)).to(dtype)
    else:  # "broadcast": one gate vector shared by the leading dims
        o = torch.randn(4, 3, 9, device=device).to(dtype)
        g = (3 * torch.randn(9, device=device)).to(dtype)
    return o, g


@needs_interpreter
def test_float32_matches_hand_written_float64():
    o, g = _layout("headwise", torch.float32)
    outs, grads = run("sigmoid_gate", "triton", [o, g])
    (cot,) = (torch.randn(o.shape, generator=torch.Generator().manual_seed(1)),)
    od, gd, cd = o.double(), g.double(), cot.double()
    s = 1.0 / (1.0 + torch.exp(-gd))
    torch.testing.assert_close(outs[0], (od * s).float(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grads[0], (cd * s).float(), rtol=1e-5, atol=1e-6)
    # head-wise: the gate's gradient sums over the head dimension
    want = (cd * od * s * (1 - s)).sum(-1, keepdim=True)
    torch.testing.assert_close(grads[1], want.float(), rtol=1e-5, atol=1e-6)


@needs_interpreter
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("layout", ["headwise", "elementwise", "odd", "broadcast"])
def test_matches_reference(layout, dtype):
    o, g = _layout(layout, dtype)
    # gradients summed over the head dim / the batch are reductions
    kind = "reduction" if layout in ("headwise", "broadcast") else "pointwise"
    compare("sigmoid_gate", [o, g], out_names=OUT, arg_names=ARGS, kind=kind)


@needs_interpreter
def test_output_is_contiguous_and_inputs_are_not_copied():
    o, g = _layout("headwise", torch.float32)
    from gatelab.core.kernels._pointwise import layout

    lay = layout(o.shape, o, g)
    assert lay.tensors[0].data_ptr() == o.data_ptr() and lay.tensors[1].data_ptr() == g.data_ptr()
    assert lay.strides[1][3] == 0  # head-wise gate: column stride 0
    with use_backend("triton"):
        out = dispatch("sigmoid_gate", o, g)
    assert out.is_contiguous()


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@needs_interpreter
@pytest.mark.parametrize("dtype", (torch.float16, torch.bfloat16), ids=str)
def test_extreme_logits_finite(dtype):
    big = torch.finfo(dtype).max / 2
    g = torch.tensor([[-big, -1e4, -30.0, 0.0, 30.0, 1e4, big]]).to(dtype)
    o = torch.linspace(-2, 2, 7).reshape(1, 7).to(dtype)
    outs, grads = run("sigmoid_gate", "triton", [o, g])
    for t in outs + grads:
        assert torch.isfinite(t).all()
    compare("sigmoid_gate", [o, g], out_names=OUT, arg_names=ARGS)


@needs_interpreter
def test_zero_size():
    outs, grads = run("sigmoid_gate", "triton", [torch.randn(0, 4), torch.randn(0, 1)])
    assert outs[0].shape == (0, 4) and grads[1].shape == (0, 1)


def test_verifier_reasons(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    o = torch.randn(2, 3, 4)
    assert verify_sigmoid_gate(o, torch.randn(2, 3, 1)) is None
    assert "float64" in verify_sigmoid_gate(o.double(), torch.randn(2, 3, 1).double())
    assert "differs" in verify_sigmoid_gate(o, torch.randn(2, 3, 1).half())
    assert "do not broadcast" in verify_sigmoid_gate(o, torch.randn(2, 5, 4))
    assert "do not broadcast" in verify_sigmoid_gate(torch.randn(3, 1), torch.randn(3, 4))  # would grow o
    assert "head-wise" in verify_sigmoid_gate(torch.randn(1, 9000), torch.randn(1, 1))
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    assert "TRITON_INTERPRET" in verify_sigmoid_gate(o, torch.randn(2, 3, 1))


@needs_interpreter
@pytest.mark.parametrize("gate", ["headwise", "elementwise"])
def test_attention_layer_uses_the_kernel(gate):
    m = OutputGatedAttention(8, 2, gate=gate)
    x = torch.randn(2, 5, 8)
    res = {}
    for backend in ("triton", "reference"):
        m.zero_grad()
        xi = x.clone().requires_grad_(True)
        with use_backend({"sigmoid_gate": backend}), count_calls("sigmoid_gate") as calls:
            y = m(xi)
            y.square().sum().backward()
        assert calls[0] == (backend == "triton")
        res[backend] = [y.detach(), xi.grad] + [p.grad.clone() for p in m.parameters()]
    for a, b in zip(res["triton"], res["reference"]):
        assert_close(a, b, kind="reduction")


def test_auto_on_cpu_uses_reference():
    o, g = _layout("headwise", torch.float32)
    assert select("sigmoid_gate", o, g)[0] == "reference"


@needs_interpreter
def test_explicit_triton_inside_torch_compile():
    o, g = _layout("headwise", torch.float32)
    want_o, want_g = run("sigmoid_gate", "reference", [o, g])
    oc, gc = o.clone().requires_grad_(True), g.clone().requires_grad_(True)
    torch._dynamo.reset()
    with use_backend("triton"):
        out = torch.compile(lambda a, b: dispatch("sigmoid_gate", a, b), backend="aot_eager", fullgraph=True)(
            oc, gc
        )
    out.float().mul(torch.randn(out.shape, generator=torch.Generator().manual_seed(1))).sum().backward()
    assert_close(out.detach(), want_o[0])
    assert_close(oc.grad, want_g[0])
    assert_close(gc.grad, want_g[1], kind="reduction")


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("layout", ["headwise", "elementwise", "odd", "broadcast"])
def test_gpu_matches_reference_and_auto_selects_triton(layout, dtype):
    o, g = _layout(layout, dtype, "cuda")
    if not torch.cuda.is_available() or select("sigmoid_gate", o, g)[0] != "triton":
        from gatelab.core.kernels.glu import triton_interpreted

        assert triton_interpreted(), "auto must pick the compiled Triton kernel on CUDA"
    kind = "reduction" if layout in ("headwise", "broadcast") else "pointwise"
    compare("sigmoid_gate", [o, g], out_names=OUT, arg_names=ARGS, kind=kind)
