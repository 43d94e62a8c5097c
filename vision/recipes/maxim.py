"""``gatelab repro maxim``: MAXIM against a DnCNN baseline, colour Gaussian denoising, as a recipe.

:data:`MAXIM_RECIPE` declares the table; the harness's recipe runner
(:func:`~gatelab.core.harness.recipes.run_shared`) runs every model x seed once through
:func:`~gatelab.core.harness.run_experiment` (data module ``denoise``, task ``restoration``)
and writes one row per test set:

* data: COCO-mini ``train2017`` random crops with flips/rotations (item ``k`` of the sample
  stream is a function of ``(seed, k)``, identical for both models), additive Gaussian noise
  ``sigma`` (0-255 scale); validation on centre crops of COCO-mini ``val2017``;
* training: the paper's loss (Charbonnier + 0.1 FFT loss on every output), AdamW, linear warm-up
  then cosine decay per step over the step cap, batch size and crops equal for both models; the
  warm-up is each model's own (``--warmup`` 100 steps for MAXIM, ``--dncnn-warmup`` 0 for DnCNN,
  whose paper has none; DnCNN reaches the same plateau, near 24 dB, with or without one: see
  docs/maxim.md), stated in ``budget``;
* **budget: the same convergence rule for both models** (the row's ``budget`` column states it):
  validate every ``--val-every`` steps on centre crops of ``--val-images`` COCO-mini val2017
  images; stop when the validation PSNR has not risen by ``--min-delta`` dB for ``--patience``
  validations, or at the cap ``--max-steps``; the best-validation weights are tested
  (``train_steps``: the steps actually run, ``stopped_early``: 1 when the plateau rule stopped
  the run, 0 when the cap did). A convergence rule, not equal wall time: wall time on this
  shared machine varies several-fold with the load of other jobs, so an equal-time budget would
  not be reproducible, and each model should be judged at (near) its own best, not at a fixed
  fraction of training (the previous table stopped DnCNN at 400 steps, 2.25 dB above the noisy
  input, i.e. untrained);
* test (the task's test step, full images, batch 1): CBSD68, Kodak24 (FFDNet's 500x500 crops)
  and McMaster with fixed noise, PSNR/SSIM in RGB on the 0-1 scale without clipping or rounding
  (the official ``run_eval.py`` protocol); every row also scores the noisy input itself
  (``input_psnr`` / ``input_ssim``, the floor a denoiser must beat) and, for MAXIM, tiled
  inference (``tiled_psnr`` / ``tiled_ssim``: 256-pixel tiles, 64-pixel overlap; MAXIM's grid
  branch is global, so tiling is an approximation);
* comparisons (rendered under the table): MAXIM − DnCNN in PSNR and SSIM per test set, runs
  paired by seed (default seeds 0, 1, 2), mean difference with its 95% paired t-interval.

Reduced scale (every row's ``config`` holds the full experiment): MAXIM with ``features`` 8
(official 32) and 1 stage, the official depth 3, 2 groups, 2 bottleneck blocks, 16/8 block and
grid sizes, 3 supervision scales, zero-initialised output heads (1,952,113 parameters); DnCNN
depth 17, width 32 (paper: 64; 140,963 parameters), zero-initialised last layer (both start as
the identity); 64x64 crops, batch 8, on 80 COCO images (the paper trains on SIDD/DIV2K-scale
data for hundreds of thousands of steps). Context, not a target: the DnCNN paper's colour
blind model CDnCNN-B reaches 31.23 dB on CBSD68 at sigma 25 (trained on 432 BSD images, width
64, 20 layers; :data:`CDNCNN_B_CBSD68`). ``--quick``: at most 10 steps, validation every 5 on
2 images, batch 4, the first image of the first test set, no tiled check, the first of
``--seeds`` only.

Domain code here: the ``configure`` hook (sizes that follow from the options), the extra row
fields (``params``, ``train_steps``, the tiled metrics, the test-set digest) and the
before/after image grid (noisy | MAXIM | DnCNN | clean).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from gatelab.core.harness import Option, ReproTable, register_table
from gatelab.core.harness.recipes import Budget, Cell, CellRun, Override, Recipe, Reference, run_shared
from gatelab.core.harness.stats import Comparison

from ..data.restoration import COLOUR_TESTSETS

__all__ = [
    "CDNCNN_B_CBSD68",
    "MAXIM_RECIPE",
    "MAXIM_TABLE",
    "budget_of",
    "maxim_cells",
    "maxim_settings",
    "run_maxim",
    "test_sets_of",
]

#: ``--quick`` (a CI-sized row: ~25-30 s CPU per model, one thread): step cap, validation cadence,
#: validation images, batch size, test images of the first ``--test-sets`` set; no tiled check
QUICK_STEPS = 10
QUICK_VAL_EVERY = 5
QUICK_VAL_IMAGES = 2
QUICK_BATCH = 4
QUICK_TEST_IMAGES = 1


def test_sets_of(options: Mapping[str, Any]) -> list[str]:
    """The test sets a run scores: ``--test-sets``, or its first set alone for ``--quick``."""
    sets = list(options["test_sets"])
    return sets[:1] if options.get("quick") else sets


#: the DnCNN paper's colour blind model on CBSD68, sigma 25 (context for the table, not its target)
CDNCNN_B_CBSD68 = Reference(
    "cdncnn-b",
    "CBSD68",
    {"psnr": 31.23},
    "Zhang et al., Beyond a Gaussian Denoiser (DnCNN), IEEE TIP 2017, colour denoising table "
    "(CBM3D vs CDnCNN-B on CBSD68): CDnCNN-B 31.23 dB at sigma 25; value as "
    "tabulated in github.com/Shakarim94/CDnCNN-B-tensorflow README (the paper PDF could not be "
    "opened here). Context only: blind model (sigma 0-55), trained on 432 BSD images, width 64, "
    "20 layers",
    split="test",
    variant="sigma25",
)


def warmup_of(model: str, options: Mapping[str, Any]) -> int:
    """Linear warm-up steps of ``model``: ``--warmup`` for MAXIM (its paper's schedule),
    ``--dncnn-warmup`` for DnCNN (its paper trains with none), at most a tenth of the step cap."""
    quick = bool(options.get("quick"))
    cap = min(QUICK_STEPS, int(options["max_steps"])) if quick else int(options["max_steps"])
    steps = int(options["warmup"] if model == "maxim" else options["dncnn_warmup"])
    return min(steps, cap // 10)


def budget_of(options: Mapping[str, Any]) -> Budget:
    """The convergence budget of ``options`` (the same for every model): the step cap, and the
    plateau rule in the note (what the rows' ``budget`` column says)."""
    quick = bool(options.get("quick"))
    cap = min(QUICK_STEPS, int(options["max_steps"])) if quick else int(options["max_steps"])
    every = QUICK_VAL_EVERY if quick else int(options["val_every"])
    images = QUICK_VAL_IMAGES if quick else int(options["val_images"])
    note = (
        f"val-PSNR plateau (patience {int(options['patience'])} validations x {every} steps, "
        f"min gain {float(options['min_delta']):g} dB, {images} val crops), best-val weights; "
        f"warm-up MAXIM {warmup_of('maxim', options)} / DnCNN {warmup_of('dncnn', options)} steps; "
        "80 COCO-mini train images"
    )
    return Budget(max_steps=cap, note=note)


def maxim_settings(cell: Cell, options: Mapping[str, Any]) -> dict[str, Any]:
    """The recipe's ``configure`` hook: what follows from the table options -- the run name, the
    model's sizes, one (virtual) epoch per validation, warm-up and cosine floor, the plateau rule
    (early stopping and the checkpoint kept: best validation PSNR), the test sets, tiled
    inference (MAXIM) and the ``--quick`` reductions. The step cap is the :func:`budget_of`."""
    quick = bool(options.get("quick"))
    cap = int(budget_of(options).max_steps or 0)
    every = min(QUICK_VAL_EVERY if quick else int(options["val_every"]), cap)
    batch = QUICK_BATCH if quick else int(options["batch_size"])
    lr = float(options["lr"])
    task_kwargs: dict[str, Any] = {}
    if cell.model == "maxim":
        model = {"features": int(options["maxim_features"]), "num_stages": int(options["maxim_stages"])}
        if int(options["tile"]) > 0 and not quick:
            task_kwargs = {"tile": int(options["tile"]), "tile_overlap": int(options["tile_overlap"])}
    else:
        model = {"num_layers": int(options["dncnn_depth"]), "features": int(options["dncnn_features"])}
    return {
        "name": f"maxim-table-{cell.model}-{cell.variant}",
        "model": {"kwargs": model},
        "data": {
            "kwargs": {
                "samples_per_epoch": every * batch,
                "val_images": QUICK_VAL_IMAGES if quick else int(options["val_images"]),
                "batch_size": batch,
                "test_sets": test_sets_of(options),
            }
        },
        "task": {
            "kwargs": task_kwargs,
            "scheduler": {"warmup": warmup_of(cell.model, options), "eta_min": lr * 1e-2},
        },
        "trainer": {
            "check_val_every_n_epoch": 1,
            "early_stopping": {
                "monitor": "val/psnr",
                "mode": "max",
                "patience": int(options["patience"]),
                "min_delta": float(options["min_delta"]),
            },
            "limit_test_batches": QUICK_TEST_IMAGES if quick else None,
            "progress_bar": bool(options.get("progress", False)),
        },
    }


#: the ``maxim`` table as data (the options fill the sizes: :func:`maxim_settings`)
MAXIM_RECIPE = Recipe(
    name="maxim",
    models=("maxim", "dncnn"),
    datasets=COLOUR_TESTSETS,
    splits=("test",),
    seeds=(0, 1, 2),
    base={
        "test": True,
        "model": {"kwargs": {}},
        "data": {"name": "denoise", "kwargs": {"channels": 3}},
        "task": {
            "name": "restoration",
            "kwargs": {"freq_weight": 0.1},
            "optimizer": "adamw",
            "betas": [0.9, 0.999],
            "scheduler": {"name": "cosine", "interval": "step"},
            "monitor": "val/loss",
        },
        "trainer": {
            "max_epochs": None,
            "accelerator": "cpu",
            "devices": 1,
            # the best validation PSNR is tested; last.ckpt lets --resume-training continue
            "checkpoint": {"enabled": True, "monitor": "val/psnr", "mode": "max", "save_top_k": 1, "save_last": True},
            "early_stopping": None,
            "loggers": ["csv"],
            "log_every_n_steps": 10,
            "enable_model_summary": False,
            "num_sanity_val_steps": 0,
        },
    },
    overrides=(  # both start as the identity
        Override({"model": {"kwargs": {"zero_init_heads": True}}}, model="maxim"),
        Override({"model": {"kwargs": {"zero_init_last": True}}}, model="dncnn"),
    ),
    configure=maxim_settings,
    cell_paths={"seed": "data.kwargs.seed"},  # the sample stream and the noise follow the row's seed
    option_paths={
        "sigma": "data.kwargs.sigma",
        "crop": "data.kwargs.crop",
        "lr": "task.lr",
        "weight_decay": "task.weight_decay",
        "run_dir": "output_dir",
        "verify_data": "data.kwargs.verify",
    },
    budget=Budget(max_steps=2000, note="see budget_of"),  # replaced per run by budget_of(options)
    metrics={
        "psnr": "test/{dataset}/psnr",
        "ssim": "test/{dataset}/ssim",
        "input_psnr": "test/{dataset}/input_psnr",
        "input_ssim": "test/{dataset}/input_ssim",
    },
    references=(
        CDNCNN_B_CBSD68,
        Reference(
            "maxim-3s",
            "SIDD",
            {"psnr": 39.96, "ssim": 0.960},
            "Tu et al., MAXIM, CVPR 2022: MAXIM-3S, SIDD real-noise denoising (full scale; context only, "
            "SIDD is not available here and the task differs)",
            split="test",
        ),
    ),
    # one training serves every test set; data.kwargs.seed is the row's seed (part of its key)
    not_hashed=("output_dir", "trainer.progress_bar", "data.kwargs.test_sets", "data.kwargs.seed"),
)


def _variant(options: Mapping[str, Any]) -> str:
    return f"sigma{float(options['sigma']):g}" + ("-quick" if options.get("quick") else "")


def maxim_cells(options: Mapping[str, Any], model: str, seed: int) -> list[Cell]:
    """The rows one training of ``model`` at ``seed`` serves: one per test set of ``options``,
    variant ``sigma<sigma>`` (``-quick`` for smoke runs)."""
    variant = _variant(options)
    return [Cell(model, ds, int(seed), split="test", variant=variant) for ds in test_sets_of(options)]


def _stopped_early(res: Any, max_steps: int) -> bool:
    """Whether the plateau rule (Lightning ``EarlyStopping``) ended the fit before the cap
    (``res.stopped_early`` is read right after fit; the trainer's callback is reloaded from the
    best checkpoint by the test that follows)."""
    return bool(res.stopped_early) and int(res.trainer.global_step) < max_steps


def _extra_fields(done: CellRun, digest: str | None, max_steps: int) -> dict[str, Any]:
    """``params``, ``train_steps``, ``stopped_early`` (1: the plateau rule stopped the run before
    the cap ``max_steps``), ``run_dir``, MAXIM's tiled metrics and the test-set digest (or a note
    saying the files were not verified)."""
    res, ds = done.result, done.cell.dataset
    extra: dict[str, Any] = {
        "params": sum(p.numel() for p in res.task.model.parameters()),
        "train_steps": int(res.trainer.global_step),
        "stopped_early": int(_stopped_early(res, max_steps)),
        "run_dir": str(res.run_dir),
    }
    for metric in ("tiled_psnr", "tiled_ssim"):
        key = f"test/{ds}/{metric}"
        if key in res.metrics:
            extra[metric] = float(res.metrics[key])
    if digest:
        extra["data_sha256"] = digest
    else:
        extra["note"] = "--no-verify-data: test-set files not checked against their pinned sha256"
    return extra


def _test_digest(data_dir: str | None) -> str | None:
    from gatelab.core.harness.data import DatasetNotFoundError, dataset_sha256

    from ..data.restoration import DENOISE_TESTSETS

    try:
        return dataset_sha256(DENOISE_TESTSETS, data_dir)  # one digest of every test-set file
    except DatasetNotFoundError:
        return None


def _restorer_from_checkpoint(options: Mapping[str, Any], model: str, seed: int) -> Any:
    """The newest checkpoint's network of another run of this table (e.g. a parallel
    ``--models dncnn`` run), or ``None``."""
    from gatelab.core.config import ConfigError
    from gatelab.core.harness.resume import find_checkpoint

    from ..tasks.restoration import RestorationTask

    cell = maxim_cells(options, model, seed)[0]
    cfg = MAXIM_RECIPE.config(cell, options, budget_of(options))
    try:
        path, _ = find_checkpoint(Path(cfg["output_dir"]) / cfg["name"] / f"seed{seed}", model, "restoration")
    except ConfigError:
        return None
    if path is None:
        return None
    task = RestorationTask.load_from_checkpoint(str(path), map_location="cpu", weights_only=True)
    return task.model.eval()


def _save_grid(args: argparse.Namespace, options: Mapping[str, Any], seed: int, nets: dict, dm: Any) -> None:
    """Before/after grid, one centre crop per test set: noisy | MAXIM | DnCNN | clean."""
    import torch

    from gatelab.core.harness.ledger import resolve_results_dir

    from ..analysis.figures import save_image_grid
    from ..tasks.metrics import final_output

    for model in ("maxim", "dncnn"):
        if model not in nets:
            net = _restorer_from_checkpoint(options, model, seed)
            if net is not None:
                nets[model] = net
    nets = {k: nets[k].eval() for k in ("maxim", "dncnn") if k in nets}
    rows, size = [], int(args.grid_crop)
    for name in dm.test_names:
        x, y = dm.test_ds[name][0]
        with torch.no_grad():
            outs = [final_output(net(x.unsqueeze(0)))[0] for net in nets.values()]
        cy, cx = max(0, (y.shape[-2] - size) // 2), max(0, (y.shape[-1] - size) // 2)
        rows.append([t[..., cy : cy + size, cx : cx + size] for t in (x, *outs, y)])
    name = f"maxim_denoise_{_variant(options)}_seed{seed}_{'-'.join(nets)}.png"
    save_image_grid(rows, resolve_results_dir(args.results_dir) / name)


def run_maxim(args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    """Rows of the ``maxim`` table: for each seed and model, one run (:func:`run_shared`) and a
    row per test set; then the before/after grid of the seed."""
    if args.task != "denoise":  # argparse restricts the choices; keep the function honest
        raise ValueError(f"--task {args.task!r}: only 'denoise' is implemented")
    options = vars(args)
    budget = budget_of(options)
    digest = _test_digest(args.data_dir) if args.verify_data else None
    for seed in args.seeds[:1] if args.quick else args.seeds:  # --quick: a CI row, the first seed
        nets: dict[str, Any] = {}
        dm = None
        for model in args.models:
            done = run_shared(
                MAXIM_RECIPE,
                maxim_cells(options, model, seed),
                args,
                budget=budget,
                ckpt_path="auto" if args.resume_training else None,
            )
            for d in done:
                d.row.update(_extra_fields(d, digest, int(budget.max_steps or 0)))
            if done:
                nets[model] = done[0].result.task.model
                dm = done[0].result.datamodule
            yield from (d.row for d in done)
        if args.grid and dm is not None and not args.dry_run:
            _save_grid(args, options, seed, nets, dm)


# ``maxim`` is declared lazily in gatelab.vision.registry; importing this module fills it in
MAXIM_TABLE = register_table(
    ReproTable(
        name="maxim",
        description=(
            "MAXIM (reduced width) vs a DnCNN baseline trained the same way on COCO-mini crops, "
            "Gaussian colour denoising sigma=25, PSNR/SSIM (RGB, official run_eval protocol) on CBSD68, "
            "Kodak24 (500x500 crops), McMaster; both models trained to a validation-PSNR plateau under "
            "the same rule and cap (budget column), best-validation weights tested; input_* = the noisy "
            "input itself, tiled_* = MAXIM with 256-pixel tiles"
        ),
        paper=(
            "Tu et al., MAXIM, CVPR 2022. Published context (not comparable, not run here, not this "
            "table's target): MAXIM-3S on SIDD real-noise denoising 39.96 dB PSNR / 0.960 SSIM (SIDD is "
            "not available on this machine); the DnCNN paper's colour blind CDnCNN-B 31.23 dB on CBSD68 "
            "at sigma 25 (Zhang et al., IEEE TIP 2017, colour table; trained on 432 BSD images at width "
            "64). The models here are reduced and trained on 80 images"
        ),
        run="gatelab.vision.recipes.maxim:run_maxim",
        references=MAXIM_RECIPE.reference_rows(),
        options=[
            Option("--task", choices=["denoise"], default="denoise", help="restoration task (denoise)"),
            Option("--sigma", type=float, default=25.0, help="Gaussian noise level on the 0-255 scale"),
            Option("--max-steps", type=int, default=2000, help="step cap of the convergence budget"),
            Option("--val-every", type=int, default=100, help="steps between validations"),
            Option("--val-images", type=int, default=8, help="COCO-mini val2017 centre crops validated"),
            Option(
                "--patience", type=int, default=5,
                help="validations without a --min-delta gain in val PSNR before the run stops",
            ),
            Option("--min-delta", type=float, default=0.05, help="val PSNR gain (dB) that counts"),
            Option("--batch-size", type=int, default=8),
            Option("--crop", type=int, default=64, help="training crop size (multiple of 64 for MAXIM)"),
            Option("--lr", type=float, default=5e-4),
            Option("--weight-decay", type=float, default=1e-4),
            Option("--warmup", type=int, default=100, help="MAXIM's linear warm-up steps"),
            Option(
                "--dncnn-warmup", type=int, default=0,
                help="DnCNN's linear warm-up steps (its paper uses none)",
            ),
            Option("--models", nargs="+", choices=list(MAXIM_RECIPE.models), default=list(MAXIM_RECIPE.models)),
            Option("--maxim-features", type=int, default=8),
            Option("--maxim-stages", type=int, default=1),
            Option("--dncnn-depth", type=int, default=17),
            Option("--dncnn-features", type=int, default=32),
            Option("--test-sets", nargs="+", choices=list(COLOUR_TESTSETS), default=list(COLOUR_TESTSETS)),
            Option("--tile", type=int, default=256, help="MAXIM's tiled-inference check: tile size (0: off)"),
            Option("--tile-overlap", type=int, default=64, help="overlap of the tiles"),
            Option(
                "--no-verify-data",
                dest="verify_data",
                action="store_false",
                help="skip the sha256 check of the data files (rows then carry no data_sha256)",
            ),
            Option("--run-dir", default="runs/repro-maxim", help="run directories (checkpoints, logs)"),
            Option(
                "--resume-training",
                action="store_true",
                help="continue each training from its newest checkpoint under --run-dir "
                "(--resume skips recorded rows)",
            ),
            Option("--no-grid", dest="grid", action="store_false", help="skip the before/after PNG"),
            Option("--grid-crop", type=int, default=128),
            Option("--no-progress", dest="progress", action="store_false"),
        ],
        domain="vision",
        metrics=["psnr", "ssim", "input_psnr", "tiled_psnr", "train_steps", "params", "wall_s"],
        verify_metrics=["psnr", "ssim", "input_psnr", "train_steps", "params"],
        default_seeds=MAXIM_RECIPE.seeds,
        quick_table="maxim-quick",
        # --verify of a quick row on another machine / thread count: float32 convolutions may sum in
        # another order; 1e-4 dB / 1e-6 SSIM is far below any difference the table reports
        tolerance={"psnr": 1e-4, "ssim": 1e-6, "input_psnr": 1e-4, "train_steps": 0, "params": 0},
        not_in_hash=("models", "test_sets", "run_dir", "resume_training", "grid", "grid_crop", "progress"),
        comparisons=[
            Comparison("psnr", "maxim", "dncnn", lower_is_better=False, label="MAXIM − DnCNN (PSNR, dB)"),
            Comparison("ssim", "maxim", "dncnn", lower_is_better=False, label="MAXIM − DnCNN (SSIM)"),
        ],
    )
)
