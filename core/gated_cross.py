"""GDCN's gated cross layer (Wang et al. 2023)."""

from __future__ import annotations

import torch
from torch import nn

from .kernels import dispatch
from .kernels.feature_gate import gated_cross
from .layers.activations import ActLike, create_act
from .layers.capture import is_capturing, record_gate
from .layers.checks import check_positive_int
from .layers.fusion import is_plain

__all__ = ["GatedCrossLayer", "GatedCrossNetwork"]


class GatedCrossLayer(nn.Module):
    r"""Gated cross layer: ``c_{l+1} = c_0 * (W_c c_l + b_c) * sigmoid(W_g c_l) + c_l``.

    The feature crossing ``c_0 * (W_c c_l + b_c)`` of DCN-V2 is modulated element-wise by the
    information gate ``sigmoid(W_g c_l)``, which learns how much each crossed feature matters.

    Args:
        dim: features of ``c_0`` and ``c_l`` (the flattened field embeddings).
        gate_act: squashing of the information gate (default sigmoid).
        bias: the crossing bias ``b_c`` (``W_g`` has none, as in the paper).

    Shapes: ``c0`` and ``cl`` ``[..., dim]`` -> ``[..., dim]``. The gate ``sigmoid(W_g c_l)``,
    ``[..., dim]``, is recorded with :func:`gatelab.core.record_gate`.

    Paper: Wang et al., "Towards Deeper, Lighter and Interpretable Cross Network for CTR
    Prediction", CIKM 2023, eq. (1); official code ``reczoo/FuxiCTR``, ``model_zoo/GDCN``
    (``GateCorssLayer``). Initialisation as there: Xavier-normal ``W_c, W_g`` (FuxiCTR's
    ``reset_parameters``) and ``b_c ~ U(0, 1)``.

    Deviations: none.
    """

    def __init__(
        self,
        dim: int,
        *,
        gate_act: ActLike = "sigmoid",
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory_kwargs = {"device": device, "dtype": dtype}
        check_positive_int("GatedCrossLayer", "dim", dim)
        self.dim = dim
        self.w = nn.Linear(dim, dim, bias=False, **factory_kwargs)
        self.wg = nn.Linear(dim, dim, bias=False, **factory_kwargs)
        self.b = nn.Parameter(torch.empty(dim, **factory_kwargs)) if bias else None
        self.gate_act = create_act(gate_act)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_normal_(self.w.weight)
        nn.init.xavier_normal_(self.wg.weight)
        if self.b is not None:
            nn.init.uniform_(self.b, 0.0, 1.0)

    def forward(self, c0: torch.Tensor, cl: torch.Tensor) -> torch.Tensor:
        if c0.shape[-1] != self.dim or cl.shape[-1] != self.dim:
            raise ValueError(
                f"GatedCrossLayer: expected c0, cl [..., {self.dim}], got {tuple(c0.shape)} and {tuple(cl.shape)}"
            )
        xw = self.w(cl)
        logits = self.wg(cl)
        if not is_capturing() and is_plain(self.gate_act, nn.Sigmoid):  # one op (Triton on CUDA)
            return dispatch("gated_cross", c0, xw, logits, cl, self.b)
        out, gate = gated_cross(c0, xw, logits, cl, self.b, gate_act=self.gate_act, return_gate=True)
        record_gate(self, gate)
        return out

    def extra_repr(self) -> str:
        return f"dim={self.dim}, bias={self.b is not None}"


class GatedCrossNetwork(nn.Module):
    r"""A stack of :class:`GatedCrossLayer`: ``c_{l+1} = GCL_l(c_0, c_l)``, ``l = 0..L-1``, ``c_0 = x``.

    Args:
        dim: features of ``x``.
        num_layers: ``L`` (default 3, GDCN's ``num_cross_layers``).
        gate_act, bias: as in :class:`GatedCrossLayer`.

    Shapes: ``x`` ``[..., dim]`` -> ``c_L`` ``[..., dim]``. Each layer records its gate
    (modules ``<name>.layers.<l>``).

    Paper: Wang et al., CIKM 2023 (the GCN part of GDCN); FuxiCTR's ``GateCorssLayer`` module,
    which despite its name is this whole stack.

    Deviations: none.
    """

    def __init__(
        self,
        dim: int,
        num_layers: int = 3,
        *,
        gate_act: ActLike = "sigmoid",
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        check_positive_int("GatedCrossNetwork", "dim", dim)
        check_positive_int("GatedCrossNetwork", "num_layers", num_layers)
        self.layers = nn.ModuleList(
            GatedCrossLayer(dim, gate_act=gate_act, bias=bias, device=device, dtype=dtype)
            for _ in range(num_layers)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x
        for layer in self.layers:  # depth, not features: sequential by definition
            c = layer(x, c)
        return c
