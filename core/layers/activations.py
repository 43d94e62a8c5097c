"""String factories for activations, shared by every gate.

``get_act("silu")`` returns a callable, ``create_act("silu")`` a module. Every layer in
:mod:`gatelab.core` accepts ``act``/``gate_act`` as a name, an ``nn.Module`` class, an instance,
or a callable, so layers swap activations without code changes (timm's ``create_act_layer``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

ActLike = str | type[nn.Module] | nn.Module | Callable[[torch.Tensor], torch.Tensor] | None


def _gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x, approximate="tanh")


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


_FUNCTIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "identity": _identity,
    "linear": _identity,
    "none": _identity,
    "relu": F.relu,
    "gelu": F.gelu,
    "gelu_tanh": _gelu_tanh,
    "silu": F.silu,
    "swish": F.silu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "elu": F.elu,
    "leaky_relu": F.leaky_relu,
    "softplus": F.softplus,
    "mish": F.mish,
}

_MODULES: dict[str, type[nn.Module]] = {
    "identity": nn.Identity,
    "linear": nn.Identity,
    "none": nn.Identity,
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "swish": nn.SiLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "softplus": nn.Softplus,
    "mish": nn.Mish,
}


def act_names() -> list[str]:
    """Names accepted by :func:`get_act` and :func:`create_act`."""
    return sorted(_FUNCTIONS)


def _unknown(name: str) -> ValueError:
    return ValueError(f"unknown activation {name!r}; expected one of {act_names()}")


def get_act(act: ActLike) -> Callable[[torch.Tensor], torch.Tensor]:
    """Resolve ``act`` to a tensor -> tensor callable (``None`` means identity)."""
    if act is None:
        return _identity
    if isinstance(act, str):
        try:
            return _FUNCTIONS[act.lower()]
        except KeyError:
            raise _unknown(act) from None
    if isinstance(act, type) and issubclass(act, nn.Module):
        return act()
    if callable(act):
        return act
    raise TypeError(
        f"activation must be a name, nn.Module class/instance or callable, got {type(act).__name__}"
    )


def create_act(act: ActLike) -> nn.Module:
    """Resolve ``act`` to an ``nn.Module`` (so it shows in ``print(model)``)."""
    if act is None:
        return nn.Identity()
    if isinstance(act, str):
        key = act.lower()
        if key == "gelu_tanh":
            return nn.GELU(approximate="tanh")
        try:
            return _MODULES[key]()
        except KeyError:
            raise _unknown(act) from None
    if isinstance(act, type) and issubclass(act, nn.Module):
        return act()
    if isinstance(act, nn.Module):
        return act
    if callable(act):
        return _Lambda(act)
    raise TypeError(
        f"activation must be a name, nn.Module class/instance or callable, got {type(act).__name__}"
    )


class _Lambda(nn.Module):
    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]):
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)

    def extra_repr(self) -> str:
        return getattr(self.fn, "__name__", repr(self.fn))
