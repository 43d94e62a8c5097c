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

from gatelab.core.harness import Option, ReproTable, register_table
from gatelab.core.harness.configs import CheckpointConfig, SchedulerConfig, TaskConfig, TrainerConfig

from ..analysis.figures import save_image_grid
from ..data.restoration import COLOUR_TESTSETS

__all__ = ["MAXIM_TABLE", "run_maxim"]


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
            dict(num_layers=args.dncnn_depth, features=args.dncnn_features, zero_init_last=True),
            f"DnCNN depth {args.dncnn_depth}, width {args.dncnn_features}",
        ),
    }


def run_maxim(args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    """Rows: one per (model, test set) -- ``maxim``, ``dncnn`` and ``noisy-input``."""
    from gatelab.core.harness.ledger import resolve_results_dir

    from ..data.datamodule import denoise_datamodule
    from ..models.maxim import tiled_forward
    from ..tasks.metrics import MetricOptions, final_output
    from ..tasks.restoration import evaluate_images, fit_restoration

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

    from ..data.restoration import DENOISE_TESTSETS

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
                from ..tasks.restoration import RestorationTask

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
            save_image_grid(rows, results / name)


# ``maxim`` is declared lazily in gatelab.vision.registry; importing this module fills it in
MAXIM_TABLE = register_table(
    ReproTable(
        name="maxim",
        description=(
            "MAXIM (reduced width) vs a DnCNN baseline trained the same way on COCO-mini crops, "
            "Gaussian colour denoising sigma=25, PSNR/SSIM (RGB, official run_eval protocol) on CBSD68, "
            "Kodak24 (500x500 crops), McMaster"
        ),
        paper=(
            "Tu et al., MAXIM, CVPR 2022. Published full-scale context (not comparable, not run here): "
            "MAXIM-3S on SIDD real-noise denoising 39.96 dB PSNR / 0.960 SSIM (SIDD is not available on "
            "this machine; the models here are reduced and trained for minutes on 80 images)"
        ),
        run="gatelab.vision.recipes.maxim:run_maxim",
        options=[
            Option("--task", choices=["denoise"], default="denoise", help="restoration task (denoise)"),
            Option("--sigma", type=float, default=25.0, help="Gaussian noise level on the 0-255 scale"),
            Option("--steps", type=int, default=400, help="optimizer steps per model"),
            Option("--steps-per-epoch", type=int, default=100, help="steps per (virtual) epoch"),
            Option("--batch-size", type=int, default=8),
            Option("--crop", type=int, default=64, help="training crop size (multiple of 64 for MAXIM)"),
            Option("--lr", type=float, default=5e-4),
            Option("--weight-decay", type=float, default=1e-4),
            Option("--warmup", type=int, default=100, help="linear warm-up steps"),
            Option("--models", nargs="+", choices=["maxim", "dncnn"], default=["maxim", "dncnn"]),
            Option("--maxim-features", type=int, default=8),
            Option("--maxim-stages", type=int, default=1),
            Option("--dncnn-depth", type=int, default=17),
            Option("--dncnn-features", type=int, default=32),
            Option("--test-sets", nargs="+", choices=list(COLOUR_TESTSETS), default=list(COLOUR_TESTSETS)),
            Option("--run-dir", default="runs/repro-maxim", help="checkpoints and logs"),
            Option(
                "--resume-training",
                action="store_true",
                help="continue training from <run-dir>/.../last.ckpt when present (--resume skips recorded rows)",
            ),
            Option("--no-grid", dest="grid", action="store_false", help="skip the before/after PNG"),
            Option("--grid-crop", type=int, default=128),
            Option("--no-tile-check", dest="tile_check", action="store_false"),
            Option("--tile-check-images", type=int, default=4, help="Kodak24 images for the tiled check"),
            Option("--no-noisy", dest="noisy", action="store_false", help="skip the noisy-input rows"),
            Option("--no-progress", dest="progress", action="store_false"),
        ],
        domain="vision",
        metrics=["psnr", "ssim", "params", "train_wall_s", "eval_wall_s"],
        verify_metrics=["psnr", "ssim", "params"],
        default_seeds=(0,),
        not_in_hash=("models", "test_sets", "run_dir", "resume_training", "grid", "grid_crop", "progress"),
    )
)
