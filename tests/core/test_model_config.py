"""``gatelab.core.config.ModelConfig``: frozen, typed and ranged, presets, strict errors;
``create_model(name, preset=...)`` through the registry."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import pytest
import torch
from torch import nn

from gatelab.core.config import ConfigError, Dropout, ModelConfig, PositiveInt
from gatelab.core.registry import MODELS, create_model, register_model


@dataclasses.dataclass(frozen=True, kw_only=True)
class ToyConfig(ModelConfig):
    dim: PositiveInt = 4
    num_heads: PositiveInt = 2
    dropout: Dropout = 0.0
    sizes: tuple[int, ...] = (3,)

    presets: ClassVar = {"wide": {"dim": 16, "num_heads": 4}, "narrow": {"dim": 2, "num_heads": 1}}

    def check(self) -> None:
        if self.dim % self.num_heads:
            raise ConfigError(f"ToyConfig: dim={self.dim} must be divisible by num_heads={self.num_heads}")


class Toy(nn.Module):
    config_class = ToyConfig

    def __init__(self, config: ToyConfig | None = None, /, **overrides: object) -> None:
        super().__init__()
        self.config = ToyConfig.build(config, **overrides)
        self.proj = nn.Linear(self.config.dim, self.config.dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


def test_defaults_presets_and_overrides() -> None:
    assert ToyConfig() == ToyConfig(dim=4, num_heads=2, dropout=0.0, sizes=(3,))
    wide = ToyConfig.from_preset("wide", dropout=0.1)
    assert (wide.dim, wide.num_heads, wide.dropout) == (16, 4, 0.1)
    assert ToyConfig.from_preset(None, sizes=[1, 2]).sizes == (1, 2)  # YAML list -> tuple
    assert ToyConfig.field_names() == ["dim", "num_heads", "dropout", "sizes"]
    assert wide.to_dict() == {"dim": 16, "num_heads": 4, "dropout": 0.1, "sizes": [3]}
    with pytest.raises(dataclasses.FrozenInstanceError):
        wide.dim = 8  # type: ignore[misc]


@pytest.mark.parametrize(
    ("call", "fragments"),
    [
        (lambda: ToyConfig(dim=0), ["ToyConfig.dim=0", ">= 1"]),
        (lambda: ToyConfig(dropout=1.5), ["ToyConfig.dropout=1.5"]),
        (lambda: ToyConfig.from_preset(None, dimm=3), ["'dimm'", "did you mean 'dim'", "valid keys"]),
        (lambda: ToyConfig.from_preset("wid"), ["unknown preset 'wid'", "did you mean 'wide'", "narrow"]),
        (lambda: ToyConfig(dim=6, num_heads=4), ["dim=6 must be divisible by num_heads=4"]),
        (lambda: ToyConfig.build(3), ["expected a ToyConfig"]),
        (lambda: Toy(dimm=3), ["'dimm'"]),
    ],
)
def test_bad_values_are_one_line_config_errors(call, fragments) -> None:
    with pytest.raises(ConfigError) as e:
        call()
    msg = str(e.value)
    assert "\n" not in msg
    for f in fragments:
        assert f in msg, msg


def test_build_accepts_config_mapping_or_keywords() -> None:
    cfg = ToyConfig.from_preset("wide")
    assert Toy(cfg).config is cfg
    assert Toy(cfg, dropout=0.2).config == dataclasses.replace(cfg, dropout=0.2)
    assert Toy({"dim": 8}).config.dim == 8
    assert Toy(dim=8, num_heads=8).config.num_heads == 8


def test_create_model_fills_the_registered_preset() -> None:
    name = "test-model-config-toy"
    register_model(name, Toy, domain="testing", paper="test", gates=(), preset="wide")
    try:
        assert create_model(name).config.dim == 16
        assert create_model(name, preset="narrow").config.dim == 2
        assert create_model(name, num_heads=2).config == ToyConfig.from_preset("wide", num_heads=2)
        with pytest.raises(ConfigError, match="unknown preset 'nope'"):
            create_model(name, preset="nope")
    finally:
        MODELS.unregister(name)
