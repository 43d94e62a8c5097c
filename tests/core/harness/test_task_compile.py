"""``task.compile``: the task compiles its model once, in place; checkpoints, resume and
``save_pretrained`` see the eager parameter names.

Tolerances: a killed and resumed compiled run must end with bit-identical weights (``torch.equal``:
the compiled CPU kernels are deterministic with one thread); the exported eager model and the
compiled model agree to ``atol=1e-6`` (Inductor may fuse the float math in another order).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from gatelab.core.config import ConfigError, from_dict
from gatelab.core.harness.configs import TaskConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
import resume_cases as rc
from trainer_fixtures import quiet_trainer


@pytest.mark.parametrize(
    "value, expected",
    [(False, False), (True, True), ("default", "default"), ("reduce-overhead", "reduce-overhead"),
     ("max-autotune-no-cudagraphs", "max-autotune-no-cudagraphs")],
)  # fmt: skip
def test_compile_values(value, expected):
    assert from_dict(TaskConfig, {"compile": value}, "task").compile == expected
    assert TaskConfig().compile is False


@pytest.mark.parametrize("bad", ["fast", "true", 1, None, "max-autotune"])
def test_compile_bad_values_name_key_and_value(bad):
    with pytest.raises(ConfigError, match=rf"task\.compile={bad!r}: expected false, true or a torch\.compile mode"):
        from_dict(TaskConfig, {"compile": bad}, "task")


def _cfg(tmp_path: Path, name: str, compile_: object = True) -> dict:
    return {
        "name": name,
        "seed": 1,
        "output_dir": str(tmp_path / "runs"),
        "model": {"name": "harness-test-mlp", "kwargs": {"hidden": 4}},
        "data": {"name": "harness-test-regression", "kwargs": {"n": 48}},
        "task": {"compile": compile_},
        "trainer": quiet_trainer(
            max_epochs=2,
            loggers=[],
            checkpoint={"every_n_train_steps": 1},
        ),
    }


def _run_dir(tmp_path: Path, name: str) -> Path:
    return tmp_path / "runs" / name / "seed1" / "version_0"


@pytest.mark.slow
def test_compiled_run_resumes_exactly_with_eager_names(tiny, tmp_path):
    from gatelab.core.harness import run_experiment

    torch.set_num_threads(1)
    eager = run_experiment(_cfg(tmp_path, "eager", False))
    assert eager.task.model._compiled_call_impl is None
    a = run_experiment(_cfg(tmp_path, "a"))
    model = a.task.model
    assert model._compiled_call_impl is not None and a.task._compiled_mode == "default"
    compiled_fn = model._compiled_call_impl
    a.task.configure_model()  # a second call (e.g. trainer.test after fit) does not recompile
    assert model._compiled_call_impl is compiled_fn

    # the checkpoint holds the eager names, the same as an uncompiled run's
    keys = list(torch.load(a.last_checkpoint, map_location="cpu", weights_only=True)["state_dict"])
    eager_keys = list(torch.load(eager.last_checkpoint, map_location="cpu", weights_only=True)["state_dict"])
    assert keys == eager_keys and not any("_orig_mod" in k for k in keys)

    # killed at step 4 (mid-epoch 1) and resumed: the same final weights and metrics
    with pytest.raises(rc.Killed):
        run_experiment(_cfg(tmp_path, "b"), callbacks=[rc.stop_at(4)])
    b = run_experiment(_cfg(tmp_path, "b"), ckpt_path="auto")
    assert b.run_dir == _run_dir(tmp_path, "b")
    result = rc.compare_runs(_run_dir(tmp_path, "a"), _run_dir(tmp_path, "b"))
    assert result["weights_equal"], result["max_abs_diff"]
    assert result["metrics_equal"]

    # the compiled model's state dict loads strictly into a fresh eager model: the same outputs
    fresh = type(model)(hidden=4)
    fresh.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), model(x), rtol=0.0, atol=1e-6)


@pytest.mark.slow
def test_compiled_tft_save_pretrained_round_trip(tmp_path):
    """A TFT task with ``compile: true``: save_pretrained of the compiled model writes eager
    names, from_pretrained gives an eager model with the same forecasts (atol 1e-5)."""
    from gatelab.core.pretrained import from_pretrained, save_pretrained
    from gatelab.timeseries.models.tft import _TINY, example_batch
    from gatelab.timeseries.tasks.tft import TFTTask

    torch.set_num_threads(1)
    torch.manual_seed(0)
    task = TFTTask(model_name="tft", model_kwargs=dict(_TINY), task={"name": "tft", "compile": "default"})
    task.configure_model()
    model = task.model.eval()
    assert model._compiled_call_impl is not None
    x = example_batch(model, batch=3)
    with torch.no_grad():
        compiled = model(x).prediction
    out = save_pretrained(model, tmp_path / "tft", name="tft")
    loaded = from_pretrained(out).eval()
    assert loaded._compiled_call_impl is None
    assert list(loaded.state_dict()) == list(model.state_dict())
    assert not any("_orig_mod" in k for k in model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(loaded(x).prediction, compiled, rtol=0.0, atol=1e-5)
