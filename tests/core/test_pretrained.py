"""``save_pretrained`` / ``from_pretrained``: every registered model built from a ModelConfig
round-trips (same class, same config, identical outputs); bad folders fail in one line."""

from __future__ import annotations

import json

import pytest
import torch
from gate_checks import output_tensors
from restoration_fixtures import make_paired_restoration_data
from trainer_fixtures import quiet_trainer

from gatelab.core.config import ConfigError, ModelConfig
from gatelab.core.pretrained import (
    CONFIG_NAME,
    PretrainedMixin,
    from_pretrained,
    registry_name,
    save_pretrained,
)
from gatelab.core.registry import create_model, registered
from gatelab.core.weights import WEIGHTS_NAME

MODELS = sorted(registered())


@pytest.mark.parametrize("name", MODELS)
def test_round_trip(name, tmp_path):
    info = registered()[name]
    torch.manual_seed(0)
    model = create_model(name, **info.tiny).eval()
    if not isinstance(getattr(model, "config", None), ModelConfig):
        with pytest.raises(ConfigError, match="has no ModelConfig"):
            save_pretrained(model, tmp_path)
        pytest.skip(f"{name}: not built from a ModelConfig yet (issue 15)")
    assert isinstance(model, PretrainedMixin), f"{name}: no model.save_pretrained (PretrainedMixin)"
    save_pretrained(model, tmp_path)
    meta = json.loads((tmp_path / CONFIG_NAME).read_text())
    assert meta["name"] == name and meta["format"] == 1
    torch.manual_seed(1)  # a different init: the weights must come from the file
    loaded = from_pretrained(tmp_path)
    assert type(loaded) is type(model) and loaded.config == model.config and not loaded.training
    args, kwargs = info.example_inputs(model, 2)
    with torch.no_grad():
        want, got = output_tensors(model(*args, **kwargs)), output_tensors(loaded(*args, **kwargs))
    assert len(want) == len(got) > 0
    for a, b in zip(want, got):
        assert torch.equal(a, b)


def test_registry_name_of_a_directly_built_model():
    from gatelab.timeseries.models.gateformer import Gateformer

    assert registry_name(Gateformer(num_vars=3, lookback=8, horizon=4, d_model=8, num_heads=2)) == "gateformer"


def test_bad_folders_fail_in_one_line(tmp_path):
    with pytest.raises(ConfigError, match=r"config.json not found"):
        from_pretrained(tmp_path)
    (tmp_path / CONFIG_NAME).write_text('{"format": 1, "name": "gateformer",\n "config": [}')
    with pytest.raises(ConfigError, match=r"invalid JSON at line 2"):
        from_pretrained(tmp_path)
    (tmp_path / CONFIG_NAME).write_text(json.dumps({"format": 1, "name": "gatefromer", "config": {}}))
    with pytest.raises(ConfigError, match=r"name='gatefromer' is not a registered model"):
        from_pretrained(tmp_path)
    bad = {"num_vars": 3, "lookback": 8, "horizon": 4, "d_model": 0}
    (tmp_path / CONFIG_NAME).write_text(json.dumps({"format": 1, "name": "gateformer", "config": bad}))
    with pytest.raises(ConfigError, match=r"config: GateformerConfig.d_model=0"):
        from_pretrained(tmp_path)
    model = create_model("gateformer", num_vars=3, lookback=8, horizon=4, d_model=8, num_heads=2)
    save_pretrained(model, tmp_path)
    other = create_model("gateformer", num_vars=3, lookback=8, horizon=4, d_model=16, num_heads=2)
    save_pretrained(other, tmp_path / "other")
    (tmp_path / WEIGHTS_NAME).write_bytes((tmp_path / "other" / WEIGHTS_NAME).read_bytes())
    with pytest.raises(ConfigError, match=r"weights do not fit Gateformer: .*size mismatch"):
        from_pretrained(tmp_path)


def test_tied_weights_are_stored_once_and_stay_tied(tmp_path):
    import dataclasses

    from torch import nn

    from gatelab.core.config import PositiveInt
    from gatelab.core.registry import MODELS, register_model

    @dataclasses.dataclass(frozen=True, kw_only=True)
    class TiedConfig(ModelConfig):
        vocab_size: PositiveInt = 11
        dim: PositiveInt = 4

    class Tied(nn.Module):
        config_class = TiedConfig

        def __init__(self, config=None, /, **overrides):
            super().__init__()
            self.config = cfg = TiedConfig.build(config, **overrides)
            self.embed = nn.Embedding(cfg.vocab_size, cfg.dim)
            self.head = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
            self.head.weight = self.embed.weight  # tied

        def forward(self, ids):
            return self.head(self.embed(ids))

    name = "test-pretrained-tied"
    register_model(name, Tied, domain="testing", paper="test", gates=())
    try:
        torch.manual_seed(0)
        model = create_model(name)
        save_pretrained(model, tmp_path)
        from safetensors import safe_open

        with safe_open(str(tmp_path / WEIGHTS_NAME), framework="pt") as f:
            assert list(f.keys()) == ["embed.weight"]  # the tied head is an alias
            assert json.loads(f.metadata()["aliases"]) == {"head.weight": "embed.weight"}
        loaded = from_pretrained(tmp_path)
        assert loaded.head.weight is loaded.embed.weight
        ids = torch.tensor([[1, 2, 3]])
        assert torch.equal(loaded(ids), model(ids))
    finally:
        MODELS.unregister(name)


def test_create_model_checkpoint_path_and_export_of_a_training_run(tmp_path):
    """A real (tiny) training run: its Lightning checkpoint loads through
    ``create_model(checkpoint_path=)``, ``gatelab export`` turns it into a folder that
    ``from_pretrained`` rebuilds with identical outputs; a bad path is one line."""
    from gatelab.core.harness import ExperimentConfig, run_experiment
    from gatelab.core.harness.cli import main

    data = make_paired_restoration_data(tmp_path / "data")
    cfg = {
        "name": "export-tiny",
        "seed": 0,
        "output_dir": str(tmp_path / "runs"),
        "model": {"name": "dncnn", "kwargs": {"num_layers": 3, "features": 4}},
        "data": {
            "name": "paired_restoration",
            "kwargs": {"train_root": "train", "val_root": "val", "crop": 16, "batch_size": 2, "samples_per_epoch": 2},
        },
        "task": {"name": "restoration", "lr": 1e-3},
        "trainer": quiet_trainer(
            max_epochs=1,
            num_sanity_val_steps=0,
            checkpoint={"monitor": None, "save_top_k": 1, "save_last": True},
        ),
    }
    res = run_experiment(ExperimentConfig.from_dict(cfg), data_dir=data)
    trained = res.task.model.eval()
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        want = trained(x)
    kwargs = res.model_kwargs
    again = create_model("dncnn", checkpoint_path=res.last_checkpoint, **kwargs).eval()
    with torch.no_grad():
        assert torch.equal(again(x), want)
    out = tmp_path / "exported"
    assert main(["export", str(res.last_checkpoint), str(out)]) == 0
    loaded = from_pretrained(out)
    with torch.no_grad():
        assert torch.equal(loaded(x), want)
    assert main(["export", str(tmp_path / "missing.ckpt"), str(out)]) == 2
    with pytest.raises(ConfigError, match="no such file or folder"):
        create_model("dncnn", checkpoint_path=str(tmp_path / "nope.safetensors"))


def test_preprocessing_round_trips_and_is_checked(tmp_path):
    """``model.preprocessing`` (what the model needs on new data) is written as preprocessing.json,
    restored by from_pretrained, and must be a JSON object with a "kind"."""
    from gatelab.core.pretrained import PREPROCESSING_NAME, load_preprocessing

    model = create_model("dncnn", num_layers=3, features=4)
    model.preprocessing = {"kind": "test", "mean": [0.5, 0.25], "names": ["a", "b"]}
    save_pretrained(model, tmp_path / "m")
    assert json.loads((tmp_path / "m" / PREPROCESSING_NAME).read_text())["mean"] == [0.5, 0.25]
    assert from_pretrained(tmp_path / "m").preprocessing == model.preprocessing
    # an explicit argument wins; a model without any writes none (and removes a stale file)
    save_pretrained(model, tmp_path / "m", preprocessing={"kind": "other"})
    assert load_preprocessing(tmp_path / "m") == {"kind": "other"}
    model.preprocessing = None
    save_pretrained(model, tmp_path / "m")
    assert not (tmp_path / "m" / PREPROCESSING_NAME).exists()
    assert from_pretrained(tmp_path / "m").preprocessing is None
    for bad, match in (([1, 2], "JSON object"), ({"mean": 1}, "'kind'"), ({"kind": "x", "v": float("nan")}, "not plain JSON")):
        with pytest.raises(ConfigError, match=match):
            save_pretrained(model, tmp_path / "bad", preprocessing=bad)
    (tmp_path / "m" / PREPROCESSING_NAME).write_text('{"kind": "x",\n  "v": }')
    with pytest.raises(ConfigError, match=r"preprocessing.json: invalid JSON at line 2, column 8"):
        from_pretrained(tmp_path / "m")


def test_mixin_methods_follow_model_hub_names(tmp_path):
    """``model.save_pretrained(dir)`` / ``Class.from_pretrained(dir)`` as huggingface_hub's
    ModelHubMixin names them; loading a folder as the wrong class is an error."""
    from gatelab.vision.models.dncnn import DnCNN
    from gatelab.vision.models.maxim import Maxim

    model = create_model("dncnn", num_layers=3, features=4).eval()
    model.save_pretrained(tmp_path / "m")
    again = DnCNN.from_pretrained(tmp_path / "m")
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(again(x), model(x))
    with pytest.raises(ConfigError, match="holds a DnCNN, not a Maxim"):
        Maxim.from_pretrained(tmp_path / "m")


def test_task_checkpoint_carries_the_data_modules_preprocessing(tmp_path):
    """A data module's ``preprocessing()`` is stored in the task checkpoint and written by export."""
    from gatelab.core.harness.task import GatelabTask
    from gatelab.core.pretrained import CHECKPOINT_KEY, export_checkpoint, load_preprocessing

    class Task(GatelabTask):
        def compute_loss(self, out, target):  # pragma: no cover - not trained here
            return out.mean()

    task = Task("dncnn", {"num_layers": 3, "features": 4})
    dm = type("DM", (), {"preprocessing": lambda self: {"kind": "test", "scale": 2.0}})()
    task._trainer = type("T", (), {"datamodule": dm})()
    ckpt = {"state_dict": {f"model.{k}": v for k, v in task.model.state_dict().items()}, "hyper_parameters": dict(task.hparams)}
    task.on_save_checkpoint(ckpt)
    assert ckpt[CHECKPOINT_KEY] == {"kind": "test", "scale": 2.0}
    torch.save(ckpt, tmp_path / "x.ckpt")
    export_checkpoint(tmp_path / "x.ckpt", tmp_path / "out")
    assert load_preprocessing(tmp_path / "out") == {"kind": "test", "scale": 2.0}


def test_predict_dispatch_errors_are_one_line(tmp_path, capsys):
    """``gatelab predict``: a folder that is not a saved model, a missing input and bad options
    are one-line errors (exit 2); the domain predictors are tested in each domain."""
    from gatelab.core.harness.cli import main
    from gatelab.core.harness.predict import PredictOptions

    create_model("dncnn", num_layers=3, features=4).save_pretrained(tmp_path / "m")
    assert main(["predict", "--model", str(tmp_path / "none"), "--input", "x", "--output", "y"]) == 2
    assert "config.json not found" in capsys.readouterr().err
    assert main(["predict", "--model", str(tmp_path / "m"), "--input", str(tmp_path / "absent.png"), "--output", "y"]) == 2
    assert "absent.png: no such file or folder" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="batch_size=0"):
        PredictOptions(batch_size=0)
