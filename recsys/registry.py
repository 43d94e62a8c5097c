"""Every registration of gatelab.recsys: models, datasets, the ``ctr`` data module, task and table.

Imported by :mod:`gatelab.recsys` (and by :func:`gatelab.core.registry.load_registrations`). It
imports neither torch, Lightning nor pyarrow: models, the data module and the task are
``"module:attr"`` entries imported on first use, and so is the ``ctr`` table
(:mod:`.recipes.ctr`); the dataset specs (:mod:`.data.layouts`) are plain data.

* gated models: ``finalmlp`` (FeatureGate + BilinearFusion), ``gdcn-p`` / ``gdcn-s`` / ``gcn``
  (GatedCrossNetwork), ``fignn`` (GatedGraphPropagation); baselines on the same pipeline: ``dualmlp``, ``lr``, ``dnn``, ``dcnv2``,
  ``deepfm``;
* datasets: :data:`gatelab.recsys.data.layouts.DATASETS`;
* data module ``ctr``, task ``ctr``, paper table ``ctr``.
"""

from __future__ import annotations

from gatelab.core.harness.data import register_dataset
from gatelab.core.registry import DATAMODULES, TABLES, TASKS, register_model

from .data.layouts import DATASETS

DOMAIN = "recsys"
_M = "gatelab.recsys.models"

# --------------------------------------------------------------------------- models

_FINALMLP_PAPER = "Mao et al., FinalMLP: An Enhanced Two-Stream MLP Model for CTR Prediction, AAAI 2023"
_GDCN_PAPER = (
    "Wang et al., Towards Deeper, Lighter and Interpretable Cross Network for CTR Prediction, CIKM 2023"
)
_GDCN_GATES = ("GatedCrossNetwork", "GatedCrossLayer")
_FIGNN_PAPER = (
    "Li et al., Fi-GNN: Modeling Feature Interactions via Graph Neural Networks for CTR Prediction, CIKM 2019"
)

# name, module, model class (its config_class holds the presets), tiny config, paper, gates, tags, description
for _name, _mod, _cls, _tiny, _paper, _gates, _tags, _desc in (
    ("finalmlp", "finalmlp", "FinalMLP", "_TINY_FINALMLP", _FINALMLP_PAPER, ("FeatureGate", "BilinearFusion"), (),
     "FinalMLP: two MLP streams, per-stream feature gating, multi-head bilinear fusion."),
    ("dualmlp", "finalmlp", "DualMLP", "_TINY_DUALMLP", _FINALMLP_PAPER, (), ("baseline",),
     "DualMLP: FinalMLP's ablation, two MLP streams summed (baseline, no gates)."),
    ("gdcn-p", "gdcn", "GDCNP", "_TINY", _GDCN_PAPER, _GDCN_GATES, (),
     "GDCN-P: gated cross network in parallel with a DNN."),
    ("gdcn-s", "gdcn", "GDCNS", "_TINY", _GDCN_PAPER, _GDCN_GATES, (),
     "GDCN-S: gated cross network stacked under a DNN."),
    ("gcn", "gdcn", "GCN", "_TINY_GCN", _GDCN_PAPER, _GDCN_GATES, (),
     "GCN: the gated cross network alone with a linear output (GDCN's cross-only variant)."),
    ("fignn", "fignn", "FiGNN", "_TINY", _FIGNN_PAPER, ("GatedGraphPropagation",), (),
     "Fi-GNN: fields as nodes of a complete graph, attentional edge weights, gated graph propagation, attentional scoring."),
    ("lr", "baselines", "LogisticRegression", "_TINY_LR", "Richardson et al., Predicting Clicks, WWW 2007", (), ("baseline",),
     "Logistic regression on one-hot features (baseline, no gates)."),
    ("dnn", "baselines", "DNN", "_TINY_DNN",
     "Covington et al., Deep Neural Networks for YouTube Recommendations, RecSys 2016", (), ("baseline",),
     "DNN: embeddings + MLP (baseline, no gates)."),
    ("dcnv2", "baselines", "DCNv2", "_TINY_DCNV2", "Wang et al., DCN V2, WWW 2021", (), ("baseline",),
     "DCN-V2: cross network v2 + DNN (baseline, no gates)."),
    ("deepfm", "baselines", "DeepFM", "_TINY_DEEPFM", "Guo et al., DeepFM, IJCAI 2017", (), ("baseline",),
     "DeepFM: LR + FM + DNN (baseline, no gates)."),
):  # fmt: skip
    register_model(
        _name,
        f"{_M}.{_mod}:{_cls}",
        domain=DOMAIN,
        paper=_paper,
        gates=_gates,
        description=_desc,
        tiny=f"{_M}.{_mod}:{_tiny}",
        example_inputs=f"{_M}.layers:_example",
        tags=_tags,
    )

# --------------------------------------------------------------------------- datasets, data module, task, table

for _spec in DATASETS:
    register_dataset(_spec, domain=DOMAIN)
DATAMODULES.register("ctr", "gatelab.recsys.data.datamodule:ctr_datamodule", domain=DOMAIN)
TASKS.register("ctr", "gatelab.recsys.tasks.ctr:CTRTask", domain=DOMAIN)
TABLES.register("ctr", "gatelab.recsys.recipes.ctr:CTR_TABLE", domain=DOMAIN)
