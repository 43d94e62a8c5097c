"""Experiment configs: YAML round trip, strict keys at every level, overrides, value checks."""

from __future__ import annotations

import pytest
import yaml

from gatelab.core.config import ConfigError, from_dict, load_yaml, save_yaml
from gatelab.core.harness.configs import (
    CheckpointConfig,
    ComponentConfig,
    EarlyStoppingConfig,
    ExperimentConfig,
    SchedulerConfig,
    TaskConfig,
    TrainerConfig,
    apply_overrides,
    load_experiment,
)


def _full() -> ExperimentConfig:
    return ExperimentConfig(
        name="exp",
        seed=7,
        output_dir="out",
        model=ComponentConfig("m", {"hidden": 16, "layers": [1, 2]}),
        data=ComponentConfig("d", {"batch_size": 4}),
        task=TaskConfig(
            name="classification",
            kwargs={"mode": "binary"},
            optimizer="sgd",
            lr=0.1,
            betas=(0.8, 0.9),
            scheduler=SchedulerConfig(name="step", step_size=3, gamma=0.5, warmup=2),
        ),
        trainer=TrainerConfig(
            max_epochs=3,
            devices=2,
            strategy="ddp",
            precision="bf16-mixed",
            early_stopping=EarlyStoppingConfig(monitor="val/auc", mode="max", patience=5),
            checkpoint=CheckpointConfig(monitor="val/auc", mode="max", save_top_k=2),
            loggers=["csv", "tensorboard"],
            limit_train_batches=0.5,
        ),
        test=False,
    )


def test_yaml_round_trip(tmp_path):
    cfg = _full()
    path = save_yaml(cfg, tmp_path / "exp.yaml")
    text = yaml.safe_load(path.read_text())
    # the file is the plain nested layout documented in docs/harness.md
    assert text["task"]["scheduler"] == {
        **text["task"]["scheduler"],
        "name": "step",
        "step_size": 3,
        "warmup": 2,
    }
    assert text["trainer"]["early_stopping"]["monitor"] == "val/auc"
    assert text["task"]["betas"] == [0.8, 0.9]
    back = load_yaml(ExperimentConfig, path)
    assert back == cfg
    assert isinstance(back.task.betas, tuple)
    assert load_experiment(path) == cfg


@pytest.mark.parametrize(
    "data, where, bad",
    [
        ({"nme": "x"}, "", "nme"),
        ({"trainer": {"max_epoch": 3}}, "trainer", "max_epoch"),
        ({"trainer": {"early_stopping": {"patiense": 3}}}, "trainer.early_stopping", "patiense"),
        ({"trainer": {"checkpoint": {"top_k": 3}}}, "trainer.checkpoint", "top_k"),
        ({"task": {"scheduler": {"name": "cosine", "tmax": 3}}}, "task.scheduler", "tmax"),
        ({"task": {"learning_rate": 3}}, "task", "learning_rate"),
        ({"model": {"name": "m", "kwarg": {}}}, "model", "kwarg"),
    ],
)
def test_unknown_key_names_key_and_path(data, where, bad):
    base = {"name": "x", "model": {"name": "m"}, "data": {"name": "d"}}
    for k, v in data.items():
        base[k] = {**base.get(k, {}), **v} if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    with pytest.raises(ConfigError) as e:
        from_dict(ExperimentConfig, base)
    msg = str(e.value)
    assert repr(bad) in msg
    if where:
        assert f"in {where} " in msg


def test_unknown_key_in_file_names_file(tmp_path):
    p = tmp_path / "exp.yaml"
    p.write_text("name: x\nmodel: m\ndata: d\ntrainer:\n  early_stopping:\n    patience: 2\n    modee: max\n")
    with pytest.raises(ConfigError, match=r"exp\.yaml.*'modee'.*did you mean 'mode'"):
        load_experiment(p)


def test_yaml_number_strings_and_shorthands(tmp_path):
    # YAML 1.1 reads 1e-3 as a string: numeric fields convert it
    p = tmp_path / "exp.yaml"
    p.write_text(
        "name: x\nmodel: m\ndata: d\ntask:\n  lr: 1e-3\n  scheduler: cosine\ntrainer:\n  devices: '2'\n"
    )
    cfg = load_experiment(p)
    assert cfg.task.lr == 0.001 and isinstance(cfg.task.lr, float)
    assert cfg.task.scheduler == SchedulerConfig(name="cosine")
    assert cfg.trainer.devices == 2
    assert cfg.model == ComponentConfig("m") and cfg.data == ComponentConfig("d")


@pytest.mark.parametrize(
    "task, msg",
    [
        ({"optimizer": "adagrad"}, "task.optimizer='adagrad'"),
        ({"scheduler": "linear"}, "task.scheduler.name='linear'"),
        ({"scheduler": {"name": "plateau", "warmup": 2}}, "warmup is not supported with plateau"),
        ({"lr": "fast"}, "task.lr"),
        ({"betas": [0.9]}, "task.betas"),
    ],
)
def test_bad_task_values(task, msg):
    with pytest.raises(
        (ConfigError, TypeError, ValueError), match=msg.replace(".", r"\.").replace("(", r"\(")
    ):
        from_dict(TaskConfig, task, "task")


def test_bad_trainer_values():
    with pytest.raises(ConfigError, match="loggers"):
        TrainerConfig(loggers=["wandb"])
    with pytest.raises(ConfigError, match="deterministic"):
        TrainerConfig(deterministic="yes")
    with pytest.raises(ConfigError, match="seed"):
        from_dict(ExperimentConfig, {"name": "x", "model": "m", "data": "d", "seed": 1.5})


def test_missing_required_key():
    with pytest.raises(ConfigError, match="data"):
        from_dict(ExperimentConfig, {"name": "x", "model": "m"})


def test_overrides(tmp_path):
    data = {"name": "x", "model": {"name": "m"}, "data": {"name": "d"}}
    apply_overrides(
        data,
        [
            "trainer.max_epochs=4",
            "task.lr=1.0e-2",
            "trainer.early_stopping.patience=7",
            "model.kwargs.widths=[8, 16]",
            "trainer.precision=bf16-mixed",
            "trainer.log_dir=null",
            "test=false",
        ],
    )
    assert data["trainer"] == {
        "max_epochs": 4,
        "early_stopping": {"patience": 7},
        "precision": "bf16-mixed",
        "log_dir": None,
    }
    assert data["model"]["kwargs"] == {"widths": [8, 16]}
    cfg = from_dict(ExperimentConfig, data)
    assert cfg.task.lr == 0.01 and cfg.trainer.early_stopping.patience == 7 and cfg.test is False

    p = tmp_path / "exp.yaml"
    save_yaml(cfg, p)
    with pytest.raises(ConfigError, match="'max_epoch'"):
        load_experiment(p, ["trainer.max_epoch=3"])
    with pytest.raises(ConfigError, match=r"key\.sub=value"):
        load_experiment(p, ["trainer.max_epochs"])
    with pytest.raises(ConfigError, match="not a mapping"):
        load_experiment(p, ["seed.x=1"])
    assert load_experiment(p, ["seed=3"]).seed == 3
