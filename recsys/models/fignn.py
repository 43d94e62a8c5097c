r"""Fi-GNN: feature interaction graph neural network (Li et al., CIKM 2019), with its config."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from gatelab.core import GatedGraphPropagation, record_gate
from gatelab.core.config import ConfigError, PositiveInt

from .layers import CTRConfig, CTRModel, tiny_feature_spec

__all__ = ["FiGNN", "FiGNNConfig", "FieldSelfAttention"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class FiGNNConfig(CTRConfig):
    """Config of :class:`FiGNN`.

    Attributes (besides :class:`~gatelab.recsys.models.CTRConfig`'s ``feature_spec``,
    ``embedding_dim`` (10, BARS) and ``embedding_init_std``):
        num_layers: graph propagation steps ``T`` (FuxiCTR's ``gnn_layers``).
        update: node-state update, ``"gru"`` (the paper's GRU) or ``"add"`` (``h' = a + h``;
            FuxiCTR's ``use_gru=False``, the BARS Frappe_x1 setting).
        residual: add the initial node states ``h^1`` after every step (``use_residual``).
        share_weights: one set of ``W_out``, ``W_in``, ``b`` for every step
            (``reuse_graph_layer``); otherwise one per step.
        self_attention: the paper's multi-head self-attention over the field embeddings
            (Sec. 4.2) before the graph; FuxiCTR's code and the BARS runs have none (off).
        num_heads: heads of that self-attention (``embedding_dim`` must be divisible by it).
        graph: ``"dense"`` (batched ``[B, F, F]`` adjacency, the default) or ``"sparse"`` (the
            same complete graphs as one PyG batch: ``edge_index`` over ``B * F`` nodes). Same
            function; dense is faster for these small complete graphs.

    Rules (:meth:`check`): every field has the same embedding size (the field graph's node
    states share one width), at least two fields, ``num_heads`` divides ``embedding_dim``.

    Presets: ``frappe-x1``, BARS's ``FiGNN_frappe_x1_003_57243619`` (reczoo/BARS
    ``ranking/ctr/FiGNN/FiGNN_frappe_x1/FiGNN_frappe_x1_tuner_config_04`` + its log:
    embedding 10, 17 layers, no GRU, residual, separate layer weights; embedding regulariser
    0.001, test AUC 0.976115, logloss 0.203715 with FuxiCTR 1.1.0).
    """

    num_layers: PositiveInt = 3
    update: Literal["gru", "add"] = "gru"
    residual: bool = True
    share_weights: bool = False
    self_attention: bool = False
    num_heads: PositiveInt = 2
    graph: Literal["dense", "sparse"] = "dense"

    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "frappe-x1": {
            "embedding_dim": 10,
            "num_layers": 17,
            "update": "add",
            "residual": True,
            "share_weights": False,
        },
    }

    def check(self) -> None:
        super().check()
        name = type(self).__name__
        dims = self.field_dims()
        if len(dims) < 2:
            raise ConfigError(
                f"{name}.feature_spec: Fi-GNN needs at least 2 fields (graph nodes), got {len(dims)}"
            )
        if len(set(dims)) != 1:
            fields = {f.name: d for f, d in zip(self.spec().fields, dims)}
            raise ConfigError(
                f"{name}.feature_spec: every field must have the same embedding size (the graph's node "
                f"states share one width), got {fields}"
            )
        if self.self_attention and dims[0] % self.num_heads:
            raise ConfigError(
                f"{name}.num_heads={self.num_heads}: must divide the embedding size {dims[0]} (self_attention=true)"
            )


class FieldSelfAttention(nn.Module):
    r"""Multi-head self-attention over the field embeddings (Fi-GNN's first layer, Sec. 4.2).

    ::

        head_k = softmax(Q_k K_k^T / sqrt(d_k)) V_k,  Q_k = E W_k^Q, K_k = E W_k^K, V_k = E W_k^V
        H^1    = ReLU([head_1, ..., head_H])                      [B, F, dim]

    with ``d_k = dim / num_heads`` and no biases. Shapes: ``[B, F, dim]`` -> ``[B, F, dim]``.
    The attention weights are recorded as ``:attention`` (``[B, H, F, F]``).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"FieldSelfAttention: num_heads={num_heads} must divide dim={dim}")
        fk = {"device": device, "dtype": dtype}
        self.dim, self.num_heads = dim, num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False, **fk)

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        b, f, d = e.shape
        q, k, v = self.qkv(e).view(b, f, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        att = torch.softmax((q @ k.transpose(-1, -2)) / math.sqrt(d // self.num_heads), dim=-1)
        record_gate(self, att, "attention")
        return torch.relu((att @ v).transpose(1, 2).reshape(b, f, d))


class FiGNN(CTRModel):
    r"""Fi-GNN: the fields are the nodes of a complete graph; gated graph propagation models their interactions.

    ::

        H^1     = [e_1, ..., e_F]  (or FieldSelfAttention(E))            node states [B, F, d]
        A_ij    = softmax_{j != i} LeakyReLU(w^T [h_i^1 || h_j^1]),  A_ii = 0   edge weights j -> i
        a_i^t   = W_in[i] sum_j A_ij W_out[j] h_j^{t-1} + b           (GatedGraphPropagation, node types = fields)
        h_i^t   = GRU(a_i^t, h_i^{t-1}) or a_i^t + h_i^{t-1},  then + h_i^1 (residual)
        y       = sum_i sigmoid(W_2 vec(H^T))_i * (w_1^T h_i^T)       attentional scoring, logit [B]

    The propagation is :class:`gatelab.core.GatedGraphPropagation` with one node type per field
    (Fi-GNN's field-specific ``W_out``, ``W_in``). The graph is dense by default: every sample
    is a complete graph on ``F`` fields (``F (F - 1)`` edges), so a batched ``[B, F, F]``
    adjacency and ``einsum`` / ``matmul`` do the work of a PyG batch without building
    ``edge_index`` (``graph="sparse"`` builds that PyG batch -- ``B * F`` nodes, edge weights
    ``A`` -- and gives the same outputs, tested). Returns the logit ``[B]``.

    Gates recorded with :func:`gatelab.core.record_gate`: the edge weights ``A`` (``:edges``,
    ``[B, F, F]``, row ``i`` = the weights of the edges into field ``i``) and the scoring
    weights (``:scoring``, ``[B, F]``); the GRU gates (``propagation:update`` / ``:reset``)
    with ``update="gru"``.

    Config: :class:`FiGNNConfig` (``create_model("fignn", preset="frappe-x1", feature_spec=...)``).

    Paper: Li, Cui, Wu, Zhang, Wang, "Fi-GNN: Modeling Feature Interactions via Graph Neural
    Networks for CTR Prediction", CIKM 2019 (arXiv:1910.05552), Sec. 4. Reference code
    ``reczoo/FuxiCTR`` ``model_zoo/FiGNN/src/FiGNN.py`` (FiGNN_Layer, GraphLayer,
    AttentionalPrediction), whose initialisation is used (Xavier-normal ``W_out``, ``W_in``
    and Linear weights, zero bias, GRU as ``nn.GRUCell``, ``N(0, 1e-4^2)`` embeddings). Equal
    predictions to FuxiCTR's ``FiGNN`` with copied weights (``tests/recsys/models/test_fignn.py``).

    Deviations: the edge-attention ``w^T [h_i || h_j]`` is computed as ``w_1^T h_i + w_2^T h_j``
    (one ``[B, F]`` projection per side instead of FuxiCTR's ``[B, F^2, 2d]`` concatenation;
    same values); the self-attention layer is optional and off in the preset, as in FuxiCTR
    and BARS.
    """

    config_class: ClassVar[type[FiGNNConfig]] = FiGNNConfig
    config: FiGNNConfig

    def build_tower(self, factory_kwargs: dict[str, Any]) -> None:
        cfg = self.config
        self.num_fields = f = len(cfg.spec().fields)
        self.dim = d = cfg.field_dims()[0]
        self.attention = (
            FieldSelfAttention(d, cfg.num_heads, **factory_kwargs) if cfg.self_attention else None
        )
        self.edge_attention = nn.Linear(2 * d, 1, bias=False, **factory_kwargs)  # FuxiCTR's W_attn
        self.propagation = GatedGraphPropagation(
            d,
            cfg.num_layers,
            num_node_types=f,
            share_weights=cfg.share_weights,
            update=cfg.update,
            residual=cfg.residual,
            **factory_kwargs,
        )
        self.score = nn.Linear(d, 1, bias=False, **factory_kwargs)  # FuxiCTR's fc.mlp1
        self.score_weight = nn.Linear(f * d, f, bias=False, **factory_kwargs)  # fc.mlp2 (+ sigmoid)
        self.register_buffer(
            "self_loops", torch.eye(f, dtype=torch.bool, device=factory_kwargs["device"]), persistent=False
        )
        for m in (self.edge_attention, self.score, self.score_weight):
            nn.init.xavier_normal_(m.weight)
        if self.attention is not None:
            nn.init.xavier_normal_(self.attention.qkv.weight)

    def edge_weights(self, h: torch.Tensor) -> torch.Tensor:
        """The attentional adjacency ``A`` ``[B, F, F]`` from node states ``h`` ``[B, F, d]``:
        ``A[b, i, j]`` is the weight of the edge ``j -> i`` (softmax over ``j != i``)."""
        w = self.edge_attention.weight  # [1, 2d]: [w_dst | w_src]
        d = self.dim
        logits = (h @ w[0, :d]).unsqueeze(-1) + (h @ w[0, d:]).unsqueeze(-2)  # [B, i, j]
        logits = F.leaky_relu(logits, 0.01).masked_fill(self.self_loops, float("-inf"))
        return torch.softmax(logits, dim=-1)

    def tower(
        self,
        e: torch.Tensor,
        categorical: torch.Tensor | None,
        numeric: torch.Tensor | None,
        sequence: torch.Tensor | None,
    ) -> torch.Tensor:
        b, f, d = e.shape[0], self.num_fields, self.dim
        h1 = e.view(b, f, d)
        if self.attention is not None:
            h1 = self.attention(h1)
        a = self.edge_weights(h1)
        record_gate(self, a, "edges")
        if self.config.graph == "dense":
            h = self.propagation(h1, adj=a.transpose(1, 2))  # adj[b, j, i] = A[b, i, j]
        else:
            h = self._sparse_propagation(h1, a)
        score = self.score(h).squeeze(-1)  # [B, F]
        weight = torch.sigmoid(self.score_weight(h.flatten(1)))  # [B, F]
        record_gate(self, weight, "scoring")
        return (weight * score).sum(dim=1)

    def _sparse_propagation(self, h1: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """The propagation on a PyG batch: ``B`` complete graphs without self-loops, ``B * F`` nodes."""
        b, f, d = h1.shape
        off = ~self.self_loops
        dst, src = off.nonzero(as_tuple=True)  # edge src -> dst, weight A[dst, src]
        base = (torch.arange(b, device=h1.device) * f).view(-1, 1)
        edge_index = torch.stack([(base + src).reshape(-1), (base + dst).reshape(-1)])
        edge_weight = a[:, dst, src].reshape(-1)
        node_type = torch.arange(f, device=h1.device).repeat(b)
        h = self.propagation(h1.reshape(b * f, d), edge_index, edge_weight, node_type=node_type)
        return h.view(b, f, d)


#: registry ``tiny`` config (the generic model tests build it with ``create_model``)
_TINY = dict(feature_spec=tiny_feature_spec(), embedding_dim=4, num_layers=2, update="gru")
