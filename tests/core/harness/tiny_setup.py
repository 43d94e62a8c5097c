"""Test-only registrations for the harness tests: a tiny MLP, a synthetic regression data module,
and a task that writes a hash of its parameters per DDP rank.

Loaded by ``conftest.py`` (as module ``gatelab_harness_tiny``) and by the DDP test's script, so
registration happens once per process. Nothing here is part of gatelab.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from gatelab.core import GluMlp
from gatelab.core.config import PositiveInt
from gatelab.core.harness.experiment import register_datamodule, register_task
from gatelab.core.harness.task import RegressionTask
from gatelab.core.registry import register_model, registered

MODEL = "harness-test-mlp"
DATA = "harness-test-regression"
HASH_TASK = "harness-test-hashing"
HASH_DIR_ENV = "GATELAB_TEST_HASH_DIR"


class TinyMLP(nn.Module):
    """A SwiGLU MLP (``gatelab.core.GluMlp``); x: [B, in_features] -> [B, out_features]."""

    def __init__(self, in_features: PositiveInt = 3, hidden: PositiveInt = 4, out_features: PositiveInt = 1) -> None:
        super().__init__()
        self.net = GluMlp(in_features, hidden, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TinyRegressionData(L.LightningDataModule):
    """y = x @ w + 0.5 with fixed x ~ N(0, 1) and w = [1, -2, 0.5, ...]; 50/25/25 % splits."""

    def __init__(
        self, data_dir: Path, n: PositiveInt = 64, in_features: PositiveInt = 3, batch_size: PositiveInt = 8
    ) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(1234)
        self.x = torch.randn(n, in_features, generator=g)
        w = torch.tensor([1.0, -2.0, 0.5, 0.25, -1.0, 2.0])[:in_features]
        self.y = (self.x @ w + 0.5).unsqueeze(-1)
        self.in_features = in_features
        self.batch_size = batch_size
        self.data_dir = data_dir
        self.n_train, self.n_val = n // 2, n // 4

    def model_kwargs(self) -> dict[str, int]:
        return {"in_features": self.in_features, "out_features": 1}

    def _loader(self, lo: int, hi: int, shuffle: bool = False) -> DataLoader:
        return DataLoader(
            TensorDataset(self.x[lo:hi], self.y[lo:hi]), batch_size=self.batch_size, shuffle=shuffle
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(0, self.n_train, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.n_train, self.n_train + self.n_val)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.n_train + self.n_val, len(self.x))


def param_sha256(module: nn.Module) -> str:
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


class HashingTask(RegressionTask):
    """RegressionTask that writes ``rank<r>.json`` (parameter sha256 before/after fit) to $GATELAB_TEST_HASH_DIR."""

    def on_fit_start(self) -> None:
        self._init_hash = param_sha256(self.model)

    def on_fit_end(self) -> None:
        out = Path(os.environ[HASH_DIR_ENV])
        out.mkdir(parents=True, exist_ok=True)
        info = {
            "rank": self.global_rank,
            "world_size": self.trainer.world_size,
            "init_sha256": self._init_hash,
            "sha256": param_sha256(self.model),
            "global_step": self.trainer.global_step,
            "ckpt_dir": self.trainer.checkpoint_callback.dirpath,
            "backend": str(torch.distributed.get_backend()) if torch.distributed.is_initialized() else None,
        }
        (out / f"rank{self.global_rank}.json").write_text(json.dumps(info))


class RecordingCallback(L.Callback):
    """Counts finished training epochs; built from ``trainer.callbacks`` by class path in tests."""

    def __init__(self, tag: str, every: PositiveInt = 1) -> None:
        self.tag = tag
        self.every = every
        self.epochs = 0

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.epochs += 1


def _example_inputs(model: nn.Module, batch: int):
    return (torch.randn(batch, 3),), {}


if MODEL not in registered():
    register_model(
        MODEL,
        domain="core",
        paper="test only (not a paper model)",
        gates=("GluMlp",),
        description="SwiGLU MLP for harness tests",
        tiny={"in_features": 3, "hidden": 4, "out_features": 1},
        example_inputs=_example_inputs,
        tags=("test",),
    )(TinyMLP)
register_datamodule(DATA, TinyRegressionData)
register_task(HASH_TASK, HashingTask)
