"""Strict configs and the model registry."""

from __future__ import annotations

import dataclasses

import pytest
from torch import nn

from gatelab.core.config import ConfigError, check_keys, from_dict, load_yaml, save_yaml, to_dict
from gatelab.core.registry import create_model, list_models, model_info, register_model, registered


@dataclasses.dataclass
class _Inner:
    width: int = 4
    acts: tuple[str, ...] = ("relu",)


@dataclasses.dataclass
class _Outer:
    name: str
    inner: _Inner = dataclasses.field(default_factory=_Inner)
    lr: float = 1e-3


def test_config_round_trip_and_strict_keys(tmp_path):
    cfg = from_dict(_Outer, {"name": "x", "inner": {"width": 8, "acts": ["gelu", "silu"]}})
    assert cfg.inner == _Inner(8, ("gelu", "silu"))
    path = save_yaml(cfg, tmp_path / "c.yaml")
    assert load_yaml(_Outer, path) == cfg
    assert to_dict(cfg)["inner"]["acts"] == ["gelu", "silu"]
    with pytest.raises(ConfigError, match=r"'widht' \(did you mean 'width'\?\) in inner"):
        from_dict(_Outer, {"name": "x", "inner": {"widht": 8}})
    with pytest.raises(ConfigError, match="missing"):
        from_dict(_Outer, {})
    (tmp_path / "bad.yaml").write_text("name: x\nlrr: 1\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*'lrr'"):
        load_yaml(_Outer, tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="not found"):
        load_yaml(_Outer, tmp_path / "missing.yaml")
    check_keys(_Outer, ["name", "lr"])


def test_registry_register_create_list():
    name = "core-registry-test-mlp"

    @register_model(name, domain="core", paper="test", gates=("GluMlp",), tiny={"width": 4})
    def _build(width: int = 8) -> nn.Module:
        """A GLU MLP used only by this test."""
        from gatelab.core import GluMlp

        return GluMlp(width)

    try:
        info = model_info(name)
        assert info.description == "A GLU MLP used only by this test."
        assert name in list_models(domain="core", gate="GluMlp")
        assert name not in list_models(gate="TokenwiseGate")
        assert create_model(name, width=6).fc1.in_features == 6
        with pytest.raises(ConfigError, match="unexpected keyword"):
            create_model(name, widht=6)
        with pytest.raises(KeyError, match="did you mean 'core-registry-test-mlp'"):
            model_info("core-registry-test-mpl")
        with pytest.raises(ValueError, match="already registered"):
            register_model(name, domain="core", paper="p", gates=("GluMlp",))(lambda: None)
        with pytest.raises(ValueError, match="unknown domain"):
            list_models(domain="nope")
    finally:
        from gatelab.core import registry

        registry.MODELS.unregister(name)
    assert name not in registered()
