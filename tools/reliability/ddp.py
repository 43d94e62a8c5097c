"""DDP trials: each domain's smallest recipe on 2 gloo CPU ranks vs one process at the same global batch.

For each domain (timeseries ``ltsf``, recsys ``ctr``, vision ``seg-folder`` and
``paired_restoration``, multimodal ``vl-text``) this writes a tiny data set in the real file format, then trains the same experiment

* on 2 CPU processes (``strategy: ddp``, ``devices: 2``, gloo) with per-rank batch ``b``, and
* on 1 process with batch ``2b`` (the same global batch),

and compares the final weights of every parameter and buffer. Both runs see the same samples at
every step: ``ctr`` and ``vl-text`` batch with the samplers of :mod:`gatelab.core.harness.sampling`
(pure functions of ``(seed, epoch)`` that shard each global batch over the ranks, the same order
with or without DDP). ``ltsf``, ``seg-folder`` and ``paired_restoration`` use plain loaders, which Lightning
re-samples under DDP with a ``DistributedSampler`` that always shuffles training data (seeded by
the experiment seed), so their single-process reference runs Lightning's DDP strategy on one
process (``devices: 1``) to get that same order; outside DDP their order differs (``ltsf``:
the global RNG; the vision modules: sequential epoch indices).

Settings that make two correct runs differ, and how the recipes avoid them (see
``docs/harness.md``, "Distributed training"): dropout (each rank draws its own masks: 0 here),
BatchNorm without ``sync_batchnorm`` (per-rank statistics; PyTorch's ``SyncBatchNorm`` needs
GPUs: no BatchNorm in these models, the U-Net uses instance norm), losses normalised per rank by
a data-dependent count (the VL decoder's token mean: fixed-length text blocks here), batch-level losses (the VL contrastive loss:
text only here), an uneven last global batch (DDP weights the ranks equally: even sizes here) and
Adam: the gradients agree to float rounding (summation order of the all-reduce), but Adam divides
each update by ``sqrt(v) + eps``, which turns rounding-level differences of near-zero gradients
into full-size steps (measured: up to 5e-3 after 16 steps). The recipes train with SGD
(momentum 0.9), where the runs agree to ~1e-8; the 1e-6 tolerance covers the summation order.

Run ``python tools/reliability/ddp.py [--quick]`` to print one JSON row per domain and seed:
``{"model": "ddp", "dataset": <data module>, "split": ..., "seed", "passed", "max_abs_diff",
"ranks", "ranks_identical", "steps", "steps_single"}``. ``--run SPEC`` is the worker mode (Lightning's DDP launcher
re-runs the same command line for rank 1).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
TOLERANCE = 1e-6
DOMAINS = ("ltsf", "ctr", "seg-folder", "paired_restoration", "vl-text")
#: one per domain (timeseries, recsys, vision, multimodal): what tests/core/harness/test_ddp.py runs
TEST_DOMAINS = ("ltsf", "ctr", "seg-folder", "vl-text")

_TRAINER = {
    "accelerator": "cpu",
    "max_epochs": 2,
    "num_sanity_val_steps": 0,
    "progress_bar": False,
    "enable_model_summary": False,
    "loggers": [],
    "checkpoint": {"enabled": False},
    "early_stopping": None,
}


# --------------------------------------------------------------------------- tiny data, real formats


def _ltsf_csv(path: Path, n: int, seed: int) -> None:
    """An LTSF-layout CSV (``date,a,b,OT``, hourly)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    t = np.arange(n)
    vals = np.stack([np.sin(t / 5), np.cos(t / 7), np.sin(t / 3) + 0.1 * t / n], 1) + rng.normal(
        0, 0.1, (n, 3)
    )
    df = pd.DataFrame(vals, columns=["a", "b", "OT"])
    df.insert(0, "date", pd.date_range("2016-07-01", periods=n, freq="h").strftime("%Y-%m-%d %H:%M:%S"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(df.to_csv(index=False))


def _ctr_csvs(root: Path, sizes: dict[str, int], seed: int) -> dict[str, str]:
    """CSV files ``label,user,item,price`` (the ``custom`` CTR layout)."""
    rng = random.Random(seed)
    out = {}
    for split, n in sizes.items():
        rows = ["label,user,item,price"]
        for _ in range(n):
            u, i = rng.randint(0, 9), rng.randint(0, 14)
            y = int(u < 5) if rng.random() < 0.9 else rng.randint(0, 1)
            rows.append(f"{y},u{u},i{i},{rng.random():.3f}")
        p = root / f"{split}.csv"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("\n".join(rows) + "\n")
        out[split] = str(p)
    return out


def _paired_pngs(root: Path, seed: int) -> None:
    """Noisy/clean PNG pairs in the ``input_target`` layout (``<split>/input``, ``<split>/target``)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    for split, n, size in (("train", 4, (24, 24)), ("val", 2, (16, 16)), ("test", 1, (16, 16))):
        for i in range(n):
            clean = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            noisy = np.clip(clean + rng.normal(0, 20, clean.shape), 0, 255).astype(np.uint8)
            for d, a in (("input", noisy), ("target", clean)):
                (root / split / d).mkdir(parents=True, exist_ok=True)
                Image.fromarray(a).save(root / split / d / f"{i}.png")


def _write_corpus(root: Path, seed: int) -> None:
    """The multimodal tests' text corpus fixture (every file of ``CORPUS_FILES``, real formats)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "_mm_conftest", REPO / "tests" / "multimodal" / "conftest.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.write_corpus(root, n_docs=24, seed=seed)


def _vl_text_kwargs(root: Path, seed: int) -> dict[str, Any]:
    """``vl-text`` kwargs with a saved tokenizer and an even number of training blocks (so the last
    global batch splits evenly over 2 ranks: the token-mean loss then weights every block alike)."""
    from gatelab.multimodal.data.datamodule import vl_text_datamodule

    tok = root / "tokenizer.json"
    base = {"val_fraction": 0.1, "test_fraction": 0.1, "max_words": 400, "verify": False, "seed": seed}
    vl_text_datamodule(root, vocab_size=300, save_tokenizer=str(tok), seq_len=16, **base)
    for seq_len in range(16, 40):
        dm = vl_text_datamodule(root, tokenizer=str(tok), seq_len=seq_len, **base)
        n = len(dm.text_blocks("train"))
        if n % 2 == 0 and n >= 16 and len(dm.text_blocks("val")) >= 2:
            return {"tokenizer": str(tok), "seq_len": seq_len, **base}
    raise RuntimeError(f"{root}: no seq_len in [16, 40) gives an even number of training blocks")


def _config(parts: dict[str, Any], name: str, batch: int, trainer: dict[str, Any]) -> dict[str, Any]:
    data = json.loads(json.dumps(parts["data"]))
    data["kwargs"]["batch_size"] = batch
    return {**parts, "name": name, "test": False, "data": data, "trainer": {**_TRAINER, **trainer}}


def build_trials(root: Path, seed: int = 0, domains: Sequence[str] = DOMAINS) -> list[dict[str, Any]]:
    """Write the tiny data sets under ``root`` and return one trial per domain:
    ``{"domain", "data_dir", "single": config, "ddp": config}`` (configs as dicts)."""
    trials = []
    for domain in domains:
        data_dir = root / "data" / domain
        data_dir.mkdir(parents=True, exist_ok=True)
        strategy = "ddp"
        if domain == "ltsf":
            _ltsf_csv(data_dir / "series.csv", 102, seed)  # 60 training windows: 7 global batches of 8 + 4
            model = {
                "name": "gateformer",
                "kwargs": {
                    "d_model": 8,
                    "num_heads": 2,
                    "num_layers": 1,
                    "hidden_dim": 16,
                    "patch_len": 4,
                    "stride": 4,
                    "dropout": 0.0,
                },
            }
            data = {
                "name": "ltsf",
                "kwargs": {"file": "series.csv", "freq": "h", "lookback": 8, "horizon": 4, "verify": False},
            }
            task = {"name": "regression", "optimizer": "sgd", "lr": 1e-2}
            per_rank = 4
        elif domain == "ctr":
            files = _ctr_csvs(
                data_dir, {"train": 68, "valid": 20, "test": 20}, seed
            )  # 4 global batches of 16 + 4
            model = {
                "name": "gdcn-p",
                "kwargs": {
                    "embedding_dim": 4,
                    "dnn_hidden_dims": [8],
                    "num_cross_layers": 2,
                    "dropout": 0.0,
                    "batch_norm": False,
                },
            }
            fields = [
                {"name": "user", "type": "categorical"},
                {"name": "item", "type": "categorical"},
                {"name": "price", "type": "numeric"},
            ]
            data = {
                "name": "ctr",
                "kwargs": {
                    "dataset": "custom",
                    "files": files,
                    "fields": fields,
                    "cache": str(root / "cache"),
                    "seed": seed,
                },
            }
            task = {"name": "ctr", "optimizer": "sgd", "lr": 5e-2}
            per_rank = 8
        elif domain == "seg-folder":
            if str(REPO / "tests") not in sys.path:
                sys.path.append(str(REPO / "tests"))  # the segmentation tests' fixture writers
            from segmentation_fixtures import FOLDERS, write_pngs

            write_pngs(data_dir, {"train": 2, "test": 2}, seed)
            # instance norm: BatchNorm would normalise each rank's patches alone (see the docstring)
            model = {
                "name": "attention-unet-2d",
                "kwargs": {"filters": [4, 8, 16], "feature_scale": 1, "norm": "instance"},
            }
            data = {
                "name": "seg-folder",
                "kwargs": {
                    **FOLDERS,
                    "label_values": {0: 0, 255: 1},
                    "patch_size": 16,
                    "samples_per_epoch": 8,
                },
            }
            task = {"name": "segmentation", "optimizer": "sgd", "lr": 1e-2, "kwargs": {"roi_size": [16, 16]}}
            per_rank = 2
        elif domain == "paired_restoration":
            _paired_pngs(data_dir, seed)
            from gatelab.vision.models.maxim import _TINY

            model = {"name": "maxim", "kwargs": {**_TINY, "num_stages": 1}}
            data = {
                "name": "paired_restoration",
                "kwargs": {
                    "train_root": "train",
                    "val_root": "val",
                    "test_root": "test",
                    "crop": 16,
                    "val_crop": 16,
                    "samples_per_epoch": 8,
                    "seed": seed,
                },
            }
            task = {"name": "restoration", "optimizer": "sgd", "lr": 1e-2}
            per_rank = 2
        elif domain == "vl-text":
            _write_corpus(data_dir, seed)
            model = {
                "name": "vl-gated-decoder",
                "kwargs": {"d_model": 16, "num_layers": 1, "num_heads": 2, "dropout": 0.0},
            }
            data = {"name": "vl-text", "kwargs": _vl_text_kwargs(data_dir, seed)}
            task = {"name": "vl-lm", "optimizer": "sgd", "lr": 5e-2}
            per_rank = 4
            # text batches leave the image encoder unused: DDP must be told (see docs/harness.md)
            strategy = "ddp_find_unused_parameters_true"
        else:
            raise ValueError(f"unknown DDP trial domain {domain!r}; expected one of {', '.join(DOMAINS)}")

        parts = {"seed": seed, "output_dir": str(root / "runs"), "model": model, "data": data, "task": task}
        single_trainer: dict[str, Any] = {"devices": 1}
        if domain in ("ltsf", "seg-folder", "paired_restoration"):  # plain loaders: see the module docstring
            single_trainer["strategy"] = "ddp"
        trials.append(
            {
                "domain": domain,
                "data_dir": str(data_dir),
                "single": _config(parts, f"{domain}-single", 2 * per_rank, single_trainer),
                "ddp": _config(parts, f"{domain}-ddp", per_rank, {"devices": 2, "strategy": strategy}),
            }
        )
    return trials


# --------------------------------------------------------------------------- worker (both ranks)


def _worker(spec_path: str) -> int:
    import torch

    from gatelab.core.harness import run_experiment

    spec = json.loads(Path(spec_path).read_text())
    for run in spec["runs"]:
        res = run_experiment(run["config"], data_dir=run["data_dir"])
        trainer = res.trainer
        state = {
            k: v.detach().cpu().clone()
            for k, v in res.task.state_dict().items()
            if isinstance(v, torch.Tensor)
        }
        out = Path(spec["out"]) / run["config"]["name"]
        out.mkdir(parents=True, exist_ok=True)
        torch.save(
            {
                "state": state,
                "world_size": trainer.world_size,
                "global_step": trainer.global_step,
                "train_batches": trainer.num_training_batches,
            },
            out / f"rank{trainer.global_rank}.pt",
        )
    return 0


def _launch(spec: dict[str, Any], root: Path, name: str, timeout: float) -> None:
    path = root / f"{name}.json"
    path.write_text(json.dumps(spec))
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONWARNINGS": "ignore",
        "GATELAB_CACHE": str(root / "cache"),
    }
    for var in (
        "LOCAL_RANK",
        "RANK",
        "WORLD_SIZE",
        "NODE_RANK",
        "MASTER_PORT",
        "MASTER_ADDR",
        "PL_GLOBAL_SEED",
    ):
        env.pop(var, None)
    res = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--run", str(path)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if res.returncode != 0:
        raise RuntimeError(
            f"{name} runs failed (exit {res.returncode}):\n{res.stdout[-4000:]}\n{res.stderr[-6000:]}"
        )


def run_trials(
    root: Path, seed: int = 0, domains: Sequence[str] = DOMAINS, timeout: float = 600
) -> list[dict[str, Any]]:
    """Build the trials under ``root``, run the single-process and the 2-rank runs (two
    subprocesses), and compare. Returns one result per domain with the loaded states."""
    import torch

    root.mkdir(parents=True, exist_ok=True)
    trials = build_trials(root, seed, domains)
    out = root / "weights"
    t0 = time.perf_counter()
    # the plain-loader single runs initialise a 1-process group: keep them last in their process
    singles = sorted(trials, key=lambda t: t["single"]["trainer"].get("strategy") == "ddp")
    _launch(
        {"out": str(out), "runs": [{"config": t["single"], "data_dir": t["data_dir"]} for t in singles]},
        root,
        "single",
        timeout,
    )
    _launch(
        {"out": str(out), "runs": [{"config": t["ddp"], "data_dir": t["data_dir"]} for t in trials]},
        root,
        "ddp",
        timeout,
    )
    wall = time.perf_counter() - t0
    results = []
    for t in trials:
        single = torch.load(out / t["single"]["name"] / "rank0.pt", weights_only=True)
        ranks = [torch.load(p, weights_only=True) for p in sorted((out / t["ddp"]["name"]).glob("rank*.pt"))]
        r0 = ranks[0]
        identical = all(
            r["state"].keys() == r0["state"].keys()
            and all(torch.equal(r["state"][k], v) for k, v in r0["state"].items())
            for r in ranks[1:]
        )
        if single["state"].keys() != r0["state"].keys():
            raise RuntimeError(f"{t['domain']}: the runs have different state keys")
        diff = max(
            (r0["state"][k].double() - v.double()).abs().max().item() if v.numel() else 0.0
            for k, v in single["state"].items()
        )
        results.append(
            {
                "domain": t["domain"],
                "ranks": len(ranks),
                "world_size": r0["world_size"],
                "ranks_identical": identical,
                "max_abs_diff": diff,
                "steps": r0["global_step"],
                "steps_single": single["global_step"],
                "train_batches": [r["train_batches"] for r in ranks],
                "train_batches_single": single["train_batches"],
                "wall_s": wall,
            }
        )
    return results


def rows(quick: bool = False) -> list[dict]:
    """Ledger-style rows: one per domain and seed (``quick``: the test's four domains, seed 0)."""
    out = []
    for seed in (0,) if quick else (0, 1):
        with tempfile.TemporaryDirectory(prefix="gatelab-ddp-") as tmp:
            for r in run_trials(Path(tmp), seed, domains=TEST_DOMAINS if quick else DOMAINS):
                passed = (
                    r["ranks"] == 2
                    and r["ranks_identical"]
                    and r["max_abs_diff"] <= TOLERANCE
                    and r["steps"] == r["steps_single"] > 0
                )
                out.append(
                    {
                        "model": "ddp",
                        "dataset": r["domain"],
                        "split": "2 gloo CPU ranks (batch b) vs 1 process (batch 2b), 2 epochs, final weights",
                        "seed": seed,
                        "passed": int(passed),
                        "max_abs_diff": r["max_abs_diff"],
                        "tolerance": TOLERANCE,
                        "ranks": r["ranks"],
                        "ranks_identical": int(r["ranks_identical"]),
                        "steps": r["steps"],
                        "steps_single": r["steps_single"],
                    }
                )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--run"] and len(args) == 2:
        return _worker(args[1])
    if args not in ([], ["--quick"]):
        print("usage: python tools/reliability/ddp.py [--quick]", file=sys.stderr)
        return 2
    for row in rows(quick=args == ["--quick"]):
        print(json.dumps(row, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
