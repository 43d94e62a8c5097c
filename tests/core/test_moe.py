"""TopKRouter against hand-written noisy top-k gating and balance losses; SparseMoE against a per-token loop."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from gate_checks import check_capture, check_compile, check_grads, check_half_finite
from tolerances import assert_close

from gatelab.core import SparseMoE, TopKRouter


def _cv2(values):
    """Squared coefficient of variation with the population variance, by hand."""
    n = len(values)
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / n
    return var / (mean * mean + 1e-10)


def _phi(z):
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def _softplus(z):
    return math.log1p(math.exp(-abs(z))) + max(z, 0.0)


def _router_reference(r: TopKRouter, x, noise=None):
    """Noisy top-k gating token by token with Python floats (paper Sec. 2.1 and Appendix A)."""
    Wg = r.w_gate.weight.detach()
    bg = r.w_gate.bias.detach() if r.w_gate.bias is not None else torch.zeros(r.num_experts)
    N, E, k = x.shape[0], r.num_experts, r.k
    gates = [[0.0] * E for _ in range(N)]
    topk, P = [], [[0.0] * E for _ in range(N)]
    for n in range(N):
        clean = [float(Wg[i] @ x[n] + bg[i]) for i in range(E)]
        if noise is not None:
            Wn = r.w_noise.weight.detach()
            std = [_softplus(float(Wn[i] @ x[n])) + r.noise_epsilon for i in range(E)]
            H = [clean[i] + float(noise[n, i]) * std[i] for i in range(E)]
        else:
            H = clean
        chosen = sorted(range(E), key=lambda i, H=H: -H[i])[:k]
        mx = max(H[i] for i in chosen)
        den = sum(math.exp(H[i] - mx) for i in chosen)
        for i in chosen:
            gates[n][i] = math.exp(H[i] - mx) / den
        topk.append(chosen)
        if noise is not None and k < E:  # with k == E every expert is in, P is undefined: counts
            for i in range(E):
                others = sorted((H[j] for j in range(E) if j != i), reverse=True)
                kth_excluding = others[k - 1]
                P[n][i] = _phi((clean[i] - kth_excluding) / std[i])
    importance = [sum(gates[n][i] for n in range(N)) for i in range(E)]
    counts = [sum(1 for n in range(N) if i in topk[n]) for i in range(E)]
    smooth = noise is not None and k < E
    load = [sum(P[n][i] for n in range(N)) for i in range(E)] if smooth else [float(c) for c in counts]
    return {
        "gates": torch.tensor(gates),
        "indices": torch.tensor(topk),
        "importance": torch.tensor(importance),
        "load": torch.tensor(load),
        "counts": torch.tensor(counts),
        "importance_loss": torch.tensor(r.w_importance * _cv2(importance)),
        "load_loss": torch.tensor(r.w_load * _cv2(load)),
    }


def _random_router(r: TopKRouter, scale: float = 1.0) -> TopKRouter:
    with torch.no_grad():
        for lin in (r.w_gate, r.w_noise):
            if lin is not None:
                lin.weight.normal_(0.0, scale)
                if lin.bias is not None:
                    lin.bias.normal_()
    return r


@pytest.mark.parametrize("k", [1, 2, 3])
def test_router_noisy_values(k):
    r = _random_router(TopKRouter(4, 5, k=k, w_importance=0.3, w_load=0.7)).train()
    x = torch.randn(7, 4)
    noise = torch.randn(7, 5)
    out = r(x, noise=noise)
    ref = _router_reference(r, x, noise)
    assert torch.equal(out.indices, ref["indices"])
    for key in ("gates", "importance", "load", "importance_loss", "load_loss"):
        assert_close(getattr(out, key), ref[key].float(), kind="reduction", msg=key)
    assert torch.equal(out.counts, ref["counts"])
    assert_close(out.weights, torch.gather(ref["gates"].float(), 1, ref["indices"]), kind="reduction")
    H = out.logits.detach()
    assert_close(out.probs, torch.softmax(H, -1), kind="reduction")
    # the smooth load is differentiable: gradient reaches both projections
    out.load_loss.backward()
    assert r.w_gate.weight.grad.abs().sum() > 0 and r.w_noise.weight.grad.abs().sum() > 0


def test_router_eval_and_noiseless_use_counts():
    x = torch.randn(9, 4)
    noise = torch.randn(9, 3)
    for r, nz in (
        (_random_router(TopKRouter(4, 5, k=2)).eval(), None),
        (_random_router(TopKRouter(4, 5, k=2, noisy=False, bias=True)).train(), None),
        (_random_router(TopKRouter(4, 3, k=3)).train(), noise),  # k == E: all experts chosen, no smooth load
    ):
        out = r(x, noise=nz)
        ref = _router_reference(r, x, nz)
        assert torch.equal(out.indices, ref["indices"])
        assert torch.equal(out.counts, ref["counts"])
        for key in ("gates", "load", "importance_loss", "load_loss"):
            assert_close(getattr(out, key), ref[key].float(), kind="reduction", msg=key)
        assert not out.load_loss.requires_grad or out.load_loss.grad_fn is None
    assert r.w_noise is not None
    assert TopKRouter(4, 5, noisy=False).w_noise is None


def test_router_noise_is_random_in_training_and_absent_in_eval():
    r = _random_router(TopKRouter(4, 6, k=2))
    x = torch.randn(50, 4)
    r.train()
    a, b = r(x).logits, r(x).logits
    assert not torch.equal(a, b)
    r.eval()
    assert torch.equal(r(x).logits, r.w_gate(x))
    assert torch.equal(r(x[None]).gates, r(x).gates)  # leading dims are flattened


def test_router_zero_init_and_errors():
    r = TopKRouter(4, 5)
    assert (r.w_gate.weight == 0).all() and (r.w_noise.weight == 0).all()
    with pytest.raises(ValueError, match="k must satisfy"):
        TopKRouter(4, 3, k=4)
    with pytest.raises(ValueError, match=r"\[..., dim=4\]"):
        r(torch.randn(3, 5))
    with pytest.raises(ValueError, match="adds none"):
        r.eval()(torch.randn(3, 4), noise=torch.randn(3, 5))
    with pytest.raises(ValueError, match="noise must have shape"):
        r.train()(torch.randn(3, 4), noise=torch.randn(3, 4))
    with pytest.raises(TypeError):
        TopKRouter(4, 5, topk=2)


def _expert_by_hand(m: SparseMoE, e: int, x):
    z = x @ m.w1[e] + (m.b1[e] if m.b1 is not None else 0)
    if m.expert == "glu":
        a, b = z[: m.hidden_dim], z[m.hidden_dim :]
        z = F.gelu(a) * b
    else:
        z = F.gelu(z)
    return z @ m.w2[e] + (m.b2[e] if m.b2 is not None else 0)


def _moe_reference(m: SparseMoE, x, noise=None, capacity=None):
    """Per token, per chosen expert; with a capacity, an expert serves its first ``capacity`` tokens."""
    xf = x.reshape(-1, m.dim)
    ref = _router_reference(m.router, xf, noise)
    used = [0] * m.num_experts
    dropped = 0
    y = torch.zeros_like(xf)
    for n in range(xf.shape[0]):
        for e in range(m.num_experts):
            g = float(ref["gates"][n, e])
            if g == 0.0:
                continue
            if capacity is not None and used[e] >= capacity:
                dropped += 1
                continue
            used[e] += 1
            y[n] += g * _expert_by_hand(m, e, xf[n])
    return y.reshape(x.shape), dropped, ref


@pytest.mark.parametrize("expert", ["mlp", "glu"])
@pytest.mark.parametrize("bias", [True, False])
def test_moe_values_eval(expert, bias):
    m = SparseMoE(4, 6, 5, k=2, expert=expert, bias=bias).eval()
    _random_router(m.router)
    x = torch.randn(2, 3, 4)
    with torch.no_grad():
        out = m(x)
        y, dropped, ref = _moe_reference(m, x)
    assert out.output.shape == x.shape
    assert_close(out.output, y, kind="reduction")
    assert int(out.num_dropped) == dropped == 0
    assert_close(out.aux_loss, (ref["importance_loss"] + ref["load_loss"]).float(), kind="reduction")


def test_moe_values_train_with_noise():
    m = SparseMoE(4, 6, 4, k=2, expert="glu").train()
    _random_router(m.router)
    x = torch.randn(10, 4)
    noise = torch.randn(10, 4)
    out = m(x, noise=noise)
    y, _, ref = _moe_reference(m, x, noise)
    assert_close(out.output, y.detach(), kind="reduction")
    assert_close(out.aux_loss, (ref["importance_loss"] + ref["load_loss"]).float(), kind="reduction")


@pytest.mark.parametrize("capacity_factor", [0.5, 1.0, 4.0])
def test_moe_capacity_drops_are_counted(capacity_factor):
    m = SparseMoE(4, 6, 3, k=2, capacity_factor=capacity_factor).eval()
    _random_router(m.router, scale=2.0)
    x = torch.randn(12, 4)
    capacity = min(12, math.ceil(capacity_factor * 12 * 2 / 3))
    with torch.no_grad():
        out = m(x)
        y, dropped, _ = _moe_reference(m, x, capacity=capacity)
    assert_close(out.output, y, kind="reduction")
    assert int(out.num_dropped) == dropped
    if capacity_factor == 0.5:
        assert dropped > 0
    if capacity_factor == 4.0:
        assert dropped == 0
    gates = check_capture(m, x, expect=(":dropped", "router", "router:load"))
    assert int(gates["SparseMoE:dropped"]) == dropped


def test_moe_errors():
    with pytest.raises(ValueError, match="expert"):
        SparseMoE(4, 6, 3, expert="conv")
    with pytest.raises(ValueError, match="capacity_factor"):
        SparseMoE(4, 6, 3, capacity_factor=0.0)
    with pytest.raises(ValueError, match=r"\[..., dim=4\]"):
        SparseMoE(4, 6, 3)(torch.randn(2, 5))
    with pytest.raises(TypeError):
        SparseMoE(4, 6, 3, num_expert=3)


def test_router_shared_checks():
    r = _random_router(TopKRouter(4, 5, k=2))
    x = torch.randn(6, 4)
    check_compile(r, x)  # eval mode
    gates = check_capture(r.eval(), x, expect=("TopKRouter", ":load"))
    assert_close(gates["TopKRouter"].sum(-1), torch.ones(6))
    r.train()
    check_grads(r, x)

    def make():
        rr = TopKRouter(4, 5, k=2, bias=True)
        return _random_router(rr, scale=10.0).train()

    def inputs(dtype):
        return [(torch.randn(8, 4).sign() * 300).to(dtype)]  # logits ~ 1e4: saturated softmax and CDF

    check_half_finite(make, inputs)


@pytest.mark.parametrize("expert", ["mlp", "glu"])
def test_moe_shared_checks(expert):
    m = SparseMoE(4, 6, 4, k=2, expert=expert)
    _random_router(m.router)
    x = torch.randn(2, 8, 4)
    check_compile(m, x)
    m.capacity_factor = 0.75
    check_compile(m, x)
    m.capacity_factor = None
    m.train()
    check_grads(m, x)
    check_capture(m, x, expect=("router", "router:load", ":dropped"))

    def make():
        mm = SparseMoE(4, 6, 4, k=2, expert=expert)
        return _random_router(mm.router, scale=100.0).train()

    def inputs(dtype):
        return [(torch.randn(2, 8, 4).sign() * 30).to(dtype)]  # router logits ~ 1e4

    check_half_finite(make, inputs)
