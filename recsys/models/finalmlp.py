"""FinalMLP and its ablation DualMLP (Mao et al., AAAI 2023), with their configs and presets."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

import torch

from gatelab.core import BilinearFusion, FeatureGate
from gatelab.core.config import ConfigError, Dropout, PositiveInt

from .layers import ActName, CTRConfig, CTRModel, FieldEmbedding, MLPBlock, tiny_feature_spec

__all__ = ["DualMLP", "DualMLPConfig", "FinalMLP", "FinalMLPConfig", "TwoStreamConfig"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class TwoStreamConfig(CTRConfig):
    """The two MLP streams ``k = 1, 2`` on the flat field embeddings that FinalMLP and DualMLP share.

    Attributes (besides :class:`~gatelab.recsys.models.CTRConfig`'s ``feature_spec``,
    ``embedding_dim`` (10, BARS), ``embedding_init_std``):
        mlp1_hidden_dims, mlp2_hidden_dims: hidden widths of the two streams (FuxiCTR's
            ``mlp{k}_hidden_units``).
        mlp1_act, mlp2_act: their hidden activations (names; FuxiCTR's ``mlp{k}_hidden_activations``).
        mlp1_dropout, mlp2_dropout: dropout after each hidden layer.
        mlp1_batch_norm, mlp2_batch_norm: ``BatchNorm1d`` after each hidden ``Linear``.
    """

    mlp1_hidden_dims: tuple[PositiveInt, ...] = (64, 64, 64)
    mlp1_act: ActName = "relu"
    mlp1_dropout: Dropout = 0.0
    mlp1_batch_norm: bool = False
    mlp2_hidden_dims: tuple[PositiveInt, ...] = (64, 64, 64)
    mlp2_act: ActName = "relu"
    mlp2_dropout: Dropout = 0.0
    mlp2_batch_norm: bool = False

    def stream(self, k: int) -> dict[str, Any]:
        """``MLPBlock`` keywords of stream ``k`` (1 or 2)."""
        return {
            "act": getattr(self, f"mlp{k}_act"),
            "dropout": getattr(self, f"mlp{k}_dropout"),
            "batch_norm": getattr(self, f"mlp{k}_batch_norm"),
        }


@dataclasses.dataclass(frozen=True, kw_only=True)
class DualMLPConfig(TwoStreamConfig):
    """Config of :class:`DualMLP`: :class:`TwoStreamConfig`'s fields (a stream may have no
    hidden layer: then it is one ``Linear(D, 1)``).

    Presets: ``frappe-x1``, RecZoo's ``DualMLP_frappe_x1_008_27a1726a`` (972,992 parameters with
    the Frappe_x1 vocabularies, as its log).
    """

    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "frappe-x1": {
            "embedding_dim": 10,
            "mlp1_hidden_dims": (400, 400, 400),
            "mlp1_dropout": 0.2,
            "mlp1_batch_norm": True,
            "mlp2_hidden_dims": (500, 500, 500),
            "mlp2_dropout": 0.3,
            "mlp2_batch_norm": True,
        },
    }


@dataclasses.dataclass(frozen=True, kw_only=True)
class FinalMLPConfig(TwoStreamConfig):
    """Config of :class:`FinalMLP`: :class:`TwoStreamConfig`'s streams, plus

    Attributes:
        use_fs: stream-specific feature gating on (off: both streams see ``e``).
        fs_hidden_dims: hidden widths of each gate's MLP (FuxiCTR's ``fs_hidden_units``).
        fs1_context, fs2_context: names of the spec fields whose embeddings are the two gates'
            contexts (``()``: a learned context vector); only with ``use_fs``.
        num_heads: heads of the bilinear fusion; the last widths of both streams must be
            divisible by it.

    Rules (:meth:`check`): both streams have at least one hidden layer (the fusion reads their
    last widths), the context fields exist in ``feature_spec``, activations are known names.

    Presets: ``frappe-x1``, BARS's ``FinalMLP_frappe_x1_004_e1ab402f`` (253,391 parameters with
    the Frappe_x1 vocabularies: FuxiCTR's 253,392 less its second fusion bias); ``criteo-x1``
    (``FinalMLP_criteo_x1_004_d5d36917``: contexts I1-I13 and C6, 200 heads) and ``avazu-x1``
    (``FinalMLP_avazu_x1_018_488deefd``: learned contexts, 10 heads), BARS's Criteo_x1 /
    Avazu_x1 runs (each FuxiCTR's parameter count less one with the BARS vocabularies).
    """

    use_fs: bool = True
    fs_hidden_dims: tuple[PositiveInt, ...] = (64,)
    fs1_context: tuple[str, ...] = ()
    fs2_context: tuple[str, ...] = ()
    num_heads: PositiveInt = 1

    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "frappe-x1": {
            "embedding_dim": 10,
            "mlp1_hidden_dims": (400,),
            "mlp1_dropout": 0.4,
            "mlp1_batch_norm": True,
            "mlp2_hidden_dims": (100,),
            "mlp2_dropout": 0.4,
            "mlp2_batch_norm": True,
            "use_fs": True,
            "fs_hidden_dims": (400,),
            "fs1_context": ("user",),
            "fs2_context": ("item",),
            "num_heads": 5,
        },
        # BARS FinalMLP_criteo_x1_004_d5d36917 (FuxiCTR 2.0.1): 22,478,162 parameters there
        "criteo-x1": {
            "embedding_dim": 10,
            "mlp1_hidden_dims": (400, 400, 400),
            "mlp1_dropout": 0.2,
            "mlp1_batch_norm": True,
            "mlp2_hidden_dims": (1000,),
            "mlp2_dropout": 0.3,
            "mlp2_batch_norm": True,
            "use_fs": True,
            "fs_hidden_dims": (800,),
            "fs1_context": ("I1", "I2", "I3", "I4", "I5", "I6", "I7", "I8", "I9", "I10", "I11", "I12", "I13"),
            "fs2_context": ("C6",),
            "num_heads": 200,
        },
        # BARS FinalMLP_avazu_x1_018_488deefd (FuxiCTR 2.0.1): 13,979,472 parameters there
        "avazu-x1": {
            "embedding_dim": 10,
            "mlp1_hidden_dims": (400, 400, 400),
            "mlp1_dropout": 0.3,
            "mlp1_batch_norm": True,
            "mlp2_hidden_dims": (800,),
            "mlp2_dropout": 0.3,
            "mlp2_batch_norm": True,
            "use_fs": True,
            "fs_hidden_dims": (800,),
            "fs1_context": (),
            "fs2_context": (),
            "num_heads": 10,
        },
    }

    def check(self) -> None:
        super().check()
        name = type(self).__name__
        for k in (1, 2):
            dims = getattr(self, f"mlp{k}_hidden_dims")
            if not dims:
                raise ConfigError(f"{name}.mlp{k}_hidden_dims=(): the fusion needs at least one hidden layer")
            if dims[-1] % self.num_heads:
                raise ConfigError(
                    f"{name}.mlp{k}_hidden_dims={list(dims)}: the last width {dims[-1]} must be divisible "
                    f"by num_heads={self.num_heads}"
                )
        fields = self.spec().names
        for k in (1, 2):
            ctx = getattr(self, f"fs{k}_context")
            if ctx and not self.use_fs:
                raise ConfigError(f"{name}.fs{k}_context={list(ctx)}: unused with use_fs=false")
            unknown = [c for c in ctx if c not in fields]
            if unknown:
                raise ConfigError(
                    f"{name}.fs{k}_context={list(ctx)}: {unknown} not in feature_spec; fields: {', '.join(fields)}"
                )


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

    Config: :class:`FinalMLPConfig` (``FinalMLP(config)``, ``FinalMLP(**fields)`` or
    ``create_model("finalmlp", preset="frappe-x1", feature_spec=...)``).

    Shapes: keyword inputs ``categorical [B, F_cat]``, ``numeric [B, F_num]``,
    ``sequence [B, F_seq, L]`` (those the spec has) -> ``[B]``.

    Paper: Mao et al., AAAI 2023, eqs. (1)-(5); official code ``reczoo/FuxiCTR``
    ``model_zoo/FinalMLP`` (FeatureSelection, InteractionAggregation), whose initialisation is
    used (Xavier-normal Linear weights, zero biases, N(0, 1e-4^2) embeddings).

    Deviations: the fusion has one bias instead of FuxiCTR's two (same function); with a
    learned context the gate MLP runs once per batch instead of once per row (same values).
    """

    config_class: ClassVar[type[FinalMLPConfig]] = FinalMLPConfig
    config: FinalMLPConfig

    def build_tower(self, factory_kwargs: dict[str, Any]) -> None:
        cfg = self.config
        dim = self.embedding.output_dim
        self.mlp1 = MLPBlock(dim, cfg.mlp1_hidden_dims, **cfg.stream(1), **factory_kwargs)
        self.mlp2 = MLPBlock(dim, cfg.mlp2_hidden_dims, **cfg.stream(2), **factory_kwargs)
        self.ctx1: FieldEmbedding | None = None
        self.ctx2: FieldEmbedding | None = None
        if cfg.use_fs:
            gates = []
            for k, ctx in ((1, cfg.fs1_context), (2, cfg.fs2_context)):
                if ctx:
                    emb = FieldEmbedding(
                        cfg.spec(), cfg.embedding_dim, fields=ctx, init_std=cfg.embedding_init_std, **factory_kwargs
                    )
                    setattr(self, f"ctx{k}", emb)
                    gates.append(FeatureGate(dim, emb.output_dim, list(cfg.fs_hidden_dims), **factory_kwargs))
                else:  # FuxiCTR: a learnable [embedding_dim] context, zero at start
                    gates.append(
                        FeatureGate(
                            dim, cfg.embedding_dim, list(cfg.fs_hidden_dims), learned_context=True, **factory_kwargs
                        )
                    )
            self.gate1, self.gate2 = gates
        u1, u2 = cfg.mlp1_hidden_dims[-1], cfg.mlp2_hidden_dims[-1]
        self.fusion = BilinearFusion(u1, u2, 1, num_heads=cfg.num_heads, **factory_kwargs)

    def tower(
        self,
        e: torch.Tensor,
        categorical: torch.Tensor | None,
        numeric: torch.Tensor | None,
        sequence: torch.Tensor | None,
    ) -> torch.Tensor:
        if self.config.use_fs:
            c1 = self.ctx1(categorical, numeric, sequence) if self.ctx1 is not None else None
            c2 = self.ctx2(categorical, numeric, sequence) if self.ctx2 is not None else None
            h1, h2 = self.gate1(e, c1), self.gate2(e, c2)
        else:
            h1 = h2 = e
        return self.fusion(self.mlp1(h1), self.mlp2(h2)).squeeze(-1)


class DualMLP(CTRModel):
    r"""DualMLP: two independent MLP streams whose scalar outputs are summed (FinalMLP's ablation).

    ``y = MLP_1(e) + MLP_2(e)`` with each ``MLP_k`` ending in ``Linear(., 1)``; ``e`` the flat field
    embeddings. Returns the logit ``[B]``. Config: :class:`DualMLPConfig`.

    Paper: Mao et al., AAAI 2023, Sec. "DualMLP"; official code ``model_zoo/FinalMLP/src/DualMLP.py``.
    Deviations: none.
    """

    config_class: ClassVar[type[DualMLPConfig]] = DualMLPConfig
    config: DualMLPConfig

    def build_tower(self, factory_kwargs: dict[str, Any]) -> None:
        cfg = self.config
        dim = self.embedding.output_dim
        self.mlp1 = MLPBlock(dim, cfg.mlp1_hidden_dims, 1, **cfg.stream(1), **factory_kwargs)
        self.mlp2 = MLPBlock(dim, cfg.mlp2_hidden_dims, 1, **cfg.stream(2), **factory_kwargs)

    def tower(
        self,
        e: torch.Tensor,
        categorical: torch.Tensor | None,
        numeric: torch.Tensor | None,
        sequence: torch.Tensor | None,
    ) -> torch.Tensor:
        return (self.mlp1(e) + self.mlp2(e)).squeeze(-1)


#: registry ``tiny`` configs (the generic model tests build them with ``create_model``)
_TINY_FINALMLP = dict(
    feature_spec=tiny_feature_spec(),
    embedding_dim=4,
    mlp1_hidden_dims=[8],
    mlp2_hidden_dims=[6],
    mlp1_batch_norm=True,
    mlp1_dropout=0.1,
    fs_hidden_dims=[8],
    fs1_context=["user"],
    num_heads=2,
)
_TINY_DUALMLP = dict(
    feature_spec=tiny_feature_spec(),
    embedding_dim=4,
    mlp1_hidden_dims=[8],
    mlp2_hidden_dims=[6, 6],
    mlp2_batch_norm=True,
)
