"""GDCN's gated cross layer (Wang et al. 2023)."""

from __future__ import annotations

import torch
from torch import nn

from .kernels import dispatch
from .kernels.dispatch import requested_backend
from .kernels.feature_gate import gated_cross
from .layers.activations import ActLike, create_act
from .layers.capture import is_capturing, record_gate
from .layers.checks import check_positive_int
from .layers.fusion import is_plain

__all__ = ["GatedCrossLayer", "GatedCrossNetwork", "fused_gated_cross"]


class _FusedGatedCross(torch.autograd.Function):
    """Forward/backward of :func:`fused_gated_cross` on 2-D operands ``[N, D]``.

    Forward: one ``mm`` gives ``y = [cl W_c^T | cl W_g^T]`` (``[N, 2D]``); the bias is added to the
    first half and the gate half squashed in place (``y = [u | s]``, ``u = W_c cl + b``,
    ``s = sigmoid(W_g cl)``) and the output is one new tensor updated in place (``c0 * u``,
    ``* s``, ``+ cl``). Saved: ``c0``, ``cl``, ``weight`` and ``y`` -- no other temporary survives
    the forward.

    Backward (5 element-wise passes; new buffers: ``q`` ``[N, D]`` and ``dy`` ``[N, 2D]``):
    ``q = dout s``, ``du = q c0``, ``dc0 = q u`` (in place), ``dg = du u (1 - s)``, with
    ``du`` and ``dg`` written into the halves of one ``dy = [du | dg]``, so that
    ``dcl = dout + dy [W_c ; W_g]`` and ``dW = dy^T cl`` (``[2D, D]``) are one matmul each
    (``K = 2D``, instead of two of ``K = D``), and ``db = sum_N du``.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        c0: torch.Tensor,
        cl: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
    ) -> torch.Tensor:
        d = cl.shape[-1]
        y = torch.mm(cl, weight.t())  # [N, 2D]
        u, s = y[:, :d], y[:, d:]
        if bias is not None:
            u.add_(bias)  # one [N, D] pass (addmm would first copy a [2D] bias row into all of y)
        s.sigmoid_()
        out = torch.mul(c0, u)
        out.mul_(s).add_(cl)
        ctx.save_for_backward(c0, cl, weight, y)
        ctx.has_bias = bias is not None
        return out

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, dout: torch.Tensor
    ) -> tuple[torch.Tensor | None, ...]:
        c0, cl, weight, y = ctx.saved_tensors
        d = cl.shape[-1]
        u, s = y[:, :d], y[:, d:]
        need_c0, need_cl, need_w, need_b = ctx.needs_input_grad
        q = torch.mul(dout, s)  # dout s
        dy = torch.empty_like(y)  # [N, 2D] = [du | dg]: the gradient of y = cl [W_c | W_g]^T
        du, dg = dy[:, :d], dy[:, d:]
        torch.mul(q, c0, out=du)  # d out / d u = dout c0 s
        dc0 = q.mul_(u) if need_c0 else None  # dout u s
        torch.mul(du, u, out=dg)  # dout c0 u s
        dg.addcmul_(dg, s, value=-1.0)  # ... (1 - s): d out / d (W_g cl)
        dcl = torch.addmm(dout, dy, weight) if need_cl else None  # dout + du W_c + dg W_g: one matmul
        dw = torch.mm(dy.t(), cl) if need_w else None  # [du^T cl ; dg^T cl]: one matmul
        db = du.sum(0) if ctx.has_bias and need_b else None
        return dc0, dcl, dw, db


def fused_gated_cross(
    c0: torch.Tensor, cl: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    r"""One gated cross step ``c0 * (W_c cl + b) * sigmoid(W_g cl) + cl`` with the two weights stacked.

    ``weight`` is ``[2D, D]``: ``W_c`` (rows ``0..D-1``) over ``W_g`` (rows ``D..2D-1``), so both
    products come from one matmul; ``bias`` is ``b_c`` ``[D]`` or ``None``. Shapes: ``c0``, ``cl``
    ``[..., D]`` -> ``[..., D]`` (leading axes are flattened for the matmul).

    The step runs in a custom autograd function that saves only its inputs and the one matmul
    output (gate squashed in place) and updates its buffers in place: 3 element-wise passes
    forward and 5 backward with 1 and 3 new ``[N, D]`` buffers, against 5 and about 8 (and as
    many allocations) for autograd through the plain formula. On the CPU, where a fresh buffer
    costs about as much as the pass that fills it, this is most of the saving.
    Inside ``torch.compile`` the plain formula is used (the compiler fuses it itself).
    Equal to the plain formula within float rounding: values and the gradients of ``c0``, ``cl``,
    ``weight``, ``bias`` are tested against autograd through the formula (float32 1e-4 and
    float64 1e-8 relative; measured ~5e-7 and ~1e-15) and with ``gradcheck`` in float64.
    """
    d = cl.shape[-1]
    if weight.shape != (2 * d, d):
        raise ValueError(f"fused_gated_cross: weight must be [{2 * d}, {d}] (W_c over W_g), got {tuple(weight.shape)}")
    if c0.shape != cl.shape:
        raise ValueError(f"fused_gated_cross: c0 and cl must have one shape, got {tuple(c0.shape)} and {tuple(cl.shape)}")
    if torch.compiler.is_compiling():
        y = torch.nn.functional.linear(cl, weight)
        xw, g = y[..., :d], y[..., d:]
        return c0 * (xw if bias is None else xw + bias) * torch.sigmoid(g) + cl
    if cl.dim() == 2:
        return _FusedGatedCross.apply(c0, cl, weight, bias)
    out = _FusedGatedCross.apply(c0.reshape(-1, d), cl.reshape(-1, d), weight, bias)
    return out.reshape(cl.shape)


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

    Fast path (plain sigmoid gate, no gate capture, unhooked ``w`` / ``wg``): both weights are
    stacked once per call (``torch.cat``, ``[2D, D]``) so ``W_c c_l`` and ``W_g c_l`` are one
    matmul; on the CPU the step is :func:`fused_gated_cross` (custom autograd, minimal saved
    tensors) unless a ``gated_cross`` backend other than ``reference`` is requested
    (``use_backend`` / ``GATELAB_BACKEND``), elsewhere the ``gated_cross`` kernel op (Triton on CUDA) on the two halves. The
    parameters stay ``w.weight``, ``wg.weight``, ``b`` (state dicts unchanged).

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
        fast = not is_capturing() and is_plain(self.gate_act, nn.Sigmoid)
        if fast and is_plain(self.w, nn.Linear) and is_plain(self.wg, nn.Linear):
            weight = torch.cat([self.w.weight, self.wg.weight])  # [2D, D]: one matmul for both
            if (
                cl.device.type == "cpu"
                and c0.shape == cl.shape
                and c0.dtype == cl.dtype == weight.dtype
                and requested_backend("gated_cross") in ("auto", "reference")  # an explicit request wins
            ):
                return fused_gated_cross(c0, cl, weight, self.b)
            y = nn.functional.linear(cl, weight)
            return dispatch("gated_cross", c0, y[..., : self.dim], y[..., self.dim :], cl, self.b)
        xw = self.w(cl)
        logits = self.wg(cl)
        if fast:  # one element-wise op (Triton on CUDA)
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
