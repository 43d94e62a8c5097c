"""Fused Triton GateAddNorm (GLU + add + LayerNorm) vs the reference, and TFT's layers on it.

CPU tests run the kernels under the Triton interpreter (tests/conftest.py sets TRITON_INTERPRET=1).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from kernel_checks import DTYPES, compare, count_calls, needs_cuda, needs_interpreter, run
from tolerances import assert_close

from gatelab.core import GateAddNorm, GatedResidualNetwork
from gatelab.core.kernels import dispatch, select, use_backend
from gatelab.core.kernels.gate_add_norm import verify_gate_add_norm

OUT = ("y",)
ARGS = ("dh", "dskip", "dweight", "dbias", "deps")


def _inputs(shape: tuple[int, ...], dtype: torch.dtype, device: str = "cpu"):
    D = shape[-1]
    h = torch.randn(*shape[:-1], 2 * D, device=device).to(dtype)
    skip = torch.randn(shape, device=device).to(dtype)
    w = (1 + 0.5 * torch.randn(D, device=device)).to(dtype)
    b = (0.5 * torch.randn(D, device=device)).to(dtype)
    return [h, skip, w, b, 1e-5]


@needs_interpreter
def test_float32_matches_hand_written_float64():
    args = _inputs((9, 13), torch.float32)
    outs, grads = run("gate_add_norm", "triton", args)
    h, skip, w, b = (t.double().requires_grad_(True) for t in args[:4])
    v, g = h[:, :13], h[:, 13:]
    x = v / (1 + torch.exp(-g)) + skip
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    y = (x - mu) / torch.sqrt(var + 1e-5) * w + b
    cot = torch.randn(y.shape, generator=torch.Generator().manual_seed(1)).double()
    (y * cot).sum().backward()
    torch.testing.assert_close(outs[0], y.detach().float(), rtol=1e-5, atol=1e-5)
    for got, want in zip(grads, (h.grad, skip.grad, w.grad, b.grad)):
        torch.testing.assert_close(got, want.float(), rtol=1e-4, atol=1e-5)


@needs_interpreter
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", [(3, 5, 11), (37, 7), (1, 1), (2, 130)], ids=str)
def test_matches_reference(shape, dtype):
    compare("gate_add_norm", _inputs(shape, dtype), kind="reduction", out_names=OUT, arg_names=ARGS)


@needs_interpreter
def test_strided_rows_and_transposed_grad():
    # h a column slice of a wider tensor (row stride 3D), skip a view with row stride 2D
    D = 10
    h = torch.randn(6, 3 * D)[:, D:]
    skip = torch.randn(6, 2 * D)[:, :D]
    args = [h, skip, torch.rand(D) + 0.5, torch.randn(D), 1e-5]
    compare("gate_add_norm", args, kind="reduction", out_names=OUT, arg_names=ARGS)


def test_verifier_reasons(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    h, skip, w, b, eps = _inputs((4, 6), torch.float32)
    assert verify_gate_add_norm(h, skip, w, b, eps) is None
    assert "elementwise_affine" in verify_gate_add_norm(h, skip, None, None, eps)
    assert "broadcasting" in verify_gate_add_norm(h, skip[:1], w, b, eps)
    assert "even" in verify_gate_add_norm(h[:, :11], skip, w, b, eps)
    assert "(6,)" in verify_gate_add_norm(h, skip, w[:5], b, eps)
    assert "16384" in verify_gate_add_norm(
        torch.randn(1, 2 * 16385), torch.randn(1, 16385), torch.ones(16385), torch.zeros(16385), eps
    )
    assert "stride" in verify_gate_add_norm(torch.randn(12, 4).t(), skip, w, b, eps)
    assert "float64" in verify_gate_add_norm(h.double(), skip.double(), w.double(), b.double(), eps)


def _layer_grads(m, inputs, op_backend):
    m.zero_grad()
    leaves = [t.clone().requires_grad_(True) for t in inputs]
    with use_backend({"gate_add_norm": op_backend}), count_calls("gate_add_norm") as calls:
        y = m(*leaves)
        y.square().sum().backward()
    return calls[0], [y.detach()] + [t.grad for t in leaves] + [p.grad.clone() for p in m.parameters()]


@needs_interpreter
@pytest.mark.parametrize(
    "cfg",
    [
        {},
        {"skip_dim": 5},
        {"skip_dim": 5, "skip": "interpolate", "trainable_add": True},
        {"trainable_add": True},
    ],
    ids=str,
)
def test_gate_add_norm_layer_uses_the_kernel(cfg):
    m = GateAddNorm(6, 8, **cfg)
    if m.mask is not None:
        torch.nn.init.normal_(m.mask)
    torch.nn.init.normal_(m.norm.weight)
    x, skip = torch.randn(3, 4, 6), torch.randn(3, 4, m.skip_dim)
    n_t, got = _layer_grads(m, (x, skip), "triton")
    n_r, want = _layer_grads(m, (x, skip), "reference")
    assert (n_t, n_r) == (1, 0)
    for a, b in zip(got, want):
        assert_close(a, b, kind="reduction")


@needs_interpreter
def test_grn_uses_the_kernel_and_keeps_errors():
    m = GatedResidualNetwork(5, 7, 6, context_dim=3)
    a, c = torch.randn(2, 4, 5), torch.randn(2, 1, 3)
    n_t, got = _layer_grads(m, (a, c), "triton")
    _, want = _layer_grads(m, (a, c), "reference")
    assert n_t == 1
    for x, y in zip(got, want):
        assert_close(x, y, kind="reduction")
    with use_backend({"gate_add_norm": "triton"}), pytest.raises(ValueError, match="GatedLinearUnit"):
        m.gate_norm(torch.randn(2, 3), torch.randn(2, 6))


def test_non_sigmoid_gate_keeps_plain_path():
    m = GateAddNorm(4, gate_act="tanh")
    x = torch.randn(2, 4)
    with count_calls("gate_add_norm") as calls, use_backend("triton"):
        y = m(x, x)  # a tanh gate is not the fused kernel's sigmoid: the layer must not dispatch
    value, gate = m.glu.fc(x).chunk(2, dim=-1)
    torch.testing.assert_close(
        y, F.layer_norm(value * torch.tanh(gate) + x, (4,), m.norm.weight, m.norm.bias)
    )
    assert calls[0] == 0


@needs_interpreter
def test_explicit_triton_inside_torch_compile():
    args = _inputs((5, 9), torch.float32)
    want_o, want_g = run("gate_add_norm", "reference", args)
    leaves = [a.clone().requires_grad_(True) if isinstance(a, torch.Tensor) else a for a in args]
    torch._dynamo.reset()
    with use_backend("triton"):
        y = torch.compile(lambda *a: dispatch("gate_add_norm", *a), backend="aot_eager", fullgraph=True)(
            *leaves
        )
    y.float().mul(torch.randn(y.shape, generator=torch.Generator().manual_seed(1))).sum().backward()
    assert_close(y.detach(), want_o[0], kind="reduction")
    for leaf, want in zip(leaves[:4], want_g[:4]):
        assert_close(leaf.grad, want, kind="reduction")


def test_auto_on_cpu_uses_reference():
    assert select("gate_add_norm", *_inputs((2, 4), torch.float32))[0] == "reference"


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", [(4096, 160), (3, 7, 1000), (5, 1)], ids=str)
def test_gpu_matches_reference_and_auto_selects_triton(shape, dtype):
    from gatelab.core.kernels.glu import triton_interpreted

    args = _inputs(shape, dtype, "cuda")
    assert triton_interpreted() or select("gate_add_norm", *args)[0] == "triton"
    compare("gate_add_norm", args, kind="reduction", out_names=OUT, arg_names=ARGS)
