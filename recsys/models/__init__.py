"""Models of gatelab.recsys (each registered with gatelab.core.registry).

Gated: ``finalmlp`` (FeatureGate + BilinearFusion), ``gdcn-p`` / ``gdcn-s`` / ``gcn``
(GatedCrossNetwork). Baselines on the same pipeline: ``dualmlp``, ``lr``, ``dnn``, ``dcnv2``,
``deepfm``. Every model takes ``feature_spec`` (a :class:`~gatelab.recsys.data.FeatureSpec` or
its ``model_dict()``) and the keyword inputs ``categorical`` / ``numeric`` / ``sequence``, and
returns logits ``[B]``.
"""

from .baselines import DNN, CrossNetV2, DCNv2, DeepFM, FactorizationMachine, LogisticRegression
from .finalmlp import DualMLP, FinalMLP
from .gdcn import GDCN, fdo_embedding_dims
from .layers import Dropout, FieldEmbedding, MLPBlock, example_inputs, model_param_groups, tiny_feature_spec

__all__ = [
    "DNN",
    "GDCN",
    "CrossNetV2",
    "DCNv2",
    "DeepFM",
    "Dropout",
    "DualMLP",
    "FactorizationMachine",
    "FieldEmbedding",
    "FinalMLP",
    "LogisticRegression",
    "MLPBlock",
    "example_inputs",
    "fdo_embedding_dims",
    "model_param_groups",
    "tiny_feature_spec",
]
