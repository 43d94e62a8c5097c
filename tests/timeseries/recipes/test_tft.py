"""The ``tft`` table as one recipe: equal budgets for both TFTs, the naive row untrained, and
``gatelab repro tft --quick`` end to end on a stallion-format fixture with --resume / --verify."""

from __future__ import annotations

import json

import pytest

from gatelab.timeseries.recipes import tft as recipe
from gatelab.timeseries.recipes.tft import TFT_RECIPE, tft_cells, tft_config

OPTS = {
    "dataset": "stallion", "models": ["naive", "tft", "pf"], "seeds": [0, 1], "quick": False,
    "layout": "paper", "max_epochs": 50, "limit_train_batches": 50, "patience": 10, "plateau_patience": 4,
    "hidden": None, "heads": None, "dropout": None, "lr": None, "batch_size": None,
    "hidden_continuous": 8, "run_dir": "runs/repro-tft", "progress": False,
}  # fmt: skip


def test_both_tfts_get_the_same_experiment_but_the_model():
    ours, theirs = tft_config(OPTS, "tft", 1), tft_config(OPTS, "pytorch-forecasting-tft", 1)
    assert ours["model"]["name"] == "tft" and theirs["model"]["name"] == "pytorch-forecasting-tft"
    assert ours["model"]["kwargs"].pop("layout") == "paper"
    for cfg in (ours, theirs):
        cfg.pop("name")
        cfg["model"].pop("name")
    assert ours == theirs
    assert ours["trainer"]["max_epochs"] == 50 and ours["trainer"]["limit_train_batches"] == 50
    assert ours["trainer"]["early_stopping"] == {"monitor": "val/loss", "mode": "min", "min_delta": 1e-4, "patience": 10}
    assert ours["task"]["lr"] == 0.03 and ours["trainer"]["gradient_clip_val"] == 0.1
    assert ours["data"] == {"name": "tft-stallion", "kwargs": {"batch_size": 128}}


def test_naive_is_evaluated_untrained_once():
    cfg = tft_config(OPTS, "naive", 0)
    assert cfg["model"] == {"name": "naive-last-value"} and cfg["trainer"]["max_epochs"] == 0
    assert cfg["task"]["kwargs"]["qrisk"] == [0.5]
    cells = [(c.model, c.seed, c.variant) for c, _ in tft_cells(OPTS)]
    pf = "layout-pytorch-forecasting"
    assert cells == [("naive", 0, None), ("tft", 0, "layout-paper"), ("pytorch-forecasting-tft", 0, pf),
                     ("tft", 1, "layout-paper"), ("pytorch-forecasting-tft", 1, pf)]  # fmt: skip
    quick = [(c.model, c.variant, b.max_epochs) for c, b in tft_cells({**OPTS, "quick": True, "layout": "pytorch-forecasting"})]
    assert quick[:3] == [("naive", "quick", 0), ("tft", "quick-" + pf, 2),
                         ("pytorch-forecasting-tft", "quick-" + pf, 2)]  # fmt: skip
    # the default: ours in both layouts, theirs once, every row saying its layout
    both = [(c.model, c.variant) for c, _ in tft_cells({**OPTS, "layout": list(recipe.LAYOUTS), "seeds": [0]})]
    assert both == [("naive", None), ("tft", pf), ("tft", "layout-paper"), ("pytorch-forecasting-tft", pf)]
    opts = {**OPTS, "layout": list(recipe.LAYOUTS)}
    assert tft_config(opts, "tft", 0)["model"]["kwargs"]["layout"] == "pytorch-forecasting"  # the first
    assert tft_config(opts, "tft", 0, layout="paper")["model"]["kwargs"]["layout"] == "paper"
    with pytest.raises(ValueError, match="not among"):
        tft_config(OPTS, "tft", 0, layout="pytorch-forecasting")


def test_recipe_covers_the_three_datasets():
    for ds, dm in (("electricity", "tft-electricity"), ("traffic", "tft-traffic")):
        cfg = tft_config({**OPTS, "dataset": ds}, "pytorch-forecasting-tft", 0)
        assert cfg["data"]["name"] == dm and cfg["model"]["kwargs"]["d_model"] in (160, 320)
    # no single tutorial value for the TFTs (its history is a range); the paper's for the paper layout
    refs = TFT_RECIPE.reference_rows()
    assert {(r["model"], r.get("variant")) for r in refs} == {("naive", None), ("tft", "layout-paper")}


def test_tutorial_history_range():
    # the six values issue 19 quotes (since v0.8.0), in the notebook's order
    six = [round(v, 1) for c, *_, v in recipe.TUTORIAL_MAE_HISTORY[9:]]
    assert six == [272.6, 258.8, 266.7, 254.6, 262.2, 359.3]
    lo, med, hi = recipe.tutorial_mae_range()
    assert (lo, hi) == (254.6198, 359.3377) and med == pytest.approx((262.1610 + 266.7437) / 2)
    assert recipe.tutorial_mae_range(None)[0] == 246.0472
    with pytest.raises(ValueError, match="unknown commit"):
        recipe.tutorial_mae_range("deadbeef")
    assert "254.6" in recipe.TFT_TABLE.description and "359.3" in recipe.TFT_TABLE.description


@pytest.fixture
def stallion_dir(tmp_path, monkeypatch):
    from tft_fixtures import stallion_raw

    import gatelab.core.harness.repro as repro
    import gatelab.timeseries.data.datamodule as tdm

    folder = tmp_path / "data" / "stallion"
    folder.mkdir(parents=True)
    stallion_raw(n_agency=2, n_sku=2, months=40).to_parquet(folder / "stallion.parquet")
    locate = tdm.locate  # a fixture in the real layout: its digest is not the published one
    monkeypatch.setattr(tdm, "locate", lambda spec, data_dir=None, verify=True: locate(spec, data_dir, verify=False))
    monkeypatch.setattr(repro, "dataset_sha256", lambda name, data_dir=None: "fixture")
    return tmp_path / "data"


def test_quick_repro_resume_and_verify(stallion_dir, tmp_path):
    import torch

    from gatelab.core.harness import run_table
    from gatelab.timeseries.data.datamodule import stallion_datamodule
    from gatelab.timeseries.models.tft_baselines import NaiveLastValue
    from gatelab.timeseries.tasks.metrics import evaluate_forecasts

    argv = ["--quick", "--seeds", "0", "1", "--batch-size", "8", "--data-dir", str(stallion_dir),
            "--run-dir", str(tmp_path / "runs"), "--results-dir", str(tmp_path / "res"),
            "--layout", "pytorch-forecasting"]  # fmt: skip
    out = run_table("tft", argv)
    assert [(r["model"], r["seed"]) for r in out.rows] == [
        ("naive", 0), ("tft", 0), ("pytorch-forecasting-tft", 0), ("tft", 1), ("pytorch-forecasting-tft", 1)
    ]
    rows = {r["model"]: r for r in out.rows[:3]}
    # like for like: the same network, so the same parameter count
    assert rows["tft"]["params"] == rows["pytorch-forecasting-tft"]["params"] > 0
    for name in ("tft", "pytorch-forecasting-tft"):
        r = rows[name]
        assert r["epochs"] == 2 and r["variant"] == "quick-layout-pytorch-forecasting" and r["horizon"] == 6
        assert r["budget"].startswith("max_epochs=2, limit_train_batches=5; equal for both TFTs")
        assert 0 < r["mae"] and 0 < r["q50"] and 0 < r["q90"]
        assert json.loads(r["config"])["model"]["name"] == name
    naive = rows["naive"]
    assert naive["epochs"] == 0 and "q90" not in naive and naive["budget"].startswith("max_epochs=0;")
    # the naive row is the last value's MAE over the test split, computed here directly
    dm = stallion_datamodule(stallion_dir, batch_size=8)
    x, (y, _) = next(iter(dm.validation.to_dataloader(train=False, batch_size=10_000)))
    mask = torch.arange(y.shape[1])[None, :] < x["decoder_lengths"][:, None]
    want = evaluate_forecasts(NaiveLastValue()(x).prediction, y, [0.5], mask, qrisk=(0.5,))
    assert naive["mae"] == pytest.approx(want["mae"], rel=1e-6) and naive["q50"] == pytest.approx(want["q50"], rel=1e-6)

    # the paired comparison (ours − theirs, same layout) over the two seeds
    from gatelab.core.harness.ledger import paired_comparisons

    comps = paired_comparisons("tft-quick", recipe.TFT_TABLE.comparisons, tmp_path / "res")
    mae = [c for c in comps if c["metric"] == "mae" and c["comparison"].endswith("(same layout)")]
    assert len(mae) == 1 and mae[0]["pairs"] == 2 and mae[0]["variant"] == "quick-layout-pytorch-forecasting"
    by = {(r["model"], r["seed"]): r["mae"] for r in out.rows}
    want = ((by["tft", 0] - by["pytorch-forecasting-tft", 0]) + (by["tft", 1] - by["pytorch-forecasting-tft", 1])) / 2
    assert mae[0]["diff"] == pytest.approx(want)
    assert "Paired comparisons" in out.markdown

    again = run_table("tft", [*argv, "--resume"])
    assert again.rows == [] and len(again.skipped) == 5
    check = run_table("tft", ["--quick", "--results-dir", str(tmp_path / "res"), "--data-dir", str(stallion_dir),
                              "--verify-rows", "1", "3"])  # fmt: skip
    assert [r["passed"] for r in check.verify] == [True, True], check.markdown


def test_paper_sizes_join_the_preset_and_the_training_part():
    from gatelab.timeseries.models.tft import TFTConfig

    # the paper's (official data formatters) and the tutorial's values
    assert recipe.paper_sizes("electricity") == {
        "hidden": 160, "heads": 4, "dropout": 0.1, "lr": 1e-3, "batch_size": 64, "clip": 0.01,
    }  # fmt: skip
    assert recipe.paper_sizes("traffic") == {
        "hidden": 320, "heads": 4, "dropout": 0.3, "lr": 1e-3, "batch_size": 128, "clip": 100.0,
    }  # fmt: skip
    assert recipe.paper_sizes("stallion") == {
        "hidden": 16, "heads": 2, "dropout": 0.1, "lr": 0.03, "batch_size": 128, "clip": 0.1,
    }  # fmt: skip
    assert set(recipe.PAPER_TRAINING) == set(TFTConfig.presets)
