"""Registration of the Temporal Fusion Transformer's datasets, data modules, task and ``tft`` table.

Imported by :mod:`gatelab.timeseries` (kept light: nothing here imports Lightning; the entries
name their modules, loaded on first use).
"""

from gatelab.core.harness import (
    Option,
    ReproTable,
    register_datamodule,
    register_dataset,
    register_table,
    register_task,
)

from .data import tft_data as _tft_data

register_dataset(_tft_data.STALLION)
register_dataset(_tft_data.ELECTRICITY)
register_dataset(_tft_data.TRAFFIC)
register_datamodule("tft-stallion", "gatelab.timeseries.data.tft_datamodule:stallion_datamodule")
register_datamodule("tft-electricity", "gatelab.timeseries.data.tft_datamodule:electricity_datamodule")
register_datamodule("tft-traffic", "gatelab.timeseries.data.tft_datamodule:traffic_datamodule")
register_task("tft", "gatelab.timeseries.tft_task:TFTTask")
register_table(
    ReproTable(
        name="tft",
        description="TFT (ours) vs pytorch-forecasting's TFT trained side by side, and the naive last value",
        paper="pytorch-forecasting stallion tutorial (2022: naive 293.0, TFT 254.6 MAE); Lim et al. 2021, Table 2",
        run="gatelab.timeseries.repro_tft:run_tft",
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
