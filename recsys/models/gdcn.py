"""GDCN: gated deep cross network (Wang et al., CIKM 2023), GDCN-P / GDCN-S, and field-level
dimension optimisation (FDO)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from gatelab.core import GatedCrossNetwork, capture_gates
from gatelab.core.config import Dropout, NonNegativeFloat, NonNegativeInt, PositiveInt
from gatelab.core.layers.activations import ActLike
from gatelab.recsys.data.spec import FeatureSpec, as_feature_spec

from .layers import CTRModel, FieldEmbedding, MLPBlock, example_inputs, tiny_feature_spec

__all__ = ["GDCN", "fdo_embedding_dims"]

STRUCTURES = ("parallel", "stacked", "crossnet_only")


class GDCN(CTRModel):
    r"""Gated deep cross network.

    ::

        c_0     = e = [e_1; ...; e_F]                                    [B, D]
        c_{l+1} = c_0 * (W_c^l c_l + b_c^l) * sigmoid(W_g^l c_l) + c_l,  l = 0..L-1   (GCN)
        parallel (GDCN-P): y = w^T [c_L; DNN(e)] + b
        stacked  (GDCN-S): y = DNN_out(c_L)             (DNN ending in Linear(., 1))
        crossnet_only (GCN): y = w^T c_L + b

    The gated cross layers are :class:`gatelab.core.GatedCrossNetwork`; each layer's information
    gate ``sigmoid(W_g^l c_l)`` is recorded (``capture_gates``), and :meth:`gate_importance`
    averages it per field and layer: the paper's interpretation of which fields matter at
    which crossing order (layer ``l`` builds order ``l + 2`` interactions). Returns logits ``[B]``.

    Args:
        feature_spec: the data's :class:`~gatelab.recsys.data.FeatureSpec` (field-wise
            ``embedding_dim`` supported -- FDO's output).
        embedding_dim: default field embedding size (16 in the paper).
        structure: ``parallel``, ``stacked`` or ``crossnet_only``.
        num_cross_layers: ``L`` (3).
        dnn_hidden_units: DNN widths (the paper: 400-400-400; required unless crossnet_only).
        dnn_activation, net_dropout, batch_norm: the DNN's activation, dropout, BatchNorm.
        embedding_init_std: embedding initialisation std (1e-4, FuxiCTR).

    Shapes: keyword inputs ``categorical``, ``numeric``, ``sequence`` -> ``[B]``.

    Paper: Wang et al., CIKM 2023, eqs. (1)-(4); official code ``anonctr/GDCN``
    (``models/GDCN.py``) and ``reczoo/FuxiCTR`` ``model_zoo/GDCN``, whose initialisation is used
    (Xavier-normal weights, ``b_c ~ U(0, 1)``, N(0, 1e-4^2) embeddings).

    Deviations: none in the network (the paper's code initialises embeddings Xavier-uniform;
    FuxiCTR's normal(1e-4) is used here, like every model in this package).
    """

    def __init__(
        self,
        feature_spec: FeatureSpec | Mapping[str, Any],
        embedding_dim: PositiveInt = 16,
        structure: str = "parallel",
        num_cross_layers: NonNegativeInt = 3,
        dnn_hidden_units: Sequence[PositiveInt] = (400, 400, 400),
        dnn_activation: ActLike = "relu",
        net_dropout: Dropout = 0.0,
        batch_norm: bool = False,
        embedding_init_std: NonNegativeFloat = 1e-4,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        factory_kwargs = {"device": device, "dtype": dtype}
        if structure not in STRUCTURES:
            raise ValueError(f"GDCN: structure={structure!r} is not one of {', '.join(STRUCTURES)}")
        super().__init__(feature_spec, embedding_dim, embedding_init_std=embedding_init_std, **factory_kwargs)
        self.structure = structure
        dim = self.embedding.output_dim
        self.cross = GatedCrossNetwork(dim, num_cross_layers, **factory_kwargs)
        units = list(dnn_hidden_units)
        if structure != "crossnet_only" and not units:
            raise ValueError(f"GDCN: structure={structure!r} needs dnn_hidden_units (got [])")
        mlp = dict(act=dnn_activation, dropout=net_dropout, batch_norm=batch_norm, **factory_kwargs)
        self.dnn: MLPBlock | None = None
        self.fc: nn.Linear | None = None
        if structure == "parallel":
            self.dnn = MLPBlock(dim, units, **mlp)
            self.fc = nn.Linear(dim + units[-1], 1, **factory_kwargs)
        elif structure == "stacked":
            self.dnn = MLPBlock(dim, units, 1, **mlp)
        else:
            self.fc = nn.Linear(dim, 1, **factory_kwargs)
        if self.fc is not None:
            nn.init.xavier_normal_(self.fc.weight)
            nn.init.zeros_(self.fc.bias)

    def tower(
        self,
        e: torch.Tensor,
        categorical: torch.Tensor | None,
        numeric: torch.Tensor | None,
        sequence: torch.Tensor | None,
    ) -> torch.Tensor:
        c = self.cross(e)
        if self.structure == "parallel":
            assert self.dnn is not None and self.fc is not None
            y = self.fc(torch.cat([c, self.dnn(e)], dim=-1))
        elif self.structure == "stacked":
            assert self.dnn is not None
            y = self.dnn(c)
        else:
            assert self.fc is not None
            y = self.fc(c)
        return y.squeeze(-1)

    @torch.no_grad()
    def gate_importance(self, **inputs: torch.Tensor) -> torch.Tensor:
        """Mean information-gate value per cross layer and field, ``[L, F]`` (fields in spec order).

        Runs a forward pass in eval mode on ``inputs`` (a batch of model inputs), captures each
        gated cross layer's gate ``[B, D]`` and averages it over the batch and over each field's
        embedding columns. Larger = the field's crossed features pass more at that order.
        """
        was_training = self.training
        self.eval()
        try:
            with capture_gates(self.cross) as gates:
                self(**inputs)
        finally:
            self.train(was_training)
        dims = self.embedding.dims
        bounds = torch.tensor([0, *dims]).cumsum(0).tolist()
        rows = []
        for layer in range(len(self.cross.layers)):
            g = gates[f"layers.{layer}"].float().mean(dim=0)  # [D]
            rows.append(torch.stack([g[a:b].mean() for a, b in itertools.pairwise(bounds)]))
        return torch.stack(rows)


def fdo_embedding_dims(model: nn.Module, ratio: float = 0.8, *, min_dim: int = 1) -> dict[str, int]:
    """Field-level dimension optimisation (GDCN's FDO): per field, the number of principal
    components of its trained embedding table needed to explain more than ``ratio`` of the
    variance (scikit-learn ``PCA(n_components=ratio)`` semantics: the smallest ``k`` whose
    cumulative explained-variance ratio exceeds ``ratio``), at least ``min_dim``.

    ``model`` is any model with a :class:`FieldEmbedding` ``embedding`` (train it first with a
    fixed size, e.g. 16). Numeric fields keep their size. Feed the result to
    ``FeatureSpec.with_embedding_dims`` and retrain (the paper's two-step procedure; its code,
    ``utils/FieldDimOpt.py``, runs PCA on each field's rows of the table).
    """
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"fdo_embedding_dims: ratio must be in (0, 1), got {ratio!r}")
    emb = getattr(model, "embedding", None)
    if not isinstance(emb, FieldEmbedding):
        raise TypeError("fdo_embedding_dims: model has no FieldEmbedding 'embedding'")
    spec = as_feature_spec(model.feature_spec)
    dims: dict[str, int] = {}
    for name, d in zip(emb.field_names, emb.dims):
        if spec[name].type == "numeric":
            dims[name] = d
            continue
        table = emb.field_table(name).detach().double()[1:]  # without the padding row
        if table.shape[0] < 2:
            dims[name] = max(min_dim, 1)
            continue
        centered = table - table.mean(dim=0, keepdim=True)
        s = torch.linalg.svdvals(centered)
        var = s.square()
        total = var.sum()
        if total <= 0:
            dims[name] = max(min_dim, 1)
            continue
        cum = torch.cumsum(var / total, dim=0)
        k = int(torch.searchsorted(cum, torch.tensor([ratio], dtype=cum.dtype), right=True).item()) + 1
        dims[name] = max(min_dim, min(k, d))
    return dims


def _example(model: nn.Module, batch: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
    return (), example_inputs(model.feature_spec, batch)


_TINY = dict(
    feature_spec=tiny_feature_spec(),
    embedding_dim=4,
    num_cross_layers=2,
    dnn_hidden_units=[8, 8],
    batch_norm=True,
    net_dropout=0.1,
)


def gdcn_p(**cfg: Any) -> GDCN:
    """GDCN-P: gated cross network in parallel with a DNN."""
    return GDCN(structure="parallel", **cfg)


def gdcn_s(**cfg: Any) -> GDCN:
    """GDCN-S: gated cross network stacked under a DNN."""
    return GDCN(structure="stacked", **cfg)


_TINY_GCN = dict(feature_spec=tiny_feature_spec(), embedding_dim=4, num_cross_layers=2, dnn_hidden_units=[])


def gcn(**cfg: Any) -> GDCN:
    """GCN: the gated cross network alone with a linear output (GDCN's cross-only variant)."""
    return GDCN(structure="crossnet_only", **cfg)
