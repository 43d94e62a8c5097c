"""Chunked gated linear attention: the op ``gla_chunk`` with its PyTorch reference and Triton backend.

``gla_chunk(q, k, v, gk, scale=None, initial_state=None, output_final_state=False, chunk_size=16)``
computes gated linear attention (Yang et al. 2023)::

    S_t = diag(exp(gk_t)) S_{t-1} + k_t^T v_t,      o_t = scale * q_t S_t

over ``[B, T, H, K]`` queries, keys and log forget gates (``gk <= 0``) and ``[B, T, H, V]`` values,
returning ``(o [B, T, H, V] in q's dtype, final state [B, H, K, V] (float32) or None)``.

The reference is :func:`gatelab.core.gla.gla_chunk`, the chunk-parallel PyTorch form that matches
the recurrent definition :func:`gatelab.core.gla.gla_recurrent` (it computes in at least float32).
The Triton backend (:mod:`.gla_triton`) computes the same quantity with its own chunk length (64,
sub-chunks of 16); ``chunk_size`` only affects the reference, the results agree to rounding.

Backend ``"triton"`` runs when triton can run (CUDA, or the CPU under ``TRITON_INTERPRET=1``) and:
``q``, ``k``, ``v`` float16/bfloat16/float32 of one dtype, ``gk`` and ``initial_state`` any of those
dtypes, all on one device, with the shapes above and ``T >= 1``; ``scale`` a number or ``None``.
"""

from __future__ import annotations

import numbers

import torch

from ._common import TRITON_DTYPES, check_tensors, triton_available, triton_interpreted
from .dispatch import register_backend, register_op

__all__ = ["gla_chunk", "verify_gla_chunk"]


@register_op("gla_chunk", doc="chunked gated linear attention (GLA), output and optional final state")
def gla_chunk(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    gk: torch.Tensor,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    chunk_size: int = 16,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """:func:`gatelab.core.gla.gla_chunk` (the reference; see there for the equations)."""
    from ..gla import gla_chunk as reference  # gatelab.core.gla imports this package: import late

    return reference(
        q,
        k,
        v,
        gk,
        scale=scale,
        initial_state=initial_state,
        output_final_state=output_final_state,
        chunk_size=chunk_size,
    )


def verify_gla_chunk(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    gk: torch.Tensor,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    chunk_size: int = 16,
) -> str | None:
    """``None`` when the Triton GLA kernels accept the inputs, else the reason."""
    why = check_tensors((("q", q), ("k", k), ("v", v)))
    if why is None:
        why = check_tensors(
            (("q", q), ("gk", gk), ("initial_state", initial_state)), dtypes=TRITON_DTYPES, same_dtype=False
        )
    if why is not None:
        return why
    if q.dim() != 4:
        return f"q must be [B, T, H, K], got {tuple(q.shape)}"
    B, T, H, K = q.shape
    if tuple(k.shape) != (B, T, H, K) or tuple(gk.shape) != (B, T, H, K):
        return f"k {tuple(k.shape)} and gk {tuple(gk.shape)} must have q's shape {(B, T, H, K)}"
    if v.dim() != 4 or tuple(v.shape[:3]) != (B, T, H):
        return f"v must be [B={B}, T={T}, H={H}, V], got {tuple(v.shape)}"
    V = v.shape[-1]
    if initial_state is not None and tuple(initial_state.shape) != (B, H, K, V):
        return f"initial_state must be [B, H, K, V] = {(B, H, K, V)}, got {tuple(initial_state.shape)}"
    if T == 0 or B * H * K * V == 0:
        return "empty input (T, B, H, K or V is 0)"
    if scale is not None and (isinstance(scale, bool) or not isinstance(scale, numbers.Real)):
        return f"scale must be a number or None, got {type(scale).__name__}"
    return None


@register_backend(
    "gla_chunk",
    "triton",
    priority=10,
    devices=("cuda",),
    available=triton_available,
    verifier=verify_gla_chunk,
    interpreted=triton_interpreted,
)
def gla_chunk_triton(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    gk: torch.Tensor,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    chunk_size: int = 16,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Triton chunked GLA, forward and backward (``chunk_size`` is the reference's; see module doc)."""
    from .gla_triton import gla_chunk_triton as fn  # importing triton is slow: on first use

    scale = q.shape[-1] ** -0.5 if scale is None else float(scale)
    return fn(q, k, v, gk, scale, initial_state, bool(output_final_state))
