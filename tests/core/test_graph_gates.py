"""Gated graph layers (core/graph_gates.py) against PyG's operators and hand-written math."""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close
from torch_geometric.nn import GatedGraphConv, ResGatedGraphConv
from torch_geometric.utils import to_dense_adj, to_dense_batch

from gatelab.core import GatedGCNConv, GatedGraphPropagation, ResidualGatedGraphConv, capture_gates

D64 = torch.float64

# a directed 5-node graph (row 0 source j, row 1 target i); node 4 receives nothing
EDGES5 = torch.tensor([[0, 1, 2, 3, 1, 0, 4, 2], [1, 0, 1, 2, 3, 3, 3, 0]])


def _perturb(m: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Every parameter moved off its init (no zero bias hides a term)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return m


def _two_graphs(dim: int, edge_dim: int | None = None, seed: int = 0):
    """A PyG batch of two graphs (5 and 3 nodes) and its dense form."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(8, dim, generator=g, dtype=D64)
    ei = torch.cat([EDGES5, torch.tensor([[5, 6, 7, 5], [6, 7, 5, 7]])], dim=1)
    batch = torch.tensor([0] * 5 + [1] * 3)
    ea = None if edge_dim is None else torch.randn(ei.shape[1], edge_dim, generator=g, dtype=D64)
    return x, ei, batch, ea


# --------------------------------------------------------------------------- vs PyG


@pytest.mark.parametrize("edge_dim", [None, 3])
def test_residual_gated_conv_equals_pyg(edge_dim):
    torch.manual_seed(0)
    x, ei, _, ea = _two_graphs(4, edge_dim)
    theirs = _perturb(ResGatedGraphConv(4, 6, edge_dim=edge_dim).double())
    ours = ResidualGatedGraphConv(4, 6, edge_dim=edge_dim, dtype=D64)
    with torch.no_grad():
        ours.root.weight.copy_(theirs.lin_skip.weight)
        ours.bias.copy_(theirs.bias)
        for mine, lin in ((ours.gate_dst, theirs.lin_key), (ours.gate_src, theirs.lin_query), (ours.value, theirs.lin_value)):
            mine.weight.copy_(lin.weight[:, :4])
            mine.bias.copy_(lin.bias)
        if edge_dim:  # PyG concatenates e to the inputs of key/query/value; the two gate terms are one matrix here
            ours.gate_edge.weight.copy_(theirs.lin_key.weight[:, 4:] + theirs.lin_query.weight[:, 4:])
            ours.value_edge.weight.copy_(theirs.lin_value.weight[:, 4:])
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_t = theirs(xa, ei, edge_attr=ea)
    out_o = ours(xb, ei, edge_attr=ea)
    assert_close(out_o, out_t)
    grad = torch.randn_like(out_t)
    out_t.backward(grad)
    out_o.backward(grad)
    assert_close(xb.grad, xa.grad)
    assert_close(ours.root.weight.grad, theirs.lin_skip.weight.grad)
    assert_close(ours.gate_dst.weight.grad, theirs.lin_key.weight.grad[:, :4])
    assert_close(ours.gate_src.bias.grad, theirs.lin_query.bias.grad)
    assert_close(ours.value.weight.grad, theirs.lin_value.weight.grad[:, :4])
    assert_close(ours.bias.grad, theirs.bias.grad)


def test_gated_graph_propagation_equals_pyg():
    torch.manual_seed(0)
    x, ei, _, _ = _two_graphs(3)  # narrower than dim: zero-padded by both
    w = torch.rand(ei.shape[1], dtype=D64)
    theirs = _perturb(GatedGraphConv(5, num_layers=3).double())
    ours = GatedGraphPropagation(5, 3, dtype=D64)
    with torch.no_grad():
        for s in range(3):
            ours.messages[s].weight.copy_(theirs.weight[s].T)
        ours.gru_ih.weight.copy_(theirs.rnn.weight_ih)
        ours.gru_ih.bias.copy_(theirs.rnn.bias_ih)
        ours.gru_hh.weight.copy_(theirs.rnn.weight_hh)
        ours.gru_hh.bias.copy_(theirs.rnn.bias_hh)
    for ew in (None, w):
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        out_t, out_o = theirs(xa, ei, ew), ours(xb, ei, ew)
        assert_close(out_o, out_t)
        grad = torch.randn_like(out_t)
        theirs.zero_grad(), ours.zero_grad()
        out_t.backward(grad)
        out_o.backward(grad)
        assert_close(xb.grad, xa.grad)
        for s in range(3):
            assert_close(ours.messages[s].weight.grad, theirs.weight.grad[s].T)
        assert_close(ours.gru_ih.weight.grad, theirs.rnn.weight_ih.grad)
        assert_close(ours.gru_hh.bias.grad, theirs.rnn.bias_hh.grad)


# --------------------------------------------------------------------------- hand-written math, 5 nodes


def _incoming(i: int) -> list[tuple[int, int]]:
    """(edge number, source j) of every edge j -> i of EDGES5."""
    return [(k, int(EDGES5[0, k])) for k in range(EDGES5.shape[1]) if int(EDGES5[1, k]) == i]


def test_residual_gated_conv_hand_math():
    torch.manual_seed(1)
    m = _perturb(ResidualGatedGraphConv(3, 2, edge_dim=2, dtype=D64))
    x = torch.randn(5, 3, dtype=D64)
    ea = torch.randn(EDGES5.shape[1], 2, dtype=D64)
    w = torch.rand(EDGES5.shape[1], dtype=D64)
    W1, W2, W3, W4 = m.root.weight, m.value.weight, m.gate_dst.weight, m.gate_src.weight
    b2, b3, b4 = m.value.bias, m.gate_dst.bias, m.gate_src.bias
    W5, W6 = m.gate_edge.weight, m.value_edge.weight
    want = torch.zeros(5, 2, dtype=D64)
    for i in range(5):
        acc = W1 @ x[i] + m.bias
        for k, j in _incoming(i):
            eta = torch.sigmoid(W3 @ x[i] + b3 + W4 @ x[j] + b4 + W5 @ ea[k])
            acc = acc + w[k] * eta * (W2 @ x[j] + b2 + W6 @ ea[k])
        want[i] = acc
    with torch.no_grad():
        assert_close(m(x, EDGES5, w, ea), want)


def test_gated_gcn_hand_math():
    torch.manual_seed(2)
    m = _perturb(GatedGCNConv(3, dropout=0.0, dtype=D64)).train()
    x = torch.randn(5, 3, dtype=D64)
    e = torch.randn(EDGES5.shape[1], 3, dtype=D64)
    lin = {k: getattr(m, k) for k in "ABCDE"}
    h_hat = torch.zeros(5, 3, dtype=D64)
    e_hat = torch.zeros_like(e)
    for i in range(5):
        sig = {k: torch.sigmoid(lin["C"](e[k]) + lin["D"](x[i]) + lin["E"](x[j])) for k, j in _incoming(i)}
        den = sum(sig.values(), torch.zeros(3, dtype=D64))
        h_hat[i] = lin["A"](x[i]) + sum(
            (sig[k] / (den + 1e-6) * lin["B"](x[j]) for k, j in _incoming(i)), torch.zeros(3, dtype=D64)
        )
        for k, j in _incoming(i):
            e_hat[k] = lin["C"](e[k]) + lin["D"](x[i]) + lin["E"](x[j])

    def bn(t, norm):  # training-mode batch norm: biased batch variance
        mu, var = t.mean(0), t.var(0, unbiased=False)
        return (t - mu) / torch.sqrt(var + norm.eps) * norm.weight + norm.bias

    want_h = x + torch.relu(bn(h_hat, m.norm_h))
    want_e = e + torch.relu(bn(e_hat, m.norm_e))
    with torch.no_grad():
        h, e_out = m(x, EDGES5, e)
    assert_close(h, want_h)
    assert_close(e_out, want_e)


@pytest.mark.parametrize("update", ["gru", "add"])
def test_typed_propagation_hand_math(update):
    """Node-typed steps (Fi-GNN's W_out / W_in per node), residual to h^0, GRU or add update."""
    torch.manual_seed(3)
    m = _perturb(GatedGraphPropagation(3, 2, num_node_types=5, update=update, residual=True, dtype=D64))
    x = torch.randn(5, 3, dtype=D64)
    w = torch.rand(EDGES5.shape[1], dtype=D64)
    types = torch.tensor([0, 1, 2, 3, 4])
    h = x.clone()
    for s in range(2):
        a = torch.zeros(5, 3, dtype=D64)
        for i in range(5):
            msg = sum((w[k] * (m.weight_out[s, j] @ h[j]) for k, j in _incoming(i)), torch.zeros(3, dtype=D64))
            a[i] = m.weight_in[s, i] @ msg + m.bias_in[s]
        if update == "gru":
            gi, gh = m.gru_ih(a), m.gru_hh(h)
            r = torch.sigmoid(gi[:, :3] + gh[:, :3])
            z = torch.sigmoid(gi[:, 3:6] + gh[:, 3:6])
            n = torch.tanh(gi[:, 6:] + r * gh[:, 6:])
            h = (1 - z) * n + z * h
        else:
            h = a + h
        h = h + x
    with torch.no_grad():
        assert_close(m(x, EDGES5, w, node_type=types), h)


# --------------------------------------------------------------------------- sparse == dense


def test_sparse_and_dense_inputs_agree():
    torch.manual_seed(4)
    x, ei, batch, ea = _two_graphs(4, 4)
    w = torch.rand(ei.shape[1], dtype=D64)
    xd, mask = to_dense_batch(x, batch)  # [2, 5, 4]; the second graph padded with 2 nodes
    adj_w = to_dense_adj(ei, batch, edge_attr=w)
    adj = to_dense_adj(ei, batch)
    ead = to_dense_adj(ei, batch, edge_attr=ea)  # [2, 5, 5, 4], [b, j, i]

    rg = _perturb(ResidualGatedGraphConv(4, 3, edge_dim=4, dtype=D64))
    assert_close(rg(xd, adj=adj_w, edge_attr=ead)[mask], rg(x, ei, w, ea))

    gg = _perturb(GatedGraphPropagation(4, 2, dtype=D64))
    assert_close(gg(xd, adj=adj_w)[mask], gg(x, ei, w))

    typed = _perturb(GatedGraphPropagation(4, 2, num_node_types=5, update="add", residual=True, dtype=D64))
    node_type = torch.tensor([0, 1, 2, 3, 4, 0, 1, 2])
    assert_close(typed(xd, adj=adj_w)[mask], typed(x, ei, w, node_type=node_type))

    gcn = _perturb(GatedGCNConv(4, dtype=D64)).train()
    xs, es = x.clone().requires_grad_(), ea.clone().requires_grad_()
    xdd, eadd = xd.clone().requires_grad_(), ead.clone().requires_grad_()
    h_s, e_s = gcn(xs, ei, es)
    h_d, e_d = gcn(xdd, adj=adj, edge_attr=eadd, mask=mask)
    assert_close(h_d[mask], h_s)
    assert (h_d[~mask] == 0).all()
    b, j, i = batch[ei[0]], ei[0] - torch.tensor([0, 5])[batch[ei[0]]], ei[1] - torch.tensor([0, 5])[batch[ei[1]]]
    assert_close(e_d[b, j, i], e_s)
    assert int((e_d.abs().sum(-1) != 0).sum()) == ei.shape[1]  # zero where there is no edge
    (h_s.sum() + (e_s * 2).sum()).backward()
    (h_d[mask].sum() + (e_d * 2).sum()).backward()
    assert_close(xdd.grad[mask], xs.grad)
    assert_close(eadd.grad[b, j, i], es.grad)


def test_bool_adjacency_is_an_unweighted_graph():
    torch.manual_seed(5)
    x = torch.randn(2, 4, 3)
    adj = torch.rand(2, 4, 4) > 0.5
    m = ResidualGatedGraphConv(3)
    assert_close(m(x, adj=adj), m(x, adj=adj.float()))


# --------------------------------------------------------------------------- capture, precision, errors


def test_capture_records_edge_gates():
    torch.manual_seed(6)
    x, ei, batch, ea = _two_graphs(4, 4)
    x, ea = x.float(), ea.float()
    model = torch.nn.ModuleDict(
        {"rg": ResidualGatedGraphConv(4), "gcn": GatedGCNConv(4), "ggnn": GatedGraphPropagation(4, 3)}
    )
    with capture_gates(model) as gates:
        model["rg"](x, ei)
        model["gcn"](x, ei, ea)
        model["ggnn"](x, ei)
    E = ei.shape[1]
    assert gates["rg"].shape == (E, 4) and ((gates["rg"] > 0) & (gates["rg"] < 1)).all()
    eta = gates["gcn"]
    assert eta.shape == (E, 4)
    # normalised: the gates into each node with incoming edges sum to ~1
    sums = torch.zeros(8, 4).index_add_(0, ei[1], eta)
    has_in = torch.zeros(8, dtype=torch.bool)
    has_in[ei[1]] = True
    assert_close(sums[has_in], torch.ones(int(has_in.sum()), 4), atol=1e-5, rtol=0)
    assert len(gates.all("ggnn:update")) == 3 and gates["ggnn:reset"].shape == (8, 4)
    xd, _ = to_dense_batch(x, batch)
    with capture_gates(model) as dense:
        model["rg"](xd, adj=to_dense_adj(ei, batch))
    assert dense["rg"].shape == (2, 5, 5, 4)
    assert int((dense["rg"].sum(-1) != 0).sum()) == E


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_is_finite_and_close(dtype):
    torch.manual_seed(7)
    x, ei, batch, ea = _two_graphs(8, 8)
    x, ea = 30 * x.float(), 30 * ea.float()  # large pre-activations: saturated gates
    xd, mask = to_dense_batch(x, batch)
    adj, ead = to_dense_adj(ei, batch), to_dense_adj(ei, batch, edge_attr=ea)
    layers = [
        (ResidualGatedGraphConv(8, edge_dim=8), lambda m, a, e: m(a, ei, edge_attr=e), lambda m, xdd, eadd: m(xdd, adj=adj, edge_attr=eadd)[mask]),
        (GatedGCNConv(8).eval(), lambda m, a, e: m(a, ei, e)[0], lambda m, xdd, eadd: m(xdd, adj=adj, edge_attr=eadd, mask=mask)[0][mask]),
        (GatedGraphPropagation(8, 3), lambda m, a, e: m(a, ei), lambda m, xdd, eadd: m(xdd, adj=adj)[mask]),
    ]  # fmt: skip
    for m, sparse, dense in layers:
        ref = sparse(m, x, ea)
        half = m.to(dtype)
        xa = x.to(dtype).requires_grad_()
        out = sparse(half, xa, ea.to(dtype))
        assert out.dtype == dtype and torch.isfinite(out).all(), type(m).__name__
        out.float().square().mean().backward()
        assert torch.isfinite(xa.grad).all(), type(m).__name__
        tol = 0.05 * ref.abs().max().item() + 0.05
        assert (out.float() - ref).abs().max() < tol, type(m).__name__
        outd = dense(half, xd.to(dtype), ead.to(dtype))
        assert torch.isfinite(outd).all(), type(m).__name__
        m.float()


def test_bad_inputs_name_the_problem():
    m = ResidualGatedGraphConv(3)
    x = torch.randn(4, 3)
    with pytest.raises(ValueError, match="exactly one of edge_index"):
        m(x)
    with pytest.raises(ValueError, match=r"outside \[0, 3\]"):
        m(x, torch.tensor([[0, 4], [1, 2]]))
    with pytest.raises(ValueError, match=r"integer \[2, E\]"):
        m(x, torch.zeros(3, 2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"sparse input x must be \[N, dim=3\]"):
        m(torch.randn(4, 5), EDGES5[:, :2])
    with pytest.raises(ValueError, match=r"adj must be \[B, N, N\]"):
        m(torch.randn(2, 4, 3), adj=torch.ones(2, 4, 3))
    with pytest.raises(ValueError, match="edge_attr must be given exactly when edge_dim"):
        m(x, EDGES5[:, :2], edge_attr=torch.randn(2, 2))
    with pytest.raises(ValueError, match=r"edge_weight must have shape \[2\]"):
        m(x, EDGES5[:, :2], torch.ones(3))
    with pytest.raises(ValueError, match="residual=True needs dim == edge_dim == out_dim"):
        GatedGCNConv(3, 4)
    with pytest.raises(ValueError, match="edge_attr is required"):
        GatedGCNConv(3)(x, EDGES5[:, :2])
    with pytest.raises(ValueError, match=r"dense input x must be \[B, N, dim=<= 2\]"):
        GatedGraphPropagation(2, 1)(torch.randn(1, 4, 3), adj=torch.ones(1, 4, 4))
    with pytest.raises(ValueError, match="node_type \\[N\\] is required for a sparse input"):
        GatedGraphPropagation(3, 1, num_node_types=4)(x, EDGES5[:, :2])
    with pytest.raises(ValueError, match=r"node_type values must be in \[0, 3\]"):
        GatedGraphPropagation(3, 1, num_node_types=4)(x, EDGES5[:, :2], node_type=torch.tensor([0, 1, 2, 4]))
    with pytest.raises(ValueError, match="update must be 'gru' or 'add'"):
        GatedGraphPropagation(3, 1, update="lstm")
    with pytest.raises(ValueError, match="num_layers must be a positive int"):
        GatedGraphPropagation(3, 0)
