"""Data kwargs are type-checked from every data-module factory's annotations before any data is
read (issue 18 point 3): ``data.kwargs.batch_size`` of the wrong type is one ConfigError naming
the key, the value and the expected type; a YAML number string such as ``"4096"`` is converted
to the integer (the harness's documented rule), so a factory never sees a string."""

from __future__ import annotations

import pytest

from gatelab.core.config import ConfigError
from gatelab.core.harness.configs import ExperimentConfig, load_experiment
from gatelab.core.harness.validation import validate_experiment
from gatelab.core.registry import DATAMODULES

NAMES = sorted(DATAMODULES.entries())


def _cfg(name: str, **kwargs) -> dict:
    return {
        "name": "kwargs-types",
        "model": {"name": "finalmlp"},
        "data": {"name": name, "kwargs": kwargs},
        "task": {"name": "regression"},
    }


def test_every_domain_registers_data_modules():
    assert {"ctr", "ltsf", "membrane", "vl-text"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("value", ["4k", True])
def test_wrong_batch_size_type_is_one_clear_error(name, value):
    with pytest.raises(ConfigError) as e:
        validate_experiment(_cfg(name, batch_size=value))
    msg = str(e.value)
    assert f"data.kwargs.batch_size={value!r}" in msg and "expected an integer >= 1" in msg, msg
    assert "\n" not in msg


@pytest.mark.parametrize("name", NAMES)
def test_number_string_batch_size_reaches_the_factory_as_an_int(name, tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(
        f"name: t\nmodel: {{name: finalmlp}}\ndata: {{name: {name}, kwargs: {{batch_size: '4096'}}}}\n"
    )
    cfg = load_experiment(path)
    assert isinstance(cfg, ExperimentConfig)
    validate_experiment(cfg)
    assert cfg.data.kwargs["batch_size"] == 4096 and type(cfg.data.kwargs["batch_size"]) is int
