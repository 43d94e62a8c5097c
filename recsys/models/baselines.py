"""Baselines on the same pipeline and trainer: LR, DNN, DCNv2 and DeepFM (not gated)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from gatelab.core.config import Dropout, NonNegativeFloat, NonNegativeInt, PositiveInt
from gatelab.core.layers.activations import ActLike
from gatelab.recsys.data.spec import FeatureSpec, as_feature_spec

from .layers import CTRModel, MLPBlock, example_inputs, tiny_feature_spec

__all__ = ["DNN", "CrossNetV2", "DCNv2", "DeepFM", "FactorizationMachine", "LogisticRegression"]


def _example(model: nn.Module, batch: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
    return (), example_inputs(model.feature_spec, batch)


class LogisticRegression(CTRModel):
    r"""``y = b + sum_f w_f(x_f)``: a 1-dim embedding per feature value (``x_f * w_f`` for numeric
    fields), summed over fields. Returns logits ``[B]``.

    Paper: Richardson et al., "Predicting clicks", WWW 2007; FuxiCTR's ``LR`` /
    ``LogisticRegression`` block. Deviations: none.
    """

    def __init__(
        self,
        feature_spec: FeatureSpec | Mapping[str, Any],
        embedding_init_std: NonNegativeFloat = 1e-4,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(
            feature_spec, 1, embedding_init_std=embedding_init_std, scalar=True, device=device, dtype=dtype
        )
        self.bias = nn.Parameter(torch.zeros(1, device=device, dtype=dtype))

    def tower(
        self,
        e: torch.Tensor,
        categorical: torch.Tensor | None,
        numeric: torch.Tensor | None,
        sequence: torch.Tensor | None,
    ) -> torch.Tensor:
        return e.sum(dim=-1) + self.bias


class DNN(CTRModel):
    r"""``y = MLP(e)``: flat field embeddings through an MLP ending in ``Linear(., 1)``.

    Args: ``feature_spec``, ``embedding_dim`` (10), ``hidden_units``, ``activation`` (ReLU),
    ``net_dropout``, ``batch_norm``, ``embedding_init_std``.

    Paper: Covington et al., "Deep Neural Networks for YouTube Recommendations", RecSys 2016
    (BARS's DNN / YoutubeDNN); FuxiCTR ``model_zoo/DNN``. Deviations: none.
    """

    def __init__(
        self,
        feature_spec: FeatureSpec | Mapping[str, Any],
        embedding_dim: PositiveInt = 10,
        hidden_units: Sequence[PositiveInt] = (400, 400, 400),
        activation: ActLike = "relu",
        net_dropout: Dropout = 0.0,
        batch_norm: bool = False,
        embedding_init_std: NonNegativeFloat = 1e-4,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(
            feature_spec, embedding_dim, embedding_init_std=embedding_init_std, device=device, dtype=dtype
        )
        self.mlp = MLPBlock(
            self.embedding.output_dim,
            list(hidden_units),
            1,
            act=activation,
            dropout=net_dropout,
            batch_norm=batch_norm,
            device=device,
            dtype=dtype,
        )

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


class DCNv2(CTRModel):
    r"""DCN-V2: cross network and DNN, ``parallel`` (``w^T [x_L; DNN(e)]``), ``stacked``
    (``w^T DNN(x_L)``), ``stacked_parallel`` (``w^T [DNN_s(x_L); DNN_p(e)]``) or ``crossnet_only``
    (``w^T x_L``). Returns logits ``[B]``.

    Args: ``feature_spec``, ``embedding_dim`` (10), ``model_structure`` (``parallel``),
    ``num_cross_layers`` (3), ``stacked_dnn_hidden_units``, ``parallel_dnn_hidden_units``,
    ``dnn_activation``, ``net_dropout``, ``batch_norm``, ``embedding_init_std``.

    Paper: Wang et al., WWW 2021; FuxiCTR ``model_zoo/DCNv2``.
    Deviations: the low-rank mixture-of-experts cross layer (``use_low_rank_mixture``) is not
    implemented.
    """

    STRUCTURES = ("parallel", "stacked", "stacked_parallel", "crossnet_only")

    def __init__(
        self,
        feature_spec: FeatureSpec | Mapping[str, Any],
        embedding_dim: PositiveInt = 10,
        model_structure: str = "parallel",
        num_cross_layers: NonNegativeInt = 3,
        stacked_dnn_hidden_units: Sequence[PositiveInt] = (),
        parallel_dnn_hidden_units: Sequence[PositiveInt] = (),
        dnn_activation: ActLike = "relu",
        net_dropout: Dropout = 0.0,
        batch_norm: bool = False,
        embedding_init_std: NonNegativeFloat = 1e-4,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        fk = {"device": device, "dtype": dtype}
        if model_structure not in self.STRUCTURES:
            raise ValueError(
                f"DCNv2: model_structure={model_structure!r} is not one of {', '.join(self.STRUCTURES)}"
            )
        super().__init__(feature_spec, embedding_dim, embedding_init_std=embedding_init_std, **fk)
        self.structure = model_structure
        dim = self.embedding.output_dim
        self.cross = CrossNetV2(dim, num_cross_layers, **fk)
        mlp = dict(act=dnn_activation, dropout=net_dropout, batch_norm=batch_norm, **fk)
        self.stacked_dnn = self.parallel_dnn = None
        final = dim
        if model_structure in ("stacked", "stacked_parallel"):
            if not stacked_dnn_hidden_units:
                raise ValueError(f"DCNv2: model_structure={model_structure!r} needs stacked_dnn_hidden_units")
            self.stacked_dnn = MLPBlock(dim, list(stacked_dnn_hidden_units), **mlp)
            final = self.stacked_dnn.out_features
        if model_structure in ("parallel", "stacked_parallel"):
            if not parallel_dnn_hidden_units:
                raise ValueError(
                    f"DCNv2: model_structure={model_structure!r} needs parallel_dnn_hidden_units"
                )
            self.parallel_dnn = MLPBlock(dim, list(parallel_dnn_hidden_units), **mlp)
            final = (final if model_structure == "stacked_parallel" else dim) + self.parallel_dnn.out_features
        self.fc = nn.Linear(final, 1, **fk)
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


class DeepFM(CTRModel):
    r"""DeepFM: ``y = b + sum_f w_f(x_f) + FM(e) + MLP(e)`` (first-order LR weights in their own
    1-dim embedding, FM and MLP sharing the field embeddings). Returns logits ``[B]``.

    Args: ``feature_spec`` (equal embedding sizes), ``embedding_dim`` (10), ``hidden_units``,
    ``activation``, ``net_dropout``, ``batch_norm``, ``embedding_init_std``.

    Paper: Guo et al., IJCAI 2017; FuxiCTR ``model_zoo/DeepFM``. Deviations: none.
    """

    def __init__(
        self,
        feature_spec: FeatureSpec | Mapping[str, Any],
        embedding_dim: PositiveInt = 10,
        hidden_units: Sequence[PositiveInt] = (400, 400, 400),
        activation: ActLike = "relu",
        net_dropout: Dropout = 0.0,
        batch_norm: bool = False,
        embedding_init_std: NonNegativeFloat = 1e-4,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        fk = {"device": device, "dtype": dtype}
        spec = as_feature_spec(feature_spec)
        super().__init__(spec, embedding_dim, embedding_init_std=embedding_init_std, **fk)
        if not self.embedding.equal_dims:
            raise ValueError("DeepFM: the FM needs equal embedding sizes for all fields")
        self.lr = LogisticRegression(spec, embedding_init_std=embedding_init_std, **fk)
        self.fm = FactorizationMachine()
        self.mlp = MLPBlock(
            self.embedding.output_dim,
            list(hidden_units),
            1,
            act=activation,
            dropout=net_dropout,
            batch_norm=batch_norm,
            **fk,
        )

    def tower(
        self,
        flat: torch.Tensor,
        categorical: torch.Tensor | None,
        numeric: torch.Tensor | None,
        sequence: torch.Tensor | None,
    ) -> torch.Tensor:
        e = flat.unflatten(1, (len(self.embedding.dims), self.embedding.dims[0]))
        return self.lr(categorical, numeric, sequence) + self.fm(e) + self.mlp(flat).squeeze(-1)


_TINY = tiny_feature_spec()


_TINY_LR = dict(feature_spec=_TINY)


def lr(**cfg: Any) -> LogisticRegression:
    """Logistic regression on one-hot features (baseline, no gates)."""
    return LogisticRegression(**cfg)


_TINY_DNN = dict(feature_spec=_TINY, embedding_dim=4, hidden_units=[8, 8], batch_norm=True, net_dropout=0.1)


def dnn(**cfg: Any) -> DNN:
    """DNN: embeddings + MLP (baseline, no gates)."""
    return DNN(**cfg)


_TINY_DCNV2 = dict(
        feature_spec=_TINY,
        embedding_dim=4,
        num_cross_layers=2,
        parallel_dnn_hidden_units=[8],
        batch_norm=True,
    )


def dcnv2(**cfg: Any) -> DCNv2:
    """DCN-V2: cross network v2 + DNN (baseline, no gates)."""
    return DCNv2(**cfg)


_TINY_DEEPFM = dict(feature_spec=_TINY, embedding_dim=4, hidden_units=[8])


def deepfm(**cfg: Any) -> DeepFM:
    """DeepFM: LR + FM + DNN (baseline, no gates)."""
    return DeepFM(**cfg)
