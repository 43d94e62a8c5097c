"""``gatelab repro maxim --task denoise``: a small, honest MAXIM experiment that fits a 2-core CPU.

Both models are trained by the same code path (:func:`gatelab.vision.tasks.restoration.fit_restoration`):
the same COCO-mini ``train2017`` random crops with flips/rotations (identical sample stream:
item ``k`` is a function of ``(seed, k)``), additive Gaussian noise ``sigma`` (0-255 scale), the
paper's loss (Charbonnier + 0.1 FFT loss on every output), AdamW, linear warm-up then cosine
decay, the same number of steps and batch size. Evaluation: full-size images of CBSD68, Kodak24
(FFDNet's 500x500 crops) and McMaster with fixed noise, PSNR/SSIM in RGB on the 0-255 scale
without clipping or rounding (the official ``run_eval.py`` protocol), plus the noisy input itself.

Reduced scale (stated in every record's ``config_model``/``config_train``): by default MAXIM
with ``features`` 8 (official 32) and 1 stage, the official depth 3, 2 groups, 2 bottleneck
blocks, 16/8 block and grid sizes, 3 supervision scales; DnCNN depth 17, width 32 (paper: 64);
64x64 crops, batch 8, 400 steps on 80 COCO images (the paper trains on SIDD/DIV2K-scale data
for hundreds of thousands of steps). These defaults were sized so that both models train and
are evaluated on the full test sets within about an hour of a shared CPU core each. The published full-scale numbers (MAXIM-3S, SIDD real
noise: 39.96 dB / 0.960) are context only: SIDD is not available here and the task differs.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from gatelab.core.harness.configs import CheckpointConfig, SchedulerConfig, TaskConfig, TrainerConfig

__all__ = ["run_maxim"]


def _model_specs(args: argparse.Namespace) -> dict[str, tuple[str, dict[str, Any], str]]:
    """row name -> (model name for the task, model kwargs, description)."""
    maxim_kwargs = dict(features=args.maxim_features, num_stages=args.maxim_stages, zero_init_heads=True)
    return {
        "maxim": (
            "maxim",
            maxim_kwargs,
            f"MAXIM-{args.maxim_stages}S, features {args.maxim_features} (official 32), depth 3, groups 2",
        ),
        "dncnn": (
            "dncnn",
            dict(depth=args.dncnn_depth, features=args.dncnn_features, zero_init_last=True),
            f"DnCNN depth {args.dncnn_depth}, width {args.dncnn_features}",
        ),
    }


def _grid(rows: list[list[torch.Tensor]], path: Path, pad: int = 2) -> None:
    """Save a grid of ``[3, h, w]`` images (rows x columns) as PNG, values clipped to [0, 1]."""
    import numpy as np
    from PIL import Image

    h, w = rows[0][0].shape[-2:]
    nr, nc = len(rows), len(rows[0])
    canvas = np.full((nr * (h + pad) + pad, nc * (w + pad) + pad, 3), 255, np.uint8)
    for r, row in enumerate(rows):
        for c, img in enumerate(row):
            a = (img.clamp(0, 1) * 255.0).round().byte().permute(1, 2, 0).numpy()
            y, x = pad + r * (h + pad), pad + c * (w + pad)
            canvas[y : y + h, x : x + w] = a
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(canvas).save(path, optimize=True)


def run_maxim(args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    """Rows: one per (model, test set) -- ``maxim``, ``dncnn`` and ``noisy-input``."""
    from gatelab.core.harness.ledger import resolve_results_dir

    from .data.datamodule import denoise_datamodule
    from .models.maxim import tiled_forward
    from .tasks.metrics import MetricOptions, final_output
    from .tasks.restoration import evaluate_images, fit_restoration

    if args.task != "denoise":  # argparse restricts the choices; keep the function honest
        raise ValueError(f"--task {args.task!r}: only 'denoise' is implemented")
    torch.set_num_threads(max(1, int(__import__("os").environ.get("OMP_NUM_THREADS", "1"))))
    steps = 20 if args.quick else args.steps
    per_epoch = min(args.steps_per_epoch, steps)
    n_test = 2 if args.quick else None
    variant = f"sigma{args.sigma:g}" + ("-quick" if args.quick else "")
    opts = MetricOptions()  # official protocol: RGB, no border crop, no clip, no rounding
    data_dir = args.data_dir  # None: $GATELAB_DATA, else the default (resolved by the data module)
    results = resolve_results_dir(args.results_dir)
    specs = {k: v for k, v in _model_specs(args).items() if k in args.models}
    from gatelab.core.harness.data import dataset_sha256

    from .data.restoration import DENOISE_TESTSETS

    test_digest = dataset_sha256(DENOISE_TESTSETS, data_dir)  # one digest of every test-set file

    for seed in args.seeds:
        dm = denoise_datamodule(
            data_dir,
            sigma=args.sigma,
            crop=args.crop,
            batch_size=args.batch_size,
            samples_per_epoch=per_epoch * args.batch_size,
            val_images=4 if args.quick else 8,
            test_sets=args.test_sets,
            seed=seed,
        )
        dm.setup("fit")
        tests = {}
        for name, ds in dm.test_ds.items():
            if n_test is not None:
                ds = torch.utils.data.Subset(ds, list(range(n_test)))
            tests[name] = ds
        for name, ds in tests.items() if args.noisy else ():  # the floor every denoiser must beat
            key = {"model": "noisy-input", "dataset": name, "split": "test", "variant": variant, "seed": seed}
            if not args.should_run(key, {"sigma": args.sigma, "n_test": n_test}):
                continue
            m = evaluate_images(None, ds, opts)
            yield {
                "data_sha256": test_digest,
                "model": "noisy-input",
                "dataset": name,
                "split": "test",
                "variant": variant,
                "seed": seed,
                "psnr": m["psnr"],
                "ssim": m["ssim"],
            }
        restorers = {}
        for key, (model_name, kwargs, desc) in specs.items():
            # the rows this model's training serves: one per test set, and MAXIM's tiled check
            row_config = {"model": model_name, **kwargs}
            wanted = {
                name: args.should_run(
                    {"model": key, "dataset": name, "split": "test", "variant": variant, "seed": seed},
                    row_config,
                )
                for name in tests
            }
            n_tile = min(args.tile_check_images, len(tests["Kodak24"])) if "Kodak24" in tests else 0
            tile_wanted = key == "maxim" and args.tile_check and "Kodak24" in tests and any(
                [
                    args.should_run(
                        {"model": key, "dataset": f"Kodak24[:{n_tile}]", "split": "test",
                         "variant": f"{variant}-{how}", "seed": seed},
                        row_config,
                    )
                    for how in ("whole", "tiled256o64")
                ]
            )  # fmt: skip
            if not any(wanted.values()) and not tile_wanted:
                continue
            task = TaskConfig(
                name="restoration",
                kwargs={"freq_weight": 0.1},
                optimizer="adamw",
                lr=args.lr,
                weight_decay=args.weight_decay,
                betas=(0.9, 0.999),
                scheduler=SchedulerConfig(
                    name="cosine",
                    interval="step",
                    warmup=min(args.warmup, steps // 10),
                    eta_min=args.lr * 1e-2,
                ),
                monitor="val/loss",
            )
            trainer = TrainerConfig(
                max_steps=steps,
                max_epochs=None,
                accelerator="cpu",
                devices=1,
                checkpoint=CheckpointConfig(enabled=True, monitor=None, save_top_k=1, save_last=True),
                loggers=["csv"],
                progress_bar=args.progress,
                check_val_every_n_epoch=max(1, (steps // per_epoch) // 4),
                log_every_n_steps=10,
                enable_model_summary=False,
                num_sanity_val_steps=0,
            )
            run_dir = Path(args.run_dir) / f"{key}-{variant}" / f"seed{seed}"
            resume = run_dir / "checkpoints" / "last.ckpt"
            lit, tr, wall = fit_restoration(
                model_name,
                kwargs,
                dm,
                task=task,
                trainer=trainer,
                run_dir=run_dir,
                seed=seed,
                resume=resume if (args.resume_training and resume.is_file()) else None,
            )
            model = lit.model.eval()
            n_params = sum(p.numel() for p in model.parameters())
            final = {k: float(v) for k, v in tr.callback_metrics.items() if k.startswith("val/")}

            def restore(x: torch.Tensor, model: torch.nn.Module = model) -> torch.Tensor:
                out = model(x)
                return out[-1][-1] if isinstance(out, list) else out

            restorers[key] = restore
            for name, ds in tests.items():
                import time

                if not wanted[name]:
                    continue
                t0 = time.perf_counter()
                m = evaluate_images(restore, ds, opts, progress=f"{key} {name}" if args.progress else None)
                row = {
                    "data_sha256": test_digest,
                    "model": key,
                    "dataset": name,
                    "split": "test",
                    "variant": variant,
                    "seed": seed,
                    "psnr": m["psnr"],
                    "ssim": m["ssim"],
                    "params": n_params,
                    "train_wall_s": round(wall, 1),
                    "eval_wall_s": round(time.perf_counter() - t0, 1),
                    "config_model": json.dumps({"model": model_name, **kwargs, "description": desc}),
                    "config_train": json.dumps(
                        {
                            "steps": steps,
                            "batch_size": args.batch_size,
                            "crop": args.crop,
                            "lr": args.lr,
                            "weight_decay": args.weight_decay,
                            "optimizer": "adamw",
                            "schedule": "linear warm-up + cosine (per step)",
                            "loss": "charbonnier + 0.1 fft, every output",
                            "train_images": "coco_mini train2017 (80)",
                            "final_val": final,
                        }
                    ),
                }
                yield row
            # tiled inference (MAXIM's grid branch is global: tiling is an approximation) on one set
            # on the first Kodak24 images: whole-image vs 256-pixel tiles with 64-pixel overlap
            if tile_wanted:
                ds = tests["Kodak24"]
                ds = torch.utils.data.Subset(ds, list(range(min(args.tile_check_images, len(ds)))))
                whole = evaluate_images(restore, ds, opts)
                tiled = evaluate_images(
                    lambda x, r=restore: tiled_forward(r, x, tile=256, overlap=64), ds, opts
                )
                for how, m in (("whole", whole), ("tiled256o64", tiled)):
                    yield {
                        "data_sha256": test_digest,
                        "model": key,
                        "dataset": f"Kodak24[:{len(ds)}]",
                        "split": "test",
                        "variant": f"{variant}-{how}",
                        "seed": seed,
                        "psnr": m["psnr"],
                        "ssim": m["ssim"],
                        "params": n_params,
                    }
        # before/after grid: one crop per test set, columns noisy | maxim | dncnn | clean; a model
        # trained by another (parallel) run of this table is loaded from its last checkpoint
        for key in ("maxim", "dncnn"):
            ckpt = Path(args.run_dir) / f"{key}-{variant}" / f"seed{seed}" / "checkpoints" / "last.ckpt"
            if key not in restorers and ckpt.is_file():
                from .tasks.restoration import RestorationTask

                other = RestorationTask.load_from_checkpoint(str(ckpt), map_location="cpu", weights_only=True)
                net = other.model.eval()
                restorers[key] = lambda x, m=net: final_output(m(x))
        restorers = {k: restorers[k] for k in ("maxim", "dncnn") if k in restorers}
        if args.grid and restorers and not args.dry_run:
            rows = []
            for ds in tests.values():
                x, y = ds[0]
                with torch.no_grad():
                    outs = [r(x.unsqueeze(0))[0] for r in restorers.values()]
                cy, cx = (y.shape[-2] - args.grid_crop) // 2, (y.shape[-1] - args.grid_crop) // 2

                def c(t: torch.Tensor, cy: int = cy, cx: int = cx) -> torch.Tensor:
                    return t[..., cy : cy + args.grid_crop, cx : cx + args.grid_crop]

                rows.append([c(x), *[c(o) for o in outs], c(y)])
            name = f"maxim_denoise_{variant}_seed{seed}_{'-'.join(restorers)}.png"
            _grid(rows, results / name)
