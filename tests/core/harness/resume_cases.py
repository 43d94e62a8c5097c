"""One tiny, real-format experiment per registered data module, for the exact-resume tests
(tests/core/harness/test_resume.py) and tools/reliability/resume.py.

``build_case(name, root)`` writes the data module's files (in the real on-disk format, with the
fixture builders of the domain tests) under ``root`` and returns a :class:`Case`: the experiment
config (2 epochs x 3 training batches, a checkpoint after every step) and the data directory.
Data modules whose real files are checked against registered sha256 digests (DRIVE, stallion)
get fixtures under the real names; ``Case.unverified`` lists the ``locate`` functions to call
with ``verify=False`` for them (the digest check is not what these tests are about).
"""

from __future__ import annotations

import dataclasses
import json
import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

TESTS = Path(__file__).resolve().parents[2]
for sub in ("", "recsys", "timeseries"):
    p = str(TESTS / sub) if sub else str(TESTS)
    if p not in sys.path:
        sys.path.append(p)

EPOCHS = 2
BATCHES = 3  # training batches per epoch (limit_train_batches)
STEPS = EPOCHS * BATCHES


@dataclasses.dataclass
class Case:
    config: dict[str, Any]
    data_dir: Path
    unverified: list[str] = dataclasses.field(default_factory=list)  # "module:attr" of a locate()


def _trainer(**kw: Any) -> dict[str, Any]:
    out = {
        "max_epochs": EPOCHS,
        "limit_train_batches": BATCHES,
        "limit_val_batches": 1,
        "limit_test_batches": 1,
        "accelerator": "cpu",
        "devices": 1,
        "progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
        "log_every_n_steps": 1,
        "loggers": ["csv"],
        "checkpoint": {"every_n_train_steps": 1, "save_top_k": 1},
    }
    for k, v in kw.items():
        if k == "checkpoint":
            out["checkpoint"] = {**out["checkpoint"], **v}
        else:
            out[k] = v
    return out


def _config(root: Path, name: str, model: dict, data: dict, task: dict, **trainer: Any) -> dict[str, Any]:
    return {
        "name": f"resume-{name}",
        "seed": 7,
        "output_dir": str(root / "runs"),
        "model": model,
        "data": data,
        "task": task,
        "trainer": _trainer(**trainer),
    }


# --------------------------------------------------------------------------- timeseries


def _ltsf(root: Path) -> Case:
    from ltsf_fixtures import write_csv

    write_csv(root / "data" / "tiny.csv", 160, cols=("a", "b", "OT"))
    model = {
        "name": "gateformer",
        "kwargs": {"d_model": 8, "num_heads": 2, "num_layers": 1, "hidden_dim": 16, "patch_len": 4, "stride": 4, "dropout": 0.2},
    }
    data = {
        "name": "ltsf",
        "kwargs": {"file": "tiny.csv", "freq": "h", "lookback": 16, "horizon": 4, "batch_size": 8, "verify": False},
    }
    return Case(_config(root, "ltsf", model, data, {"name": "regression", "lr": 1e-2}), root / "data")


_TFT_MODEL = {"d_model": 8, "num_heads": 2, "continuous_dim": 4, "dropout": 0.2}


def _tft_task() -> dict[str, Any]:
    return {"name": "tft", "lr": 1e-2, "monitor": "val/loss"}


def _stallion(root: Path) -> Case:
    from tft_fixtures import stallion_raw

    folder = root / "data" / "stallion"
    folder.mkdir(parents=True, exist_ok=True)
    stallion_raw(n_agency=2, n_sku=2, months=60).to_parquet(folder / "stallion.parquet")
    data = {"name": "tft-stallion", "kwargs": {"batch_size": 4, "val_batch_size": 8}}
    cfg = _config(root, "tft-stallion", {"name": "tft", "kwargs": _TFT_MODEL}, data, _tft_task())
    return Case(cfg, root / "data", ["gatelab.timeseries.data.datamodule:locate"])


def _tft_frame(root: Path) -> Case:
    from tft_fixtures import tiny_frame, tiny_spec

    (root / "data").mkdir(parents=True, exist_ok=True)
    frame = tiny_frame(n_series=4, n_steps=30)
    frame["date"] = pd.Timestamp("2020-01-01") + pd.to_timedelta(frame["time_idx"], unit="D")
    frame.to_parquet(root / "data" / "frame.parquet")
    spec = json.loads(json.dumps(dataclasses.asdict(tiny_spec())))  # plain lists, as YAML gives them
    data = {"name": "tft-frame", "kwargs": {"file": "frame.parquet", "spec": spec, "date": "date", "freq": "D", "batch_size": 4}}
    cfg = _config(root, "tft-frame", {"name": "tft", "kwargs": _TFT_MODEL}, data, _tft_task())
    return Case(cfg, root / "data")


def _electricity(root: Path) -> Case:
    # LD2011_2014.txt: 15-minute kW from 2011-01-01 00:15 to the paper's last day (1346) for 2 customers
    folder = root / "data" / "electricity"
    folder.mkdir(parents=True, exist_ok=True)
    stamps = pd.date_range("2011-01-01 00:15:00", "2014-09-08 00:00:00", freq="15min")
    rng = np.random.default_rng(0)
    t = np.arange(len(stamps))
    cols = {f"MT_{i:03d}": 10 + 5 * np.sin(2 * np.pi * t / 96 + i) + rng.random(len(t)) for i in (1, 2)}
    frame = pd.DataFrame(cols, index=stamps.strftime("%Y-%m-%d %H:%M:%S"))
    text = frame.to_csv(sep=";", decimal=",", float_format="%.4f", quoting=2)
    (folder / "LD2011_2014.txt").write_text(text.replace('"";', '"";', 1))
    data = {"name": "tft-electricity", "kwargs": {"batch_size": 16, "val_batch_size": 32}}
    cfg = _config(root, "tft-electricity", {"name": "tft", "kwargs": _TFT_MODEL}, data, _tft_task())
    return Case(cfg, root / "data")


def _traffic(root: Path) -> Case:
    from tft_fixtures import write_pems

    folder = root / "data" / "PEMS-SF"
    folder.mkdir(parents=True, exist_ok=True)
    write_pems(folder, n_days=174, n_st=2)
    data = {"name": "tft-traffic", "kwargs": {"batch_size": 16, "val_batch_size": 32}}
    cfg = _config(root, "tft-traffic", {"name": "tft", "kwargs": _TFT_MODEL}, data, _tft_task())
    return Case(cfg, root / "data")


# --------------------------------------------------------------------------- recsys


def _ctr(root: Path) -> Case:
    from ctr_fixtures import write_lines

    rng = random.Random(0)
    files = {}
    (root / "data").mkdir(parents=True, exist_ok=True)
    for split, n in (("train", 120), ("valid", 40), ("test", 40)):
        rows = []
        for _ in range(n):
            u, i = rng.randint(0, 6), rng.randint(0, 9)
            rows.append([str(int(u < 3) if rng.random() < 0.9 else rng.randint(0, 1)), f"u{u}", f"i{i}", f"{rng.random():.3f}"])
        files[split] = str(write_lines(root / "data" / f"{split}.csv", rows, ",", ["label", "user", "item", "price"]))
    data = {
        "name": "ctr",
        "kwargs": {
            "dataset": "custom",
            "files": files,
            "fields": [
                {"name": "user", "type": "categorical"},
                {"name": "item", "type": "categorical"},
                {"name": "price", "type": "numeric"},
            ],
            "batch_size": 16,
        },
    }
    model = {"name": "gdcn-p", "kwargs": {"embedding_dim": 4, "dnn_hidden_dims": [8], "num_cross_layers": 2, "dropout": 0.2}}
    task = {"name": "ctr", "lr": 1e-2, "monitor": "val/auc"}
    cfg = _config(root, "ctr", model, data, task, checkpoint={"monitor": "val/auc", "mode": "max"})
    return Case(cfg, root / "data")


# --------------------------------------------------------------------------- vision


def _seg_model() -> dict[str, Any]:
    return {"name": "attention-unet-2d", "kwargs": {"filters": [4, 8, 16], "feature_scale": 1}}


def _seg_task() -> dict[str, Any]:
    return {"name": "segmentation", "kwargs": {"roi_size": [16, 16]}, "lr": 1e-2}


_AUG = {"rotate_deg": 10, "elastic_alpha": 1.0}


def _membrane(root: Path) -> Case:
    import tifffile

    folder = root / "data" / "isbi2012_membrane"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    tifffile.imwrite(folder / "train-volume.tif", rng.integers(0, 256, (10, 24, 24), dtype=np.uint8))
    tifffile.imwrite(folder / "train-labels.tif", np.where(rng.random((10, 24, 24)) > 0.2, 255, 0).astype(np.uint8))
    data = {
        "name": "membrane",
        "kwargs": {"fold": 1, "n_folds": 5, "patch_size": 16, "batch_size": 2, "samples_per_epoch": 6, "augment": _AUG, "val_cases": 1},
    }
    return Case(_config(root, "membrane", _seg_model(), data, _seg_task()), root / "data")


def _drive(root: Path) -> Case:
    from PIL import Image

    from gatelab.vision.data.segmentation_checksums import DRIVE_SHA256

    base = root / "data" / "DRIVE"
    rng = np.random.default_rng(0)
    for rel in DRIVE_SHA256:
        path = base / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if "/images/" in rel:
            Image.fromarray(rng.integers(0, 256, (20, 18, 3), dtype=np.uint8)).save(path)
        elif "/mask/" in rel:
            m = np.zeros((20, 18), np.uint8)
            m[2:18, 2:16] = 255
            Image.fromarray(m).save(path, format="GIF")
        else:
            Image.fromarray(np.where(rng.random((20, 18)) > 0.8, 255, 0).astype(np.uint8)).save(path, format="GIF")
    data = {
        "name": "drive",
        "kwargs": {"channels": "green", "patch_size": 16, "batch_size": 2, "samples_per_epoch": 6, "augment": _AUG, "val_cases": 2},
    }
    cfg = _config(root, "drive", _seg_model(), data, _seg_task())
    return Case(cfg, root / "data", ["gatelab.vision.data.datamodule:locate"])


def _seg_folder(root: Path) -> Case:
    from segmentation_fixtures import FOLDERS, write_pngs

    write_pngs(root / "data", {"train": 3, "test": 1}, seed=1)
    data = {
        "name": "seg-folder",
        "kwargs": {
            **FOLDERS,
            "label_values": {0: 0, 255: 1},
            "patch_size": 16,
            "batch_size": 2,
            "samples_per_epoch": 6,
            "augment": _AUG,
            "val_cases": 1,
        },
    }
    return Case(_config(root, "seg-folder", _seg_model(), data, _seg_task()), root / "data")


def _seg_nifti(root: Path) -> Case:
    from segmentation_fixtures import FOLDERS, write_nifti

    write_nifti(root / "data", {"train": 3, "test": 1}, (12, 12, 10), np.s_[3:8, 4:9, 2:6], seed=0)
    data = {
        "name": "seg-nifti",
        "kwargs": {
            **FOLDERS,
            "label_values": {0: 0, 1: 1},
            "patch_size": 8,
            "batch_size": 2,
            "samples_per_epoch": 6,
            "augment": _AUG,
            "val_cases": 1,
        },
    }
    model = {"name": "attention-unet-3d", "kwargs": {"filters": [4, 8, 16], "feature_scale": 1}}
    task = {"name": "segmentation", "kwargs": {"roi_size": [8, 8, 8]}, "lr": 1e-2}
    return Case(_config(root, "seg-nifti", model, data, task), root / "data")


_MAXIM = {
    "features": 4,
    "depth": 2,
    "num_stages": 1,
    "num_groups": 1,
    "num_supervision_scales": 2,
    "num_bottleneck_blocks": 1,
    "high_res_stages": 1,
    "block_size_hr": [2, 2],
    "block_size_lr": [2, 2],
    "grid_size_hr": [2, 2],
    "grid_size_lr": [2, 2],
}


def _denoise(root: Path) -> Case:
    from restoration_fixtures import make_fake_restoration_data

    data_dir = make_fake_restoration_data(root / "data")
    data = {
        "name": "denoise",
        "kwargs": {
            "crop": 16,
            "batch_size": 2,
            "samples_per_epoch": 6,
            "val_images": 2,
            "val_crop": 16,
            "verify": False,
            "test_sets": ["Kodak24"],
        },
    }
    cfg = _config(root, "denoise", {"name": "maxim", "kwargs": _MAXIM}, data, {"name": "restoration", "lr": 1e-3})
    return Case(cfg, data_dir)


def _paired(root: Path) -> Case:
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n, size in (("train", 4, (24, 24)), ("val", 2, (16, 16)), ("test", 1, (16, 16))):
        for i in range(n):
            clean = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            noisy = np.clip(clean + rng.normal(0, 20, clean.shape), 0, 255).astype(np.uint8)
            for d, a in (("input", noisy), ("target", clean)):
                (root / "data" / split / d).mkdir(parents=True, exist_ok=True)
                Image.fromarray(a).save(root / "data" / split / d / f"{i}.png")
    data = {
        "name": "paired_restoration",
        "kwargs": {
            "train_root": "train",
            "val_root": "val",
            "test_root": "test",
            "crop": 16,
            "val_crop": 16,
            "batch_size": 2,
            "samples_per_epoch": 6,
        },
    }
    task = {"name": "restoration", "lr": 1e-3, "scheduler": {"name": "cosine", "interval": "step", "t_max": 6}}
    cfg = _config(root, "paired", {"name": "maxim", "kwargs": _MAXIM}, data, task)
    return Case(cfg, root / "data")


# --------------------------------------------------------------------------- multimodal


def _vl_model() -> dict[str, Any]:
    return {"name": "vl-gated-decoder", "kwargs": {"d_model": 16, "num_layers": 1, "num_heads": 2, "dropout": 0.2}}


def _vl_task() -> dict[str, Any]:
    return {"name": "vl-lm", "lr": 3e-3}


def _multimodal_fixtures() -> Any:
    """tests/multimodal/conftest.py (its corpus, BLiMP and COCO-mini writers), imported by path."""
    import importlib.util

    name = "gatelab_multimodal_test_fixtures"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, TESTS / "multimodal" / "conftest.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


def _vl_root(root: Path) -> Path:
    fx = _multimodal_fixtures()
    data = root / "data"
    fx.write_corpus(data)
    fx.write_blimp(data)
    fx.write_coco(data)
    return data


def _vl_text(root: Path) -> Case:
    data_dir = _vl_root(root)
    data = {
        "name": "vl-text",
        "kwargs": {"vocab_size": 300, "seq_len": 16, "batch_size": 4, "val_fraction": 0.1, "test_fraction": 0.1, "verify": False},
    }
    cfg = _config(root, "vl-text", _vl_model(), data, _vl_task(), checkpoint={"monitor": "val/loss"})
    return Case(cfg, data_dir)


def _vl_shapes(root: Path) -> Case:
    data_dir = _vl_root(root)
    data = {
        "name": "vl-shapes",
        "kwargs": {
            "vocab_size": 300,
            "n_train": 24,
            "n_val": 4,
            "n_test": 4,
            "text_ratio": 1.0,
            "seq_len": 48,
            "batch_size": 4,
            "verify": False,
        },
    }
    return Case(_config(root, "vl-shapes", _vl_model(), data, _vl_task()), data_dir)


def _vl_coco(root: Path) -> Case:
    data_dir = _vl_root(root)
    data = {
        "name": "vl-coco",
        "kwargs": {"vocab_size": 300, "image_size": 16, "patch": 8, "val_images": 20, "seq_len": 32, "batch_size": 4, "verify": False},
    }
    return Case(_config(root, "vl-coco", _vl_model(), data, _vl_task()), data_dir)


def _vl_babylm(root: Path) -> Case:
    data_dir = _vl_root(root)
    rng = np.random.default_rng(0)
    caps = [f"a {c} {s} on the grass." for c in ("red", "blue", "green", "small") for s in ("ball", "dog", "cat", "box", "tree")]
    (data_dir / "babylm_multimodal").mkdir(exist_ok=True)
    (data_dir / "babylm_multimodal" / "caps.json").write_text(json.dumps(caps))
    np.save(data_dir / "babylm_multimodal" / "emb.npy", rng.normal(size=(len(caps), 12)).astype(np.float32))
    data = {
        "name": "vl-babylm",
        "kwargs": {
            "captions_json": "caps.json",
            "embedding_files": ["emb.npy"],
            "splits": [0.6, 0.2, 0.2],
            "vocab_size": 300,
            "seq_len": 32,
            "batch_size": 4,
            "verify": False,
        },
    }
    return Case(_config(root, "vl-babylm", _vl_model(), data, _vl_task()), data_dir)


def _vl_spoken(root: Path) -> Case:
    """Spoken shapes captions (a stand-in synthesiser, tests/speech_fixtures.py): the training
    batches draw stream-dropout masks and SpecAugment on the loader's data stream."""
    from speech_fixtures import fake_tts

    from gatelab.multimodal.data.speech import prepare_spoken_captions

    data_dir = root / "data"
    prepare_spoken_captions(data_dir, sources=("shapes",), voices=("a", "b"), speeds=(150, 170), snrs=(None, 20.0),
                            shapes_train=24, shapes_val=4, shapes_test=4, synthesize=fake_tts)  # fmt: skip
    model = _vl_model()
    model["kwargs"] = {**model["kwargs"], "num_audio_layers": 1}
    data = {"name": "vl-spoken", "kwargs": {"vocab_size": 300, "num_mels": 20, "batch_size": 4}}
    return Case(_config(root, "vl-spoken", model, data, _vl_task()), data_dir)


CASES: dict[str, Callable[[Path], Case]] = {
    "ltsf": _ltsf,
    "tft-stallion": _stallion,
    "tft-electricity": _electricity,
    "tft-traffic": _traffic,
    "tft-frame": _tft_frame,
    "ctr": _ctr,
    "membrane": _membrane,
    "drive": _drive,
    "seg-folder": _seg_folder,
    "seg-nifti": _seg_nifti,
    "denoise": _denoise,
    "paired_restoration": _paired,
    "vl-text": _vl_text,
    "vl-shapes": _vl_shapes,
    "vl-coco": _vl_coco,
    "vl-babylm": _vl_babylm,
    "vl-spoken": _vl_spoken,
}


def build_case(name: str, root: Path) -> Case:
    """Write data module ``name``'s fixture under ``root`` and return its :class:`Case`."""
    root.mkdir(parents=True, exist_ok=True)
    return CASES[name](root)



# --------------------------------------------------------------------------- running and comparing


class Killed(Exception):
    """Raised by :class:`StopAt` to simulate a crash in-process."""


def stop_at(step: int) -> Any:
    """A callback that raises :class:`Killed` when ``global_step`` reaches ``step`` (at the end of
    that batch, before the checkpoints of that step are written: the newest checkpoint is older)."""
    import lightning as L

    class StopAt(L.Callback):
        def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
            if trainer.global_step >= step:
                raise Killed(f"stopped at step {trainer.global_step}")

    return StopAt()


def run_case(case: Case, *, resume: str | None = None, callbacks: tuple = ()) -> Any:
    """``run_experiment`` on ``case`` in this process (digest checks off where ``unverified``)."""
    import functools
    import importlib

    from gatelab.core.harness import run_experiment
    from gatelab.core.harness.data import locate

    saved = []
    for target in case.unverified:
        mod_name, _, attr = target.partition(":")
        mod = importlib.import_module(mod_name)
        saved.append((mod, attr, getattr(mod, attr)))
        setattr(mod, attr, functools.partial(locate, verify=False))
    try:
        return run_experiment(case.config, data_dir=case.data_dir, ckpt_path=resume, callbacks=list(callbacks))
    finally:
        for mod, attr, old in saved:
            setattr(mod, attr, old)


def run_dir(case: Case, version: int = 0) -> Path:
    c = case.config
    return Path(c["output_dir"]) / c["name"] / f"seed{c['seed']}" / f"version_{version}"


def _weights(path: str | Path) -> dict[str, Any]:
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def compare_runs(a: Path, b: Path) -> dict[str, Any]:
    """Compare two finished run directories: final weights (``last.ckpt``), ``metrics.json`` and
    the tested best checkpoint (its file name and weights). Returns ``max_abs_diff`` (final
    weights), ``weights_equal``, ``metrics_equal`` (+ ``metrics_a``/``metrics_b``) and
    ``best_ckpt_equal``."""
    import torch

    wa, wb = _weights(a / "checkpoints" / "last.ckpt"), _weights(b / "checkpoints" / "last.ckpt")
    assert wa.keys() == wb.keys(), "different parameter names"
    tensors = [k for k in wa if isinstance(wa[k], torch.Tensor)]  # (extra states, e.g. a tokenizer, are not)
    diff = max(((wa[k].double() - wb[k].double()).abs().max().item() if wa[k].numel() else 0.0) for k in tensors)
    equal = all(torch.equal(wa[k], wb[k]) if k in tensors else wa[k] == wb[k] for k in wa)
    ma = json.loads((a / "metrics.json").read_text())
    mb = json.loads((b / "metrics.json").read_text())
    ra, rb = (json.loads((d / "run.json").read_text()) for d in (a, b))
    best_a, best_b = ra["best_checkpoint"], rb["best_checkpoint"]
    best_equal = (
        best_a is not None
        and best_b is not None
        and Path(best_a).name == Path(best_b).name
        and all(
            torch.equal(x, y) if isinstance(x, torch.Tensor) else x == y
            for x, y in zip(_weights(best_a).values(), _weights(best_b).values())
        )
    )
    return {
        "max_abs_diff": diff,
        "weights_equal": equal,
        "metrics_equal": ma == mb,
        "metrics_a": ma,
        "metrics_b": mb,
        "best_ckpt_equal": bool(best_equal),
        "best_a": best_a,
        "best_b": best_b,
    }
