"""End to end through ``gatelab.core.harness.cli.main``: train, eval, repro, list, env, user errors."""

from __future__ import annotations

import csv
import hashlib
import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from trainer_fixtures import quiet_trainer

from gatelab.core.harness.cli import main
from gatelab.core.harness.configs import ExperimentConfig, load_experiment
from gatelab.core.harness.data import DatasetSpec, register_dataset
from gatelab.core.harness.experiment import run_experiment
from gatelab.core.harness.repro import Option, ReproTable, register_table

TRAIN_KEYS = {
    "trainer": quiet_trainer(
        max_epochs=2,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
        early_stopping={"monitor": "val/loss", "patience": 5},
    ),
    "task": {"name": "regression", "lr": "1e-2", "scheduler": {"name": "cosine", "warmup": 1}},
}


def _config(tmp_path: Path, tiny, **extra) -> Path:
    cfg = {
        "name": "tiny",
        "seed": 0,
        "output_dir": str(tmp_path / "runs"),
        "model": {"name": tiny.MODEL, "kwargs": {"hidden": 8}},
        "data": {"name": tiny.DATA, "kwargs": {"n": 48, "batch_size": 8}},
        **TRAIN_KEYS,
        **extra,
    }
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_train_then_eval(tmp_path, tiny, capsys):
    path = _config(tmp_path, tiny)
    assert main(["train", "--config", str(path), "--set", "trainer.max_epochs=3", "seed=1"]) == 0
    out = capsys.readouterr().out
    run = tmp_path / "runs" / "tiny" / "seed1" / "version_0"
    assert f"run dir      {run}" in out
    # resolved config (with overrides) saved next to the checkpoints, and loadable
    saved = load_experiment(run / "config.yaml")
    assert saved == load_experiment(path, ["trainer.max_epochs=3", "seed=1"])
    assert saved.trainer.max_epochs == 3
    ckpts = sorted(p.name for p in (run / "checkpoints").glob("*.ckpt"))
    assert "last.ckpt" in ckpts and any(n.startswith("epoch=") for n in ckpts)
    # CSV log: one val/loss per epoch, per-step train loss
    rows = list(csv.DictReader(open(run / "csv" / "metrics.csv")))
    assert len([r for r in rows if r.get("val/loss")]) == 3
    assert any(r.get("train/loss_step") for r in rows)
    assert any(r.get("lr-AdamW") for r in rows)
    info = json.loads((run / "run.json").read_text())
    assert info["model_kwargs"] == {"in_features": 3, "out_features": 1, "hidden": 8}  # data sizes the model
    assert info["command"].startswith("gatelab train --config")
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"val/loss", "val/mse", "test/mse", "test/mae", "train/mse"} <= set(metrics)

    best = info["best_checkpoint"]
    assert main(["eval", "--config", str(run / "config.yaml"), "--ckpt", best]) == 0
    out = capsys.readouterr().out
    ev = tmp_path / "runs" / "tiny" / "seed1" / "eval_0"
    assert f"run dir      {ev}" in out
    ev_metrics = json.loads((ev / "metrics.json").read_text())
    # the checkpoint re-loads (model rebuilt from saved hyperparameters) and gives the same test numbers
    for k in ("test/mse", "test/mae", "test/loss"):
        assert ev_metrics[k] == pytest.approx(metrics[k], rel=1e-6)


def test_user_errors_exit_2_with_one_message(tmp_path, tiny, capsys):
    path = _config(tmp_path, tiny)
    cases = [
        (["--set", "trainer.early_stoping.patience=3"], "'early_stoping' (did you mean 'early_stopping'?)"),
        (["--set", "model.name=no-such-model"], "model.name='no-such-model': unknown model"),
        (["--set", "data.name=no-such-data"], "data.name='no-such-data': unknown data module"),
        (["--set", "task.name=no-such-task"], "task.name='no-such-task': unknown task"),
        (["--set", "task.kwargs.los=mae"], "'los' (did you mean 'loss'?)"),
        (["--set", "data.kwargs.bs=3"], "data.kwargs.bs=3: unknown argument"),
        (["--set", "task.lr=fast"], "task.lr='fast': expected a number > 0"),
    ]
    for extra, msg in cases:
        assert main(["train", "--config", str(path), *extra]) == 2, extra
        err = capsys.readouterr().err
        assert msg in err, (extra, err)
        assert "Traceback" not in err
    assert main(["train", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err
    assert main(["eval", "--config", str(path), "--ckpt", str(tmp_path / "none.ckpt")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    assert main(["train"]) == 2  # argparse: --config is required
    assert main(["frobnicate"]) == 2
    assert not (tmp_path / "runs").exists()  # nothing was written by failed runs


def test_print_config(tmp_path, tiny, capsys):
    path = _config(tmp_path, tiny)
    assert main(["train", "--config", str(path), "--print-config", "--set", "trainer.devices=2"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["trainer"]["devices"] == 2 and printed["task"]["lr"] == 0.01
    assert ExperimentConfig.from_dict(printed) == load_experiment(path, ["trainer.devices=2"])


# --------------------------------------------------------------------------- repro

DATA_BYTES = b"harness repro fixture\n"
register_dataset(
    DatasetSpec(
        name="harness-test-repro-data",
        subdir="repro-data",
        files={"x.txt": hashlib.sha256(DATA_BYTES).hexdigest()},
        source="written by tests/core/harness/test_cli.py",
        license="test fixture",
    )
)


def _repro_rows(args):
    """Yield one row per seed from a real (tiny) experiment."""
    from gatelab_harness_tiny import DATA, MODEL

    for seed in args.seeds:
        cfg = {
            "name": "repro",
            "seed": seed,
            "output_dir": args.out,
            "model": {"name": MODEL},
            "data": {"name": DATA, "kwargs": {"n": 32}},
            "trainer": {**TRAIN_KEYS["trainer"], "max_epochs": args.epochs, "loggers": []},
        }
        res = run_experiment(cfg, data_dir=args.data_dir)
        yield {
            "model": MODEL,
            "dataset": "harness-test-repro-data",
            "horizon": 1,
            "seed": seed,
            "mse": res.metrics["test/mse"],
            "mae": res.metrics["test/mae"],
        }


TABLE = register_table(
    ReproTable(
        name="harness-test-table",
        description="tiny regression",
        paper="Nobody et al. 2099, Table 0",
        run=_repro_rows,
        references=[("harness-test-mlp", "harness-test-repro-data", 1, {"mse": 0.5})],
        options=[Option("--epochs", type=int, default=1), Option("--out", required=True)],
        default_seeds=(0,),
    )
)


def test_repro_writes_ledger_and_markdown(tmp_path, tiny, capsys):
    data_dir = tmp_path / "data"
    (data_dir / "repro-data").mkdir(parents=True)
    (data_dir / "repro-data" / "x.txt").write_bytes(DATA_BYTES)
    results = tmp_path / "results"
    argv = [
        "repro",
        TABLE.name,
        "--seeds",
        "0",
        "1",
        "--data-dir",
        str(data_dir),
        "--out",
        str(tmp_path / "r"),
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    rows = [json.loads(x) for x in (results / f"{TABLE.name}.jsonl").read_text().splitlines()]
    assert [r["seed"] for r in rows] == [0, 1]
    digest = hashlib.sha256(f"x.txt {hashlib.sha256(DATA_BYTES).hexdigest()}\n".encode()).hexdigest()
    for r in rows:
        assert r["table"] == TABLE.name and r["model"] == "harness-test-mlp" and r["horizon"] == 1
        # the recorded command leaves out --data-dir (where the data is, not what was computed)
        assert r["command"] == f"gatelab repro {TABLE.name} --seeds 0 1 --out {tmp_path / 'r'}"
        assert r["commit"] and r["machine"] and r["date"]
        assert r["wall_s"] > 0
        assert r["paper_mse"] == 0.5
        assert r["data_sha256"] == digest
        assert json.loads(r["config"])["epochs"] == 1 and json.loads(r["config"])["seeds"] == [0, 1]
    md = (results / f"{TABLE.name}.md").read_text()
    assert md in out  # printed
    mse = [r["mse"] for r in rows]
    mean = sum(mse) / 2
    std = (sum((m - mean) ** 2 for m in mse) / 1) ** 0.5
    line = next(x for x in md.splitlines() if x.startswith("| harness-test-mlp"))
    assert rows[0]["config_hash"] == rows[1]["config_hash"]  # the seed is not part of the config
    assert line.startswith(
        f"| harness-test-mlp | harness-test-repro-data | 1 | {rows[0]['config_hash'][:8]} | 2 | "
        f"{mean:.4f} ± {std:.4f} | 0.5000 | {mean - 0.5:+.4f} |"
    )
    assert "Nobody et al. 2099" in md

    # dry run: rows printed, nothing appended
    assert main([*argv, "--dry-run", "--seeds", "2"]) == 0
    assert len((results / f"{TABLE.name}.jsonl").read_text().splitlines()) == 2


def test_repro_cli_errors_and_list(capsys):
    assert main(["repro", "--list"]) == 0
    out = capsys.readouterr().out
    assert TABLE.name in out and "Nobody et al. 2099" in out
    assert main(["repro"]) == 2
    assert main(["repro", "no-such-table"]) == 2
    assert "unknown repro table 'no-such-table'" in capsys.readouterr().err
    assert main(["repro", TABLE.name, "--bogus"]) == 2
    assert main(["repro", TABLE.name, "--help"]) == 0
    assert "--epochs" in capsys.readouterr().out


# --------------------------------------------------------------------------- list / env


def test_list(tiny, capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["name", "domain", "gates", "paper"]
    line = next(x for x in out.splitlines() if x.startswith(tiny.MODEL))
    assert line.split()[:3] == [tiny.MODEL, "core", "GluMlp"] and "test only" in line
    assert main(["list", "--domain", "vision"]) == 0
    assert tiny.MODEL not in capsys.readouterr().out
    assert main(["list", "--gate", "HighwayGate"]) == 0
    assert tiny.MODEL not in capsys.readouterr().out
    assert main(["list", "--domain", "core", "--gate", "GluMlp"]) == 0
    assert tiny.MODEL in capsys.readouterr().out
    assert main(["list", "--domain", "nope"]) == 2


def test_env(tmp_path, capsys):
    from gatelab.core.kernels import dispatch as _  # noqa: F401  (ops registered by the package)
    from gatelab.core.kernels.dispatch import ops

    (tmp_path / "d" / "repro-data").mkdir(parents=True)
    (tmp_path / "d" / "repro-data" / "x.txt").write_bytes(DATA_BYTES)
    rc = main(["env", "--data-dir", str(tmp_path / "d"), "--verify"])
    out = capsys.readouterr().out
    assert rc == 0, out
    for word in ("python", "torch", "lightning", "triton", "torchmetrics", "kernels", "data dir"):
        assert word in out
    for op in ops():
        assert f"  {op} " in out
    assert f"{tmp_path / 'd'} (from --data-dir; exists)" in out
    line = next(x for x in out.splitlines() if "harness-test-repro-data" in x)
    assert "present, checksums ok" in line


def test_list_and_env_do_not_import_lightning():
    code = (
        "import sys; from gatelab.core.harness.cli import main; main(['list']); main(['env']); "
        "bad = [m for m in ('lightning', 'torchmetrics') if m in sys.modules]; "
        "assert not bad, bad"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]


def test_every_repro_table_help_ends_with_an_example(tmp_path, tiny, monkeypatch, capsys):
    """``gatelab repro NAME --help`` ends with an example (``--quick --dry-run``: a smoke run that
    writes nothing) that the table's parser accepts; the tiny table's example runs end to end."""
    from gatelab.core.harness.repro import get_table, list_tables, table_example, table_parser

    for name in list_tables():
        table = get_table(name)
        assert main(["repro", name, "--help"]) == 0
        help_text = capsys.readouterr().out.rstrip()
        example = table_example(table)
        assert help_text.endswith(example), name
        args = table_parser(table).parse_args(shlex.split(example)[3:])
        assert args.quick and args.dry_run
    assert TABLE.name in list_tables()
    example = table_example(TABLE)
    assert example.endswith("--quick --dry-run --out OUT")
    (tmp_path / "data" / "repro-data").mkdir(parents=True)
    (tmp_path / "data" / "repro-data" / "x.txt").write_bytes(DATA_BYTES)
    monkeypatch.setenv("GATELAB_DATA", str(tmp_path / "data"))
    assert main(shlex.split(example.replace("OUT", str(tmp_path / "out")))[1:]) == 0
    assert not (tmp_path / "results" / f"{TABLE.name}.jsonl").exists()  # --dry-run wrote nothing
