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
                                            via :func:`vsn_from_pytorch_forecasting`)
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

import torch
from torch import nn

from gatelab.core import GateAddNorm, GatedLinearUnit, GatedResidualNetwork, VariableSelectionNetwork
from gatelab.core.config import ConfigError

from .tft import ELU, TemporalFusionTransformer

__all__ = [
    "from_pytorch_forecasting",
    "gate_add_norm_from_pytorch_forecasting",
    "glu_from_pytorch_forecasting",
    "grn_from_pytorch_forecasting",
    "load_pytorch_forecasting_state",
    "load_tft_state",
    "vsn_from_pytorch_forecasting",
]


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


def from_pytorch_forecasting(theirs: nn.Module) -> TemporalFusionTransformer:
    """Build the equivalent of a pytorch-forecasting ``TemporalFusionTransformer`` and copy its weights.

    Our :class:`TemporalFusionTransformer` with the layout of ``theirs`` (``layout="pytorch-forecasting"``);
    in eval mode the two give the same forward outputs (float32 rounding of batched matmuls aside).
    """
    _expect_tft(theirs)
    hp = theirs.hparams
    transformation = getattr(theirs.output_transformer, "transformation", None)
    if transformation is not None and not isinstance(transformation, str):
        raise ConfigError(f"the target normaliser's transformation {transformation!r} is not a named one")
    ref = next(iter(theirs.parameters()))
    ours = TemporalFusionTransformer(
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
        # pytorch-forecasting's names -> ours (TFTConfig)
        d_model=int(hp.hidden_size),
        num_lstm_layers=int(hp.lstm_layers),
        dropout=float(hp.dropout),
        num_heads=int(hp.attention_head_size),
        continuous_dim=int(hp.hidden_continuous_size),
        continuous_dims=dict(hp.hidden_continuous_sizes),
        quantiles=_quantiles(theirs),
        lookback=int(hp.max_encoder_length),
        layout="pytorch-forecasting",
        causal_attention=bool(hp.causal_attention),
        target_transform=transformation,
        device=ref.device,
        dtype=ref.dtype,
    )
    load_tft_state(ours, theirs)
    return ours


def _copy_tft(dst: torch.Tensor, src: torch.Tensor, what: str) -> None:
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


def _load_tft_vsn(ours: VariableSelectionNetwork | None, theirs: nn.Module, what: str) -> None:
    if ours is None:
        return
    tmp = vsn_from_pytorch_forecasting(theirs)
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
        _copy_tft(emb.cat_weight[lo : lo + n, :d], w, f"input_embeddings[{name!r}]")
        lo += n
    for j, (name, d) in enumerate(zip(emb.real_names, emb.real_dims)):
        lin = theirs.prescalers[name]
        _copy_tft(emb.real_weight[j, :d], lin.weight[:, 0], f"prescalers[{name!r}].weight")
        _copy_tft(emb.real_bias[j, :d], lin.bias, f"prescalers[{name!r}].bias")

    _load_tft_vsn(ours.static_vsn, theirs.static_variable_selection, "static_variable_selection")
    _load_tft_vsn(ours.encoder_vsn, theirs.encoder_variable_selection, "encoder_variable_selection")
    _load_tft_vsn(ours.decoder_vsn, theirs.decoder_variable_selection, "decoder_variable_selection")

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
    _copy_tft(ours.post_lstm_gate.norm.weight, add_norm.norm.weight, "post_lstm_add_norm_encoder.norm.weight")
    _copy_tft(ours.post_lstm_gate.norm.bias, add_norm.norm.bias, "post_lstm_add_norm_encoder.norm.bias")

    att, mha = ours.attention, theirs.multihead_attn
    if mha.n_head != att.num_heads:
        raise ValueError(f"load_tft_state: {mha.n_head} heads, ours {att.num_heads}")
    _copy_tft(
        att.q_proj.weight, torch.cat([q.weight for q in mha.q_layers]), "multihead_attn.q_layers.weight"
    )
    _copy_tft(att.q_proj.bias, torch.cat([q.bias for q in mha.q_layers]), "multihead_attn.q_layers.bias")
    _copy_tft(
        att.k_proj.weight, torch.cat([k.weight for k in mha.k_layers]), "multihead_attn.k_layers.weight"
    )
    _copy_tft(att.k_proj.bias, torch.cat([k.bias for k in mha.k_layers]), "multihead_attn.k_layers.bias")
    _copy_tft(att.v_proj.weight, mha.v_layer.weight, "multihead_attn.v_layer.weight")
    _copy_tft(att.v_proj.bias, mha.v_layer.bias, "multihead_attn.v_layer.bias")
    _copy_tft(att.out_proj.weight, mha.w_h.weight, "multihead_attn.w_h.weight")

    _copy_tft(ours.output_layer.weight, theirs.output_layer.weight, "output_layer.weight")
    _copy_tft(ours.output_layer.bias, theirs.output_layer.bias, "output_layer.bias")


# --------------------------------------------------------------------------------------------
# layers: pytorch-forecasting's ``models.temporal_fusion_transformer.sub_modules`` -> gatelab.core
#
# :func:`load_pytorch_forecasting_state` copies the weights of a pytorch-forecasting module into
# ours, and each ``*_from_pytorch_forecasting`` function also builds the matching layout; with
# those weights our layers reproduce pytorch-forecasting's outputs (up to float rounding of the
# batched matmuls, ~1e-7 in float32).
# --------------------------------------------------------------------------------------------


def glu_from_pytorch_forecasting(theirs: nn.Module) -> GatedLinearUnit:
    """Build the equivalent of a pytorch-forecasting ``GatedLinearUnit`` and copy its weights."""
    _expect_pf(theirs, "GatedLinearUnit")
    fc = theirs.fc
    ours = GatedLinearUnit(
        fc.in_features,
        fc.out_features // 2,
        bias=fc.bias is not None,
        dropout=_pf_dropout(theirs.dropout),
        device=fc.weight.device,
        dtype=fc.weight.dtype,
    )
    load_pytorch_forecasting_state(ours, theirs)
    return ours


def gate_add_norm_from_pytorch_forecasting(theirs: nn.Module) -> GateAddNorm:
    """Build the equivalent of a pytorch-forecasting ``GateAddNorm`` and copy its weights."""
    _expect_pf(theirs, "GateAddNorm")
    w = theirs.glu.fc.weight
    ours = GateAddNorm(
        theirs.input_size,
        theirs.hidden_size,
        skip_dim=theirs.skip_size,
        bias=theirs.glu.fc.bias is not None,
        dropout=_pf_dropout(theirs.glu.dropout),
        trainable_add=theirs.add_norm.trainable_add,
        skip="interpolate",
        device=w.device,
        dtype=w.dtype,
    )
    load_pytorch_forecasting_state(ours, theirs)
    return ours


def grn_from_pytorch_forecasting(theirs: nn.Module) -> GatedResidualNetwork:
    """Build the equivalent of a pytorch-forecasting ``GatedResidualNetwork``, copy its weights."""
    _expect_pf(theirs, "GatedResidualNetwork")
    w = theirs.fc1.weight
    ours = GatedResidualNetwork(
        theirs.input_size,
        theirs.hidden_size,
        theirs.output_size,
        context_dim=theirs.context_size,
        bias=theirs.fc1.bias is not None,
        dropout=_pf_dropout(theirs.gate_norm.glu.dropout),
        skip="interpolate",
        device=w.device,
        dtype=w.dtype,
    )
    load_pytorch_forecasting_state(ours, theirs)
    return ours


def vsn_from_pytorch_forecasting(theirs: nn.Module) -> VariableSelectionNetwork:
    """Build the equivalent of a pytorch-forecasting ``VariableSelectionNetwork``, copy its weights.

    The layout is read from ``theirs``: variables with a prescaler become ``prescale``,
    variables whose single-variable network is a ``ResampleNorm`` (its
    ``input_embedding_flags``) become ``resample_only``, the GRN widths become
    ``grn_hidden_dims`` and ``weight_hidden_dim``.
    """
    _expect_pf(theirs, "VariableSelectionNetwork")
    names = list(theirs.input_sizes)
    nets = theirs.single_variable_grns
    res_only = [n for n in names if type(nets[n]).__name__ == "ResampleNorm"]
    grn_names = [n for n in names if n not in res_only]
    hid = [nets[n].hidden_size if n in grn_names else theirs.hidden_size for n in names]
    ref = next(iter(theirs.parameters()))
    ours = VariableSelectionNetwork(
        dict(theirs.input_sizes),
        theirs.hidden_size,
        context_dim=theirs.context_size,
        dropout=_pf_dropout(theirs.dropout),
        skip="interpolate",
        prescale=[n for n in names if n in theirs.prescalers],
        resample_only=res_only,
        grn_hidden_dims=hid,
        weight_hidden_dim=theirs.flattened_grn.hidden_size if len(names) > 1 else None,
        device=ref.device,
        dtype=ref.dtype,
    )
    load_pytorch_forecasting_state(ours, theirs)
    return ours


def _expect_pf(theirs: nn.Module, cls_name: str) -> None:
    if type(theirs).__name__ != cls_name or "pytorch_forecasting" not in type(theirs).__module__:
        raise TypeError(
            f"expected pytorch_forecasting's {cls_name}, got {type(theirs).__module__}.{type(theirs).__name__}"
        )


def _pf_dropout(d: nn.Module | float | None) -> float:
    if d is None:
        return 0.0
    if isinstance(d, nn.Dropout):
        return float(d.p)
    return float(d)


def _copy(dst: torch.Tensor | None, src: torch.Tensor | None, what: str) -> None:
    if dst is None or src is None:
        if dst is None and src is None:
            return
        raise ValueError(f"load_pytorch_forecasting_state: {what}: present on one side only (check `bias`)")
    if dst.shape != src.shape:
        raise ValueError(
            f"load_pytorch_forecasting_state: {what}: shape {tuple(src.shape)} does not fit ours {tuple(dst.shape)}"
        )
    dst.copy_(src)


def _require(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(f"load_pytorch_forecasting_state: {msg}")


def _load_glu(ours: GatedLinearUnit, theirs: nn.Module, where: str) -> None:
    _copy(ours.fc.weight, theirs.fc.weight, f"{where}.fc.weight")
    _copy(ours.fc.bias, theirs.fc.bias, f"{where}.fc.bias")


def _load_gate_add_norm(ours: GateAddNorm, theirs: nn.Module, where: str) -> None:
    _load_glu(ours.glu, theirs.glu, f"{where}.glu")
    add_norm = theirs.add_norm
    _require(
        ours.skip_dim == add_norm.skip_size and ours.out_dim == add_norm.input_size,
        f"{where}: sizes differ (ours skip {ours.skip_dim} -> {ours.out_dim}, "
        f"theirs {add_norm.skip_size} -> {add_norm.input_size})",
    )
    _require(
        ours.skip_dim == ours.out_dim or ours.skip_mode == "interpolate",
        f"{where}: pytorch-forecasting interpolates a mismatched skip; build ours with skip='interpolate'",
    )
    _require(ours.trainable_add == add_norm.trainable_add, f"{where}: trainable_add differs")
    if ours.mask is not None:
        _copy(ours.mask, add_norm.mask, f"{where}.add_norm.mask")
    _copy(ours.norm.weight, add_norm.norm.weight, f"{where}.add_norm.norm.weight")
    _copy(ours.norm.bias, add_norm.norm.bias, f"{where}.add_norm.norm.bias")


def _load_resample_norm(ours: nn.Module, theirs: nn.Module, where: str) -> None:
    _require(theirs.trainable_add, f"{where}: ResampleNorm without trainable_add is not supported")
    _copy(ours.mask, theirs.mask, f"{where}.mask")
    _copy(ours.norm.weight, theirs.norm.weight, f"{where}.norm.weight")
    _copy(ours.norm.bias, theirs.norm.bias, f"{where}.norm.bias")


def _load_grn(ours: GatedResidualNetwork, theirs: nn.Module, where: str) -> None:
    _require(
        (ours.dim, ours.hidden_dim, ours.out_dim)
        == (theirs.input_size, theirs.hidden_size, theirs.output_size),
        f"{where}: sizes differ (ours {(ours.dim, ours.hidden_dim, ours.out_dim)}, "
        f"theirs {(theirs.input_size, theirs.hidden_size, theirs.output_size)})",
    )
    _require(
        not (theirs.residual and theirs.input_size != theirs.output_size),
        f"{where}: pytorch-forecasting's residual=True with input_size != output_size is not supported",
    )
    _require(ours.context_dim == theirs.context_size, f"{where}: context sizes differ")
    _copy(ours.fc1.weight, theirs.fc1.weight, f"{where}.fc1.weight")
    _copy(ours.fc1.bias, theirs.fc1.bias, f"{where}.fc1.bias")
    _copy(ours.fc2.weight, theirs.fc2.weight, f"{where}.fc2.weight")
    _copy(ours.fc2.bias, theirs.fc2.bias, f"{where}.fc2.bias")
    if ours.context is not None:
        _copy(ours.context.weight, theirs.context.weight, f"{where}.context.weight")
    _require(type(ours.act) is nn.ELU and ours.act.alpha == 1.0, f"{where}: activation must be ELU(alpha=1)")
    if ours.skip is not None:
        _require(
            ours.skip_mode == "interpolate",  # the skip is core's resample-norm, not a Linear
            f"{where}: pytorch-forecasting resamples a mismatched skip; build ours with skip='interpolate'",
        )
        _load_resample_norm(ours.skip, theirs.resample_norm, f"{where}.resample_norm")
    _load_gate_add_norm(ours.gate_norm, theirs.gate_norm, f"{where}.gate_norm")


def _load_vsn(ours: VariableSelectionNetwork, theirs: nn.Module) -> None:
    where = "VariableSelectionNetwork"
    names = list(theirs.input_sizes)
    _require(ours.names == names, f"{where}: variables differ (ours {ours.names}, theirs {names})")
    _require(ours.input_dims == [theirs.input_sizes[n] for n in names], f"{where}: input sizes differ")
    _require(ours.hidden_dim == theirs.hidden_size, f"{where}: hidden sizes differ")
    _require(ours.skip_mode == "interpolate", f"{where}: build ours with skip='interpolate'")
    _require(
        sorted(ours.prescale) == sorted(n for n in names if n in theirs.prescalers),
        f"{where}: prescaled variables differ (ours {ours.prescale}, theirs {list(theirs.prescalers)})",
    )
    nets = theirs.single_variable_grns
    theirs_res = [n for n in names if type(nets[n]).__name__ == "ResampleNorm"]
    _require(
        sorted(ours.resample_only) == sorted(theirs_res),
        f"{where}: resample-only variables differ (ours {ours.resample_only}, theirs {theirs_res})",
    )
    if ours.weight_grn is not None:
        _load_grn(ours.weight_grn, theirs.flattened_grn, f"{where}.flattened_grn")
    H = ours.hidden_dim

    for i, j in enumerate(ours._pre_idx.tolist() if ours._pre_idx is not None else []):
        lin = theirs.prescalers[names[j]]
        d = ours.input_dims[j]
        _require(
            isinstance(lin, nn.Linear)
            and lin.in_features == 1
            and lin.out_features == d
            and lin.bias is not None,
            f"{where}: prescaler {names[j]!r} must be nn.Linear(1, {d}) with bias, got {lin}",
        )
        ours.prescale_weight[i].zero_()
        ours.prescale_bias[i].zero_()
        ours.prescale_weight[i, :d].copy_(lin.weight[:, 0])
        ours.prescale_bias[i, :d].copy_(lin.bias)

    rn = ours._rn_idx.tolist() if ours._rn_idx is not None else []
    for i, j in enumerate(rn):  # resample-norm of interpolated skips / resample-only variables
        net = nets[names[j]]
        res = net if type(net).__name__ == "ResampleNorm" else net.resample_norm
        _require(
            res.trainable_add, f"{where}: {names[j]!r}: ResampleNorm without trainable_add is not supported"
        )
        _require(res.output_size == H, f"{where}: {names[j]!r}: output size {res.output_size} != {H}")
        ours.resample_mask[i].copy_(res.mask)
        ours.resample_norm_weight[i].copy_(res.norm.weight)
        ours.resample_norm_bias[i].copy_(res.norm.bias)

    for i, j in enumerate(ours._grn_vars):
        net = nets[names[j]]
        d, h = ours.input_dims[j], ours.grn_hidden_dims[j]
        _require(
            type(net).__name__ == "GatedResidualNetwork"
            and (net.input_size, net.hidden_size, net.output_size, net.context_size) == (d, h, H, None),
            f"{where}: single-variable network {names[j]!r} must be a GatedResidualNetwork({d}, {h}, {H}) "
            f"without context, got {net}",
        )
        _require(not net.residual or d == H, f"{where}: {names[j]!r}: residual=True is not supported")
        for p in (
            ours.fc1_weight,
            ours.fc2_weight,
            ours.glu_weight,
            ours.fc1_bias,
            ours.fc2_bias,
            ours.glu_bias,
        ):
            if p is not None:
                p[i].zero_()
        ours.fc1_weight[i, :d, :h].copy_(net.fc1.weight.t())
        ours.fc2_weight[i, :h, :h].copy_(net.fc2.weight.t())
        ours.glu_weight[i, :h].copy_(net.gate_norm.glu.fc.weight.t())
        _require(ours.fc1_bias is not None, f"{where}: build ours with bias=True")
        ours.fc1_bias[i, :h].copy_(net.fc1.bias)
        ours.fc2_bias[i, :h].copy_(net.fc2.bias)
        ours.glu_bias[i].copy_(net.gate_norm.glu.fc.bias)
        ours.norm_weight[i].copy_(net.gate_norm.add_norm.norm.weight)
        ours.norm_bias[i].copy_(net.gate_norm.add_norm.norm.bias)
        _require(
            not net.gate_norm.add_norm.trainable_add,
            f"{where}: {names[j]!r}: trainable_add GRN not supported",
        )


@torch.no_grad()
def load_pytorch_forecasting_state(ours: nn.Module, theirs: nn.Module) -> None:
    """Copy the weights of a pytorch-forecasting TFT sub-module into the matching gatelab layer.

    Supported pairs (pytorch-forecasting's ``models.temporal_fusion_transformer.sub_modules``):
    ``GatedLinearUnit``, ``GateAddNorm``, ``GatedResidualNetwork`` and
    ``VariableSelectionNetwork``, each into ours of the same name. ``ours`` must have the
    matching layout (sizes, ``skip="interpolate"`` wherever sizes differ, ``trainable_add``,
    the VSN's ``prescale``/``resample_only``/hidden sizes); the ``*_from_pytorch_forecasting``
    functions build it for you. Every mismatch raises ``ValueError`` naming the sub-module;
    a different activation than ELU in a GRN also raises. After loading, ``ours.eval()`` and
    ``theirs.eval()`` give the same outputs (dropout differs in training mode, being random).

    For the VSN the per-variable ``nn.Linear`` weights ``[out, in]`` are transposed into our
    grouped ``[V, in, out]`` tensors and zero-padded.
    """
    if isinstance(ours, VariableSelectionNetwork):
        _expect_pf(theirs, "VariableSelectionNetwork")
        _load_vsn(ours, theirs)
    elif isinstance(ours, GatedResidualNetwork):
        _expect_pf(theirs, "GatedResidualNetwork")
        _load_grn(ours, theirs, "GatedResidualNetwork")
    elif isinstance(ours, GateAddNorm):
        _expect_pf(theirs, "GateAddNorm")
        _load_gate_add_norm(ours, theirs, "GateAddNorm")
    elif isinstance(ours, GatedLinearUnit):
        _expect_pf(theirs, "GatedLinearUnit")
        _require(
            (ours.dim, ours.out_dim) == (theirs.fc.in_features, theirs.fc.out_features // 2),
            "GatedLinearUnit: sizes differ",
        )
        _load_glu(ours, theirs, "GatedLinearUnit")
    else:
        raise TypeError(f"load_pytorch_forecasting_state: unsupported target {type(ours).__name__}")
