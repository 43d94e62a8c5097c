"""Activation factories: by name, class, instance or callable, and the errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gatelab.core.layers.activations import act_names, create_act, get_act


@pytest.mark.parametrize(
    ("name", "ref"),
    [
        ("relu", F.relu),
        ("gelu", F.gelu),
        ("silu", F.silu),
        ("sigmoid", torch.sigmoid),
        ("identity", lambda x: x),
    ],
)
def test_act_by_name(name, ref):
    x = torch.linspace(-3, 3, 11)
    torch.testing.assert_close(get_act(name)(x), ref(x))
    torch.testing.assert_close(create_act(name)(x), ref(x))
    assert isinstance(create_act(name), nn.Module)


def test_act_other_forms_and_errors():
    x = torch.randn(5)
    torch.testing.assert_close(create_act(nn.Tanh)(x), torch.tanh(x))
    torch.testing.assert_close(create_act(lambda t: 2 * t)(x), 2 * x)
    torch.testing.assert_close(create_act("gelu_tanh")(x), F.gelu(x, approximate="tanh"))
    assert "swish" in act_names()
    with pytest.raises(ValueError, match="unknown activation 'swishh'"):
        get_act("swishh")
    with pytest.raises(TypeError):
        create_act(3)
