"""The baselines of the ``tft`` table as registered models, trained and evaluated by the same
task (:class:`~gatelab.timeseries.tasks.tft.TFTTask`) and trainer as our TFT.

* :class:`PytorchForecastingTFT` (``pytorch-forecasting-tft``): pytorch-forecasting's own
  ``TemporalFusionTransformer``, built from the data module's dataset description
  (:func:`~gatelab.timeseries.models.tft.config_from_dataset`, what the ``tft-*`` data modules'
  ``model_kwargs()`` return) exactly as its ``from_dataset`` builds it: the same keyword
  arguments in the same order, so from the same seed it has the same initial weights and the
  same forward (checked in ``tests/timeseries/models/test_tft_baselines.py``). Only the
  network is used: the optimizer, schedule, loss and early stopping are the harness's.
* :class:`NaiveLastValue` (``naive-last-value``): the last observed target repeated over the
  horizon (pytorch-forecasting's ``Baseline``); no parameters, evaluated without training
  (``trainer.max_epochs: 0``).

Both take batches in pytorch-forecasting's layout (``x`` of ``(x, (target, weight))``) and
return forecasts in the target's scale with a ``prediction`` ``[B, T_d, Q]`` field, and have a
``quantiles`` attribute, as :class:`~gatelab.timeseries.models.tft.TemporalFusionTransformer`.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Literal, NamedTuple

import torch
from torch import nn

from gatelab.core.config import ConfigError, Dropout, ModelConfig, PositiveInt, UnitInterval
from gatelab.core.pretrained import PretrainedMixin

__all__ = [
    "DATASET_KEYS",
    "PF_QUANTILES",
    "NaiveLastValue",
    "NaiveLastValueConfig",
    "NaiveOutput",
    "PytorchForecastingTFT",
    "PytorchForecastingTFTConfig",
]

#: pytorch-forecasting's default ``QuantileLoss`` quantiles
PF_QUANTILES: tuple[float, ...] = (0.02, 0.1, 0.25, 0.5, 0.75, 0.9, 0.98)

#: the dataset description keys of :func:`~gatelab.timeseries.models.tft.config_from_dataset`
DATASET_KEYS = frozenset(
    {
        "x_categoricals", "x_reals", "static_categoricals", "static_reals",
        "time_varying_categoricals_encoder", "time_varying_categoricals_decoder",
        "time_varying_reals_encoder", "time_varying_reals_decoder", "embedding_sizes",
        "categorical_groups", "embedding_paddings", "lookback", "target_transform", "layout",
    }
)  # fmt: skip


def _checked_settings(
    layout: str, quantiles: Sequence[float], embedding_sizes: Mapping[str, Sequence[int]] | None
) -> tuple[list[float], dict[str, tuple[int, int]]]:
    """``(quantiles, embedding_sizes)`` as pytorch-forecasting takes them, after the checks its
    constructor does not make (one-line :class:`ConfigError` naming the key)."""
    if layout != "pytorch-forecasting":
        raise ConfigError(
            f"model.kwargs.layout={layout!r}: pytorch-forecasting's TFT has only the 'pytorch-forecasting' layout"
        )
    qs = [float(q) for q in quantiles]
    if not qs or any(not 0.0 < q < 1.0 for q in qs) or qs != sorted(set(qs)):
        raise ConfigError(f"model.kwargs.quantiles={list(quantiles)}: expected increasing values in (0, 1)")
    bad = [k for k, v in (embedding_sizes or {}).items() if len(v) != 2]
    if bad:
        raise ConfigError(f"model.kwargs.embedding_sizes: {bad} must be [cardinality, dim] pairs")
    return qs, {str(k): (int(v[0]), int(v[1])) for k, v in (embedding_sizes or {}).items()}


_TRANSFORMS = Literal["log", "log1p", "logit", "count", "softplus", "relu", "sqrt"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class _DatasetDescription(ModelConfig):
    """The data module's dataset description (:data:`DATASET_KEYS`, what
    :func:`~gatelab.timeseries.models.tft.config_from_dataset` returns), as config fields:
    the meaning of each is that of the same key of :class:`~gatelab.timeseries.models.tft.TFTConfig`."""

    x_categoricals: tuple[str, ...] = ()
    x_reals: tuple[str, ...] = ()
    static_categoricals: tuple[str, ...] = ()
    static_reals: tuple[str, ...] = ()
    time_varying_categoricals_encoder: tuple[str, ...] = ()
    time_varying_categoricals_decoder: tuple[str, ...] = ()
    time_varying_reals_encoder: tuple[str, ...] = ()
    time_varying_reals_decoder: tuple[str, ...] = ()
    embedding_sizes: dict[str, tuple[PositiveInt, PositiveInt]] = dataclasses.field(default_factory=dict)
    categorical_groups: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    embedding_paddings: tuple[str, ...] = ()
    lookback: PositiveInt | None = None
    target_transform: _TRANSFORMS | None = None
    layout: Literal["pytorch-forecasting"] = "pytorch-forecasting"


@dataclasses.dataclass(frozen=True, kw_only=True)
class PytorchForecastingTFTConfig(_DatasetDescription):
    """Config of :class:`PytorchForecastingTFT`: the dataset description (see
    :class:`~gatelab.timeseries.models.tft.TFTConfig` for each key; ``lookback`` is required,
    pytorch-forecasting's ``max_encoder_length``) and the sizes, named as our TFT names them
    (pytorch-forecasting's name in brackets): ``d_model`` (``hidden_size``), ``num_lstm_layers``
    (``lstm_layers``), ``num_heads`` (``attention_head_size``), ``dropout``, ``continuous_dim``
    (``hidden_continuous_size``) with pytorch-forecasting's defaults, and ``quantiles`` (its
    ``QuantileLoss`` quantiles, default :data:`PF_QUANTILES`; the output size)."""

    d_model: PositiveInt = 16
    num_lstm_layers: PositiveInt = 1
    num_heads: PositiveInt = 4
    dropout: Dropout = 0.1
    continuous_dim: PositiveInt = 8
    quantiles: tuple[UnitInterval, ...] = PF_QUANTILES

    def check(self) -> None:
        if self.lookback is None:
            raise ConfigError(
                "PytorchForecastingTFTConfig.lookback=None: give the encoder length (an integer >= 1)"
            )
        _checked_settings(self.layout, self.quantiles, self.embedding_sizes)


@dataclasses.dataclass(frozen=True, kw_only=True)
class NaiveLastValueConfig(_DatasetDescription):
    """Config of :class:`NaiveLastValue`: only the data module's dataset description, recorded
    so a saved model names the data it was evaluated on; the last value needs none of it."""


class PytorchForecastingTFT(PretrainedMixin, nn.Module):
    """pytorch-forecasting's ``TemporalFusionTransformer`` (the network only) as a gatelab model.

    Keyword arguments: the dataset description (names as pytorch-forecasting's
    ``from_dataset`` passes them; ``embedding_sizes`` maps a categorical to ``[cardinality,
    dim]``; ``target_transform`` is the target normaliser's transformation, e.g. ``softplus``)
    and the sizes ``d_model``, ``num_lstm_layers``, ``num_heads``, ``dropout``, ``continuous_dim``
    (the glossary's names for pytorch-forecasting's ``hidden_size``, ``lstm_layers``,
    ``attention_head_size``, ``dropout``, ``hidden_continuous_size``, with its defaults; the same
    keys as :class:`~gatelab.timeseries.models.tft.TFTConfig`) and ``quantiles``
    (its ``QuantileLoss`` quantiles, default :data:`PF_QUANTILES`; the output size).

    ``forward(x)`` returns pytorch-forecasting's output tuple: ``prediction`` ``[B, T_d, Q]``
    in the target's scale (the batch's ``target_scale`` and ``target_transform`` undo the
    normalisation, as the fitted ``GroupNormalizer`` does in pytorch-forecasting), attention
    and variable-selection weights.

    Deviation from pytorch-forecasting's own training: none in the network; it is trained by
    gatelab's task (see the module docstring), so ``learning_rate``, ``optimizer`` and
    ``reduce_on_plateau_*`` of the library's LightningModule are not used. ``embedding_labels``
    (for its plots only) are not passed.
    """

    config_class = PytorchForecastingTFTConfig

    def __init__(
        self, config: PytorchForecastingTFTConfig | Mapping[str, Any] | None = None, /, **overrides: Any
    ) -> None:
        super().__init__()
        self.config = cfg = PytorchForecastingTFTConfig.build(config, **overrides)
        try:
            from pytorch_forecasting import TemporalFusionTransformer
            from pytorch_forecasting.data.encoders import TorchNormalizer
            from pytorch_forecasting.metrics import QuantileLoss
        except ImportError as e:  # pragma: no cover - a declared dependency
            raise ConfigError(f"model pytorch-forecasting-tft needs pytorch-forecasting: {e}") from None
        qs, emb = _checked_settings(cfg.layout, cfg.quantiles, cfg.embedding_sizes)
        self.quantiles = tuple(qs)
        with warnings.catch_warnings():  # its save_hyperparameters() on nn.Module arguments
            warnings.filterwarnings("ignore", ".*is an instance of `nn.Module`.*")
            # the keyword arguments of pytorch-forecasting's from_dataset, in its order
            self.net = TemporalFusionTransformer(
                hidden_size=cfg.d_model,
                attention_head_size=cfg.num_heads,
                dropout=cfg.dropout,
                hidden_continuous_size=cfg.continuous_dim,
                lstm_layers=cfg.num_lstm_layers,
                loss=QuantileLoss(qs),
                log_interval=-1,
                max_encoder_length=int(cfg.lookback or 1),
                output_size=len(qs),
                embedding_sizes=emb,
                static_categoricals=list(cfg.static_categoricals),
                time_varying_categoricals_encoder=list(cfg.time_varying_categoricals_encoder),
                time_varying_categoricals_decoder=list(cfg.time_varying_categoricals_decoder),
                static_reals=list(cfg.static_reals),
                time_varying_reals_encoder=list(cfg.time_varying_reals_encoder),
                time_varying_reals_decoder=list(cfg.time_varying_reals_decoder),
                x_reals=list(cfg.x_reals),
                x_categoricals=list(cfg.x_categoricals),
                embedding_paddings=list(cfg.embedding_paddings),
                categorical_groups={k: list(v) for k, v in cfg.categorical_groups.items()},
                output_transformer=TorchNormalizer(method="identity", transformation=cfg.target_transform),
            )

    def forward(self, x: Mapping[str, torch.Tensor]) -> Any:
        """pytorch-forecasting's output for batch inputs ``x`` (``encoder_cat`` ``[B, T_e, C]``,
        ``encoder_cont`` ``[B, T_e, R]``, ``decoder_*``, ``*_lengths`` ``[B]``, ``target_scale``
        ``[B, 2]``); ``.prediction`` is ``[B, T_d, Q]``."""
        return self.net(dict(x))

    def point_prediction(self, prediction: torch.Tensor) -> torch.Tensor:
        """The median forecast ``[B, T_d]`` (the quantile nearest 0.5) of ``prediction`` ``[B, T_d, Q]``."""
        j = min(range(len(self.quantiles)), key=lambda i: abs(self.quantiles[i] - 0.5))
        return prediction[..., j]


class NaiveOutput(NamedTuple):
    """What :class:`NaiveLastValue` returns: ``prediction`` ``[B, T_d, 1]`` (target scale)."""

    prediction: torch.Tensor


class NaiveLastValue(PretrainedMixin, nn.Module):
    """The last observed target repeated over the horizon (pytorch-forecasting's ``Baseline``).

    ``forward(x)`` reads ``x["encoder_target"]`` ``[B, T_e]`` (the target in its own scale),
    ``x["encoder_lengths"]`` ``[B]`` and the decoder length ``T_d`` of ``x["decoder_cont"]``
    ``[B, T_d, R]``; returns :class:`NaiveOutput` with ``prediction`` ``[B, T_d, 1]``, a point
    forecast (``quantiles = (0.5,)``). No parameters: evaluate it with
    ``trainer.max_epochs: 0``.

    Keyword arguments: only the data module's dataset description (:data:`DATASET_KEYS`, what
    ``model_kwargs()`` of the ``tft-*`` data modules returns), which the last value does not
    need; any other key is a :class:`ConfigError`.
    """

    quantiles: tuple[float, ...] = (0.5,)
    config_class = NaiveLastValueConfig

    def __init__(
        self, config: NaiveLastValueConfig | Mapping[str, Any] | None = None, /, **dataset_description: Any
    ) -> None:
        super().__init__()
        unknown = sorted(set(dataset_description) - DATASET_KEYS)
        if unknown:
            raise ConfigError(
                f"model naive-last-value takes no settings: {unknown} (it accepts only the data "
                f"module's dataset description {sorted(DATASET_KEYS)})"
            )
        self.config = NaiveLastValueConfig.build(config, **dataset_description)

    def forward(self, x: Mapping[str, torch.Tensor]) -> NaiveOutput:
        for key in ("encoder_target", "encoder_lengths", "decoder_cont"):
            if key not in x:
                raise ValueError(f"NaiveLastValue: batch inputs lack {key!r} (keys: {sorted(x)})")
        target, lengths = x["encoder_target"], x["encoder_lengths"]
        if target.ndim != 2 or lengths.shape != target.shape[:1]:
            raise ValueError(
                f"NaiveLastValue: encoder_target {tuple(target.shape)} must be [B, T_e] and "
                f"encoder_lengths {tuple(lengths.shape)} [B]"
            )
        if bool((lengths < 1).any()) or bool((lengths > target.shape[1]).any()):
            raise ValueError(f"NaiveLastValue: encoder_lengths must be in [1, {target.shape[1]}]")
        last = target[torch.arange(target.shape[0], device=target.device), lengths - 1]
        horizon = x["decoder_cont"].shape[1]
        return NaiveOutput(last[:, None, None].expand(-1, horizon, 1).float())

    def point_prediction(self, prediction: torch.Tensor) -> torch.Tensor:
        """The forecast ``[B, T_d]`` of ``prediction`` ``[B, T_d, 1]``."""
        return prediction[..., 0]


# ----------------------------------------------------------------------- registry helpers


def _tiny_pf() -> dict[str, Any]:
    from .tft import _TINY

    keep = DATASET_KEYS | {"d_model", "num_heads", "continuous_dim"}
    out = {k: v for k, v in _TINY.items() if k in keep}
    out["lookback"] = 5
    return out


def _example_pf(model: nn.Module, batch: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
    from .tft import _TINY, TemporalFusionTransformer, example_batch

    # our TFT on the same dataset description lays out the same batch
    return (example_batch(TemporalFusionTransformer(**_TINY), batch),), {}


def _example_naive(model: nn.Module, batch: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
    g = torch.Generator().manual_seed(0)
    lengths = torch.full((batch,), 5, dtype=torch.long)
    lengths[1::2] = 3
    # the target requires grad: the model has no parameters, so the generic backward check
    # needs a graph to run on (the gradient reaches the input)
    return (
        {
            "encoder_target": torch.randn(batch, 5, generator=g).requires_grad_(),
            "encoder_lengths": lengths,
            "decoder_cont": torch.randn(batch, 3, 2, generator=g),
        },
    ), {}


_TINY_NAIVE: dict[str, Any] = {}
