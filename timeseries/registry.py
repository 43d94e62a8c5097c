"""Every registration of gatelab.timeseries: models, datasets, data modules, tasks, paper tables.

Imported by :mod:`gatelab.timeseries` (and by :func:`gatelab.core.registry.load_registrations`).
It imports neither torch nor pandas: every entry names its ``"module:attr"``, imported on first
use, so ``create_model("gateformer", preset="etth1-96")`` loads only :mod:`gatelab.timeseries.models.gateformer`.

* models: ``gateformer``, ``itransformer``, ``tft`` and the ``tft`` table's baselines
  ``pytorch-forecasting-tft``, ``naive-last-value``;
* datasets: the ten LTSF benchmarks (``etth1`` ... ``solar``) and TFT's ``stallion``,
  ``uci-electricity``, ``pems-sf``;
* data modules: ``ltsf``, ``tft-stallion``, ``tft-electricity``, ``tft-traffic``, ``tft-frame``; task: ``tft``;
* paper tables: ``gateformer`` (built in :mod:`.recipes.gateformer`), ``tft`` (:mod:`.recipes.tft`).
"""

from __future__ import annotations

from gatelab.core.registry import DATAMODULES, DATASETS, TABLES, TASKS, register_model

DOMAIN = "timeseries"
_GF = "gatelab.timeseries.models.gateformer"
_TFT = "gatelab.timeseries.models.tft"

# --------------------------------------------------------------------------- models

register_model(
    "gateformer",
    f"{_GF}:Gateformer",
    domain=DOMAIN,
    paper="Lan & Oermann 2025, Gateformer (arXiv:2505.00307)",
    gates=("TokenwiseGate", "OutputGatedAttention"),
    description="Gateformer: temporal (patch) + global variate embeddings fused by gates, variate-wise attention",
    tiny=f"{_GF}:_TINY",
    example_inputs=f"{_GF}:_example",
    tags=("forecasting", "ltsf"),
)
register_model(
    "itransformer",
    f"{_GF}:ITransformer",
    domain=DOMAIN,
    paper="Liu et al. 2024, iTransformer (ICLR 2024)",
    gates=("OutputGatedAttention",),
    description="iTransformer: variates as tokens (Gateformer without temporal branch and gates; plain attention)",
    tiny=f"{_GF}:_TINY_ITRANSFORMER",
    example_inputs=f"{_GF}:_example",
    tags=("forecasting", "ltsf", "baseline"),
)
register_model(
    "tft",
    f"{_TFT}:TemporalFusionTransformer",
    domain=DOMAIN,
    paper="Lim et al. 2021, Temporal Fusion Transformers for interpretable multi-horizon time series forecasting",
    gates=("GatedLinearUnit", "GatedResidualNetwork", "GateAddNorm", "VariableSelectionNetwork"),
    description="Temporal Fusion Transformer: static/past/known inputs, quantile forecasts (config: TFTConfig)",
    tiny=f"{_TFT}:_TINY",
    example_inputs=f"{_TFT}:_example",
    tags=("forecasting", "quantile", "interpretable"),
)

_BASE = "gatelab.timeseries.models.tft_baselines"
register_model(
    "pytorch-forecasting-tft",
    f"{_BASE}:PytorchForecastingTFT",
    domain=DOMAIN,
    paper="pytorch-forecasting's TemporalFusionTransformer (Beitner, pytorch-forecasting 1.x), after Lim et al. 2021",
    gates=(),
    description="pytorch-forecasting's TFT network, built from the data module's dataset as its from_dataset does",
    tiny=f"{_BASE}:_tiny_pf",
    example_inputs=f"{_BASE}:_example_pf",
    tags=("forecasting", "quantile", "baseline"),
)
register_model(
    "naive-last-value",
    f"{_BASE}:NaiveLastValue",
    domain=DOMAIN,
    paper="the naive forecast: last observed value (pytorch-forecasting's Baseline)",
    gates=(),
    description="Naive forecast: the last observed target repeated over the horizon (no parameters)",
    tiny=f"{_BASE}:_TINY_NAIVE",
    example_inputs=f"{_BASE}:_example_naive",
    tags=("forecasting", "baseline"),
)

# --------------------------------------------------------------------------- datasets

#: the LTSF benchmarks of :data:`gatelab.timeseries.data.ltsf_datasets.LTSF_DATASETS`
LTSF_NAMES = (
    "etth1", "etth2", "ettm1", "ettm2", "weather", "exchange", "exchange-lstnet", "ili", "ecl", "traffic", "solar",
)  # fmt: skip
for _name in LTSF_NAMES:
    DATASETS.register(
        _name, f"gatelab.timeseries.data.ltsf_datasets:LTSF_DATASETS.{_name}.spec", domain=DOMAIN
    )
DATASETS.register("stallion", "gatelab.timeseries.data.tft:STALLION", domain=DOMAIN)
DATASETS.register("uci-electricity", "gatelab.timeseries.data.tft:ELECTRICITY", domain=DOMAIN)
DATASETS.register("pems-sf", "gatelab.timeseries.data.tft:TRAFFIC", domain=DOMAIN)

# --------------------------------------------------------------------------- data modules and tasks

# ``data: {name: ltsf, kwargs: {dataset: etth1, ...}}``
DATAMODULES.register("ltsf", "gatelab.timeseries.data.datamodule:ltsf_datamodule", domain=DOMAIN)
DATAMODULES.register("tft-stallion", "gatelab.timeseries.data.datamodule:stallion_datamodule", domain=DOMAIN)
DATAMODULES.register(
    "tft-electricity", "gatelab.timeseries.data.datamodule:electricity_datamodule", domain=DOMAIN
)
DATAMODULES.register("tft-traffic", "gatelab.timeseries.data.datamodule:traffic_datamodule", domain=DOMAIN)
# any long frame with TFTSpec roles (what gatelab.timeseries.Forecaster trains through)
DATAMODULES.register("tft-frame", "gatelab.timeseries.data.datamodule:frame_datamodule", domain=DOMAIN)
TASKS.register("tft", "gatelab.timeseries.tasks.tft:TFTTask", domain=DOMAIN)

# --------------------------------------------------------------------------- paper tables

# built (and registered) by recipes.gateformer when it is imported
TABLES.register("gateformer", "gatelab.timeseries.recipes.gateformer:GATEFORMER_TABLE", domain=DOMAIN)
# built (and registered) by recipes.tft when it is imported
TABLES.register("tft", "gatelab.timeseries.recipes.tft:TFT_TABLE", domain=DOMAIN)
