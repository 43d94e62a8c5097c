"""``gatelab repro attention-unet``: U-Net vs Attention U-Net on ISBI 2012 membranes and DRIVE.

For each dataset, seed and model (``unet`` = ``attention-unet-2d`` with ``attention=False``, the
paper's baseline; ``attention-unet`` = the paper's multi-gate, deep-supervised network, both from
the same code path and identical apart from the gates) one :func:`~gatelab.core.harness.run_experiment`:

* data: random ``patch x patch`` training patches with flips, 90-degree rotations, small rotations
  and elastic deformation; membrane held-out fold = slices 24-29 (contiguous 5-fold split, fold 4),
  DRIVE = the 20 official test images (1st_manual, scored inside the FOV masks);
* training: ``iters`` Adam steps (``lr``, weight decay 1e-6 as the official config), cosine decay
  per step after 50 warm-up steps, Dice + cross-entropy loss, no validation/early stopping (the
  final weights are tested);
* test: sliding-window inference (``patch`` windows, 50% overlap, Gaussian blending) on the whole
  images; Dice, IoU (and AUC for DRIVE) of the foreground class over all scored pixels.

A row per run with ``dice``, ``iou``, ``auc``, ``params`` and, for Attention U-Net rows,
``dice_gain`` = its Dice minus the U-Net Dice of the same dataset and seed (the quantity the paper
reports: +2.6 points on CT-150). After the first seed's Attention U-Net run of each dataset, an
overlay of every gate's attention map on a test image is saved as PNG (see :func:`~gatelab.vision.analysis.figures.save_overlay`).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from gatelab.core.harness.recipes import Budget, Cell, Override, Recipe, recorded_row, run_cell

from ..analysis.figures import save_overlay

__all__ = ["UNET_RECIPE", "experiment_config", "run", "unet_settings"]

DATASETS = {
    "membrane": ("isbi2012-membrane", "fold4-of-5"),
    "drive": ("drive", "test"),
}
_KEYS = {name: key for key, (name, _split) in DATASETS.items()}  # row dataset -> data module
AUGMENT = {"flip": True, "rot90": True, "rotate_deg": 15.0, "elastic_alpha": 3.0, "elastic_grid": 4}


def unet_settings(cell: Cell, options: Mapping[str, Any]) -> dict[str, Any]:
    """The recipe's ``configure`` hook: what follows from the run's sizes (``iters``, ``patch``,
    ``batch_size``; ``quick``) -- the run name, patches per epoch, the sliding window, the
    warm-up and the ``--quick`` test limit."""
    key = _KEYS[cell.dataset]
    iters, patch = int(options["iters"]), int(options["patch"])
    quick = bool(options.get("quick"))
    return {
        "name": f"attention-unet-{key}-{cell.model}{'-quick' if quick else ''}",
        "data": {"kwargs": {"samples_per_epoch": iters * int(options["batch_size"])}},
        "task": {
            "kwargs": {"roi_size": [patch, patch]},
            "scheduler": {"name": "cosine", "interval": "step", "warmup": min(50, max(iters // 10, 1))},
        },
        "trainer": {"limit_test_batches": 2 if quick else None},
    }


#: the ``attention-unet`` table as data: both models from one code path, identical but the gates
UNET_RECIPE = Recipe(
    name="attention-unet",
    models=("unet", "attention-unet"),
    datasets=tuple(name for name, _ in DATASETS.values()),
    splits={name: (split,) for name, split in DATASETS.values()},
    seeds=(0, 1, 2),
    base={
        "test": True,
        "model": {"name": "attention-unet-2d", "kwargs": {}},
        "data": {"kwargs": {"augment": dict(AUGMENT), "val_cases": 0}},
        "task": {
            "name": "segmentation",
            "kwargs": {"sw_overlap": 0.5, "sw_mode": "gaussian", "sw_batch_size": 4},
            "optimizer": "adam",
            "weight_decay": 1e-6,
        },
        "trainer": {
            "max_epochs": 1,
            "accelerator": "cpu",
            "devices": 1,
            "checkpoint": {"enabled": True, "monitor": None, "save_top_k": 1, "save_last": False},
            "early_stopping": None,
            "loggers": ["csv"],
            "limit_val_batches": 0,
            "num_sanity_val_steps": 0,
            "log_every_n_steps": 25,
            "enable_model_summary": False,
        },
    },
    model_names={"unet": "attention-unet-2d", "attention-unet": "attention-unet-2d"},
    overrides=(
        Override({"model": {"kwargs": {"attention": False}}}, model="unet"),
        Override({"model": {"kwargs": {"attention": True}}}, model="attention-unet"),
        Override(
            {
                "data": {"name": "membrane", "kwargs": {"fold": 4, "n_folds": 5, "foreground": "membrane"}},
                "task": {"kwargs": {"auc": False}},
            },
            dataset="isbi2012-membrane",
        ),
        Override({"data": {"name": "drive"}, "task": {"kwargs": {"auc": True}}}, dataset="drive"),
    ),
    configure=unet_settings,
    option_paths={
        "feature_scale": "model.kwargs.feature_scale",
        "patch": "data.kwargs.patch_size",
        "batch_size": "data.kwargs.batch_size",
        "lr": "task.lr",
        "output_dir": "output_dir",
    },
    budget=Budget(max_steps=2000),
    metrics={"dice": "test/dice", "iou": "test/iou"},
)


def _cell(dataset: str, model: str, seed: int, quick: bool) -> Cell:
    name, split = DATASETS[dataset]
    return Cell(model, name, int(seed), split=split, variant="quick" if quick else None)


def _options(
    *, iters: int, batch_size: int, patch: int, feature_scale: float, lr: float, output_dir: str, quick: bool
) -> dict[str, Any]:
    return {
        "iters": iters, "batch_size": batch_size, "patch": patch, "feature_scale": feature_scale, "lr": lr,
        "output_dir": output_dir, "quick": quick,
    }  # fmt: skip


def experiment_config(
    dataset: str,
    model: str,
    seed: int,
    *,
    iters: int,
    batch_size: int,
    patch: int,
    feature_scale: float,
    lr: float,
    output_dir: str,
    quick: bool = False,
) -> dict[str, Any]:
    """The experiment (as a dict for :class:`~gatelab.core.harness.ExperimentConfig`) of one row:
    :data:`UNET_RECIPE`'s config of the cell."""
    options = _options(iters=iters, batch_size=batch_size, patch=patch, feature_scale=feature_scale, lr=lr,
                       output_dir=output_dir, quick=quick)  # fmt: skip
    return UNET_RECIPE.config(_cell(dataset, model, seed, quick), options, Budget(max_steps=iters))


def _overlay_dir(args: argparse.Namespace) -> Path:
    if args.overlays:
        return Path(args.overlays)
    from gatelab.core.harness.ledger import resolve_results_dir

    return resolve_results_dir(args.results_dir) / "attention-unet"


def run(args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    """Rows of the ``attention-unet`` table (see the module docstring), run by the harness's
    recipe runner; this module adds ``params``, ``train_steps``, ``dice_gain`` and the overlays."""
    quick = bool(args.quick)
    iters = 4 if quick else int(args.iters)
    options = _options(iters=iters, batch_size=args.batch_size, patch=args.patch, feature_scale=args.feature_scale,
                       lr=args.lr, output_dir=args.output_dir, quick=quick)  # fmt: skip
    budget = Budget(max_steps=iters)
    for dataset in args.datasets:
        for seed in args.seeds:
            dice_unet: float | None = None
            for model in args.models:
                cell = _cell(dataset, model, seed, quick)
                t0 = time.perf_counter()
                done = run_cell(UNET_RECIPE, cell, args, budget=budget, options=options)
                if done is None:  # recorded already (--resume) or not re-run (--verify)
                    if model == "unet":  # its Dice is the baseline of dice_gain
                        rec = recorded_row(UNET_RECIPE, cell, args, budget=budget, options=options)
                        dice_unet = float(rec["dice"]) if rec is not None else None
                    continue
                res, row = done.result, done.row
                m = res.metrics
                net = res.task.model
                row.update(
                    params=sum(p.numel() for p in net.parameters()),
                    train_steps=int(res.trainer.global_step),
                    run_s=round(time.perf_counter() - t0, 1),
                    run_dir=str(res.run_dir),
                )
                if "test/auc" in m:
                    row["auc"] = m["test/auc"]
                if model == "unet":
                    dice_unet = float(m["test/dice"])
                elif dice_unet is not None:
                    row["dice_gain"] = float(m["test/dice"]) - dice_unet
                if model == "attention-unet" and seed == args.seeds[0] and not args.dry_run:
                    case = res.datamodule.test[0]
                    suffix = "-quick" if quick else ""
                    path = save_overlay(net, case, _overlay_dir(args) / f"overlay-{dataset}{suffix}.png")
                    row["overlay"] = str(path)
                yield row
