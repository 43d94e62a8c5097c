"""``gatelab repro tft``: our TFT vs pytorch-forecasting's, trained side by side, plus the naive baseline.

The whole table is one :class:`~gatelab.core.harness.recipes.Recipe` (:data:`TFT_RECIPE`) run by
the harness's recipe runner: every row is one ``run_experiment`` of a registered model --
``tft`` (ours), ``pytorch-forecasting-tft`` (pytorch-forecasting's network, built from the same
``TimeSeriesDataSet`` as its ``from_dataset`` builds it) and ``naive-last-value`` (the last
observed value, pytorch-forecasting's ``Baseline``) -- with the same data module, the same task
(:class:`~gatelab.timeseries.tasks.tft.TFTTask`: ``QuantileLoss`` over pytorch-forecasting's 7
quantiles in the target's scale) and the same trainer. Equal budgets: both TFTs train for at
most ``--max-epochs`` epochs of ``--limit-train-batches`` batches from the same seed, with the
same early stopping (validation loss, patience ``--patience``, min delta 1e-4), the same
learning-rate schedule and gradient clipping, and the checkpoint with the best validation loss
is tested; each row states its budget in its ``budget`` column. The naive row is not trained
(``max_epochs=0``) and runs once, with the first seed (it is deterministic).

Stallion (the default) follows pytorch-forecasting's TFT tutorial (``docs/source/tutorials/
stallion.ipynb``): the tutorial's ``TimeSeriesDataSet`` (encoder 24, min 12, horizon 6,
softplus + per-series target scaling, relative time index, target scales and encoder length as
inputs); both models with hidden size 16, 2 attention heads, dropout 0.1, hidden continuous size
8; Adam at learning rate 0.03, gradient-norm clipping 0.1, batch 128, learning rate halved after
``--plateau-patience`` (4) epochs without improvement (cooldown 4, minimum 1e-5: the library's
``reduce_on_plateau_*`` defaults). Reported on the test split, which for stallion is the
tutorial's validation set (the last 6 months of every series): MAE of the median forecast and
the paper's q-risk at P50/P90 (the naive row: MAE and P50).

Electricity and traffic (the paper's Table 2 datasets; their files are not on this machine) run
the same comparison on the paper's protocol (:mod:`gatelab.timeseries.data.datamodule`), tested
on the paper's test split, with the paper's sizes (``--hidden``/``--heads``/``--dropout``/
``--lr`` to change them).

Deviations from the tutorial: Adam instead of Ranger (``pytorch_optimizer`` is not a gatelab
dependency); pytorch-forecasting's TFT is trained by gatelab's task and trainer rather than by
its own LightningModule (same loss, optimizer and schedule, so the budgets are equal by
construction); the best-validation-loss checkpoint is tested for every model (the tutorial's
``best_model_path`` without a monitor is the last epoch).

Both TFTs run eagerly (``task.compile`` off, the harness default): compiling ours makes a step
about 1.2x faster on the 2-core machine but costs minutes of compilation (and recompiles for
evaluation), more than it saves at this table's budget (``docs/tft.md``, "Reproduction and speed").

Specific to this table (the rest is the recipe): the interpretation of our TFT (variable
importances and attention, :mod:`gatelab.timeseries.analysis.tft`) and the ``epochs`` column.
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from gatelab.core.harness.recipes import Budget, Cell, CellRun, Recipe, Reference, run_cell
from gatelab.core.harness.repro import Option, ReproTable, register_table

__all__ = [
    "MODELS",
    "PAPER_TRAINING",
    "PF_QUANTILES",
    "TFT_RECIPE",
    "TFT_TABLE",
    "paper_sizes",
    "run_tft",
    "tft_budget",
    "tft_cells",
    "tft_config",
    "tft_settings",
]

#: the training part of the paper's (official data formatters') and the tutorial's runs: lr, batch
#: size, gradient clip; their model part (hidden size, heads, dropout) is the TFTConfig preset of
#: the same name (:func:`paper_sizes` joins both)
PAPER_TRAINING = {
    "electricity": {"lr": 1e-3, "batch_size": 64, "clip": 0.01},
    "traffic": {"lr": 1e-3, "batch_size": 128, "clip": 100.0},
    "stallion": {"lr": 0.03, "batch_size": 128, "clip": 0.1},
}


def paper_sizes(dataset: str) -> dict[str, Any]:
    """``{"hidden", "heads", "dropout", "lr", "batch_size", "clip"}`` of ``dataset``'s run (the
    command line's names, also the ledger config's): the model part from ``TFTConfig.presets``,
    the training part from :data:`PAPER_TRAINING`."""
    from gatelab.timeseries.models.tft import TFTConfig

    preset = TFTConfig.presets[dataset]
    return {
        "hidden": preset["d_model"],
        "heads": preset["num_heads"],
        "dropout": preset["dropout"],
        **PAPER_TRAINING[dataset],
    }


#: pytorch-forecasting's default ``QuantileLoss`` quantiles (both TFTs forecast these)
PF_QUANTILES = (0.02, 0.1, 0.25, 0.5, 0.75, 0.9, 0.98)
#: ``--models`` choice -> the row label (registered model, or mapped by the recipe's model_names)
MODELS = {"naive": "naive", "tft": "tft", "pf": "pytorch-forecasting-tft"}
#: ``--dataset`` choice -> registered dataset, and registered dataset -> its data module
DATASETS = {"stallion": "stallion", "electricity": "uci-electricity", "traffic": "pems-sf"}
_DATAMODULES = {"stallion": "tft-stallion", "uci-electricity": "tft-electricity", "pems-sf": "tft-traffic"}
_SIZE_KEY = {v: k for k, v in DATASETS.items()}

_TUTORIAL = "pytorch-forecasting stallion tutorial (2022)"
_PAPER = "Lim et al. 2021, Table 2 (P50/P90 q-risk)"


def tft_settings(cell: Cell, options: Mapping[str, Any]) -> dict[str, Any]:
    """The recipe's ``configure`` hook: the data module of ``cell.dataset``, the run's sizes (the
    dataset's :func:`paper_sizes` with the options ``hidden``, ``heads``, ``dropout``, ``lr``,
    ``batch_size`` where given), the plateau schedule (``plateau_patience`` is both the patience
    and the cooldown) and, for the two TFTs, the model sizes (``hidden_continuous``; ``layout``
    for ours) and pytorch-forecasting's 7 quantiles. The naive model takes no model settings."""
    sizes = paper_sizes(_SIZE_KEY[cell.dataset])
    for key in ("hidden", "heads", "dropout", "lr", "batch_size"):
        if options.get(key) is not None:
            sizes[key] = options[key]
    plateau = options.get("plateau_patience", 4)
    out: dict[str, Any] = {
        "data": {"name": _DATAMODULES[cell.dataset], "kwargs": {"batch_size": sizes["batch_size"]}},
        "task": {"kwargs": {"plateau_cooldown": plateau}, "lr": sizes["lr"], "scheduler": {"patience": plateau}},
        "trainer": {"gradient_clip_val": sizes["clip"]},
    }  # fmt: skip
    if cell.model == "naive":
        out["task"]["kwargs"]["qrisk"] = [0.5]  # a point forecast: its only quantile
        return out
    model: dict[str, Any] = {
        "d_model": sizes["hidden"],
        "num_heads": sizes["heads"],
        "dropout": sizes["dropout"],
        "continuous_dim": options.get("hidden_continuous", 8),
        "quantiles": list(PF_QUANTILES),
    }
    if cell.model == "tft":
        model["layout"] = options.get("layout", "paper")
    out["model"] = {"kwargs": model}
    return out


#: the ``tft`` table as data: three models, one task, one trainer, equal budgets
TFT_RECIPE = Recipe(
    name="tft",
    models=("naive", "tft", "pytorch-forecasting-tft"),
    datasets=("stallion", "uci-electricity", "pems-sf"),
    horizons={"stallion": (6,), "uci-electricity": (24,), "pems-sf": (24,)},
    seeds=(0, 1, 2),
    base={
        "output_dir": "runs/repro-tft",
        "test": True,
        "task": {
            "name": "tft",
            "kwargs": {"qrisk": [0.5, 0.9]},
            "optimizer": "adam",
            "weight_decay": 0.0,
            "monitor": "val/loss",
            "scheduler": {"name": "plateau", "factor": 0.5, "min_lr": 1e-5, "mode": "min"},
        },
        "trainer": {
            "accelerator": "cpu",
            "devices": 1,
            "early_stopping": {"monitor": "val/loss", "mode": "min", "min_delta": 1e-4, "patience": 10},
            "checkpoint": {
                "enabled": True,
                "monitor": "val/loss",
                "mode": "min",
                "save_top_k": 1,
                "save_last": False,
            },
            "loggers": ["csv"],
            "progress_bar": False,
            "enable_model_summary": False,
        },
    },
    model_names={"naive": "naive-last-value"},
    configure=tft_settings,
    option_paths={
        "patience": "trainer.early_stopping.patience",
        "progress": "trainer.progress_bar",
        "run_dir": "output_dir",
    },
    budget=Budget(max_epochs=50),
    metrics={"mae": "test/mae", "q50": "test/q50"},
    references=(
        Reference("naive", "stallion", {"mae": 293.0}, _TUTORIAL, horizon=6),
        Reference("pytorch-forecasting-tft", "stallion", {"mae": 254.6}, _TUTORIAL, horizon=6),
        Reference("tft", "stallion", {"mae": 254.6}, _TUTORIAL + " (pytorch-forecasting's TFT)", horizon=6),
        Reference("tft", "uci-electricity", {"q50": 0.055, "q90": 0.027}, _PAPER, horizon=24),
        Reference("tft", "pems-sf", {"q50": 0.095, "q90": 0.070}, _PAPER, horizon=24),
    ),
)


def tft_budget(model: str, max_epochs: int, limit_train_batches: int | None, patience: int) -> Budget:
    """The training budget of a row: ``max_epochs`` epochs of ``limit_train_batches`` batches with
    early stopping, for both TFTs alike; the naive model is not trained (``max_epochs=0``)."""
    if model == "naive":
        return Budget(max_epochs=0, note="not trained: the last observed value")
    return Budget(
        max_epochs=max_epochs,
        limit_train_batches=limit_train_batches,
        note=f"equal for both TFTs: early stopping on val/loss (patience {patience}), best val/loss checkpoint tested",
    )


def _options(args: argparse.Namespace | Mapping[str, Any]) -> dict[str, Any]:
    opts = dict(args if isinstance(args, Mapping) else vars(args))
    if opts.get("quick"):
        opts["max_epochs"], opts["limit_train_batches"] = 2, 5
    return opts


def tft_cells(args: argparse.Namespace | Mapping[str, Any]) -> list[tuple[Cell, Budget]]:
    """The table's cells for the options ``args`` (``dataset``, ``models``, ``seeds``, ``quick``,
    ``layout``, ...) with each cell's budget, in table order: the naive row (first seed only),
    then per seed the TFTs in ``--models`` order. ``variant``: ``quick`` for ``--quick``, and
    ``layout-<layout>`` on our TFT's rows when its layout is not the paper's."""
    opts = _options(args)
    dataset = DATASETS[opts["dataset"]]
    horizon = TFT_RECIPE.horizons_of(dataset)[0]
    labels = [MODELS[m] for m in dict.fromkeys(opts["models"])]
    out: list[tuple[Cell, Budget]] = []
    for i, seed in enumerate(opts["seeds"]):
        for label in labels:
            if label == "naive" and i > 0:
                continue
            tags = ["quick" if opts.get("quick") else None]
            if label == "tft" and opts.get("layout", "paper") != "paper":
                tags.append(f"layout-{opts['layout']}")
            variant = "-".join(t for t in tags if t) or None
            budget = tft_budget(label, opts["max_epochs"], opts.get("limit_train_batches"), opts["patience"])
            out.append((Cell(label, dataset, int(seed), horizon=horizon, variant=variant), budget))
    return out


def tft_config(args: argparse.Namespace | Mapping[str, Any], model: str, seed: int) -> dict[str, Any]:
    """The experiment of one row (``model``: a row label, ``naive``, ``tft`` or
    ``pytorch-forecasting-tft``): :data:`TFT_RECIPE`'s config of the cell under the options ``args``."""
    opts = {**_options(args), "seeds": [seed], "models": [k for k, v in MODELS.items() if v == model]}
    ((cell, budget),) = tft_cells(opts)
    return TFT_RECIPE.config(cell, opts, budget)


def _write_interpretation(args: argparse.Namespace, done: CellRun, *, first: bool) -> None:
    """Variable importances and attention of our model (its best checkpoint) on the validation
    set: CSV + PNG in the run directory, and for the first seed of a full run with the paper's
    layout also in ``docs/results/tft-<dataset>-interpretation``."""
    from gatelab.core.harness.ledger import resolve_results_dir
    from gatelab.timeseries.analysis.tft import interpret, plot_interpretation
    from gatelab.timeseries.tasks.tft import TFTTask

    res = done.result
    ckpt = res.best_checkpoint or res.last_checkpoint
    model = (
        TFTTask.load_from_checkpoint(ckpt, map_location="cpu", weights_only=True).model
        if ckpt
        else res.task.model
    )
    interp = interpret(model, res.datamodule.val_dataloader())
    folders = [Path(res.run_dir) / "interpretation"]
    if first and not args.quick and not args.dry_run and args.layout == "paper":
        folders.append(resolve_results_dir(args.results_dir) / f"tft-{args.dataset}-interpretation")
    for folder in folders:
        interp.to_csv(folder)
        plot_interpretation(interp, folder, title=f"TFT on {args.dataset} (validation)")


def run_tft(args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    """Rows of ``gatelab repro tft``: :data:`TFT_RECIPE` cell by cell through the recipe runner,
    plus the ``epochs`` and ``q90`` columns and our TFT's interpretation (module docstring)."""
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*is an instance of `nn.Module`.*")
    warnings.filterwarnings("ignore", ".*`configure_optimizers` returned `None`.*")
    options = _options(args)
    first_tft = True
    for cell, budget in tft_cells(options):
        done = run_cell(TFT_RECIPE, cell, args, budget=budget, options=options)
        if done is None:  # recorded already (--resume) or not chosen (--verify)
            continue
        res = done.result
        horizon = res.datamodule.training.max_prediction_length
        if horizon != cell.horizon:
            raise ValueError(
                f"table tft: data module {done.config['data']['name']!r} forecasts {horizon} steps, "
                f"the recipe's horizon of {cell.dataset!r} is {cell.horizon}"
            )
        if "test/q90" in res.metrics:
            done.row["q90"] = float(res.metrics["test/q90"])
        done.row["epochs"] = int(res.trainer.current_epoch)
        if cell.model == "tft":
            _write_interpretation(args, done, first=first_tft)
            first_tft = False
        yield done.row


#: ``gatelab repro tft``
TFT_TABLE = register_table(
    ReproTable(
        name="tft",
        description=(
            "TFT (ours) vs pytorch-forecasting's TFT, trained by the same task and trainer with equal "
            "budgets, and the naive last value; MAE of the median and q-risk P50/P90 on the test split "
            "(stallion: the tutorial's validation set)"
        ),
        paper=f"{_TUTORIAL}: naive 293.0, TFT 254.6 MAE; {_PAPER}",
        run="gatelab.timeseries.recipes.tft:run_tft",
        domain="timeseries",
        references=TFT_RECIPE.reference_rows(),
        options=[
            Option("--dataset", choices=list(DATASETS), default="stallion"),
            Option("--models", nargs="+", choices=list(MODELS), default=list(MODELS),
                   help="naive (last value), tft (ours), pf (pytorch-forecasting's TFT)"),
            Option("--layout", choices=["paper", "pytorch-forecasting"], default="paper", help="our TFT's layout"),
            Option("--max-epochs", type=int, default=50, help="epoch limit of both TFTs (--quick: 2)"),
            Option("--limit-train-batches", type=int, default=50,
                   help="training batches per epoch of both TFTs (--quick: 5)"),
            Option("--patience", type=int, default=10, help="early-stopping patience (epochs)"),
            Option("--plateau-patience", type=int, default=4, help="epochs before halving the learning rate"),
            Option("--hidden", type=int, default=None, help="hidden size (default: the dataset's)"),
            Option("--heads", type=int, default=None),
            Option("--dropout", type=float, default=None),
            Option("--lr", type=float, default=None),
            Option("--batch-size", type=int, default=None),
            Option("--hidden-continuous", type=int, default=8),
            Option("--run-dir", default="runs/repro-tft", help="run directories (checkpoints and logs)"),
            Option("--progress", action="store_true", help="show Lightning progress bars"),
        ],
        metrics=["mae", "q50", "q90", "epochs"],
        default_seeds=TFT_RECIPE.seeds,
        not_in_hash=("models", "run_dir", "progress"),
    )
)  # fmt: skip
