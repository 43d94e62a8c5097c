"""The ``maxim`` table as a recipe: its expansion into experiment configs (validated, before any
data is read) and a tiny end-to-end run through the harness's runner on fixture data in the real
formats, with ``--resume`` and ``--verify``."""

from __future__ import annotations

import json

import pytest
from restoration_fixtures import make_fake_restoration_data

from gatelab.core.harness import ledger
from gatelab.core.harness.cli import main
from gatelab.core.harness.configs import ExperimentConfig
from gatelab.core.harness.repro import get_table, run_table, table_parser
from gatelab.core.harness.validation import validate_experiment
from gatelab.vision.recipes.maxim import CDNCNN_B_CBSD68, MAXIM_RECIPE, budget_of, maxim_cells


def _options(*argv: str) -> dict:
    return vars(table_parser(get_table("maxim")).parse_args(list(argv)))


def _group_config(options: dict, model: str, seed: int) -> dict:
    cells = maxim_cells(options, model, seed)
    configs = [MAXIM_RECIPE.config(c, options, budget_of(options)) for c in cells]
    assert all(c == configs[0] for c in configs)  # one training serves every test set
    return configs[0]


def test_expansion_is_the_documented_protocol():
    opts = _options()
    assert opts["models"] == ["maxim", "dncnn"] and opts["sigma"] == 25.0 and opts["seeds"] == [0, 1, 2]
    cells = maxim_cells(opts, "maxim", 0)
    assert [c.key() for c in cells] == [
        {"model": "maxim", "dataset": ds, "split": "test", "variant": "sigma25", "seed": 0}
        for ds in ("CBSD68", "Kodak24", "McMaster")
    ]
    maxim = _group_config(opts, "maxim", 0)
    dncnn = _group_config(opts, "dncnn", 0)
    assert maxim["model"] == {
        "name": "maxim",
        "kwargs": {"zero_init_heads": True, "features": 8, "num_stages": 1},
    }
    assert dncnn["model"] == {"name": "dncnn", "kwargs": {"zero_init_last": True, "num_layers": 17, "features": 32}}
    assert maxim["data"] == {
        "name": "denoise",
        "kwargs": {"channels": 3, "seed": 0, "samples_per_epoch": 800, "val_images": 8,
                   "test_sets": ["CBSD68", "Kodak24", "McMaster"], "sigma": 25.0, "crop": 64, "batch_size": 8,
                   "verify": True},
    }  # fmt: skip
    task = maxim["task"]
    assert task["lr"] == 5e-4 and task["weight_decay"] == 1e-4 and task["optimizer"] == "adamw"
    assert task["scheduler"] == {"name": "cosine", "interval": "step", "warmup": 100, "eta_min": pytest.approx(5e-6)}
    assert task["kwargs"] == {"freq_weight": 0.1, "tile": 256, "tile_overlap": 64}
    assert dncnn["task"]["kwargs"] == {"freq_weight": 0.1}  # tiling is MAXIM's check only
    tr = maxim["trainer"]
    assert tr["max_steps"] == 2000 and tr["max_epochs"] is None and tr["check_val_every_n_epoch"] == 1
    # the convergence budget, the same for both models: plateau of the val PSNR, best weights tested
    assert tr["early_stopping"] == {"monitor": "val/psnr", "mode": "max", "patience": 5, "min_delta": 0.05}
    assert tr["checkpoint"]["monitor"] == "val/psnr" and tr["checkpoint"]["mode"] == "max"
    assert tr["limit_test_batches"] is None
    # the same trainer and schedule shape; each model its own warm-up (DnCNN's paper has none)
    assert dncnn["trainer"] == tr and dncnn["task"]["scheduler"] == {**task["scheduler"], "warmup": 0}
    assert budget_of(opts).describe(maxim) == (
        "max_steps=2000; val-PSNR plateau (patience 5 validations x 100 steps, min gain 0.05 dB, "
        "8 val crops), best-val weights; warm-up MAXIM 100 / DnCNN 0 steps; 80 COCO-mini train images"
    )
    assert budget_of(opts).describe(maxim) == budget_of(opts).describe(dncnn)  # one budget column: paired
    both = _options("--dncnn-warmup", "100")
    assert _group_config(both, "dncnn", 0)["task"]["scheduler"]["warmup"] == 100
    assert "warm-up MAXIM 100 / DnCNN 100 steps" in budget_of(both).note
    assert maxim["output_dir"] == "runs/repro-maxim" and maxim["name"] == "maxim-table-maxim-sigma25"
    for cfg in (maxim, dncnn):  # every key and value is checked against the registered components
        validate_experiment(ExperimentConfig.from_dict(cfg))
    # seeds share a config hash (the seed is in the row key); test sets and paths are not hashed
    seed1 = _group_config(_options("--test-sets", "Kodak24", "--run-dir", "elsewhere"), "maxim", 1)
    assert seed1["data"]["kwargs"]["seed"] == 1 and MAXIM_RECIPE.hashed(seed1) == MAXIM_RECIPE.hashed(maxim)

    quick = _options("--quick", "--sigma", "15")
    q = _group_config(quick, "maxim", 0)
    assert [c.key() for c in maxim_cells(quick, "maxim", 0)] == [
        {"model": "maxim", "dataset": "CBSD68", "split": "test", "variant": "sigma15-quick", "seed": 0}
    ]  # the first test set only
    assert q["trainer"]["max_steps"] == 10 and q["trainer"]["limit_test_batches"] == 1
    assert q["data"]["kwargs"]["val_images"] == 2 and q["data"]["kwargs"]["samples_per_epoch"] == 20
    assert q["data"]["kwargs"]["batch_size"] == 4 and q["data"]["kwargs"]["sigma"] == 15.0
    assert q["task"]["scheduler"]["warmup"] == 1
    assert _group_config(quick, "dncnn", 0)["task"]["scheduler"]["warmup"] == 0
    assert q["task"]["kwargs"] == {"freq_weight": 0.1}  # no tiled check in the CI row
    refs = get_table("maxim").references
    assert {r["model"]: r["psnr"] for r in refs} == {"cdncnn-b": 31.23, "maxim-3s": 39.96}
    assert CDNCNN_B_CBSD68.dataset == "CBSD68" and "TIP 2017" in CDNCNN_B_CBSD68.source
    # context, not a target: no row of ours is matched by a reference (no paper_* / delta columns)
    assert get_table("maxim").paper_values({"model": "dncnn", "dataset": "CBSD68", "split": "test", "variant": "sigma25"}) == {}


def test_comparisons_are_declared_per_test_set():
    from gatelab.core.harness.ledger import paired_comparisons

    table = get_table("maxim")
    assert [(c.metric, c.model, c.rival, c.lower_is_better) for c in table.comparisons] == [
        ("psnr", "maxim", "dncnn", False),
        ("ssim", "maxim", "dncnn", False),
    ]
    base = {"split": "test", "variant": "sigma25", "budget": "b", "ssim": 0.5}
    recs = [
        {**base, "model": m, "dataset": ds, "seed": s, "psnr": p + (1.0 if m == "maxim" else 0.0) + 0.1 * s * (ds == "Kodak24")}
        for m in ("maxim", "dncnn") for ds in ("CBSD68", "Kodak24") for s, p in ((0, 25.0), (1, 25.3), (2, 24.8))
    ]  # fmt: skip
    psnr = [r for r in paired_comparisons(recs, table.comparisons) if r["metric"] == "psnr"]
    assert [(r["dataset"], r["pairs"], round(r["diff"], 9), r["verdict"]) for r in psnr] == [
        ("CBSD68", 3, 1.0, "maxim better"),
        ("Kodak24", 3, 1.0, "maxim better"),
    ]


def test_tiny_table_runs_resumes_and_verifies(tmp_path, capsys):
    """The full protocol at fixture sizes: 2 seeds x 2 models, each training stopped by the plateau
    rule (a gain of 100 dB never comes: the run stops at the 2nd validation, step 4 of 10), both
    test sets from one training, tiling for MAXIM, the paired comparisons; --resume; --verify."""
    data = make_fake_restoration_data(tmp_path / "data")
    res_dir = tmp_path / "res"
    argv = [
        "--seeds", "0", "1", "--data-dir", str(data), "--results-dir", str(res_dir), "--run-dir", str(tmp_path / "runs"),
        "--models", "dncnn", "maxim", "--crop", "16", "--batch-size", "2", "--maxim-features", "4",
        "--dncnn-depth", "3", "--dncnn-features", "4", "--tile", "16", "--tile-overlap", "4",
        "--max-steps", "10", "--val-every", "2", "--val-images", "2", "--patience", "1", "--min-delta", "100",
        "--warmup", "2", "--test-sets", "Kodak24", "McMaster", "--no-progress", "--no-verify-data",
    ]  # fmt: skip
    table = get_table("maxim")
    res = run_table(table, argv)
    keys = [(r["model"], r["dataset"], r["seed"]) for r in res.rows]
    assert keys == [(m, ds, s) for s in (0, 1) for m in ("dncnn", "maxim") for ds in ("Kodak24", "McMaster")]
    for model in ("dncnn", "maxim"):  # one training per model and seed serves both test sets
        runs = list((tmp_path / "runs" / f"maxim-table-{model}-sigma25" / "seed0").glob("version_*"))
        assert len(runs) == 1
        metrics = json.loads((runs[0] / "metrics.json").read_text())
        for r in (r for r in res.rows if r["model"] == model and r["seed"] == 0):
            assert r["psnr"] == metrics[f"test/{r['dataset']}/psnr"]
            assert r["input_psnr"] == metrics[f"test/{r['dataset']}/input_psnr"]
            assert r["train_steps"] == 4 and r["stopped_early"] == 1
            assert r["budget"].startswith("max_steps=10; val-PSNR plateau (patience 1 validations x 2 steps")
            assert ("tiled_psnr" in r) == (model == "maxim")
            assert 5 < r["psnr"] < 40 and 0 < r["ssim"] <= 1
    rows = {(r["model"], r["dataset"], r["seed"]): r for r in res.rows}
    assert rows["dncnn", "Kodak24", 0]["input_psnr"] == rows["maxim", "Kodak24", 0]["input_psnr"]  # same noisy images
    assert (res_dir / "maxim_denoise_sigma25_seed0_maxim-dncnn.png").is_file()
    assert len(ledger.read_records("maxim", res_dir)) == 8
    md = (res_dir / "maxim.md").read_text()
    assert "## Paired comparisons" in md and "| MAXIM − DnCNN (PSNR, dB) | psnr | Kodak24 |" in md

    again = run_table(table, [*argv, "--resume"])
    assert again.rows == [] and len(again.skipped) == 8
    assert len(list((tmp_path / "runs").glob("*/seed*/version_*"))) == 4  # nothing re-trained

    code = main(["repro", "maxim", "--results-dir", str(res_dir), "--data-dir", str(data), "--verify-rows", "1", "2"])
    out = capsys.readouterr().out
    assert code == 0 and "2 passed, 0 failed" in out, out


def test_quick_runs_the_first_seed_only(tmp_path):
    data = make_fake_restoration_data(tmp_path / "data")
    argv = ["--quick", "--dry-run", "--data-dir", str(data), "--run-dir", str(tmp_path / "runs"), "--models", "dncnn",
            "--crop", "16", "--dncnn-depth", "3", "--dncnn-features", "4", "--test-sets", "McMaster", "Kodak24",
            "--no-progress", "--no-verify-data"]  # fmt: skip
    rows = run_table(get_table("maxim"), argv).rows
    assert [(r["model"], r["dataset"], r["seed"], r["train_steps"]) for r in rows] == [("dncnn", "McMaster", 0, 10)]
