"""The example config trains through the harness (``gatelab train``), on the real stallion data."""

from __future__ import annotations

import pytest

from gatelab.core.harness.configs import ExperimentConfig


def test_example_config_parses(repo_root):
    cfg = ExperimentConfig.load(repo_root / "docs" / "examples" / "tft_stallion.yaml")
    assert cfg.model.name == "tft" and cfg.data.name == "tft-stallion" and cfg.task.name == "tft"


@pytest.mark.data
def test_example_config_runs_two_steps(repo_root, shared_data, tmp_path):
    from gatelab.core.harness import run_experiment

    if not (shared_data / "stallion" / "stallion.parquet").is_file():
        pytest.skip("stallion data not present")
    cfg = ExperimentConfig.load(
        repo_root / "docs" / "examples" / "tft_stallion.yaml",
        overrides=[
            f"output_dir={tmp_path}",
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=2",
            "trainer.limit_val_batches=1",
            "trainer.limit_test_batches=1",
            "trainer.progress_bar=false",
            "trainer.loggers=[]",
        ],
    )
    res = run_experiment(cfg, data_dir=shared_data)
    assert {"test/mae", "test/q50", "test/q90", "test/loss"} <= set(res.metrics)
    assert res.best_checkpoint
