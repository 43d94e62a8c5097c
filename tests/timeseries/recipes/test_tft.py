"""The `gatelab repro tft` recipe: the model sizes come from the TFTConfig presets, the training
part from PAPER_TRAINING, and the command line's size overrides land on the preset."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from gatelab.core.harness.configs import ExperimentConfig
from gatelab.timeseries.models.tft import _TINY, TFTConfig
from gatelab.timeseries.recipes import tft as recipe


def test_paper_sizes_join_the_preset_and_the_training_part():
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


def _args(dataset: str, **kw) -> argparse.Namespace:
    base = dict(
        dataset=dataset, models=["tft"], layout="paper", max_epochs=2, limit_train_batches=5, patience=10,
        plateau_patience=4, hidden=None, heads=None, dropout=None, lr=None, batch_size=None,
        hidden_continuous=8, run_dir="runs/repro-tft", progress=False, quick=True, data_dir=None,
    )  # fmt: skip
    return argparse.Namespace(**{**base, **kw})


@pytest.mark.parametrize(
    ("dataset", "override", "model_kwargs"),
    [
        ("stallion", {}, {"preset": "stallion"}),
        ("electricity", {"hidden": 64}, {"preset": "electricity", "d_model": 64}),
        ("traffic", {"heads": 2, "dropout": 0.1}, {"preset": "traffic", "num_heads": 2, "dropout": 0.1}),
    ],
)
def test_experiment_config_names_the_preset(dataset, override, model_kwargs):
    args = _args(dataset, **override)
    sizes = recipe.paper_sizes(dataset)
    sizes.update({k: v for k, v in override.items() if v is not None})
    cfg = recipe.tft_config(args, 0, sizes, Path(args.run_dir), 24)
    kwargs = cfg["model"]["kwargs"]
    assert {k: kwargs[k] for k in model_kwargs} == model_kwargs
    assert not {"d_model", "num_heads", "dropout"} - set(model_kwargs) & set(kwargs)  # only what changed
    assert kwargs["continuous_dim"] == 8 and kwargs["layout"] == "paper"
    assert cfg["task"]["lr"] == sizes["lr"] and cfg["trainer"]["gradient_clip_val"] == sizes["clip"]
    ExperimentConfig.from_dict(cfg)  # strict: every section and key valid
    # the model kwargs are a valid TFTConfig once the data module adds the variables
    variables = {k: v for k, v in _TINY.items() if k not in ("d_model", "num_heads", "continuous_dim")}
    model = TFTConfig.from_preset(kwargs["preset"], **{k: v for k, v in kwargs.items() if k != "preset"}, **variables)
    assert (model.d_model, model.num_heads, model.dropout) == (sizes["hidden"], sizes["heads"], sizes["dropout"])
