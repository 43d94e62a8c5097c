"""Gated linear units: GLU, GEGLU, SwiGLU, ReGLU, Bilinear, and the GLU feed-forward block.

A gated linear unit multiplies a *value* by an activated *gate*, both linear projections of the
same input (Dauphin et al. 2017, "Language Modeling with Gated Convolutional Networks"; Shazeer
2020, "GLU Variants Improve Transformer")::

    GLU(x)      = sigmoid(x W_g) * (x W_v)
    GEGLU(x)    = gelu(x W_g)    * (x W_v)      (exact erf GELU)
    SwiGLU(x)   = silu(x W_g)    * (x W_v)      (silu = Swish_1, x * sigmoid(x))
    ReGLU(x)    = relu(x W_g)    * (x W_v)
    Bilinear(x) =      (x W_g)   * (x W_v)

Half convention: when one tensor holds both projections (``[value, gate]`` along ``dim``), the
**first half is the value and the second half is the gate**, as in ``torch.nn.functional.glu``
(``glu(x) = a * sigmoid(b)`` for ``x = [a, b]``) and timm's ``GluMlp`` (``gate_last=True``).

SwiGLU and GEGLU run their pointwise part through :func:`gatelab.core.kernels.dispatch`, so on CUDA
a fused Triton kernel is used when it accepts the inputs (see :mod:`gatelab.core.kernels.glu`);
the other kinds are plain PyTorch. ``glu(x)`` over the last dimension and ``GluMlp`` use the packed
ops (``x = [value | gate]`` in one tensor), whose backward writes one ``[..., 2H]`` gradient.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .kernels import dispatch
from .kernels.glu import glu_product
from .layers.activations import ActLike, act_names, create_act
from .layers.capture import is_capturing, record_gate
from .layers.checks import check_dropout, check_positive_ints
from .layers.fusion import is_plain

GLU_KINDS: tuple[str, ...] = ("glu", "geglu", "swiglu", "reglu", "bilinear")


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


# kind -> gate activation
_GATE_ACTS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "glu": torch.sigmoid,
    "geglu": F.gelu,
    "swiglu": F.silu,
    "reglu": F.relu,
    "bilinear": _identity,
}
# kinds whose pointwise part is a kernel op (same name) in gatelab.core.kernels
_KERNEL_KINDS = frozenset({"swiglu", "geglu"})
# kind -> the packed op (x = [value | gate] in one tensor; one-buffer backward)
_PACKED_OPS: dict[str, str] = {"swiglu": "swiglu_packed", "geglu": "geglu_packed"}
# kind -> activation name for create_act (what print(GluMlp) shows)
_KIND_ACT: dict[str, str] = {
    "glu": "sigmoid",
    "geglu": "gelu",
    "swiglu": "silu",
    "reglu": "relu",
    "bilinear": "identity",
}
# activation name -> kind
_ACT_KIND: dict[str, str] = {
    "silu": "swiglu",
    "swish": "swiglu",
    "gelu": "geglu",
    "sigmoid": "glu",
    "relu": "reglu",
    "identity": "bilinear",
    "linear": "bilinear",
    "none": "bilinear",
}


def _check_kind(kind: str) -> str:
    k = kind.lower() if isinstance(kind, str) else kind
    if k not in GLU_KINDS:
        raise ValueError(f"unknown GLU kind {kind!r}; expected one of {GLU_KINDS}")
    return k


def glu_pair(gate: torch.Tensor, value: torch.Tensor, kind: str = "swiglu") -> torch.Tensor:
    """Gated product of separate gate and value tensors: ``act(gate) * value``.

    ``act`` is sigmoid (``"glu"``), exact GELU (``"geglu"``), SiLU (``"swiglu"``), ReLU
    (``"reglu"``) or the identity (``"bilinear"``); see the module docstring for the papers.
    SwiGLU and GEGLU go through ``gatelab.core.kernels.dispatch`` (Triton on CUDA when possible).

    Shapes: ``gate``, ``value``: ``[..., H]`` (identical shapes); returns ``[..., H]``.
    """
    k = _check_kind(kind)
    if gate.shape != value.shape:
        raise ValueError(
            f"glu_pair: gate shape {tuple(gate.shape)} and value shape {tuple(value.shape)} must be equal"
        )
    if k in _KERNEL_KINDS:
        return dispatch(k, gate, value)
    return glu_product(gate, value, _GATE_ACTS[k])


def glu(x: torch.Tensor, kind: str = "swiglu", dim: int = -1) -> torch.Tensor:
    """Gated linear unit of a tensor holding ``[value, gate]`` along ``dim``.

    ``x = [a, b]`` (halves along ``dim``) -> ``act(b) * a``, with ``act`` chosen by ``kind``
    (``GLU_KINDS``: glu = sigmoid, geglu = exact GELU, swiglu = SiLU, reglu = ReLU, bilinear =
    identity). ``glu(x, "glu", dim)`` equals ``torch.nn.functional.glu(x, dim)``.

    Shapes: ``x``: ``[..., 2H, ...]`` (even size along ``dim``); returns ``[..., H, ...]``.

    Papers: Dauphin et al. 2017 (GLU); Shazeer 2020 (GEGLU, SwiGLU, ReGLU, Bilinear).
    Deviations: none; GEGLU uses the exact erf GELU (``F.gelu``'s default), not the tanh approximation.
    """
    k = _check_kind(kind)
    if x.dim() == 0:
        raise ValueError("glu: input must have at least one dimension, got a 0-d tensor")
    size = x.shape[dim]
    if size % 2 != 0:
        raise ValueError(f"glu: size {size} of dim {dim} of input shape {tuple(x.shape)} must be even")
    if k in _PACKED_OPS and (dim == -1 or dim == x.dim() - 1):
        return dispatch(_PACKED_OPS[k], x)  # one [..., 2H] gradient buffer, no autograd cat
    value, gate = x.chunk(2, dim=dim)
    return glu_pair(gate, value, k)


def _resolve_act(act: ActLike) -> tuple[str | None, nn.Module]:
    """``act`` -> (GLU kind or ``None`` for a generic activation, activation module)."""
    if isinstance(act, str):
        key = act.lower()
        kind = key if key in GLU_KINDS else _ACT_KIND.get(key)
        if kind is not None:
            return kind, create_act(_KIND_ACT[kind])
        if key in act_names():
            return None, create_act(key)
        raise ValueError(
            f"unknown GLU activation {act!r}; expected a GLU kind {GLU_KINDS}, "
            f"an activation name mapped to one {sorted(_ACT_KIND)}, or another activation name {act_names()}"
        )
    return None, create_act(act)


class GluMlp(nn.Module):
    """GLU feed-forward block (timm ``GluMlp``): one fused input projection, a GLU, an output projection.

    Equation, for ``x`` of shape ``[..., dim]``::

        [v, g] = x W_1 + b_1                     W_1: [dim, 2 * hidden_dim]
        h      = dropout(act(g) * v)             (glu of kind swiglu/geglu/glu/reglu/bilinear)
        y      = dropout(h W_2 + b_2)            W_2: [hidden_dim, out_dim]

    ``fc1`` computes value and gate in ONE matmul; its output's first half is the value and its
    second half the gate (``F.glu``'s convention). SwiGLU/GEGLU use the packed ops
    ``swiglu_packed``/``geglu_packed`` of ``gatelab.core.kernels`` on that one tensor: their
    backward writes the ``[..., 2 * hidden_dim]`` gradient into one buffer (no autograd cat).

    Args:
        dim: size of the last input dimension.
        hidden_dim: width of the gated hidden layer ``h`` (default ``dim``); ``fc1``
            has ``2 * hidden_dim`` outputs.
        out_dim: size of the last output dimension (default ``dim``).
        act: the gate activation: a GLU kind (``"swiglu"``, ``"geglu"``, ``"glu"``, ``"reglu"``,
            ``"bilinear"``), an activation name mapped to one (silu/swish -> swiglu, gelu -> geglu,
            sigmoid -> glu, relu -> reglu, identity -> bilinear), any other name known to
            :func:`gatelab.core.layers.activations.get_act` (e.g. ``"gelu_tanh"``), or an ``nn.Module``
            class/instance or callable (plain PyTorch path). Default ``"silu"`` (SwiGLU).
        bias: biases in ``fc1`` and ``fc2``.
        dropout: dropout probability after the GLU and after ``fc2`` (timm's ``drop1``/``drop2``).

    Shapes: input ``[..., dim]`` -> output ``[..., out_dim]``.
    Gate capture: ``act(g)`` (``[..., hidden_dim]``) under the module's name.

    Papers: Dauphin et al. 2017 (GLU); Shazeer 2020, "GLU Variants Improve Transformer".
    Deviations: ``hidden_dim`` is the GLU width, so ``fc1`` has ``2 * hidden_dim`` outputs
    (timm's ``GluMlp`` takes the ``fc1`` width, twice ours); no norm layer between the GLU and
    ``fc2``; default ``nn.Linear`` initialisation (timm's optional ``init_weights`` is not copied).
    """

    def __init__(
        self,
        dim: int,
        hidden_dim: int | None = None,
        out_dim: int | None = None,
        *,
        act: ActLike = "silu",
        bias: bool = True,
        dropout: float = 0.0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory_kwargs = {"device": device, "dtype": dtype}
        hidden_dim = dim if hidden_dim is None else hidden_dim
        out_dim = dim if out_dim is None else out_dim
        check_positive_ints(
            "GluMlp",
            ("dim", dim),
            ("hidden_dim", hidden_dim),
            ("out_dim", out_dim),
            allow_bool=True,
        )
        check_dropout("GluMlp", dropout)
        self.dim = dim
        self.hidden_dim = hidden_dim
        self.out_dim = out_dim
        self.kind, self.act = _resolve_act(act)
        self.fc1 = nn.Linear(dim, 2 * hidden_dim, bias=bias, **factory_kwargs)
        self.drop1 = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden_dim, out_dim, bias=bias, **factory_kwargs)
        self.drop2 = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 0 or x.shape[-1] != self.dim:
            raise ValueError(f"GluMlp: expected input [..., {self.dim}], got shape {tuple(x.shape)}")
        u = self.fc1(x)  # [..., 2 * hidden_dim] = [value | gate]
        if self.kind in _KERNEL_KINDS and not is_capturing() and is_plain(self.act, type(self.act)):
            h = dispatch(_PACKED_OPS[self.kind], u)  # packed SwiGLU/GEGLU op: one-buffer backward
        else:  # the GLU formula of the ops' references, with the act module (its hooks fire)
            value, gate = u.chunk(2, dim=-1)
            h, g = glu_product(gate, value, self.act, return_gate=True)
            record_gate(self, g)
        return self.drop2(self.fc2(self.drop1(h)))

    def extra_repr(self) -> str:
        return f"kind={self.kind or 'custom'}"
