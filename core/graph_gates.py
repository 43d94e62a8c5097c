r"""Gated message passing on graphs, on :class:`torch_geometric.nn.MessagePassing`.

Three gate families for graphs:

* :class:`ResidualGatedGraphConv` -- edge gates ``eta_ij = sigmoid(W3 h_i + W4 h_j)`` on the
  messages (Bresson & Laurent 2017; PyG's ``ResGatedGraphConv``);
* :class:`GatedGCNConv` -- explicit edge features updated with the node states, gates normalised
  over each node's incoming edges, batch norm and residuals (Dwivedi et al. 2020);
* :class:`GatedGraphPropagation` -- ``num_layers`` propagation steps with a GRU update (GGNN,
  Li et al. 2016; PyG's ``GatedGraphConv``), optionally with per-node-type in/out transforms
  (Fi-GNN's edge-wise transformation).

Graph inputs (every layer takes both):

* **sparse**: node features ``x`` ``[N, dim]`` (a PyG batch: graphs stacked along the node
  axis) and ``edge_index`` ``[2, E]`` (row 0 = source ``j``, row 1 = target ``i``; a message
  flows ``j -> i``), as every PyG layer;
* **dense**: ``x`` ``[B, N, dim]`` and ``adj`` ``[B, N, N]`` with ``adj[b, j, i]`` the weight of the
  edge ``j -> i`` (0 = no edge): the layout of :func:`torch_geometric.utils.to_dense_adj`, so
  ``adj = to_dense_adj(edge_index, batch)`` with ``x = to_dense_batch(x, batch)[0]`` computes the
  same as the sparse call. The dense path is batched ``einsum`` / ``bmm`` and does not call PyG;
  it holds ``[B, N, N, out_dim]`` edge tensors, so it suits small, dense graphs (Fi-GNN's
  complete field graphs).

Precision: for float16/bfloat16 inputs the gates (sigmoid, normalisation, GRU gates) and the
aggregation over neighbours are computed in float32 and the result cast back.

Gates recorded with :func:`gatelab.core.record_gate`: the edge gates ``eta`` (``[E, out_dim]``
sparse, ``[B, N, N, out_dim]`` dense with zeros where there is no edge) and the GRU's update and
reset gates (``:update``, ``:reset``, ``[N, dim]`` / ``[B, N, dim]`` per step).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn
from torch_geometric.nn import MessagePassing

from .layers.activations import ActLike, create_act
from .layers.capture import record_gate
from .layers.checks import check_dropout, check_positive_int

__all__ = ["GatedGCNConv", "GatedGraphPropagation", "ResidualGatedGraphConv"]

_HALF = (torch.float16, torch.bfloat16)


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for half inputs (gates and sums), the input dtype otherwise."""
    return torch.float32 if dtype in _HALF else dtype


def _check_graph(
    owner: str,
    x: torch.Tensor,
    dim: int,
    edge_index: torch.Tensor | None,
    adj: torch.Tensor | None,
    *,
    allow_narrower: bool = False,
) -> bool:
    """Validate a sparse (``x [N, dim]``, ``edge_index [2, E]``) or dense (``x [B, N, dim]``,
    ``adj [B, N, N]``) graph input; return True for the dense path."""
    if (edge_index is None) == (adj is None):
        raise ValueError(f"{owner}: pass exactly one of edge_index= (sparse) and adj= (dense)")
    width_ok = x.shape[-1] <= dim if allow_narrower else x.shape[-1] == dim
    want = f"<= {dim}" if allow_narrower else str(dim)
    if adj is not None:
        if x.ndim != 3 or not width_ok:
            raise ValueError(f"{owner}: dense input x must be [B, N, dim={want}], got shape {tuple(x.shape)}")
        b, n = x.shape[:2]
        if adj.shape != (b, n, n):
            raise ValueError(
                f"{owner}: adj must be [B, N, N] = [{b}, {n}, {n}] for x {tuple(x.shape)}, got shape {tuple(adj.shape)}"
            )
        if not (adj.is_floating_point() or adj.dtype == torch.bool):
            raise ValueError(f"{owner}: adj must be a float or bool tensor, got dtype {adj.dtype}")
        return True
    assert edge_index is not None
    if x.ndim != 2 or not width_ok:
        raise ValueError(f"{owner}: sparse input x must be [N, dim={want}], got shape {tuple(x.shape)}")
    if edge_index.ndim != 2 or edge_index.shape[0] != 2 or edge_index.is_floating_point():
        raise ValueError(
            f"{owner}: edge_index must be an integer [2, E] tensor, got shape {tuple(edge_index.shape)} "
            f"dtype {edge_index.dtype}"
        )
    if edge_index.numel():
        lo, hi = int(edge_index.min()), int(edge_index.max())
        if lo < 0 or hi >= x.shape[0]:
            raise ValueError(
                f"{owner}: edge_index holds node indices in [{lo}, {hi}], outside [0, {x.shape[0] - 1}] "
                f"(x has {x.shape[0]} nodes)"
            )
    return False


def _check_edge_tensor(
    owner: str, name: str, t: torch.Tensor, lead: tuple[int, ...], width: int | None
) -> None:
    want = (*lead, width) if width is not None else lead
    if tuple(t.shape) != want:
        raise ValueError(f"{owner}: {name} must have shape {list(want)}, got {tuple(t.shape)}")


class ResidualGatedGraphConv(MessagePassing):
    r"""Residual gated graph convolution: ``h_i' = W1 h_i + sum_j eta_ij * W2 h_j + b``.

    ::

        eta_ij = sigmoid(W3 h_i + W4 h_j)        [E, out_dim]   edge gate (i target, j source)
        h_i'   = W1 h_i + sum_{j -> i} w_ji eta_ij * W2 h_j + b   [N, out_dim]

    ``w_ji`` is the optional edge weight (sparse ``edge_weight`` ``[E]``; dense: the ``adj``
    values; 1 for an unweighted graph). With ``edge_dim``, edge features ``e_ji`` enter the gate
    and the message: ``eta_ij = sigmoid(W3 h_i + W4 h_j + W5 e_ji)``, message ``W2 h_j + W6 e_ji``
    (PyG's ``edge_dim`` form, where ``e_ji`` is concatenated to the inputs of ``W2, W3, W4``; its
    two gate terms ``W3'' e + W4'' e`` are one matrix ``W5`` here).

    Args:
        dim: node features in.
        out_dim: node features out (default ``dim``).
        edge_dim: edge features (``None``: no edge features).
        gate_act: squashing of the gate (default sigmoid).
        root_weight: the ``W1 h_i`` term (PyG's ``root_weight``).
        bias: the output bias ``b`` (``W3`` and ``W2`` keep their biases, as PyG's layer).

    Shapes: sparse ``x [N, dim]``, ``edge_index [2, E]`` (``edge_weight [E]``, ``edge_attr
    [E, edge_dim]``) -> ``[N, out_dim]``; dense ``x [B, N, dim]``, ``adj [B, N, N]``
    (``edge_attr [B, N, N, edge_dim]``, entry ``[b, j, i]`` for edge ``j -> i``) -> ``[B, N, out_dim]``.
    ``eta`` is recorded with :func:`gatelab.core.record_gate`.

    Paper: Bresson & Laurent, "Residual Gated Graph ConvNets", arXiv:1711.07553 (the gated
    graph ConvNet with edge gates ``eta_ij``).
    Equal (outputs and gradients, copied weights) to ``torch_geometric.nn.ResGatedGraphConv``;
    weights: ``root`` = ``lin_skip`` (W1), ``value`` = ``lin_value`` (W2), ``gate_dst`` =
    ``lin_key`` (W3), ``gate_src`` = ``lin_query`` (W4).

    Deviations: the paper adds the input ``h_i`` (a residual) around a stack of such layers; a
    layer here is the PyG operator (residuals are the model's). Bipartite ``(x_src, x_dst)``
    inputs are not supported.
    """

    def __init__(
        self,
        dim: int,
        out_dim: int | None = None,
        *,
        edge_dim: int | None = None,
        gate_act: ActLike = "sigmoid",
        root_weight: bool = True,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(aggr="add")
        owner = "ResidualGatedGraphConv"
        check_positive_int(owner, "dim", dim)
        check_positive_int(owner, "out_dim", out_dim, allow_none=True)
        check_positive_int(owner, "edge_dim", edge_dim, allow_none=True)
        fk = {"device": device, "dtype": dtype}
        out_dim = dim if out_dim is None else out_dim
        self.dim, self.out_dim, self.edge_dim = dim, out_dim, edge_dim
        self.root_weight = root_weight
        self.gate_dst = nn.Linear(dim, out_dim, **fk)  # W3 (PyG lin_key)
        self.gate_src = nn.Linear(dim, out_dim, **fk)  # W4 (PyG lin_query)
        self.value = nn.Linear(dim, out_dim, **fk)  # W2 (PyG lin_value)
        self.gate_edge = nn.Linear(edge_dim, out_dim, bias=False, **fk) if edge_dim else None
        self.value_edge = nn.Linear(edge_dim, out_dim, bias=False, **fk) if edge_dim else None
        self.root = nn.Linear(dim, out_dim, bias=False, **fk) if root_weight else None  # W1 (lin_skip)
        self.bias = nn.Parameter(torch.zeros(out_dim, **fk)) if bias else None
        self.gate_act = create_act(gate_act)

    def reset_parameters(self) -> None:
        super().reset_parameters()
        for m in (self.gate_dst, self.gate_src, self.value, self.gate_edge, self.value_edge, self.root):
            if m is not None:
                m.reset_parameters()
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(
        self,
        x: torch.Tensor,
        edge_index: torch.Tensor | None = None,
        edge_weight: torch.Tensor | None = None,
        edge_attr: torch.Tensor | None = None,
        *,
        adj: torch.Tensor | None = None,
    ) -> torch.Tensor:
        owner = type(self).__name__
        dense = _check_graph(owner, x, self.dim, edge_index, adj)
        if (edge_attr is None) != (self.edge_dim is None):
            raise ValueError(
                f"{owner}: edge_attr must be given exactly when edge_dim is set (edge_dim={self.edge_dim})"
            )
        ct = _compute_dtype(x.dtype)
        k = self.gate_dst(x).to(ct)
        q = self.gate_src(x).to(ct)
        v = self.value(x).to(ct)
        if dense:
            assert adj is not None
            b, n = x.shape[:2]
            if edge_weight is not None:
                raise ValueError(
                    f"{owner}: dense input: edge weights are the adj values (edge_weight= is sparse only)"
                )
            pre = q.unsqueeze(2) + k.unsqueeze(1)  # [B, j, i, out]
            msg_v = v.unsqueeze(2)  # [B, j, 1, out]
            if edge_attr is not None:
                _check_edge_tensor(owner, "edge_attr (dense)", edge_attr, (b, n, n), self.edge_dim)
                pre = pre + self.gate_edge(edge_attr).to(ct)
                msg_v = msg_v + self.value_edge(edge_attr).to(ct)
            w = adj.to(ct)
            eta = self.gate_act(pre) * (w != 0).unsqueeze(-1)
            record_gate(self, eta)
            out = ((w.unsqueeze(-1) * eta) * msg_v).sum(dim=1)  # [B, i, out]
        else:
            assert edge_index is not None
            e = edge_index.shape[1]
            if edge_weight is not None:
                _check_edge_tensor(owner, "edge_weight", edge_weight, (e,), None)
                edge_weight = edge_weight.to(ct)
            ge = ve = None
            if edge_attr is not None:
                _check_edge_tensor(owner, "edge_attr", edge_attr, (e,), self.edge_dim)
                ge, ve = self.gate_edge(edge_attr).to(ct), self.value_edge(edge_attr).to(ct)
            out = self.propagate(edge_index, k=k, q=q, v=v, edge_weight=edge_weight, ge=ge, ve=ve)
        if self.root is not None:
            out = out + self.root(x).to(ct)
        if self.bias is not None:
            out = out + self.bias.to(ct)
        return out.to(x.dtype)

    def message(
        self,
        k_i: torch.Tensor,
        q_j: torch.Tensor,
        v_j: torch.Tensor,
        edge_weight: torch.Tensor | None,
        ge: torch.Tensor | None,
        ve: torch.Tensor | None,
    ) -> torch.Tensor:
        pre = k_i + q_j if ge is None else k_i + q_j + ge
        eta = self.gate_act(pre)
        record_gate(self, eta)
        msg = eta * (v_j if ve is None else v_j + ve)
        return msg if edge_weight is None else msg * edge_weight.unsqueeze(-1)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.dim}, {self.out_dim}, edge_dim={self.edge_dim})"


class GatedGCNConv(MessagePassing):
    r"""GatedGCN layer with explicit edge features and normalised edge gates (Dwivedi et al. 2020).

    For an edge ``j -> i`` with features ``e_ij`` (width ``edge_dim``)::

        e^_ij  = C e_ij + D h_i + E h_j                                   [E, out_dim]
        eta_ij = sigmoid(e^_ij) / (sum_{j' -> i} sigmoid(e^_ij') + eps)    normalised edge gate
        h^_i   = A h_i + sum_{j -> i} eta_ij * B h_j                       [N, out_dim]
        h_i'   = h_i + dropout(act(BN(h^_i)))                              residual
        e_ij'  = e_ij + dropout(act(BN(e^_ij)))

    Args:
        dim: node features in.
        out_dim: node (and edge) features out (default ``dim``).
        edge_dim: edge features in (default ``out_dim``).
        act: activation (default ReLU, the paper's).
        batch_norm: ``BatchNorm1d`` over the nodes and (separately) over the edges.
        residual: add the inputs (needs ``dim == edge_dim == out_dim``; the reference code
            silently turns the residual off otherwise, here that is an error).
        dropout: dropout after the activation (nodes and edges).
        eps: added to the gate normaliser (1e-6 as the reference code).
        bias: biases of ``A .. E``.

    Shapes: sparse ``x [N, dim]``, ``edge_index [2, E]``, ``edge_attr [E, edge_dim]`` ->
    ``(h [N, out_dim], e [E, out_dim])``; dense ``x [B, N, dim]``, ``adj [B, N, N]`` (non-zero =
    edge; the values are not used as weights), ``edge_attr [B, N, N, edge_dim]`` (entry
    ``[b, j, i]`` for edge ``j -> i``), optional node ``mask [B, N]`` (False = padding: left out of
    the batch-norm statistics, output zeros) -> ``(h [B, N, out_dim], e [B, N, N, out_dim])``
    with ``e = 0`` where there is no edge. The dense batch norm uses only real edges and nodes,
    so both paths give the same outputs. ``eta`` is recorded with :func:`gatelab.core.record_gate`.

    Paper: Dwivedi, Joshi, Laurent, Bengio, Bresson, "Benchmarking Graph Neural Networks",
    JMLR 2023 (arXiv:2003.00982), the GatedGCN layer with edge features, and the reference code
    (``layers/gated_gcn_layer.py``: ``h_i' = A h_i + sum sigma B h_j / (sum sigma + 1e-6)``, BN,
    ReLU, dropout, residual).

    Deviations: the paper writes ``D h_i + E h_j`` with ``i`` the receiving node (as here); the
    reference code applies ``D`` to the source node (the same function with ``D``, ``E`` swapped).
    """

    def __init__(
        self,
        dim: int,
        out_dim: int | None = None,
        *,
        edge_dim: int | None = None,
        act: ActLike = "relu",
        batch_norm: bool = True,
        residual: bool = True,
        dropout: float = 0.0,
        eps: float = 1e-6,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(aggr="add")
        owner = "GatedGCNConv"
        check_positive_int(owner, "dim", dim)
        check_positive_int(owner, "out_dim", out_dim, allow_none=True)
        check_positive_int(owner, "edge_dim", edge_dim, allow_none=True)
        check_dropout(owner, dropout)
        if not eps > 0:
            raise ValueError(f"{owner}: eps must be > 0, got {eps!r}")
        out_dim = dim if out_dim is None else out_dim
        edge_dim = out_dim if edge_dim is None else edge_dim
        if residual and not dim == edge_dim == out_dim:
            raise ValueError(
                f"{owner}: residual=True needs dim == edge_dim == out_dim, got dim={dim}, "
                f"edge_dim={edge_dim}, out_dim={out_dim} (pass residual=False)"
            )
        fk = {"device": device, "dtype": dtype}
        self.dim, self.out_dim, self.edge_dim = dim, out_dim, edge_dim
        self.residual, self.eps = residual, float(eps)
        self.A = nn.Linear(dim, out_dim, bias=bias, **fk)
        self.B = nn.Linear(dim, out_dim, bias=bias, **fk)
        self.C = nn.Linear(edge_dim, out_dim, bias=bias, **fk)
        self.D = nn.Linear(dim, out_dim, bias=bias, **fk)
        self.E = nn.Linear(dim, out_dim, bias=bias, **fk)
        self.norm_h = nn.BatchNorm1d(out_dim, **fk) if batch_norm else None
        self.norm_e = nn.BatchNorm1d(out_dim, **fk) if batch_norm else None
        self.act = create_act(act)
        self.dropout = nn.Dropout(dropout)

    def reset_parameters(self) -> None:
        super().reset_parameters()
        for m in (self.A, self.B, self.C, self.D, self.E, self.norm_h, self.norm_e):
            if m is not None:
                m.reset_parameters()

    def forward(
        self,
        x: torch.Tensor,
        edge_index: torch.Tensor | None = None,
        edge_attr: torch.Tensor | None = None,
        *,
        adj: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        owner = type(self).__name__
        dense = _check_graph(owner, x, self.dim, edge_index, adj)
        if edge_attr is None:
            raise ValueError(f"{owner}: edge_attr is required (GatedGCN updates explicit edge features)")
        ct = _compute_dtype(x.dtype)
        ah, bh, dh, eh = (lin(x).to(ct) for lin in (self.A, self.B, self.D, self.E))
        if dense:
            assert adj is not None
            b, n = x.shape[:2]
            _check_edge_tensor(owner, "edge_attr (dense)", edge_attr, (b, n, n), self.edge_dim)
            if mask is not None and (mask.shape != (b, n) or mask.dtype != torch.bool):
                raise ValueError(
                    f"{owner}: mask must be a bool [B, N] = [{b}, {n}] tensor, got {tuple(mask.shape)} {mask.dtype}"
                )
            edges = adj != 0  # [B, j, i]
            e_hat = self.C(edge_attr).to(ct) + dh.unsqueeze(1) + eh.unsqueeze(2)  # [B, j, i, out]
            sig = torch.sigmoid(e_hat) * edges.unsqueeze(-1)
            den = sig.sum(dim=1)  # [B, i, out]
            eta = sig / (den.unsqueeze(1) + self.eps)
            record_gate(self, eta)
            h_hat = ah + (eta * bh.unsqueeze(2)).sum(dim=1)
            # BN / act / dropout over the real nodes and edges only (same statistics as sparse)
            nodes = mask if mask is not None else torch.ones(b, n, dtype=torch.bool, device=x.device)
            h_new = torch.zeros_like(h_hat)
            h_new[nodes] = self._post(h_hat[nodes], self.norm_h)
            e_new = torch.zeros_like(e_hat)
            e_new[edges] = self._post(e_hat[edges], self.norm_e)
            if self.residual:
                h_new = h_new + x.to(ct) * nodes.unsqueeze(-1)
                e_new = e_new + edge_attr.to(ct) * edges.unsqueeze(-1)
            return h_new.to(x.dtype), e_new.to(x.dtype)
        assert edge_index is not None
        if mask is not None:
            raise ValueError(f"{owner}: mask= is for the dense path (a sparse batch has no padding nodes)")
        _check_edge_tensor(owner, "edge_attr", edge_attr, (edge_index.shape[1],), self.edge_dim)
        e_hat = self.edge_updater(edge_index, dh=dh, eh=eh, ce=self.C(edge_attr).to(ct))
        sig = torch.sigmoid(e_hat)
        agg = self.propagate(edge_index, bh=bh, sig=sig)  # [N, 2 * out]: sum sig * Bh_j, sum sig
        num, den = agg.split(self.out_dim, dim=-1)
        record_gate(self, sig / (den.index_select(0, edge_index[1]) + self.eps))  # eta per edge
        h_hat = ah + num / (den + self.eps)
        h_new = self._post(h_hat, self.norm_h)
        e_new = self._post(e_hat, self.norm_e)
        if self.residual:
            h_new = h_new + x.to(ct)
            e_new = e_new + edge_attr.to(ct)
        return h_new.to(x.dtype), e_new.to(x.dtype)

    def _post(self, t: torch.Tensor, norm: nn.Module | None) -> torch.Tensor:
        if norm is not None:
            t = norm(t.to(norm.weight.dtype)).to(t.dtype)
        return self.dropout(self.act(t))

    def edge_update(self, dh_i: torch.Tensor, eh_j: torch.Tensor, ce: torch.Tensor) -> torch.Tensor:
        return ce + dh_i + eh_j

    def message(self, bh_j: torch.Tensor, sig: torch.Tensor) -> torch.Tensor:
        return torch.cat([sig * bh_j, sig], dim=-1)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.dim}, {self.out_dim}, edge_dim={self.edge_dim})"


class GatedGraphPropagation(MessagePassing):
    r"""Gated graph propagation: ``num_layers`` message-passing steps with a GRU update (GGNN).

    ::

        h^0    = [x, 0]                                    zero-padded to dim    [N, dim]
        m_j    = W_l h_j^l        (W_out[t_j] h_j^l with node types)
        a_i    = sum_{j -> i} w_ji m_j    (W_in[t_i] a_i + b with node types)
        h^l+1  = GRU(a, h^l)              update="gru":  z = sigmoid(W_z a + U_z h), r = sigmoid(W_r a + U_r h),
                                                         n = tanh(W_n a + b_n + r * (U_n h + b_hn)),
                                                         h' = (1 - z) * n + z * h
                 a + h^l                  update="add"
        h^l+1 += h^0                      residual=True (Fi-GNN)

    ``w_ji``: edge weights (sparse ``edge_weight`` ``[E]``; dense: the ``adj`` values). With
    ``num_node_types`` every node has a type ``t`` (Fi-GNN: its field) and the message and
    aggregate go through type-specific matrices (Fi-GNN's edge-wise transformation ``W_out``,
    ``W_in``, bias ``b``); without it, one ``W_l`` per step (PyG's ``GatedGraphConv``).

    Args:
        dim: state width (inputs narrower than ``dim`` are zero-padded, GGNN's ``h^0 = [x, 0]``).
        num_layers: propagation steps ``L``.
        num_node_types: number of node types ``T`` (``None``: untyped).
        share_weights: one set of step weights for every step (the GGNN paper, Fi-GNN's
            ``reuse_graph_layer``) instead of one per step (PyG's ``GatedGraphConv``).
        update: ``"gru"`` (GGNN) or ``"add"`` (``h' = a + h``, Fi-GNN without GRU).
        residual: add ``h^0`` after every step (Fi-GNN's residual connection).
        bias: the GRU biases and, with node types, the aggregate bias ``b``.

    Shapes: sparse ``x [N, <= dim]``, ``edge_index [2, E]`` (``edge_weight [E]``, ``node_type
    [N]`` with types) -> ``[N, dim]``; dense ``x [B, N, <= dim]``, ``adj [B, N, N]``
    (``node_type [N]``, default ``arange(N)`` when ``N == num_node_types``) -> ``[B, N, dim]``.
    The GRU gates are recorded as ``:update`` and ``:reset`` (``[N, dim]`` per step).

    Paper: Li, Tarlow, Brockschmidt, Zemel, "Gated Graph Sequence Neural Networks", ICLR 2016,
    Sec. 3 (the propagation model). Equal (outputs and gradients, copied weights) to
    ``torch_geometric.nn.GatedGraphConv`` (untyped, per-step weights, ``update="gru"``):
    ``messages[l].weight = weight[l].T``, ``gru_ih`` / ``gru_hh`` = the ``GRUCell``'s ``ih`` / ``hh``.

    Deviations: the paper's per-edge-type matrices ``A`` are per node type here (message by the
    source's type, aggregate by the target's, as Fi-GNN); the GRU is written out (two ``Linear``
    layers, PyTorch's gate order ``r, z, n``) so its gates can be recorded.
    """

    def __init__(
        self,
        dim: int,
        num_layers: int,
        *,
        num_node_types: int | None = None,
        share_weights: bool = False,
        update: Literal["gru", "add"] = "gru",
        residual: bool = False,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(aggr="add")
        owner = "GatedGraphPropagation"
        check_positive_int(owner, "dim", dim)
        check_positive_int(owner, "num_layers", num_layers)
        check_positive_int(owner, "num_node_types", num_node_types, allow_none=True)
        if update not in ("gru", "add"):
            raise ValueError(f"{owner}: update must be 'gru' or 'add', got {update!r}")
        fk = {"device": device, "dtype": dtype}
        self.dim, self.num_layers, self.num_node_types = dim, num_layers, num_node_types
        self.share_weights, self.update_kind, self.residual = share_weights, update, residual
        steps = 1 if share_weights else num_layers
        self.messages: nn.ModuleList | None = None
        if num_node_types is None:
            self.messages = nn.ModuleList(nn.Linear(dim, dim, bias=False, **fk) for _ in range(steps))
            self.register_parameter("weight_out", None)
            self.register_parameter("weight_in", None)
            self.register_parameter("bias_in", None)
        else:
            self.weight_out = nn.Parameter(torch.empty(steps, num_node_types, dim, dim, **fk))
            self.weight_in = nn.Parameter(torch.empty(steps, num_node_types, dim, dim, **fk))
            self.bias_in = nn.Parameter(torch.zeros(steps, dim, **fk)) if bias else None
        if update == "gru":
            self.gru_ih = nn.Linear(dim, 3 * dim, bias=bias, **fk)
            self.gru_hh = nn.Linear(dim, 3 * dim, bias=bias, **fk)
        else:
            self.gru_ih = self.gru_hh = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        if self.messages is not None:
            for m in self.messages:
                m.reset_parameters()
        else:
            with torch.no_grad():
                for w in (self.weight_out, self.weight_in):
                    for s in range(w.shape[0]):
                        nn.init.xavier_normal_(w[s])  # Fi-GNN (FuxiCTR): xavier_normal_ on [F, d, d]
                if self.bias_in is not None:
                    self.bias_in.zero_()
        if self.gru_ih is not None:
            bound = 1.0 / math.sqrt(self.dim)  # nn.GRUCell's init
            for p in (*self.gru_ih.parameters(), *self.gru_hh.parameters()):
                nn.init.uniform_(p, -bound, bound)

    def _node_types(
        self, node_type: torch.Tensor | None, n: int, dense: bool, device: torch.device
    ) -> torch.Tensor:
        owner = type(self).__name__
        t = self.num_node_types
        assert t is not None
        if node_type is None:
            if dense and n == t:
                return torch.arange(n, device=device)
            where = "dense input with N != num_node_types" if dense else "sparse input"
            raise ValueError(f"{owner}: node_type [N] is required for a {where} (N={n}, num_node_types={t})")
        if node_type.shape != (n,) or node_type.is_floating_point():
            raise ValueError(
                f"{owner}: node_type must be an integer [N={n}] tensor, got {tuple(node_type.shape)} {node_type.dtype}"
            )
        if node_type.numel() and (int(node_type.min()) < 0 or int(node_type.max()) >= t):
            raise ValueError(
                f"{owner}: node_type values must be in [0, {t - 1}], got [{int(node_type.min())}, {int(node_type.max())}]"
            )
        return node_type

    def forward(
        self,
        x: torch.Tensor,
        edge_index: torch.Tensor | None = None,
        edge_weight: torch.Tensor | None = None,
        *,
        adj: torch.Tensor | None = None,
        node_type: torch.Tensor | None = None,
    ) -> torch.Tensor:
        owner = type(self).__name__
        dense = _check_graph(owner, x, self.dim, edge_index, adj, allow_narrower=True)
        if node_type is not None and self.num_node_types is None:
            raise ValueError(f"{owner}: node_type given but num_node_types=None (untyped layer)")
        ct = _compute_dtype(x.dtype)
        if x.shape[-1] < self.dim:  # GGNN: h^0 = [x, 0]
            x = torch.cat([x, x.new_zeros(*x.shape[:-1], self.dim - x.shape[-1])], dim=-1)
        n = x.shape[-2]
        types = self._node_types(node_type, n, dense, x.device) if self.num_node_types is not None else None
        if dense:
            assert adj is not None
            if edge_weight is not None:
                raise ValueError(
                    f"{owner}: dense input: edge weights are the adj values (edge_weight= is sparse only)"
                )
            w_t = adj.to(ct).transpose(1, 2)  # [B, i, j]
        else:
            assert edge_index is not None
            if edge_weight is not None:
                _check_edge_tensor(owner, "edge_weight", edge_weight, (edge_index.shape[1],), None)
                edge_weight = edge_weight.to(ct)
        h0 = x
        h = x
        for step in range(self.num_layers):
            s = 0 if self.share_weights else step
            if types is None:
                assert self.messages is not None
                m = self.messages[s](h)
            else:
                m = torch.einsum("nde,...ne->...nd", self.weight_out[s][types], h)
            m = m.to(ct)
            if dense:
                a = torch.matmul(w_t, m)
            else:
                a = self.propagate(edge_index, x=m, edge_weight=edge_weight)
            a = a.to(x.dtype)
            if types is not None:
                a = torch.einsum("nde,...ne->...nd", self.weight_in[s][types], a)
                if self.bias_in is not None:
                    a = a + self.bias_in[s]
            h = self._gru(a, h) if self.update_kind == "gru" else a + h
            if self.residual:
                h = h + h0
        return h

    def _gru(self, a: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        assert self.gru_ih is not None and self.gru_hh is not None
        ct = _compute_dtype(h.dtype)
        gi = self.gru_ih(a).to(ct)
        gh = self.gru_hh(h).to(ct)
        i_r, i_z, i_n = gi.chunk(3, dim=-1)
        h_r, h_z, h_n = gh.chunk(3, dim=-1)
        r = torch.sigmoid(i_r + h_r)
        z = torch.sigmoid(i_z + h_z)
        record_gate(self, z, "update")
        record_gate(self, r, "reset")
        cand = torch.tanh(i_n + r * h_n)
        return ((1.0 - z) * cand + z * h.to(ct)).to(h.dtype)

    def message(self, x_j: torch.Tensor, edge_weight: torch.Tensor | None) -> torch.Tensor:
        return x_j if edge_weight is None else edge_weight.unsqueeze(-1) * x_j

    def __repr__(self) -> str:
        types = f", num_node_types={self.num_node_types}" if self.num_node_types is not None else ""
        return (
            f"{type(self).__name__}({self.dim}, num_layers={self.num_layers}{types}, update={self.update_kind!r})"
        )
