"""Sparsely-gated mixture of experts (Shazeer et al. 2017): noisy top-k router and a batched MoE layer.

Family 10 of :mod:`gatelab.core`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .kernels import dispatch
from .kernels.glu import glu_product
from .layers.activations import ActLike, get_act
from .layers.capture import record_gate

EXPERT_KINDS: tuple[str, ...] = ("mlp", "glu")


class RouterOutput(NamedTuple):
    """What :class:`TopKRouter` returns (``N`` tokens, ``E`` experts, ``k`` chosen per token).

    Fields:
        gates: ``[N, E]`` dense combine weights :math:`G(x)` (zero outside each token's top k).
        indices: ``[N, k]`` chosen experts, in descending order of :math:`H(x)`.
        weights: ``[N, k]`` combine weights of the chosen experts (softmax over the top k).
        probs: ``[N, E]`` router probabilities ``softmax(H(x))`` over all experts (for analysis or
            other balance losses; not used by the layer).
        logits: ``[N, E]`` :math:`H(x)` (noisy in training).
        importance_loss: scalar ``w_importance * CV(importance)^2`` (float32).
        load_loss: scalar ``w_load * CV(load)^2`` (float32).
        importance: ``[E]`` :math:`\\sum_x G(x)` (float32).
        load: ``[E]`` the load used by ``load_loss``: the smooth estimator :math:`\\sum_x P(x, i)` when
            noise is on, else the assignment counts (float32).
        counts: ``[E]`` number of tokens assigned to each expert (int64).
    """

    gates: torch.Tensor
    indices: torch.Tensor
    weights: torch.Tensor
    probs: torch.Tensor
    logits: torch.Tensor
    importance_loss: torch.Tensor
    load_loss: torch.Tensor
    importance: torch.Tensor
    load: torch.Tensor
    counts: torch.Tensor


def cv_squared(x: torch.Tensor) -> torch.Tensor:
    r"""Squared coefficient of variation :math:`\operatorname{Var}(x) / \operatorname{mean}(x)^2` of a 1-D tensor.

    Population variance (as the authors' tensor2tensor code); computed in float32 with a tiny
    epsilon in the denominator; 0 for a single element.
    """
    x = x.float()
    if x.numel() <= 1:
        return x.new_zeros(())
    mean = x.mean()
    return ((x - mean) ** 2).mean() / (mean * mean + 1e-10)


class TopKRouter(nn.Module):
    r"""Noisy top-k gating with importance and load-balancing losses (Shazeer et al. 2017).

    .. math::

        H(x)_i = (x W_g)_i + \epsilon_i \cdot \big(\operatorname{softplus}((x W_{noise})_i) + \varepsilon\big),
        \qquad \epsilon_i \sim \mathcal N(0, 1)\ \text{(training only)}

        G(x) = \operatorname{softmax}(\operatorname{KeepTopK}(H(x), k))

    KeepTopK keeps the ``k`` largest entries and excludes the rest (the softmax runs over the ``k``
    kept logits and is scattered back into ``[N, E]``; no ``-inf`` constant is involved). Balance losses
    over the ``N`` tokens of the call:

    .. math::

        L_{importance} = w_{importance} \operatorname{CV}\Big(\sum_x G(x)\Big)^2, \qquad
        L_{load} = w_{load} \operatorname{CV}\Big(\sum_x P(x, \cdot)\Big)^2

        P(x, i) = \Phi\Big(\frac{(x W_g)_i - \operatorname{kth\_excluding}(H(x), k, i)}
                               {\operatorname{softplus}((x W_{noise})_i) + \varepsilon}\Big)

    with :math:`\Phi` the standard normal CDF and ``kth_excluding(H, k, i)`` the k-th largest entry of
    ``H`` other than ``i`` (the smooth, differentiable estimate of the number of tokens routed to ``i``).

    Without noise (eval mode, ``noisy=False``, or ``k == num_experts``) :math:`P` is undefined; the load
    is then the assignment count per expert and ``load_loss`` is reported but carries no gradient.

    Args:
        dim: token width.
        num_experts: ``E``.
        k: experts per token, ``1 <= k <= E``.
        noisy: add the learned Gaussian noise in training.
        noise_epsilon: :math:`\varepsilon`, minimum noise standard deviation.
        w_importance, w_load: loss weights (0.1 each by default; the paper's Table 6 compares several).
        bias: add biases to the gate and noise projections (the paper has none).

    Shapes:
        ``forward(x [..., dim], *, noise [N, E] | None)`` with ``N = x[..., 0].numel()``; returns a
        :class:`RouterOutput` (per-token fields are flattened to ``N`` rows). ``noise`` replaces the
        standard-normal sample (tests, reproducibility); it is only valid when noise is applied.

    Captured gates: ``G(x)`` ``[N, E]`` under the module name, the per-expert counts under ``":load"``.

    Paper: N. Shazeer et al., "Outrageously Large Neural Networks: The Sparsely-Gated
    Mixture-of-Experts Layer", ICLR 2017, Sec. 2.1 and Appendix A.

    Deviations: the noise std has the additive ``noise_epsilon`` of the authors' tensor2tensor code;
    CV uses the population variance; the gate and noise weights are zero-initialised as in the paper,
    so an untrained router ties all experts (ties broken by ``topk``; noise breaks them in training).
    """

    def __init__(
        self,
        dim: int,
        num_experts: int,
        *,
        k: int = 2,
        noisy: bool = True,
        noise_epsilon: float = 1e-2,
        w_importance: float = 0.1,
        w_load: float = 0.1,
        bias: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory_kwargs = {"device": device, "dtype": dtype}
        if num_experts < 1:
            raise ValueError(f"num_experts must be >= 1, got {num_experts}")
        if not 1 <= k <= num_experts:
            raise ValueError(f"k must satisfy 1 <= k <= num_experts={num_experts}, got k={k}")
        if noise_epsilon < 0:
            raise ValueError(f"noise_epsilon must be >= 0, got {noise_epsilon}")
        self.dim, self.num_experts, self.k = dim, num_experts, k
        self.noisy, self.noise_epsilon = noisy, noise_epsilon
        self.w_importance, self.w_load = w_importance, w_load
        self.w_gate = nn.Linear(dim, num_experts, bias=bias, **factory_kwargs)
        self.w_noise = nn.Linear(dim, num_experts, bias=bias, **factory_kwargs) if noisy else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Zero weights and biases (paper: "no signal and some noise" at the start of training)."""
        for lin in (self.w_gate, self.w_noise):
            if lin is not None:
                nn.init.zeros_(lin.weight)
                if lin.bias is not None:
                    nn.init.zeros_(lin.bias)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, num_experts={self.num_experts}, k={self.k}, noisy={self.noisy}"

    def forward(self, x: torch.Tensor, *, noise: torch.Tensor | None = None) -> RouterOutput:
        """Route the tokens of ``x [..., dim]``; see the class docstring."""
        if x.dim() < 1 or x.shape[-1] != self.dim:
            raise ValueError(f"x must have shape [..., dim={self.dim}], got {tuple(x.shape)}")
        x = x.reshape(-1, self.dim)
        N, E, k = x.shape[0], self.num_experts, self.k
        use_noise = self.training and self.w_noise is not None
        clean = self.w_gate(x)
        std = None
        if use_noise:
            std = F.softplus(self.w_noise(x)) + self.noise_epsilon
            if noise is None:
                noise = torch.randn_like(clean)
            elif tuple(noise.shape) != (N, E):
                raise ValueError(f"noise must have shape [N, E] = {(N, E)}, got {tuple(noise.shape)}")
            logits = clean + noise.to(clean.dtype) * std
        else:
            if noise is not None:
                raise ValueError("noise was given but this router adds none (eval mode or noisy=False)")
            logits = clean

        smooth = use_noise and k < E
        # softmax + top-k + importance/load/counts (one Triton pass on CUDA; the reference is the
        # eager code in gatelab.core.kernels.router)
        gates, indices, weights, probs, importance, load, counts = dispatch(
            "topk_router", logits, k, clean if smooth else None, std if smooth else None
        )
        importance_loss = self.w_importance * cv_squared(importance)
        load_loss = self.w_load * cv_squared(load)

        record_gate(self, gates)
        record_gate(self, counts.float(), "load")
        return RouterOutput(
            gates=gates,
            indices=indices,
            weights=weights,
            probs=probs,
            logits=logits,
            importance_loss=importance_loss,
            load_loss=load_loss,
            importance=importance,
            load=load,
            counts=counts,
        )


class MoEOutput(NamedTuple):
    """What :class:`SparseMoE` returns.

    Fields:
        output: ``[..., dim]``, the shape of the input.
        aux_loss: scalar ``importance_loss + load_loss`` (float32), to add to the training loss.
        router: the :class:`RouterOutput` of the call.
        num_dropped: int64 scalar, (token, expert) assignments dropped by the capacity limit (0 when
            ``capacity_factor`` is None).
    """

    output: torch.Tensor
    aux_loss: torch.Tensor
    router: RouterOutput
    num_dropped: torch.Tensor


class SparseMoE(nn.Module):
    r"""Sparsely-gated mixture-of-experts layer (Shazeer et al. 2017) with batched experts.

    .. math::

        y = \sum_{i=1}^{E} G(x)_i\, E_i(x), \qquad
        E_i(x) = W_{2,i}\, \phi(W_{1,i} x + b_{1,i}) + b_{2,i} \quad (\texttt{expert="mlp"})

        E_i(x) = W_{2,i}\, \big(\phi(W_{1,i} x + b_{1,i}) \odot (W_{3,i} x + b_{3,i})\big) + b_{2,i}
        \quad (\texttt{expert="glu"})

    with :math:`G` from :class:`TopKRouter` (only ``k`` non-zero terms per token are computed).

    Computation without a Python loop over experts: the ``N*k`` (token, expert) assignments are sorted
    by expert, scattered into a padded buffer ``[E, C, dim]`` (slot = rank of the assignment within
    its expert, in token order), run through the stacked expert weights with ``bmm``, and the results
    are gathered back and summed per token with their gate weights (``index_add``).

    Capacity ``C``: with ``capacity_factor=None`` nothing is dropped; eagerly ``C`` is the largest
    expert load of the call (one host sync), under ``torch.compile`` the static bound ``C = N``.
    With a ``capacity_factor`` ``C = ceil(capacity_factor * N * k / E)`` (GShard/Switch style):
    assignments beyond an expert's first ``C`` tokens are dropped (their term is zero; the gate weights
    of the kept experts are not renormalised), and their number is returned as ``num_dropped`` and
    captured under ``":dropped"``.

    Args:
        dim: token width; ``hidden_dim``: expert hidden width; ``num_experts``: ``E``.
        k: experts per token.
        act: expert activation :math:`\phi` (GLU experts: the gate activation, e.g. gelu = GEGLU).
        expert: ``"mlp"`` or ``"glu"``.
        noisy, noise_epsilon, w_importance, w_load: passed to :class:`TopKRouter`.
        capacity_factor: ``None`` (no dropping) or a positive float.
        bias: expert biases.
        dropout: dropout on the expert hidden activations.

    Shapes:
        ``forward(x [..., dim], *, noise [N, E] | None) -> MoEOutput`` with ``output [..., dim]``.

    Paper: N. Shazeer et al., "Outrageously Large Neural Networks: The Sparsely-Gated
    Mixture-of-Experts Layer", ICLR 2017.

    Deviations: experts are two-layer MLPs (or GLU MLPs) with stacked weights rather than arbitrary
    networks; no hierarchical MoE and no cross-device batching; the capacity limit is from later work
    (GShard, Switch Transformer) and off by default; expert weights use ``nn.Linear``'s default
    initialisation per expert.
    """

    def __init__(
        self,
        dim: int,
        hidden_dim: int,
        num_experts: int,
        *,
        k: int = 2,
        act: ActLike = "gelu",
        bias: bool = True,
        dropout: float = 0.0,
        expert: str = "mlp",
        noisy: bool = True,
        noise_epsilon: float = 1e-2,
        w_importance: float = 0.1,
        w_load: float = 0.1,
        capacity_factor: float | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory_kwargs = {"device": device, "dtype": dtype}
        if expert not in EXPERT_KINDS:
            raise ValueError(f"expert must be one of {EXPERT_KINDS}, got {expert!r}")
        if capacity_factor is not None and capacity_factor <= 0:
            raise ValueError(f"capacity_factor must be positive or None, got {capacity_factor}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if dim <= 0 or hidden_dim <= 0:
            raise ValueError(f"dim and hidden_dim must be positive, got dim={dim}, hidden_dim={hidden_dim}")
        self.dim, self.hidden_dim, self.num_experts, self.k = dim, hidden_dim, num_experts, k
        self.expert, self.capacity_factor = expert, capacity_factor
        self.act = get_act(act)
        self.drop = nn.Dropout(dropout)
        self.router = TopKRouter(
            dim,
            num_experts,
            k=k,
            noisy=noisy,
            noise_epsilon=noise_epsilon,
            w_importance=w_importance,
            w_load=w_load,
            **factory_kwargs,
        )
        n_in = 2 * hidden_dim if expert == "glu" else hidden_dim  # GLU: [gate | value] fused
        self.w1 = nn.Parameter(torch.empty(num_experts, dim, n_in, **factory_kwargs))
        self.b1 = nn.Parameter(torch.empty(num_experts, n_in, **factory_kwargs)) if bias else None
        self.w2 = nn.Parameter(torch.empty(num_experts, hidden_dim, dim, **factory_kwargs))
        self.b2 = nn.Parameter(torch.empty(num_experts, dim, **factory_kwargs)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """``nn.Linear``'s default init per expert: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases."""
        for w, b, fan_in in ((self.w1, self.b1, self.dim), (self.w2, self.b2, self.hidden_dim)):
            bound = 1.0 / math.sqrt(fan_in)
            nn.init.uniform_(w, -bound, bound)
            if b is not None:
                nn.init.uniform_(b, -bound, bound)
        self.router.reset_parameters()

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, hidden_dim={self.hidden_dim}, num_experts={self.num_experts}, k={self.k}, "
            f"expert={self.expert!r}, capacity_factor={self.capacity_factor}"
        )

    def _experts(self, h: torch.Tensor) -> torch.Tensor:
        """All experts on their padded token buffers: ``[E, C, dim] -> [E, C, dim]``."""
        z = torch.bmm(h, self.w1)
        if self.b1 is not None:
            z = z + self.b1.unsqueeze(1)
        if self.expert == "glu":
            gate, value = z.chunk(2, dim=-1)
            z = glu_product(gate, value, self.act)
        else:
            z = self.act(z)
        out = torch.bmm(self.drop(z), self.w2)
        if self.b2 is not None:
            out = out + self.b2.unsqueeze(1)
        return out

    def forward(self, x: torch.Tensor, *, noise: torch.Tensor | None = None) -> MoEOutput:
        """Mix the experts for every token of ``x [..., dim]``; see the class docstring."""
        if x.dim() < 1 or x.shape[-1] != self.dim:
            raise ValueError(f"x must have shape [..., dim={self.dim}], got {tuple(x.shape)}")
        shape = x.shape
        xf = x.reshape(-1, self.dim)
        N, E, k = xf.shape[0], self.num_experts, self.k
        r = self.router(xf, noise=noise)

        # (token, expert) assignments sorted by expert; stable, so token order is kept within an expert
        expert_of = r.indices.reshape(-1)  # [N*k]
        order = torch.argsort(expert_of, stable=True)
        expert_sorted = expert_of[order]
        token_sorted = torch.div(order, k, rounding_mode="floor")
        weight_sorted = r.weights.reshape(-1)[order]
        counts = r.counts
        starts = torch.cumsum(counts, 0) - counts
        rank = torch.arange(N * k, device=x.device) - starts[expert_sorted]  # slot within the expert

        if self.capacity_factor is not None:
            C = min(N, max(1, math.ceil(self.capacity_factor * N * k / E)))
        elif torch.compiler.is_compiling():
            C = N  # static bound: an expert receives each token at most once
        else:
            C = max(1, int(counts.max()))  # the exact need of this call (host sync)
        kept = rank < C
        num_dropped = (~kept).sum()
        # buffer slot of every assignment; dropped ones go to a scratch row E*C that is never read back
        slot = torch.where(kept, expert_sorted * C + rank, torch.full_like(rank, E * C))

        buf = xf.new_zeros(E * C + 1, self.dim).index_copy(0, slot, xf[token_sorted])
        out = self._experts(buf[: E * C].view(E, C, self.dim)).reshape(E * C, self.dim)
        out = torch.cat([out, out.new_zeros(1, self.dim)])  # scratch row reads as zero
        contrib = out[slot] * weight_sorted.unsqueeze(-1)
        y = xf.new_zeros(N, self.dim).index_add(0, token_sorted, contrib)

        record_gate(self, num_dropped.float(), "dropped")
        aux = r.importance_loss + r.load_loss
        return MoEOutput(output=y.reshape(shape), aux_loss=aux, router=r, num_dropped=num_dropped)
