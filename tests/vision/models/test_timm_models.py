"""The vision models in timm's registry (gatelab.vision.models.timm_models): every vision entry of
gatelab's registry has a ``gatelab_*`` timm name that builds the same model (same weights for the
same seed, same outputs), takes timm's ``checkpoint_path`` and refuses ``pretrained=True``."""

from __future__ import annotations

import pytest
import timm
import torch
from gate_checks import output_tensors

import gatelab.vision.models.timm_models as tm
from gatelab.core.config import ConfigError
from gatelab.core.pretrained import save_pretrained
from gatelab.core.registry import create_model, registered


def test_every_vision_model_has_a_timm_name():
    vision = sorted(n for n, info in registered().items() if info.domain == "vision")
    assert sorted(tm.TIMM_NAMES.values()) == vision
    assert sorted(timm.list_models("gatelab_*")) == sorted(tm.TIMM_NAMES)
    assert all(timm.is_model(n) for n in tm.TIMM_NAMES)


@pytest.mark.parametrize("timm_name", sorted(tm.TIMM_NAMES))
def test_timm_create_model_builds_the_gatelab_model(timm_name):
    name = tm.TIMM_NAMES[timm_name]
    info = registered()[name]
    torch.manual_seed(0)
    ours = create_model(name, **info.tiny).eval()
    torch.manual_seed(0)
    theirs = timm.create_model(timm_name, pretrained=False, **info.tiny).eval()
    assert type(theirs) is type(ours) and theirs.config == ours.config
    assert theirs.registry_name == name
    args, kwargs = info.example_inputs(theirs, 1)
    with torch.no_grad():
        for a, b in zip(output_tensors(theirs(*args, **kwargs)), output_tensors(ours(*args, **kwargs)), strict=True):
            assert torch.equal(a, b)


def test_timm_checkpoint_path_and_pretrained(tmp_path):
    torch.manual_seed(1)
    model = create_model("attention-unet-2d", in_channels=1, num_classes=3, filters=(4, 8, 16), feature_scale=1).eval()
    save_pretrained(model, tmp_path / "m")
    loaded = timm.create_model(
        "gatelab_attention_unet_2d",
        checkpoint_path=str(tmp_path / "m" / "model.safetensors"),
        in_channels=1,
        num_classes=3,
        filters=(4, 8, 16),
        feature_scale=1,
    ).eval()
    x = torch.randn(1, 1, 16, 12)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    with pytest.raises(ConfigError, match="gatelab hosts no weights"):
        timm.create_model("gatelab_dncnn", pretrained=True)
    with pytest.raises(ConfigError, match="depth"):  # a bad config field fails as in gatelab
        timm.create_model("gatelab_dncnn", depth=3)
