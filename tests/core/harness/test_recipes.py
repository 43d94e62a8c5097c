"""Paper tables as recipes (issue 13, point 3): config precedence, grid order, and a tiny recipe
run end to end through ``run_experiment`` by the harness's runner, with --resume and --verify."""

from __future__ import annotations

import argparse
import json

import pytest
from trainer_fixtures import quiet_trainer

from gatelab.core.harness import ledger
from gatelab.core.harness.cli import main
from gatelab.core.harness.recipes import Budget, Cell, Override, Recipe, Reference, run_recipe
from gatelab.core.harness.repro import ReproTable, register_table, run_table


def _recipe(**kw) -> Recipe:
    base = {
        "output_dir": "runs/x",
        "test": True,
        "model": {"kwargs": {"hidden": 4}},
        "data": {"name": "d", "kwargs": {"batch_size": 8}},
        "trainer": {"max_epochs": 10, "progress_bar": True},
    }
    args = dict(
        name="r",
        models=("m1", "m2"),
        datasets=("a", "b"),
        base=base,
        horizons={"a": (1, 2), "b": (3,)},
        seeds=(0, 1),
        cell_paths={"dataset": "data.kwargs.dataset", "horizon": "data.kwargs.horizon"},
        model_names={"m2": "m1"},
        overrides=(
            Override({"model": {"kwargs": {"hidden": 8}}}, model="m2"),
            Override({"data": {"kwargs": {"batch_size": 4}}}, dataset="b", horizon=(3, 4)),
        ),
        configure=lambda cell, options: {"task": {"lr": 0.1 * (cell.horizon or 1)}},
        option_paths={"out": "output_dir"},
        budget=Budget(max_epochs=2, note="tiny"),
        metrics={"mse": "test/mse"},
    )
    args.update(kw)
    return Recipe(**args)


def test_config_precedence_and_grid():
    r = _recipe()
    cells = r.cells()
    assert [(c.dataset, c.seed, c.horizon, c.model) for c in cells[:5]] == [
        ("a", 0, 1, "m1"), ("a", 0, 1, "m2"), ("a", 0, 2, "m1"), ("a", 0, 2, "m2"), ("a", 1, 1, "m1"),
    ]  # fmt: skip
    assert len(cells) == 2 * 2 * 2 + 1 * 2 * 2
    assert len(r.cells(datasets=["b"], seeds=[5], models=["m2"])) == 1
    cfg = r.config(Cell("m2", "b", 7, horizon=3), {"out": "/tmp/o"})
    assert cfg["name"] == "m2-b-3" and cfg["seed"] == 7
    assert cfg["model"] == {"name": "m1", "kwargs": {"hidden": 8}}  # label -> registered model; override
    assert cfg["data"] == {"name": "d", "kwargs": {"batch_size": 4, "dataset": "b", "horizon": 3}}
    assert cfg["task"] == {"lr": pytest.approx(0.3)} and cfg["output_dir"] == "/tmp/o"
    assert cfg["trainer"]["max_epochs"] == 2  # the budget wins over the base
    assert r.base["trainer"]["max_epochs"] == 10  # the recipe's base is never mutated
    assert r.config(Cell("m1", "a", 0, horizon=1))["model"]["kwargs"] == {"hidden": 4}
    assert r.budget.describe(cfg) == "max_epochs=2; tiny"
    # a label is the row's budget column as given (equal for rivals whose trainer values differ)
    assert Budget(max_epochs=2, label="equal steps 20").describe(cfg) == "equal steps 20"
    hashed = r.hashed(cfg)
    assert "output_dir" not in hashed and "progress_bar" not in hashed["trainer"] and "output_dir" in cfg
    # the seed is part of the row's key, not of its config: every seed of a cell shares one hash
    assert "seed" not in hashed and hashed == r.hashed(r.config(Cell("m2", "b", 8, horizon=3), {"out": "/o"}))
    with pytest.raises(ValueError, match="horizons or splits"):
        _recipe(splits=("x",))
    with pytest.raises(ValueError, match="exactly one of horizon or split"):
        Reference("m", "d", {"mse": 1.0}, "paper", horizon=1, split="x")
    with pytest.raises(ValueError, match="source"):
        Reference("m", "d", {"mse": 1.0}, "", horizon=1)
    ref = Reference("m", "d", {"mse": 1.0}, "Someone 2024, Table 1", split="test")
    assert ref.row() == {"model": "m", "dataset": "d", "split": "test", "mse": 1.0}


def test_tiny_recipe_runs_resumes_and_verifies(tiny, tmp_path, capsys):
    recipe = Recipe(
        name="tiny-recipe",
        models=("mlp-4", "mlp-8"),
        datasets=("synthetic",),
        splits=("test",),
        seeds=(0,),
        base={
            "output_dir": str(tmp_path / "runs"),
            "test": True,
            "model": {"kwargs": {"hidden": 4}},
            "data": {"name": tiny.DATA, "kwargs": {"n": 32}},
            "task": {"name": "regression", "lr": 0.01},
            "trainer": quiet_trainer(loggers=[], num_sanity_val_steps=0),
        },
        model_names={"mlp-4": tiny.MODEL, "mlp-8": tiny.MODEL},
        overrides=(Override({"model": {"kwargs": {"hidden": 8}}}, model="mlp-8"),),
        budget=Budget(max_epochs=2),
        metrics={"mse": "test/mse", "mae": "test/mae"},
        references=(Reference("mlp-8", "synthetic", {"mse": 0.5}, "made up for the test", split="test"),),
    )
    table = register_table(
        ReproTable(
            "tiny-recipe", "a recipe in a test", "none", lambda args: run_recipe(recipe, args),
            references=recipe.reference_rows(), default_seeds=recipe.seeds, metrics=["mse", "mae"],
        )
    )  # fmt: skip
    res = run_table(table, ["--results-dir", str(tmp_path / "res")])
    assert [(r["model"], r["seed"]) for r in res.rows] == [("mlp-4", 0), ("mlp-8", 0)]
    for r in res.rows:
        assert r["budget"] == "max_epochs=2" and r["mse"] > 0 and r["mae"] > 0 and r["split"] == "test"
        cfg = json.loads(r["config"])
        assert cfg["model"]["kwargs"]["hidden"] == (8 if r["model"] == "mlp-8" else 4)
        assert "output_dir" not in cfg
    assert res.rows[1]["paper_mse"] == 0.5
    assert len({r["config_hash"] for r in res.rows}) == 2
    again = run_table(table, ["--results-dir", str(tmp_path / "res"), "--resume"])
    assert again.rows == [] and len(again.skipped) == 2
    # re-run a recorded row: deterministic on CPU, so exactly equal
    code = main(["repro", "tiny-recipe", "--results-dir", str(tmp_path / "res"), "--verify-rows", "2"])
    out = capsys.readouterr().out
    assert code == 0 and "1 passed, 0 failed" in out, out
    assert "mse: recorded" in out and "|diff| 0," in out
    assert len(ledger.read_records("tiny-recipe", tmp_path / "res")) == 2


def test_cells_with_equal_configs_share_one_run(tiny, tmp_path):
    """One training serves several rows (one test set each): the cells differ only in the
    dataset their metric is read from, so ``run_recipe`` runs once and writes a row per cell;
    ``--resume`` skips them all; cells whose configs differ cannot share a run."""
    from gatelab.core.config import ConfigError
    from gatelab.core.harness.recipes import _metric_key, run_shared

    recipe = Recipe(
        name="tiny-shared",
        models=("mlp-4",),
        datasets=("mse", "mae"),  # "test sets" named after the metric each row reads
        splits=("test",),
        seeds=(0,),
        base={
            "output_dir": str(tmp_path / "runs"),
            "test": True,
            "model": {"kwargs": {"hidden": 4}},
            "data": {"name": tiny.DATA, "kwargs": {"n": 32}},
            "task": {"name": "regression", "lr": 0.01},
            "trainer": quiet_trainer(loggers=[], num_sanity_val_steps=0),
        },
        model_names={"mlp-4": tiny.MODEL},
        run_name="{model}-shared",
        budget=Budget(max_epochs=1),
        metrics={"value": "test/{dataset}"},
    )
    table = register_table(
        ReproTable("tiny-shared", "shared runs", "none", lambda args: run_recipe(recipe, args), metrics=["value"])
    )
    res = run_table(table, ["--results-dir", str(tmp_path / "res")])
    assert [r["dataset"] for r in res.rows] == ["mse", "mae"]
    runs = sorted((tmp_path / "runs" / "mlp-4-shared" / "seed0").glob("version_*"))
    assert len(runs) == 1  # one training for both rows
    metrics = json.loads((runs[0] / "metrics.json").read_text())
    assert [r["value"] for r in res.rows] == [metrics["test/mse"], metrics["test/mae"]]
    assert res.rows[0]["config_hash"] == res.rows[1]["config_hash"]
    again = run_table(table, ["--results-dir", str(tmp_path / "res"), "--resume"])
    assert again.rows == [] and len(again.skipped) == 2
    assert len(list((tmp_path / "runs" / "mlp-4-shared" / "seed0").glob("version_*"))) == 1
    # ckpt_path="auto": the shared run continues its newest checkpoint, in its own run directory
    cont = run_shared(recipe, recipe.cells(), argparse.Namespace(seeds=[0], data_dir=None), ckpt_path="auto")
    assert [c.cell.dataset for c in cont] == ["mse", "mae"] and cont[0].result is cont[1].result
    assert cont[0].result.run_dir == runs[0]
    assert [c.row["value"] for c in cont] == [r["value"] for r in res.rows]  # finished: nothing trained

    bad = Recipe(**{**{f: getattr(recipe, f) for f in ("name", "models", "datasets", "splits", "base",
                                                       "model_names", "metrics")},
                    "run_name": "{model}-{dataset}"})  # fmt: skip
    with pytest.raises(ConfigError, match=r"cannot share one run: their configs differ at name \('mlp-4-mse'"):
        run_shared(bad, bad.cells(), argparse.Namespace(seeds=[0], data_dir=None))
    with pytest.raises(ConfigError, match=r"'nope'.* is not a cell field"):
        _metric_key("test/{nope}", recipe.cells()[0])
