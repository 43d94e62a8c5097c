"""When may a fused kernel bypass a sub-module? (``is_plain``)

A gate whose fast path reads a sub-module's parameters directly (``TokenwiseGate`` hands
``proj.weight`` to its fused kernel, ``GateAddNorm`` hands ``norm.weight`` to its fused
LayerNorm, the gMLP token mixing multiplies by ``proj.weight``) would silently skip what a user
attached to that sub-module: forward hooks, a LoRA or quantised replacement, a parametrisation.
Such a gate takes its fast path only when :func:`is_plain` holds for every bypassed sub-module,
and otherwise calls the sub-modules (the plain path, same math).
"""

from __future__ import annotations

from torch import nn
from torch.nn.modules import module as _module

__all__ = ["is_plain"]


def _global_hooks() -> bool:
    """True when a global module hook (``nn.modules.module.register_module_forward_hook`` & co) is set."""
    return bool(
        _module._global_forward_hooks
        or _module._global_forward_pre_hooks
        or _module._global_backward_hooks
        or _module._global_backward_pre_hooks
    )


def is_plain(module: nn.Module | None, cls: type[nn.Module]) -> bool:
    """True when a fused path may read ``module``'s parameters instead of calling it.

    That is: ``module`` is exactly of class ``cls`` (not a subclass, a parametrised copy, a LoRA
    wrapper or a quantised replacement), has no forward / forward-pre / backward hooks of its
    own, and no global module hook is registered. ``None`` (an absent optional sub-module) is plain.
    """
    if module is None:
        return True
    if type(module) is not cls:
        return False
    if (
        module._forward_hooks
        or module._forward_pre_hooks
        or module._backward_hooks
        or module._backward_pre_hooks
    ):
        return False
    return not _global_hooks()
