"""The ``ctr`` paper table: :data:`CTR_TABLE` (registered as ``ctr``) and :data:`CTR_RECIPE`.

``gatelab repro ctr`` trains every requested model from its config's ``frappe-x1`` preset (the
model hyper-parameters: ``FinalMLPConfig.presets["frappe-x1"]`` ...) with the training
hyper-parameters held here: :data:`BARS_TRAINING` (optimizer, lr, batch, clipping, early
stopping) and :data:`CTR_TASK_KWARGS` (per model, the embedding / network regularisers), and
reports test AUC/logloss.

Sources: Frappe_x1, BARS (github.com/reczoo/BARS ``ranking/ctr/<Model>/<Model>_frappe_x1``):
FinalMLP (``FinalMLP_frappe_x1_004_e1ab402f``), DNN (``DNN_frappe_x1_001_ad0f0fce``), DCNv2
(``DCNv2_frappe_x1_007_c207b717``), DeepFM (``DeepFM_frappe_x1_001_4ae3a56e``), LR
(``LR_frappe_x1_001_ff730f43``), Fi-GNN (``FiGNN_frappe_x1_003_57243619``, embedding L2 0.001); DualMLP from RecZoo (``ranking/ctr/FinalMLP/results/
DualMLP_frappe_x1_008_27a1726a.log``). All: Adam, lr 1e-3, batch 4096, embedding size 10,
early stopping on validation AUC with patience 2, learning rate x0.1 on every plateau. GDCN-P /
GDCN-S: the GDCN paper's Frappe model setting (``GDCNConfig.presets["frappe-x1"]``), trained with
this BARS Frappe_x1 protocol (embedding regulariser 0.05 like every BARS Frappe model) instead of
the paper's weight decay 1e-6 / plateau patience 5 / early-stop patience 4.

Issue 19 (fair by construction): the negative-sampling seed of Frappe's rebuilt train split moves
a model's test AUC as much as the gaps between models, so a run is (model seed, negative seed);
the negative seed is the row's ``data_seed`` (part of its key, not of its config hash).
FinalMLP, GDCN-P and GDCN-S run :data:`CTR_SEEDS` x :data:`NEGATIVE_SEEDS`, the baselines
:data:`CTR_SEEDS` x :data:`BASELINE_NEGATIVE_SEEDS`; LR and Fi-GNN (slow) only when named. Every
row states its budget (:data:`BARS_BUDGET`, the same for every model); :data:`CTR_COMPARISONS`
are rendered as paired differences with 95% intervals; Δ is against BARS's validation-selected
runs, the leaderboard (best-test-of-sweep) values are labelled context (:data:`CTR_REFERENCES`).
``--quick`` writes one CI-sized FinalMLP row to the ``ctr-quick`` ledger.

``--dataset criteo_x1`` / ``avazu_x1`` (BARS's Criteo_x1 / Avazu_x1 CSV files, layouts in
:mod:`gatelab.recsys.data.layouts`; not shipped, see ``gatelab data``) train FinalMLP, GDCN-P and
DCNv2 from their ``criteo-x1`` / ``avazu-x1`` presets with the same protocol and each BARS run's
embedding regulariser (:data:`X1_TASK_KWARGS`). Every published value of the table is a
:class:`~gatelab.core.harness.recipes.Reference` with its source URL (:data:`CTR_REFERENCES`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from gatelab.core.config import ConfigError, did_you_mean
from gatelab.core.harness import Option, ReproTable
from gatelab.core.harness.configs import ExperimentConfig
from gatelab.core.harness.recipes import Budget, Cell, CellRun, Recipe, Reference, run_cell
from gatelab.core.harness.stats import Comparison

__all__ = [
    "BARS_BUDGET",
    "BARS_TRAINING",
    "BASELINE_NEGATIVE_SEEDS",
    "CONTEXT_VARIANTS",
    "CTR_ALL_MODELS",
    "CTR_BASELINES",
    "CTR_COMPARISONS",
    "CTR_DATASETS",
    "CTR_MAIN_MODELS",
    "CTR_MODELS",
    "CTR_OPTIONAL_MODELS",
    "CTR_PRESET",
    "CTR_RECIPE",
    "CTR_REFERENCES",
    "CTR_SEEDS",
    "CTR_TABLE",
    "CTR_TASK_KWARGS",
    "NEGATIVE_SEEDS",
    "QUICK_BUDGET",
    "QUICK_MODELS",
    "X1_MODELS",
    "X1_TASK_KWARGS",
    "ctr_config",
    "ctr_models",
    "ctr_settings",
    "negative_seeds",
    "run_ctr",
]

#: the table's subject on Frappe: each runs over model seeds x negative-sampling seeds
#: (:data:`NEGATIVE_SEEDS`) by default
CTR_MAIN_MODELS = ("finalmlp", "gdcn-p", "gdcn-s")
#: baselines in the default run, over model seeds x :data:`BASELINE_NEGATIVE_SEEDS`
CTR_BASELINES = ("dualmlp", "dcnv2", "dnn", "deepfm")
#: slow baselines, run only when named (``--models lr fignn``, or ``--models all``): LR trains to
#: the 100-epoch limit (~20-37 min a run), Fi-GNN ~20-30 min a run on this CPU
CTR_OPTIONAL_MODELS = ("lr", "fignn")
#: the models the table runs by default on Frappe (``--models all``: these and the optional ones)
CTR_MODELS = CTR_MAIN_MODELS + CTR_BASELINES
#: every Frappe row the table has
CTR_ALL_MODELS = CTR_MODELS + CTR_OPTIONAL_MODELS
#: ``--quick``'s default models (one CI-sized row)
QUICK_MODELS = ("finalmlp",)

#: seeds of the negative sampling of the rebuilt Frappe train split (each a row's ``data_seed``)
#: of :data:`CTR_MAIN_MODELS` by default; 2021 is the seed the table used before issue 19
NEGATIVE_SEEDS = (2021, 2022, 2023)
#: the negative-sampling seeds of every other model by default (and of ``--quick``)
BASELINE_NEGATIVE_SEEDS = (2021,)
#: the model seeds of a default run
CTR_SEEDS = (0, 1, 2)

#: the model preset of every Frappe row (each model's ``<Model>Config.presets[CTR_PRESET]``); the
#: same for the ``frappe`` (rebuilt train) and ``frappe_x1`` (official train) training data
CTR_PRESET = "frappe-x1"

#: ``--dataset`` value -> (the rows' ``dataset`` column, the model preset of every row)
CTR_DATASETS: dict[str, tuple[str, str]] = {
    "frappe": ("frappe", CTR_PRESET),
    "frappe_x1": ("frappe", CTR_PRESET),
    "criteo_x1": ("criteo_x1", "criteo-x1"),
    "avazu_x1": ("avazu_x1", "avazu-x1"),
}

#: the models with a ``criteo-x1`` / ``avazu-x1`` preset (the default ``--models`` there)
X1_MODELS = ("finalmlp", "gdcn-p", "dcnv2")

#: the BARS/FuxiCTR training protocol shared by every row
BARS_TRAINING: dict[str, Any] = {
    "optimizer": "adam",
    "lr": 1e-3,
    "batch_size": 4096,
    "max_epochs": 100,
    "gradient_clip_val": 10.0,
    "monitor": "val/auc",
    "patience": 2,
}

_BARS_REGULARIZERS = {"embedding_regularizer": 0.05, "net_regularizer": 0.0}

#: ``task.kwargs`` (:class:`~gatelab.recsys.tasks.ctr.CTROptions`) of each model's row: the
#: BARS Frappe_x1 regularisers (LR's embedding L2 is 1e-5, Fi-GNN's 0.001, every other model's 0.05)
CTR_TASK_KWARGS: dict[str, dict[str, Any]] = {
    "finalmlp": _BARS_REGULARIZERS,
    "dualmlp": _BARS_REGULARIZERS,
    "gdcn-p": _BARS_REGULARIZERS,
    "gdcn-s": _BARS_REGULARIZERS,
    "dcnv2": _BARS_REGULARIZERS,
    "dnn": _BARS_REGULARIZERS,
    "deepfm": _BARS_REGULARIZERS,
    "lr": {"embedding_regularizer": 1e-5, "net_regularizer": 0.0},
    "fignn": {"embedding_regularizer": 0.001, "net_regularizer": 0.0},
}


#: ``task.kwargs`` of the Criteo_x1 / Avazu_x1 rows: each BARS run's embedding regulariser
#: (FinalMLP and DCNv2 on Criteo_x1 1e-5, on Avazu_x1 0.05); GDCN-P, which has no BARS run there,
#: gets the value every BARS model of the dataset uses
X1_TASK_KWARGS: dict[str, dict[str, dict[str, Any]]] = {
    "criteo_x1": {m: {"embedding_regularizer": 1e-5, "net_regularizer": 0.0} for m in X1_MODELS},
    "avazu_x1": {m: {"embedding_regularizer": 0.05, "net_regularizer": 0.0} for m in X1_MODELS},
}


def _task_kwargs(model: str, dataset: str = "frappe") -> dict[str, Any]:
    """A copy of the task kwargs of ``model``'s row on ``dataset`` (a ``--dataset`` value)
    (:class:`ConfigError` naming the dataset's models when there is no such row)."""
    if dataset not in CTR_DATASETS:
        raise ConfigError(
            f"ctr: dataset {dataset!r} is not one of the table's{did_you_mean(dataset, CTR_DATASETS)}: "
            f"{', '.join(CTR_DATASETS)}"
        )
    table = X1_TASK_KWARGS.get(dataset, CTR_TASK_KWARGS)
    if model not in table:
        raise ConfigError(
            f"ctr: model {model!r} has no row in the table on {dataset}{did_you_mean(model, table)}; "
            f"models: {', '.join(table)}"
        )
    return dict(table[model])


_BARS = "https://github.com/reczoo/BARS/tree/main/ranking/ctr"
_BARS_FILE = "https://github.com/reczoo/BARS/blob/main/ranking/ctr"


def _bars(
    model: str, dataset: str, split: str, run: str, values: Mapping[str, float], variant: str | None = None
) -> Reference:
    """A BARS leaderboard value: ``run`` is the run directory ``<Model>/<run>`` under :data:`_BARS`."""
    return Reference(model, dataset, values, f"BARS {run}: {_BARS}/{run}", split=split, variant=variant)


def _bars_sweep(
    model: str, sweep: str, values: Mapping[str, float], what: str, variant: str | None
) -> Reference:
    """A value read from a BARS Frappe_x1 sweep log ``<Model>/<Model>_frappe_x1/<sweep>``
    (one line per run: ``[val] AUC ... [test] AUC ...``); ``what`` says which run(s)."""
    path = f"{model_dir(model)}/{sweep}"
    return Reference(
        model, "frappe", values, f"BARS {path} ({what}): {_BARS_FILE}/{path}", split="x1", variant=variant
    )


def model_dir(model: str) -> str:
    """BARS's Frappe_x1 folder of ``model`` (``finalmlp`` -> ``FinalMLP/FinalMLP_frappe_x1``)."""
    name = {"finalmlp": "FinalMLP", "fignn": "FiGNN", "dcnv2": "DCNv2"}[model]
    return f"{name}/{name}_frappe_x1"


#: reference variants that are shown in the table's description only (labelled; no Δ column)
CONTEXT_VARIANTS = ("bars-best-of-sweep", "bars-sweep-median", "gdcn-paper-own-split")

#: every published value of the table, with its source. The row's Δ (the ``paper_*`` columns) is
#: against the references without a variant: for FinalMLP, Fi-GNN and DCNv2 BARS's
#: **validation-selected** run of its sweep (the run with the best validation AUC), not the
#: leaderboard value, which is the best *test* AUC of the sweep (kept, labelled
#: ``bars-best-of-sweep``). GDCN-P/-S's paper values come from another split (the paper's own
#: random 8:1:1 split of the NFM files): context only (``gdcn-paper-own-split``), no Δ.
CTR_REFERENCES: tuple[Reference, ...] = (
    # FinalMLP: 32-config sweep (FinalMLP_frappe_x1_tuner_config_16.csv, 32 runs, seed 2021)
    _bars_sweep("finalmlp", "FinalMLP_frappe_x1_tuner_config_16.csv", {"auc": 0.985938, "logloss": 0.151847},
                "validation-selected: run FinalMLP_frappe_x1_017_0d4bb309, best val AUC 0.986776 of 32; "
                "its config: fs_hidden_units [800], mlp1_dropout 0.5, num_heads 2", None),
    _bars_sweep("finalmlp", "results.csv", {"auc": 0.986072, "logloss": 0.148415},
                "leaderboard value = best test AUC of the 32-run sweep: run FinalMLP_frappe_x1_004_e1ab402f "
                "(val AUC 0.986631), the config of the frappe-x1 preset", "bars-best-of-sweep"),
    _bars_sweep("finalmlp", "FinalMLP_frappe_x1_tuner_config_16.csv", {"auc": 0.984807},
                "median test AUC of the 32 runs", "bars-sweep-median"),
    Reference(
        "dualmlp", "frappe", {"auc": 0.984650, "logloss": 0.147083},
        "RecZoo FinalMLP results/DualMLP_frappe_x1_008_27a1726a.log: "
        "https://github.com/reczoo/RecZoo/tree/main/ranking/ctr/FinalMLP",
        split="x1",
    ),
    Reference("gdcn-p", "frappe", {"auc": 0.9852}, "Wang et al. CIKM 2023, Table 3 (own 8:1:1 split): "
              "https://arxiv.org/abs/2311.04635", split="x1", variant="gdcn-paper-own-split"),
    Reference("gdcn-s", "frappe", {"auc": 0.9838}, "Wang et al. CIKM 2023, Table 3 (own 8:1:1 split): "
              "https://arxiv.org/abs/2311.04635", split="x1", variant="gdcn-paper-own-split"),
    # DCNv2: 12-config sweep; the leaderboard config c207b717 (run 007) is the sweep's best test AUC
    _bars_sweep("dcnv2", "DCNv2_frappe_x1_tuner_config_03.csv", {"auc": 0.983946, "logloss": 0.149770},
                "validation-selected: run DCNv2_frappe_x1_010_5eae8872, best val AUC 0.985224 of 12", None),
    _bars("dcnv2", "frappe", "x1", "DCNv2/DCNv2_frappe_x1", {"auc": 0.984478, "logloss": 0.149149},
          variant="bars-best-of-sweep"),
    _bars("dnn", "frappe", "x1", "DNN/DNN_frappe_x1", {"auc": 0.983323, "logloss": 0.162229}),
    _bars("deepfm", "frappe", "x1", "DeepFM/DeepFM_frappe_x1", {"auc": 0.984243, "logloss": 0.148174}),
    _bars("lr", "frappe", "x1", "LR/LR_frappe_x1", {"auc": 0.935584, "logloss": 0.307643}),
    # Fi-GNN: 6-config sweep; the leaderboard run 003 (the preset's config) is the best test AUC
    _bars_sweep("fignn", "FiGNN_frappe_x1_tuner_config_04.csv", {"auc": 0.975609, "logloss": 0.207996},
                "validation-selected: run FiGNN_frappe_x1_006_cbc083c1, best val AUC 0.976234 of 6", None),
    _bars("fignn", "frappe", "x1", "FiGNN/FiGNN_frappe_x1", {"auc": 0.976115, "logloss": 0.203715},
          variant="bars-best-of-sweep"),
    # Criteo_x1 / Avazu_x1: BARS runs (as on Frappe, the logged run 1 where BARS lists 5 runs)
    _bars("finalmlp", "criteo_x1", "x1", "FinalMLP/FinalMLP_criteo_x1", {"auc": 0.814902, "logloss": 0.437025}),
    _bars("finalmlp", "avazu_x1", "x1", "FinalMLP/FinalMLP_avazu_x1", {"auc": 0.766566, "logloss": 0.365803}),
    _bars("dcnv2", "criteo_x1", "x1", "DCNv2/DCNv2_criteo_x1", {"auc": 0.814195, "logloss": 0.437788}),
    _bars("dcnv2", "avazu_x1", "x1", "DCNv2/DCNv2_avazu_x1", {"auc": 0.765607, "logloss": 0.366447}),
    # GDCN-P has no BARS x1 run: the paper's Criteo value on its own random 8:1:1 split of the
    # Kaggle data (not the x1 split; the paper's Avazu value is left out: not verified here)
    Reference("gdcn-p", "criteo_x1", {"auc": 0.8161, "logloss": 0.4360},
              "Wang et al. CIKM 2023, Table 3 (own 8:1:1 Criteo split, not x1): "
              "https://paperswithcode.com/paper/towards-deeper-lighter-and-interpretable-1", split="x1",
              variant="gdcn-paper-own-split"),
)  # fmt: skip


def _fmt_ref(ref: Reference) -> str:
    return " / ".join(f"{ref.values[m]:.6g}" for m in ("auc", "logloss") if m in ref.values)


def _reference_notes() -> str:
    """The description's sentence on the Frappe references: each value labelled (from :data:`CTR_REFERENCES`)."""
    refs = [r for r in CTR_REFERENCES if r.dataset == "frappe"]
    by = {(r.model, r.variant): r for r in refs}
    fm = by[("finalmlp", None)], by[("finalmlp", "bars-best-of-sweep")], by[("finalmlp", "bars-sweep-median")]
    return (
        f"References (test AUC / logloss; BARS trained on the official x1 train, one seed): Δ is against "
        f"BARS's validation-selected run of its sweep: FinalMLP {_fmt_ref(fm[0])} (best val AUC of 32 "
        f"configs; its config differs from the frappe-x1 preset, which is the config of BARS's leaderboard "
        f"run), Fi-GNN {_fmt_ref(by[('fignn', None)])} (of 6), DCNv2 {_fmt_ref(by[('dcnv2', None)])} (of 12); "
        f"not compared: BARS's leaderboard values, the best TEST AUC of each sweep (FinalMLP "
        f"{_fmt_ref(fm[1])}, Fi-GNN {_fmt_ref(by[('fignn', 'bars-best-of-sweep')])}, DCNv2 "
        f"{_fmt_ref(by[('dcnv2', 'bars-best-of-sweep')])}) and FinalMLP's sweep median {_fmt_ref(fm[2])}; "
        f"GDCN-P {_fmt_ref(by[('gdcn-p', 'gdcn-paper-own-split')])} / GDCN-S "
        f"{_fmt_ref(by[('gdcn-s', 'gdcn-paper-own-split')])} AUC are the GDCN paper's on its own random 8:1:1 "
        f"split (context only, no Δ); DNN, DeepFM, LR: BARS's run; DualMLP: RecZoo's run. "
        f"Sources: gatelab.recsys.recipes.ctr.CTR_REFERENCES"
    )


#: the training budget of every Frappe row, identical for every model (the rows' ``budget`` column)
BARS_BUDGET = Budget(
    max_epochs=100,
    note="BARS protocol, the same for every model: early stop on val AUC (patience 2), lr x0.1 on plateau",
)
#: ``--quick``: one short epoch, a CI-sized smoke run (not the protocol)
QUICK_BUDGET = Budget(
    max_epochs=1, limit_train_batches=3, note="quick: the first seed only, 2 validation and 2 test batches"
)

#: the paired comparisons rendered under the table: runs paired by (seed, data_seed)
CTR_COMPARISONS = tuple(
    Comparison(metric, a, b, lower_is_better=metric == "logloss", label=f"{label} ({metric})")
    for a, b, label in (
        ("finalmlp", "gdcn-p", "FinalMLP − GDCN-P"),
        ("gdcn-p", "gdcn-s", "GDCN-P − GDCN-S"),
        ("finalmlp", "dualmlp", "FinalMLP − DualMLP (its ablation: no gates, no fusion)"),
    )
    for metric in ("auc", "logloss")
)

CTR_TABLE = ReproTable(
    name="ctr",
    description=(
        "CTR test AUC/logloss on Frappe (--dataset criteo_x1 / avazu_x1: BARS's Criteo_x1 / Avazu_x1 "
        "files, FinalMLP, GDCN-P and DCNv2 from their x1 presets, each BARS run's embedding L2). split x1 = "
        "the official Frappe_x1 test.csv (28,860 rows; validation/early stopping on the official valid.csv); "
        "the x1 train split is not available, so training uses a train split rebuilt from the raw log with "
        "NFM's protocol (log rows minus the x1 valid/test positives + 134,423 seeded sampled negatives, "
        "202,027 rows; the raw->x1 index mapping is verified on every run). The negative-sampling seed alone moved "
        "FinalMLP's test AUC from 0.98452 to 0.98563 (issue 19), so a run is (model seed, negative seed = data_seed): FinalMLP, "
        f"GDCN-P and GDCN-S run {len(CTR_SEEDS)} model seeds x {len(NEGATIVE_SEEDS)} negative seeds "
        f"({', '.join(map(str, NEGATIVE_SEEDS))}), the baselines {len(CTR_SEEDS)} x "
        f"{len(BASELINE_NEGATIVE_SEEDS)} ({', '.join(map(str, BASELINE_NEGATIVE_SEEDS))}); comparisons pair "
        "runs by (seed, data_seed). Budget (column budget), identical for every model: the BARS protocol "
        "(Adam 1e-3, batch 4096, embedding L2 0.05 (LR 1e-5, Fi-GNN 0.001, as their BARS runs), lr x0.1 on "
        "plateau, early stop on val AUC with patience 2, at most 100 epochs, the best-val-AUC checkpoint "
        "tested). " + _reference_notes()
    ),
    paper=(
        "FinalMLP: Mao et al. AAAI 2023 / BARS Frappe_x1; GDCN: Wang et al. CIKM 2023, Table 3; "
        "DNN, DCNv2, DeepFM, LR, Fi-GNN: BARS Frappe_x1 runs and sweeps; DualMLP: RecZoo FinalMLP results; "
        "Criteo_x1 / Avazu_x1: BARS FinalMLP and DCNv2 runs (each reference's source: "
        "gatelab.recsys.recipes.ctr.CTR_REFERENCES)"
    ),
    run="gatelab.recsys.recipes.ctr:run_ctr",
    references=[r.row() for r in CTR_REFERENCES],
    options=[
        Option(
            "--dataset",
            default="frappe",
            choices=list(CTR_DATASETS),
            help="frappe: rebuilt train + official x1 valid/test; frappe_x1: the official train.csv too; "
            "criteo_x1 / avazu_x1: BARS's Criteo_x1 / Avazu_x1 files (FinalMLP, GDCN-P, DCNv2)",
        ),
        Option(
            "--models",
            nargs="+",
            default=None,
            help=f"models to run (each from its config's preset for the dataset), or 'all'; default: "
            f"{' '.join(CTR_MODELS)} on Frappe (all: also {' '.join(CTR_OPTIONAL_MODELS)}), "
            f"{' '.join(X1_MODELS)} on Criteo_x1 / Avazu_x1; --quick: {' '.join(QUICK_MODELS)}",
        ),
        Option(
            "--max-epochs", type=int, default=100, help="epoch limit (early stopping usually ends earlier)"
        ),
        Option("--output-dir", default="runs/ctr", help="where run directories go"),
        Option(
            "--negative-seeds",
            type=int,
            nargs="+",
            default=None,
            metavar="SEED",
            help="seeds of the negative sampling of Frappe's rebuilt train split (--dataset frappe), each "
            f"run's data_seed, for every model; default: {' '.join(map(str, NEGATIVE_SEEDS))} for "
            f"{', '.join(CTR_MAIN_MODELS)}, {' '.join(map(str, BASELINE_NEGATIVE_SEEDS))} for the others "
            "and for --quick",
        ),
    ],
    domain="recsys",
    metrics=["auc", "logloss", "val_auc", "epochs"],
    default_seeds=CTR_SEEDS,
    quick_table="ctr-quick",
    not_in_hash=("models", "output_dir", "negative_seeds"),
    comparisons=CTR_COMPARISONS,
)

_T = BARS_TRAINING


def ctr_settings(cell: Cell, options: Mapping[str, Any]) -> dict[str, Any]:
    """The recipe's ``configure`` hook: ``cell.model``'s preset (:data:`CTR_PRESET`) and task
    kwargs (:data:`CTR_TASK_KWARGS`), the training data named by the ``dataset`` option
    (``frappe`` or ``frappe_x1``), its run name, Frappe's negative-sampling seed (the cell's
    ``data_seed``; 2021 when it has none), and the ``--quick`` evaluation limits."""
    dataset = options.get("dataset") or cell.dataset
    task = _task_kwargs(cell.model, dataset)
    data: dict[str, Any] = {"dataset": dataset}
    name = f"ctr-{dataset}-{cell.model}"
    if dataset == "frappe":
        data["negative_seed"] = cell.data_seed if cell.data_seed is not None else BASELINE_NEGATIVE_SEEDS[0]
        name += f"-neg{data['negative_seed']}"
    elif cell.data_seed is not None:
        raise ConfigError(
            f"ctr: dataset {dataset!r} has no negative sampling; data_seed={cell.data_seed} applies to 'frappe' only"
        )
    out: dict[str, Any] = {
        "name": name + ("-quick" if options.get("quick") else ""),
        "model": {"kwargs": {"preset": CTR_DATASETS[dataset][1]}},
        "data": {"kwargs": data},
        "task": {"kwargs": task},
    }
    if options.get("quick"):
        out["trainer"] = {"limit_val_batches": 2, "limit_test_batches": 2}
    return out


#: the ``ctr`` table as data: every model's ``frappe-x1`` preset with the BARS training protocol;
#: the negative-sampling seed and the run name (which names it) are not in the config hash (like
#: the model seed, the negative seed is part of the row's key: ``data_seed``)
CTR_RECIPE = Recipe(
    name="ctr",
    models=tuple(dict.fromkeys(CTR_ALL_MODELS + X1_MODELS)),
    datasets=("frappe", "criteo_x1", "avazu_x1"),
    splits=("x1",),
    seeds=CTR_SEEDS,
    base={
        "output_dir": "runs/ctr",
        "test": True,
        "data": {"name": "ctr", "kwargs": {"batch_size": _T["batch_size"], "eval_batch_size": 8192}},
        "task": {
            "name": "ctr",
            "optimizer": _T["optimizer"],
            "lr": _T["lr"],
            "weight_decay": 0.0,
            "monitor": _T["monitor"],
        },
        "trainer": {
            "accelerator": "cpu",
            "devices": 1,
            "gradient_clip_val": _T["gradient_clip_val"],
            "early_stopping": {
                "monitor": _T["monitor"],
                "mode": "max",
                "patience": _T["patience"],
                "min_delta": 1e-6,
            },
            "checkpoint": {
                "enabled": True,
                "monitor": _T["monitor"],
                "mode": "max",
                "save_top_k": 1,
                "save_last": False,
            },
            "loggers": ["csv"],
            "progress_bar": True,
            "num_sanity_val_steps": 0,
            "log_every_n_steps": 10,
        },
    },
    configure=ctr_settings,
    option_paths={"output_dir": "output_dir"},
    budget=BARS_BUDGET,
    metrics={"auc": "test/auc", "logloss": "test/logloss"},
    references=CTR_REFERENCES,
    not_hashed=("output_dir", "trainer.progress_bar", "name", "data.kwargs.negative_seed"),
)


def _budget(max_epochs: int, quick: bool) -> Budget:
    if quick:
        return QUICK_BUDGET
    return (
        BARS_BUDGET
        if max_epochs == BARS_BUDGET.max_epochs
        else dataclasses.replace(BARS_BUDGET, max_epochs=max_epochs)
    )


def ctr_config(
    model: str,
    dataset: str = "frappe",
    *,
    seed: int = 0,
    max_epochs: int = 100,
    output_dir: str = "runs/ctr",
    negative_seed: int = 2021,
    quick: bool = False,
) -> ExperimentConfig:
    """The :class:`ExperimentConfig` of one table row: :data:`CTR_RECIPE`'s config of the cell
    (``model``'s preset with BARS training; on ``frappe`` the train split rebuilt with
    ``negative_seed``, the row's ``data_seed``)."""
    options = {"dataset": dataset, "quick": quick, "output_dir": output_dir}
    _task_kwargs(model, dataset)  # a model the dataset has no row for: one clear error
    data_seed = negative_seed if dataset == "frappe" else None
    cell = Cell(model, CTR_DATASETS[dataset][0], seed, split="x1", data_seed=data_seed)
    cfg = CTR_RECIPE.config(cell, options, _budget(max_epochs, quick))
    return ExperimentConfig.from_dict(cfg)


def ctr_models(models: Sequence[str] | None, dataset: str, quick: bool = False) -> tuple[str, ...]:
    """The models of a run: ``models`` as given (``"all"`` expands to every row of the dataset),
    else the default (:data:`CTR_MODELS` on Frappe, :data:`X1_MODELS` on Criteo_x1 / Avazu_x1,
    :data:`QUICK_MODELS` with ``quick``). A model without a row is a :class:`ConfigError`."""
    frappe = CTR_DATASETS[dataset][0] == "frappe"
    if not models:
        out = QUICK_MODELS if quick and frappe else (CTR_MODELS if frappe else X1_MODELS)
    else:
        every = CTR_ALL_MODELS if frappe else X1_MODELS
        out = tuple(dict.fromkeys(m for name in models for m in (every if name == "all" else (name,))))
    for model in out:
        _task_kwargs(model, dataset)  # fail early on a model the table has no row for
    return out


def negative_seeds(
    model: str, dataset: str, given: Sequence[int] | None = None, quick: bool = False
) -> tuple[int | None, ...]:
    """The negative-sampling seeds (``data_seed``) of ``model``'s runs: ``given`` when set, else
    :data:`NEGATIVE_SEEDS` for :data:`CTR_MAIN_MODELS` and :data:`BASELINE_NEGATIVE_SEEDS` for the
    others and for ``quick``; ``(None,)`` for training data without negative sampling (given
    seeds there are a :class:`ConfigError`)."""
    if dataset != "frappe":
        if given:
            raise ConfigError(
                f"ctr: --negative-seeds {' '.join(map(str, given))}: dataset {dataset!r} has no negative "
                "sampling (only 'frappe', the rebuilt train split, has)"
            )
        return (None,)
    if given:
        if len(set(given)) != len(given):
            raise ConfigError(f"ctr: --negative-seeds {' '.join(map(str, given))} repeats a seed")
        return tuple(int(s) for s in given)
    if quick or model not in CTR_MAIN_MODELS:
        return BASELINE_NEGATIVE_SEEDS
    return NEGATIVE_SEEDS


def run_ctr(args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    """Rows of the ``ctr`` table: one per (model, seed, negative seed), run by the harness's
    recipe runner; in order seed, negative seed, model, so every finished (seed, negative seed)
    block gives each comparison a pair."""
    cell_dataset = CTR_DATASETS[args.dataset][0]
    models = ctr_models(args.models, args.dataset, args.quick)
    given = getattr(args, "negative_seeds", None)
    data_seeds = {m: negative_seeds(m, args.dataset, given, args.quick) for m in models}
    order = list(dict.fromkeys(s for m in models for s in data_seeds[m]))
    variant = "official-train" if args.dataset == "frappe_x1" else None
    budget = _budget(args.max_epochs, args.quick)
    seeds = list(args.seeds)[:1] if args.quick else list(args.seeds)  # --quick: one CI-sized row
    for seed in seeds:
        for data_seed in order:
            for model in models:
                if data_seed not in data_seeds[model]:
                    continue
                cell = Cell(model, cell_dataset, seed, split="x1", variant=variant, data_seed=data_seed)
                done = run_cell(CTR_RECIPE, cell, args, budget=budget)
                if done is None:  # recorded already (--resume) or not re-run (--verify)
                    continue
                yield _row(done, args)


def _row(done: CellRun, args: argparse.Namespace) -> dict[str, Any]:
    """The ledger row of a finished run: the runner's row plus best val AUC, epochs and a
    descriptive config (resolved model config, data summary; the run dir relative when it can be)."""
    res, cfg, row = done.result, done.config, done.row
    ck = res.trainer.checkpoint_callback
    best = ck.best_model_score if ck is not None else None
    dm = res.datamodule
    n_params = sum(p.numel() for p in res.task.model.parameters())
    row["val_auc"] = float(best) if best is not None else res.metrics.get("val/auc")
    row["epochs"] = int(res.trainer.current_epoch)
    row["config"] = json.dumps(
        {
            "model_kwargs": cfg["model"]["kwargs"],
            # the preset resolved: every model hyper-parameter of the row (spec aside)
            "model_config": {k: v for k, v in res.task.model.config.to_dict().items() if k != "feature_spec"},
            "task_kwargs": cfg["task"]["kwargs"],
            "params": n_params,
            "train_rows": len(dm.encoded["train"]),
            "data": dm.info.get("train", {}),
            "oov": {k: v.get("oov") for k, v in dm.spec.splits.items()},
            # missing-value policies applied, rows dropped, eval rows equal to train rows
            "data_report": dm.report,
            "run_dir": _relative(res.run_dir),
            "max_epochs": args.max_epochs,
            "train_data": "rebuilt from the raw log (NFM protocol)"
            if args.dataset == "frappe"
            else "official x1 train.csv",
        },
        sort_keys=True,
    )
    return row


def _relative(path: Any) -> str:
    """``path`` relative to the working directory when inside it (no machine path in the ledger)."""
    p = Path(str(path))
    try:
        return p.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path)
