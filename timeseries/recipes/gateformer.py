"""``gatelab repro gateformer``: Gateformer vs iTransformer on the long-horizon benchmarks.

For every dataset present (ETTh1 always: a copy ships with gatelab), every horizon (96, 192,
336, 720; ILI 24, 36, 48, 60 with lookback 36), every seed and both models, one run of the
official protocol: the official runs (model part: the config presets ``"<dataset>-<horizon>"`` of
:class:`~gatelab.timeseries.models.gateformer.GateformerConfig` / ``ITransformerConfig``; training
part: :data:`TRAINING`), Adam, MSE
loss, ``lradj type1`` (lr halved after every epoch from the second on), at most 10 epochs with
early stopping on the validation MSE (patience 3), the best checkpoint tested on the test split;
MSE and MAE on the standardised data. Per dataset, model and seed a row ``split = "avg"``
holds the mean over the four horizons. References: the published iTransformer values
(Liu et al. 2024, Table 10 full results; their 4-horizon averages are the ones the Gateformer
issue quotes).

Outputs (results dir, default ``docs/results``): ``gateformer.jsonl`` / ``.md`` (the harness
ledger), ``gateformer-summary.md`` (per-dataset averages, ours vs published, whether Gateformer
beats iTransformer, wall time), and per dataset a forecast plot and a gate-value plot
(``gateformer_<dataset>_<horizon>_forecast.png`` / ``_gates.png``) for the first seed and
horizon.

``--budget cpu`` (the regeneration) applies the CPU reductions (:data:`CPU_BUDGET`) with equal
optimizer steps per epoch for every model (:func:`equal_steps`: the most any preset takes under the
window cap, for the most epochs of the presets, so ``lradj type1`` halves the learning rate after the
same step for both), and also runs each model at its preset where that differs (iTransformer's
batch 32); every row says its budget in the ``budget`` column (:func:`row_budgets`), and the table
declares its seed-paired comparisons (:func:`budget_comparisons`). Seeds 2021 (official), 2022, 2023.
``--quick`` is a smoke run (ETTh1, horizon 96, one seed, one short epoch) written to its own ledger
``gateformer-quick``, the README's main job and the CI row (bit for bit on CPU).

Gateformer's own published values (arXiv 2505.00307) are not references here: no text source of
them was found (:data:`GATEFORMER_PAPER_NOTE`).

This module stays import-light (no pandas / Lightning at import): ``timeseries/__init__`` imports
it to register the table.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import shutil
import statistics
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from gatelab.core.harness.recipes import Budget as RunBudget
from gatelab.core.harness.recipes import Cell, Override, Recipe, Reference, recorded_row, run_cell
from gatelab.core.harness.repro import Option, ReproTable, register_table
from gatelab.core.harness.stats import Comparison

from ..data.ltsf_datasets import LTSF_DATASETS
from ..models.gateformer import MODELS, GateformerConfig, ITransformerConfig

__all__ = [
    "BUDGETS",
    "CPU_BUDGET",
    "GATEFORMER_PAPER_NOTE",
    "GATEFORMER_RECIPE",
    "GATEFORMER_TABLE",
    "ITRANSFORMER_PAPER",
    "TRAINING",
    "Budget",
    "RowBudget",
    "Training",
    "budget_comparisons",
    "cell_settings",
    "equal_steps",
    "equal_steps_label",
    "experiment_config",
    "official_run",
    "preset_label",
    "row_budgets",
    "run_gateformer_table",
    "write_summary",
]

TABLE = "gateformer"
QUICK_TABLE = "gateformer-quick"
#: the datasets the table runs by default (those present; ECL/Traffic/Solar when you have them)
TABLE_DATASETS = ("etth1", "etth2", "ettm1", "ettm2", "weather", "exchange", "ili", "ecl", "traffic", "solar")
DEFAULT_SEEDS = (2021, 2022, 2023)

#: published iTransformer results (Liu et al., ICLR 2024, Table 10; lookback 96): dataset ->
#: horizon -> (mse, mae)
ITRANSFORMER_PAPER: dict[str, dict[int, tuple[float, float]]] = {
    "etth1": {96: (0.386, 0.405), 192: (0.441, 0.436), 336: (0.487, 0.458), 720: (0.503, 0.491)},
    "etth2": {96: (0.297, 0.349), 192: (0.380, 0.400), 336: (0.428, 0.432), 720: (0.427, 0.445)},
    "ettm1": {96: (0.334, 0.368), 192: (0.377, 0.391), 336: (0.426, 0.420), 720: (0.491, 0.459)},
    "ettm2": {96: (0.180, 0.264), 192: (0.250, 0.309), 336: (0.311, 0.348), 720: (0.412, 0.407)},
    "weather": {96: (0.174, 0.214), 192: (0.221, 0.254), 336: (0.278, 0.296), 720: (0.358, 0.349)},
    "exchange": {96: (0.086, 0.206), 192: (0.177, 0.299), 336: (0.331, 0.417), 720: (0.847, 0.691)},
    "ecl": {96: (0.148, 0.240), 192: (0.162, 0.253), 336: (0.178, 0.269), 720: (0.225, 0.317)},
    "traffic": {96: (0.395, 0.268), 192: (0.417, 0.276), 336: (0.433, 0.283), 720: (0.467, 0.302)},
    "solar": {96: (0.203, 0.237), 192: (0.233, 0.261), 336: (0.248, 0.273), 720: (0.249, 0.275)},
}
#: published 4-horizon averages (the paper's "Avg" rows; equal to the means above up to rounding)
ITRANSFORMER_PAPER_AVG: dict[str, tuple[float, float]] = {
    "etth1": (0.454, 0.447), "etth2": (0.383, 0.407), "ettm1": (0.407, 0.410), "ettm2": (0.288, 0.332),
    "weather": (0.258, 0.278), "exchange": (0.360, 0.403), "ecl": (0.178, 0.270), "traffic": (0.428, 0.282),
    "solar": (0.233, 0.262),
}  # fmt: skip


_ITR_SOURCE = "Liu et al. 2024 (iTransformer, ICLR), Table 10, lookback 96"


def _references() -> tuple[Reference, ...]:
    refs: list[Reference] = []
    for ds, by_h in ITRANSFORMER_PAPER.items():
        for h, (mse, mae) in by_h.items():
            refs.append(Reference("itransformer", ds, {"mse": mse, "mae": mae}, _ITR_SOURCE, horizon=h))
        mse, mae = ITRANSFORMER_PAPER_AVG[ds]
        refs.append(
            Reference("itransformer", ds, {"mse": mse, "mae": mae}, _ITR_SOURCE + " (Avg)", split="avg")
        )
    return tuple(refs)


@dataclasses.dataclass(frozen=True)
class Budget:
    """Reductions of the official protocol for a small CPU budget (``--budget cpu``).

    ``max_train_windows``: training windows per epoch (a fresh random subset each epoch, as
    ``ceil(max_train_windows / batch_size)`` batches, so both models see the same number of
    windows whatever their batch size; ``None`` = all). ``max_seeds``: seeds run on this dataset
    (the first ones of ``--seeds``). ``width``: caps ``d_model`` and ``hidden_dim`` of both models'
    presets. ``val_stride``: validate on every k-th window (early stopping only; the test split is
    always complete). Everything else (presets, 10 epochs, patience 3, schedule) stays official.
    """

    max_train_windows: int | None = None
    max_seeds: int | None = None
    width: int | None = None
    val_stride: int = 1

    def describe(self) -> str:
        parts = []
        if self.max_train_windows is not None:
            parts.append(f"<= {self.max_train_windows} train windows/epoch")
        if self.max_seeds is not None:
            parts.append(f"<= {self.max_seeds} seed(s)")
        if self.width is not None:
            parts.append(f"d_model, hidden_dim <= {self.width}")
        if self.val_stride > 1:
            parts.append(f"validation on every {self.val_stride}th window")
        return ", ".join(parts) or "official"


#: the CPU reductions (``--budget cpu`` / ``equal-steps`` / ``preset-cpu``) for 2 shared CPU cores
#: (see docs/gateformer.md); every seed of ``--seeds`` runs (default: 2021, 2022, 2023)
CPU_BUDGET: dict[str, Budget] = {
    "etth1": Budget(max_train_windows=2048),
    "etth2": Budget(max_train_windows=2048),
    "exchange": Budget(max_train_windows=2048),
    "ili": Budget(),
    "ettm1": Budget(max_train_windows=2048, val_stride=4),
    "ettm2": Budget(max_train_windows=2048, val_stride=4),
    "weather": Budget(max_train_windows=2048, width=128, val_stride=4),
    "ecl": Budget(max_train_windows=2048, width=128, val_stride=4),
    "traffic": Budget(max_train_windows=1024, width=128, val_stride=4),
    "solar": Budget(max_train_windows=2048, width=128, val_stride=4),
}
#: ``--quick``: one seed, one epoch of 2048 windows (a smoke run of the whole pipeline)
QUICK_BUDGET = Budget(max_train_windows=2048, max_seeds=1)


# --------------------------------------------------------------------------- the official runs' training part
#
# The model part of every official run is its config preset "<dataset>-<horizon>"
# (GateformerConfig.presets / ITransformerConfig.presets, with their sources). The training part,
# from the same scripts:
#
# * Gateformer: ``nyuolab/Gateformer`` ``scripts/multivariate_forecasting/*/Gateformer*.sh`` (commit
#   f209962): ``learning_rate`` per dataset x horizon, ``batch_size 8`` everywhere; ``run.py``
#   defaults: 10 epochs, patience 3, Adam, ``lradj type1``, seed 2021.
# * iTransformer: ``thuml/iTransformer`` ``scripts/multivariate_forecasting/*/iTransformer*.sh``:
#   ``learning_rate`` / ``batch_size`` where the script sets them, else the ``run.py`` defaults
#   1e-4 / 32; 10 epochs, patience 3, Adam, ``lradj type1``. The Exchange-336 script trains 1 epoch.
#
# ILI has no official script for either model (neither paper reports it); its runs are ours
# (``source == "ours"``), the same for both models.
#
# ``lradj type1`` sets the learning rate to ``lr * 0.5 ** (epoch - 1)`` *after* epoch ``epoch``
# (1-based), so epochs 1 and 2 run at ``lr``, epoch 3 at ``lr / 2``, ...: in the harness this is
# ``scheduler: {name: exponential, gamma: 0.5, warmup: 1, warmup_start_factor: 1.0}``.


@dataclasses.dataclass(frozen=True)
class Training:
    """The training part of one official run: Adam's learning rate, batch size, epochs, source."""

    lr: float
    batch_size: int
    epochs: int = 10
    source: str = "official"


#: (model, dataset, horizon) -> the training part of its official run
TRAINING: dict[tuple[str, str, int], Training] = {
    ("gateformer", "etth1", 96): Training(0.0001, 8),
    ("gateformer", "etth1", 192): Training(0.0005, 8),
    ("gateformer", "etth1", 336): Training(0.0005, 8),
    ("gateformer", "etth1", 720): Training(0.0005, 8),
    ("gateformer", "etth2", 96): Training(0.0005, 8),
    ("gateformer", "etth2", 192): Training(0.0005, 8),
    ("gateformer", "etth2", 336): Training(0.0001, 8),
    ("gateformer", "etth2", 720): Training(0.0001, 8),
    ("gateformer", "ettm1", 96): Training(0.0005, 8),
    ("gateformer", "ettm1", 192): Training(0.0005, 8),
    ("gateformer", "ettm1", 336): Training(0.0001, 8),
    ("gateformer", "ettm1", 720): Training(0.0005, 8),
    ("gateformer", "ettm2", 96): Training(0.0005, 8),
    ("gateformer", "ettm2", 192): Training(0.0001, 8),
    ("gateformer", "ettm2", 336): Training(0.0005, 8),
    ("gateformer", "ettm2", 720): Training(0.0005, 8),
    ("gateformer", "weather", 96): Training(0.0001, 8),
    ("gateformer", "weather", 192): Training(0.0001, 8),
    ("gateformer", "weather", 336): Training(0.0005, 8),
    ("gateformer", "weather", 720): Training(0.0001, 8),
    ("gateformer", "exchange", 96): Training(0.0001, 8),
    ("gateformer", "exchange", 192): Training(0.001, 8),
    ("gateformer", "exchange", 336): Training(0.0001, 8),
    ("gateformer", "exchange", 720): Training(0.001, 8),
    ("gateformer", "ecl", 96): Training(0.0005, 8),
    ("gateformer", "ecl", 192): Training(0.0005, 8),
    ("gateformer", "ecl", 336): Training(0.0005, 8),
    ("gateformer", "ecl", 720): Training(0.0005, 8),
    ("gateformer", "traffic", 96): Training(0.0005, 8),
    ("gateformer", "traffic", 192): Training(0.0005, 8),
    ("gateformer", "traffic", 336): Training(0.0005, 8),
    ("gateformer", "traffic", 720): Training(0.0005, 8),
    ("gateformer", "solar", 96): Training(0.0001, 8),
    ("gateformer", "solar", 192): Training(0.0001, 8),
    ("gateformer", "solar", 336): Training(0.0001, 8),
    ("gateformer", "solar", 720): Training(0.0001, 8),
    ("gateformer", "ili", 24): Training(0.0005, 8, source='ours'),
    ("gateformer", "ili", 36): Training(0.0005, 8, source='ours'),
    ("gateformer", "ili", 48): Training(0.0005, 8, source='ours'),
    ("gateformer", "ili", 60): Training(0.0005, 8, source='ours'),
    ("itransformer", "etth1", 96): Training(0.0001, 32),
    ("itransformer", "etth1", 192): Training(0.0001, 32),
    ("itransformer", "etth1", 336): Training(0.0001, 32),
    ("itransformer", "etth1", 720): Training(0.0001, 32),
    ("itransformer", "etth2", 96): Training(0.0001, 32),
    ("itransformer", "etth2", 192): Training(0.0001, 32),
    ("itransformer", "etth2", 336): Training(0.0001, 32),
    ("itransformer", "etth2", 720): Training(0.0001, 32),
    ("itransformer", "ettm1", 96): Training(0.0001, 32),
    ("itransformer", "ettm1", 192): Training(0.0001, 32),
    ("itransformer", "ettm1", 336): Training(0.0001, 32),
    ("itransformer", "ettm1", 720): Training(0.0001, 32),
    ("itransformer", "ettm2", 96): Training(0.0001, 32),
    ("itransformer", "ettm2", 192): Training(0.0001, 32),
    ("itransformer", "ettm2", 336): Training(0.0001, 32),
    ("itransformer", "ettm2", 720): Training(0.0001, 32),
    ("itransformer", "weather", 96): Training(0.0001, 32),
    ("itransformer", "weather", 192): Training(0.0001, 32),
    ("itransformer", "weather", 336): Training(0.0001, 32),
    ("itransformer", "weather", 720): Training(0.0001, 32),
    ("itransformer", "exchange", 96): Training(0.0001, 32),
    ("itransformer", "exchange", 192): Training(0.0001, 32),
    ("itransformer", "exchange", 336): Training(0.0001, 32, epochs=1),
    ("itransformer", "exchange", 720): Training(0.0001, 32),
    ("itransformer", "ecl", 96): Training(0.0005, 16),
    ("itransformer", "ecl", 192): Training(0.0005, 16),
    ("itransformer", "ecl", 336): Training(0.0005, 16),
    ("itransformer", "ecl", 720): Training(0.0005, 16),
    ("itransformer", "traffic", 96): Training(0.001, 16),
    ("itransformer", "traffic", 192): Training(0.001, 16),
    ("itransformer", "traffic", 336): Training(0.001, 16),
    ("itransformer", "traffic", 720): Training(0.001, 16),
    ("itransformer", "solar", 96): Training(0.0005, 32),
    ("itransformer", "solar", 192): Training(0.0005, 32),
    ("itransformer", "solar", 336): Training(0.0005, 32),
    ("itransformer", "solar", 720): Training(0.0005, 32),
    ("itransformer", "ili", 24): Training(0.0005, 8, source='ours'),
    ("itransformer", "ili", 36): Training(0.0005, 8, source='ours'),
    ("itransformer", "ili", 48): Training(0.0005, 8, source='ours'),
    ("itransformer", "ili", 60): Training(0.0005, 8, source='ours'),
}  # fmt: skip

#: model -> the config class whose presets hold the model part of its official runs
_CONFIGS = {"gateformer": GateformerConfig, "itransformer": ITransformerConfig}


def _preset_name(dataset: str, horizon: int) -> str:
    return f"{dataset}-{horizon}"


def official_run(model: str, dataset: str, horizon: int) -> Training:
    """The training part of ``model``'s official run on ``dataset`` at ``horizon`` (its model part
    is the config preset ``"<dataset>-<horizon>"``); a clear ``KeyError`` for unknown triples."""
    key = (model, dataset.lower(), int(horizon))
    if key not in TRAINING:
        known = sorted({h for (m, d, h) in TRAINING if m == key[0] and d == key[1]})
        raise KeyError(
            f"no official run of {model} on {dataset} at horizon {horizon}"
            + (f"; runs exist for horizons {known}" if known else f"; models: {MODELS}")
        )
    return TRAINING[key]


# --------------------------------------------------------------------------- budgets of the rows
#
# Under a cap on training windows per epoch (the CPU budgets) a model's preset batch size sets its
# optimizer steps per epoch: Gateformer (batch 8) takes ceil(2048 / 8) = 256 steps per epoch,
# iTransformer (batch 32) 64, and with ``lradj type1`` halving the learning rate every epoch
# iTransformer gets a quarter of Gateformer's steps at every learning rate. The ``equal steps``
# budget gives every model of the comparison the same optimizer steps per epoch -- the most any
# model's preset takes under the cap -- and the same epochs (the most of the presets), each model
# with its own preset batch size and learning rate: the schedule is then the same function of the
# step for both. ``preset cpu`` keeps each model's preset under the cap (the old protocol).

#: ``--budget`` choices: ``cpu`` runs every model at equal steps, plus its preset-cpu run where
#: that differs (iTransformer); ``equal-steps`` / ``preset-cpu`` run only that budget
BUDGETS = ("official", "cpu", "equal-steps", "preset-cpu")


@dataclasses.dataclass(frozen=True)
class RowBudget:
    """The budget one row trains under: ``kind`` ``"preset"`` (the model's preset batch and epochs
    under the caps) or ``"equal-steps"`` (``num_train_batches`` optimizer steps per epoch for
    ``max_epochs`` epochs, every model alike); ``label`` is the row's ``budget`` column, equal for
    every model trained under the same budget."""

    kind: str
    label: str
    num_train_batches: int | None = None
    max_epochs: int | None = None


def _cap_text(budget: Budget) -> str:
    parts = []
    if budget.width is not None:
        parts.append(f"d_model, hidden_dim <= {budget.width}")
    if budget.val_stride > 1:
        parts.append(f"val every {budget.val_stride}th window")
    return "".join(f", {p}" for p in parts)


def _max_epochs(dataset: str, horizon: int) -> int:
    return max(official_run(m, dataset, horizon).epochs for m in MODELS)


def equal_steps(dataset: str, horizon: int, budget: Budget, epochs: int | None = None) -> tuple[int, int] | None:
    """``(steps per epoch, epochs)`` of the ``equal steps`` budget of ``dataset`` at ``horizon``
    under ``budget``'s caps: the most optimizer steps per epoch any model's preset takes under the
    window cap (``ceil(max_train_windows / batch_size)``) and the most epochs of the presets, over
    :data:`MODELS` (``epochs``: an override, ``--epochs``). ``None`` without a window cap (every
    model then sees full-data epochs)."""
    cap = budget.max_train_windows
    if cap is None:
        return None
    steps = max(-(-cap // official_run(m, dataset, horizon).batch_size) for m in MODELS)
    return steps, epochs if epochs is not None else _max_epochs(dataset, horizon)


def preset_label(
    dataset: str, horizon: int, budget: Budget, kind: str = "preset-cpu", epochs: int | None = None
) -> str:
    """The ``budget`` column of preset rows under ``--budget kind``: ``"official: full data/epoch,
    <= 10 epochs"``, ``"quick: 1 epoch, <= 2048 windows/epoch"``, else ``"preset cpu: <= 2048
    windows/epoch, <= 10 epochs"`` (plus the width and validation caps; ``epochs``: an override)."""
    cap = budget.max_train_windows
    windows = f"<= {cap} windows/epoch" if cap is not None else "full data/epoch"
    if kind == "quick":
        return f"quick: 1 epoch, {windows}"
    epochs = f"<= {epochs if epochs is not None else _max_epochs(dataset, horizon)} epochs"
    if kind == "official":
        return f"official: {windows}, {epochs}{_cap_text(budget)}"
    return f"preset cpu: {windows}, {epochs}{_cap_text(budget)}"


def equal_steps_label(steps: int, epochs: int, budget: Budget) -> str:
    """The ``budget`` column of equal-steps rows: ``"equal steps 2560: 256/epoch, <= 10 epochs"``."""
    return f"equal steps {steps * epochs}: {steps}/epoch, <= {epochs} epochs{_cap_text(budget)}"


def row_budgets(
    model: str, dataset: str, horizon: int, kind: str, budget: Budget, epochs: int | None = None
) -> list[RowBudget]:
    """The budgets ``model`` runs under on ``dataset`` at ``horizon`` for ``--budget kind``
    (:data:`BUDGETS`, or ``"quick"``) with the caps ``budget`` (``epochs``: ``--epochs``, over
    the presets' epochs), in order.

    ``cpu``: the equal-steps run, then the preset-cpu run when the model's preset differs from it
    (iTransformer's batch 32 takes 64 steps per epoch); Gateformer's preset (batch 8: 256 steps of
    the 2048 windows) *is* the equal-steps budget, so it runs once. Without a window cap (ILI,
    ``official``) every model sees full-data epochs: one preset run."""
    base = "gateformer" if model == "gateformer-nogate" else model
    if kind not in (*BUDGETS, "quick"):
        raise ValueError(f"unknown budget {kind!r}; choose from {', '.join(BUDGETS)}")
    preset = RowBudget("preset", preset_label(dataset, horizon, budget, kind, epochs))
    eq = equal_steps(dataset, horizon, budget, epochs) if kind in ("cpu", "equal-steps") else None
    if eq is None:
        return [preset]
    equal = RowBudget("equal-steps", equal_steps_label(*eq, budget), num_train_batches=eq[0], max_epochs=eq[1])
    run = official_run(base, dataset, horizon)
    own = (-(-int(budget.max_train_windows or 0) // run.batch_size), epochs if epochs is not None else run.epochs)
    if kind == "cpu" and own != eq:
        return [equal, preset]
    return [equal]


def _label_pairs() -> list[tuple[str, str]]:
    """Every (equal-steps label, preset-cpu label) of a cell where iTransformer runs both."""
    pairs: dict[tuple[str, str], None] = {}
    for (model, ds, h), _ in TRAINING.items():
        if model != "itransformer" or ds not in CPU_BUDGET:
            continue
        rbs = row_budgets(model, ds, h, "cpu", CPU_BUDGET[ds])
        if len(rbs) == 2:
            pairs[(rbs[0].label, rbs[1].label)] = None
    return list(pairs)


def budget_comparisons(equal: str, preset: str) -> list[Comparison]:
    """The comparisons across the budgets ``equal`` and ``preset`` (two ``budget`` labels), in
    MSE and MAE: iTransformer at equal steps − iTransformer at its preset (the measured effect
    of the fix) and Gateformer (whose preset is the equal-steps budget) − iTransformer at its
    preset (the old protocol's comparison)."""
    out = []
    for m in ("mse", "mae"):
        out.append(Comparison(m, "itransformer", "itransformer", True, model_where={"budget": equal},
                              rival_where={"budget": preset}, label="iTransformer: equal steps − preset cpu"))
        out.append(Comparison(m, "gateformer", "itransformer", True, model_where={"budget": equal},
                              rival_where={"budget": preset},
                              label="Gateformer (equal steps = its preset) − iTransformer preset cpu (old protocol)"))
    return out  # fmt: skip


def _comparisons() -> list[Comparison]:
    """The table's paired comparisons (by seed): Gateformer − iTransformer and Gateformer − its
    no-gate ablation under every budget (rows of equal ``budget`` pair), and
    :func:`budget_comparisons` for every pair of labels the regeneration (``--budget cpu``,
    :data:`CPU_BUDGET`, the presets' epochs) writes. Runs under other caps or ``--epochs`` have
    other labels: evaluate them with ``paired_comparisons(records, budget_comparisons(eq, pre))``."""
    out = [Comparison(m, "gateformer", "itransformer", True, label="Gateformer − iTransformer") for m in ("mse", "mae")]
    out += [Comparison(m, "gateformer", "gateformer-nogate", True, label="Gateformer − no gates") for m in ("mse", "mae")]
    for eq, pre in _label_pairs():
        out += budget_comparisons(eq, pre)
    return out  # fmt: skip


def _dataset_arg(name: str) -> str:
    key = name.lower()
    if key not in LTSF_DATASETS:
        raise argparse.ArgumentTypeError(f"unknown dataset {name!r}; choose from {', '.join(TABLE_DATASETS)}")
    return key


OPTIONS = [
    Option("--dataset", type=_dataset_arg, nargs="+", default=None,
           help=f"datasets (default: every one of {', '.join(TABLE_DATASETS)} present in the data dir; ETTh1 always)"),
    Option("--horizon", type=int, nargs="+", default=None, help="horizons (default: the dataset's four)"),
    Option("--models", nargs="+", choices=[*MODELS, "gateformer-nogate"], default=list(MODELS),
           help="models (gateformer-nogate: Gateformer with gates=False, the ablation)"),
    Option("--epochs", type=int, default=None, help="max epochs (default: the official run's, 10)"),
    Option("--patience", type=int, default=3, help="early-stopping patience (validation MSE)"),
    Option("--budget", choices=list(BUDGETS), default="official",
           help="official protocol; or the CPU reductions (CPU_BUDGET) with equal optimizer steps for every "
                "model plus each model's preset where it differs (cpu), equal steps only, or presets only"),
    Option("--eval-batch-size", type=int, default=256, help="validation/test batch size (speed only)"),
    Option("--out", default="runs/repro", help="run directories (checkpoints, logs)"),
    Option("--keep-checkpoints", action="store_true", help="keep each run's checkpoints"),
    Option("--no-plots", action="store_true", help="skip the forecast and gate plots"),
    Option("--accelerator", default="auto", help="Lightning accelerator (cpu, gpu, auto)"),
]  # fmt: skip


class _Horizons(Mapping[str, tuple[int, ...]]):
    """dataset -> its horizons, read from :data:`LTSF_DATASETS` on access (tests swap entries)."""

    def __getitem__(self, dataset: str) -> tuple[int, ...]:
        return tuple(LTSF_DATASETS[dataset].horizons)

    def __iter__(self) -> Iterator[str]:
        return iter(TABLE_DATASETS)

    def __len__(self) -> int:
        return len(TABLE_DATASETS)


def _ltsf_budget(options: Mapping[str, Any], dataset: str) -> Budget:
    if options.get("ltsf_budget") is not None:
        return options["ltsf_budget"]
    if options.get("quick"):
        return QUICK_BUDGET
    return CPU_BUDGET[dataset] if options.get("budget", "official") != "official" else Budget()


def _budget_kind(options: Mapping[str, Any]) -> str:
    return "quick" if options.get("quick") else str(options.get("budget") or "official")


def _row_budget(cell: Cell, options: Mapping[str, Any]) -> RowBudget:
    """``options["row_budget"]`` when set, else the cell's first budget under the options."""
    if options.get("row_budget") is not None:
        return options["row_budget"]
    return row_budgets(cell.model, cell.dataset, int(cell.horizon or 0), _budget_kind(options),
                       _ltsf_budget(options, cell.dataset), options.get("epochs"))[0]  # fmt: skip


def cell_settings(cell: Cell, options: Mapping[str, Any]) -> dict[str, Any]:
    """The recipe's ``configure`` hook: what the table reads from its data tables for ``cell`` --
    the official run of (model, dataset, horizon) (the model's config preset
    ``"<dataset>-<horizon>"``; lr, batch size, epochs from :data:`TRAINING`), the dataset's
    lookback, and the CPU budget's caps on the preset's widths (``options``: the table options;
    an explicit ``ltsf_budget`` wins); the row's budget (``options["row_budget"]``, a
    :class:`RowBudget`, else the first of :func:`row_budgets`): a preset run caps the windows per
    epoch (``limit_train_batches``), an equal-steps run draws exactly ``num_train_batches``
    batches per epoch (the data module's ``num_train_batches``) for the budget's epochs."""
    base = "gateformer" if cell.model == "gateformer-nogate" else cell.model
    run = official_run(base, cell.dataset, int(cell.horizon or 0))
    budget = _ltsf_budget(options, cell.dataset)
    rb = _row_budget(cell, options)
    mkw: dict[str, Any] = {"preset": _preset_name(cell.dataset, int(cell.horizon or 0))}
    if budget.width is not None:
        sizes = _CONFIGS[base].presets[mkw["preset"]]
        mkw["d_model"] = min(sizes["d_model"], budget.width)
        mkw["hidden_dim"] = min(sizes["hidden_dim"], budget.width)
    data = {
        "lookback": LTSF_DATASETS[cell.dataset].lookback,
        "batch_size": run.batch_size,
        "val_stride": budget.val_stride,
    }
    if rb.kind == "equal-steps":
        data["num_train_batches"] = rb.num_train_batches
        trainer = {"max_epochs": rb.max_epochs, "limit_train_batches": None}
    else:
        cap = budget.max_train_windows
        trainer = {"max_epochs": run.epochs, "limit_train_batches": None if cap is None else -(-cap // run.batch_size)}
    return {"model": {"kwargs": mkw}, "data": {"kwargs": data}, "task": {"lr": run.lr}, "trainer": trainer}


#: the table as data: grid, the protocol every cell shares, per-cell presets (:func:`cell_settings`)
GATEFORMER_RECIPE = Recipe(
    name=TABLE,
    models=(*MODELS, "gateformer-nogate"),
    datasets=TABLE_DATASETS,
    horizons=_Horizons(),
    seeds=DEFAULT_SEEDS,
    base={
        "output_dir": "runs/repro",
        "test": True,
        "model": {"kwargs": {"dropout": 0.1}},
        "data": {
            "name": "ltsf",
            "kwargs": {
                "features": "M",
                "calendar_freq": "h",  # the official scripts never set --freq: hourly features everywhere
                "eval_batch_size": 256,
            },
        },
        "task": {
            "name": "regression",
            "kwargs": {"loss": "mse"},
            "optimizer": "adam",
            "weight_decay": 0.0,
            # lradj type1: epochs 1-2 at lr, then halved after every epoch
            "scheduler": {"name": "exponential", "gamma": 0.5, "warmup": 1, "warmup_start_factor": 1.0},
        },
        "trainer": {
            "accelerator": "auto",
            "devices": 1,
            "early_stopping": {"monitor": "val/loss", "mode": "min", "patience": 3},
            "checkpoint": {
                "enabled": True,
                "monitor": "val/loss",
                "mode": "min",
                "save_top_k": 1,
                "save_last": False,
            },
            "loggers": ["csv"],
            "progress_bar": True,
            "num_sanity_val_steps": 0,
            "enable_model_summary": False,
        },
    },
    cell_paths={"dataset": "data.kwargs.dataset", "horizon": "data.kwargs.horizon"},
    model_names={"gateformer-nogate": "gateformer"},
    overrides=(Override({"model": {"kwargs": {"gates": False}}}, model="gateformer-nogate"),),
    configure=cell_settings,
    option_paths={
        "patience": "trainer.early_stopping.patience",
        "eval_batch_size": "data.kwargs.eval_batch_size",
        "out": "output_dir",
        "accelerator": "trainer.accelerator",
    },
    metrics={"mse": "test/mse", "mae": "test/mae"},
    references=_references(),
)


def _run_budget(epochs: int | None, budget: Budget, row_budget: RowBudget | None = None) -> RunBudget:
    """The recipe runner's budget of a row: ``epochs`` (``--epochs`` / ``--quick``) over the
    config's, the row's ``budget`` column from ``row_budget`` (else the caps' description)."""
    return RunBudget(
        max_epochs=epochs,
        note=budget.describe(),
        label=row_budget.label if row_budget is not None else None,
    )


def experiment_config(
    model: str,
    dataset: str,
    horizon: int,
    seed: int,
    *,
    epochs: int | None = None,
    patience: int = 3,
    budget: Budget = Budget(),
    kind: str = "preset",
    eval_batch_size: int = 256,
    out: str = "runs/repro",
    accelerator: str = "auto",
    progress_bar: bool = True,
) -> dict[str, Any]:
    """The :class:`~gatelab.core.harness.ExperimentConfig` (as a dict) of one table row:
    :data:`GATEFORMER_RECIPE`'s config of the cell.

    ``model`` is ``gateformer``, ``itransformer`` or ``gateformer-nogate`` (Gateformer's preset
    with ``gates=False``); ``budget`` the caps, ``kind`` ``"preset"`` (the model's preset under
    the caps) or ``"equal-steps"`` (:func:`equal_steps`; needs a window cap).
    """
    if kind not in ("preset", "equal-steps"):
        raise ValueError(f"kind must be 'preset' or 'equal-steps', got {kind!r}")
    as_kind = "equal-steps" if kind == "equal-steps" else ("official" if budget == Budget() else "preset-cpu")
    rbs = row_budgets(model, dataset, int(horizon), as_kind, budget, epochs)
    if rbs[0].kind != kind:
        raise ValueError(f"no {kind} budget for {dataset}: {budget.describe()} has no window cap")
    options = {
        "patience": patience,
        "eval_batch_size": eval_batch_size,
        "out": out,
        "accelerator": accelerator,
        "ltsf_budget": budget,
        "row_budget": rbs[0],
    }
    cell = Cell(model, dataset, int(seed), horizon=int(horizon))
    cfg = GATEFORMER_RECIPE.config(cell, options, _run_budget(epochs, budget, rbs[0]))
    cfg["trainer"]["progress_bar"] = progress_bar
    return cfg


def _present(dataset: str, data_dir: str | None) -> bool:
    from gatelab.core.harness.data import dataset_status

    info = LTSF_DATASETS[dataset]
    return dataset_status(info.spec, data_dir) == "present" or info.embedded is not None


def _data_sha256(path: Path) -> str:
    """The ledger's ``data_sha256`` of the file a run read: ``sha256("<file name> <file sha256>\\n")``,
    the formula of :func:`gatelab.core.harness.data.dataset_sha256` for a one-file dataset (so the
    embedded ETTh1 and the same file in a data directory give the same digest)."""
    from gatelab.core.harness.data import file_sha256

    return hashlib.sha256(f"{path.name} {file_sha256(path)}\n".encode()).hexdigest()


def _seed_list(args: argparse.Namespace, budget: Budget) -> list[int]:
    seeds = list(args.seeds)
    return seeds[: budget.max_seeds] if budget.max_seeds is not None else seeds


def _budget_for(args: argparse.Namespace, dataset: str) -> Budget:
    return _ltsf_budget(vars(args), dataset)


def _plot(
    table: str, dataset: str, horizon: int, models: Mapping[str, Any], data: Any, folder: Path
) -> list[Path]:
    from ..analysis.ltsf import plot_forecast, plot_gate_values

    variates = sorted({0, data.num_targets - 1}) if data.num_targets > 1 else [0]
    out = [
        plot_forecast(
            models, data, folder / f"{table}_{dataset}_{horizon}_forecast.png", variates=variates,
            title=f"{LTSF_DATASETS[dataset].title}, horizon {horizon}: test window {len(data.windows('test')) // 2}",
        )
    ]  # fmt: skip
    for label, m in models.items():
        if getattr(m, "gates", False):
            out.append(plot_gate_values(m, data, folder / f"{table}_{dataset}_{horizon}_gates.png",
                                        title=f"{LTSF_DATASETS[dataset].title}, horizon {horizon}: {label} gate values per variate"))  # fmt: skip
    return out


def _announce(table: str, title: str, caps: str) -> Callable[[Cell, Mapping[str, Any]], None]:
    def announce(cell: Cell, cfg: Mapping[str, Any]) -> None:
        print(f"[gatelab repro {table}] {cell.model} {title} H={cell.horizon} seed={cell.seed} ({caps})",
              file=sys.stderr, flush=True)  # fmt: skip

    return announce


def run_gateformer_table(args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    """The row generator of table ``gateformer``: :data:`GATEFORMER_RECIPE` cell by cell (the
    harness's recipe runner), plus what is specific to this table -- each row's data digest and
    run summary, the 4-horizon average rows, the plots and the summary (module docstring)."""
    from gatelab.core.harness.ledger import resolve_results_dir

    table = QUICK_TABLE if args.quick else TABLE
    if args.dataset:
        datasets = list(dict.fromkeys(args.dataset))
    elif args.quick:
        datasets = ["etth1"]
    else:
        datasets = [d for d in TABLE_DATASETS if _present(d, args.data_dir)]
    results_dir = resolve_results_dir(args.results_dir)
    produced: list[dict[str, Any]] = []
    kind = _budget_kind(vars(args))
    for ds in datasets:
        info = LTSF_DATASETS[ds]
        horizons = list(args.horizon) if args.horizon else ([96] if args.quick else list(info.horizons))
        budget = _budget_for(args, ds)
        epochs = args.epochs if args.epochs is not None else (1 if args.quick else None)
        for seed in _seed_list(args, budget):
            # per (model, budget label): the horizon rows (for the average) and their hashed configs
            per_model: dict[tuple[str, str], list[dict[str, Any]]] = {}
            hashed: dict[tuple[str, str], list[dict[str, Any]]] = {}
            for h in horizons:
                trained: dict[str, Any] = {}
                data = None
                for model in args.models:
                    for i_rb, rb in enumerate(row_budgets(model, ds, h, kind, budget, args.epochs)):
                        cell = Cell(model, ds, int(seed), horizon=int(h))
                        run_budget = _run_budget(epochs, budget, rb)
                        opts = {**vars(args), "row_budget": rb, "ltsf_budget": budget}
                        slot = (model, rb.label)
                        hashed.setdefault(slot, []).append(
                            GATEFORMER_RECIPE.hashed(GATEFORMER_RECIPE.config(cell, opts, run_budget))
                        )
                        rows = per_model.setdefault(slot, [])
                        done = run_cell(
                            GATEFORMER_RECIPE,
                            cell,
                            args,
                            budget=run_budget,
                            options=opts,
                            before_run=_announce(table, info.title, rb.label),
                        )
                        if done is None:  # recorded already (--resume) or not re-run (--verify)
                            rec = recorded_row(GATEFORMER_RECIPE, cell, args, budget=run_budget, options=opts)
                            if rec is not None:
                                rows.append(rec)
                            continue
                        res, cfg, row = done.result, done.config, done.row
                        dm = res.datamodule
                        trainer = res.trainer
                        ck = trainer.checkpoint_callback
                        config = {
                            "model_kwargs": {k: v for k, v in res.model_kwargs.items()},
                            "model_config": res.task.model.config.to_dict(),  # the preset resolved
                            "lr": cfg["task"]["lr"],
                            "batch_size": cfg["data"]["kwargs"]["batch_size"],
                            "num_train_batches": cfg["data"]["kwargs"].get("num_train_batches"),
                            "limit_train_batches": cfg["trainer"].get("limit_train_batches"),
                            "lookback": info.lookback,
                            "max_epochs": cfg["trainer"]["max_epochs"],
                            "patience": args.patience,
                            "epochs_run": int(trainer.current_epoch),
                            "steps_run": int(trainer.global_step),
                            "best_val_mse": float(ck.best_model_score) if ck is not None and ck.best_model_score is not None else None,
                            "budget": kind,
                            "budget_kind": rb.kind,
                            "budget_caps": budget.describe(),
                            "preset_source": official_run("gateformer" if model == "gateformer-nogate" else model, ds, h).source,
                            "data": dm.data.summary(),
                        }  # fmt: skip
                        row["config"] = json.dumps(config, sort_keys=True, default=str)
                        row["data_sha256"] = _data_sha256(dm.data.series.path)
                        if dm.data.source == "embedded":
                            row["note"] = f"data: the embedded copy of {info.file} (not found in the data dir)"
                        rows.append(row)
                        produced.append(row)
                        yield row
                        first = seed == _seed_list(args, budget)[0] and h == horizons[0] and i_rb == 0
                        if not args.no_plots and first:
                            trained[model] = res.task.model
                            data = dm.data
                        if not args.keep_checkpoints:
                            shutil.rmtree(Path(res.run_dir) / "checkpoints", ignore_errors=True)
                if trained and data is not None:
                    for p in _plot(table, ds, h, trained, data, results_dir):
                        print(f"[gatelab repro {table}] wrote {p}", file=sys.stderr, flush=True)
            if set(horizons) == set(info.horizons):
                for (model, label), rows in per_model.items():
                    key = {"model": model, "dataset": ds, "split": "avg", "budget": label, "seed": int(seed)}
                    caps = budget.describe()
                    # an average depends on its horizon rows' configs: their hashes are its config
                    if len(rows) != len(horizons) or not args.should_run(
                        key, {"horizons": horizons, "budget_caps": caps, "of": hashed[(model, label)]}
                    ):
                        continue
                    avg = {
                        **key,
                        "mse": statistics.fmean(r["mse"] for r in rows),
                        "mae": statistics.fmean(r["mae"] for r in rows),
                        "wall_s": round(sum(r["wall_s"] for r in rows), 2),
                        "config": json.dumps({"horizons": horizons, "budget_caps": caps}),
                        "data_sha256": rows[0]["data_sha256"],
                    }
                    produced.append(avg)
                    yield avg
    if not args.dry_run and not args.quick:  # a smoke run has no 4-horizon averages to summarise
        path = write_summary(table, args.results_dir, extra=produced)
        print(f"[gatelab repro {table}] wrote {path}", file=sys.stderr, flush=True)
    print(_comparison_text(produced), flush=True)


# --------------------------------------------------------------------------- summary


def _latest(records: Sequence[Mapping[str, Any]]) -> dict[tuple[Any, ...], dict[int, Mapping[str, Any]]]:
    """``(model, dataset, horizon, split, budget) -> {seed: latest record}``."""
    out: dict[tuple[Any, ...], dict[int, Mapping[str, Any]]] = {}
    for r in records:
        key = (r.get("model"), r.get("dataset"), r.get("horizon"), r.get("split"), r.get("budget"))
        out.setdefault(key, {})[int(r["seed"])] = r
    return out


def _mean(vals: Sequence[float]) -> float | None:
    return statistics.fmean(vals) if vals else None


def _f(v: float | None) -> str:
    return "—" if v is None else f"{v:.3f}"


def _comparison_text(rows: Sequence[Mapping[str, Any]]) -> str:
    """Ours vs the published iTransformer, per dataset, horizon and budget of ``rows`` (printed by the run)."""
    groups = _latest(rows)
    lines = ["", "ours vs published iTransformer (Liu et al. 2024), test MSE / MAE on standardised data:"]
    for (model, ds, h, split, budget), by_seed in sorted(
        groups.items(), key=lambda kv: (str(kv[0][1]), str(kv[0][2]), str(kv[0][4]), str(kv[0][0]))
    ):
        mse = _mean([float(r["mse"]) for r in by_seed.values()])
        mae = _mean([float(r["mae"]) for r in by_seed.values()])
        ref = ITRANSFORMER_PAPER.get(ds, {}).get(h) if split is None else ITRANSFORMER_PAPER_AVG.get(ds)
        where = f"H={h}" if split is None else "avg"
        ref_txt = f"published iTransformer {ref[0]:.3f} / {ref[1]:.3f}" if ref else "no published value"
        lines.append(
            f"  {ds} {where} [{budget}] {model:>18}: {_f(mse)} / {_f(mae)}  ({len(by_seed)} seed(s); {ref_txt})"
        )
    return "\n".join(lines)


def write_summary(
    table: str = TABLE, results_dir: str | Path | None = None, *, extra: Sequence[Mapping[str, Any]] = ()
) -> Path:
    """Write ``<table>-summary.md``: per dataset and budget, the 4-horizon averages of every model
    (mean over seeds of the per-seed ``avg`` rows), the published iTransformer average, whether
    Gateformer is at or below iTransformer (ours and published), and the wall time; from the
    ledger plus ``extra`` rows not yet written. Rows of different budgets are never mixed; the
    paired intervals are in ``<table>.md``. Returns the path."""
    from gatelab.core.harness.ledger import read_records, resolve_results_dir

    records = [*read_records(table, results_dir), *extra]
    groups = _latest(records)
    cells = sorted(
        {(k[1], k[4]) for k in groups},
        key=lambda c: (TABLE_DATASETS.index(c[0]) if c[0] in TABLE_DATASETS else 99, str(c[1])),
    )
    lines = [
        f"# {table}: dataset averages, Gateformer vs iTransformer",
        "",
        f"<!-- generated by gatelab.timeseries.recipes.gateformer.write_summary from {table}.jsonl; do not edit by hand -->",
        "",
        "Test MSE / MAE averaged over the four horizons (mean over seeds of each seed's average), on the",
        "standardised data, per budget (`equal steps`: every model the same optimizer steps per epoch;",
        "`preset cpu`: each model's preset batch under the window cap). *published iTr.*: Liu et al. 2024",
        "(iTransformer), Table 10, lookback 96. *G <= iTr.*: Gateformer's average MSE at or below",
        "iTransformer's (ours at the same budget / published); the seed-paired intervals are in the table.",
        "Gateformer's own published values are not given: no text source of them was found (docs/gateformer.md).",
        "",
        "| dataset | budget | seeds | Gateformer MSE | Gateformer MAE | iTransformer MSE (ours) | iTransformer MAE (ours)"
        " | published iTr. MSE | published iTr. MAE | G <= iTr. (ours) | G <= iTr. (published) | wall time [min] |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    total = 0.0
    for ds, budget in cells:

        def avg(model: str, ds: str = ds, budget: Any = budget) -> tuple[float | None, float | None, int]:
            by_seed = groups.get((model, ds, None, "avg", budget), {})
            return (
                _mean([float(r["mse"]) for r in by_seed.values()]),
                _mean([float(r["mae"]) for r in by_seed.values()]),
                len(by_seed),
            )

        g_mse, g_mae, g_n = avg("gateformer")
        i_mse, i_mae, i_n = avg("itransformer")
        if g_n == 0 and i_n == 0:
            continue
        pub = ITRANSFORMER_PAPER_AVG.get(ds)
        wall = sum(
            float(r.get("wall_s") or 0.0)
            for (m, d, h, split, b), by_seed in groups.items()
            if d == ds and b == budget and split is None
            for r in by_seed.values()
        )
        total += wall

        def beats(a: float | None, b: float | None) -> str:
            if a is None or b is None:
                return "—"
            return "yes" if round(a, 3) <= round(b, 3) else "**no**"

        title = LTSF_DATASETS[ds].title if ds in LTSF_DATASETS else ds
        lines.append(
            f"| {title} | {budget or '—'} | {g_n}/{i_n} | {_f(g_mse)} | {_f(g_mae)} | {_f(i_mse)} | {_f(i_mae)} | "
            f"{_f(pub[0]) if pub else '—'} | {_f(pub[1]) if pub else '—'} | {beats(g_mse, i_mse)} | "
            f"{beats(g_mse, pub[0] if pub else None)} | {wall / 60:.1f} |"
        )
    lines += [
        "",
        f"Total wall time of the runs above: {total / 3600:.2f} h (sum of per-run `wall_s`; training + test).",
        "",
        "Seeds column: Gateformer / iTransformer seeds with all four horizons at that budget. Commands: see",
        f"`{table}.md` and each record's `config` in `{table}.jsonl`.",
    ]
    folder = resolve_results_dir(results_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{table}-summary.md"
    path.write_text("\n".join(lines) + "\n")
    return path


#: Gateformer's own published values: none found as text (see the table's description)
GATEFORMER_PAPER_NOTE = (
    "Gateformer's published per-horizon MSE/MAE (Lan & Oermann 2025, arXiv 2505.00307) are not in "
    "this table: no text source of them was found (the official README, github.com/nyuolab/Gateformer, "
    "gives them only as an image, figures/benchmark.jpg; the stored arXiv HTML (v2, v3) did not give "
    "the table text), so Gateformer's paper columns stay empty rather than guessed"
)


GATEFORMER_TABLE = register_table(
    ReproTable(
        name=TABLE,
        description=(
            "Gateformer vs iTransformer, long-horizon forecasting (lookback 96; ILI 36), MSE/MAE per horizon and "
            "4-horizon average; the budget column: equal optimizer steps for every model, or each model's preset "
            "under the window cap (default seeds 2021 (official), 2022, 2023). " + GATEFORMER_PAPER_NOTE
        ),
        paper="Lan & Oermann 2025 (Gateformer, arXiv 2505.00307) with the official presets; references: Liu et al. 2024 (iTransformer), Table 10",
        run="gatelab.timeseries.recipes.gateformer:run_gateformer_table",
        references=GATEFORMER_RECIPE.reference_rows(),
        options=OPTIONS,
        domain="timeseries",
        metrics=["mse", "mae"],
        default_seeds=DEFAULT_SEEDS,
        quick_table=QUICK_TABLE,
        not_in_hash=("dataset", "horizon", "models", "out", "keep_checkpoints", "no_plots"),
        comparisons=_comparisons(),
    )
)
