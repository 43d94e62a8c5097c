"""DDP: ``gatelab train`` with 2 CPU processes (gloo); both ranks train and end with identical weights.

Lightning's DDP launcher re-runs the command for rank 1, so the training runs in a subprocess
script (pytest itself cannot be re-executed). Each rank writes the sha256 of its parameters
before and after fitting; the ranks must agree exactly (DDP all-reduces gradients, so replicas
that start equal stay equal), the weights must have changed, and both ranks must have used
rank 0's checkpoint directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import yaml
from trainer_fixtures import quiet_trainer

HERE = Path(__file__).resolve().parent

SCRIPT = """
import sys
sys.path.insert(0, {here!r})
import tiny_setup  # registers the test model, data module and hashing task (in every rank)
from gatelab.core.harness.cli import main
sys.exit(main(["train", "--config", {config!r}]))
"""


def test_ddp_two_cpu_ranks_agree(tmp_path):
    cfg = {
        "name": "ddp",
        "seed": 0,
        "output_dir": str(tmp_path / "runs"),
        "model": {"name": "harness-test-mlp", "kwargs": {"hidden": 4}},
        "data": {"name": "harness-test-regression", "kwargs": {"n": 64, "batch_size": 4}},
        "task": {"name": "harness-test-hashing", "lr": 0.05},
        "trainer": quiet_trainer(
            devices=2,
            strategy="ddp",
            max_epochs=1,
            limit_train_batches=3,
            limit_val_batches=1,
            limit_test_batches=1,
            num_sanity_val_steps=0,
            loggers=["csv"],
        ),
    }
    config = tmp_path / "ddp.yaml"
    config.write_text(yaml.safe_dump(cfg))
    script = tmp_path / "run_ddp.py"
    script.write_text(textwrap.dedent(SCRIPT.format(here=str(HERE), config=str(config))))
    hashes = tmp_path / "hashes"
    env = {
        **os.environ,
        "GATELAB_TEST_HASH_DIR": str(hashes),
        "OMP_NUM_THREADS": "1",
        "PYTHONWARNINGS": "ignore",
    }
    for var in ("LOCAL_RANK", "RANK", "WORLD_SIZE", "NODE_RANK", "MASTER_PORT"):
        env.pop(var, None)
    res = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]

    ranks = {int(p.stem[4:]): json.loads(p.read_text()) for p in hashes.glob("rank*.json")}
    assert sorted(ranks) == [0, 1], f"ranks that finished fitting: {sorted(ranks)}"
    r0, r1 = ranks[0], ranks[1]
    assert r0["world_size"] == r1["world_size"] == 2
    assert r0["backend"] == r1["backend"] == "gloo"
    assert r0["init_sha256"] == r1["init_sha256"]  # DDP starts every replica from rank 0's weights
    assert r0["sha256"] == r1["sha256"]  # identical after DDP training
    assert r0["sha256"] != r0["init_sha256"]  # and training changed them
    # 32 training samples split over 2 ranks in batches of 4: 4 batches per rank, limited to 3
    assert r0["global_step"] == r1["global_step"] == 3
    run = tmp_path / "runs" / "ddp" / "seed0" / "version_0"
    assert r0["ckpt_dir"] == r1["ckpt_dir"] == str(run / "checkpoints")
    assert not (tmp_path / "runs" / "ddp" / "seed0" / "version_1").exists()  # rank 1 wrote no run dir
    assert (run / "checkpoints" / "last.ckpt").is_file()
    metrics = json.loads((run / "metrics.json").read_text())
    assert "test/mse" in metrics  # both ranks tested the best checkpoint
    assert json.loads((run / "run.json").read_text())["world_size"] == 2


def _ddp_trials():
    """tools/reliability/ddp.py (the same trials the reliability ledger records)."""
    import importlib.util

    path = HERE.parents[2] / "tools" / "reliability" / "ddp.py"
    spec = importlib.util.spec_from_file_location("gatelab_reliability_ddp", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_ddp_every_domain_matches_single_process(tmp_path):
    """Each domain's smallest recipe (ltsf + Gateformer, ctr + GDCN-P, seg-folder + Attention
    U-Net, vl-text + the gated VL decoder), 2 epochs on 2 gloo CPU ranks with per-rank batch b, ends with
    the weights of one process trained with batch 2b (see tools/reliability/ddp.py for why these
    recipes use SGD, no dropout and even batch splits)."""
    ddp = _ddp_trials()
    results = {
        r["domain"]: r for r in ddp.run_trials(tmp_path, seed=0, domains=ddp.TEST_DOMAINS, timeout=400)
    }
    assert sorted(results) == sorted(ddp.TEST_DOMAINS)
    for domain, r in results.items():
        assert r["ranks"] == r["world_size"] == 2, domain
        assert r["ranks_identical"], f"{domain}: the two ranks ended with different weights"
        # every rank ran the same number of batches (unequal counts hang DDP), as many as one process
        assert len(set(r["train_batches"])) == 1 and r["train_batches"][0] == r["train_batches_single"], (
            domain
        )
        assert r["steps"] == r["steps_single"] == 2 * r["train_batches_single"] > 0, domain
        assert r["max_abs_diff"] <= ddp.TOLERANCE, (
            f"{domain}: max |w_ddp - w_single| = {r['max_abs_diff']:.3g}"
        )


def test_sync_batchnorm_reaches_the_trainer(tmp_path):
    from lightning.pytorch.plugins.layer_sync import TorchSyncBatchNorm

    from gatelab.core.harness import ExperimentConfig, build_trainer

    base = {"name": "x", "model": "m", "data": "d"}
    cfg = ExperimentConfig.from_dict(
        {**base, "trainer": {"sync_batchnorm": True, "accelerator": "cpu", "devices": 1}}
    )
    assert cfg.trainer.sync_batchnorm is True
    on = build_trainer(cfg.trainer, run_dir=tmp_path)
    assert isinstance(on._accelerator_connector._layer_sync, TorchSyncBatchNorm)
    off = build_trainer(ExperimentConfig.from_dict(base).trainer, run_dir=tmp_path)
    assert off._accelerator_connector._layer_sync is None
