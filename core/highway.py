"""Learned gates on residual connections: highway layers and gated residual branches."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from .kernels.tokenwise import tokenwise_mix
from .layers.activations import ActLike, create_act
from .layers.capture import record_gate
from .layers.checks import check_dropout, check_positive_int

__all__ = ["HighwayGate", "ResidualGate"]


class HighwayGate(nn.Module):
    r"""Highway layer ``y = T(x) * H(x) + (1 - T(x)) * x``.

    ::

        H(x) = act(W_H x + b_H)              [..., dim]   transform
        T(x) = sigmoid(W_T x + b_T)          [..., dim]   transform gate; 1 - T is the carry gate

    ``b_T`` starts negative (``gate_bias_init``, default -1) so the layer starts close to the
    identity (carry) and information flows through deep stacks.

    Args:
        dim: features of ``x`` (input and output have the same size).
        act: activation of ``H`` (default ReLU).
        gate_act: squashing of ``T`` (default sigmoid).
        bias: the bias ``b_H`` of ``H`` (``T`` always has ``b_T``, the point of the init).
        dropout: dropout on ``H(x)``.
        gate_bias_init: initial ``b_T`` (the paper uses -1 to -3 depending on depth).

    Shapes: ``x`` ``[..., dim]`` -> ``[..., dim]``. ``T(x)`` is recorded with
    :func:`gatelab.core.record_gate`.

    Precision: for float16/bfloat16 inputs ``T`` and the mix are computed in float32 and the
    result cast back (the gate's gradient ``H(x) - x`` overflows half precision otherwise).

    Paper: Srivastava, Greff, Schmidhuber, "Training Very Deep Networks" (NeurIPS 2015) /
    "Highway Networks" (arXiv:1505.00387), eqs. (2)-(3) and Sec. 2.2 (negative gate-bias init).

    Deviations: none (the dropout is an option, 0 by default).
    """

    def __init__(
        self,
        dim: int,
        *,
        act: ActLike = "relu",
        gate_act: ActLike = "sigmoid",
        bias: bool = True,
        dropout: float = 0.0,
        gate_bias_init: float = -1.0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory_kwargs = {"device": device, "dtype": dtype}
        check_positive_int("HighwayGate", "dim", dim)
        check_dropout("HighwayGate", dropout)
        self.dim = dim
        self.gate_bias_init = float(gate_bias_init)
        self.transform = nn.Linear(dim, dim, bias=bias, **factory_kwargs)
        self.gate = nn.Linear(dim, dim, bias=True, **factory_kwargs)
        self.act = create_act(act)
        self.gate_act = create_act(gate_act)
        self.dropout = nn.Dropout(dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.transform.reset_parameters()
        self.gate.reset_parameters()
        nn.init.constant_(self.gate.bias, self.gate_bias_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.dim:
            raise ValueError(f"HighwayGate: expected x[..., {self.dim}], got shape {tuple(x.shape)}")
        h = self.dropout(self.act(self.transform(x)))
        # the convex mix of the token-wise gate, t * H(x) + (1 - t) * x, gate and mix in (at least)
        # float32: dL/dT = H(x) - x can overflow half precision (inf * sigmoid'(saturated) = NaN)
        out, t = tokenwise_mix(h, x, self.gate(x), gate_act=self.gate_act, return_gate=True)
        record_gate(self, t)
        return out

    def extra_repr(self) -> str:
        return f"dim={self.dim}, gate_bias_init={self.gate_bias_init}"


class ResidualGate(nn.Module):
    r"""Learned gate on a residual branch: ``y = x + g * f`` with ``f`` the branch output.

    ``mode`` picks the gate ``g``:

    * ``"scalar"``: one learnable ``alpha`` (ReZero, ``init`` default 0, so every block starts as
      the identity); ``[1]``.
    * ``"vector"``: a learnable ``alpha`` per feature (LayerScale); ``[dim]``.
    * ``"input"``: ``g = sigmoid(W_g x + b_g)`` computed from the residual stream ``x`` (GTrXL's
      "output" gating layer); ``b_g`` starts at ``gate_bias_init`` (default -2, i.e. GTrXL's
      ``- b_g`` with ``b_g = 2``, the gate mostly closed at start); ``[..., dim]``.

    Args:
        dim: features of ``x`` and ``f``.
        mode: ``"scalar"``, ``"vector"`` or ``"input"``.
        gate_act: squashing for ``mode="input"`` (default sigmoid); the learned ``alpha`` of the
            other modes is used as is (unbounded, as in ReZero/LayerScale).
        bias: the bias ``b_g`` of ``mode="input"``.
        init: initial ``alpha`` for ``"scalar"``/``"vector"`` (ReZero: 0; LayerScale: 1e-5 .. 0.1).
        gate_bias_init: initial ``b_g`` for ``"input"``.

    Shapes: ``x``, ``f`` ``[..., dim]`` -> ``[..., dim]``. ``g`` is recorded with
    :func:`gatelab.core.record_gate`.

    Papers: Bachlechner et al., "ReZero is All You Need: Fast Convergence at Large Depth",
    UAI 2021 (``x + alpha F(x)``, ``alpha = 0`` at start); Touvron et al., "Going deeper with
    Image Transformers" (CaiT), ICCV 2021 (LayerScale, per-channel ``alpha``); Parisotto et al.,
    "Stabilizing Transformers for Reinforcement Learning" (GTrXL), ICML 2020, Sec. 3,
    output gating ``x + sigmoid(W_g x - b_g) * y``.

    Deviations: GTrXL's best variant is the GRU-type gate; only its output-gating form fits
    ``x + g * f`` and is offered here.
    """

    def __init__(
        self,
        dim: int,
        *,
        mode: Literal["scalar", "vector", "input"] = "scalar",
        gate_act: ActLike = "sigmoid",
        bias: bool = True,
        init: float = 0.0,
        gate_bias_init: float = -2.0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory_kwargs = {"device": device, "dtype": dtype}
        check_positive_int("ResidualGate", "dim", dim)
        if mode not in ("scalar", "vector", "input"):
            raise ValueError(f"ResidualGate: mode must be 'scalar', 'vector' or 'input', got {mode!r}")
        self.dim = dim
        self.mode = mode
        self.init = float(init)
        self.gate_bias_init = float(gate_bias_init)
        if mode == "input":
            self.proj = nn.Linear(dim, dim, bias=bias, **factory_kwargs)
            self.gate_act = create_act(gate_act)
            self.register_parameter("alpha", None)
        else:
            self.proj = None
            self.gate_act = None
            self.alpha = nn.Parameter(torch.empty(1 if mode == "scalar" else dim, **factory_kwargs))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.proj is not None:
            self.proj.reset_parameters()
            if self.proj.bias is not None:
                nn.init.constant_(self.proj.bias, self.gate_bias_init)
        else:
            nn.init.constant_(self.alpha, self.init)

    def forward(self, x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.dim or f.shape[-1] != self.dim:
            raise ValueError(
                f"ResidualGate: expected x, f [..., {self.dim}], got {tuple(x.shape)} and {tuple(f.shape)}"
            )
        g = self.gate_act(self.proj(x)) if self.proj is not None else self.alpha
        record_gate(self, g)
        return x + g * f

    def extra_repr(self) -> str:
        if self.mode == "input":
            return f"dim={self.dim}, mode='input', gate_bias_init={self.gate_bias_init}"
        return f"dim={self.dim}, mode={self.mode!r}, init={self.init}"
