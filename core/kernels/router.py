"""Top-k router: softmax + top-k + load-balance statistics. PyTorch reference and Triton backend.

``topk_router(logits, k, clean=None, std=None)`` routes ``N`` tokens over ``E`` experts from their
router logits ``H(x)`` (``[N, E]``; Shazeer et al. 2017, :class:`gatelab.core.TopKRouter`) and
returns the tuple ``(gates, indices, weights, probs, importance, load, counts)``:

* ``indices`` ``[N, k]`` (int64): the ``k`` largest logits per token, in descending order;
* ``weights`` ``[N, k]``: ``softmax`` over those ``k`` logits (computed in float32, stored in the
  logits' dtype); ``gates`` ``[N, E]``: the weights scattered into a dense row, zero elsewhere;
* ``probs`` ``[N, E]``: ``softmax(logits)`` over all experts (float32, stored in the logits' dtype);
* ``importance`` ``[E]`` (float32): ``sum_x gates``; ``counts`` ``[E]`` (int64): tokens per expert;
* ``load`` ``[E]`` (float32): with ``clean`` (the noise-free logits ``x W_g``) and ``std`` (the noise
  scale), the smooth load estimator ``sum_x Phi((clean - kth_excluding(logits, k, i)) / std)`` of the
  paper's Appendix A (``kth_excluding``: the (k+1)-th largest logit for a chosen expert, the k-th
  for the others); without them ``counts`` as float32 (no gradient).

The reference is :class:`gatelab.core.TopKRouter`'s eager code (``torch.topk``, two softmaxes,
scatters and column sums). The Triton kernels (:mod:`.router_triton`) do all of it in one pass over
the logits: each program holds whole rows, computes the softmax, selects the top ``k`` (``k + 1``
for the smooth load) by repeated arg-max, writes the per-token outputs and accumulates the column
statistics over its rows in float32 registers; the per-program partial sums are added afterwards
(deterministic, no atomics). The backward recomputes the selection and the softmaxes and
back-propagates through ``gates``, ``weights``, ``probs``, ``importance`` and ``load``.

Ties: the kernel picks the lowest expert index among equal logits; ``torch.topk`` does not promise
an order for ties, so on tied logits (an untrained, zero-initialised router) the two backends may
route differently.

Backend ``"triton"`` runs when triton can run (CUDA, or the CPU under ``TRITON_INTERPRET=1``) and:
``logits`` ``[N, E]`` float16/bfloat16/float32 with ``N >= 1`` and ``E <= 4096``; ``1 <= k <= 32``
and ``k <= E`` (``k < E`` with ``clean``); ``clean`` and ``std`` both given or both ``None``, of the
logits' shape, dtype and device.
"""

from __future__ import annotations

import torch

from ._common import check_tensors, triton_available, triton_interpreted
from .dispatch import register_backend, register_op

__all__ = ["MAX_EXPERTS", "MAX_K", "topk_router", "verify_topk_router"]

#: largest number of experts of the Triton kernels (one program holds whole rows)
MAX_EXPERTS = 4096
#: largest ``k`` of the Triton kernels (the selection loop is unrolled)
MAX_K = 32

RouterTensors = tuple[
    torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor
]


@register_op("topk_router", doc="softmax + top-k + importance/load statistics (noisy top-k MoE router)")
def topk_router(
    logits: torch.Tensor,
    k: int,
    clean: torch.Tensor | None = None,
    std: torch.Tensor | None = None,
) -> RouterTensors:
    """Route ``[N, E]`` logits to their top ``k`` experts; returns ``(gates, indices, weights, probs,
    importance, load, counts)`` (see the module docstring)."""
    N, E = logits.shape
    smooth = clean is not None
    top_vals, top_idx = logits.topk(k + 1 if smooth else k, dim=-1)  # descending
    indices = top_idx[:, :k]
    weights = torch.softmax(top_vals[:, :k].float(), dim=-1).to(logits.dtype)
    gates = torch.zeros_like(logits).scatter(1, indices, weights)
    selected = torch.zeros(N, E, dtype=torch.bool, device=logits.device).scatter(1, indices, True)
    counts = selected.sum(0)
    importance = gates.float().sum(0)
    if smooth:
        # kth_excluding(H, k, i): (k+1)-th largest of H if i is in the top k, else the k-th largest
        threshold = torch.where(selected, top_vals[:, k : k + 1], top_vals[:, k - 1 : k]).float()
        z = (clean.float() - threshold) / std.float()
        load = torch.special.ndtr(z).sum(0)
    else:
        load = counts.float()
    probs = torch.softmax(logits.float(), dim=-1).to(logits.dtype)
    return gates, indices, weights, probs, importance, load, counts


def verify_topk_router(
    logits: torch.Tensor,
    k: int,
    clean: torch.Tensor | None = None,
    std: torch.Tensor | None = None,
) -> str | None:
    """``None`` when the Triton router kernels accept the inputs, else the reason."""
    why = check_tensors((("logits", logits), ("clean", clean), ("std", std)))
    if why is not None:
        return why
    if logits.dim() != 2 or logits.shape[0] == 0:
        return f"logits must be [N, E] with N >= 1, got {tuple(logits.shape)}"
    N, E = logits.shape
    if E > MAX_EXPERTS:
        return f"{E} experts > {MAX_EXPERTS}"
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= min(E, MAX_K):
        return f"k={k!r} must be an int in [1, min(E={E}, {MAX_K})]"
    if (clean is None) != (std is None):
        return "clean and std must be given together (smooth load) or not at all"
    if clean is not None:
        if clean.shape != logits.shape or std.shape != logits.shape:
            return (
                f"clean {tuple(clean.shape)} and std {tuple(std.shape)} must have the logits' shape {(N, E)}"
            )
        if k >= E:
            return f"the smooth load needs k < E, got k={k}, E={E}"
    return None


@register_backend(
    "topk_router",
    "triton",
    priority=10,
    devices=("cuda",),
    available=triton_available,
    verifier=verify_topk_router,
    interpreted=triton_interpreted,
)
def topk_router_triton(
    logits: torch.Tensor,
    k: int,
    clean: torch.Tensor | None = None,
    std: torch.Tensor | None = None,
) -> RouterTensors:
    """One-pass Triton router, forward and backward (see the module docstring)."""
    from .router_triton import topk_router_triton as fn  # importing triton is slow: on first use

    return fn(logits, k, clean, std)
