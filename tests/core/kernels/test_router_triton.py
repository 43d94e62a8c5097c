"""One-pass Triton top-k router vs the reference (outputs, statistics, every gradient), and the MoE.

CPU tests run the kernels under the Triton interpreter (tests/conftest.py sets TRITON_INTERPRET=1).
Logits are continuous random values (no ties: see gatelab.core.kernels.router on tie order).
"""

from __future__ import annotations

import math

import pytest
import torch
from kernel_checks import DTYPES, compare, count_calls, needs_cuda, needs_interpreter, run
from tolerances import assert_close

from gatelab.core import SparseMoE, TopKRouter
from gatelab.core.kernels import dispatch, select, use_backend
from gatelab.core.kernels.router import verify_topk_router

OUTS = ("gates", "indices", "weights", "probs", "importance", "load", "counts")
ARGS = ("dlogits", "dk", "dclean", "dstd")


def _inputs(N: int, E: int, k: int, smooth: bool, dtype: torch.dtype, device: str = "cpu"):
    logits = (2 * torch.randn(N, E, device=device)).to(dtype)
    if not smooth:
        return [logits, k, None, None]
    clean = (2 * torch.randn(N, E, device=device)).to(dtype)
    std = (torch.rand(N, E, device=device) + 0.2).to(dtype)
    return [logits, k, clean, std]


@needs_interpreter
def test_float32_matches_hand_written_float64():
    N, E, k = 6, 5, 2
    logits, _, clean, std = _inputs(N, E, k, True, torch.float32)
    outs, grads = run("topk_router", "triton", [logits, k, clean, std])
    gates, idx, w, probs, imp, load, counts = outs
    x = logits.double()
    for n in range(N):  # explicit per-token loops
        order = sorted(range(E), key=lambda e: -float(x[n, e]))
        assert idx[n].tolist() == order[:k]
        top = [float(x[n, e]) for e in order[:k]]
        den = sum(math.exp(t - top[0]) for t in top)
        for j, e in enumerate(order[:k]):
            assert abs(float(w[n, j]) - math.exp(top[j] - top[0]) / den) < 1e-6
            assert abs(float(gates[n, e]) - float(w[n, j])) < 1e-7
        assert float(gates[n].abs().sum()) == pytest.approx(1.0, abs=1e-6)
        den_all = sum(math.exp(float(x[n, e])) for e in range(E))
        for e in range(E):
            assert abs(float(probs[n, e]) - math.exp(float(x[n, e])) / den_all) < 1e-6
    torch.testing.assert_close(imp, gates.sum(0), rtol=1e-6, atol=1e-6)
    assert counts.tolist() == [int((idx == e).sum()) for e in range(E)]
    # smooth load: sum_x Phi((clean - kth_excluding) / std)
    want = torch.zeros(E, dtype=torch.float64)
    for n in range(N):
        srt = sorted(x[n].tolist(), reverse=True)
        for e in range(E):
            thr = srt[k] if e in idx[n].tolist() else srt[k - 1]
            z = (float(clean[n, e]) - thr) / float(std[n, e])
            want[e] += 0.5 * (1 + math.erf(z / math.sqrt(2)))
    torch.testing.assert_close(load, want.float(), rtol=1e-5, atol=1e-6)
    assert grads[0] is not None and grads[2] is not None and grads[3] is not None


@needs_interpreter
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(
    "N,E,k,smooth", [(7, 5, 2, True), (9, 8, 1, False), (33, 13, 3, True), (5, 4, 4, False)], ids=str
)
def test_matches_reference(N, E, k, smooth, dtype):
    # dtype=: the float32 importance sums the gates rounded to the input dtype (one ulp apart at most)
    args = _inputs(N, E, k, smooth, dtype)
    compare("topk_router", args, kind="reduction", dtype=dtype, out_names=OUTS, arg_names=ARGS)


def test_verifier_reasons(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    logits, k, clean, std = _inputs(4, 6, 2, True, torch.float32)
    assert verify_topk_router(logits, k, clean, std) is None
    assert verify_topk_router(logits, 6) is None
    assert "smooth load needs k < E" in verify_topk_router(logits, 6, clean, std)
    assert "together" in verify_topk_router(logits, k, clean, None)
    assert "[N, E]" in verify_topk_router(logits[0], k)
    assert "k=0" in verify_topk_router(logits, 0)
    assert "k=7" in verify_topk_router(logits, 7)
    assert "experts" in verify_topk_router(torch.randn(2, 5000), 2)
    assert "float64" in verify_topk_router(logits.double(), k)


def _router_run(m, x, noise, backend):
    m.zero_grad()
    xi = x.clone().requires_grad_(True)
    with use_backend({"topk_router": backend}), count_calls("topk_router") as calls:
        r = m(xi, noise=noise)
        loss = (r.gates * torch.linspace(0, 1, r.gates.shape[-1])).sum() + r.importance_loss + r.load_loss
        loss.backward()
    fields = [getattr(r, f) for f in r._fields]
    return calls[0], [*fields, xi.grad] + [p.grad for p in m.parameters()]


@needs_interpreter
@pytest.mark.parametrize("train", [True, False])
def test_router_layer_uses_the_kernel(train):
    m = TopKRouter(6, 5, k=2)
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.5)  # break the zero-init ties
    m.train(train)
    x = torch.randn(11, 6)
    noise = torch.randn(11, 5) if train else None
    n_t, got = _router_run(m, x, noise, "triton")
    n_r, want = _router_run(m, x, noise, "reference")
    assert (n_t, n_r) == (1, 0)
    for a, b in zip(got, want):
        if b is None:
            continue
        if a.is_floating_point():
            assert_close(a, b, kind="reduction")
        else:
            assert torch.equal(a, b)


@needs_interpreter
def test_sparse_moe_uses_the_kernel():
    m = SparseMoE(6, 8, 4, k=2, expert="glu")
    for p in m.router.parameters():
        torch.nn.init.normal_(p, std=0.5)
    x, noise = torch.randn(2, 5, 6), torch.randn(10, 4)
    res = {}
    for backend in ("triton", "reference"):
        m.zero_grad()
        xi = x.clone().requires_grad_(True)
        with use_backend({"topk_router": backend}):
            out = m(xi, noise=noise)
            (out.output.square().sum() + out.aux_loss).backward()
        res[backend] = [out.output.detach(), out.aux_loss.detach(), xi.grad] + [
            p.grad.clone() for p in m.parameters()
        ]
    for a, b in zip(res["triton"], res["reference"]):
        assert_close(a, b, kind="reduction")


@needs_interpreter
def test_explicit_triton_inside_torch_compile():
    args = _inputs(7, 5, 2, True, torch.float32)
    want_o, _ = run("topk_router", "reference", args)
    logits, k, clean, std = (
        a.clone().requires_grad_(True) if isinstance(a, torch.Tensor) else a for a in args
    )

    def f(lg, c, s):
        g, _, w, p, imp, load, _ = dispatch("topk_router", lg, k, c, s)
        return g, w, p, imp, load

    torch._dynamo.reset()
    with use_backend("triton"):
        outs = torch.compile(f, backend="aot_eager", fullgraph=True)(logits, clean, std)
    gen = torch.Generator().manual_seed(1)
    sum((o * torch.randn(o.shape, generator=gen)).sum() for o in outs).backward()
    for got, i in zip(outs, (0, 2, 3, 4, 5)):
        assert_close(got.detach(), want_o[i], kind="reduction")
    # the cotangents differ from run()'s (no indices/counts in between), so check against autograd
    ref_leaves = [t.detach().clone().requires_grad_(True) for t in (args[0], args[2], args[3])]
    g, _, w, p, imp, load, _ = dispatch("topk_router", ref_leaves[0], k, ref_leaves[1], ref_leaves[2])
    gen = torch.Generator().manual_seed(1)
    sum((o * torch.randn(o.shape, generator=gen)).sum() for o in (g, w, p, imp, load)).backward()
    for leaf, ref in zip((logits, clean, std), ref_leaves):
        assert_close(leaf.grad, ref.grad, kind="reduction")


def test_auto_on_cpu_uses_reference():
    assert select("topk_router", *_inputs(4, 5, 2, False, torch.float32))[0] == "reference"


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(
    "N,E,k,smooth", [(4096, 64, 2, True), (1000, 8, 1, False), (77, 200, 8, True)], ids=str
)
def test_gpu_matches_reference_and_auto_selects_triton(N, E, k, smooth, dtype):
    from gatelab.core.kernels.glu import triton_interpreted

    args = _inputs(N, E, k, smooth, dtype, "cuda")
    assert triton_interpreted() or select("topk_router", *args)[0] == "triton"
    compare("topk_router", args, kind="reduction", dtype=dtype, out_names=OUTS, arg_names=ARGS)
