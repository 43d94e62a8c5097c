"""Exact resume (core/harness/resume.py): a run killed at a random step and resumed with
``--resume auto`` ends with the weights, metrics and best checkpoint of the uninterrupted run,
bit for bit on CPU, for every registered data module.

Tolerance: none. Every case compares with ``torch.equal`` / ``==``; all ops used by these tiny
models are deterministic on CPU with one thread.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from gatelab.core.config import ConfigError

sys.path.insert(0, str(Path(__file__).resolve().parent))
import resume_cases as rc
from trainer_fixtures import quiet_trainer

REPO = Path(__file__).resolve().parents[3]
TEST_ONLY = "harness-test-"  # data modules registered by tests/core/harness/tiny_setup.py


def kill_step(name: str) -> int:
    """The seeded random step at which case ``name`` is killed: 2..STEPS, i.e. the newest
    checkpoint is mid-epoch 0, the end of epoch 0 (``last.ckpt``) or mid-epoch 1."""
    return random.Random(f"resume:{name}").randint(2, rc.STEPS)


def _resume_point(k: int) -> str:
    done = k - 1  # the checkpoint of step k is not written: the kill comes first
    return "epoch end" if done % rc.BATCHES == 0 else "mid-epoch"


def test_every_registered_datamodule_has_a_case():
    from gatelab.core.harness import list_datamodules

    real = {n for n in list_datamodules() if not n.startswith(TEST_ONLY)}
    assert real == set(rc.CASES), f"data modules without a resume case: {sorted(real - set(rc.CASES))}"
    points = {_resume_point(kill_step(n)) for n in rc.CASES}
    assert points == {"epoch end", "mid-epoch"}  # the seeded choice covers both kinds of resume


def _assert_identical(result: dict) -> None:
    assert result["weights_equal"], f"final weights differ (max |diff| {result['max_abs_diff']:.3g})"
    assert result["metrics_equal"], {
        k: (result["metrics_a"].get(k), result["metrics_b"].get(k))
        for k in set(result["metrics_a"]) | set(result["metrics_b"])
        if result["metrics_a"].get(k) != result["metrics_b"].get(k)
    }
    assert result["best_ckpt_equal"], (result["best_a"], result["best_b"])


# every data module at its seeded random step, plus vl-shapes resumed before the last batch of
# its last epoch: a caption batch, so the epoch's train/text_nll (logged on text batches only)
# must come from the checkpoint alone
CASE_STEPS = [(n, kill_step(n)) for n in sorted(rc.CASES)] + [("vl-shapes", rc.STEPS)]


@pytest.mark.parametrize("name, k", CASE_STEPS)
def test_killed_and_resumed_run_is_identical(name, k, tmp_path):
    """In-process: the run stops (an exception) after step k; a fresh Trainer resumes with
    ``auto`` in the same run directory."""
    a, b = rc.build_case(name, tmp_path / "a"), rc.build_case(name, tmp_path / "b")
    rc.run_case(a)
    with pytest.raises(rc.Killed):
        rc.run_case(b, callbacks=(rc.stop_at(k),))
    assert not (rc.run_dir(b) / "metrics.json").exists()
    res = rc.run_case(b, resume="auto")
    assert res.run_dir == rc.run_dir(b)  # continued in version_0, no version_1
    assert not rc.run_dir(b, 1).exists()
    _assert_identical(rc.compare_runs(rc.run_dir(a), rc.run_dir(b)))


# --------------------------------------------------------------------------- real SIGKILL

def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONHASHSEED="0")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


def _gatelab(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gatelab", *args], capture_output=True, text=True, env=_env(), timeout=timeout
    )


_KILLED_RUN = """
import os, signal, sys
sys.path.insert(0, {here!r})
import lightning as L
import resume_cases as rc

class SigKill(L.Callback):
    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step >= {step}:
            os.kill(os.getpid(), signal.SIGKILL)

rc.run_case(rc.build_case({name!r}, __import__("pathlib").Path({root!r})), callbacks=(SigKill(),))
"""


@pytest.fixture
def one_thread():
    """The killed child runs with OMP_NUM_THREADS=1; this process must too, or a multi-threaded
    reduction (matmul, attention) orders its float sums differently and the runs differ by ~1e-4."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("name", ["ltsf", "ctr"])
def test_sigkill_then_cli_resume_auto(name, tmp_path, capsys, one_thread):
    """A training process SIGKILLed at step k (a fresh interpreter), then ``gatelab train
    --resume auto`` (the CLI's main, in this process) finishes the run: identical to the
    uninterrupted one."""
    from gatelab.core.harness.cli import main

    a = rc.build_case(name, tmp_path / "a")
    rc.run_case(a)
    k = kill_step(f"sigkill:{name}")
    script = _KILLED_RUN.format(here=str(Path(__file__).resolve().parent), step=k, name=name, root=str(tmp_path / "b"))
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=_env(), timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    b = rc.build_case(name, tmp_path / "b")  # the same fixture files again (deterministic), same run dir
    assert (rc.run_dir(b) / "checkpoints").is_dir() and not (rc.run_dir(b) / "metrics.json").exists()
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(b.config))
    capsys.readouterr()
    assert main(["train", "--config", str(tmp_path / "b.yaml"), "--data-dir", str(b.data_dir), "--resume", "auto"]) == 0
    assert f"run dir      {rc.run_dir(b)}" in capsys.readouterr().out
    _assert_identical(rc.compare_runs(rc.run_dir(a), rc.run_dir(b)))
    run = json.loads((rc.run_dir(b) / "run.json").read_text())
    assert Path(run["resumed_from"]).parent == rc.run_dir(b) / "checkpoints"


@pytest.mark.slow
def test_sigkill_of_the_cli_process(tmp_path):
    """Fresh interpreters: ``gatelab train`` uninterrupted; a ``gatelab train`` process killed
    with SIGKILL by the parent once its step-2 checkpoint exists; ``gatelab train --resume auto``."""
    import time

    a, b = rc.build_case("ltsf", tmp_path / "a"), rc.build_case("ltsf", tmp_path / "b")
    for case, path in ((a, tmp_path / "a.yaml"), (b, tmp_path / "b.yaml")):
        path.write_text(yaml.safe_dump(case.config))
    done = _gatelab("train", "--config", str(tmp_path / "a.yaml"), "--data-dir", str(a.data_dir), timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    proc = subprocess.Popen(
        [sys.executable, "-m", "gatelab", "train", "--config", str(tmp_path / "b.yaml"), "--data-dir", str(b.data_dir)],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    marker = rc.run_dir(b) / "checkpoints" / "step-epoch=0-step=2.ckpt"
    deadline = time.monotonic() + 600
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    resumed = _gatelab("train", "--config", str(tmp_path / "b.yaml"), "--data-dir", str(b.data_dir), "--resume", "auto", timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    _assert_identical(rc.compare_runs(rc.run_dir(a), rc.run_dir(b)))


def test_without_the_saved_state_the_resume_differs(tmp_path):
    """Negative control: the same kill/resume with the gatelab state stripped from the
    checkpoints (as a plain Lightning resume) does not reproduce the run."""
    a, b = rc.build_case("ltsf", tmp_path / "a"), rc.build_case("ltsf", tmp_path / "b")
    rc.run_case(a)
    with pytest.raises(rc.Killed):
        rc.run_case(b, callbacks=(rc.stop_at(5),))  # newest checkpoint: mid-epoch 1
    for ckpt in (rc.run_dir(b) / "checkpoints").glob("*.ckpt"):
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        state.pop("gatelab_resume")
        torch.save(state, ckpt)
    with pytest.warns(UserWarning, match="not bit-identically"):
        rc.run_case(b, resume="auto")
    result = rc.compare_runs(rc.run_dir(a), rc.run_dir(b))
    assert not result["weights_equal"] and result["max_abs_diff"] > 0


# --------------------------------------------------------------------------- discovery and errors


def _tiny_cfg(tmp_path: Path, **trainer) -> dict:
    return {
        "name": "tiny",
        "seed": 1,
        "output_dir": str(tmp_path / "runs"),
        "model": {"name": "harness-test-mlp", "kwargs": {"hidden": 4}},
        "data": {"name": "harness-test-regression", "kwargs": {"n": 48}},
        "trainer": quiet_trainer(max_epochs=2, loggers=["csv"], log_every_n_steps=1, checkpoint={"every_n_train_steps": 1})
        | trainer,
    }


def _csv_rows(path: Path) -> list[dict[str, str]]:
    import csv

    with open(path, newline="") as fh:
        return [{k: v for k, v in row.items() if v} for row in csv.DictReader(fh)]


def test_auto_last_and_run_dir_continuation(tiny, tmp_path):
    from gatelab.core.harness import run_experiment

    exp = tmp_path / "runs" / "tiny" / "seed1"
    with pytest.raises(ConfigError, match=r"--resume last: no checkpoint of this experiment under .*seed1"):
        run_experiment(_tiny_cfg(tmp_path), ckpt_path="last")
    with pytest.raises(rc.Killed):
        run_experiment(_tiny_cfg(tmp_path), ckpt_path="auto", callbacks=[rc.stop_at(5)])  # none yet: fresh
    assert sorted(p.name for p in exp.iterdir()) == ["version_0"]
    rows_before = _csv_rows(exp / "version_0" / "csv" / "metrics.csv")
    res = run_experiment(_tiny_cfg(tmp_path), ckpt_path="last")
    assert res.run_dir == exp / "version_0" and sorted(p.name for p in exp.iterdir()) == ["version_0"]
    assert (exp / "version_0" / "metrics.json").is_file()
    rows_after = _csv_rows(exp / "version_0" / "csv" / "metrics.csv")
    # continued: the rows logged before the checkpoint (step < 4) are kept, the killed run's later
    # rows are logged again by the resumed run (no duplicates)
    kept = [r for r in rows_before if int(r["step"]) < 4]
    assert len(kept) < len(rows_before) and rows_after[: len(kept)] == kept
    steps = [(r["step"], tuple(sorted(r))) for r in rows_after]
    assert len(steps) == len(set(steps)) and max(int(r["step"]) for r in rows_after) >= 5
    run = json.loads((exp / "version_0" / "run.json").read_text())
    assert Path(run["resumed_from"]).name == "step-epoch=1-step=4.ckpt"  # 3 steps/epoch, killed at 5
    # a finished run: auto resumes its newest checkpoint, trains nothing more, tests the same best
    again = run_experiment(_tiny_cfg(tmp_path), ckpt_path="auto")
    assert again.run_dir == res.run_dir and again.best_checkpoint == res.best_checkpoint
    assert json.loads((exp / "version_0" / "metrics.json").read_text()) == res.metrics
    # a checkpoint from elsewhere starts a new version directory
    outside = tmp_path / "elsewhere.ckpt"
    outside.write_bytes(Path(res.last_checkpoint).read_bytes())
    other = run_experiment(_tiny_cfg(tmp_path), ckpt_path=str(outside))
    assert other.run_dir == exp / "version_1"


def test_corrupt_and_mismatched_checkpoints(tiny, tmp_path):
    from gatelab.core.harness import evaluate, run_experiment

    first = run_experiment(_tiny_cfg(tmp_path, max_epochs=1))
    good = Path(first.last_checkpoint)
    bad = good.with_name("zzz.ckpt")
    bad.write_bytes(good.read_bytes()[:1000])  # truncated
    with pytest.raises(ConfigError, match=rf"checkpoint {bad}: not a readable checkpoint") as e:
        run_experiment(_tiny_cfg(tmp_path), ckpt_path=str(bad))
    assert "\n" not in str(e.value)
    junk = tmp_path / "junk.ckpt"
    junk.write_text("hello")
    with pytest.raises(ConfigError, match="not a readable checkpoint"):
        run_experiment(_tiny_cfg(tmp_path), ckpt_path=str(junk))
    with pytest.raises(ConfigError, match="checkpoint not found"):
        run_experiment(_tiny_cfg(tmp_path), ckpt_path=str(tmp_path / "missing.ckpt"))
    with pytest.raises(ConfigError, match="not a readable checkpoint"):  # gatelab eval too
        evaluate(_tiny_cfg(tmp_path), junk)
    # auto skips (and quarantines) the newest, corrupt file and resumes from the previous one
    os.utime(bad, (good.stat().st_mtime + 10,) * 2)
    res = run_experiment(_tiny_cfg(tmp_path), ckpt_path="auto")
    assert not bad.exists() and bad.with_name("zzz.ckpt.corrupt").exists()
    assert res.run_dir == first.run_dir
    # another model / another task
    other_model = _tiny_cfg(tmp_path)
    other_model["model"] = {"name": "gateformer"}
    with pytest.raises(ConfigError, match=r"holds model 'harness-test-mlp', but the config names 'gateformer'"):
        run_experiment(other_model, ckpt_path=str(good))
    other_task = _tiny_cfg(tmp_path)
    other_task["task"] = {"name": "classification"}
    with pytest.raises(ConfigError, match=r"trained with task 'regression', but the config names 'classification'"):
        run_experiment(other_task, ckpt_path=str(good))
    weights_only = tmp_path / "weights.ckpt"
    torch.save({"state_dict": torch.load(good, weights_only=True)["state_dict"]}, weights_only)
    with pytest.raises(ConfigError, match="not a Lightning training checkpoint"):
        run_experiment(_tiny_cfg(tmp_path), ckpt_path=str(weights_only))


def test_cli_reports_bad_checkpoints_in_one_line(tmp_path, capsys):
    from gatelab.core.harness.cli import main

    cfg = {
        "name": "cli",
        "output_dir": str(tmp_path / "runs"),
        "model": {"name": "gateformer"},
        "data": {"name": "ltsf", "kwargs": {"file": "x.csv"}},
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"\x00" * 64)
    for resume, match in ((str(junk), "not a readable checkpoint"), ("last", "no checkpoint of this experiment")):
        assert main(["train", "--config", str(tmp_path / "c.yaml"), "--resume", resume]) == 2
        err = capsys.readouterr().err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and match in lines[0] and "Traceback" not in err, err


# --------------------------------------------------------------------------- cadence config


@pytest.mark.parametrize(
    "override, match",
    [
        ("trainer.checkpoint.every_n_train_steps=0", "every_n_train_steps=0: expected an integer >= 1"),
        ("trainer.checkpoint.every_n_train_steps=-3", "every_n_train_steps=-3: expected an integer >= 1"),
        ("trainer.checkpoint.every_n_train_steps=1.5", "every_n_train_steps=1.5: expected an integer >= 1"),
        ("trainer.checkpoint.every_n_train_steps=abc", "every_n_train_steps='abc': expected an integer >= 1"),
        ("trainer.checkpoint.every_n_epochs=0", "every_n_epochs=0: expected an integer >= 1"),
        ("trainer.checkpoint.train_time_interval=0", "train_time_interval=0: expected a number of seconds > 0"),
        ("trainer.checkpoint.train_time_interval=-5", "train_time_interval=-5: expected a number of seconds > 0"),
        ("trainer.max_time=-1", "max_time=-1 must be a number of seconds > 0"),
        ("trainer.max_time=1h", "max_time='1h' must be 'DD:HH:MM:SS'"),
        ("trainer.max_time='00:00:00:00'", "max_time='00:00:00:00' must be 'DD:HH:MM:SS'"),
        ("trainer.max_time='00:01:x:00'", "max_time='00:01:x:00' must be 'DD:HH:MM:SS'"),
        ("trainer.max_time={hour: 1}", "trainer.max_time: unknown key 'hour'"),
        ("trainer.max_time={hours: -1}", r"trainer.max_time.hours=-1 must be a number >= 0"),
        ("trainer.max_time=true", "max_time=True must be seconds"),
        (
            "trainer.checkpoint={every_n_train_steps: 2, train_time_interval: 9}",
            "every_n_train_steps=2 and train_time_interval=9.0 are mutually exclusive",
        ),
    ],
)
def test_bad_cadence_values(override, match, tmp_path):
    from gatelab.core.harness.configs import load_experiment

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"name": "c", "model": {"name": "m"}, "data": {"name": "d"}}))
    with pytest.raises(ConfigError, match=match):
        load_experiment(path, [override])


def test_cadence_reaches_lightning(tmp_path):
    from lightning.pytorch.callbacks import Timer

    from gatelab.core.harness import TrainerConfig, build_trainer
    from gatelab.core.harness.resume import EpochCheckpoint, StepCheckpoint

    cadences = ({"every_n_train_steps": 5}, {"train_time_interval": 30}, {"every_n_train_steps": 2})
    for (value, seconds), ck in zip((("00:01:00:00", 3600), (90, 90), ({"minutes": 2, "seconds": 3}, 123)), cadences):
        trainer = build_trainer(TrainerConfig(max_time=value, checkpoint=ck), run_dir=tmp_path)
        timer = next(c for c in trainer.callbacks if isinstance(c, Timer))
        assert timer._duration == seconds
        step = next(c for c in trainer.callbacks if isinstance(c, StepCheckpoint))
        assert step._every_n_train_steps == ck.get("every_n_train_steps", 0)
        interval = step._train_time_interval
        assert (interval.total_seconds() if interval else None) == ck.get("train_time_interval")
        assert isinstance(trainer.checkpoint_callback, EpochCheckpoint)
    assert not any(isinstance(c, StepCheckpoint) for c in build_trainer(TrainerConfig(), run_dir=tmp_path).callbacks)


def test_time_cadence_saves_mid_epoch(tiny, tmp_path):
    from gatelab.core.harness import run_experiment

    cfg = _tiny_cfg(tmp_path, max_epochs=1)
    cfg["trainer"]["checkpoint"] = {"train_time_interval": 1e-6}
    res = run_experiment(cfg)
    names = sorted(p.name for p in (res.run_dir / "checkpoints").iterdir())
    # the last batch of the epoch is left to the epoch-end checkpoint; the latest step one is kept
    assert "step-epoch=0-step=2.ckpt" in names and "last.ckpt" in names


# --------------------------------------------------------------------------- RNG helpers


def test_rng_state_round_trip_and_data_seed(tmp_path):
    import numpy as np

    from gatelab.core.harness.resume import data_seed, get_rng_state, set_rng_state

    random.random()
    np.random.rand()  # noqa: NPY002
    state = get_rng_state()
    torch.save(state, tmp_path / "s.pt")
    want = (random.random(), float(np.random.rand()), torch.rand(3))  # noqa: NPY002
    set_rng_state(torch.load(tmp_path / "s.pt", weights_only=True))
    got = (random.random(), float(np.random.rand()), torch.rand(3))  # noqa: NPY002
    assert got[:2] == want[:2] and torch.equal(got[2], want[2])
    assert data_seed(7, 3) == data_seed(7, 3) != data_seed(7, 4) != data_seed(8, 3)
    assert 0 <= data_seed(2**40, 10**6) < 2**63
