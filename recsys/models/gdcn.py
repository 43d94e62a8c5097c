"""GDCN: gated deep cross network (Wang et al., CIKM 2023), GDCN-P / GDCN-S, and field-level
dimension optimisation (FDO)."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from gatelab.core import GatedCrossNetwork, capture_gates
from gatelab.core.config import ConfigError, Dropout, NonNegativeInt, PositiveInt
from gatelab.core.layers.fusion import is_plain
from gatelab.recsys.data.spec import as_feature_spec

from .layers import ActName, CTRConfig, CTRModel, FieldEmbedding, MLPBlock, tiny_feature_spec

__all__ = [
    "GCN",
    "GDCN",
    "GDCNP",
    "GDCNS",
    "GCNConfig",
    "GDCNConfig",
    "GDCNPConfig",
    "GDCNSConfig",
    "fdo_embedding_dims",
]

#: GDCN's structures: GDCN-P, GDCN-S, and the cross network alone (GCN)
Structure = Literal["parallel", "stacked", "crossnet_only"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class GDCNConfig(CTRConfig):
    """Config of :class:`GDCN`.

    Attributes (besides :class:`~gatelab.recsys.models.CTRConfig`'s ``feature_spec`` -- field-wise
    ``embedding_dim`` supported, FDO's output -- ``embedding_dim`` (16, the paper) and
    ``embedding_init_std``):
        structure: ``parallel`` (GDCN-P), ``stacked`` (GDCN-S) or ``crossnet_only`` (GCN);
            FuxiCTR's separate ``GDCNP`` / ``GDCNS`` classes.
        num_cross_layers: gated cross layers ``L`` (3).
        dnn_hidden_dims: DNN widths (FuxiCTR's ``dnn_hidden_units``; the paper 400-400-400):
            required for ``parallel`` / ``stacked``, empty for ``crossnet_only``.
        act, dropout, batch_norm: the DNN's hidden activation (a name), dropout after each
            hidden layer (FuxiCTR's ``net_dropout``) and BatchNorm; the cross layers have none.

    Presets: ``frappe-x1``, the GDCN paper's Frappe setting (code ``anonctr/GDCN``: embedding
    16, DNN 400-400-400 with BatchNorm and dropout 0.5, 3 gated cross layers); the training
    protocol (BARS's) is the recipe's. ``criteo-x1`` and ``avazu-x1``: the same setting (the
    paper uses one setting for all its datasets; BARS has no GDCN run on the x1 splits).
    """

    embedding_dim: PositiveInt = 16
    structure: Structure = "parallel"
    num_cross_layers: NonNegativeInt = 3
    dnn_hidden_dims: tuple[PositiveInt, ...] = (400, 400, 400)
    act: ActName = "relu"
    dropout: Dropout = 0.0
    batch_norm: bool = False

    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "frappe-x1": {
            "embedding_dim": 16,
            "num_cross_layers": 3,
            "dnn_hidden_dims": (400, 400, 400),
            "batch_norm": True,
            "dropout": 0.5,
        },
        # no BARS GDCN run on Criteo_x1 / Avazu_x1: the paper's one setting (anonctr/GDCN
        # train_base.py: embedding 16, 3 gated cross layers, DNN 400-400-400), as frappe-x1
        "criteo-x1": {
            "embedding_dim": 16,
            "num_cross_layers": 3,
            "dnn_hidden_dims": (400, 400, 400),
            "batch_norm": True,
            "dropout": 0.5,
        },
        "avazu-x1": {
            "embedding_dim": 16,
            "num_cross_layers": 3,
            "dnn_hidden_dims": (400, 400, 400),
            "batch_norm": True,
            "dropout": 0.5,
        },
    }

    def check(self) -> None:
        name = type(self).__name__
        if self.structure == "crossnet_only" and self.dnn_hidden_dims:
            raise ConfigError(
                f"{name}.dnn_hidden_dims={list(self.dnn_hidden_dims)}: unused with structure='crossnet_only' "
                "(give dnn_hidden_dims=[])"
            )
        if self.structure != "crossnet_only" and not self.dnn_hidden_dims:
            raise ConfigError(f"{name}.dnn_hidden_dims=[]: structure={self.structure!r} needs a DNN")


@dataclasses.dataclass(frozen=True, kw_only=True)
class GDCNPConfig(GDCNConfig):
    """:class:`GDCNConfig` of GDCN-P (registry ``gdcn-p``): ``structure`` is ``parallel``."""

    structure: Literal["parallel"] = "parallel"


@dataclasses.dataclass(frozen=True, kw_only=True)
class GDCNSConfig(GDCNConfig):
    """:class:`GDCNConfig` of GDCN-S (registry ``gdcn-s``): ``structure`` is ``stacked``."""

    structure: Literal["stacked"] = "stacked"


@dataclasses.dataclass(frozen=True, kw_only=True)
class GCNConfig(GDCNConfig):
    """:class:`GDCNConfig` of GCN (registry ``gcn``): ``structure`` is ``crossnet_only``, no DNN
    (no published preset)."""

    structure: Literal["crossnet_only"] = "crossnet_only"
    dnn_hidden_dims: tuple[PositiveInt, ...] = ()

    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {}


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

    Config: :class:`GDCNConfig`; the registered variants are the subclasses :class:`GDCNP`
    (``gdcn-p``), :class:`GDCNS` (``gdcn-s``) and :class:`GCN` (``gcn``), whose configs fix
    ``structure``.

    Shapes: keyword inputs ``categorical``, ``numeric``, ``sequence`` -> ``[B]``.

    Paper: Wang et al., CIKM 2023, eqs. (1)-(4); official code ``anonctr/GDCN``
    (``models/GDCN.py``) and ``reczoo/FuxiCTR`` ``model_zoo/GDCN``, whose initialisation is used
    (Xavier-normal weights, ``b_c ~ U(0, 1)``, N(0, 1e-4^2) embeddings).

    Speed (issue 17): GDCN-P's output layer ``w^T [c_L; DNN(e)] + b`` runs as two ``addmv``
    (no ``[B, D + H]`` concatenation; equal within float rounding, as the gradients, tested
    against the formula in float64); the cross layers use the fused CPU step of
    :func:`gatelab.core.gated_cross.fused_gated_cross`.

    Deviations: none in the network (the paper's code initialises embeddings Xavier-uniform;
    FuxiCTR's normal(1e-4) is used here, like every model in this package).
    """

    config_class: ClassVar[type[GDCNConfig]] = GDCNConfig
    config: GDCNConfig

    def build_tower(self, factory_kwargs: dict[str, Any]) -> None:
        cfg = self.config
        dim = self.embedding.output_dim
        self.cross = GatedCrossNetwork(dim, cfg.num_cross_layers, **factory_kwargs)
        units = list(cfg.dnn_hidden_dims)
        mlp = dict(act=cfg.act, dropout=cfg.dropout, batch_norm=cfg.batch_norm, **factory_kwargs)
        self.dnn: MLPBlock | None = None
        self.fc: nn.Linear | None = None
        if cfg.structure == "parallel":
            self.dnn = MLPBlock(dim, units, **mlp)
            self.fc = nn.Linear(dim + units[-1], 1, **factory_kwargs)
        elif cfg.structure == "stacked":
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
        structure = self.config.structure
        if structure == "parallel":
            assert self.dnn is not None and self.fc is not None
            h = self.dnn(e)
            if is_plain(self.fc, nn.Linear) and c.dim() == 2:
                # w^T [c; h] + b as two matrix-vector products: no [B, D + H] concatenation, and
                # the backward's outer products write contiguous gradients of c and h
                w = self.fc.weight[0]
                d = c.shape[-1]
                return torch.addmv(torch.addmv(self.fc.bias, c, w[:d]), h, w[d:])
            y = self.fc(torch.cat([c, h], dim=-1))
        elif structure == "stacked":
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


class GDCNP(GDCN):
    """GDCN-P (``gdcn-p``): the gated cross network in parallel with a DNN. Config: :class:`GDCNPConfig`."""

    config_class: ClassVar[type[GDCNConfig]] = GDCNPConfig


class GDCNS(GDCN):
    """GDCN-S (``gdcn-s``): the gated cross network stacked under a DNN. Config: :class:`GDCNSConfig`."""

    config_class: ClassVar[type[GDCNConfig]] = GDCNSConfig


class GCN(GDCN):
    """GCN (``gcn``): the gated cross network alone with a linear output. Config: :class:`GCNConfig`."""

    config_class: ClassVar[type[GDCNConfig]] = GCNConfig


#: registry ``tiny`` configs (the generic model tests build them with ``create_model``)
_TINY = dict(
    feature_spec=tiny_feature_spec(),
    embedding_dim=4,
    num_cross_layers=2,
    dnn_hidden_dims=[8, 8],
    batch_norm=True,
    dropout=0.1,
)
_TINY_GCN = dict(feature_spec=tiny_feature_spec(), embedding_dim=4, num_cross_layers=2)
