"""FinalMLP's multi-head bilinear fusion of two streams (Mao et al. 2023)."""

from __future__ import annotations

import math

import torch
from torch import nn

from .layers.capture import record_gate
from .layers.checks import check_positive_ints

__all__ = ["BilinearFusion"]


class BilinearFusion(nn.Module):
    r"""Multi-head bilinear aggregation of two streams ``x`` and ``y``.

    The features are split into ``num_heads`` chunks ``x_h`` (``x_dim / heads``) and ``y_h``
    (``y_dim / heads``); for every output unit ``o``::

        out_o = b_o + w_{x,o}^T x + w_{y,o}^T y + sum_h x_h^T W_{h,o} y_h      [..., out_dim]

    i.e. the per-head bilinear terms ``BiLinear(x_h, y_h)`` of the paper summed over heads (the
    per-head linear terms and biases of the paper add up to the full ``w_x^T x + w_y^T y + b``).
    FinalMLP applies a sigmoid to ``out`` (``out_dim = 1``) outside this layer.

    Args:
        x_dim, y_dim: features of the two streams; both must be divisible by ``num_heads``.
        out_dim: output features (default 1: a logit).
        num_heads: number of heads ``k``; more heads = fewer bilinear parameters
            (``out_dim * x_dim * y_dim / k``).
        bias: the output bias ``b``.

    Parameters: ``w_x`` ``Linear(x_dim, out_dim, bias=False)``, ``w_y`` likewise, ``bias``
    ``[out_dim]``, ``w_xy`` ``[num_heads, out_dim, x_dim/k, y_dim/k]``. To load FuxiCTR's
    ``InteractionAggregation``: ``w_xy = theirs.w_xy.view(k, x_dim/k, out_dim, y_dim/k)
    .permute(0, 2, 1, 3)`` and ``bias = theirs.w_x.bias + theirs.w_y.bias``.

    Shapes: ``x`` ``[..., x_dim]``, ``y`` ``[..., y_dim]`` (same leading dims) ->
    ``[..., out_dim]``. The per-head bilinear terms ``[..., num_heads, out_dim]`` are recorded
    with suffix ``"heads"`` (this layer has no squashed gate; the terms show each head's share).

    Paper: Mao et al., "FinalMLP: An Enhanced Two-Stream MLP Model for CTR Prediction", AAAI 2023,
    Sec. "Multi-Head Bilinear Fusion", eqs. (4)-(5); official code ``reczoo/FuxiCTR``,
    ``model_zoo/FinalMLP`` (``InteractionAggregation``). Initialisation as there: Xavier-normal
    ``w_x, w_y`` and ``w_xy`` (the latter with FuxiCTR's fans ``(out_dim, k * x_h * y_h)``), zero bias.

    Deviations: one bias instead of FuxiCTR's two (``w_x.bias + w_y.bias``, the same function).
    """

    def __init__(
        self,
        x_dim: int,
        y_dim: int,
        out_dim: int = 1,
        *,
        num_heads: int = 1,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory_kwargs = {"device": device, "dtype": dtype}
        check_positive_ints(
            "BilinearFusion",
            ("x_dim", x_dim),
            ("y_dim", y_dim),
            ("out_dim", out_dim),
            ("num_heads", num_heads),
        )
        if x_dim % num_heads or y_dim % num_heads:
            raise ValueError(
                f"BilinearFusion: x_dim={x_dim} and y_dim={y_dim} must both be divisible by num_heads={num_heads}"
            )
        self.x_dim, self.y_dim, self.out_dim, self.num_heads = x_dim, y_dim, out_dim, num_heads
        self.head_x, self.head_y = x_dim // num_heads, y_dim // num_heads
        self.w_x = nn.Linear(x_dim, out_dim, bias=False, **factory_kwargs)
        self.w_y = nn.Linear(y_dim, out_dim, bias=False, **factory_kwargs)
        self.w_xy = nn.Parameter(torch.empty(num_heads, out_dim, self.head_x, self.head_y, **factory_kwargs))
        self.bias = nn.Parameter(torch.empty(out_dim, **factory_kwargs)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_normal_(self.w_x.weight)
        nn.init.xavier_normal_(self.w_y.weight)
        fan_a, fan_b = self.out_dim, self.num_heads * self.head_x * self.head_y
        with torch.no_grad():
            self.w_xy.normal_(0.0, math.sqrt(2.0 / (fan_a + fan_b)))
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.x_dim or y.shape[-1] != self.y_dim:
            raise ValueError(
                f"BilinearFusion: expected x[..., {self.x_dim}] and y[..., {self.y_dim}], "
                f"got {tuple(x.shape)} and {tuple(y.shape)}"
            )
        xh = x.unflatten(-1, (self.num_heads, self.head_x))  # [..., k, dx]
        yh = y.unflatten(-1, (self.num_heads, self.head_y))  # [..., k, dy]
        t = torch.einsum("...ki,koij->...koj", xh, self.w_xy)  # [..., k, out, dy]
        heads = torch.einsum("...koj,...kj->...ko", t, yh)  # [..., k, out]
        record_gate(self, heads, "heads")
        out = self.w_x(x) + self.w_y(y) + heads.sum(dim=-2)
        if self.bias is not None:
            out = out + self.bias
        return out

    def extra_repr(self) -> str:
        return (
            f"x_dim={self.x_dim}, y_dim={self.y_dim}, out_dim={self.out_dim}, "
            f"num_heads={self.num_heads}, bias={self.bias is not None}"
        )
