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

``--dataset criteo_x1`` / ``avazu_x1`` (BARS's Criteo_x1 / Avazu_x1 CSV files, layouts in
:mod:`gatelab.recsys.data.layouts`; not shipped, see ``gatelab data``) train FinalMLP, GDCN-P and
DCNv2 from their ``criteo-x1`` / ``avazu-x1`` presets with the same protocol and each BARS run's
embedding regulariser (:data:`X1_TASK_KWARGS`). Every published value of the table is a
:class:`~gatelab.core.harness.recipes.Reference` with its source URL (:data:`CTR_REFERENCES`).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator, Mapping
from typing import Any

from gatelab.core.config import ConfigError, did_you_mean
from gatelab.core.harness import Option, ReproTable
from gatelab.core.harness.configs import ExperimentConfig
from gatelab.core.harness.recipes import Budget, Cell, Recipe, Reference, run_cell

__all__ = [
    "BARS_TRAINING",
    "CTR_DATASETS",
    "CTR_MODELS",
    "CTR_PRESET",
    "CTR_RECIPE",
    "CTR_REFERENCES",
    "CTR_TABLE",
    "CTR_TASK_KWARGS",
    "X1_MODELS",
    "X1_TASK_KWARGS",
    "ctr_config",
    "ctr_settings",
    "run_ctr",
]

#: the models the table runs by default (on Frappe)
CTR_MODELS = ("finalmlp", "dualmlp", "gdcn-p", "gdcn-s", "dcnv2", "dnn", "deepfm", "lr", "fignn")

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


def _bars(model: str, dataset: str, split: str, run: str, values: Mapping[str, float]) -> Reference:
    """A BARS leaderboard value: ``run`` is the run directory ``<Model>/<run>`` under :data:`_BARS`."""
    return Reference(model, dataset, values, f"BARS {run}: {_BARS}/{run}", split=split)


#: every published value of the table, with its source
CTR_REFERENCES: tuple[Reference, ...] = (
    _bars("finalmlp", "frappe", "x1", "FinalMLP/FinalMLP_frappe_x1", {"auc": 0.986072, "logloss": 0.148415}),
    Reference(
        "dualmlp", "frappe", {"auc": 0.984650, "logloss": 0.147083},
        "RecZoo FinalMLP results/DualMLP_frappe_x1_008_27a1726a.log: "
        "https://github.com/reczoo/RecZoo/tree/main/ranking/ctr/FinalMLP",
        split="x1",
    ),
    Reference("gdcn-p", "frappe", {"auc": 0.9852}, "Wang et al. CIKM 2023, Table 3 (own 8:1:1 split): "
              "https://arxiv.org/abs/2311.04635", split="x1"),
    Reference("gdcn-s", "frappe", {"auc": 0.9838}, "Wang et al. CIKM 2023, Table 3 (own 8:1:1 split): "
              "https://arxiv.org/abs/2311.04635", split="x1"),
    _bars("dcnv2", "frappe", "x1", "DCNv2/DCNv2_frappe_x1", {"auc": 0.984478, "logloss": 0.149149}),
    _bars("dnn", "frappe", "x1", "DNN/DNN_frappe_x1", {"auc": 0.983323, "logloss": 0.162229}),
    _bars("deepfm", "frappe", "x1", "DeepFM/DeepFM_frappe_x1", {"auc": 0.984243, "logloss": 0.148174}),
    _bars("lr", "frappe", "x1", "LR/LR_frappe_x1", {"auc": 0.935584, "logloss": 0.307643}),
    _bars("fignn", "frappe", "x1", "FiGNN/FiGNN_frappe_x1", {"auc": 0.976115, "logloss": 0.203715}),
    # Criteo_x1 / Avazu_x1: BARS runs (as on Frappe, the logged run 1 where BARS lists 5 runs)
    _bars("finalmlp", "criteo_x1", "x1", "FinalMLP/FinalMLP_criteo_x1", {"auc": 0.814902, "logloss": 0.437025}),
    _bars("finalmlp", "avazu_x1", "x1", "FinalMLP/FinalMLP_avazu_x1", {"auc": 0.766566, "logloss": 0.365803}),
    _bars("dcnv2", "criteo_x1", "x1", "DCNv2/DCNv2_criteo_x1", {"auc": 0.814195, "logloss": 0.437788}),
    _bars("dcnv2", "avazu_x1", "x1", "DCNv2/DCNv2_avazu_x1", {"auc": 0.765607, "logloss": 0.366447}),
    # GDCN-P has no BARS x1 run: the paper's Criteo value on its own random 8:1:1 split of the
    # Kaggle data (not the x1 split; the paper's Avazu value is left out: not verified here)
    Reference("gdcn-p", "criteo_x1", {"auc": 0.8161, "logloss": 0.4360},
              "Wang et al. CIKM 2023, Table 3 (own 8:1:1 Criteo split, not x1): "
              "https://paperswithcode.com/paper/towards-deeper-lighter-and-interpretable-1", split="x1"),
)  # fmt: skip

CTR_TABLE = ReproTable(
    name="ctr",
    description=(
        "CTR test AUC/logloss on Frappe (--dataset criteo_x1 / avazu_x1: BARS's Criteo_x1 / Avazu_x1 "
        "files, FinalMLP, GDCN-P and DCNv2 from their x1 presets, each BARS run's embedding L2). split x1 = the official Frappe_x1 test.csv (28,860 rows; "
        "validation/early stopping on the official valid.csv); the x1 train split is not available, so "
        "training uses a train split rebuilt from the raw log with NFM's protocol (log rows minus the x1 "
        "valid/test positives + 134,423 seeded sampled negatives, 202,027 rows; the raw->x1 index mapping "
        "is verified on every run). BARS training protocol for every model (Adam 1e-3, batch 4096, "
        "embedding L2 0.05 (Fi-GNN: 0.001, as its BARS run), lr x0.1 on plateau, early stop on val AUC, patience 2). Published values: "
        "BARS/RecZoo Frappe_x1 runs (official train); GDCN-P/-S from the GDCN paper, which used its own "
        "random 8:1:1 split of the NFM files"
    ),
    paper=(
        "FinalMLP: Mao et al. AAAI 2023 / BARS Frappe_x1; GDCN: Wang et al. CIKM 2023, Table 3; "
        "DNN, DCNv2, DeepFM, LR: BARS Frappe_x1 leaderboard; DualMLP: RecZoo FinalMLP results; "
        "Fi-GNN: Li et al. CIKM 2019 / BARS Frappe_x1 (FiGNN_frappe_x1_003_57243619); Criteo_x1 / "
        "Avazu_x1: BARS FinalMLP and DCNv2 runs, GDCN-P's paper value (each reference's source: "
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
            help=f"models to run (each from its config's preset for the dataset); default: "
            f"{' '.join(CTR_MODELS)} on Frappe, {' '.join(X1_MODELS)} on Criteo_x1 / Avazu_x1",
        ),
        Option(
            "--max-epochs", type=int, default=100, help="epoch limit (early stopping usually ends earlier)"
        ),
        Option("--output-dir", default="runs/ctr", help="where run directories go"),
        Option("--negative-seed", type=int, default=2021, help="seed of Frappe's negative sampling"),
    ],
    domain="recsys",
    metrics=["auc", "logloss", "val_auc", "epochs"],
    default_seeds=(0, 1),
    not_in_hash=("models", "output_dir"),
)

_T = BARS_TRAINING


def ctr_settings(cell: Cell, options: Mapping[str, Any]) -> dict[str, Any]:
    """The recipe's ``configure`` hook: ``cell.model``'s preset (:data:`CTR_PRESET`) and task
    kwargs (:data:`CTR_TASK_KWARGS`), the training data named by the ``dataset`` option
    (``frappe`` or ``frappe_x1``), its run name, Frappe's negative-sampling seed, and the
    ``--quick`` evaluation limits."""
    dataset = options.get("dataset") or cell.dataset
    task = _task_kwargs(cell.model, dataset)
    data: dict[str, Any] = {"dataset": dataset}
    if dataset == "frappe":
        data["negative_seed"] = options.get("negative_seed", 2021)
    out: dict[str, Any] = {
        "name": f"ctr-{dataset}-{cell.model}" + ("-quick" if options.get("quick") else ""),
        "model": {"kwargs": {"preset": CTR_DATASETS[dataset][1]}},
        "data": {"kwargs": data},
        "task": {"kwargs": task},
    }
    if options.get("quick"):
        out["trainer"] = {"limit_val_batches": 2, "limit_test_batches": 2}
    return out


#: the ``ctr`` table as data: every model's ``frappe-x1`` preset with the BARS training protocol
CTR_RECIPE = Recipe(
    name="ctr",
    models=tuple(dict.fromkeys(CTR_MODELS + X1_MODELS)),
    datasets=("frappe", "criteo_x1", "avazu_x1"),
    splits=("x1",),
    seeds=(0, 1),
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
    budget=Budget(max_epochs=100),
    metrics={"auc": "test/auc", "logloss": "test/logloss"},
    references=CTR_REFERENCES,
)
QUICK_BUDGET = Budget(max_epochs=1, limit_train_batches=3, note="quick: 2 validation and 2 test batches")


def _budget(max_epochs: int, quick: bool) -> Budget:
    return QUICK_BUDGET if quick else Budget(max_epochs=max_epochs)


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
    (``model``'s preset with BARS training)."""
    options = {"dataset": dataset, "negative_seed": negative_seed, "quick": quick, "output_dir": output_dir}
    _task_kwargs(model, dataset)  # a model the dataset has no row for: one clear error
    cell = Cell(model, CTR_DATASETS[dataset][0], seed, split="x1")
    cfg = CTR_RECIPE.config(cell, options, _budget(max_epochs, quick))
    return ExperimentConfig.from_dict(cfg)


def run_ctr(args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    """Rows of the ``ctr`` table: one per (model, seed), run by the harness's recipe runner."""
    cell_dataset = CTR_DATASETS[args.dataset][0]
    models = args.models if args.models else (CTR_MODELS if cell_dataset == "frappe" else X1_MODELS)
    for model in models:
        _task_kwargs(model, args.dataset)  # fail early on a model the table has no row for
    variant = "quick" if args.quick else ("official-train" if args.dataset == "frappe_x1" else None)
    budget = _budget(args.max_epochs, args.quick)
    for seed in args.seeds:
        for model in models:
            done = run_cell(
                CTR_RECIPE, Cell(model, cell_dataset, seed, split="x1", variant=variant), args, budget=budget
            )
            if done is None:  # recorded already (--resume) or not re-run (--verify)
                continue
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
                    "model_config": {
                        k: v for k, v in res.task.model.config.to_dict().items() if k != "feature_spec"
                    },
                    "task_kwargs": cfg["task"]["kwargs"],
                    "params": n_params,
                    "train_rows": len(dm.encoded["train"]),
                    "data": dm.info.get("train", {}),
                    "oov": {k: v.get("oov") for k, v in dm.spec.splits.items()},
                    # missing-value policies applied, rows dropped, eval rows equal to train rows
                    "data_report": dm.report,
                    "run_dir": str(res.run_dir),
                    "max_epochs": args.max_epochs,
                    "train_data": "rebuilt from the raw log (NFM protocol)"
                    if args.dataset == "frappe"
                    else "official x1 train.csv",
                },
                sort_keys=True,
            )
            yield row
