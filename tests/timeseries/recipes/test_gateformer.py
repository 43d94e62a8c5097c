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
    assert lines["Exchange"][7:9] == ["**no**", "**no**"]
    assert "Total wall time of the runs above: 1.00 h" in text


def _tiny_etth1(monkeypatch, tmp_path):
    """Point the etth1 registry entry at a 120-row fixture (custom split, no digest) with tiny presets."""
    data = tmp_path / "data"
    (data / "ETT-small").mkdir(parents=True)
    n = 120
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
        dataclasses.replace(info, spec=spec, split="custom", lookback=16, horizons=(4,)),
    )
    for model, config_class in gateformer_recipe._CONFIGS.items():
        monkeypatch.setitem(
            config_class.presets, "etth1-4", {"num_layers": 1, "d_model": 8, "hidden_dim": 8, "num_heads": 2}
        )
        monkeypatch.setitem(gateformer_recipe.TRAINING, (model, "etth1", 4), gateformer_recipe.Training(1e-3, 8))
    return data


def test_cli_quick_path_writes_its_own_ledger_and_plots(tmp_path, monkeypatch, capsys):
    data = _tiny_etth1(monkeypatch, tmp_path)
    res = tmp_path / "results"
    argv = ["repro", "gateformer", "--quick", "--dataset", "ETTh1", "--horizon", "4", "--data-dir", str(data),
            "--results-dir", str(res), "--out", str(tmp_path / "runs"), "--eval-batch-size", "64"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert not (res / "gateformer.jsonl").exists()  # the paper table is untouched by --quick
    rows = [json.loads(x) for x in (res / "gateformer-quick.jsonl").read_text().splitlines()]
    # the fixture's only horizon is 4, so each model also gets its 1-horizon "avg" row
    assert [(r["model"], r.get("horizon"), r.get("split")) for r in rows] == [
        ("gateformer", 4, None), ("itransformer", 4, None), ("gateformer", None, "avg"), ("itransformer", None, "avg"),
    ]  # fmt: skip
    assert rows[2]["mse"] == rows[0]["mse"] and rows[2]["data_sha256"] == rows[0]["data_sha256"]
    for r in rows[:2]:
        assert r["table"] == "gateformer-quick" and r["dataset"] == "etth1" and r["horizon"] == 4
        assert r["seed"] == 2021 and r["mse"] > 0 and r["mae"] > 0 and r["wall_s"] > 0
        cfg = json.loads(r["config"])
        assert cfg["budget"] == "quick" and cfg["max_epochs"] == 1 and cfg["data"]["windows"]["train"] == 65
        assert cfg["model_kwargs"]["preset"] == "etth1-4" and cfg["model_config"]["d_model"] == 8
        assert r["data_sha256"] and r["command"].startswith("gatelab repro gateformer --quick")
    assert "ours vs published iTransformer" in out and "gateformer-quick" in out
    for name in (
        "gateformer-quick.md",
        "gateformer-quick_etth1_4_forecast.png",
        "gateformer-quick_etth1_4_gates.png",
    ):
        assert (res / name).stat().st_size > 0, name
    assert not (res / "gateformer-quick-summary.md").exists()  # no 4-horizon averages in a smoke run
    assert not list((tmp_path / "runs").rglob("*.ckpt"))  # checkpoints removed after testing
