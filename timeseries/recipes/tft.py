"""``gatelab repro tft``: our TFT vs pytorch-forecasting's, trained side by side, plus the naive baseline.

Stallion (the default) follows pytorch-forecasting's TFT tutorial (``docs/source/tutorials/
stallion.ipynb``): the tutorial's ``TimeSeriesDataSet`` (encoder 24, min 12, horizon 6,
softplus + per-series target scaling, relative time index, target scales and encoder length as
inputs); both models with hidden size 16, 2 attention heads, dropout 0.1, hidden continuous size
8, ``QuantileLoss`` over pytorch-forecasting's 7 quantiles; Adam at learning rate 0.03,
gradient-norm clipping 0.1, batch 128, at most ``--max-epochs`` epochs of ``--limit-train-batches``
batches, early stopping on the validation loss (patience 10, min delta 1e-4), learning rate
halved after 4 epochs without improvement (cooldown 4, minimum 1e-5), the checkpoint with the
best validation loss evaluated. Each model is trained with its own library's Lightning loop on
the *same* dataloaders (gatelab's vectorised loader, whose batches equal the dataset's own
``to_dataloader``'s, see tests/timeseries/data/test_tft_loader.py), from the same seed. Reported on the validation set (the last 6 months of
every series, as the tutorial): MAE of the median forecast and the paper's q-risk at P50/P90;
the naive baseline repeats the last observed value (pytorch-forecasting's ``Baseline``).

Electricity and traffic (the paper's Table 2 datasets; their files are not on this machine) run
the same comparison on the paper's protocol (:mod:`gatelab.timeseries.data.datamodule`) with
the paper's sizes (``--hidden``/``--heads``/``--dropout``/``--lr`` to change them).

Deviations from the tutorial: Adam instead of Ranger (``pytorch_optimizer`` is not a gatelab
dependency; both models use Adam); the best-validation-loss checkpoint is evaluated for both
(the tutorial's ``best_model_path`` without a monitor is the last epoch).
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from gatelab.core.harness.recipes import Budget, Cell, Recipe

__all__ = [
    "PAPER_TRAINING",
    "TFT_RECIPE",
    "collect_forecasts",
    "naive_forecasts",
    "paper_sizes",
    "run_tft",
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
PF_QUANTILES = (0.02, 0.1, 0.25, 0.5, 0.75, 0.9, 0.98)


@torch.no_grad()
def collect_forecasts(model: torch.nn.Module, loader: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(prediction [N, T, Q], target [N, T], mask [N, T])`` of ``model`` over ``loader`` (eval mode).

    Works for ours (``TFTOutput``) and pytorch-forecasting's (dict output); both forecasts are in
    the target's scale.
    """
    model.eval()
    preds, ys, masks = [], [], []
    for x, (y, _w) in loader:
        out = model(x)
        p = out["prediction"] if isinstance(out, dict) else out.prediction
        T = y.shape[1]
        preds.append(p.float())
        ys.append(y.float())
        masks.append(torch.arange(T)[None, :] < x["decoder_lengths"][:, None])
    return torch.cat(preds), torch.cat(ys), torch.cat(masks)


@torch.no_grad()
def naive_forecasts(loader: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The last observed target repeated over the horizon (pytorch-forecasting's ``Baseline``)."""
    preds, ys, masks = [], [], []
    for x, (y, _w) in loader:
        last = x["encoder_target"][torch.arange(y.shape[0]), x["encoder_lengths"] - 1]
        preds.append(last[:, None, None].expand(-1, y.shape[1], 1).float())
        ys.append(y.float())
        masks.append(torch.arange(y.shape[1])[None, :] < x["decoder_lengths"][:, None])
    return torch.cat(preds), torch.cat(ys), torch.cat(masks)


#: command-line size -> TFTConfig key
_SIZE_KEYS = {"hidden": "d_model", "heads": "num_heads", "dropout": "dropout"}


def _datamodule(args: argparse.Namespace, batch_size: int) -> Any:
    from gatelab.core.harness.data import resolve_data_dir
    from gatelab.timeseries.data import datamodule as tdm

    factory = {
        "stallion": tdm.stallion_datamodule,
        "electricity": tdm.electricity_datamodule,
        "traffic": tdm.traffic_datamodule,
    }[args.dataset]
    return factory(resolve_data_dir(args.data_dir), batch_size=batch_size)


def _train_pf(args: argparse.Namespace, dm: Any, seed: int, sizes: dict[str, Any], run_dir: Path) -> Any:
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
    from pytorch_forecasting import TemporalFusionTransformer as PFTFT
    from pytorch_forecasting.metrics import QuantileLoss

    pl.seed_everything(seed, verbose=False)
    model = PFTFT.from_dataset(
        dm.training,
        learning_rate=sizes["lr"],
        hidden_size=sizes["hidden"],
        attention_head_size=sizes["heads"],
        dropout=sizes["dropout"],
        hidden_continuous_size=args.hidden_continuous,
        loss=QuantileLoss(list(PF_QUANTILES)),
        optimizer="adam",
        reduce_on_plateau_patience=args.plateau_patience,
        log_interval=-1,
    )
    ckpt = ModelCheckpoint(dirpath=run_dir / "checkpoints", monitor="val_loss", mode="min", save_top_k=1)
    trainer = pl.Trainer(
        max_epochs=args.max_epochs,
        accelerator="cpu",
        devices=1,
        gradient_clip_val=sizes["clip"],
        limit_train_batches=args.limit_train_batches,
        callbacks=[
            EarlyStopping(monitor="val_loss", min_delta=1e-4, patience=args.patience, mode="min"),
            ckpt,
        ],
        logger=pl.loggers.CSVLogger(str(run_dir), name="csv"),
        enable_model_summary=False,
        enable_progress_bar=args.progress,
        default_root_dir=str(run_dir),
    )
    trainer.fit(model, train_dataloaders=dm.train_dataloader(), val_dataloaders=dm.val_dataloader())
    best = PFTFT.load_from_checkpoint(ckpt.best_model_path, weights_only=False)
    return best, trainer.current_epoch


def tft_settings(cell: Cell, options: Mapping[str, Any]) -> dict[str, Any]:
    """The recipe's ``configure`` hook: the run's sizes (``options["sizes"]``: the dataset's
    :func:`paper_sizes` with the command line's overrides), its data module and run directory, and
    the plateau schedule (``--plateau-patience`` is both the patience and the cooldown). The model
    is the dataset's ``TFTConfig`` preset, with the sizes the command line changed."""
    sizes, plateau = options["sizes"], options["plateau_patience"]
    preset = paper_sizes(options["dataset"])
    changed = {key: sizes[opt] for opt, key in _SIZE_KEYS.items() if sizes[opt] != preset[opt]}
    return {
        "name": f"tft-{options['dataset']}",
        "output_dir": str(options["run_dir"]),
        "model": {"kwargs": {"preset": options["dataset"], **changed}},
        "data": {"name": f"tft-{options['dataset']}", "kwargs": {"batch_size": sizes["batch_size"]}},
        "task": {"kwargs": {"plateau_cooldown": plateau}, "lr": sizes["lr"], "scheduler": {"patience": plateau}},
        "trainer": {"gradient_clip_val": sizes["clip"]},
    }  # fmt: skip


#: our TFT's side of the ``tft`` table as data (the pytorch-forecasting baseline is another
#: library's model and trains with its own Lightning loop, see :func:`_train_pf`)
TFT_RECIPE = Recipe(
    name="tft",
    models=("tft",),
    datasets=("stallion", "uci-electricity", "pems-sf"),
    horizons={"stallion": (6,), "uci-electricity": (24,), "pems-sf": (24,)},
    seeds=(0, 1, 2),
    base={
        "test": False,
        "model": {"kwargs": {"quantiles": list(PF_QUANTILES)}},
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
            "early_stopping": {"monitor": "val/loss", "mode": "min", "min_delta": 1e-4},
            "checkpoint": {
                "enabled": True,
                "monitor": "val/loss",
                "mode": "min",
                "save_top_k": 1,
                "save_last": False,
            },
            "loggers": ["csv"],
            "enable_model_summary": False,
        },
    },
    configure=tft_settings,
    option_paths={
        "hidden_continuous": "model.kwargs.continuous_dim",
        "layout": "model.kwargs.layout",
        "limit_train_batches": "trainer.limit_train_batches",
        "patience": "trainer.early_stopping.patience",
        "progress": "trainer.progress_bar",
    },
    budget=Budget(max_epochs=50),
)


def tft_config(
    args: argparse.Namespace, seed: int, sizes: dict[str, Any], run_dir: Path, horizon: int
) -> dict[str, Any]:
    """The experiment of our TFT for one seed: :data:`TFT_RECIPE`'s config of the cell."""
    dataset = {"stallion": "stallion", "electricity": "uci-electricity", "traffic": "pems-sf"}[args.dataset]
    options = {**vars(args), "sizes": sizes, "run_dir": str(run_dir)}
    cell = Cell("tft", dataset, int(seed), horizon=int(horizon))
    return TFT_RECIPE.config(cell, options, Budget(max_epochs=args.max_epochs))


def _train_ours(
    args: argparse.Namespace, seed: int, sizes: dict[str, Any], run_dir: Path, horizon: int
) -> Any:
    from gatelab.core.harness import run_experiment
    from gatelab.core.harness.configs import ExperimentConfig

    cfg = ExperimentConfig.from_dict(tft_config(args, seed, sizes, run_dir, horizon))
    # the harness builds its own data module from the registered factory: the same splits and
    # loaders as ``dm`` (deterministic construction)
    res = run_experiment(cfg, data_dir=args.data_dir)
    from gatelab.timeseries.tasks.tft import TFTTask

    task = TFTTask.load_from_checkpoint(res.best_checkpoint, map_location="cpu", weights_only=True)
    return task.model, res.trainer.current_epoch


def _write_interpretation(
    args: argparse.Namespace, model: Any, dm: Any, run_dir: Path, *, first: bool
) -> None:
    """Variable importances and attention of our model on the validation set: CSV + PNG in the
    run directory, and for the first seed of a full run also in ``docs/results/tft-<dataset>-interpretation``."""
    from gatelab.core.harness.ledger import resolve_results_dir
    from gatelab.timeseries.analysis.tft import interpret, plot_interpretation

    interp = interpret(model, dm.val_dataloader())
    folders = [run_dir / "interpretation"]
    if first and not args.quick and not args.dry_run and args.layout == "paper":
        folders.append(resolve_results_dir(args.results_dir) / f"tft-{args.dataset}-interpretation")
    for folder in folders:
        interp.to_csv(folder)
        plot_interpretation(interp, folder, title=f"TFT on {args.dataset} (validation)")


def run_tft(args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    """Rows of ``gatelab repro tft`` (see the module docstring)."""
    from gatelab.timeseries.tasks.metrics import evaluate_forecasts

    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*is an instance of `nn.Module`.*")
    sizes = paper_sizes(args.dataset)
    for key in ("hidden", "heads", "dropout", "lr", "batch_size"):
        if getattr(args, key) is not None:
            sizes[key] = getattr(args, key)
    if args.quick:
        args.max_epochs, args.limit_train_batches = 2, 5
    dm = _datamodule(args, sizes["batch_size"])
    horizon = dm.training.max_prediction_length
    variant = "quick" if args.quick else None
    config = {
        **sizes,
        **{
            k: v
            for k, v in vars(args).items()
            if k in ("max_epochs", "limit_train_batches", "patience", "layout")
        },
    }
    dataset = {"stallion": "stallion", "electricity": "uci-electricity", "traffic": "pems-sf"}[args.dataset]
    base = {"dataset": dataset, "horizon": horizon, **({"variant": variant} if variant else {})}

    naive_key = {**base, "model": "naive", "seed": 0}
    if "naive" in args.models and args.should_run(naive_key, {"baseline": "last observed value"}):
        p, y, m = naive_forecasts(dm.val_dataloader())
        metrics = evaluate_forecasts(p.expand(-1, -1, 1), y, [0.5], m, qrisk=(0.5,))
        yield {**base, "model": "naive", "seed": 0, **metrics, "config": {"baseline": "last observed value"}}

    root = Path(args.run_dir)
    for seed in args.seeds:
        for name in args.models:
            if name == "naive":
                continue
            label = "pytorch-forecasting-tft" if name == "pf" else "tft"
            tags = [
                base.get("variant"),
                f"layout-{args.layout}" if name == "tft" and args.layout != "paper" else None,
            ]
            variant = {"variant": "-".join(t for t in tags if t)} if any(tags) else {}
            key = {**base, **variant, "model": label, "seed": seed}
            if not args.should_run(key, {**config, "model": name}):
                continue
            t0 = time.perf_counter()
            run_dir = root / f"{args.dataset}-{name}-seed{seed}"
            if name == "pf":
                model, epochs = _train_pf(args, dm, seed, sizes, run_dir)
                quantiles = model.loss.quantiles
            else:
                model, epochs = _train_ours(args, seed, sizes, run_dir, horizon)
                quantiles = model.quantiles
            p, y, m = collect_forecasts(model, dm.val_dataloader())
            metrics = evaluate_forecasts(p, y, quantiles, m)
            if name == "tft":
                _write_interpretation(args, model, dm, run_dir, first=seed == 0)
            row = {
                **key,
                **metrics,
                "epochs": epochs,
                "config": {**config, "run_dir": str(run_dir), "train_s": round(time.perf_counter() - t0, 1)},
            }
            print(json.dumps(row), flush=True)
            yield row
