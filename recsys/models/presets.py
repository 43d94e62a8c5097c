"""Published configurations (presets) of the recsys models, by dataset.

``PRESETS[dataset][model]`` holds ``model`` (constructor keyword arguments, without
``feature_spec``, which the data module supplies) and ``task`` (:class:`~gatelab.recsys.tasks.ctr.CTROptions`
keys). Sources:

* Frappe_x1, BARS (github.com/reczoo/BARS ``ranking/ctr/<Model>/<Model>_frappe_x1``): FinalMLP
  (``FinalMLP_frappe_x1_004_e1ab402f``), DNN (``DNN_frappe_x1_001_ad0f0fce``), DCNv2
  (``DCNv2_frappe_x1_007_c207b717``), DeepFM (``DeepFM_frappe_x1_001_4ae3a56e``), LR
  (``LR_frappe_x1_001_ff730f43``); DualMLP from RecZoo (``ranking/ctr/FinalMLP/results/
  DualMLP_frappe_x1_008_27a1726a.log``). All: Adam, lr 1e-3, batch 4096, embedding size 10,
  early stopping on validation AUC with patience 2, learning rate x0.1 on every plateau.
* GDCN-P / GDCN-S: the GDCN paper's Frappe setting (code ``anonctr/GDCN``: embedding 16, DNN
  400-400-400 with BatchNorm and dropout 0.5, 3 gated cross layers), trained with the BARS
  Frappe_x1 protocol above (embedding regulariser 0.05 like every BARS Frappe model) instead of
  the paper's weight decay 1e-6 / plateau patience 5 / early-stop patience 4.
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["BARS_TRAINING", "PRESETS", "preset"]

#: the BARS/FuxiCTR training protocol shared by every preset
BARS_TRAINING: dict[str, Any] = {
    "optimizer": "adam",
    "lr": 1e-3,
    "batch_size": 4096,
    "max_epochs": 100,
    "gradient_clip_val": 10.0,
    "monitor": "val/auc",
    "patience": 2,
}

_GDCN_FRAPPE = {
    "embedding_dim": 16,
    "num_cross_layers": 3,
    "dnn_hidden_units": [400, 400, 400],
    "batch_norm": True,
    "net_dropout": 0.5,
}

_FRAPPE: dict[str, dict[str, Any]] = {
    "finalmlp": {
        "model": {
            "embedding_dim": 10,
            "mlp1_hidden_units": [400],
            "mlp1_dropout": 0.4,
            "mlp1_batch_norm": True,
            "mlp2_hidden_units": [100],
            "mlp2_dropout": 0.4,
            "mlp2_batch_norm": True,
            "use_fs": True,
            "fs_hidden_units": [400],
            "fs1_context": ["user"],
            "fs2_context": ["item"],
            "num_heads": 5,
        },
        "task": {"embedding_regularizer": 0.05, "net_regularizer": 0.0},
    },
    "dualmlp": {
        "model": {
            "embedding_dim": 10,
            "mlp1_hidden_units": [400, 400, 400],
            "mlp1_dropout": 0.2,
            "mlp1_batch_norm": True,
            "mlp2_hidden_units": [500, 500, 500],
            "mlp2_dropout": 0.3,
            "mlp2_batch_norm": True,
        },
        "task": {"embedding_regularizer": 0.05, "net_regularizer": 0.0},
    },
    "gdcn-p": {"model": dict(_GDCN_FRAPPE), "task": {"embedding_regularizer": 0.05, "net_regularizer": 0.0}},
    "gdcn-s": {"model": dict(_GDCN_FRAPPE), "task": {"embedding_regularizer": 0.05, "net_regularizer": 0.0}},
    "dcnv2": {
        "model": {
            "embedding_dim": 10,
            "model_structure": "parallel",
            "num_cross_layers": 4,
            "parallel_dnn_hidden_units": [400, 400, 400],
            "batch_norm": True,
            "net_dropout": 0.4,
        },
        "task": {"embedding_regularizer": 0.05, "net_regularizer": 0.0},
    },
    "dnn": {
        "model": {
            "embedding_dim": 10,
            "hidden_units": [400, 400, 400],
            "batch_norm": True,
            "net_dropout": 0.2,
        },
        "task": {"embedding_regularizer": 0.05, "net_regularizer": 0.0},
    },
    "deepfm": {
        "model": {
            "embedding_dim": 10,
            "hidden_units": [400, 400, 400],
            "batch_norm": True,
            "net_dropout": 0.2,
        },
        "task": {"embedding_regularizer": 0.05, "net_regularizer": 0.0},
    },
    "lr": {"model": {}, "task": {"embedding_regularizer": 1e-5, "net_regularizer": 0.0}},
}

PRESETS: dict[str, dict[str, dict[str, Any]]] = {"frappe": _FRAPPE, "frappe_x1": _FRAPPE}


def preset(dataset: str, model: str) -> dict[str, Any]:
    """A deep copy of ``PRESETS[dataset][model]`` (``KeyError`` lists what exists)."""
    if dataset not in PRESETS:
        raise KeyError(f"no presets for dataset {dataset!r}; have {sorted(PRESETS)}")
    if model not in PRESETS[dataset]:
        raise KeyError(f"no {dataset} preset for model {model!r}; have {sorted(PRESETS[dataset])}")
    return copy.deepcopy(PRESETS[dataset][model])
