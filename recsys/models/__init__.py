"""Models of gatelab.recsys (registered in :mod:`gatelab.recsys.registry`).

Gated: ``finalmlp`` (FeatureGate + BilinearFusion), ``gdcn-p`` / ``gdcn-s`` / ``gcn``
(GatedCrossNetwork). Baselines on the same pipeline: ``dualmlp``, ``lr``, ``dnn``, ``dcnv2``,
``deepfm``. Every model is a :class:`~gatelab.recsys.models.CTRModel` (feature spec -> field
embeddings -> tower), takes ``feature_spec`` (a :class:`~gatelab.recsys.data.FeatureSpec` or
its ``model_dict()``) and the keyword inputs ``categorical`` / ``numeric`` / ``sequence``, and
returns logits ``[B]``.

Names are exported lazily (PEP 562): importing one model imports only its own module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gatelab.core.layers.lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "CrossNetV2": "baselines",
    "DCNv2": "baselines",
    "DNN": "baselines",
    "DeepFM": "baselines",
    "FactorizationMachine": "baselines",
    "LogisticRegression": "baselines",
    "DualMLP": "finalmlp",
    "FinalMLP": "finalmlp",
    "GDCN": "gdcn",
    "fdo_embedding_dims": "gdcn",
    "CTRModel": "layers",
    "Dropout": "layers",
    "FieldEmbedding": "layers",
    "MLPBlock": "layers",
    "example_inputs": "layers",
    "model_param_groups": "layers",
    "tiny_feature_spec": "layers",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from .baselines import DNN, CrossNetV2, DCNv2, DeepFM, FactorizationMachine, LogisticRegression
    from .finalmlp import DualMLP, FinalMLP
    from .gdcn import GDCN, fdo_embedding_dims
    from .layers import (
        CTRModel,
        Dropout,
        FieldEmbedding,
        MLPBlock,
        example_inputs,
        model_param_groups,
        tiny_feature_spec,
    )
