"""FinalMLP and its ablation DualMLP (Mao et al., AAAI 2023)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from gatelab.core import BilinearFusion, FeatureGate
from gatelab.core.config import Dropout, NonNegativeFloat, PositiveInt
from gatelab.core.layers.activations import ActLike
from gatelab.recsys.data.spec import FeatureSpec, as_feature_spec

from .layers import CTRModel, FieldEmbedding, MLPBlock, example_inputs, tiny_feature_spec

__all__ = ["DualMLP", "FinalMLP"]



def _units(name: str, units: Sequence[int]) -> list[int]:
    units = list(units)
    if not units:
        raise ValueError(f"{name} must list at least one hidden layer, got {units}")
    return units


class FinalMLP(CTRModel):
    r"""FinalMLP: two MLP streams with stream-specific feature gating and multi-head bilinear fusion.

    ::

        e   = [e_1; ...; e_F]                                  flat field embeddings  [B, D]
        h_k = e * 2 sigmoid(MLP_gk(c_k))                       FeatureGate, k = 1, 2  [B, D]
        o_k = MLP_k(h_k)                                       the two streams        [B, d_k]
        y   = b + w_1^T o_1 + w_2^T o_2 + sum_j o_1j^T W_j o_2j   BilinearFusion, heads j  [B]

    ``c_k`` is the concatenated embedding of the stream's context fields (``fs1_context``,
    ``fs2_context``; FinalMLP's user/item contexts), looked up in separate context tables as in
    the official code, or a learnable vector when the list is empty (a static feature
    weighting). Returns the logit ``y`` ``[B]`` (the task applies the sigmoid).

    Args:
        feature_spec: the data's :class:`~gatelab.recsys.data.FeatureSpec` (or ``model_dict()``).
        embedding_dim: default field embedding size (10 in BARS).
        mlp1_hidden_units, mlp2_hidden_units: the two streams' hidden widths.
        mlp1_activation, mlp2_activation: hidden activations (ReLU).
        mlp1_dropout, mlp2_dropout: dropout after each hidden layer.
        mlp1_batch_norm, mlp2_batch_norm: BatchNorm after each hidden Linear.
        use_fs: feature gating on (off: both streams see ``e``).
        fs_hidden_units: hidden widths of each gate's MLP.
        fs1_context, fs2_context: context fields of the two gates (``[]``: learned context).
        num_heads: heads ``k`` of the bilinear fusion (both streams' widths divisible by it).
        embedding_init_std: std of the embedding initialisation (1e-4, FuxiCTR).

    Shapes: keyword inputs ``categorical [B, F_cat]``, ``numeric [B, F_num]``,
    ``sequence [B, F_seq, L]`` (those the spec has) -> ``[B]``.

    Paper: Mao et al., AAAI 2023, eqs. (1)-(5); official code ``reczoo/FuxiCTR``
    ``model_zoo/FinalMLP`` (FeatureSelection, InteractionAggregation), whose initialisation is
    used (Xavier-normal Linear weights, zero biases, N(0, 1e-4^2) embeddings).

    Deviations: the fusion has one bias instead of FuxiCTR's two (same function); with a
    learned context the gate MLP runs once per batch instead of once per row (same values).
    """

    def __init__(
        self,
        feature_spec: FeatureSpec | Mapping[str, Any],
        embedding_dim: PositiveInt = 10,
        mlp1_hidden_units: Sequence[PositiveInt] = (64, 64, 64),
        mlp1_activation: ActLike = "relu",
        mlp1_dropout: Dropout = 0.0,
        mlp1_batch_norm: bool = False,
        mlp2_hidden_units: Sequence[PositiveInt] = (64, 64, 64),
        mlp2_activation: ActLike = "relu",
        mlp2_dropout: Dropout = 0.0,
        mlp2_batch_norm: bool = False,
        use_fs: bool = True,
        fs_hidden_units: Sequence[PositiveInt] = (64,),
        fs1_context: Sequence[str] = (),
        fs2_context: Sequence[str] = (),
        num_heads: PositiveInt = 1,
        embedding_init_std: NonNegativeFloat = 1e-4,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        factory_kwargs = {"device": device, "dtype": dtype}
        spec = as_feature_spec(feature_spec)
        super().__init__(spec, embedding_dim, embedding_init_std=embedding_init_std, **factory_kwargs)
        dim = self.embedding.output_dim
        u1 = _units("FinalMLP: mlp1_hidden_units", mlp1_hidden_units)
        u2 = _units("FinalMLP: mlp2_hidden_units", mlp2_hidden_units)
        self.mlp1 = MLPBlock(
            dim, u1, act=mlp1_activation, dropout=mlp1_dropout, batch_norm=mlp1_batch_norm, **factory_kwargs
        )
        self.mlp2 = MLPBlock(
            dim, u2, act=mlp2_activation, dropout=mlp2_dropout, batch_norm=mlp2_batch_norm, **factory_kwargs
        )
        self.use_fs = bool(use_fs)
        self.fs1_context, self.fs2_context = list(fs1_context), list(fs2_context)
        self.ctx1 = self.ctx2 = None
        if self.use_fs:
            gates = []
            for k, ctx in ((1, self.fs1_context), (2, self.fs2_context)):
                if ctx:
                    emb = FieldEmbedding(
                        spec, embedding_dim, fields=ctx, init_std=embedding_init_std, **factory_kwargs
                    )
                    setattr(self, f"ctx{k}", emb)
                    gates.append(FeatureGate(dim, emb.output_dim, list(fs_hidden_units), **factory_kwargs))
                else:  # FuxiCTR: a learnable [embedding_dim] context, zero at start
                    gates.append(
                        FeatureGate(
                            dim, embedding_dim, list(fs_hidden_units), learned_context=True, **factory_kwargs
                        )
                    )
            self.gate1, self.gate2 = gates
        self.fusion = BilinearFusion(u1[-1], u2[-1], 1, num_heads=num_heads, **factory_kwargs)

    def tower(
        self,
        e: torch.Tensor,
        categorical: torch.Tensor | None,
        numeric: torch.Tensor | None,
        sequence: torch.Tensor | None,
    ) -> torch.Tensor:
        if self.use_fs:
            c1 = self.ctx1(categorical, numeric, sequence) if self.ctx1 is not None else None
            c2 = self.ctx2(categorical, numeric, sequence) if self.ctx2 is not None else None
            h1, h2 = self.gate1(e, c1), self.gate2(e, c2)
        else:
            h1 = h2 = e
        return self.fusion(self.mlp1(h1), self.mlp2(h2)).squeeze(-1)


class DualMLP(CTRModel):
    r"""DualMLP: two independent MLP streams whose scalar outputs are summed (FinalMLP's ablation).

    ``y = MLP_1(e) + MLP_2(e)`` with each ``MLP_k`` ending in ``Linear(., 1)``; ``e`` the flat field
    embeddings. Returns the logit ``[B]``.

    Args: ``feature_spec``, ``embedding_dim``, ``mlp{1,2}_hidden_units``,
    ``mlp{1,2}_activation``, ``mlp{1,2}_dropout``, ``mlp{1,2}_batch_norm``,
    ``embedding_init_std`` as in :class:`FinalMLP`.

    Paper: Mao et al., AAAI 2023, Sec. "DualMLP"; official code ``model_zoo/FinalMLP/src/DualMLP.py``.
    Deviations: none.
    """

    def __init__(
        self,
        feature_spec: FeatureSpec | Mapping[str, Any],
        embedding_dim: PositiveInt = 10,
        mlp1_hidden_units: Sequence[PositiveInt] = (64, 64, 64),
        mlp1_activation: ActLike = "relu",
        mlp1_dropout: Dropout = 0.0,
        mlp1_batch_norm: bool = False,
        mlp2_hidden_units: Sequence[PositiveInt] = (64, 64, 64),
        mlp2_activation: ActLike = "relu",
        mlp2_dropout: Dropout = 0.0,
        mlp2_batch_norm: bool = False,
        embedding_init_std: NonNegativeFloat = 1e-4,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        factory_kwargs = {"device": device, "dtype": dtype}
        super().__init__(feature_spec, embedding_dim, embedding_init_std=embedding_init_std, **factory_kwargs)
        dim = self.embedding.output_dim
        self.mlp1 = MLPBlock(
            dim,
            list(mlp1_hidden_units),
            1,
            act=mlp1_activation,
            dropout=mlp1_dropout,
            batch_norm=mlp1_batch_norm,
            **factory_kwargs,
        )
        self.mlp2 = MLPBlock(
            dim,
            list(mlp2_hidden_units),
            1,
            act=mlp2_activation,
            dropout=mlp2_dropout,
            batch_norm=mlp2_batch_norm,
            **factory_kwargs,
        )

    def tower(
        self,
        e: torch.Tensor,
        categorical: torch.Tensor | None,
        numeric: torch.Tensor | None,
        sequence: torch.Tensor | None,
    ) -> torch.Tensor:
        return (self.mlp1(e) + self.mlp2(e)).squeeze(-1)


def _example(model: nn.Module, batch: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
    return (), example_inputs(model.feature_spec, batch)


_TINY_FINALMLP = dict(
        feature_spec=tiny_feature_spec(),
        embedding_dim=4,
        mlp1_hidden_units=[8],
        mlp2_hidden_units=[6],
        mlp1_batch_norm=True,
        mlp1_dropout=0.1,
        fs_hidden_units=[8],
        fs1_context=["user"],
        num_heads=2,
    )


def finalmlp(**cfg: Any) -> FinalMLP:
    """FinalMLP: two MLP streams, per-stream feature gating, multi-head bilinear fusion."""
    return FinalMLP(**cfg)


_TINY_DUALMLP = dict(
        feature_spec=tiny_feature_spec(),
        embedding_dim=4,
        mlp1_hidden_units=[8],
        mlp2_hidden_units=[6, 6],
        mlp2_batch_norm=True,
    )


def dualmlp(**cfg: Any) -> DualMLP:
    """DualMLP: FinalMLP's ablation, two MLP streams summed (baseline, no gates)."""
    return DualMLP(**cfg)
