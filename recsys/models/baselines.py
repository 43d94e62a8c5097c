"""Baselines on the same pipeline and trainer: LR, DNN, DCNv2 and DeepFM (not gated), with
their configs and presets (BARS Frappe_x1)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from gatelab.core.config import ConfigError, Dropout, PositiveInt

from .layers import ActName, CTRConfig, CTRModel, MLPBlock, tiny_feature_spec

__all__ = [
    "DNN",
    "CrossNetV2",
    "DCNv2",
    "DCNv2Config",
    "DNNConfig",
    "DeepFM",
    "DeepFMConfig",
    "FactorizationMachine",
    "LogisticRegression",
    "LogisticRegressionConfig",
]


@dataclasses.dataclass(frozen=True, kw_only=True)
class LogisticRegressionConfig(CTRConfig):
    """Config of :class:`LogisticRegression`: :class:`~gatelab.recsys.models.CTRConfig`'s fields,
    with ``embedding_dim`` fixed to 1 (the per-value weights; field-wise sizes of the spec do
    not apply). Presets: ``frappe-x1`` (BARS ``LR_frappe_x1_001_ff730f43``: no model
    hyper-parameter besides the embedding regulariser, which is the recipe's)."""

    embedding_dim: Literal[1] = 1

    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {"frappe-x1": {}}


class LogisticRegression(CTRModel):
    r"""``y = b + sum_f w_f(x_f)``: a 1-dim embedding per feature value (``x_f * w_f`` for numeric
    fields), summed over fields. Returns logits ``[B]``.

    Paper: Richardson et al., "Predicting clicks", WWW 2007; FuxiCTR's ``LR`` /
    ``LogisticRegression`` block. Deviations: none.
    """

    config_class: ClassVar[type[LogisticRegressionConfig]] = LogisticRegressionConfig
    config: LogisticRegressionConfig
    scalar_embeddings: ClassVar[bool] = True

    def build_tower(self, factory_kwargs: dict[str, Any]) -> None:
        self.bias = nn.Parameter(torch.zeros(1, **factory_kwargs))

    def tower(
        self,
        e: torch.Tensor,
        categorical: torch.Tensor | None,
        numeric: torch.Tensor | None,
        sequence: torch.Tensor | None,
    ) -> torch.Tensor:
        return e.sum(dim=-1) + self.bias


@dataclasses.dataclass(frozen=True, kw_only=True)
class DNNConfig(CTRConfig):
    """Config of :class:`DNN` (and, with its own presets, :class:`DeepFM`'s).

    Attributes (besides :class:`~gatelab.recsys.models.CTRConfig`'s ``feature_spec``,
    ``embedding_dim`` (10), ``embedding_init_std``):
        hidden_dims: MLP hidden widths (FuxiCTR's ``hidden_units``).
        act: hidden activation name (FuxiCTR's ``hidden_activations``).
        dropout: dropout after each hidden layer (FuxiCTR's ``net_dropout``).
        batch_norm: ``BatchNorm1d`` after each hidden ``Linear``.

    Presets: ``frappe-x1``, BARS ``DNN_frappe_x1_001_ad0f0fce``.
    """

    hidden_dims: tuple[PositiveInt, ...] = (400, 400, 400)
    act: ActName = "relu"
    dropout: Dropout = 0.0
    batch_norm: bool = False

    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "frappe-x1": {"embedding_dim": 10, "hidden_dims": (400, 400, 400), "batch_norm": True, "dropout": 0.2},
    }

    def mlp(self) -> dict[str, Any]:
        """``MLPBlock`` keywords of the hidden layers."""
        return {"act": self.act, "dropout": self.dropout, "batch_norm": self.batch_norm}


class DNN(CTRModel):
    r"""``y = MLP(e)``: flat field embeddings through an MLP ending in ``Linear(., 1)``.

    Config: :class:`DNNConfig`.

    Paper: Covington et al., "Deep Neural Networks for YouTube Recommendations", RecSys 2016
    (BARS's DNN / YoutubeDNN); FuxiCTR ``model_zoo/DNN``. Deviations: none.
    """

    config_class: ClassVar[type[DNNConfig]] = DNNConfig
    config: DNNConfig

    def build_tower(self, factory_kwargs: dict[str, Any]) -> None:
        cfg = self.config
        self.mlp = MLPBlock(self.embedding.output_dim, cfg.hidden_dims, 1, **cfg.mlp(), **factory_kwargs)

    def tower(
        self,
        e: torch.Tensor,
        categorical: torch.Tensor | None,
        numeric: torch.Tensor | None,
        sequence: torch.Tensor | None,
    ) -> torch.Tensor:
        return self.mlp(e).squeeze(-1)


class CrossNetV2(nn.Module):
    r"""DCN-V2's cross network: ``x_{l+1} = x_0 * (W_l x_l + b_l) + x_l`` for ``l = 0..L-1``.

    Shapes ``[B, D]`` -> ``[B, D]``. Init as FuxiCTR (``CrossNetV2`` of ``nn.Linear`` layers
    re-initialised Xavier-normal, zero biases). Not a gate (no squashing).

    Paper: Wang et al., "DCN V2", WWW 2021, eq. (1). Deviations: none.
    """

    def __init__(
        self,
        dim: int,
        num_layers: int = 3,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"CrossNetV2: num_layers must be >= 1, got {num_layers}")
        self.layers = nn.ModuleList(
            nn.Linear(dim, dim, device=device, dtype=dtype) for _ in range(num_layers)
        )
        for layer in self.layers:
            nn.init.xavier_normal_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        x = x0
        for layer in self.layers:  # depth, not features
            x = x0 * layer(x) + x
        return x


@dataclasses.dataclass(frozen=True, kw_only=True)
class DCNv2Config(CTRConfig):
    """Config of :class:`DCNv2`.

    Attributes (besides :class:`~gatelab.recsys.models.CTRConfig`'s ``feature_spec``,
    ``embedding_dim`` (10), ``embedding_init_std``):
        structure: ``parallel``, ``stacked``, ``stacked_parallel`` or ``crossnet_only``
            (FuxiCTR's ``model_structure``).
        num_cross_layers: cross layers ``L`` (3).
        stacked_dnn_hidden_dims: widths of the DNN on the cross output (``stacked``,
            ``stacked_parallel``; else empty).
        parallel_dnn_hidden_dims: widths of the DNN beside the cross network (``parallel``,
            ``stacked_parallel``; else empty).
        act, dropout, batch_norm: both DNNs' hidden activation name, dropout (FuxiCTR's
            ``net_dropout``) and BatchNorm.

    Presets: ``frappe-x1``, BARS ``DCNv2_frappe_x1_007_c207b717``; ``criteo-x1`` and
    ``avazu-x1``, BARS ``DCNv2_criteo_x1_001_28c60688`` and ``DCNv2_avazu_x1_029_81904473``
    (parallel, full-rank cross layers: ``use_low_rank_mixture: false``).
    """

    structure: Literal["parallel", "stacked", "stacked_parallel", "crossnet_only"] = "parallel"
    num_cross_layers: PositiveInt = 3
    stacked_dnn_hidden_dims: tuple[PositiveInt, ...] = ()
    parallel_dnn_hidden_dims: tuple[PositiveInt, ...] = ()
    act: ActName = "relu"
    dropout: Dropout = 0.0
    batch_norm: bool = False

    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "frappe-x1": {
            "embedding_dim": 10,
            "structure": "parallel",
            "num_cross_layers": 4,
            "parallel_dnn_hidden_dims": (400, 400, 400),
            "batch_norm": True,
            "dropout": 0.4,
        },
        # BARS DCNv2_criteo_x1_001_28c60688 (FuxiCTR 1.1): 22,018,021 parameters there
        "criteo-x1": {
            "embedding_dim": 10,
            "structure": "parallel",
            "num_cross_layers": 3,
            "parallel_dnn_hidden_dims": (500, 500, 500),
            "batch_norm": False,
            "dropout": 0.1,
        },
        # BARS DCNv2_avazu_x1_029_81904473 (FuxiCTR 1.1): 13,641,311 parameters there
        "avazu-x1": {
            "embedding_dim": 10,
            "structure": "parallel",
            "num_cross_layers": 5,
            "parallel_dnn_hidden_dims": (400, 400, 400),
            "batch_norm": True,
            "dropout": 0.2,
        },
    }

    def check(self) -> None:
        name = type(self).__name__
        for part in ("stacked", "parallel"):
            dims = getattr(self, f"{part}_dnn_hidden_dims")
            used = part in self.structure.split("_")
            if used and not dims:
                raise ConfigError(f"{name}.{part}_dnn_hidden_dims=[]: structure={self.structure!r} needs it")
            if dims and not used:
                raise ConfigError(
                    f"{name}.{part}_dnn_hidden_dims={list(dims)}: unused with structure={self.structure!r}"
                )


class DCNv2(CTRModel):
    r"""DCN-V2: cross network and DNN, ``parallel`` (``w^T [x_L; DNN(e)]``), ``stacked``
    (``w^T DNN(x_L)``), ``stacked_parallel`` (``w^T [DNN_s(x_L); DNN_p(e)]``) or ``crossnet_only``
    (``w^T x_L``). Returns logits ``[B]``. Config: :class:`DCNv2Config`.

    Paper: Wang et al., WWW 2021; FuxiCTR ``model_zoo/DCNv2``.
    Deviations: the low-rank mixture-of-experts cross layer (``use_low_rank_mixture``) is not
    implemented.
    """

    config_class: ClassVar[type[DCNv2Config]] = DCNv2Config
    config: DCNv2Config

    def build_tower(self, factory_kwargs: dict[str, Any]) -> None:
        cfg = self.config
        dim = self.embedding.output_dim
        self.cross = CrossNetV2(dim, cfg.num_cross_layers, **factory_kwargs)
        mlp = dict(act=cfg.act, dropout=cfg.dropout, batch_norm=cfg.batch_norm, **factory_kwargs)
        self.stacked_dnn = self.parallel_dnn = None
        final = dim
        if cfg.stacked_dnn_hidden_dims:
            self.stacked_dnn = MLPBlock(dim, cfg.stacked_dnn_hidden_dims, **mlp)
            final = self.stacked_dnn.out_dim
        if cfg.parallel_dnn_hidden_dims:
            self.parallel_dnn = MLPBlock(dim, cfg.parallel_dnn_hidden_dims, **mlp)
            final += self.parallel_dnn.out_dim
        self.fc = nn.Linear(final, 1, **factory_kwargs)
        nn.init.xavier_normal_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    def tower(
        self,
        e: torch.Tensor,
        categorical: torch.Tensor | None,
        numeric: torch.Tensor | None,
        sequence: torch.Tensor | None,
    ) -> torch.Tensor:
        x = self.cross(e)
        if self.stacked_dnn is not None:
            x = self.stacked_dnn(x)
        if self.parallel_dnn is not None:
            x = torch.cat([x, self.parallel_dnn(e)], dim=-1)
        return self.fc(x).squeeze(-1)


class FactorizationMachine(nn.Module):
    r"""Second-order FM term ``sum_{i<j} <e_i, e_j> = 1/2 sum_k [(sum_i e_ik)^2 - sum_i e_ik^2]``.

    Shapes ``[B, F, d]`` -> ``[B]``. Paper: Rendle, ICDM 2010. Not a gate.
    """

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        return 0.5 * (e.sum(dim=1).square() - e.square().sum(dim=1)).sum(dim=-1)


@dataclasses.dataclass(frozen=True, kw_only=True)
class DeepFMConfig(DNNConfig):
    """Config of :class:`DeepFM`: :class:`DNNConfig`'s fields (the deep part); every field must
    have the same embedding size (the FM's inner products). Presets: ``frappe-x1``, BARS
    ``DeepFM_frappe_x1_001_4ae3a56e``."""

    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "frappe-x1": {"embedding_dim": 10, "hidden_dims": (400, 400, 400), "batch_norm": True, "dropout": 0.2},
    }

    def check(self) -> None:
        super().check()
        dims = self.field_dims()
        if len(set(dims)) > 1:
            sizes = dict(zip(self.spec().names, dims))
            raise ConfigError(
                f"{type(self).__name__}.feature_spec: the FM needs one embedding size for all fields, got {sizes}"
            )


class DeepFM(CTRModel):
    r"""DeepFM: ``y = b + sum_f w_f(x_f) + FM(e) + MLP(e)`` (first-order LR weights in their own
    1-dim embedding, FM and MLP sharing the field embeddings). Returns logits ``[B]``.
    Config: :class:`DeepFMConfig` (equal embedding sizes).

    Paper: Guo et al., IJCAI 2017; FuxiCTR ``model_zoo/DeepFM``. Deviations: none.
    """

    config_class: ClassVar[type[DeepFMConfig]] = DeepFMConfig
    config: DeepFMConfig

    def build_tower(self, factory_kwargs: dict[str, Any]) -> None:
        cfg = self.config
        self.lr = LogisticRegression(
            feature_spec=cfg.feature_spec, embedding_init_std=cfg.embedding_init_std, **factory_kwargs
        )
        self.fm = FactorizationMachine()
        self.mlp = MLPBlock(self.embedding.output_dim, cfg.hidden_dims, 1, **cfg.mlp(), **factory_kwargs)

    def tower(
        self,
        flat: torch.Tensor,
        categorical: torch.Tensor | None,
        numeric: torch.Tensor | None,
        sequence: torch.Tensor | None,
    ) -> torch.Tensor:
        e = flat.unflatten(1, (len(self.embedding.dims), self.embedding.dims[0]))
        return self.lr(categorical, numeric, sequence) + self.fm(e) + self.mlp(flat).squeeze(-1)


#: registry ``tiny`` configs (the generic model tests build them with ``create_model``)
_TINY = tiny_feature_spec()
_TINY_LR = dict(feature_spec=_TINY)
_TINY_DNN = dict(feature_spec=_TINY, embedding_dim=4, hidden_dims=[8, 8], batch_norm=True, dropout=0.1)
_TINY_DCNV2 = dict(feature_spec=_TINY, embedding_dim=4, num_cross_layers=2, parallel_dnn_hidden_dims=[8], batch_norm=True)
_TINY_DEEPFM = dict(feature_spec=_TINY, embedding_dim=4, hidden_dims=[8])
