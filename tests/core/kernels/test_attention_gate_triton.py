"""The fused attention-gate op (gatelab.core.kernels.attention_gate): the hand-written backward by
gradcheck (float64), the Triton tail vs the reference (float32, relative 1e-5; CPU runs under the
Triton interpreter set by tests/conftest.py) and AttentionGate's fused path vs its unfused modules."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from kernel_checks import needs_interpreter, run

from gatelab.core import AttentionGate
from gatelab.core.kernels import select, use_backend
from gatelab.core.kernels.attention_gate import attention_gate, verify_attention_gate

CASES = [  # (spatial_dims, x grid, g grid, stride, biases)
    (3, (4, 6, 4), (2, 3, 2), (2, 2, 2), True),  # g on theta's grid: phi needs no resampling
    (3, (6, 4, 5), (2, 2, 2), (2, 2, 2), False),  # odd side: theta 3x2x2, phi resampled from 2x2x2
    (2, (9, 6), (3, 2), (2, 1), True),  # anisotropic stride, phi resampled
]


def _args(nd, xs, gs, stride, biases, dtype=torch.float32, c=3, cg=4, f=5):
    gen = torch.Generator().manual_seed(0)
    r = lambda *s: torch.randn(*s, generator=gen, dtype=torch.float64).to(dtype)  # noqa: E731
    args = [
        r(2, c, *xs),
        r(2, cg, *gs),
        r(f, c, *stride) * 0.5,
        r(f, cg, *([1] * nd)) * 0.5,
        r(f) if biases else None,
        r(1, f, *([1] * nd)),
        r(1) if biases else None,
    ]
    mode = "bilinear" if nd == 2 else "trilinear"
    return args, {"stride": stride, "mode": mode, "align_corners": False}


def _unfused(x, g, tw, pw, pb, sw, sb, *, stride, mode, align_corners):
    conv = F.conv2d if x.dim() == 4 else F.conv3d
    theta = conv(x, tw, None, stride=stride)
    phi = F.interpolate(conv(g, pw, pb), size=theta.shape[2:], mode=mode, align_corners=align_corners)
    a = torch.sigmoid(conv(torch.relu(theta + phi), sw, sb))
    alpha = F.interpolate(a, size=x.shape[2:], mode=mode, align_corners=align_corners)
    return alpha * x, alpha


@pytest.mark.parametrize("case", CASES)
def test_reference_gradcheck_float64(case):
    args, kw = _args(*case, dtype=torch.float64)
    args = [a.requires_grad_() if a is not None else None for a in args]
    assert torch.autograd.gradcheck(lambda *a: attention_gate(*a, **kw), args, eps=1e-6, atol=1e-7, fast_mode=True)
    y, alpha = attention_gate(*args, **kw)
    y_ref, alpha_ref = _unfused(*args, **kw)
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(alpha, alpha_ref, rtol=1e-12, atol=1e-12)


def test_reference_gradients_when_only_some_inputs_need_them():
    args, kw = _args(*CASES[0], dtype=torch.float64)
    w = args[2].requires_grad_()
    y, _ = attention_gate(*args, **kw)
    y.sum().backward()
    w2 = args[2].detach().clone().requires_grad_()
    y2, _ = _unfused(args[0], args[1], w2, *args[3:], **kw)
    y2.sum().backward()
    torch.testing.assert_close(w.grad, w2.grad, rtol=1e-10, atol=1e-12)


@needs_interpreter
@pytest.mark.parametrize("case", CASES)
def test_triton_tail_matches_reference(case):
    args, kw = _args(*case)
    ref_out, ref_grads = run("attention_gate", "reference", args, kw)
    tri_out, tri_grads = run("attention_gate", "triton", args, kw)
    for a, b in zip(tri_out + tri_grads, ref_out + ref_grads, strict=True):
        if b is None:
            assert a is None
            continue
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * b.abs().max().item())


def test_verifier_reasons():
    args, kw = _args(*CASES[0], dtype=torch.float64)
    assert "float64" in verify_attention_gate(*args, **kw)
    args, kw = _args(*CASES[0], f=5000)
    why = verify_attention_gate(*args, **kw)
    assert why is not None
    with use_backend("reference"):
        assert select("attention_gate", *args, **kw)[0] == "reference"


@pytest.mark.parametrize(("nd", "xs", "gs"), [(3, (6, 4, 4), (2, 2, 2)), (2, (10, 8), (4, 4))])
def test_module_fused_path_equals_unfused(nd, xs, gs):
    fused = AttentionGate(nd, 4, 6, 3, norm=None).train()
    plain = copy.deepcopy(fused)
    plain.fuse = False
    assert fused.fused and not plain.fused
    assert not AttentionGate(nd, 4, 6, gate_act="tanh").fused  # other activations: unfused modules
    x, g = torch.randn(2, 4, *xs), torch.randn(2, 6, *gs)
    outs = []
    for m in (fused, plain):
        xx, gg = x.clone().requires_grad_(), g.clone().requires_grad_()
        y, alpha = m(xx, gg)
        (y.square().sum() + (alpha * torch.linspace(-1, 1, alpha.numel()).view(alpha.shape)).sum()).backward()
        outs.append([y, alpha, xx.grad, gg.grad, *(p.grad for p in m.parameters())])
    for a, b in zip(*outs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6 * b.abs().max().item())


@pytest.mark.parametrize("mode", ["nearest", "area"])
def test_reference_other_resample_modes(mode):
    args, kw = _args(*CASES[2], dtype=torch.float64)
    kw["mode"], kw["align_corners"] = mode, None
    args = [a.requires_grad_() if a is not None else None for a in args]
    assert torch.autograd.gradcheck(lambda *a: attention_gate(*a, **kw), args, eps=1e-6, atol=1e-7, fast_mode=True)
    torch.testing.assert_close(attention_gate(*args, **kw)[0], _unfused(*args, **kw)[0], rtol=1e-12, atol=1e-12)
