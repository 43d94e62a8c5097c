"""FinalMLP's context-aware feature gating (Mao et al. 2023)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import nn

from .kernels import dispatch
from .kernels.feature_gate import feature_gate
from .layers.activations import ActLike, create_act
from .layers.capture import is_capturing, record_gate
from .layers.checks import check_dropout, check_positive_ints
from .layers.fusion import is_plain

__all__ = ["FeatureGate"]


class FeatureGate(nn.Module):
    r"""Feature gating ``x' = x * scale * gate_act(MLP(context))`` (FinalMLP's feature selection).

    ::

        g   = sigmoid(MLP(c))                    [..., dim]  (or [dim], learned context)
        x'  = x * (scale * g) [* 2 sigmoid(m)]   [..., dim]  scale = 2: g = 1/2 keeps x

    ``MLP`` is ``Linear -> act -> dropout`` per hidden width, then ``Linear(dim)``. The
    context ``c`` is either given (the concatenated embeddings of the chosen context fields) or,
    with ``learned_context=True``, a learnable vector (zeros at start), as FuxiCTR does when no
    context field is chosen; the gate then depends on no input (a learned static feature
    weighting). With ``feature_mask=True`` a learnable per-feature factor ``2 sigmoid(m)``
    (``m = 0`` at start, factor 1) multiplies the output, independent of the context.

    Args:
        dim: features of ``x`` (usually ``num_fields * embedding_dim``, flattened).
        context_dim: features of the context (or the size of the learned context vector).
        hidden_dims: hidden widths of the gate MLP (default ``(64,)``; ``()`` is one Linear).
        act: hidden activation (default ReLU).
        gate_act: squashing of the gate (default sigmoid).
        bias: biases of the MLP's linears.
        dropout: dropout after each hidden activation.
        learned_context: use a learnable context vector instead of a ``context`` argument.
        feature_mask: add the learnable per-feature factor ``2 sigmoid(m)``.
        scale: multiplier of the gate (2 in the paper, so the gate spans ``[0, 2]``).

    Shapes: ``x`` ``[..., dim]``; ``context`` ``[..., context_dim]`` with the same
    leading dims (or broadcastable), omitted with ``learned_context``; returns
    ``[..., dim]``. The squashed gate ``g`` (in ``[0, 1]``, before ``scale``) is recorded
    with :func:`gatelab.core.record_gate`, the mask factor with suffix ``"mask"``.

    Paper: Mao et al., "FinalMLP: An Enhanced Two-Stream MLP Model for CTR Prediction", AAAI 2023,
    Sec. "Stream-Specific Feature Selection", eq. (3); official code ``reczoo/FuxiCTR``,
    ``model_zoo/FinalMLP`` (``FeatureSelection``). Initialisation as FuxiCTR: Xavier-normal
    weights, zero biases, zero learned context (so the gate starts at ``scale * sigmoid(0) = 1``).

    Deviations: one gate per module (FinalMLP uses two, one per stream). With
    ``learned_context`` the MLP runs once on the vector and the gate broadcasts over the batch
    (FuxiCTR repeats the vector per row first: same values, but dropout > 0 would draw one mask
    per row there). ``feature_mask`` is an extension (not in the paper).
    """

    def __init__(
        self,
        dim: int,
        context_dim: int,
        hidden_dims: Sequence[int] = (64,),
        *,
        act: ActLike = "relu",
        gate_act: ActLike = "sigmoid",
        bias: bool = True,
        dropout: float = 0.0,
        learned_context: bool = False,
        feature_mask: bool = False,
        scale: float = 2.0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory_kwargs = {"device": device, "dtype": dtype}
        check_positive_ints(
            "FeatureGate",
            ("dim", dim),
            ("context_dim", context_dim),
            *((f"hidden_dims[{i}]", h) for i, h in enumerate(hidden_dims)),
        )
        check_dropout("FeatureGate", dropout)
        self.dim = dim
        self.context_dim = context_dim
        self.scale = float(scale)
        self.learned_context = learned_context
        layers: list[nn.Module] = []
        widths = [context_dim, *hidden_dims]
        for a, b in itertools.pairwise(widths):
            hidden_act = create_act(act)
            if type(hidden_act) is nn.ReLU:  # on the fresh Linear output: no extra [.., b] buffer
                hidden_act.inplace = True
            layers += [nn.Linear(a, b, bias=bias, **factory_kwargs), hidden_act]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(widths[-1], dim, bias=bias, **factory_kwargs))
        self.mlp = nn.Sequential(*layers)
        self.gate_act = create_act(gate_act)
        if learned_context:
            self.context = nn.Parameter(torch.zeros(context_dim, **factory_kwargs))
        else:
            self.register_parameter("context", None)
        if feature_mask:
            self.mask = nn.Parameter(torch.zeros(dim, **factory_kwargs))
        else:
            self.register_parameter("mask", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in self.mlp:
            if isinstance(m, nn.Linear):
                nn.init.xavier_normal_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        if self.context is not None:
            nn.init.zeros_(self.context)
        if self.mask is not None:
            nn.init.zeros_(self.mask)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        if x.shape[-1] != self.dim:
            raise ValueError(f"FeatureGate: expected x[..., {self.dim}], got shape {tuple(x.shape)}")
        if self.context is not None:
            if context is not None:
                raise ValueError("FeatureGate: built with learned_context=True; do not pass a context")
            context = self.context
        elif context is None:
            raise ValueError("FeatureGate: a context tensor is required (or build with learned_context=True)")
        elif context.shape[-1] != self.context_dim:
            raise ValueError(
                f"FeatureGate: expected context[..., {self.context_dim}], got shape {tuple(context.shape)}"
            )
        z = self.mlp(context)
        if not is_capturing() and is_plain(self.gate_act, nn.Sigmoid):  # one op (Triton on CUDA)
            return dispatch("feature_gate", x, z, self.scale, self.mask)
        out, gate, mask_factor = feature_gate(
            x, z, self.scale, self.mask, gate_act=self.gate_act, return_gate=True
        )
        record_gate(self, gate)
        if mask_factor is not None:
            record_gate(self, mask_factor, "mask")
        return out

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, context_dim={self.context_dim}, "
            f"learned_context={self.learned_context}, feature_mask={self.mask is not None}, scale={self.scale}"
        )
