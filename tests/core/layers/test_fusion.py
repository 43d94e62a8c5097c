"""is_plain: when a fused kernel may read a sub-module's parameters instead of calling it."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from gatelab.core.layers.fusion import is_plain


class _SubLinear(nn.Linear):
    pass


class _Scale(nn.Module):
    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return 2.0 * w


def test_exact_class_without_hooks_is_plain():
    assert is_plain(nn.Linear(2, 3), nn.Linear)
    assert is_plain(None, nn.Linear)  # an absent optional sub-module


def test_other_classes_are_not_plain():
    assert not is_plain(_SubLinear(2, 3), nn.Linear)
    assert not is_plain(nn.LayerNorm(3), nn.Linear)
    lin = nn.Linear(2, 3)
    parametrize.register_parametrization(lin, "weight", _Scale())  # class becomes ParametrizedLinear
    assert not is_plain(lin, nn.Linear)


@pytest.mark.parametrize(
    "register",
    [
        lambda m: m.register_forward_hook(lambda *a: None),
        lambda m: m.register_forward_pre_hook(lambda *a: None),
        lambda m: m.register_full_backward_hook(lambda *a: None),
        lambda m: m.register_full_backward_pre_hook(lambda *a: None),
    ],
    ids=["forward", "forward_pre", "backward", "backward_pre"],
)
def test_module_hooks_make_it_not_plain(register):
    lin = nn.Linear(2, 3)
    handle = register(lin)
    assert not is_plain(lin, nn.Linear)
    handle.remove()
    assert is_plain(lin, nn.Linear)


@pytest.mark.parametrize(
    "register",
    [nn.modules.module.register_module_forward_hook, nn.modules.module.register_module_forward_pre_hook],
    ids=["forward", "forward_pre"],
)
def test_global_hooks_make_every_module_not_plain(register):
    lin = nn.Linear(2, 3)
    handle = register(lambda *a: None)
    try:
        assert not is_plain(lin, nn.Linear)
    finally:
        handle.remove()
    assert is_plain(lin, nn.Linear)
