"""DnCNN: its frozen config (presets, one-line errors), layer count, residual identity at zero init."""

from __future__ import annotations

import pytest
import torch

from gatelab.core.config import ConfigError
from gatelab.vision.models.dncnn import DnCNN, DnCNNConfig


@pytest.mark.parametrize(("preset", "channels", "convs"), [("DnCNN-S", 1, 17), ("CDnCNN-B", 3, 20)])
def test_presets_build_the_papers_models(preset, channels, convs):
    with torch.device("meta"):
        m = DnCNN(DnCNNConfig.from_preset(preset))
    conv = [c for c in m.modules() if isinstance(c, torch.nn.Conv2d)]
    assert len(conv) == convs and m.config.num_layers == convs
    assert conv[0].in_channels == conv[-1].out_channels == channels
    assert {c.out_channels for c in conv[:-1]} == {64}
    # conv+ReLU, (L-2) x conv+BN+ReLU, conv
    assert sum(isinstance(c, torch.nn.BatchNorm2d) for c in m.modules()) == convs - 2


def test_keywords_config_and_identity_start():
    m = DnCNN(in_channels=1, features=4, num_layers=3, zero_init_last=True)
    assert m.config == DnCNNConfig(in_channels=1, features=4, num_layers=3, zero_init_last=True)
    assert DnCNN(m.config).config is m.config
    x = torch.rand(2, 1, 9, 7)
    torch.testing.assert_close(m(x), x)  # the residual r starts at 0
    with pytest.raises(ValueError, match=r"input must be \[B, C=1"):
        m(torch.rand(2, 3, 9, 7))


@pytest.mark.parametrize(
    ("kwargs", "fragments"),
    [
        ({"num_layers": 1}, ["DnCNNConfig.num_layers=1", ">= 2"]),
        ({"features": 0}, ["DnCNNConfig.features=0", ">= 1"]),
        ({"depth": 17}, ["'depth'", "valid keys"]),  # the paper's name is num_layers here
        ({"in_channels": 2.5}, ["DnCNNConfig.in_channels=2.5"]),
    ],
)
def test_config_errors_are_one_line(kwargs, fragments):
    with pytest.raises(ConfigError) as e:
        DnCNN(**kwargs)
    assert "\n" not in str(e.value)
    for f in fragments:
        assert f in str(e.value), str(e.value)
