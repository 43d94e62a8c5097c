"""Throughput of ``gatelab predict`` per domain, one thread, on real data (issue 15, "Done when").

For each case a model is built at its registered preset (untrained: speed does not depend on the
weights, except for the VL decoder, whose captions always run to the full length untrained: a
worst case), saved with the preprocessing its data module computes on the real data, and run by
:func:`gatelab.core.harness.predict.predict` exactly as ``gatelab predict --num-threads 1
--no-progress`` runs it (loading the folder, reading the input, writing the output: all counted).
Each case runs ``--rounds`` times after one warm-up; the rows give the median items/s and the
spread (min, max) over rounds.

Cases (the data directory is ``--data-dir`` or ``$GATELAB_DATA``):

* ``ctr``: FinalMLP (``frappe-x1`` preset) scoring Frappe_x1 ``test.csv`` (28,860 rows);
  vocabularies fitted on Frappe_x1 ``valid.csv`` (the real Frappe train split is rebuilt from
  the raw logs and takes minutes to encode; the vocabulary only sizes the embedding tables).
* ``segmentation``: Attention U-Net 2D (``feature_scale 4``) on the 20 DRIVE test images
  (565 x 584, FOV-normalised, sliding windows of 96 with overlap 0.5, Gaussian weights), masks
  and attention maps written as PNG.
* ``restoration``: DnCNN (CDnCNN-B size, 20 layers x 64) on 10 CBSD68 images (481 x 321).
* ``forecast-tft``: the TFT (``stallion`` preset) forecasting the last 6 months of the 350
  stallion series (rows written: one per series and month, with the q0.02 ... q0.98 columns).
* ``captions``: the gated VL decoder (default size, COCO-mini tokenizer, 64 x 64 images in 16 x 16
  patches) captioning the COCO-mini val2017 images greedily; untrained, so every caption runs to
  the full length (a worst case).
* ``forecast``: Gateformer (``etth1-96`` preset) forecasting the next 96 hours of ETTh1 from the
  recent 96 (one multivariate forecast per call; the time per call is the row's ``seconds``).

Results go to ``docs/results/inference.jsonl`` (table ``inference``) and ``inference.md``
unless ``--dry-run``.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/predict_speed.py --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

import gatelab
from gatelab.core.harness.predict import PredictOptions, predict

TABLE = "inference"


def _ctr(data: Path, work: Path) -> tuple[Path, Path, str]:
    from gatelab.recsys.data.datamodule import ctr_datamodule

    root = data / "frappe" / "Frappe_x1"
    fields = [{"name": c, "type": "categorical"} for c in
              ("user", "item", "daytime", "weekday", "isweekend", "homework", "cost", "weather", "country", "city")]
    dm = ctr_datamodule(
        root, dataset="custom", files={"train": "valid.csv", "valid": "valid.csv", "test": "test.csv"},
        fields=fields, label="label", cache=str(work / "ctr-cache"), check_overlap=False,
    )
    model = gatelab.create_model("finalmlp", preset="frappe-x1", **dm.model_kwargs())
    model.save_pretrained(work / "ctr-model", preprocessing=dm.preprocessing())
    return work / "ctr-model", root / "test.csv", "Frappe_x1 test"


def _segmentation(data: Path, work: Path) -> tuple[Path, Path, str]:
    from gatelab.vision.data.datamodule import drive_datamodule

    dm = drive_datamodule(data, channels="rgb", patch_size=96)
    model = gatelab.create_model("attention-unet-2d", in_channels=3, num_classes=2, feature_scale=4)
    model.save_pretrained(work / "seg-model", preprocessing=dm.preprocessing())
    return work / "seg-model", data / "DRIVE" / "test", "DRIVE test"


def _restoration(data: Path, work: Path) -> tuple[Path, Path, str]:
    from gatelab.vision.data.datamodule import restoration_preprocessing

    images = work / "cbsd68-10"
    images.mkdir(exist_ok=True)
    for f in sorted((data / "denoise_testsets" / "CBSD68").iterdir())[:10]:
        if not (images / f.name).exists():
            (images / f.name).symlink_to(f)
    model = gatelab.create_model("dncnn", in_channels=3, features=64, num_layers=20)
    model.save_pretrained(work / "dncnn-model", preprocessing=restoration_preprocessing(channels=3))
    return work / "dncnn-model", images, "CBSD68 (10 images)"


def _forecast(data: Path, work: Path) -> tuple[Path, Path, str]:
    from gatelab.timeseries.data.datamodule import ltsf_datamodule

    dm = ltsf_datamodule(data, dataset="etth1", lookback=96, horizon=96)
    dm.setup("fit")
    model = gatelab.create_model("gateformer", preset="etth1-96", **dm.model_kwargs())
    model.save_pretrained(work / "gateformer-model", preprocessing=dm.preprocessing())
    src = Path(gatelab.timeseries.__file__).parent / "data" / "embedded" / "ETTh1.csv"
    lines = src.read_text().splitlines()
    recent = work / "etth1_recent96.csv"
    recent.write_text("\n".join([lines[0], *lines[-96:]]) + "\n")
    return work / "gateformer-model", recent, "ETTh1 (last 96 h)"


def _forecast_tft(data: Path, work: Path) -> tuple[Path, Path, str]:
    import numpy as np

    from gatelab.timeseries.data import tft as td
    from gatelab.timeseries.data.datamodule import stallion_datamodule

    dm = stallion_datamodule(data)
    model = gatelab.create_model("tft", preset="stallion", **dm.model_kwargs())
    model.save_pretrained(work / "tft-model", preprocessing=dm.preprocessing())
    from gatelab.core.harness.data import locate

    frame = td.stallion_frame(td.read_stallion(locate(td.STALLION, data)))
    future = frame[td.STALLION_SPEC.time_idx] > frame[td.STALLION_SPEC.time_idx].max() - td.STALLION_SPEC.horizon
    frame.loc[future, td.STALLION_SPEC.target] = np.nan  # the last horizon months: known inputs, no target
    recent = work / "stallion_recent.parquet"
    frame.to_parquet(recent)
    return work / "tft-model", recent, "stallion (350 series, last 6 months)"


def _captions(data: Path, work: Path) -> tuple[Path, Path, str]:
    from gatelab.multimodal.data.datamodule import vl_coco_datamodule

    dm = vl_coco_datamodule(data)
    dm.setup("fit")
    model = gatelab.create_model("vl-gated-decoder", **dm.model_kwargs())
    model.set_tokenizer(dm.tokenizer)
    model.save_pretrained(work / "vl-model", preprocessing=dm.preprocessing())
    return work / "vl-model", data / "coco_mini" / "val2017", "COCO-mini val2017"


CASES: dict[str, Callable[[Path, Path], tuple[Path, Path, str]]] = {
    "ctr": _ctr,
    "segmentation": _segmentation,
    "restoration": _restoration,
    "forecast": _forecast,
    "forecast-tft": _forecast_tft,
    "captions": _captions,
}

#: the output each case writes (a file of the domain's format, or a folder for images)
OUTPUTS = {
    "ctr": "scores.csv",
    "segmentation": "masks",
    "restoration": "restored",
    "forecast": "forecast.csv",
    "forecast-tft": "forecast.csv",
    "captions": "captions.jsonl",
}


def run(data: Path, cases: list[str], rounds: int, batch_size: int) -> list[dict[str, Any]]:
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for case in cases:
            model_dir, input_path, dataset = CASES[case](data, work)
            opts = PredictOptions(batch_size=batch_size, num_threads=1, progress=False)
            out = work / f"out-{case}" / OUTPUTS[case]
            predict(model_dir, input_path, out, options=opts)  # warm-up
            rates, seconds, report = [], [], None
            for _ in range(rounds):
                start = time.perf_counter()
                report = predict(model_dir, input_path, out, options=opts)
                seconds.append(time.perf_counter() - start)
                rates.append(report.items / seconds[-1])
            assert report is not None
            rows.append({
                "model": report.model, "dataset": dataset, "split": case, "seed": 0,
                "items": report.items, "unit": report.unit, "rounds": rounds, "threads": 1,
                "batch_size": batch_size, "items_per_s": statistics.median(rates),
                "items_per_s_min": min(rates), "items_per_s_max": max(rates),
                "seconds": statistics.median(seconds),
            })
            print(f"{case}: {report.model} {report.items} {report.unit}, median {rows[-1]['items_per_s']:.2f} "
                  f"{report.unit}/s ({min(rates):.2f}-{max(rates):.2f}), {rows[-1]['seconds']:.2f} s per call", flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", default=os.environ.get("GATELAB_DATA"), help="the data directory")
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--dry-run", action="store_true", help="print, do not record")
    args = p.parse_args()
    if not args.data_dir:
        p.error("give --data-dir or set GATELAB_DATA")
    rows = run(Path(args.data_dir), args.cases, args.rounds, args.batch_size)
    if args.dry_run:
        return
    from gatelab.core.harness.ledger import append_records, config_hash, render_markdown

    conf = config_hash({"cases": args.cases, "rounds": args.rounds, "batch_size": args.batch_size})
    append_records(TABLE, [{"table": TABLE, "config_hash": conf, **r} for r in rows], render=False)
    render_markdown(
        TABLE,
        title="gatelab predict throughput (one thread, CPU)",
        description="`gatelab predict` per domain on real data (benchmarks/predict_speed.py): items per second, "
        "median over rounds with min/max; models untrained at their presets (see the script's docstring).",
    )
    print("wrote docs/results/inference.jsonl and inference.md")

if __name__ == "__main__":
    main()
