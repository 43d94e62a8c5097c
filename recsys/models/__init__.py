"""Models of gatelab.recsys (registered in :mod:`gatelab.recsys.registry`).

Gated: ``finalmlp`` (FeatureGate + BilinearFusion), ``gdcn-p`` / ``gdcn-s`` / ``gcn``
(GatedCrossNetwork), ``fignn`` (GatedGraphPropagation on the field graph). Baselines on the same pipeline: ``dualmlp``, ``lr``, ``dnn``, ``dcnv2``,
``deepfm``. Every model is a :class:`~gatelab.recsys.models.CTRModel` (config -> feature spec ->
field embeddings -> tower) built from a frozen ``<Model>Config`` (a
:class:`~gatelab.recsys.models.CTRConfig`: ``feature_spec``, ``embedding_dim``, ... and the
model's own fields, with named presets such as ``frappe-x1``), takes the keyword inputs
``categorical`` / ``numeric`` / ``sequence``, and returns logits ``[B]``.

Names are exported lazily (PEP 562): importing one model imports only its own module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gatelab.core.layers.lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "CrossNetV2": "baselines",
    "DCNv2": "baselines",
    "DCNv2Config": "baselines",
    "DNN": "baselines",
    "DNNConfig": "baselines",
    "DeepFM": "baselines",
    "DeepFMConfig": "baselines",
    "FactorizationMachine": "baselines",
    "LogisticRegression": "baselines",
    "LogisticRegressionConfig": "baselines",
    "DualMLP": "finalmlp",
    "DualMLPConfig": "finalmlp",
    "FinalMLP": "finalmlp",
    "FinalMLPConfig": "finalmlp",
    "FiGNN": "fignn",
    "FiGNNConfig": "fignn",
    "FieldSelfAttention": "fignn",
    "TwoStreamConfig": "finalmlp",
    "GCN": "gdcn",
    "GCNConfig": "gdcn",
    "GDCN": "gdcn",
    "GDCNConfig": "gdcn",
    "GDCNP": "gdcn",
    "GDCNPConfig": "gdcn",
    "GDCNS": "gdcn",
    "GDCNSConfig": "gdcn",
    "fdo_embedding_dims": "gdcn",
    "CTRConfig": "layers",
    "CTRModel": "layers",
    "FieldEmbedding": "layers",
    "MLPBlock": "layers",
    "ActName": "layers",
    "example_inputs": "layers",
    "model_param_groups": "layers",
    "tiny_feature_spec": "layers",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from .baselines import (
        DNN,
        CrossNetV2,
        DCNv2,
        DCNv2Config,
        DeepFM,
        DeepFMConfig,
        DNNConfig,
        FactorizationMachine,
        LogisticRegression,
        LogisticRegressionConfig,
    )
    from .fignn import FieldSelfAttention, FiGNN, FiGNNConfig
    from .finalmlp import DualMLP, DualMLPConfig, FinalMLP, FinalMLPConfig, TwoStreamConfig
    from .gdcn import (
        GCN,
        GDCN,
        GDCNP,
        GDCNS,
        GCNConfig,
        GDCNConfig,
        GDCNPConfig,
        GDCNSConfig,
        fdo_embedding_dims,
    )
    from .layers import (
        ActName,
        CTRConfig,
        CTRModel,
        FieldEmbedding,
        MLPBlock,
        example_inputs,
        model_param_groups,
        tiny_feature_spec,
    )
