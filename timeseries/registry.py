"""Every registration of gatelab.timeseries: models, datasets, data modules, tasks, paper tables.

Imported by :mod:`gatelab.timeseries` (and by :func:`gatelab.core.registry.load_registrations`).
It imports neither torch nor pandas: every entry names its ``"module:attr"``, imported on first
use, so ``create_model("gateformer", preset="etth1-96")`` loads only :mod:`gatelab.timeseries.models.gateformer`.

* models: ``gateformer``, ``itransformer``, ``tft``;
* datasets: the ten LTSF benchmarks (``etth1`` ... ``solar``) and TFT's ``stallion``,
  ``uci-electricity``, ``pems-sf``;
* data modules: ``ltsf``, ``tft-stallion``, ``tft-electricity``, ``tft-traffic``; task: ``tft``;
* paper tables: ``gateformer`` (built in :mod:`.recipes.gateformer`), ``tft``.
"""

from __future__ import annotations

from gatelab.core.harness.repro import Option, ReproTable, register_table
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
TASKS.register("tft", "gatelab.timeseries.tasks.tft:TFTTask", domain=DOMAIN)

# --------------------------------------------------------------------------- paper tables

# built (and registered) by recipes.gateformer when it is imported
TABLES.register("gateformer", "gatelab.timeseries.recipes.gateformer:GATEFORMER_TABLE", domain=DOMAIN)
register_table(
    ReproTable(
        name="tft",
        description="TFT (ours) vs pytorch-forecasting's TFT trained side by side, and the naive last value",
        paper="pytorch-forecasting stallion tutorial (2022: naive 293.0, TFT 254.6 MAE); Lim et al. 2021, Table 2",
        run="gatelab.timeseries.recipes.tft:run_tft",
        domain="timeseries",
        references=[
            ("naive", "stallion", 6, {"mae": 293.0}),
            ("pytorch-forecasting-tft", "stallion", 6, {"mae": 254.6}),
            ("tft", "stallion", 6, {"mae": 254.6}),
            ("tft", "uci-electricity", 24, {"q50": 0.055, "q90": 0.027}),
            ("tft", "pems-sf", 24, {"q50": 0.095, "q90": 0.070}),
        ],
        options=[
            Option("--dataset", choices=["stallion", "electricity", "traffic"], default="stallion"),
            Option("--models", nargs="+", choices=["tft", "pf", "naive"], default=["naive", "tft", "pf"]),
            Option(
                "--layout", choices=["paper", "pytorch-forecasting"], default="paper", help="our TFT's layout"
            ),
            Option("--max-epochs", type=int, default=50),
            Option("--limit-train-batches", type=int, default=50),
            Option("--patience", type=int, default=10, help="early-stopping patience (epochs)"),
            Option("--plateau-patience", type=int, default=4, help="epochs before halving the learning rate"),
            Option("--hidden", type=int, default=None, help="hidden size (default: the dataset's)"),
            Option("--heads", type=int, default=None),
            Option("--dropout", type=float, default=None),
            Option("--lr", type=float, default=None),
            Option("--batch-size", type=int, default=None),
            Option("--hidden-continuous", type=int, default=8),
            Option("--run-dir", default="runs/repro-tft", help="checkpoints and logs"),
            Option("--progress", action="store_true", help="show Lightning progress bars"),
        ],
        metrics=["mae", "q50", "q90", "epochs"],
        default_seeds=(0, 1, 2),
        not_in_hash=("models", "run_dir", "progress"),
    )
)
