r"""Temporal Fusion Transformer (Lim et al. 2021), assembled from the :mod:`gatelab.core` TFT gates.

The network, for a batch of ``B`` series with an encoder (past) window of ``T_e`` steps and a
decoder (future) window of ``T_d`` steps, ``H = d_model``::

    input embedding     categorical j -> E_j[x_j]          (one table, all variables at once)
                        real j        -> w_j x_j + b_j      ("prescaler", all reals at once)
    static covariates   s, v_s  = VSN_s(static embeddings)                       [B, H], [B, V_s]
                        c_s, c_e, c_h, c_c = GRN_{s,e,h,c}(s)                    4 x [B, H]
    variable selection  xi_t, v_t = VSN_enc(past embeddings_t, c_s)   t <= 0    [B, T_e, H]
                        xi_t, v_t = VSN_dec(known embeddings_t, c_s)  t > 0     [B, T_d, H]
    seq2seq             h_t = LSTM_enc(xi_t) from (c_h, c_c); LSTM_dec continues from its state
                        phi_t = GateAddNorm(h_t, xi_t)                (gated skip, eq. 17)
    static enrichment   theta_t = GRN_enrich(phi_t, c_e)                          (eq. 18)
    attention           beta_t = GateAddNorm(IMHA(theta_dec, theta, theta), theta_t)   (eqs. 13-16, 19-20)
                        delta_t = GRN_ff(beta_t)                                  (eq. 21)
    output              psi_t = GateAddNorm(delta_t, phi_t)                       (eq. 22)
                        y_hat(q, t) = W_q psi_t + b_q        for the quantiles q   (eq. 23)

``VSN``, ``GRN`` and ``GateAddNorm`` are :class:`~gatelab.core.VariableSelectionNetwork`,
:class:`~gatelab.core.GatedResidualNetwork` and :class:`~gatelab.core.GateAddNorm`; the VSNs
evaluate all per-variable GRNs in one batched op. ``IMHA`` is
:class:`InterpretableMultiHeadAttention` (per-head queries and keys, one value projection shared
by all heads, heads averaged), queried by the decoder steps only, over the encoder and decoder
steps, with a causal mask.

Inputs follow pytorch-forecasting's batch layout, so the model trains on a
``pytorch_forecasting.TimeSeriesDataSet``'s dataloaders unchanged (``x`` of ``(x, (y, w))``):

==================== ======================= ==================================================
key                  shape                   meaning
==================== ======================= ==================================================
``encoder_cat``      ``[B, T_e, n_cat]`` long categorical codes, columns in ``x_categoricals`` order
``encoder_cont``     ``[B, T_e, n_real]``    real inputs (already scaled), ``x_reals`` order
``decoder_cat``      ``[B, T_d, n_cat]``     as above, for the forecast steps
``decoder_cont``     ``[B, T_d, n_real]``
``encoder_lengths``  ``[B]`` (optional)      valid encoder steps (right-padded); default ``T_e``
``decoder_lengths``  ``[B]`` (optional)      valid decoder steps; default ``T_d``
``target_scale``     ``[B, 2]``              ``(center, scale)`` of the target normaliser;
                                             needed when ``rescale_output``
==================== ======================= ==================================================

Other keys (``encoder_target``, ``groups``, ...) are ignored. The output is a :class:`TFTOutput`:
``prediction`` ``[B, T_d, Q]`` in the target's scale (``target_transform^-1(y_hat * scale +
center)``) plus the interpretable quantities.

Two layouts (``layout``):

* ``"paper"`` (default): every input is embedded to ``H`` (categoricals by an embedding of width
  ``H``, reals by a per-variable ``Linear(1, H)``) and passes through its own GRN inside the
  VSNs; the decoder attends to itself and earlier steps (the official code's
  ``get_decoder_mask``); attention projections without biases, as the official code.
* ``"pytorch-forecasting"``: pytorch-forecasting's variant, which we reproduce exactly
  (:func:`gatelab.timeseries.models.tft_port.from_pytorch_forecasting` ports a trained model and gives
  the same outputs): smaller categorical embeddings fed to the VSN through
  ``LayerNorm(interpolate(.))`` only, reals lifted to ``continuous_dim``, interpolated
  skips, narrower GRNs (``min(d_j, H)``; weight GRN ``min(H, V)``), attention biases, and a
  decoder that does not attend to its own step.

Paper: B. Lim, S. O. Arik, N. Loeff, T. Pfister, "Temporal Fusion Transformers for interpretable
multi-horizon time series forecasting", International Journal of Forecasting 37(4), 2021.
Official code: google-research/google-research ``tft/libs/tft_model.py``. The config keys
(:class:`TFTConfig`, with the presets ``"stallion"``, ``"electricity"``, ``"traffic"``), data,
interpretation, training and results are described in ``docs/tft.md``.

Deviations from the paper: the attention is queried by the decoder steps only (the official code
attends over all steps and keeps the decoder outputs: the same values, less work); static reals
are allowed (the paper has static categoricals only); variable encoder lengths (right padding,
masked attention, packed LSTM) as pytorch-forecasting; one target. Initialisation follows the
official (Keras) code: Glorot-uniform dense weights, zero biases, orthogonal recurrent weights,
LSTM forget-gate bias 1, embeddings ``U(-0.05, 0.05)``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import rnn

from gatelab.core import (
    GateAddNorm,
    GatedLinearUnit,
    GatedResidualNetwork,
    VariableSelectionNetwork,
    record_gate,
)
from gatelab.core.config import ConfigError, Dropout, ModelConfig, PositiveInt, UnitInterval
from gatelab.core.layers.capture import is_capturing
from gatelab.core.layers.dropout import FastDropout
from gatelab.core.layers.fusion import is_plain
from gatelab.core.pretrained import PretrainedMixin

__all__ = [
    "ELU",
    "TARGET_TRANSFORMS",
    "InterpretableMultiHeadAttention",
    "TFTConfig",
    "TFTOutput",
    "TemporalFusionTransformer",
    "default_embedding_size",
    "monotone_quantiles",
]


def _square(y: torch.Tensor) -> torch.Tensor:
    return y * y


def _clipped_sigmoid(y: torch.Tensor) -> torch.Tensor:
    eps = torch.finfo(y.dtype).eps
    return torch.sigmoid(y).clamp(eps, 1.0 - eps)


#: Inverse target transformations applied to the (de-normalised) network output, by name. They
#: are the ``reverse`` maps of pytorch-forecasting's normalisers (``TransformMixIn.TRANSFORMATIONS``),
#: so a model trained on a ``TimeSeriesDataSet`` predicts in the same space as
#: pytorch-forecasting's (note ``log1p`` is reversed with ``exp`` there, and here).
TARGET_TRANSFORMS = {
    None: lambda y: y,
    "log": torch.exp,
    "log1p": torch.exp,
    "logit": _clipped_sigmoid,
    "count": F.softplus,
    "softplus": F.softplus,
    "relu": F.relu,
    "sqrt": _square,
}


def monotone_quantiles(raw: torch.Tensor) -> torch.Tensor:
    """Non-crossing quantiles ``[..., Q]`` from unconstrained outputs ``raw`` ``[..., Q]``:
    ``y_1 = raw_1``, ``y_k = y_{k-1} + softplus(raw_k)`` (strictly increasing along the last axis
    wherever the softplus does not underflow to 0, non-decreasing always)."""
    if raw.shape[-1] < 2:
        return raw
    steps = F.softplus(raw[..., 1:])
    return torch.cat([raw[..., :1], raw[..., :1] + torch.cumsum(steps, dim=-1)], dim=-1)


def default_embedding_size(n: int, max_size: int = 100) -> int:
    """Embedding width for ``n`` categories: ``min(round(1.6 n^0.56), max_size)``, 1 for ``n <= 2``.

    The fastai heuristic pytorch-forecasting uses (``utils.get_embedding_size``).
    """
    return min(round(1.6 * n**0.56), max_size) if n > 2 else 1


class TFTOutput(NamedTuple):
    """What :class:`TemporalFusionTransformer` returns (pytorch-forecasting's names and layouts).

    Attributes:
        prediction: ``[B, T_d, Q]`` quantile forecasts (target scale when ``rescale_output``).
        encoder_attention: ``[B, T_d, heads, T_e]`` attention of each decoder step on the encoder.
        decoder_attention: ``[B, T_d, heads, T_d]`` attention of each decoder step on the decoder.
        static_variables: ``[B, V_s]`` static variable selection weights.
        encoder_variables: ``[B, T_e, V_e]`` past-input selection weights per step.
        decoder_variables: ``[B, T_d, V_d]`` known-input selection weights per step.
        encoder_lengths: ``[B]`` valid encoder steps.
        decoder_lengths: ``[B]`` valid decoder steps.
    """

    prediction: torch.Tensor
    encoder_attention: torch.Tensor
    decoder_attention: torch.Tensor
    static_variables: torch.Tensor
    encoder_variables: torch.Tensor
    decoder_variables: torch.Tensor
    encoder_lengths: torch.Tensor
    decoder_lengths: torch.Tensor


class _VectorizedELU(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        y = torch.where(x > 0, x, torch.exp(x.clamp(max=0.0)) - 1.0)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        return grad * (y.clamp(max=0.0) + 1.0)  # 1 for x > 0, exp(x) = y + 1 otherwise


class ELU(nn.Module):
    """``ELU(x) = x if x > 0 else exp(x) - 1`` (alpha 1), the GRN activation, vectorised for CPU.

    ``torch.nn.ELU`` evaluates ``expm1``, which PyTorch's CPU kernels compute element by element
    (about 20x slower than ``exp`` here); ``exp(min(x, 0)) - 1`` is vectorised. The two differ by
    float rounding only (absolute error below ``1e-7`` near 0). The backward reuses the output:
    ``dELU/dx = 1`` for ``x > 0``, ``ELU(x) + 1`` otherwise.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _VectorizedELU.apply(x)


# --------------------------------------------------------------------------------------------
# interpretable multi-head attention
# --------------------------------------------------------------------------------------------
class InterpretableMultiHeadAttention(nn.Module):
    r"""TFT's interpretable multi-head attention: per-head queries/keys, one shared value, heads averaged.

    ::

        A_h = softmax(Q W_Q^h (K W_K^h)^T / sqrt(d_k))      [B, heads, T_q, T_k]   (masked)
        H~  = 1/heads sum_h dropout(A_h V W_V)              [B, T_q, d_k]
        out = dropout(H~ W_H)                               [B, T_q, d_model]

    with ``d_k = d_model // heads``. Because every head uses the same values ``V W_V``, the
    average attention ``1/heads sum_h A_h`` says how much each step contributes (the paper's
    interpretability argument). All heads' query (and key) projections are one ``Linear`` each.

    Args:
        d_model: features of queries, keys and values.
        num_heads: number of heads.
        dropout: dropout on each head's output and on the result (as the paper).
        bias: biases of the query/key/value projections (the official code has none,
            pytorch-forecasting has them; the output projection never has one).

    Shapes: ``q`` ``[B, T_q, d_model]``, ``k`` and ``v`` ``[B, T_k, d_model]``, ``blocked`` a
    boolean ``[B, T_q, T_k]`` (or broadcastable) that is ``True`` where a query may **not**
    attend. Returns ``(out [B, T_q, d_model], attention [B, T_q, heads, T_k])``. Blocked scores
    are set to ``torch.finfo(dtype).min`` and the softmax runs in float32, so half precision stays
    finite; a query with every key blocked gets uniform weights. The attention is recorded with
    :func:`gatelab.core.record_gate` (suffix ``"attention"``).

    Paper: Lim et al. 2021, Sec. 4.4, eqs. (13)-(16).

    Deviations: none (the per-head loop of the reference implementations is one batched matmul).
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        *,
        dropout: float = 0.0,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory_kwargs = {"device": device, "dtype": dtype}
        if num_heads < 1 or d_model // num_heads < 1:
            raise ValueError(
                f"InterpretableMultiHeadAttention: need 1 <= num_heads <= d_model, got {num_heads}, {d_model}"
            )
        self.d_model = d_model
        self.num_heads = num_heads
        self.d_k = d_model // num_heads
        self.q_proj = nn.Linear(d_model, num_heads * self.d_k, bias=bias, **factory_kwargs)
        self.k_proj = nn.Linear(d_model, num_heads * self.d_k, bias=bias, **factory_kwargs)
        self.v_proj = nn.Linear(d_model, self.d_k, bias=bias, **factory_kwargs)
        self.out_proj = nn.Linear(self.d_k, d_model, bias=False, **factory_kwargs)
        self.dropout = FastDropout(dropout)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Glorot-uniform per head (fan ``d_model -> d_k``), zero biases."""
        bound = math.sqrt(6.0 / (self.d_model + self.d_k))
        for lin in (self.q_proj, self.k_proj, self.v_proj):
            lin.weight.uniform_(-bound, bound)
            if lin.bias is not None:
                lin.bias.zero_()
        nn.init.xavier_uniform_(self.out_proj.weight)

    def forward(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        blocked: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        B, Tq, _ = q.shape
        Tk = k.shape[1]
        h, dk = self.num_heads, self.d_k
        qs = self.q_proj(q).view(B, Tq, h, dk).transpose(1, 2)  # [B, h, Tq, dk]
        ks = self.k_proj(k).view(B, Tk, h, dk).transpose(1, 2)  # [B, h, Tk, dk]
        vs = self.v_proj(v)  # [B, Tk, dk] shared by all heads
        scores = torch.matmul(qs, ks.transpose(-1, -2)).float() * (1.0 / math.sqrt(dk))
        if blocked is not None:
            scores = scores.masked_fill(blocked.unsqueeze(1), torch.finfo(scores.dtype).min)
        attn = torch.softmax(scores, dim=-1)  # float32
        record_gate(self, attn, "attention")
        heads = torch.matmul(attn.to(vs.dtype), vs.unsqueeze(1))  # [B, h, Tq, dk]
        out = self.dropout(heads).mean(dim=1)
        out = self.dropout(self.out_proj(out))
        return out, attn.transpose(1, 2)  # [B, Tq, h, Tk]


# --------------------------------------------------------------------------------------------
# input embedding: all categoricals and all reals, each in one op
# --------------------------------------------------------------------------------------------
class _InputEmbedding(nn.Module):
    """Embeds the input variables of a network (static, encoder or decoder) in one op per kind.

    Categorical variable ``o`` (a column of ``x_categoricals``, or a *group* of columns whose
    embeddings are summed: pytorch-forecasting's ``categorical_groups`` / ``EmbeddingBag(mode="sum")``)
    owns rows ``[off_o, off_o + n_o)`` of one table ``cat_weight`` ``[sum n_o, d_max]`` and its first
    ``d_o`` columns; padding variables map code 0 to a zero vector. Real ``j`` is lifted to ``d_j``
    features by ``w_j x_j + b_j`` (``real_weight``, ``real_bias`` ``[n_real, d_max]``), one lift
    shared by every network the variable feeds (as pytorch-forecasting's ``prescalers``).

    ``forward(cat, cont, part)`` returns ``[..., F_part]``: the features of ``part``'s variables in
    its order (categoricals first, then reals, each variable's ``d`` features contiguous), the
    flat input layout of :class:`~gatelab.core.VariableSelectionNetwork`. Lookups use
    ``index_select`` (its backward is an ``index_add``, much cheaper on CPU than the embedding's).
    """

    def __init__(
        self,
        x_categoricals: Sequence[str],
        x_reals: Sequence[str],
        cat_vars: Mapping[str, tuple[int, int]],
        groups: Mapping[str, Sequence[str]],
        paddings: Sequence[str],
        real_vars: Mapping[str, int],
        parts: Mapping[str, Sequence[str]],
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory_kwargs = {"device": device, "dtype": dtype}
        self.cat_names = list(cat_vars)
        self.real_names = list(real_vars)
        self.cat_dims = [cat_vars[n][1] for n in self.cat_names]
        self.cardinalities = [cat_vars[n][0] for n in self.cat_names]
        self.real_dims = [real_vars[n] for n in self.real_names]
        self.sizes = {
            **dict(zip(self.cat_names, self.cat_dims)),
            **dict(zip(self.real_names, self.real_dims)),
        }
        self._d_cat = max(self.cat_dims, default=1)
        self._d_real = max(self.real_dims, default=1)
        x_cat = list(x_categoricals)
        self._register_code_check(x_cat, groups)
        self.parts: dict[str, tuple[list[str], list[str]]] = {}
        self._grouped: dict[str, bool] = {}
        self._padded: dict[str, bool] = {}
        for part, names in parts.items():
            self._register_part(part, names, x_cat, list(x_reals), groups, paddings, factory_kwargs)
        self._build_tables(factory_kwargs)
        self.reset_parameters()

    def _register_code_check(self, x_cat: list[str], groups: Mapping[str, Sequence[str]]) -> None:
        """Every categorical input column used and its variable's class count, for :meth:`check_codes`."""
        check_cols, check_card, self.col_names = [], [], []
        for o, name in enumerate(self.cat_names):
            for m in groups.get(name, [name]):
                check_cols.append(x_cat.index(m))
                check_card.append(self.cardinalities[o])
                self.col_names.append(m)
        self.register_buffer("_check_cols", torch.tensor(check_cols, dtype=torch.long), persistent=False)
        self.register_buffer("_check_card", torch.tensor(check_card, dtype=torch.long), persistent=False)

    def _register_part(
        self,
        part: str,
        names: Sequence[str],
        x_cat: list[str],
        x_real: list[str],
        groups: Mapping[str, Sequence[str]],
        paddings: Sequence[str],
        factory_kwargs: dict[str, Any],
    ) -> None:
        """The index buffers ``_<part>_*`` that gather ``part``'s variables from the inputs and tables."""
        cats = [n for n in names if n in self.cat_names]
        reals = [n for n in names if n in self.real_names]
        if [*cats, *reals] != list(names):
            raise ValueError(f"_InputEmbedding: part {part!r} must list categoricals before reals: {names}")
        self.parts[part] = (cats, reals)
        row_off = [sum(self.cardinalities[:o]) for o in range(len(self.cat_names))]
        cols, rows, pads, member = [], [], [], []
        for k, name in enumerate(cats):
            o = self.cat_names.index(name)
            for m in groups.get(name, [name]):
                cols.append(x_cat.index(m))
                rows.append(row_off[o])
                pads.append(name in paddings)
                member.append(k)
        self._grouped[part] = len(cols) != len(cats)
        self._padded[part] = any(pads)
        mat = torch.zeros(len(cats), len(cols))
        if cats:
            mat[torch.tensor(member), torch.arange(len(cols))] = 1.0
        d_cat, d_real = self._d_cat, self._d_real
        valid_c = [i + k * d_cat for k, n in enumerate(cats) for i in range(self.sizes[n])]
        ridx = [self.real_names.index(n) for n in reals]
        valid_r = [i + k * d_real for k, n in enumerate(reals) for i in range(self.sizes[n])]
        bufs = {
            "cols": torch.tensor(cols, dtype=torch.long),
            "rows": torch.tensor(rows, dtype=torch.long),
            "pad": torch.tensor(pads, dtype=torch.bool),
            "member": mat.to(**factory_kwargs),
            "cvalid": torch.tensor(valid_c, dtype=torch.long),
            "rcols": torch.tensor([x_real.index(n) for n in reals], dtype=torch.long),
            "ridx": torch.tensor(ridx, dtype=torch.long),
            "rvalid": torch.tensor(valid_r, dtype=torch.long),
            "reye": torch.eye(len(reals)).to(**factory_kwargs),
        }
        for key, t in bufs.items():
            self.register_buffer(f"_{part}_{key}", t, persistent=False)

    def _build_tables(self, factory_kwargs: dict[str, Any]) -> None:
        """The parameters: one categorical table ``[sum n_o, d_cat]``, the reals' lifts ``[n_real, d_real]``."""
        n_rows = sum(self.cardinalities)
        self.cat_weight = (
            nn.Parameter(torch.empty(n_rows, self._d_cat, **factory_kwargs)) if self.cat_names else None
        )
        if self.real_names:
            self.real_weight = nn.Parameter(torch.empty(len(self.real_names), self._d_real, **factory_kwargs))
            self.real_bias = nn.Parameter(torch.empty(len(self.real_names), self._d_real, **factory_kwargs))
        else:
            self.register_parameter("real_weight", None)
            self.register_parameter("real_bias", None)

    def features(self, part: str) -> dict[str, int]:
        """``{variable: width}`` of ``part``'s output, in order."""
        cats, reals = self.parts[part]
        return {n: self.sizes[n] for n in [*cats, *reals]}

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Embeddings ``U(-0.05, 0.05)`` (Keras default), reals Glorot-uniform per variable, zero bias."""
        if self.cat_weight is not None:
            self.cat_weight.uniform_(-0.05, 0.05)
            lo = 0
            for n, d in zip(self.cardinalities, self.cat_dims):  # unused columns stay zero
                self.cat_weight[lo : lo + n, d:] = 0.0
                lo += n
        if self.real_weight is not None:
            self.real_weight.zero_()
            for j, d in enumerate(self.real_dims):
                bound = math.sqrt(6.0 / (1 + d))
                self.real_weight[j, :d].uniform_(-bound, bound)
            self.real_bias.zero_()

    def check_codes(self, cat: torch.Tensor, where: str) -> None:
        """Raise a clear error for a categorical code outside its variable's classes."""
        if not self.cat_names:
            return
        codes = cat.index_select(-1, self._check_cols)
        bad = (codes < 0) | (codes >= self._check_card)
        if bool(bad.any()):
            flat_bad = bad.reshape(-1, bad.shape[-1])
            j = int(flat_bad.any(0).nonzero()[0, 0])
            value = int(codes.reshape(-1, codes.shape[-1])[flat_bad[:, j], j][0])
            raise ValueError(
                f"TemporalFusionTransformer: {where} column {self.col_names[j]!r} holds code {value}, "
                f"outside the {int(self._check_card[j])} classes the model was built with "
                "(a category unknown at training time?)"
            )

    def forward(self, cat: torch.Tensor, cont: torch.Tensor, part: str) -> torch.Tensor:
        cats, reals = self.parts[part]
        out = []
        if cats:
            cols = getattr(self, f"_{part}_cols")
            codes = cat.index_select(-1, cols)
            lead = codes.shape
            e = self.cat_weight.index_select(0, (codes + getattr(self, f"_{part}_rows")).reshape(-1))
            e = e.view(*lead, self._d_cat)  # [..., n_cols, d]
            if self._padded[part]:
                e = e.masked_fill((getattr(self, f"_{part}_pad") & (codes == 0)).unsqueeze(-1), 0.0)
            if self._grouped[part]:  # [o, c] @ [..., c, d]: a broadcast bmm (cheaper than einsum's permute copies)
                e = torch.matmul(getattr(self, f"_{part}_member").to(e.dtype), e)
            e = e.flatten(-2)
            valid = getattr(self, f"_{part}_cvalid")
            out.append(e if valid.numel() == e.shape[-1] else e.index_select(-1, valid))
        if reals:
            out.append(F.linear(cont.index_select(-1, getattr(self, f"_{part}_rcols")), *self._real_lift(part)))
        return out[0] if len(out) == 1 else torch.cat(out, dim=-1)

    def _real_lift(self, part: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(W [F_r, R], b [F_r])``: the lifts ``w_j x_j + b_j`` of ``part``'s ``R`` reals as one
        block-diagonal linear map to their ``F_r = sum d_j`` features (one matmul per step and one in
        its backward, instead of a broadcast multiply-add and reductions over ``[..., R, d]``; the
        extra terms are exact zeros, so the values equal the per-variable products)."""
        ridx, valid = getattr(self, f"_{part}_ridx"), getattr(self, f"_{part}_rvalid")
        w = self.real_weight.index_select(0, ridx)  # [R, d_real]
        blk = (w.unsqueeze(1) * getattr(self, f"_{part}_reye").unsqueeze(-1)).flatten(1)  # [R, R * d_real]
        b = self.real_bias.index_select(0, ridx).flatten()
        if valid.numel() != b.numel():
            blk, b = blk.index_select(-1, valid), b.index_select(0, valid)
        return blk.t(), b


# --------------------------------------------------------------------------------------------
# the model
# --------------------------------------------------------------------------------------------
def _duplicates(owner: str, what: str, names: Sequence[str]) -> None:
    dup = sorted({v for v in names if names.count(v) > 1})
    if dup:
        raise ConfigError(f"{owner}: {what} lists {dup} more than once")


def _keras_lstm_init_(lstm: nn.LSTM) -> None:
    """Keras' LSTM init: Glorot-uniform input weights, orthogonal recurrent weights, forget bias 1."""
    H = lstm.hidden_size
    with torch.no_grad():
        for name, p in lstm.named_parameters():
            if name.startswith("weight_ih"):
                nn.init.xavier_uniform_(p)
            elif name.startswith("weight_hh"):
                for g in range(4):  # orthogonal per gate block, as Keras' [H, 4H] recurrent kernel
                    nn.init.orthogonal_(p[g * H : (g + 1) * H])
            elif name.startswith("bias_ih"):
                p.zero_()
                p[H : 2 * H] = 1.0  # gate order i, f, g, o
            elif name.startswith("bias_hh"):
                p.zero_()


def _plain_static_grn(g: nn.Module) -> bool:
    """A static-context GRN whose parameters the batched path may read: plain modules, no hooks,
    no context or skip projection, sigmoid gate, LayerNorm with weight and bias, biases present
    (the caller also checks that the four share the dropout rate and the LayerNorm eps)."""
    if not (is_plain(g, GatedResidualNetwork) and g.context is None and g.skip is None):
        return False
    gn = g.gate_norm
    glu, norm = gn.glu, gn.norm
    return (
        all(is_plain(m, nn.Linear) and m.bias is not None for m in (g.fc1, g.fc2, glu.fc))
        and is_plain(gn, GateAddNorm)
        and gn.resample is None
        and gn.mask is None
        and is_plain(glu, GatedLinearUnit)
        and is_plain(glu.gate_act, nn.Sigmoid)
        and is_plain(norm, nn.LayerNorm)
        and norm.weight is not None
        and norm.bias is not None
        and is_plain(g.act, ELU)
        and is_plain(glu.dropout, FastDropout)
    )


_NAME_LISTS = (
    "x_categoricals", "x_reals", "static_categoricals", "static_reals", "time_varying_categoricals_encoder",
    "time_varying_categoricals_decoder", "time_varying_reals_encoder", "time_varying_reals_decoder",
    "embedding_paddings",
)  # fmt: skip


@dataclasses.dataclass(frozen=True, kw_only=True)
class TFTConfig(ModelConfig):
    """Config of :class:`TemporalFusionTransformer` (pytorch-forecasting's names in brackets
    where ours differ; :mod:`~gatelab.timeseries.models.tft_port` maps them). Every value is a
    plain list/dict/number, so the config saves as YAML.

    Variables (usually from the data: :func:`config_from_dataset`):
        x_categoricals: column order of ``encoder_cat`` / ``decoder_cat``.
        x_reals: column order of ``encoder_cont`` / ``decoder_cont``.
        static_categoricals, static_reals: static inputs (the first time step is used).
        time_varying_categoricals_encoder, time_varying_reals_encoder: inputs of the past window
            (observed and known).
        time_varying_categoricals_decoder, time_varying_reals_decoder: known-future inputs.
        embedding_sizes: ``{name: (n_classes, dim)}`` or ``{name: n_classes}`` for every
            categorical variable (a group name for ``categorical_groups``); ``dim`` is capped at
            ``d_model`` and ignored by the ``paper`` layout (which uses ``d_model``).
        categorical_groups: ``{name: [columns]}``: columns of ``x_categoricals`` embedded by one
            table and summed into one variable ``name``.
        embedding_paddings: categoricals whose code 0 embeds to zeros.
        lookback (``max_encoder_length``): longest encoder window (for interpretation plots;
            ``None``: not known).

    Sizes (presets ``"stallion"``, ``"electricity"``, ``"traffic"``: the pytorch-forecasting
    tutorial's and the paper's, official data formatters):
        d_model (``hidden_size``): ``H``, the width of every GRN, the LSTMs and the attention.
        num_lstm_layers (``lstm_layers``): stacked LSTM layers (each initialised from the static context).
        dropout: dropout rate of every GRN/GLU, the attention and between LSTM layers.
        num_heads (``attention_head_size``): attention heads (``<= d_model``).
        continuous_dim (``hidden_continuous_size``): width reals are lifted to (``pytorch-forecasting`` layout).
        continuous_dims (``hidden_continuous_sizes``): per-real overrides of ``continuous_dim``.
        quantiles: the output quantiles (distinct, increasing, in (0, 1)).

    Variant:
        layout: ``"paper"`` or ``"pytorch-forecasting"`` (see the module docstring).
        causal_attention: decoder steps attend only to the past (and, with
            ``attend_to_self``, their own step); ``False``: to every valid decoder step.
        attend_to_self: default (``None``) ``True`` for ``paper``, ``False`` for ``pytorch-forecasting``.
        target_transform: inverse-transform of the output, a key of :data:`TARGET_TRANSFORMS`.
        rescale_output: ``prediction = target_transform^-1(y_hat * scale + center)`` with
            ``target_scale`` from the batch; ``False`` returns ``y_hat``.
        quantile_head: ``"independent"`` (default; the paper's and pytorch-forecasting's: one
            linear output per quantile, which may cross) or ``"monotone"``: the first quantile
            is ``y_1 = W_1 psi + b_1`` and each next one adds a positive step,
            ``y_k = y_{k-1} + softplus(W_k psi + b_k)``, so the quantiles are strictly increasing
            (non-crossing) for any weights; the rescaling keeps the order because the scale is
            positive and every inverse transform is non-decreasing (``sqrt``'s inverse ``y^2`` is
            applied to ``max(y, 0)`` in this mode); a running maximum over the rescaled quantiles
            removes the reversals of a few ulps that float rounding of the rescale can make
            between quantiles equal up to rounding. Same parameters, different outputs.
    """

    x_categoricals: tuple[str, ...] = ()
    x_reals: tuple[str, ...] = ()
    static_categoricals: tuple[str, ...] = ()
    static_reals: tuple[str, ...] = ()
    time_varying_categoricals_encoder: tuple[str, ...] = ()
    time_varying_categoricals_decoder: tuple[str, ...] = ()
    time_varying_reals_encoder: tuple[str, ...] = ()
    time_varying_reals_decoder: tuple[str, ...] = ()
    embedding_sizes: dict[str, tuple[PositiveInt, PositiveInt] | PositiveInt] = dataclasses.field(
        default_factory=dict
    )
    categorical_groups: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    embedding_paddings: tuple[str, ...] = ()
    d_model: PositiveInt = 16
    num_lstm_layers: PositiveInt = 1
    dropout: Dropout = 0.1
    num_heads: PositiveInt = 4
    continuous_dim: PositiveInt = 8
    continuous_dims: dict[str, PositiveInt] = dataclasses.field(default_factory=dict)
    quantiles: tuple[UnitInterval, ...] = (0.1, 0.5, 0.9)
    lookback: PositiveInt | None = None
    layout: Literal["paper", "pytorch-forecasting"] = "paper"
    causal_attention: bool = True
    attend_to_self: bool | None = None
    target_transform: Literal["log", "log1p", "logit", "count", "softplus", "relu", "sqrt"] | None = None
    rescale_output: bool = True
    quantile_head: Literal["independent", "monotone"] = "independent"

    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "stallion": {"d_model": 16, "num_heads": 2, "dropout": 0.1, "continuous_dim": 8},
        "electricity": {"d_model": 160, "num_heads": 4, "dropout": 0.1},
        "traffic": {"d_model": 320, "num_heads": 4, "dropout": 0.3},
    }

    def check(self) -> None:
        owner = "TemporalFusionTransformer"
        if self.num_heads > self.d_model:
            raise ConfigError(f"{owner}: num_heads {self.num_heads} > d_model {self.d_model}")
        qs = list(self.quantiles)
        if not qs or any(not 0.0 < q < 1.0 for q in qs) or qs != sorted(set(qs)):
            raise ConfigError(
                f"{owner}: quantiles must be distinct, increasing and in (0, 1), got {list(self.quantiles)!r}"
            )
        for what in _NAME_LISTS:
            _duplicates(owner, what, list(getattr(self, what)))
        for g, members in self.categorical_groups.items():
            _duplicates(owner, f"categorical_groups[{g!r}]", list(members))
        self._check_variables(owner)

    def _check_variables(self, owner: str) -> None:
        """Every variable a network uses is a column (or a group of columns) with its sizes."""
        if not self.time_varying_categoricals_encoder + self.time_varying_reals_encoder:
            raise ConfigError(f"{owner}: no encoder (past) inputs; give time_varying_*_encoder")
        if not self.time_varying_categoricals_decoder + self.time_varying_reals_decoder:
            raise ConfigError(
                f"{owner}: no decoder (known-future) inputs; give time_varying_*_decoder "
                "(e.g. a relative time index)"
            )
        for n in self.reals_used:
            if n not in self.x_reals:
                raise ConfigError(f"{owner}: real variable {n!r} is not a column of x_reals {list(self.x_reals)}")
        for g, members in self.categorical_groups.items():
            for m in members:
                if m not in self.x_categoricals:
                    raise ConfigError(
                        f"{owner}: categorical_groups[{g!r}] member {m!r} is not a column of x_categoricals"
                    )
        for n in self.categoricals_used:
            if n not in self.categorical_groups and n not in self.x_categoricals:
                raise ConfigError(
                    f"{owner}: categorical variable {n!r} is neither a column of x_categoricals nor a group"
                )
            if n not in self.embedding_sizes:
                raise ConfigError(f"{owner}: embedding_sizes has no entry for categorical variable {n!r}")
        for n in self.embedding_paddings:
            if n not in self.embedding_sizes:
                raise ConfigError(f"{owner}: embedding_paddings names unknown variable {n!r}")
        for n in self.continuous_dims:
            if n not in self.x_reals:
                raise ConfigError(f"{owner}: continuous_dims names unknown real {n!r}")

    @property
    def categoricals_used(self) -> list[str]:
        """Static, encoder and decoder categoricals, each once, in that order."""
        return list(
            dict.fromkeys(
                self.static_categoricals
                + self.time_varying_categoricals_encoder
                + self.time_varying_categoricals_decoder
            )
        )

    @property
    def reals_used(self) -> list[str]:
        """Static, encoder and decoder reals, each once, in that order."""
        return list(
            dict.fromkeys(self.static_reals + self.time_varying_reals_encoder + self.time_varying_reals_decoder)
        )

    def variable_sizes(self) -> tuple[dict[str, tuple[int, int]], dict[str, int]]:
        """``({categorical: (n_classes, width)}, {real: width})`` of the layout: every width is
        ``d_model`` for ``paper``; ``pytorch-forecasting`` caps the categoricals' ``dim`` at
        ``d_model`` (fastai's heuristic for a bare ``n_classes``) and lifts reals to ``continuous_dim``."""
        H, pf = self.d_model, self.layout == "pytorch-forecasting"
        cat_vars: dict[str, tuple[int, int]] = {}
        for n in self.categoricals_used:
            spec = self.embedding_sizes[n]
            card, dim = (spec, default_embedding_size(spec)) if isinstance(spec, int) else spec
            cat_vars[n] = (card, min(dim, H) if pf else H)
        real_vars = {n: (self.continuous_dims.get(n, self.continuous_dim) if pf else H) for n in self.reals_used}
        return cat_vars, real_vars


class TemporalFusionTransformer(PretrainedMixin, nn.Module):
    """Temporal Fusion Transformer (see the module docstring for the equations and inputs).

    Built from a :class:`TFTConfig` (or a mapping, or its keys as keywords; a config plus keyword
    overrides also works); ``device``/``dtype`` place the parameters and are not config keys.
    The sub-networks are built in the order of the equations (:meth:`_build_variable_selection`,
    :meth:`_build_static_encoders`, :meth:`_build_seq2seq`, :meth:`_build_temporal_fusion`).
    """

    config_class = TFTConfig

    def __init__(
        self,
        config: TFTConfig | Mapping[str, Any] | None = None,
        /,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        **overrides: Any,
    ) -> None:
        super().__init__()
        self.config = cfg = TFTConfig.build(config, **overrides)
        fk = {"device": device, "dtype": dtype}
        pf = cfg.layout == "pytorch-forecasting"
        self.d_model = cfg.d_model
        self.quantiles = list(cfg.quantiles)
        self.layout = cfg.layout
        self.lookback = cfg.lookback
        self.causal_attention = cfg.causal_attention
        self.attend_to_self = (not pf) if cfg.attend_to_self is None else cfg.attend_to_self
        self.target_transform = cfg.target_transform
        self.rescale_output = cfg.rescale_output
        self.quantile_head = cfg.quantile_head
        self.num_lstm_layers = cfg.num_lstm_layers
        self.x_categoricals = list(cfg.x_categoricals)
        self.x_reals = list(cfg.x_reals)
        self.static_variables = [*cfg.static_categoricals, *cfg.static_reals]
        self.encoder_variables = [*cfg.time_varying_categoricals_encoder, *cfg.time_varying_reals_encoder]
        self.decoder_variables = [*cfg.time_varying_categoricals_decoder, *cfg.time_varying_reals_decoder]
        self._build_variable_selection(cfg, fk)
        self._build_static_encoders(cfg, fk)
        self._build_seq2seq(cfg, fk)
        self._build_temporal_fusion(cfg, fk)

    def _grn(self, cfg: TFTConfig, fk: dict[str, Any], context: int | None = None) -> GatedResidualNetwork:
        H = cfg.d_model
        return GatedResidualNetwork(H, H, H, context_dim=context, act=ELU, dropout=cfg.dropout, **fk)

    def _build_variable_selection(self, cfg: TFTConfig, fk: dict[str, Any]) -> None:
        """The input embedding (all variables, one op per kind) and the static, encoder and decoder VSNs."""
        H, pf = cfg.d_model, cfg.layout == "pytorch-forecasting"
        cat_vars, real_vars = cfg.variable_sizes()
        parts = {"static": self.static_variables, "encoder": self.encoder_variables, "decoder": self.decoder_variables}
        groups = {k: list(v) for k, v in cfg.categorical_groups.items()}
        self.input_embedding = _InputEmbedding(
            self.x_categoricals, self.x_reals, cat_vars, groups, list(cfg.embedding_paddings), real_vars, parts, **fk
        )

        def vsn(part: str, cats: Sequence[str], context: int | None) -> VariableSelectionNetwork:
            sizes = self.input_embedding.features(part)
            return VariableSelectionNetwork(
                sizes,
                H,
                context_dim=context,
                act=ELU,
                dropout=cfg.dropout,
                skip="interpolate" if pf else "linear",
                resample_only=list(cats) if pf else (),
                grn_hidden_dims=[min(s, H) for s in sizes.values()] if pf else None,
                weight_hidden_dim=min(H, len(sizes)) if pf else None,
                **fk,
            )

        self.static_vsn = vsn("static", cfg.static_categoricals, None) if self.static_variables else None
        self.encoder_vsn = vsn("encoder", cfg.time_varying_categoricals_encoder, H)
        self.decoder_vsn = vsn("decoder", cfg.time_varying_categoricals_decoder, H)

    def _build_static_encoders(self, cfg: TFTConfig, fk: dict[str, Any]) -> None:
        """The static covariate encoders: c_s (selection), c_e (enrichment), c_h, c_c (LSTM state)."""
        self.static_context_variable_selection = self._grn(cfg, fk)
        self.static_context_enrichment = self._grn(cfg, fk)
        self.static_context_initial_hidden_lstm = self._grn(cfg, fk)
        self.static_context_initial_cell_lstm = self._grn(cfg, fk)

    def _build_seq2seq(self, cfg: TFTConfig, fk: dict[str, Any]) -> None:
        """Encoder and decoder LSTMs (Keras init) and the gated skip over them (eq. 17)."""
        H, L = cfg.d_model, cfg.num_lstm_layers
        lstm_dropout = cfg.dropout if L > 1 else 0.0
        self.lstm_encoder = nn.LSTM(H, H, L, batch_first=True, dropout=lstm_dropout, **fk)
        self.lstm_decoder = nn.LSTM(H, H, L, batch_first=True, dropout=lstm_dropout, **fk)
        _keras_lstm_init_(self.lstm_encoder)
        _keras_lstm_init_(self.lstm_decoder)
        self.post_lstm_gate = GateAddNorm(H, dropout=cfg.dropout, **fk)

    def _build_temporal_fusion(self, cfg: TFTConfig, fk: dict[str, Any]) -> None:
        """Static enrichment, interpretable attention, the position-wise GRN, the output gate and
        the quantile layer (eqs. 18-23)."""
        H, pf = cfg.d_model, cfg.layout == "pytorch-forecasting"
        self.static_enrichment = self._grn(cfg, fk, context=H)
        self.attention = InterpretableMultiHeadAttention(H, cfg.num_heads, dropout=cfg.dropout, bias=pf, **fk)
        self.post_attn_gate_norm = GateAddNorm(H, dropout=cfg.dropout, **fk)
        self.pos_wise_ff = self._grn(cfg, fk)
        self.pre_output_gate_norm = GateAddNorm(H, dropout=0.0, **fk)
        self.output_layer = nn.Linear(H, len(cfg.quantiles), **fk)
        nn.init.xavier_uniform_(self.output_layer.weight)
        nn.init.zeros_(self.output_layer.bias)

    # ---------------------------------------------------------------------------------------
    @classmethod
    def from_dataset(cls, dataset: Any, **kwargs: Any) -> TemporalFusionTransformer:
        """Build a model sized for a pytorch-forecasting ``TimeSeriesDataSet`` (e.g. one from
        :func:`~gatelab.timeseries.data.tft.build_dataset`); ``kwargs`` override the config.

        Defaults to ``layout="pytorch-forecasting"`` (pytorch-forecasting's network, ours), see
        :func:`config_from_dataset`.
        """
        return cls(**config_from_dataset(dataset, **kwargs))

    # ---------------------------------------------------------------------------------------
    def _attention_blocked(
        self,
        encoder_lengths: torch.Tensor | None,
        decoder_lengths: torch.Tensor | None,
        B: int,
        Te: int,
        Td: int,
        device: torch.device,
    ) -> torch.Tensor:
        """``[B, T_d, T_e + T_d]``: ``True`` where decoder step ``i`` may not attend.

        The parts that depend only on the window lengths (the step indices, the causal mask and
        the all-valid masks) are cached per ``(T_e, T_d, device)`` (not while ``torch.compile``
        traces: the compiler folds them); only the comparisons with the batch's lengths run
        per step.
        """
        fixed = self._fixed_masks(Te, Td, device)
        ar_e, ar_d, causal, none_e, none_d = fixed
        enc = ar_e >= encoder_lengths[:, None, None] if encoder_lengths is not None else none_e
        if self.causal_attention:
            dec = causal
        elif decoder_lengths is not None:
            dec = ar_d >= decoder_lengths[:, None, None]
        else:
            dec = none_d
        return torch.cat([enc.expand(B, Td, Te), dec.expand(B, Td, Td)], dim=-1)

    def _fixed_masks(self, Te: int, Td: int, device: torch.device) -> tuple[torch.Tensor, ...]:
        """``(arange(T_e)[1, 1, T_e], arange(T_d)[1, 1, T_d], causal [1, T_d, T_d], no-block [1, 1, T_e],
        no-block [1, 1, T_d])`` for the window lengths, cached (see :meth:`_attention_blocked`)."""
        compiling = torch.compiler.is_compiling()
        key = (Te, Td, str(device))
        cache = None if compiling else self.__dict__.setdefault("_mask_cache", {})
        if cache is not None and key in cache:
            return cache[key]
        i = torch.arange(Td, device=device)[:, None]
        j = torch.arange(Td, device=device)[None, :]
        causal = ((j > i) if self.attend_to_self else (j >= i)).unsqueeze(0)
        out = (
            torch.arange(Te, device=device)[None, None, :],
            j.unsqueeze(0),
            causal,
            torch.zeros(1, 1, Te, dtype=torch.bool, device=device),
            torch.zeros(1, 1, Td, dtype=torch.bool, device=device),
        )
        if cache is not None:
            if len(cache) >= 64:  # many window lengths: keep the newest only
                cache.clear()
            cache[key] = out
        return out

    def _static_encoders(self) -> tuple[GatedResidualNetwork, ...]:
        return (
            self.static_context_variable_selection,
            self.static_context_enrichment,
            self.static_context_initial_hidden_lstm,
            self.static_context_initial_cell_lstm,
        )

    def _static_contexts(self, static: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``(c_s, c_e, c_h, c_c)``, each ``[B, H]``: the four static GRNs on ``static`` ``[B, H]``.

        The four GRNs (same input, same sizes) run as one: their weights are stacked
        ``[4, ...]`` on the fly (the modules and the state dict stay as they are) and each layer
        is one ``baddbmm``, the GLU gate, skip add and LayerNorm one pass over ``[4, B, H]``.
        The math is each GRN's own (:meth:`GatedResidualNetwork.forward`: ``fc1``, ELU,
        ``fc2``, dropout, GLU, ``LayerNorm(GLU + static)``); equal to calling them up to float
        rounding (``tests/timeseries/models/test_tft_fast.py``). Dropout masks are drawn once
        for the stack. A capture, hooks or replaced sub-modules make it call the modules.
        """
        grns = self._static_encoders()
        glus = [g.gate_norm.glu for g in grns]
        norms = [g.gate_norm.norm for g in grns]
        if (
            is_capturing()
            or static.dim() != 2
            or not all(_plain_static_grn(g) for g in grns)
            or len({u.dropout.p for u in glus}) != 1
            or len({n.eps for n in norms}) != 1
        ):
            return tuple(g(static) for g in grns)
        H = static.shape[-1]
        x = static.unsqueeze(0).expand(len(grns), -1, -1)

        def stacked(mods: Sequence[nn.Linear]) -> tuple[torch.Tensor, torch.Tensor]:
            return torch.stack([m.weight for m in mods]).transpose(1, 2), torch.stack([m.bias for m in mods])

        w1, b1 = stacked([g.fc1 for g in grns])
        w2, b2 = stacked([g.fc2 for g in grns])
        wg, bg = stacked([u.fc for u in glus])
        h = grns[0].act(torch.baddbmm(b1.unsqueeze(1), x, w1))
        h = glus[0].dropout(torch.baddbmm(b2.unsqueeze(1), h, w2))
        value, gate = torch.baddbmm(bg.unsqueeze(1), h, wg).chunk(2, dim=-1)
        y = torch.addcmul(x, value, torch.sigmoid(gate))
        y = F.layer_norm(y, (H,), eps=norms[0].eps)
        nw = torch.stack([n.weight for n in norms]).unsqueeze(1)
        nb = torch.stack([n.bias for n in norms]).unsqueeze(1)
        return tuple(torch.addcmul(nb, y, nw).unbind(0))

    @torch.compiler.disable
    def _lstm(
        self,
        lstm: nn.LSTM,
        x: torch.Tensor,
        state: tuple[torch.Tensor, torch.Tensor],
        lengths: torch.Tensor | None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Run ``lstm`` on right-padded ``x`` ``[B, T, H]`` with per-sample ``lengths``.

        Padded steps are packed away (the final state is each sample's last valid step; padded
        outputs are zero); a sample of length 0 keeps its initial state. Under CPU autocast the
        LSTM runs in float32 (CPU autocast has no LSTM rule). Under ``torch.compile`` this runs
        eagerly (packing depends on the lengths' values).
        """
        if x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            with torch.autocast("cpu", enabled=False):
                return self._lstm(lstm, x.float(), (state[0].float(), state[1].float()), lengths)
        T = x.shape[1]
        if lengths is None or bool((lengths == T).all()):
            return lstm(x, state)
        packed = rnn.pack_padded_sequence(
            x, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False
        )
        out, (h, c) = lstm(packed, state)
        out, _ = rnn.pad_packed_sequence(out, batch_first=True, total_length=T)
        empty = (lengths == 0)[None, :, None]
        h = torch.where(empty, state[0], h)
        c = torch.where(empty, state[1], c)
        return out, (h, c)

    @torch.compiler.disable
    def _check_inputs(self, x: Mapping[str, torch.Tensor]) -> None:
        """Keys, shapes and categorical codes of a batch (eager under ``torch.compile``: the
        code check reads values)."""
        need = ["encoder_cont", "decoder_cont", "encoder_cat", "decoder_cat"]
        if self.rescale_output:
            need.append("target_scale")
        missing = [k for k in need if k not in x]
        if missing:
            raise KeyError(
                f"TemporalFusionTransformer: batch lacks {missing} (keys: {sorted(x)}); "
                + (
                    "pass target_scale or build with rescale_output=False"
                    if "target_scale" in missing
                    else ""
                )
            )
        n_cat, n_real = len(self.x_categoricals), len(self.x_reals)
        for part in ("encoder", "decoder"):
            cont, cat = x[f"{part}_cont"], x[f"{part}_cat"]
            if cont.dim() != 3 or cont.shape[-1] != n_real:
                raise ValueError(
                    f"TemporalFusionTransformer: {part}_cont must be [B, T, {n_real}] (x_reals {self.x_reals}), "
                    f"got {tuple(cont.shape)}"
                )
            if cat.dim() != 3 or cat.shape[-1] != n_cat or cat.shape[:2] != cont.shape[:2]:
                raise ValueError(
                    f"TemporalFusionTransformer: {part}_cat must be [B, T, {n_cat}] like {part}_cont "
                    f"{tuple(cont.shape[:2])} (x_categoricals {self.x_categoricals}), got {tuple(cat.shape)}"
                )
            self.input_embedding.check_codes(cat, f"{part}_cat")
        if x["decoder_cont"].shape[1] == 0:
            raise ValueError(
                "TemporalFusionTransformer: the decoder window is empty (decoder_cont has 0 steps)"
            )

    def forward(self, x: Mapping[str, torch.Tensor]) -> TFTOutput:
        """Forecast from a pytorch-forecasting style batch ``x`` (see the module docstring)."""
        self._check_inputs(x)
        enc_cont, dec_cont = x["encoder_cont"], x["decoder_cont"]
        B, Te = enc_cont.shape[:2]
        Td = dec_cont.shape[1]
        device = enc_cont.device
        enc_len = x.get("encoder_lengths")
        dec_len = x.get("decoder_lengths")
        if enc_len is None:
            enc_len_out = torch.full((B,), Te, dtype=torch.long, device=device)
        else:
            enc_len_out = enc_len
        dec_len_out = (
            dec_len if dec_len is not None else torch.full((B,), Td, dtype=torch.long, device=device)
        )

        emb = self.input_embedding
        enc_cat, dec_cat = x["encoder_cat"], x["decoder_cat"]
        H = self.d_model
        if self.static_vsn is not None:  # static inputs: the first time step only
            first_cat = enc_cat[:, 0] if Te > 0 else dec_cat[:, 0]
            first_cont = enc_cont[:, 0] if Te > 0 else dec_cont[:, 0]
            static, static_w = self.static_vsn(emb(first_cat, first_cont, "static"))
        else:
            static = enc_cont.new_zeros(B, H)
            static_w = enc_cont.new_zeros(B, 0)
        c_sel, c_enr, c_h, c_c = self._static_contexts(static)

        enc_emb, enc_w = self.encoder_vsn(emb(enc_cat, enc_cont, "encoder"), c_sel[:, None])
        dec_emb, dec_w = self.decoder_vsn(emb(dec_cat, dec_cont, "decoder"), c_sel[:, None])

        L = self.num_lstm_layers
        state = (
            c_h.unsqueeze(0).expand(L, -1, -1).contiguous(),
            c_c.unsqueeze(0).expand(L, -1, -1).contiguous(),
        )
        enc_out, state = self._lstm(self.lstm_encoder, enc_emb, state, enc_len)
        dec_out, _ = self._lstm(self.lstm_decoder, dec_emb, state, dec_len)
        lstm_out = torch.cat([enc_out, dec_out], dim=1).to(enc_emb.dtype)
        phi = self.post_lstm_gate(lstm_out, torch.cat([enc_emb, dec_emb], dim=1))

        theta = self.static_enrichment(phi, c_enr[:, None])
        blocked = self._attention_blocked(enc_len, dec_len, B, Te, Td, device)
        attn_out, attn_w = self.attention(theta[:, Te:], theta, theta, blocked)
        out = self.post_attn_gate_norm(attn_out, theta[:, Te:])
        out = self.pos_wise_ff(out)
        out = self.pre_output_gate_norm(out, phi[:, Te:])
        pred = self.output_layer(out)  # [B, Td, Q]
        if self.quantile_head == "monotone":
            pred = monotone_quantiles(pred)
        if self.rescale_output:
            pred = self.rescale(pred, x["target_scale"])
            if self.quantile_head == "monotone":  # float rounding of the rescale may reverse equal neighbours
                pred = torch.cummax(pred, dim=-1).values
        return TFTOutput(
            prediction=pred,
            encoder_attention=attn_w[..., :Te],
            decoder_attention=attn_w[..., Te:],
            static_variables=static_w,
            encoder_variables=enc_w,
            decoder_variables=dec_w,
            encoder_lengths=enc_len_out,
            decoder_lengths=dec_len_out,
        )

    def rescale(self, y: torch.Tensor, target_scale: torch.Tensor) -> torch.Tensor:
        """``target_transform^-1(y * scale + center)`` with ``target_scale`` ``[B, 2]`` = (center, scale)."""
        if target_scale.dim() != 2 or target_scale.shape[-1] != 2 or target_scale.shape[0] != y.shape[0]:
            raise ValueError(
                f"TemporalFusionTransformer: target_scale must be [B={y.shape[0]}, 2] (center, scale), "
                f"got {tuple(target_scale.shape)}"
            )
        ts = target_scale.to(y.dtype)
        y = y * ts[:, 1, None, None] + ts[:, 0, None, None]
        if self.quantile_head == "monotone" and self.target_transform == "sqrt":
            y = y.clamp(min=0.0)  # y^2 is increasing on [0, inf) only
        return TARGET_TRANSFORMS[self.target_transform](y)

    def point_prediction(self, prediction: torch.Tensor) -> torch.Tensor:
        """The median forecast ``[B, T_d]`` (the quantile nearest 0.5) of ``prediction`` ``[B, T_d, Q]``."""
        j = min(range(len(self.quantiles)), key=lambda i: abs(self.quantiles[i] - 0.5))
        return prediction[..., j]


# --------------------------------------------------------------------------------------------
# building from a dataset
# --------------------------------------------------------------------------------------------
def config_from_dataset(dataset: Any, **overrides: Any) -> dict[str, Any]:
    """Model config for a pytorch-forecasting ``TimeSeriesDataSet`` (plain values; ``overrides`` win).

    :class:`TFTConfig` keys. Reads the dataset's variables the way pytorch-forecasting's ``from_dataset`` does: encoder
    inputs are the known and observed variables (``allowed_encoder_known_variable_names``
    restricts the known ones), decoder inputs the known ones; categorical codes, embedding
    sizes (fastai heuristic), groups and padding variables from its encoders; the target
    normaliser's transformation becomes ``target_transform``. Defaults ``layout`` to
    ``"pytorch-forecasting"`` and ``quantiles`` to ``(0.1, 0.5, 0.9)``.

    Raises:
        ConfigError: a multi-target dataset, a classification target, or a normaliser whose
            inverse is not a named transformation.
    """
    owner = "TemporalFusionTransformer.from_dataset"
    overrides = dict(overrides)
    allowed = overrides.pop("allowed_encoder_known_variable_names", None)
    target = getattr(dataset, "target", None)
    if target is None or not hasattr(dataset, "reals"):
        raise ConfigError(
            f"{owner}: expected a pytorch_forecasting TimeSeriesDataSet, got {type(dataset).__name__}"
        )
    if isinstance(target, (list, tuple)) and len(target) != 1:
        raise ConfigError(
            f"{owner}: multi-target datasets ({list(target)}) are not supported; use one target"
        )
    normalizer = dataset.target_normalizer
    kind = type(normalizer).__name__
    if kind in ("MultiNormalizer", "NaNLabelEncoder"):
        raise ConfigError(f"{owner}: target_normalizer {kind} is not supported (one real-valued target only)")
    transformation = getattr(normalizer, "transformation", None)
    if transformation is not None and not isinstance(transformation, str):
        raise ConfigError(
            f"{owner}: the target normaliser's transformation {transformation!r} is not a named one "
            f"({[k for k in TARGET_TRANSFORMS if k]})"
        )
    known_c = list(dataset._time_varying_known_categoricals)
    known_r = list(dataset._time_varying_known_reals)
    if allowed is None:
        allowed = known_c + known_r
    encoders = dataset._categorical_encoders
    cats = set(dataset.categoricals)
    cfg: dict[str, Any] = {
        "x_categoricals": list(dataset.flat_categoricals),
        "x_reals": list(dataset.reals),
        "static_categoricals": list(dataset._static_categoricals),
        "static_reals": list(dataset._static_reals),
        "time_varying_categoricals_encoder": [n for n in known_c if n in allowed]
        + list(dataset._time_varying_unknown_categoricals),
        "time_varying_categoricals_decoder": known_c,
        "time_varying_reals_encoder": [n for n in known_r if n in allowed]
        + list(dataset._time_varying_unknown_reals),
        "time_varying_reals_decoder": known_r,
        "embedding_sizes": {
            n: [len(enc.classes_), default_embedding_size(len(enc.classes_))]
            for n, enc in encoders.items()
            if n in cats
        },
        "categorical_groups": {k: list(v) for k, v in dataset._variable_groups.items()},
        "embedding_paddings": list(dataset.dropout_categoricals),
        "lookback": int(dataset.max_encoder_length),
        "target_transform": transformation,
        "layout": "pytorch-forecasting",
    }
    emb = overrides.pop("embedding_sizes", None)
    if emb:
        cfg["embedding_sizes"].update({k: list(v) if not isinstance(v, int) else v for k, v in emb.items()})
    cfg.update(overrides)
    return cfg


# --------------------------------------------------------------------------------------------
# tiny config and example inputs (registered in gatelab.timeseries.registry)
# --------------------------------------------------------------------------------------------
_TINY: dict[str, Any] = {
    "x_categoricals": ["store", "month", "hol_a", "hol_b"],
    "x_reals": ["size", "price", "time", "y"],
    "static_categoricals": ["store"],
    "static_reals": ["size"],
    "time_varying_categoricals_encoder": ["month", "holidays"],
    "time_varying_categoricals_decoder": ["month", "holidays"],
    "time_varying_reals_encoder": ["price", "time", "y"],
    "time_varying_reals_decoder": ["price", "time"],
    "embedding_sizes": {"store": [3, 2], "month": [12, 5], "holidays": [3, 2]},
    "categorical_groups": {"holidays": ["hol_a", "hol_b"]},
    "d_model": 8,
    "num_heads": 2,
    "continuous_dim": 4,
    "target_transform": "softplus",
}


def example_batch(
    model: TemporalFusionTransformer, batch: int = 2, encoder_length: int = 5, decoder_length: int = 3
) -> dict[str, torch.Tensor]:
    """A random batch in pytorch-forecasting's layout for ``model`` (variable encoder lengths)."""
    g = torch.Generator().manual_seed(0)
    emb = model.input_embedding
    n_cat, n_real = len(model.x_categoricals), len(model.x_reals)
    card = torch.ones(n_cat, dtype=torch.long)
    card[emb._check_cols] = emb._check_card

    def cats(T: int) -> torch.Tensor:
        return (torch.rand(batch, T, n_cat, generator=g) * card).long()

    enc_len = torch.full((batch,), encoder_length, dtype=torch.long)
    enc_len[1::2] = max(1, encoder_length - 2)
    return {
        "encoder_cat": cats(encoder_length),
        "encoder_cont": torch.randn(batch, encoder_length, n_real, generator=g),
        "decoder_cat": cats(decoder_length),
        "decoder_cont": torch.randn(batch, decoder_length, n_real, generator=g),
        "encoder_lengths": enc_len,
        "decoder_lengths": torch.full((batch,), decoder_length, dtype=torch.long),
        "target_scale": torch.stack(
            [torch.randn(batch, generator=g), torch.rand(batch, generator=g) + 0.5], -1
        ),
    }


def _example(model: nn.Module, batch: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
    return (example_batch(model, batch),), {}  # type: ignore[arg-type]
