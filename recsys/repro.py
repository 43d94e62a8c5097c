"""``gatelab repro ctr``: train every requested model with its preset and report test AUC/logloss."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from typing import Any

from gatelab.core.harness.configs import ExperimentConfig

from .presets import BARS_TRAINING, preset

__all__ = ["ctr_config", "run_ctr"]


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
    """The :class:`ExperimentConfig` of one table row: ``model``'s preset with BARS training."""
    p = preset(dataset, model)
    t = BARS_TRAINING
    trainer: dict[str, Any] = {
        "max_epochs": max_epochs,
        "accelerator": "cpu",
        "devices": 1,
        "gradient_clip_val": t["gradient_clip_val"],
        "early_stopping": {
            "monitor": t["monitor"],
            "mode": "max",
            "patience": t["patience"],
            "min_delta": 1e-6,
        },
        "checkpoint": {
            "enabled": True,
            "monitor": t["monitor"],
            "mode": "max",
            "save_top_k": 1,
            "save_last": False,
        },
        "loggers": ["csv"],
        "progress_bar": True,
        "num_sanity_val_steps": 0,
        "log_every_n_steps": 10,
    }
    if quick:
        trainer.update(max_epochs=1, limit_train_batches=3, limit_val_batches=2, limit_test_batches=2)
    data_kwargs: dict[str, Any] = {"dataset": dataset, "batch_size": t["batch_size"], "eval_batch_size": 8192}
    if dataset == "frappe":
        data_kwargs["negative_seed"] = negative_seed
    return ExperimentConfig.from_dict(
        {
            "name": f"ctr-{dataset}-{model}" + ("-quick" if quick else ""),
            "seed": seed,
            "output_dir": output_dir,
            "test": True,
            "model": {"name": model, "kwargs": p["model"]},
            "data": {"name": "ctr", "kwargs": data_kwargs},
            "task": {
                "name": "ctr",
                "kwargs": p["task"],
                "optimizer": t["optimizer"],
                "lr": t["lr"],
                "weight_decay": 0.0,
                "monitor": t["monitor"],
            },
            "trainer": trainer,
        }
    )


def run_ctr(args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    """Rows of the ``ctr`` table: one per (model, seed)."""
    from gatelab.core.harness.experiment import run_experiment

    for model in args.models:
        preset(args.dataset, model)  # fail early on an unknown model
    for seed in args.seeds:
        for model in args.models:
            cfg = ctr_config(
                model,
                args.dataset,
                seed=seed,
                max_epochs=args.max_epochs,
                output_dir=args.output_dir,
                negative_seed=args.negative_seed,
                quick=args.quick,
            )
            variant = "quick" if args.quick else ("official-train" if args.dataset == "frappe_x1" else None)
            key = {"model": model, "dataset": "frappe", "split": "x1", "seed": seed, "variant": variant}
            if not args.should_run(key, {k: v for k, v in cfg.to_dict().items() if k != "output_dir"}):
                continue
            res = run_experiment(cfg, data_dir=args.data_dir)
            ck = res.trainer.checkpoint_callback
            best = ck.best_model_score if ck is not None else None
            dm = res.datamodule
            n_params = sum(p.numel() for p in res.task.model.parameters())
            row: dict[str, Any] = {
                "model": model,
                "dataset": "frappe",
                "split": "x1",
                "seed": seed,
                "auc": res.metrics["test/auc"],
                "logloss": res.metrics["test/logloss"],
                "val_auc": float(best) if best is not None else res.metrics.get("val/auc"),
                "epochs": int(res.trainer.current_epoch),
                "config": json.dumps(
                    {
                        "model_kwargs": cfg.model.kwargs,
                        "task_kwargs": cfg.task.kwargs,
                        "params": n_params,
                        "train_rows": len(dm.encoded["train"]),
                        "data": dm.info.get("train", {}),
                        "oov": {k: v.get("oov") for k, v in dm.spec.splits.items()},
                        "run_dir": str(res.run_dir),
                        "max_epochs": args.max_epochs,
                        "train_data": "official x1 train.csv"
                        if args.dataset == "frappe_x1"
                        else "rebuilt from the raw log (NFM protocol)",
                    },
                    sort_keys=True,
                ),
            }
            if variant is not None:
                row["variant"] = variant
            yield row
