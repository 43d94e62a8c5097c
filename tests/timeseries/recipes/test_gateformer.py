"""The `gatelab repro gateformer` table: experiment configs from the presets, the summary's
arithmetic, and the CLI quick path end to end on a tiny fixture (monkeypatched registry entry and
presets, so it runs in seconds)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from gatelab.core.harness.cli import main
from gatelab.core.harness.data import DatasetSpec
from gatelab.core.harness.experiment import ExperimentConfig
from gatelab.timeseries.data.ltsf_datasets import LTSF_DATASETS
from gatelab.timeseries.models.gateformer import GateformerConfig
from gatelab.timeseries.recipes import gateformer as gateformer_recipe
from gatelab.timeseries.recipes.gateformer import official_run


@pytest.fixture(autouse=True)
def _private_hash_cache(tmp_path, monkeypatch):
    """Digests of large files are cached; keep the tests out of the user's cache."""
    monkeypatch.setenv("GATELAB_CACHE", str(tmp_path / "cache"))


def _official(model: str, ds: str, h: int) -> tuple:
    """(num_layers, d_model, hidden_dim, lr, num_heads, batch_size) of an official run: the model
    part from the config preset, the training part from the recipe."""
    sizes = gateformer_recipe._CONFIGS[model].presets[f"{ds}-{h}"]
    run = official_run(model, ds, h)
    return (sizes["num_layers"], sizes["d_model"], sizes["hidden_dim"], run.lr, sizes["num_heads"], run.batch_size)


def test_presets_are_the_official_scripts():
    # spot checks against nyuolab/Gateformer and thuml/iTransformer scripts
    assert _official("gateformer", "etth1", 96) == (1, 64, 64, 1e-4, 4, 8)
    assert _official("gateformer", "etth1", 336) == (2, 128, 128, 5e-4, 4, 8)
    assert _official("gateformer", "weather", 720) == (2, 256, 512, 1e-4, 8, 8)
    assert official_run("gateformer", "exchange", 192).lr == 1e-3
    assert _official("itransformer", "etth1", 720) == (2, 512, 512, 1e-4, 8, 32)
    assert _official("itransformer", "traffic", 96) == (4, 512, 512, 1e-3, 8, 16)
    assert official_run("itransformer", "exchange", 336).epochs == 1  # the official script's --train_epochs 1
    assert official_run("gateformer", "ili", 24).source == "ours"
    for model, config_class in gateformer_recipe._CONFIGS.items():
        names = set()
        for ds, info in LTSF_DATASETS.items():
            if ds != "exchange-lstnet":
                for h in info.horizons:
                    official_run(model, ds, h)
                    cfg = config_class.from_preset(f"{ds}-{h}")  # the whole model of the run
                    assert (cfg.num_vars, cfg.lookback, cfg.horizon) == (info.num_vars, info.lookback, h)
                    names.add(f"{ds}-{h}")
        assert set(config_class.presets) == names  # one preset per official run, no other
    with pytest.raises(KeyError, match="runs exist for horizons"):
        official_run("gateformer", "etth1", 100)


def test_experiment_config_follows_the_protocol():
    cfg = gateformer_recipe.experiment_config("gateformer", "etth1", 336, 2021)
    ExperimentConfig.from_dict(cfg)  # strict: every key valid
    assert cfg["model"] == {"name": "gateformer", "kwargs": {"preset": "etth1-336", "dropout": 0.1}}
    assert GateformerConfig.from_preset("etth1-336", num_vars=7).to_dict() == {
        **GateformerConfig(num_vars=7, lookback=96, horizon=336).to_dict(),
        **{"num_layers": 2, "d_model": 128, "hidden_dim": 128, "num_heads": 4, "dropout": 0.1},
    }
    assert cfg["task"]["optimizer"] == "adam" and cfg["task"]["lr"] == 5e-4
    assert cfg["task"]["scheduler"] == {
        "name": "exponential",
        "gamma": 0.5,
        "warmup": 1,
        "warmup_start_factor": 1.0,
    }
    assert cfg["trainer"]["max_epochs"] == 10 and cfg["trainer"]["early_stopping"]["patience"] == 3
    assert cfg["trainer"]["limit_train_batches"] is None
    assert cfg["data"]["kwargs"]["batch_size"] == 8 and cfg["data"]["kwargs"]["lookback"] == 96
    # CPU budget: the same number of windows for both models whatever their batch size; width caps both
    b = gateformer_recipe.Budget(max_train_windows=4096, width=128, val_stride=4)
    g = gateformer_recipe.experiment_config("gateformer", "weather", 96, 1, budget=b)
    i = gateformer_recipe.experiment_config("itransformer", "weather", 96, 1, budget=b)
    assert g["trainer"]["limit_train_batches"] == 512 and i["trainer"]["limit_train_batches"] == 128
    assert g["model"]["kwargs"]["d_model"] == 128 and i["model"]["kwargs"]["hidden_dim"] == 128
    assert g["data"]["kwargs"]["val_stride"] == 4
    # equal steps under the same caps: the most steps any preset takes (Gateformer's 512), for both
    ge = gateformer_recipe.experiment_config("gateformer", "weather", 96, 1, budget=b, kind="equal-steps")
    ie = gateformer_recipe.experiment_config("itransformer", "weather", 96, 1, budget=b, kind="equal-steps")
    for cfg in (ge, ie):
        ExperimentConfig.from_dict(cfg)
        assert cfg["data"]["kwargs"]["num_train_batches"] == 512 and cfg["trainer"]["limit_train_batches"] is None
        assert cfg["trainer"]["max_epochs"] == 10
    assert (ge["data"]["kwargs"]["batch_size"], ie["data"]["kwargs"]["batch_size"]) == (8, 32)  # their presets
    assert (ge["task"]["lr"], ie["task"]["lr"]) == (1e-4, 1e-4)
    with pytest.raises(ValueError, match="no window cap"):
        gateformer_recipe.experiment_config("itransformer", "etth1", 96, 1, kind="equal-steps")
    nog = gateformer_recipe.experiment_config("gateformer-nogate", "etth1", 96, 1)
    assert nog["model"]["name"] == "gateformer" and nog["model"]["kwargs"]["gates"] is False


def test_schedule_is_lradj_type1():
    import torch

    from gatelab.core.harness.configs import SchedulerConfig
    from gatelab.core.harness.task import build_scheduler

    sched = gateformer_recipe.experiment_config("gateformer", "etth1", 96, 1)["task"]["scheduler"]
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    s = build_scheduler(opt, SchedulerConfig(**sched))
    lrs = []
    for _ in range(5):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        s.step()
    # official adjust_learning_rate(type1) after epoch e sets lr * 0.5 ** (e - 1)
    assert lrs == [1.0, 1.0, 0.5, 0.25, 0.125]


def test_row_budgets_equal_steps_for_every_model_and_presets_where_they_differ():
    rb, cpu = gateformer_recipe.row_budgets, gateformer_recipe.CPU_BUDGET
    g, i = rb("gateformer", "etth1", 96, "cpu", cpu["etth1"]), rb("itransformer", "etth1", 96, "cpu", cpu["etth1"])
    eq = "equal steps 2560: 256/epoch, <= 10 epochs"
    # Gateformer's preset (batch 8: 256 steps of the 2048 windows) is the equal-steps budget: one row
    assert [(r.kind, r.label, r.num_train_batches, r.max_epochs) for r in g] == [("equal-steps", eq, 256, 10)]
    assert [(r.kind, r.label) for r in i] == [("equal-steps", eq), ("preset", "preset cpu: <= 2048 windows/epoch, <= 10 epochs")]
    assert rb("gateformer-nogate", "etth1", 96, "cpu", cpu["etth1"]) == g
    # Exchange-336: iTransformer's script trains 1 epoch; at equal steps it gets Gateformer's 10
    assert rb("itransformer", "exchange", 336, "cpu", cpu["exchange"])[0].max_epochs == 10
    assert rb("itransformer", "traffic", 96, "cpu", cpu["traffic"])[0].label.startswith("equal steps 1280: 128/epoch")
    # no window cap (ILI; the official budget): full-data epochs for every model, one row each
    assert [r.kind for r in rb("itransformer", "ili", 24, "cpu", cpu["ili"])] == ["preset"]
    off = rb("itransformer", "etth1", 96, "official", gateformer_recipe.Budget())
    assert [(r.kind, r.label) for r in off] == [("preset", "official: full data/epoch, <= 10 epochs")]
    assert [r.kind for r in rb("itransformer", "etth1", 96, "preset-cpu", cpu["etth1"])] == ["preset"]
    assert [r.kind for r in rb("itransformer", "etth1", 96, "equal-steps", cpu["etth1"])] == ["equal-steps"]
    assert rb("itransformer", "etth1", 96, "cpu", cpu["etth1"], epochs=2)[0].label == "equal steps 512: 256/epoch, <= 2 epochs"
    with pytest.raises(ValueError, match="unknown budget"):
        rb("itransformer", "etth1", 96, "fast", cpu["etth1"])
    # >= 3 seeds by default (the official 2021 and two more), on every dataset
    assert gateformer_recipe.DEFAULT_SEEDS == (2021, 2022, 2023)
    assert all(b.max_seeds is None for b in cpu.values())


def test_comparisons_are_declared():
    comps = {(c.name, c.metric, tuple(c.model_where.items()), tuple(c.rival_where.items()))
             for c in gateformer_recipe.GATEFORMER_TABLE.comparisons}  # fmt: skip
    eq, pre = "equal steps 2560: 256/epoch, <= 10 epochs", "preset cpu: <= 2048 windows/epoch, <= 10 epochs"
    for m in ("mse", "mae"):
        assert ("Gateformer − iTransformer", m, (), ()) in comps
        assert ("Gateformer − no gates", m, (), ()) in comps
        assert ("iTransformer: equal steps − preset cpu", m, (("budget", eq),), (("budget", pre),)) in comps
    assert "not in this table: no text source" in gateformer_recipe.GATEFORMER_TABLE.description


def _rec(model, ds, seed, mse, mae, horizon=None, wall=10.0):
    r = {"model": model, "dataset": ds, "seed": seed, "mse": mse, "mae": mae, "wall_s": wall}
    r.update({"horizon": horizon} if horizon is not None else {"split": "avg"})
    return r


def test_summary_arithmetic(tmp_path):
    rows = [
        _rec("gateformer", "etth1", 1, 0.44, 0.43),
        _rec("gateformer", "etth1", 2, 0.46, 0.45),
        _rec("itransformer", "etth1", 1, 0.45, 0.44),
        _rec("itransformer", "etth1", 2, 0.47, 0.46),
        _rec("gateformer", "exchange", 1, 0.40, 0.42),
        _rec("itransformer", "exchange", 1, 0.35, 0.40),
        _rec("gateformer", "etth1", 1, 0.5, 0.5, horizon=96, wall=1800.0),
        _rec("itransformer", "etth1", 1, 0.5, 0.5, horizon=96, wall=1800.0),
    ]
    path = gateformer_recipe.write_summary("t", tmp_path, extra=rows)
    text = path.read_text()
    lines = {
        ln.split("|")[1].strip(): [c.strip() for c in ln.split("|")[2:-1]]
        for ln in text.splitlines()
        if ln.startswith("| ETTh1") or ln.startswith("| Exchange")
    }
    # ETTh1: G mean 0.45 <= iTr 0.46 (ours) and <= 0.454 (published); 3600 s of horizon runs = 60 min
    assert lines["ETTh1"] == [
        "—",
        "2/2",
        "0.450",
        "0.440",
        "0.460",
        "0.450",
        "0.454",
        "0.447",
        "yes",
        "yes",
        "60.0",
    ]
    # Exchange: G 0.400 > iTr 0.350 (ours), G 0.400 > 0.360 (published): both misses
    assert lines["Exchange"][8:10] == ["**no**", "**no**"]
    assert "Total wall time of the runs above: 1.00 h" in text


def _tiny_etth1(monkeypatch, tmp_path):
    """Point the etth1 registry entry at a 1000-row fixture (custom split, no digest, lookback 16,
    horizon 96 only) with tiny sizes in the ``etth1-96`` presets (the harness checks preset names
    against the source's preset literals, so the fixture keeps a real preset name)."""
    data = tmp_path / "data"
    (data / "ETT-small").mkdir(parents=True)
    n = 1000
    rng = np.random.default_rng(0)
    cols = ["HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT"]
    t = np.arange(n)[:, None]
    vals = np.sin(t / 6.0 + np.arange(7)) + 0.1 * rng.normal(size=(n, 7))
    df = pd.DataFrame(vals, columns=cols)
    df.insert(0, "date", pd.date_range("2016-07-01", periods=n, freq="h").strftime("%Y-%m-%d %H:%M:%S"))
    df.to_csv(data / "ETT-small" / "ETTh1.csv", index=False)
    info = LTSF_DATASETS["etth1"]
    spec = DatasetSpec(
        name="etth1", subdir="ETT-small", files={"ETTh1.csv": None}, source="test", license="test"
    )
    monkeypatch.setitem(
        LTSF_DATASETS,
        "etth1",
        dataclasses.replace(info, spec=spec, split="custom", lookback=16, horizons=(96,)),
    )
    for model, config_class in gateformer_recipe._CONFIGS.items():
        monkeypatch.setitem(
            config_class.presets, "etth1-96", {"num_layers": 1, "d_model": 8, "hidden_dim": 8, "num_heads": 2}
        )
        monkeypatch.setitem(gateformer_recipe.TRAINING, (model, "etth1", 96), gateformer_recipe.Training(1e-3, 8))
    return data


def test_cli_quick_path_writes_its_own_ledger_and_plots(tmp_path, monkeypatch, capsys):
    data = _tiny_etth1(monkeypatch, tmp_path)
    res = tmp_path / "results"
    argv = ["repro", "gateformer", "--quick", "--dataset", "ETTh1", "--horizon", "96", "--data-dir", str(data),
            "--results-dir", str(res), "--out", str(tmp_path / "runs"), "--eval-batch-size", "64"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert not (res / "gateformer.jsonl").exists()  # the paper table is untouched by --quick
    rows = [json.loads(x) for x in (res / "gateformer-quick.jsonl").read_text().splitlines()]
    # the fixture's only horizon is 96, so each model also gets its 1-horizon "avg" row
    assert [(r["model"], r.get("horizon"), r.get("split")) for r in rows] == [
        ("gateformer", 96, None), ("itransformer", 96, None), ("gateformer", None, "avg"), ("itransformer", None, "avg"),
    ]  # fmt: skip
    assert {r["budget"] for r in rows} == {"quick: 1 epoch, <= 2048 windows/epoch"}
    assert rows[2]["mse"] == rows[0]["mse"] and rows[2]["data_sha256"] == rows[0]["data_sha256"]
    for r in rows[:2]:
        assert r["table"] == "gateformer-quick" and r["dataset"] == "etth1" and r["horizon"] == 96
        assert r["seed"] == 2021 and r["mse"] > 0 and r["mae"] > 0 and r["wall_s"] > 0
        cfg = json.loads(r["config"])
        assert cfg["budget"] == "quick" and cfg["max_epochs"] == 1 and cfg["data"]["windows"]["train"] == 589
        assert cfg["model_kwargs"]["preset"] == "etth1-96" and cfg["model_config"]["d_model"] == 8
        assert r["data_sha256"] and r["command"].startswith("gatelab repro gateformer --quick")
    assert "ours vs published iTransformer" in out and "gateformer-quick" in out
    for name in (
        "gateformer-quick.md",
        "gateformer-quick_etth1_96_forecast.png",
        "gateformer-quick_etth1_96_gates.png",
    ):
        assert (res / name).stat().st_size > 0, name
    assert not (res / "gateformer-quick-summary.md").exists()  # no 4-horizon averages in a smoke run
    assert not list((tmp_path / "runs").rglob("*.ckpt"))  # checkpoints removed after testing


def test_cpu_budget_end_to_end_equal_steps_presets_comparisons_resume_verify(tmp_path, monkeypatch):
    """``--budget cpu`` on the tiny fixture with iTransformer's preset batch 32 against
    Gateformer's 8 under a 64-window cap: Gateformer runs once (its preset is the equal-steps
    budget: 8 steps/epoch), iTransformer at equal steps (8 steps of 32 windows) and at its preset
    (64 windows = 2 steps); the rows carry their budgets, the
    paired comparisons pair them by seed, --resume skips all and --verify reproduces bit for bit."""
    from gatelab.core.harness import run_table
    from gatelab.core.harness.ledger import paired_comparisons, read_records

    data = _tiny_etth1(monkeypatch, tmp_path)
    monkeypatch.setitem(gateformer_recipe.TRAINING, ("itransformer", "etth1", 96), gateformer_recipe.Training(1e-3, 32))
    monkeypatch.setitem(gateformer_recipe.CPU_BUDGET, "etth1", gateformer_recipe.Budget(max_train_windows=64))
    res = tmp_path / "results"
    argv = ["--budget", "cpu", "--dataset", "etth1", "--horizon", "96", "--epochs", "1", "--seeds", "1", "2",
            "--no-plots", "--data-dir", str(data), "--results-dir", str(res), "--out", str(tmp_path / "runs"),
            "--eval-batch-size", "64"]  # fmt: skip
    out = run_table("gateformer", argv)
    eq, pre = "equal steps 8: 8/epoch, <= 1 epochs", "preset cpu: <= 64 windows/epoch, <= 1 epochs"
    horizon_rows = [(r["model"], r["seed"], r["budget"]) for r in out.rows if r.get("horizon") == 96]
    assert horizon_rows == [
        ("gateformer", 1, eq), ("itransformer", 1, eq), ("itransformer", 1, pre),
        ("gateformer", 2, eq), ("itransformer", 2, eq), ("itransformer", 2, pre),
    ]  # fmt: skip
    steps = {(r["model"], r["seed"], r["budget"]): json.loads(r["config"])["steps_run"] for r in out.rows if r.get("horizon")}
    assert steps[("gateformer", 1, eq)] == steps[("itransformer", 1, eq)] == 8  # equal optimizer steps
    assert steps[("itransformer", 1, pre)] == 2  # its preset: 64 windows / batch 32
    avg = {(r["model"], r["budget"]) for r in out.rows if r.get("split") == "avg"}
    assert avg == {("gateformer", eq), ("itransformer", eq), ("itransformer", pre)}
    records = read_records("gateformer", res)
    assert len({r["config_hash"] for r in records if r.get("horizon") == 96}) == 3  # one per (model, budget)
    # the table declares the cross-budget comparisons for the regeneration's labels; these are the test's
    declared = [*gateformer_recipe.GATEFORMER_TABLE.comparisons, *gateformer_recipe.budget_comparisons(eq, pre)]
    comps = paired_comparisons(records, declared)
    by = {(c["comparison"], c["metric"], c.get("horizon"), c.get("split"), c.get("budget")): c for c in comps}
    g_i = by[("Gateformer − iTransformer", "mse", 96, None, eq)]
    assert g_i["pairs"] == 2 and g_i["lo"] is not None
    mse = {(r["model"], r["seed"], r["budget"]): r["mse"] for r in records if r.get("horizon") == 96}
    want = sum(mse[("gateformer", s, eq)] - mse[("itransformer", s, eq)] for s in (1, 2)) / 2
    assert g_i["diff"] == pytest.approx(want)
    fix = by[("iTransformer: equal steps − preset cpu", "mse", 96, None, None)]
    want = sum(mse[("itransformer", s, eq)] - mse[("itransformer", s, pre)] for s in (1, 2)) / 2
    assert fix["pairs"] == 2 and fix["diff"] == pytest.approx(want)
    assert "Paired comparisons" in (res / "gateformer.md").read_text()

    again = run_table("gateformer", [*argv, "--resume"])
    assert again.rows == [] and len(again.skipped) == 6 + 6  # horizon rows and averages
    n = [i for i, r in enumerate(records, 1) if (r["model"], r.get("budget"), r.get("horizon")) == ("itransformer", eq, 96)]
    check = run_table("gateformer", ["--results-dir", str(res), "--data-dir", str(data), "--verify-rows", str(n[0])])
    assert [r["passed"] for r in check.verify] == [True], check.markdown
