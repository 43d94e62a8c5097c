"""The ``ctr`` recipe (gatelab.recsys.recipes.ctr): the shipped example config equals its cells;
every row's model comes from its config's ``frappe-x1`` preset."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatelab.recsys.recipes.ctr import CTR_TASK_KWARGS

EXAMPLE = Path(__file__).resolve().parents[3] / "docs" / "examples" / "ctr" / "frappe.yaml"


@pytest.mark.parametrize("model", sorted(CTR_TASK_KWARGS))
def test_shipped_config_equals_each_row(model):
    """docs/examples/ctr/frappe.yaml, with the ``--set`` overrides its header gives for another
    model, is the row's config (what `gatelab train --config` would run)."""
    from gatelab.core.config import to_dict
    from gatelab.core.harness.configs import load_experiment
    from gatelab.recsys.recipes.ctr import ctr_config

    sets = [f"model.name={model}", f"name=ctr-frappe-{model}"]
    if model == "lr":
        sets.append("task.kwargs.embedding_regularizer=1e-5")
    if model == "fignn":
        sets.append("task.kwargs.embedding_regularizer=0.001")
    assert to_dict(load_experiment(EXAMPLE, sets)) == to_dict(ctr_config(model, "frappe"))


def test_rows_name_the_preset_and_validate():
    """Each row's model kwargs are just the preset, and the whole config validates (the preset
    exists for the model, the task kwargs are CTROptions keys) without reading data."""
    from gatelab.core.harness.validation import validate_experiment
    from gatelab.recsys.recipes.ctr import CTR_PRESET, ctr_config

    for model in CTR_TASK_KWARGS:
        cfg = validate_experiment(ctr_config(model, "frappe_x1"))
        assert cfg.model.kwargs == {"preset": CTR_PRESET}, model
        assert cfg.task.kwargs == CTR_TASK_KWARGS[model], model


def test_unknown_model_is_one_line():
    from gatelab.core.config import ConfigError
    from gatelab.recsys.recipes.ctr import ctr_config

    with pytest.raises(ConfigError, match=r"model 'finalmpl' has no row.*did you mean 'finalmlp'"):
        ctr_config("finalmpl")


@pytest.mark.parametrize(
    ("kwargs", "fragments"),
    [
        ({"preset": "frappe-x2"}, ["model.kwargs.preset='frappe-x2'", "'frappe-x1'"]),
        ({"mlp1_act": "reluu"}, ["model.kwargs.mlp1_act='reluu'", "did you mean 'relu'"]),
        ({"mlp1_activation": "relu"}, ["model.kwargs.mlp1_activation='relu'", "did you mean 'mlp1_act'"]),
        ({"fs_hidden_dims": [8, 0]}, ["model.kwargs.fs_hidden_dims=[8, 0]", "[1]"]),
    ],
)
def test_bad_model_kwargs_fail_before_any_data(kwargs, fragments):
    """The row's model kwargs are checked against FinalMLPConfig (types, ranges, activation
    names, preset names) when the experiment config is validated, before the data is read."""
    from gatelab.core.config import ConfigError, to_dict
    from gatelab.core.harness.validation import validate_experiment
    from gatelab.recsys.recipes.ctr import ctr_config

    cfg = to_dict(ctr_config("finalmlp", "frappe"))
    cfg["model"]["kwargs"].update(kwargs)
    with pytest.raises(ConfigError) as e:
        validate_experiment(cfg)
    msg = str(e.value)
    assert "\n" not in msg
    for f in fragments:
        assert f in msg, msg
