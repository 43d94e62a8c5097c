"""Bad configs fail at once: exit 2, one stderr line naming the key, the value and what is
allowed, no traceback (how fast is recorded by ``tools/reliability/configs.py``, not asserted
here); and the good configs this validation allows still run
(several files merged, ``trainer.extra``, callbacks by class path).

The cases live in ``tests/core/harness/bad_config_cases.py`` (shared with
``tools/reliability/configs.py``). They run in-process through ``gatelab.core.harness.cli.main``,
cycling through ``train --print-config``, ``train`` and ``eval`` (a bad config must stop all
three before any data is read); a few run as real subprocesses to check that neither torch nor
Lightning is imported.
Every case also runs through the real CLI in a fresh interpreter in
``tools/reliability/configs.py`` (``bad_config_cases.run_cold``), where static validation
answers it without importing torch or Lightning (see ``test_schema.py``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import typing
from pathlib import Path

import pytest
import yaml

from gatelab.core.config import ConfigError
from gatelab.core.harness.cli import main
from gatelab.core.harness.configs import PRECISIONS, ExperimentConfig, load_experiment, merge_configs

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bad_config_cases as bc  # noqa: E402  (the shared case list next to this file)


@pytest.fixture(scope="module", autouse=True)
def _warm() -> None:
    """Import the domains, Lightning and the test registrations once, so each case is timed on
    the validation itself (a cold ``import torch`` alone takes seconds on a loaded machine)."""
    from gatelab.core.harness.validation import validate_experiment

    bc.load_tiny()
    validate_experiment(bc.base_config(Path("unused")))


def test_enough_distinct_cases():
    ids = [c.id for c in bc.CASES]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 80
    assert all(c.fragments for c in bc.CASES)


@pytest.mark.parametrize("i", range(len(bc.CASES)), ids=[c.id for c in bc.CASES])
def test_bad_config(i, tmp_path):
    case = bc.CASES[i]
    mode = bc.MODES[i % len(bc.MODES)]
    rc, out, err, _seconds = bc.run_case(case, tmp_path, mode)
    problems = bc.check(case, rc, err)
    assert not problems, (mode, problems, err)
    assert err.startswith(f"gatelab {'eval' if mode == 'eval' else 'train'}: error: ")
    assert out == ""
    assert not (tmp_path / "runs").exists()  # nothing ran, nothing was written


def test_base_config_is_good(tmp_path, capsys):
    configs = bc.write_case(bc.Case("good"), tmp_path)
    assert main(["train", "--config", *configs]) == 0
    out = capsys.readouterr().out
    assert "run dir" in out and "test/mse" in out


_TORCH_FREE = """
import importlib.util, json, sys, time, types
t0 = time.perf_counter()
spec = importlib.util.find_spec("gatelab")
stub = types.ModuleType("gatelab")
stub.__path__, stub.__spec__ = list(spec.submodule_search_locations), spec
sys.modules["gatelab"] = stub  # skip gatelab/__init__, which imports the registry (torch)
from gatelab.core.config import ConfigError
from gatelab.core.harness.configs import load_experiment
try:
    load_experiment(sys.argv[1:2], sys.argv[2:])
    msg = None
except ConfigError as e:
    msg = str(e)
heavy = sorted(m for m in ("torch", "lightning", "numpy", "pandas") if m in sys.modules)
print(json.dumps({"msg": msg, "heavy": heavy, "seconds": time.perf_counter() - t0}))
"""


@pytest.mark.parametrize("case_id", ["lr-text", "devices-text", "es-patience", "test-yes-please"])
def test_harness_checks_are_torch_free(case_id, tmp_path):
    """How long bad configs take is measured, not asserted here (a timed assertion fails on a
    loaded machine): ``tools/reliability/configs.py`` records every case's cold-start wall and CPU
    time. What must hold everywhere is that the checks need neither torch nor Lightning.

    The harness-section check alone (load_experiment, as the CLI runs it first) imports
    neither torch nor Lightning. (How long a fresh interpreter takes is measured, not asserted:
    ``tools/reliability/configs.py`` records the cold-start times; a timed assertion would fail
    on a loaded machine.)"""
    import json

    case = next(c for c in bc.CASES if c.id == case_id)
    configs = bc.write_case(case, tmp_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", _TORCH_FREE, configs[0], *case.sets], capture_output=True, text=True, env=env
    )
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["heavy"] == [] and res["msg"] is not None
    assert all(frag in res["msg"] for frag in case.fragments), res


# --------------------------------------------------------------------------- good configs


def _write(path: Path, data: dict) -> str:
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_several_configs_merge_in_order(tmp_path, capsys):
    base = bc.base_config(tmp_path / "runs")
    a = _write(tmp_path / "a.yaml", {**base, "model": bc.MODEL})  # shorthand name, no kwargs
    b = _write(
        tmp_path / "b.yaml",
        {"model": {"kwargs": {"hidden": 6}}, "trainer": {"max_epochs": 3, "devices": 1}, "seed": 5},
    )
    c = _write(tmp_path / "c.yaml", {"trainer": {"max_epochs": 2}, "task": {"scheduler": "cosine"}})
    cfg = load_experiment([a, b, c], ["seed=6"])
    assert cfg.model.name == bc.MODEL and cfg.model.kwargs == {"hidden": 6}
    assert cfg.trainer.max_epochs == 2  # c wins over b
    assert cfg.trainer.early_stopping.patience == 2  # kept from a (deep merge)
    assert cfg.task.scheduler.name == "cosine" and cfg.task.lr == 1e-2
    assert cfg.seed == 6  # --set after every file
    # the CLI: one --config with several files, or --config repeated
    for args in (["--config", a, b, c], ["--config", a, "--config", b, "--config", c]):
        assert main(["train", *args, "--set", "seed=6", "--print-config"]) == 0
        printed = yaml.safe_load(capsys.readouterr().out)
        assert ExperimentConfig.from_dict(printed) == cfg
    # lists replace, they do not concatenate
    merged = merge_configs({"trainer": {"loggers": ["csv"], "devices": [0, 1]}}, {"trainer": {"devices": [2]}})
    assert merged == {"trainer": {"loggers": ["csv"], "devices": [2]}}


def test_yaml_numbers_and_booleans(tmp_path):
    p = _write(tmp_path / "a.yaml", bc.base_config(tmp_path))
    cfg = load_experiment(p, ["task.lr=1e-3", "trainer.devices='2'", "test=false", "trainer.devices=0,1"])
    assert cfg.task.lr == 0.001 and cfg.test is False and cfg.trainer.devices == [0, 1]
    (tmp_path / "b.yaml").write_text("task: {lr: 3e-4}\ntrainer: {devices: '2', precision: bf16-mixed}\n")
    cfg = load_experiment([p, tmp_path / "b.yaml"])
    assert cfg.task.lr == 3e-4 and cfg.trainer.devices == 2 and cfg.trainer.precision == "bf16-mixed"
    with pytest.raises(ConfigError, match=r"test='on'"):
        load_experiment(p, ["test=on"])  # YAML 1.1's on/off/yes/no are not booleans here


def test_precisions_are_lightnings():
    from lightning.fabric.plugins.precision.precision import _PRECISION_INPUT

    allowed = set()
    for part in typing.get_args(_PRECISION_INPUT):
        allowed |= set(typing.get_args(part))
    assert set(PRECISIONS) == allowed


def test_trainer_extra_and_callbacks_reach_lightning(tmp_path, capsys):
    from gatelab_harness_tiny import RecordingCallback

    from gatelab.core.harness.trainer import build_trainer

    base = bc.base_config(tmp_path / "runs")
    base["trainer"]["max_epochs"] = 2
    base["trainer"]["extra"] = {"reload_dataloaders_every_n_epochs": 2, "detect_anomaly": True}
    base["trainer"]["callbacks"] = [
        {"class_path": "gatelab_harness_tiny.RecordingCallback", "init_args": {"tag": "t", "every": 2}},
        "lightning.pytorch.callbacks.Timer",
    ]
    cfg = ExperimentConfig.from_dict(base)
    trainer = build_trainer(cfg.trainer, run_dir=tmp_path / "t")
    assert trainer.reload_dataloaders_every_n_epochs == 2 and trainer._detect_anomaly is True
    rec = [cb for cb in trainer.callbacks if isinstance(cb, RecordingCallback)]
    assert len(rec) == 1 and rec[0].tag == "t" and rec[0].every == 2
    assert any(type(cb).__name__ == "Timer" for cb in trainer.callbacks)
    # and through a real run: the callback sees both epochs, the saved config keeps both keys
    path = _write(tmp_path / "exp.yaml", base)
    assert main(["train", "--config", path]) == 0
    run = tmp_path / "runs" / base["name"] / "seed0" / "version_0"
    saved = load_experiment(run / "config.yaml")
    assert saved.trainer.extra == base["trainer"]["extra"]
    assert [c.class_path for c in saved.trainer.callbacks] == [
        "gatelab_harness_tiny.RecordingCallback",
        "lightning.pytorch.callbacks.Timer",
    ]
    capsys.readouterr()


def test_shipped_configs_validate():
    """Every YAML config in the repository loads and passes the registered-kwargs check."""
    from gatelab.core.harness.validation import validate_experiment

    root = HERE.parents[2]
    paths = sorted((root / "docs").rglob("*.yaml"))
    assert paths
    for p in paths:
        validate_experiment(load_experiment(p))


def test_model_constructor_errors_become_one_config_line():
    from gatelab.core.registry import create_model
    from gatelab.recsys.models import tiny_feature_spec

    # gdcn-p's config (GDCNPConfig) fixes structure=parallel: another value is its one-line error
    with pytest.raises(ConfigError, match=r"^GDCNPConfig\.structure='stacked': expected 'parallel'$"):
        create_model("gdcn-p", feature_spec=tiny_feature_spec(), structure="stacked")
    with pytest.raises(ConfigError) as e:
        create_model("gateformer", num_vars=3, lookback=16, horizon=4, d_model=10, num_heads=3)
    assert "\n" not in str(e.value) and "gateformer" in str(e.value).lower()  # GateformerConfig: ...
