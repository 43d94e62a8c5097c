"""Temporal Fusion Transformer gates (Lim et al. 2021): GLU, GRN, GateAddNorm, VSN.

Two flavours of the same layers live here:

* the paper's (default): the GRN skip connection is the input itself when sizes agree and a
  learned linear projection when they differ, as in the official code
  (``google-research/tft/libs/tft_model.py``, ``gated_residual_network``);
* pytorch-forecasting's (``skip="interpolate"`` and the layout options of
  :class:`VariableSelectionNetwork`): a mismatched skip is *resampled* by linear interpolation
  along the feature axis, scaled by a trainable ``2 * sigmoid(mask)`` and layer-normalised.

Weight ports from pytorch-forecasting are not here (core knows no model zoo): see
:mod:`gatelab.timeseries.models.tft_port`.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .kernels import dispatch
from .kernels.gate_add_norm import gate_add_norm
from .kernels.glu import glu_product
from .layers.activations import ActLike, create_act
from .layers.capture import is_capturing, record_gate
from .layers.checks import check_positive_int
from .layers.dropout import FastDropout
from .layers.fusion import is_plain

__all__ = [
    "GateAddNorm",
    "GatedLinearUnit",
    "GatedResidualNetwork",
    "VariableSelectionNetwork",
]

SkipMode = Literal["linear", "interpolate"]
_SKIP_MODES = ("linear", "interpolate")


def _check_skip(owner: str, skip: str) -> None:
    if skip not in _SKIP_MODES:
        raise ValueError(f"{owner}: skip must be one of {_SKIP_MODES}, got {skip!r}")


def _check_dropout(owner: str, dropout: float) -> float:
    if dropout is None:
        return 0.0
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"{owner}: dropout must be in [0, 1), got {dropout!r}")
    return float(dropout)


def _interpolate_last(x: torch.Tensor, size: int) -> torch.Tensor:
    """Linear interpolation (``align_corners=True``) of the last axis of ``x`` to ``size`` points.

    The feature vector is treated as a 1-D signal, exactly as pytorch-forecasting's
    ``TimeDistributedInterpolation`` does.
    """
    lead = x.shape[:-1]
    y = F.interpolate(x.reshape(-1, 1, x.shape[-1]), size, mode="linear", align_corners=True)
    return y.reshape(*lead, size)


def _interp_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """``[n_in, n_out]`` matrix ``M`` with ``x @ M == _interpolate_last(x, n_out)`` (float64).

    Built by interpolating the identity, so its weights are the ones ``F.interpolate`` uses.
    """
    eye = torch.eye(n_in, dtype=torch.float64)
    return F.interpolate(eye.unsqueeze(1), n_out, mode="linear", align_corners=True).squeeze(1)


class _Interpolate(nn.Module):
    """Parameter-free resampling of the feature axis to ``size`` (linear, ``align_corners``).

    With ``dim`` (the input width) known, the resampling is one matmul ``x @ M`` with the cached
    interpolation matrix ``M`` ``[dim, size]`` (:func:`_interp_matrix`, kept in float64 and
    rounded once per dtype and device, not a buffer):
    on CPU much cheaper than ``F.interpolate`` (forward and backward). It equals
    :func:`_interpolate_last` up to float rounding (each output sums two weighted inputs; the
    matmul adds exact zeros for the others). Without ``dim``, or for another width, it calls
    :func:`_interpolate_last`.
    """

    def __init__(self, size: int, dim: int | None = None) -> None:
        super().__init__()
        self.size = size
        self.dim = dim
        self._matrix64 = _interp_matrix(dim, size) if dim is not None else None
        self._matrices: dict[tuple[torch.dtype, torch.device], torch.Tensor] = {}

    def _matrix(self, x: torch.Tensor) -> torch.Tensor:
        """The float64 matrix rounded once to ``x``'s dtype and moved to its device (cached)."""
        key = (x.dtype, x.device)
        m = self._matrices.get(key)
        if m is None:
            m = self._matrices[key] = self._matrix64.to(device=x.device, dtype=x.dtype)
        return m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._matrix64 is None or x.shape[-1] != self.dim or not x.is_floating_point():
            return _interpolate_last(x, self.size)
        if torch.compiler.is_compiling():
            return torch.matmul(x, self._matrix64.to(device=x.device, dtype=x.dtype))
        return torch.matmul(x, self._matrix(x))

    def extra_repr(self) -> str:
        return f"size={self.size}"


class _ResampleNorm(nn.Module):
    """``LayerNorm(2 * sigmoid(mask) * interpolate(x))`` (pytorch-forecasting's ``ResampleNorm``).

    With ``dim == out_dim`` there is no interpolation (the mask and norm remain).
    """

    def __init__(
        self,
        dim: int,
        out_dim: int,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory_kwargs = {"device": device, "dtype": dtype}
        self.dim = dim
        self.out_dim = out_dim
        self.resample = _Interpolate(out_dim, dim) if dim != out_dim else None
        self.mask = nn.Parameter(torch.zeros(out_dim, **factory_kwargs))
        self.norm = nn.LayerNorm(out_dim, **factory_kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.resample is not None:
            x = self.resample(x)
        return self.norm(x * (2.0 * torch.sigmoid(self.mask)))


# --------------------------------------------------------------------------------------------
# GLU
# --------------------------------------------------------------------------------------------
class GatedLinearUnit(nn.Module):
    r"""The TFT gated linear unit: ``GLU(x) = (W_5 x' + b_5) * sigmoid(W_4 x' + b_4)``, ``x' = dropout(x)``.

    One ``Linear(dim, 2 * out_dim)`` produces both halves; the first half is the value,
    the second the gate (the layout of ``torch.nn.functional.glu`` and of pytorch-forecasting's
    ``GatedLinearUnit``, so its weights load unchanged).

    Args:
        dim: features of ``x``.
        out_dim: features of the output (default ``dim``).
        gate_act: squashing of the gate half (default sigmoid).
        bias: biases ``b_4, b_5``.
        dropout: dropout applied to the input, as the paper's "dropout before the gating layer"
            (:class:`~gatelab.core.layers.dropout.FastDropout`: cheap CPU masks, the rate
            rounded to a multiple of ``2^-16``).

    Shapes: ``x`` is ``[..., dim]``; returns ``[..., out_dim]``. The gate
    ``sigmoid(W_4 x' + b_4)``, ``[..., out_dim]``, is recorded with
    :func:`gatelab.core.record_gate`.

    Paper: Lim et al., "Temporal Fusion Transformers for interpretable multi-horizon time series
    forecasting", International Journal of Forecasting 37(4), 2021, eq. (5). Initialisation as
    the official code (Keras ``Dense``): Glorot-uniform weights, zero biases.

    Deviations: none.
    """

    def __init__(
        self,
        dim: int,
        out_dim: int | None = None,
        *,
        gate_act: ActLike = "sigmoid",
        bias: bool = True,
        dropout: float = 0.0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory_kwargs = {"device": device, "dtype": dtype}
        check_positive_int("GatedLinearUnit", "dim", dim)
        check_positive_int("GatedLinearUnit", "out_dim", out_dim, allow_none=True)
        self.dim = dim
        self.out_dim = out_dim or dim
        self.dropout = FastDropout(_check_dropout("GatedLinearUnit", dropout))
        self.fc = nn.Linear(dim, 2 * self.out_dim, bias=bias, **factory_kwargs)
        self.gate_act = create_act(gate_act)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.fc.weight)
        if self.fc.bias is not None:
            nn.init.zeros_(self.fc.bias)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """``fc(dropout(x))`` ``[..., 2 * out_dim]`` (value half first), after checking ``x``'s width."""
        if x.shape[-1] != self.dim:
            raise ValueError(f"GatedLinearUnit: expected x[..., {self.dim}], got shape {tuple(x.shape)}")
        return self.fc(self.dropout(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.project(x).chunk(2, dim=-1)
        out, g = glu_product(gate, value, self.gate_act, return_gate=True)
        record_gate(self, g)
        return out


# --------------------------------------------------------------------------------------------
# Gate + add + norm
# --------------------------------------------------------------------------------------------
class GateAddNorm(nn.Module):
    r"""``GateAddNorm(x, s) = LayerNorm(GLU(x) + m * R(s))`` -- TFT's gated skip connection.

    ``R`` maps the skip ``s`` to ``out_dim``: identity when ``skip_dim == out_dim``,
    otherwise a learned linear projection (``skip="linear"``) or a parameter-free linear
    interpolation along the feature axis (``skip="interpolate"``, pytorch-forecasting's
    ``AddNorm``). ``m = 2 * sigmoid(mask)`` is a trainable per-feature scale when
    ``trainable_add=True`` (pytorch-forecasting; starts at 1), else 1.

    Args:
        dim: features of ``x`` (the GLU input).
        out_dim: features of the output and of the GLU (default ``dim``).
        skip_dim: features of ``s`` (default ``out_dim``).
        gate_act: the GLU's gate squashing (default sigmoid).
        bias: GLU (and linear-skip) biases.
        dropout: dropout on the GLU input.
        trainable_add: the ``2 * sigmoid(mask)`` skip scale (pytorch-forecasting option).
        skip: ``"linear"`` (default) or ``"interpolate"``; only used when sizes differ.

    Shapes: ``x`` ``[..., dim]``, ``skip`` ``[..., skip_dim]`` -> ``[..., out_dim]``.
    The GLU records its gate (module ``<name>.glu``).

    Paper: Lim et al. 2021, eq. (2), ``LayerNorm(a + GLU(eta_1))``.

    Paths: one math, op ``gate_add_norm`` (:mod:`gatelab.core.kernels.gate_add_norm`) on the
    GLU's projection ``glu.fc(glu.dropout(x))`` (always called). The fused op runs for a sigmoid
    gate outside a capture; a capture or another ``gate_act`` uses the op's reference, which
    returns the gate; hooks on (or a replacement of) ``glu`` or ``norm`` make the layer call them:
    ``norm(glu(x) + R(s))``, the same math.

    Deviations: the paper always adds tensors of equal size; ``skip_dim``, ``skip`` and
    ``trainable_add`` are extensions (the last two reproduce pytorch-forecasting).
    """

    def __init__(
        self,
        dim: int,
        out_dim: int | None = None,
        *,
        skip_dim: int | None = None,
        gate_act: ActLike = "sigmoid",
        bias: bool = True,
        dropout: float = 0.0,
        trainable_add: bool = False,
        skip: SkipMode = "linear",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory_kwargs = {"device": device, "dtype": dtype}
        check_positive_int("GateAddNorm", "dim", dim)
        check_positive_int("GateAddNorm", "out_dim", out_dim, allow_none=True)
        check_positive_int("GateAddNorm", "skip_dim", skip_dim, allow_none=True)
        _check_skip("GateAddNorm", skip)
        self.dim = dim
        self.out_dim = out_dim or dim
        self.skip_dim = skip_dim or self.out_dim
        self.skip_mode = skip
        self.trainable_add = trainable_add
        self.glu = GatedLinearUnit(
            dim, self.out_dim, gate_act=gate_act, bias=bias, dropout=dropout, **factory_kwargs
        )
        self.resample: nn.Module | None = None
        if self.skip_dim != self.out_dim:
            if skip == "linear":
                self.resample = nn.Linear(self.skip_dim, self.out_dim, bias=bias, **factory_kwargs)
                nn.init.xavier_uniform_(self.resample.weight)
                if self.resample.bias is not None:
                    nn.init.zeros_(self.resample.bias)
            else:
                self.resample = _Interpolate(self.out_dim, self.skip_dim)
        self.mask = nn.Parameter(torch.zeros(self.out_dim, **factory_kwargs)) if trainable_add else None
        self.norm = nn.LayerNorm(self.out_dim, **factory_kwargs)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        if skip.shape[-1] != self.skip_dim:
            raise ValueError(
                f"GateAddNorm: expected skip[..., {self.skip_dim}], got shape {tuple(skip.shape)}"
            )
        if self.resample is not None:
            skip = self.resample(skip)
        if self.mask is not None:
            skip = skip * (2.0 * torch.sigmoid(self.mask))
        glu, norm = self.glu, self.norm
        if not (is_plain(glu, GatedLinearUnit) and is_plain(norm, nn.LayerNorm)):
            # hooks on / a replacement of the GLU or the norm: call them (the same math)
            return norm(glu(x) + skip)
        h = glu.project(x)  # fc and dropout are called: their hooks fire, a replaced fc is used
        if not is_capturing() and is_plain(glu.gate_act, nn.Sigmoid):  # one op (Triton on CUDA)
            return dispatch("gate_add_norm", h, skip, norm.weight, norm.bias, norm.eps)
        out, gate = gate_add_norm(
            h, skip, norm.weight, norm.bias, norm.eps, gate_act=glu.gate_act, return_gate=True
        )
        record_gate(glu, gate)
        return out


# --------------------------------------------------------------------------------------------
# GRN
# --------------------------------------------------------------------------------------------
class GatedResidualNetwork(nn.Module):
    r"""TFT gated residual network.

    ::

        eta_2 = ELU(W_2 a + W_3 c + b_2)                   [..., hidden_dim]   (W_3 c only with context)
        eta_1 = W_1 eta_2 + b_1                            [..., hidden_dim]
        GRN(a, c) = LayerNorm(S(a) + GLU(eta_1))           [..., out_dim]

    ``GLU`` is :class:`GatedLinearUnit` (with dropout on its input) and the LayerNorm/add is
    :class:`GateAddNorm`. Sub-modules (pytorch-forecasting's names): ``fc1`` = ``W_2, b_2``,
    ``context`` = ``W_3``, ``fc2`` = ``W_1, b_1``, ``gate_norm``, ``skip``. The skip ``S(a)`` is ``a`` when ``dim == out_dim``;
    otherwise ``skip="linear"`` (default, the official code) uses a learned ``Linear`` and
    ``skip="interpolate"`` (pytorch-forecasting) uses
    ``LayerNorm(2 * sigmoid(mask) * interpolate(a))`` with a linear interpolation of the feature
    axis.

    Args:
        dim: features of ``a``.
        hidden_dim: width of ``eta_1, eta_2`` (default ``dim``).
        out_dim: output features (default ``dim``).
        context_dim: features of the optional static context ``c`` (``None``: no context).
        act: activation of ``eta_2`` (default ELU).
        gate_act: the GLU's gate squashing (default sigmoid).
        bias: biases of ``W_1, W_2``, the GLU and the linear skip (``W_3`` never has one).
        dropout: dropout on the GLU input.
        skip: ``"linear"`` or ``"interpolate"`` (see above).

    Shapes: ``a`` ``[..., dim]``; ``context`` ``[..., context_dim]`` broadcastable
    against ``a``'s leading dims (e.g. ``[B, 1, C]`` for ``a`` of ``[B, T, D]``) or ``None``;
    returns ``[..., out_dim]``. The GLU gate is recorded (module ``<name>.gate_norm.glu``).

    Paper: Lim et al. 2021, eqs. (2)-(4); official code ``gated_residual_network``.
    Initialisation as the official code (Keras ``Dense``): Glorot-uniform weights, zero biases.

    Deviations: ``skip="interpolate"`` reproduces pytorch-forecasting instead of the paper's
    projection. pytorch-forecasting also initialises ``W_1, W_2`` He-normal instead of
    Glorot-uniform; we keep the official code's init (it only matters when training from scratch).
    pytorch-forecasting's ``residual=True`` flag / ``residual`` forward argument (a skip other
    than ``a``) is not supported.
    """

    def __init__(
        self,
        dim: int,
        hidden_dim: int | None = None,
        out_dim: int | None = None,
        *,
        context_dim: int | None = None,
        act: ActLike = "elu",
        gate_act: ActLike = "sigmoid",
        bias: bool = True,
        dropout: float = 0.0,
        skip: SkipMode = "linear",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory_kwargs = {"device": device, "dtype": dtype}
        for name, value in (("hidden_dim", hidden_dim), ("out_dim", out_dim)):
            check_positive_int("GatedResidualNetwork", name, value, allow_none=True)
        check_positive_int("GatedResidualNetwork", "dim", dim)
        check_positive_int("GatedResidualNetwork", "context_dim", context_dim, allow_none=True)
        _check_skip("GatedResidualNetwork", skip)
        self.dim = dim
        self.hidden_dim = hidden_dim or dim
        self.out_dim = out_dim or dim
        self.context_dim = context_dim
        self.skip_mode = skip

        self.fc1 = nn.Linear(dim, self.hidden_dim, bias=bias, **factory_kwargs)
        self.context = (
            nn.Linear(context_dim, self.hidden_dim, bias=False, **factory_kwargs) if context_dim else None
        )
        self.act = create_act(act)
        self.fc2 = nn.Linear(self.hidden_dim, self.hidden_dim, bias=bias, **factory_kwargs)
        self.gate_norm = GateAddNorm(
            self.hidden_dim,
            self.out_dim,
            gate_act=gate_act,
            bias=bias,
            dropout=dropout,
            **factory_kwargs,
        )
        self.skip: nn.Module | None = None
        if dim != self.out_dim:
            if skip == "linear":
                self.skip = nn.Linear(dim, self.out_dim, bias=bias, **factory_kwargs)
            else:
                self.skip = _ResampleNorm(dim, self.out_dim, **factory_kwargs)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for lin in (self.fc1, self.fc2, self.context, self.skip):
            if isinstance(lin, nn.Linear):
                nn.init.xavier_uniform_(lin.weight)
                if lin.bias is not None:
                    nn.init.zeros_(lin.bias)
        self.gate_norm.glu.reset_parameters()

    def forward(self, a: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        if a.shape[-1] != self.dim:
            raise ValueError(f"GatedResidualNetwork: expected a[..., {self.dim}], got shape {tuple(a.shape)}")
        residual = a if self.skip is None else self.skip(a)
        h = self.fc1(a)
        if context is not None:
            if self.context is None:
                raise ValueError("GatedResidualNetwork: got a context but was built with context_dim=None")
            if context.shape[-1] != self.context_dim:
                raise ValueError(
                    f"GatedResidualNetwork: expected context[..., {self.context_dim}], got shape {tuple(context.shape)}"
                )
            h = h + self.context(context)
        h = self.fc2(self.act(h))
        return self.gate_norm(h, residual)


# --------------------------------------------------------------------------------------------
# VSN
# --------------------------------------------------------------------------------------------
def _select(owner: str, what: str, spec: Collection[str | int], names: list[str]) -> list[int]:
    """Indices of the variables named (or indexed) in ``spec``; errors name the bad entry."""
    out = []
    for item in spec:
        if isinstance(item, bool) or not isinstance(item, (str, int)):
            raise TypeError(f"{owner}: {what} entries must be variable names or indices, got {item!r}")
        if isinstance(item, int):
            if not 0 <= item < len(names):
                raise ValueError(f"{owner}: {what} index {item} out of range for {len(names)} variables")
            out.append(item)
        else:
            if item not in names:
                raise ValueError(f"{owner}: {what} names unknown variable {item!r}; variables: {names}")
            out.append(names.index(item))
    return sorted(set(out))


def _variable_dims(owner: str, input_dims: Mapping[str, int] | Sequence[int]) -> tuple[list[str], list[int]]:
    """``(names, widths)`` of a VSN's variables; a sequence gets the names ``"0"``, ``"1"``, ..."""
    if isinstance(input_dims, Mapping):
        names = [str(k) for k in input_dims]
        sizes = list(input_dims.values())
    else:
        sizes = list(input_dims)
        names = [str(i) for i in range(len(sizes))]
    if not sizes:
        raise ValueError(f"{owner}: input_dims is empty")
    for n, s in zip(names, sizes):
        check_positive_int(owner, f"input_dims[{n!r}]", s)
    return names, sizes


def _grn_widths(owner: str, spec: int | Sequence[int] | None, default: int, names: list[str]) -> list[int]:
    """Per-variable GRN widths from an int, a sequence (one per variable) or ``None`` (``default``)."""
    if spec is None:
        spec = default
    hid = [spec] * len(names) if isinstance(spec, int) else list(spec)
    if len(hid) != len(names):
        raise ValueError(f"{owner}: grn_hidden_dims has {len(hid)} entries for {len(names)} variables")
    for n, h in zip(names, hid):
        check_positive_int(owner, f"grn_hidden_dims[{n!r}]", h)
    return hid


def _span(idx: list[int], V: int) -> bool | slice:
    """``True`` if ``idx`` is every variable, a ``slice`` if a contiguous range, else ``False``."""
    if len(idx) == V:
        return True
    if idx and idx == list(range(idx[0], idx[-1] + 1)):
        return slice(idx[0], idx[-1] + 1)
    return False


class VariableSelectionNetwork(nn.Module):
    r"""TFT variable selection network, all per-variable GRNs computed in one batched op.

    For variables ``j = 1..V`` with embeddings ``xi_j`` (``[..., d_j]``) and flattened
    ``Xi = [xi_1; ...; xi_V]``::

        v      = softmax(GRN_v(Xi, c))                            [..., V]   variable weights
        xi~_j  = GRN_j(xi_j)          (no context)                [..., hidden_dim]
        out    = sum_j v_j xi~_j                                  [..., hidden_dim]

    ``GRN_v`` is a :class:`GatedResidualNetwork` ``(sum d_j) -> V`` with the optional static
    context ``c``; the ``GRN_j`` (``d_j -> hidden_dim``) are stored as grouped weights
    ``[V, d_max, h_max]`` (input-major, i.e. ``x @ W``) and evaluated with one ``einsum`` per
    layer. Variables with smaller ``d_j`` or GRN width ``h_j`` are zero-padded, and the padding
    is masked in the weights, so every variable's result is exactly its own GRN.

    Options that reproduce pytorch-forecasting's layout:

    * ``skip="interpolate"``: the skip of ``GRN_j`` (and ``GRN_v``) when ``d_j != hidden_dim``
      is ``LayerNorm(2 sigmoid(m_j) * interpolate(xi_j))`` instead of a learned projection;
    * ``prescale``: variables given as a single real ``[..., 1]`` that are first lifted to
      ``d_j`` features by a per-variable ``Linear(1, d_j)`` (pytorch-forecasting's
      ``prescalers`` for continuous inputs);
    * ``resample_only``: variables that get no GRN, only ``LayerNorm(m_j * R_j(xi_j))`` with
      ``R_j`` the skip map (pytorch-forecasting's ``input_embedding_flags``, used for
      categorical embeddings; ``m_j = 2 sigmoid(mask_j)`` with ``skip="interpolate"``, else 1);
    * ``grn_hidden_dims`` (pytorch-forecasting: ``min(d_j, hidden_dim)``) and
      ``weight_hidden_dim`` (pytorch-forecasting: ``min(hidden_dim, V)``).

    Args:
        input_dims: ``{name: d_j}`` (ordered) or a sequence of ``d_j`` (names ``"0"``, ``"1"``, ...).
        hidden_dim: output width (``d_model``).
        context_dim: features of the static context ``c`` (``None``: no context).
        act, gate_act, bias, dropout: as in :class:`GatedResidualNetwork`, for every GRN.
        skip: ``"linear"`` (paper) or ``"interpolate"`` (pytorch-forecasting).
        prescale: names or indices of variables given as ``[..., 1]`` reals.
        resample_only: names or indices of variables without a GRN (see above).
        grn_hidden_dims: GRN width per variable (int or sequence; default ``hidden_dim``).
        weight_hidden_dim: width of the weight GRN ``GRN_v`` (default ``hidden_dim``).

    Shapes: ``x`` is a mapping ``{name: [..., s_j]}``, a sequence of ``[..., s_j]`` tensors in
    variable order, or one tensor ``[..., sum s_j]`` holding them concatenated, where
    ``s_j = 1`` for ``prescale`` variables and ``d_j`` otherwise; ``context`` is
    ``[..., context_dim]`` broadcastable against the leading dims (or ``None``). Returns
    ``(out, weights)``: ``[..., hidden_dim]`` and ``[..., V]``. ``weights`` is recorded with
    suffix ``"weights"``, the per-variable GLU gates ``[..., V_grn, hidden_dim]`` with suffix
    ``"glu"``; ``GRN_v``'s own GLU records under ``<name>.weight_grn.gate_norm.glu``.

    Paper: Lim et al. 2021, Sec. 4.2, eqs. (6)-(8).

    Deviations: the batched layout (pytorch-forecasting and the official code loop over
    variables). With one variable there is no weight GRN and the weights are 1 (as
    pytorch-forecasting). pytorch-forecasting returns the weights as ``[..., 1, V]``; we
    return ``[..., V]``. The ``skip="interpolate"``, ``prescale``, ``resample_only`` and
    hidden-size options exist to reproduce pytorch-forecasting; the paper's VSN is the default.
    """

    def __init__(
        self,
        input_dims: Mapping[str, int] | Sequence[int],
        hidden_dim: int,
        *,
        context_dim: int | None = None,
        act: ActLike = "elu",
        gate_act: ActLike = "sigmoid",
        bias: bool = True,
        dropout: float = 0.0,
        skip: SkipMode = "linear",
        prescale: Collection[str | int] = (),
        resample_only: Collection[str | int] = (),
        grn_hidden_dims: int | Sequence[int] | None = None,
        weight_hidden_dim: int | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        owner = "VariableSelectionNetwork"
        factory_kwargs = {"device": device, "dtype": dtype}
        names, sizes = _variable_dims(owner, input_dims)
        check_positive_int(owner, "hidden_dim", hidden_dim)
        check_positive_int(owner, "context_dim", context_dim, allow_none=True)
        check_positive_int(owner, "weight_hidden_dim", weight_hidden_dim, allow_none=True)
        _check_skip(owner, skip)
        dropout = _check_dropout(owner, dropout)
        self.names = names
        self.input_dims = sizes
        self.hidden_dim = hidden_dim
        self.context_dim = context_dim
        self.skip_mode = skip
        pre = _select(owner, "prescale", prescale, names)
        res_only = _select(owner, "resample_only", resample_only, names)
        self.grn_hidden_dims = _grn_widths(owner, grn_hidden_dims, hidden_dim, names)
        self.prescale = [names[j] for j in pre]
        self.resample_only = [names[j] for j in res_only]

        # parameters and buffers in the order of the state dict (weight ports rely on the keys)
        self._build_layout(pre, factory_kwargs)
        self._build_prescalers(pre, factory_kwargs)
        self._build_skips(bias, factory_kwargs)
        self._build_resample_norms(res_only, factory_kwargs)
        self._build_grns([j for j in range(len(sizes)) if j not in res_only], bias, factory_kwargs)
        self.act = create_act(act)
        self.gate_act = create_act(gate_act)
        self.dropout = FastDropout(dropout)
        # weight GRN over the flattened embeddings (none for a single variable)
        grn_kwargs = {"act": act, "gate_act": gate_act, "bias": bias, "dropout": dropout, "skip": skip}
        self.weight_grn = (
            GatedResidualNetwork(
                sum(sizes),
                weight_hidden_dim or hidden_dim,
                len(sizes),
                context_dim=context_dim,
                **grn_kwargs,
                **factory_kwargs,
            )
            if len(sizes) > 1
            else None
        )
        self.reset_parameters()

    # --- construction helpers (called once, in this order, by __init__) ------------------------
    def _build_layout(self, pre: list[int], factory_kwargs: dict) -> None:
        """Index buffers mapping the raw inputs to the variable-major ``[V, d_max]`` layout.

        ``_gather_idx`` ``[V * d_max]`` indexes the raw inputs with a zero column appended at the
        end (padding and prescaled variables' extra slots read it or their single real),
        ``_valid`` ``[V, d_max]`` marks real features, ``_flat_idx`` picks the unpadded features
        back out for the weight GRN.
        """
        sizes, V = self.input_dims, len(self.input_dims)
        d_max = self._d_max = max(sizes)
        raw = self._raw_sizes = [1 if j in pre else sizes[j] for j in range(V)]
        offsets = [sum(raw[:j]) for j in range(V)]
        gather = torch.full((V, d_max), sum(raw), dtype=torch.long)
        valid = torch.zeros(V, d_max)
        for j in range(V):
            valid[j, : sizes[j]] = 1.0
            if j in pre:
                gather[j, : sizes[j]] = offsets[j]
            else:
                gather[j, : sizes[j]] = torch.arange(offsets[j], offsets[j] + sizes[j])
        self.register_buffer("_gather_idx", gather.reshape(-1), persistent=False)
        self.register_buffer("_valid", valid.to(**factory_kwargs), persistent=False)
        flat_idx = torch.cat([torch.arange(sizes[j]) + j * d_max for j in range(V)])
        self.register_buffer("_flat_idx", flat_idx, persistent=False)

    def _build_prescalers(self, pre: list[int], factory_kwargs: dict) -> None:
        """``Linear(1, d_j)`` per prescaled real variable, stored ``[V_pre, d_max]``."""
        if pre:
            self.register_buffer("_pre_idx", torch.tensor(pre, dtype=torch.long), persistent=False)
            self.prescale_weight = nn.Parameter(torch.empty(len(pre), self._d_max, **factory_kwargs))
            self.prescale_bias = nn.Parameter(torch.empty(len(pre), self._d_max, **factory_kwargs))
        else:
            self.register_buffer("_pre_idx", None, persistent=False)
            self.register_parameter("prescale_weight", None)
            self.register_parameter("prescale_bias", None)

    def _build_skips(self, bias: bool, factory_kwargs: dict) -> None:
        """Skip maps ``R_j``: identity, interpolation (fixed buffer) or learned projection."""
        sizes, H, V, d_max = self.input_dims, self.hidden_dim, len(self.input_dims), self._d_max
        proj = [j for j in range(V) if sizes[j] != H] if self.skip_mode == "linear" else []
        self._skip_identity = all(s == H for s in sizes)
        fixed = torch.zeros(V, d_max, H, dtype=torch.float64)
        for j in range(V):
            if sizes[j] == H:
                fixed[j, :H] = torch.eye(H)
            elif self.skip_mode == "interpolate":
                fixed[j, : sizes[j]] = _interp_matrix(sizes[j], H)
        buf_dtype = factory_kwargs["dtype"] or torch.get_default_dtype()
        fixed = fixed.to(device=factory_kwargs["device"], dtype=buf_dtype)
        self.register_buffer("_skip_fixed", fixed, persistent=False)
        if proj:
            self.register_buffer("_proj_idx", torch.tensor(proj, dtype=torch.long), persistent=False)
            self.skip_weight = nn.Parameter(torch.empty(len(proj), d_max, H, **factory_kwargs))
            self.skip_bias = nn.Parameter(torch.empty(len(proj), H, **factory_kwargs)) if bias else None
        else:
            self.register_buffer("_proj_idx", None, persistent=False)
            self.register_parameter("skip_weight", None)
            self.register_parameter("skip_bias", None)
        self._proj_fan = [(sizes[j], H) for j in proj]

    def _build_resample_norms(self, res_only: list[int], factory_kwargs: dict) -> None:
        """``LayerNorm(m_j * R_j(xi_j))`` for interpolated skips and resample-only variables."""
        sizes, H, V = self.input_dims, self.hidden_dim, len(self.input_dims)
        interpolate = self.skip_mode == "interpolate"
        rn = set(res_only)
        if interpolate:
            rn |= {j for j in range(V) if sizes[j] != H}
        rn_sorted = sorted(rn)
        self._rn_all = _span(rn_sorted, V)
        if rn_sorted:
            self.register_buffer("_rn_idx", torch.tensor(rn_sorted, dtype=torch.long), persistent=False)
            if interpolate:
                self.resample_mask = nn.Parameter(torch.zeros(len(rn_sorted), H, **factory_kwargs))
            else:
                self.register_parameter("resample_mask", None)
            self.resample_norm_weight = nn.Parameter(torch.ones(len(rn_sorted), H, **factory_kwargs))
            self.resample_norm_bias = nn.Parameter(torch.zeros(len(rn_sorted), H, **factory_kwargs))
        else:
            self.register_buffer("_rn_idx", None, persistent=False)
            self.register_parameter("resample_mask", None)
            self.register_parameter("resample_norm_weight", None)
            self.register_parameter("resample_norm_bias", None)

    def _build_grns(self, grn_idx: list[int], bias: bool, factory_kwargs: dict) -> None:
        """Grouped per-variable GRN weights ``[V_grn, ...]``, zero-padded to ``d_max``/``h_max``."""
        sizes, hid, H = self.input_dims, self.grn_hidden_dims, self.hidden_dim
        self._grn_all = _span(grn_idx, len(sizes))
        self._grn_vars = grn_idx
        if not grn_idx:
            return
        g, d_max = len(grn_idx), self._d_max
        h_max = self._h_max = max(hid[j] for j in grn_idx)
        self.register_buffer("_grn_idx", torch.tensor(grn_idx, dtype=torch.long), persistent=False)
        w1_mask = torch.zeros(g, d_max, h_max)
        h_mask = torch.zeros(g, h_max)
        for i, j in enumerate(grn_idx):
            w1_mask[i, : sizes[j], : hid[j]] = 1.0
            h_mask[i, : hid[j]] = 1.0
        w2_mask = h_mask[:, :, None] * h_mask[:, None, :]
        self.register_buffer("_w1_mask", w1_mask.to(**factory_kwargs), persistent=False)
        self.register_buffer("_h_mask", h_mask.to(**factory_kwargs), persistent=False)
        self.register_buffer("_w2_mask", w2_mask.to(**factory_kwargs), persistent=False)
        self.fc1_weight = nn.Parameter(torch.empty(g, d_max, h_max, **factory_kwargs))
        self.fc2_weight = nn.Parameter(torch.empty(g, h_max, h_max, **factory_kwargs))
        self.glu_weight = nn.Parameter(torch.empty(g, h_max, 2 * H, **factory_kwargs))
        for name, shape in (("fc1_bias", (g, h_max)), ("fc2_bias", (g, h_max)), ("glu_bias", (g, 2 * H))):
            self.register_parameter(
                name, nn.Parameter(torch.empty(*shape, **factory_kwargs)) if bias else None
            )
        self.norm_weight = nn.Parameter(torch.ones(g, H, **factory_kwargs))
        self.norm_bias = nn.Parameter(torch.zeros(g, H, **factory_kwargs))

    @property
    def num_inputs(self) -> int:
        return len(self.input_dims)

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Glorot-uniform weights per variable (from its own fan-in/fan-out), zero biases."""

        def glorot_(w: torch.Tensor, fans: list[tuple[int, int]], mask: torch.Tensor | None) -> None:
            bound = torch.tensor([math.sqrt(6.0 / (a + b)) for a, b in fans], dtype=w.dtype, device=w.device)
            w.uniform_(-1.0, 1.0).mul_(bound.view(-1, *([1] * (w.dim() - 1))))
            if mask is not None:
                w.mul_(mask)

        sizes, hid, H = self.input_dims, self.grn_hidden_dims, self.hidden_dim
        if self.prescale_weight is not None:
            valid = self._valid[self._pre_idx]
            glorot_(self.prescale_weight, [(1, sizes[j]) for j in self._pre_idx.tolist()], valid)
            self.prescale_bias.zero_()
        if self.skip_weight is not None:
            glorot_(self.skip_weight, self._proj_fan, self._valid[self._proj_idx][..., None])
            if self.skip_bias is not None:
                self.skip_bias.zero_()
        if self._grn_vars:
            g = self._grn_vars
            glorot_(self.fc1_weight, [(sizes[j], hid[j]) for j in g], self._w1_mask)
            glorot_(self.fc2_weight, [(hid[j], hid[j]) for j in g], self._w2_mask)
            glorot_(self.glu_weight, [(hid[j], 2 * H) for j in g], self._h_mask[..., None])
            for b in (self.fc1_bias, self.fc2_bias, self.glu_bias):
                if b is not None:
                    b.zero_()

    # ---------------------------------------------------------------------------------------
    def _flatten_inputs(
        self, x: Mapping[str, torch.Tensor] | Sequence[torch.Tensor] | torch.Tensor
    ) -> torch.Tensor:
        owner = "VariableSelectionNetwork"
        if isinstance(x, torch.Tensor):
            if x.shape[-1] != sum(self._raw_sizes):
                raise ValueError(
                    f"{owner}: a single input tensor must be [..., {sum(self._raw_sizes)}] "
                    f"(raw sizes {dict(zip(self.names, self._raw_sizes))}), got shape {tuple(x.shape)}"
                )
            return x
        if isinstance(x, Mapping):
            missing = [n for n in self.names if n not in x]
            extra = [k for k in x if k not in self.names]
            if missing or extra:
                raise KeyError(f"{owner}: input keys mismatch; missing {missing}, unexpected {extra}")
            parts = [x[n] for n in self.names]
        else:
            parts = list(x)
            if len(parts) != len(self.names):
                raise ValueError(f"{owner}: expected {len(self.names)} input tensors, got {len(parts)}")
        # shape validation only (no tensor work per variable)
        for n, p, s in zip(self.names, parts, self._raw_sizes):
            if p.shape[-1] != s:
                raise ValueError(f"{owner}: variable {n!r} must be [..., {s}], got shape {tuple(p.shape)}")
        return torch.cat(parts, dim=-1)

    def forward(
        self,
        x: Mapping[str, torch.Tensor] | Sequence[torch.Tensor] | torch.Tensor,
        context: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        V, H, d_max = self.num_inputs, self.hidden_dim, self._d_max
        raw = self._flatten_inputs(x)
        lead = raw.shape[:-1]
        flat_raw = raw.reshape(-1, raw.shape[-1])
        n = flat_raw.shape[0]
        padded = torch.cat([flat_raw, flat_raw.new_zeros(n, 1)], dim=-1)
        # variable-major layout [V, n, d]: every per-variable op works on contiguous slabs
        # (bmm/baddbmm, elementwise, layer norm), which is much faster on CPU than strided views
        xv = padded.index_select(-1, self._gather_idx).view(n, V, d_max).transpose(0, 1)
        if self.prescale_weight is not None:
            valid = self._valid.to(xv.dtype)
            pw = torch.ones_like(valid).index_copy(
                0, self._pre_idx, self.prescale_weight * valid[self._pre_idx]
            )
            pb = torch.zeros_like(valid).index_copy(
                0, self._pre_idx, self.prescale_bias * valid[self._pre_idx]
            )
            xv = torch.addcmul(pb[:, None, :], xv, pw[:, None, :])
        else:
            xv = xv.contiguous()

        # skip maps R_j; the resample-norm scale 2 sigmoid(mask_j) is folded into them
        rn_scale = 2.0 * torch.sigmoid(self.resample_mask) if self.resample_mask is not None else None
        if self._skip_identity:
            r = xv
            if rn_scale is not None:
                r = self._put(
                    r,
                    self._rn_idx,
                    self._rn_all,
                    self._take(r, self._rn_idx, self._rn_all) * rn_scale[:, None, :],
                )
        else:
            s = self._skip_fixed.to(xv.dtype)
            if self.skip_weight is not None:
                w = self.skip_weight * self._valid[self._proj_idx].to(xv.dtype)[..., None]
                s = s.index_copy(0, self._proj_idx, w)
            b = None
            if self.skip_bias is not None:
                b = torch.zeros_like(s[:, 0]).index_copy(0, self._proj_idx, self.skip_bias)
            if rn_scale is not None:
                m = torch.ones_like(s[:, 0]).index_copy(0, self._rn_idx, rn_scale)
                s = s * m[:, None, :]
                b = b * m if b is not None else None
            r = torch.bmm(xv, s) if b is None else torch.baddbmm(b[:, None, :], xv, s)
        if self._rn_idx is not None:
            rr = F.layer_norm(self._take(r, self._rn_idx, self._rn_all), (H,))
            # mul + add rather than addcmul: addcmul's backward spends an extra pass per input
            rr = rr * self.resample_norm_weight[:, None, :] + self.resample_norm_bias[:, None, :]
            r = self._put(r, self._rn_idx, self._rn_all, rr)

        # grouped per-variable GRNs
        sl = self._grn_all
        r_parts = None
        if isinstance(sl, slice):
            # a contiguous range of GRN variables: split (one concatenation in the backward)
            # instead of slicing (a zero-filled full-size gradient per slice)
            r_parts = torch.split(r, [sl.start, sl.stop - sl.start, V - sl.stop])
        if self._grn_vars:
            xg = torch.split(xv, [sl.start, sl.stop - sl.start, V - sl.stop])[1] if r_parts else self._take(
                xv, self._grn_idx, sl
            )
            w1 = self.fc1_weight * self._w1_mask
            w2 = self.fc2_weight * self._w2_mask
            wg = self.glu_weight * self._h_mask[..., None]
            if self.fc1_bias is not None:
                h = torch.baddbmm((self.fc1_bias * self._h_mask)[:, None, :], xg, w1)
                h = torch.baddbmm((self.fc2_bias * self._h_mask)[:, None, :], self.act(h), w2)
                h = self.dropout(h)
                value = torch.baddbmm(self.glu_bias[:, None, :H], h, wg[..., :H])
                gate = torch.baddbmm(self.glu_bias[:, None, H:], h, wg[..., H:])
            else:
                h = self.dropout(torch.bmm(self.act(torch.bmm(xg, w1)), w2))
                value, gate = torch.bmm(h, wg[..., :H]), torch.bmm(h, wg[..., H:])
            gate = self.gate_act(gate)
            if is_capturing():
                record_gate(self, gate.transpose(0, 1).reshape(*lead, gate.shape[0], H), "glu")
            y = (r_parts[1] if r_parts else self._take(r, self._grn_idx, sl)) + value * gate
            y = F.layer_norm(y, (H,)) * self.norm_weight[:, None, :] + self.norm_bias[:, None, :]
            # a contiguous range of GRN variables: the weighted sum below reads y and r's other
            # rows in place instead of first concatenating them
            var_out = None if r_parts else self._put(r, self._grn_idx, sl, y)
        else:
            var_out = r  # every variable is resample-only

        # variable weights
        if self.weight_grn is not None:
            if self.prescale_weight is None:
                flat = raw  # the inputs, concatenated, are the flattened embeddings
            else:
                flat = xv.transpose(0, 1).reshape(n, V * d_max).index_select(-1, self._flat_idx)
                flat = flat.reshape(*lead, -1)
            weights = torch.softmax(self.weight_grn(flat, context), dim=-1)
        else:
            if context is not None and self.context_dim is None:
                raise ValueError(
                    "VariableSelectionNetwork: got a context but was built with context_dim=None"
                )
            weights = r.new_ones((*lead, 1))
        record_gate(self, weights, "weights")
        wv = weights.reshape(n, V).t().unsqueeze(-1)  # [V, n, 1]
        if var_out is not None:
            out = (var_out * wv).sum(0)
        else:
            w_parts = torch.split(wv, [sl.start, sl.stop - sl.start, V - sl.stop])
            out = (y * w_parts[1]).sum(0)
            for rp, wp in ((r_parts[0], w_parts[0]), (r_parts[2], w_parts[2])):
                if rp.shape[0]:
                    out = out + (rp * wp).sum(0)
        return out.reshape(*lead, H), weights

    @staticmethod
    def _take(t: torch.Tensor, idx: torch.Tensor | None, every: bool | slice) -> torch.Tensor:
        """Rows ``idx`` of variable-major ``t`` (a view when they are all or a contiguous range)."""
        if every is True:
            return t
        if isinstance(every, slice):
            return t[every]
        return t.index_select(0, idx)

    @staticmethod
    def _put(
        t: torch.Tensor, idx: torch.Tensor | None, every: bool | slice, rows: torch.Tensor
    ) -> torch.Tensor:
        """``t`` with rows ``idx`` replaced by ``rows`` (out of place)."""
        if every is True:
            return rows
        if isinstance(every, slice):
            return torch.cat([t[: every.start], rows, t[every.stop :]], dim=0)
        return t.index_copy(0, idx, rows)

    def extra_repr(self) -> str:
        return (
            f"input_dims={dict(zip(self.names, self.input_dims))}, hidden_dim={self.hidden_dim}, "
            f"context_dim={self.context_dim}, skip={self.skip_mode!r}, prescale={self.prescale}, "
            f"resample_only={self.resample_only}, grn_hidden_dims={self.grn_hidden_dims}"
        )
