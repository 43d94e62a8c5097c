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
from gatelab.vision.recipes.maxim import MAXIM_RECIPE, maxim_cells


def _options(*argv: str) -> dict:
    return vars(table_parser(get_table("maxim")).parse_args(list(argv)))


def _group_config(options: dict, model: str, seed: int, steps: int) -> dict:
    from gatelab.core.harness.recipes import Budget

    cells = maxim_cells(options, model, seed)
    configs = [MAXIM_RECIPE.config(c, options, Budget(max_steps=steps)) for c in cells]
    assert all(c == configs[0] for c in configs)  # one training serves every test set
    return configs[0]


def test_expansion_is_the_documented_protocol():
    opts = _options()
    assert opts["models"] == ["maxim", "dncnn"] and opts["sigma"] == 25.0 and opts["seeds"] == [0]
    cells = maxim_cells(opts, "maxim", 0)
    assert [c.key() for c in cells] == [
        {"model": "maxim", "dataset": ds, "split": "test", "variant": "sigma25", "seed": 0}
        for ds in ("CBSD68", "Kodak24", "McMaster")
    ]
    maxim = _group_config(opts, "maxim", 0, 400)
    dncnn = _group_config(opts, "dncnn", 0, 400)
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
    assert task["scheduler"] == {"name": "cosine", "interval": "step", "warmup": 40, "eta_min": pytest.approx(5e-6)}
    assert task["kwargs"] == {"freq_weight": 0.1, "tile": 256, "tile_overlap": 64}
    assert dncnn["task"]["kwargs"] == {"freq_weight": 0.1}  # tiling is MAXIM's check only
    tr = maxim["trainer"]
    assert tr["max_steps"] == 400 and tr["max_epochs"] is None and tr["check_val_every_n_epoch"] == 1
    assert tr["limit_test_batches"] is None and tr["checkpoint"]["monitor"] is None
    assert maxim["output_dir"] == "runs/repro-maxim" and maxim["name"] == "maxim-table-maxim-sigma25"
    for cfg in (maxim, dncnn):  # every key and value is checked against the registered components
        validate_experiment(ExperimentConfig.from_dict(cfg))
    # seeds share a config hash (the seed is in the row key); test sets and paths are not hashed
    seed1 = _group_config(_options("--test-sets", "Kodak24", "--run-dir", "elsewhere"), "maxim", 1, 400)
    assert seed1["data"]["kwargs"]["seed"] == 1 and MAXIM_RECIPE.hashed(seed1) == MAXIM_RECIPE.hashed(maxim)

    quick = _options("--quick", "--sigma", "15", "--tile", "0")
    q = _group_config(quick, "maxim", 0, 20)
    assert maxim_cells(quick, "maxim", 0)[0].variant == "sigma15-quick"
    assert q["trainer"]["max_steps"] == 20 and q["trainer"]["limit_test_batches"] == 2
    assert q["data"]["kwargs"]["val_images"] == 4 and q["data"]["kwargs"]["samples_per_epoch"] == 160
    assert q["data"]["kwargs"]["sigma"] == 15.0 and q["task"]["scheduler"]["warmup"] == 2
    assert q["task"]["kwargs"] == {"freq_weight": 0.1}  # --tile 0: no tiled check
    refs = get_table("maxim").references
    assert refs and refs[0]["psnr"] == 39.96 and "Tu et al." in MAXIM_RECIPE.sources()[0]


def test_tiny_table_runs_resumes_and_verifies(tmp_path, capsys):
    data = make_fake_restoration_data(tmp_path / "data")
    res_dir = tmp_path / "res"
    argv = [
        "--quick", "--data-dir", str(data), "--results-dir", str(res_dir), "--run-dir", str(tmp_path / "runs"),
        "--models", "dncnn", "maxim", "--crop", "16", "--batch-size", "2", "--maxim-features", "4",
        "--dncnn-depth", "3", "--dncnn-features", "4", "--tile", "16", "--tile-overlap", "4",
        "--test-sets", "Kodak24", "McMaster", "--no-progress", "--no-verify-data",
    ]  # fmt: skip
    table = get_table("maxim")
    res = run_table(table, argv)
    keys = [(r["model"], r["dataset"]) for r in res.rows]
    assert keys == [("dncnn", "Kodak24"), ("dncnn", "McMaster"), ("maxim", "Kodak24"), ("maxim", "McMaster")]
    for model in ("dncnn", "maxim"):  # one training per model serves both test sets
        runs = list((tmp_path / "runs" / f"maxim-table-{model}-sigma25-quick" / "seed0").glob("version_*"))
        assert len(runs) == 1
        metrics = json.loads((runs[0] / "metrics.json").read_text())
        for r in (r for r in res.rows if r["model"] == model):
            assert r["psnr"] == metrics[f"test/{r['dataset']}/psnr"]
            assert r["input_psnr"] == metrics[f"test/{r['dataset']}/input_psnr"]
            assert r["train_steps"] == 20 and r["budget"].startswith("max_steps=20")
            assert ("tiled_psnr" in r) == (model == "maxim")
            assert 5 < r["psnr"] < 40 and 0 < r["ssim"] <= 1
    rows = {(r["model"], r["dataset"]): r for r in res.rows}
    assert rows["dncnn", "Kodak24"]["input_psnr"] == rows["maxim", "Kodak24"]["input_psnr"]  # same noisy images
    assert (res_dir / "maxim_denoise_sigma25-quick_seed0_maxim-dncnn.png").is_file()
    assert len(ledger.read_records("maxim", res_dir)) == 4

    again = run_table(table, [*argv, "--resume"])
    assert again.rows == [] and len(again.skipped) == 4
    assert len(list((tmp_path / "runs").glob("*/seed0/version_*"))) == 2  # nothing re-trained

    code = main(["repro", "maxim", "--results-dir", str(res_dir), "--verify-rows", "1", "2"])
    out = capsys.readouterr().out
    assert code == 0 and "2 passed, 0 failed" in out, out
