"""The paper tables of gatelab.recsys (data only; the run function lives in :mod:`.repro`)."""

from __future__ import annotations

from gatelab.core.harness import Option, ReproTable

__all__ = ["CTR_MODELS", "CTR_TABLE"]

CTR_MODELS = ("finalmlp", "dualmlp", "gdcn-p", "gdcn-s", "dcnv2", "dnn")

CTR_TABLE = ReproTable(
    name="ctr",
    description=(
        "CTR test AUC/logloss on Frappe. split x1 = the official Frappe_x1 test.csv (28,860 rows; "
        "validation/early stopping on the official valid.csv); the x1 train split is not available, so "
        "training uses a train split rebuilt from the raw log with NFM's protocol (log rows minus the x1 "
        "valid/test positives + 134,423 seeded sampled negatives, 202,027 rows; the raw->x1 index mapping "
        "is verified on every run). BARS training protocol for every model (Adam 1e-3, batch 4096, "
        "embedding L2 0.05, lr x0.1 on plateau, early stop on val AUC, patience 2). Published values: "
        "BARS/RecZoo Frappe_x1 runs (official train); GDCN-P/-S from the GDCN paper, which used its own "
        "random 8:1:1 split of the NFM files"
    ),
    paper=(
        "FinalMLP: Mao et al. AAAI 2023 / BARS Frappe_x1; GDCN: Wang et al. CIKM 2023, Table 3; "
        "DNN, DCNv2, DeepFM, LR: BARS Frappe_x1 leaderboard; DualMLP: RecZoo FinalMLP results"
    ),
    run="gatelab.recsys.repro:run_ctr",
    references=[
        ("finalmlp", "frappe", "x1", {"auc": 0.986072, "logloss": 0.148415}),
        ("dualmlp", "frappe", "x1", {"auc": 0.984650, "logloss": 0.147083}),
        ("gdcn-p", "frappe", "x1", {"auc": 0.9852}),
        ("gdcn-s", "frappe", "x1", {"auc": 0.9838}),
        ("dcnv2", "frappe", "x1", {"auc": 0.984478, "logloss": 0.149149}),
        ("dnn", "frappe", "x1", {"auc": 0.983323, "logloss": 0.162229}),
        ("deepfm", "frappe", "x1", {"auc": 0.984243, "logloss": 0.148174}),
        ("lr", "frappe", "x1", {"auc": 0.935584, "logloss": 0.307643}),
    ],
    options=[
        Option(
            "--dataset",
            default="frappe",
            choices=["frappe", "frappe_x1"],
            help="frappe: rebuilt train + official x1 valid/test; frappe_x1: the official train.csv too",
        ),
        Option(
            "--models",
            nargs="+",
            default=list(CTR_MODELS),
            help="models to run (presets in gatelab.recsys.presets)",
        ),
        Option(
            "--max-epochs", type=int, default=100, help="epoch limit (early stopping usually ends earlier)"
        ),
        Option("--output-dir", default="runs/ctr", help="where run directories go"),
        Option("--negative-seed", type=int, default=2021, help="seed of Frappe's negative sampling"),
    ],
    domain="recsys",
    metrics=["auc", "logloss", "val_auc", "epochs"],
    default_seeds=(0, 1),
    not_in_hash=("models", "output_dir"),
)
