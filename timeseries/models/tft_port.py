"""Port a pytorch-forecasting ``TemporalFusionTransformer`` into ours (weights and layout).

pytorch-forecasting's TFT (``pytorch_forecasting.models.TemporalFusionTransformer``) maps onto
:class:`~gatelab.timeseries.models.tft.TemporalFusionTransformer` built with
``layout="pytorch-forecasting"``:

=========================================== ===================================================
theirs                                      ours
=========================================== ===================================================
``input_embeddings.embeddings[name]``       rows of ``input_embedding.cat_weight`` (one table)
``prescalers[name]`` (``Linear(1, d)``)     row of ``input_embedding.real_weight/real_bias``
``{static,encoder,decoder}_variable_selection`` ``{static,encoder,decoder}_vsn`` (batched VSN,
                                            via :meth:`gatelab.core.VariableSelectionNetwork.from_pytorch_forecasting`)
``static_context_*`` GRNs                   same names (:class:`gatelab.core.GatedResidualNetwork`)
``lstm_encoder``, ``lstm_decoder``          same names (``nn.LSTM``)
``post_lstm_gate_encoder`` + ``post_lstm_add_norm_encoder`` ``post_lstm_gate`` (GateAddNorm)
``static_enrichment``, ``pos_wise_ff``      same names
``multihead_attn``                          ``attention`` (per-head ``q_layers``/``k_layers``
                                            stacked into one ``q_proj``/``k_proj``)
``post_attn_gate_norm``, ``pre_output_gate_norm``, ``output_layer`` same names
=========================================== ===================================================

pytorch-forecasting shares one prescaler per real between the static, encoder and decoder
networks; so do we (one bank of prescalers). Not supported (a clear error):
``share_single_variable_networks=True``, several targets, non-quantile losses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from gatelab.core import VariableSelectionNetwork, load_pytorch_forecasting_state
from gatelab.core.config import ConfigError

from .tft import ELU

if TYPE_CHECKING:  # pragma: no cover
    from .tft import TemporalFusionTransformer

__all__ = ["from_pytorch_forecasting", "load_tft_state"]


def _expect_tft(theirs: nn.Module) -> None:
    t = type(theirs)
    if "pytorch_forecasting" not in t.__module__ or not any(
        c.__name__ == "TemporalFusionTransformer" for c in t.__mro__
    ):
        raise TypeError(
            f"expected pytorch_forecasting's TemporalFusionTransformer, got {t.__module__}.{t.__name__}"
        )
    if theirs.hparams.get("share_single_variable_networks", False):
        raise ConfigError("porting a TFT with share_single_variable_networks=True is not supported")
    if getattr(theirs, "n_targets", 1) != 1:
        raise ConfigError("porting a multi-target pytorch-forecasting TFT is not supported")


def _quantiles(theirs: nn.Module) -> list[float]:
    q = getattr(theirs.loss, "quantiles", None)
    if not q:
        raise ConfigError(
            f"porting needs a quantile loss; the pytorch-forecasting model uses {type(theirs.loss).__name__}"
        )
    if len(q) != theirs.output_layer.out_features:
        raise ConfigError(f"{len(q)} quantiles but {theirs.output_layer.out_features} outputs")
    return [float(v) for v in q]


def from_pytorch_forecasting(
    cls: type[TemporalFusionTransformer], theirs: nn.Module
) -> TemporalFusionTransformer:
    """Build ``cls`` with the layout of pytorch-forecasting's TFT ``theirs`` and copy its weights."""
    _expect_tft(theirs)
    hp = theirs.hparams
    transformation = getattr(theirs.output_transformer, "transformation", None)
    if transformation is not None and not isinstance(transformation, str):
        raise ConfigError(f"the target normaliser's transformation {transformation!r} is not a named one")
    ref = next(iter(theirs.parameters()))
    ours = cls(
        x_categoricals=list(hp.x_categoricals),
        x_reals=list(hp.x_reals),
        static_categoricals=list(hp.static_categoricals),
        static_reals=list(hp.static_reals),
        time_varying_categoricals_encoder=list(hp.time_varying_categoricals_encoder),
        time_varying_categoricals_decoder=list(hp.time_varying_categoricals_decoder),
        time_varying_reals_encoder=list(hp.time_varying_reals_encoder),
        time_varying_reals_decoder=list(hp.time_varying_reals_decoder),
        embedding_sizes={
            n: [int(a), int(b)] for n, (a, b) in theirs.input_embeddings.embedding_sizes.items()
        },
        categorical_groups={k: list(v) for k, v in dict(hp.categorical_groups).items()},
        embedding_paddings=list(hp.embedding_paddings),
        hidden_size=int(hp.hidden_size),
        lstm_layers=int(hp.lstm_layers),
        dropout=float(hp.dropout),
        attention_head_size=int(hp.attention_head_size),
        hidden_continuous_size=int(hp.hidden_continuous_size),
        hidden_continuous_sizes=dict(hp.hidden_continuous_sizes),
        quantiles=_quantiles(theirs),
        max_encoder_length=int(hp.max_encoder_length),
        layout="pytorch-forecasting",
        causal_attention=bool(hp.causal_attention),
        target_transform=transformation,
        device=ref.device,
        dtype=ref.dtype,
    )
    load_tft_state(ours, theirs)
    return ours


def _copy(dst: torch.Tensor, src: torch.Tensor, what: str) -> None:
    if dst.shape != src.shape:
        raise ValueError(
            f"load_tft_state: {what}: shape {tuple(src.shape)} does not fit ours {tuple(dst.shape)}"
        )
    dst.copy_(src)


def _load_grn_like(ours: nn.Module, theirs: nn.Module) -> None:
    """``load_pytorch_forecasting_state`` for a GRN / GateAddNorm; our GRNs use :class:`ELU`
    (the vectorised ELU), which the core loader, checking for ``nn.ELU``, is shown as ``nn.ELU``."""
    act = getattr(ours, "act", None)
    if act is not None:
        if not isinstance(act, ELU):
            raise ValueError(f"load_tft_state: GRN activation must be ELU, got {act}")
        ours.act = nn.ELU()
    try:
        load_pytorch_forecasting_state(ours, theirs)
    finally:
        if act is not None:
            ours.act = act


def _load_vsn(ours: VariableSelectionNetwork | None, theirs: nn.Module, what: str) -> None:
    if ours is None:
        return
    tmp = VariableSelectionNetwork.from_pytorch_forecasting(theirs)
    if tmp.names != ours.names:
        raise ValueError(f"load_tft_state: {what}: variables differ (ours {ours.names}, theirs {tmp.names})")
    # theirs lifts reals inside each VSN; ours once for all networks (the prescaler bank)
    state = {k: v for k, v in tmp.state_dict().items() if not k.startswith("prescale_")}
    try:
        ours.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ValueError(f"load_tft_state: {what}: {e}") from None


@torch.no_grad()
def load_tft_state(ours: TemporalFusionTransformer, theirs: nn.Module) -> None:
    """Copy every weight of pytorch-forecasting's TFT ``theirs`` into ``ours`` (same layout required).

    ``ours`` must be ``layout="pytorch-forecasting"`` with the same variables and sizes (build
    it with :func:`from_pytorch_forecasting`); every mismatch raises ``ValueError`` naming the
    sub-module.
    """
    _expect_tft(theirs)
    if ours.layout != "pytorch-forecasting":
        raise ValueError("load_tft_state: build ours with layout='pytorch-forecasting'")
    emb = ours.input_embedding
    lo = 0
    for name, n, d in zip(emb.cat_names, emb.cardinalities, emb.cat_dims):
        w = theirs.input_embeddings.embeddings[name].weight
        _copy(emb.cat_weight[lo : lo + n, :d], w, f"input_embeddings[{name!r}]")
        lo += n
    for j, (name, d) in enumerate(zip(emb.real_names, emb.real_dims)):
        lin = theirs.prescalers[name]
        _copy(emb.real_weight[j, :d], lin.weight[:, 0], f"prescalers[{name!r}].weight")
        _copy(emb.real_bias[j, :d], lin.bias, f"prescalers[{name!r}].bias")

    _load_vsn(ours.static_vsn, theirs.static_variable_selection, "static_variable_selection")
    _load_vsn(ours.encoder_vsn, theirs.encoder_variable_selection, "encoder_variable_selection")
    _load_vsn(ours.decoder_vsn, theirs.decoder_variable_selection, "decoder_variable_selection")

    for name in (
        "static_context_variable_selection",
        "static_context_enrichment",
        "static_context_initial_hidden_lstm",
        "static_context_initial_cell_lstm",
        "static_enrichment",
        "pos_wise_ff",
        "post_attn_gate_norm",
        "pre_output_gate_norm",
    ):
        _load_grn_like(getattr(ours, name), getattr(theirs, name))

    ours.lstm_encoder.load_state_dict(theirs.lstm_encoder.state_dict())
    ours.lstm_decoder.load_state_dict(theirs.lstm_decoder.state_dict())

    load_pytorch_forecasting_state(ours.post_lstm_gate.glu, theirs.post_lstm_gate_encoder)
    add_norm = theirs.post_lstm_add_norm_encoder
    if add_norm.trainable_add:
        raise ValueError("load_tft_state: post_lstm_add_norm_encoder with trainable_add is not supported")
    _copy(ours.post_lstm_gate.norm.weight, add_norm.norm.weight, "post_lstm_add_norm_encoder.norm.weight")
    _copy(ours.post_lstm_gate.norm.bias, add_norm.norm.bias, "post_lstm_add_norm_encoder.norm.bias")

    att, mha = ours.attention, theirs.multihead_attn
    if mha.n_head != att.num_heads:
        raise ValueError(f"load_tft_state: {mha.n_head} heads, ours {att.num_heads}")
    _copy(att.q_proj.weight, torch.cat([q.weight for q in mha.q_layers]), "multihead_attn.q_layers.weight")
    _copy(att.q_proj.bias, torch.cat([q.bias for q in mha.q_layers]), "multihead_attn.q_layers.bias")
    _copy(att.k_proj.weight, torch.cat([k.weight for k in mha.k_layers]), "multihead_attn.k_layers.weight")
    _copy(att.k_proj.bias, torch.cat([k.bias for k in mha.k_layers]), "multihead_attn.k_layers.bias")
    _copy(att.v_proj.weight, mha.v_layer.weight, "multihead_attn.v_layer.weight")
    _copy(att.v_proj.bias, mha.v_layer.bias, "multihead_attn.v_layer.bias")
    _copy(att.out_proj.weight, mha.w_h.weight, "multihead_attn.w_h.weight")

    _copy(ours.output_layer.weight, theirs.output_layer.weight, "output_layer.weight")
    _copy(ours.output_layer.bias, theirs.output_layer.bias, "output_layer.bias")
