"""A non-finite loss stops training at once, naming the stage, global step, batch index and the
first non-finite input (issue 18 point 1), instead of training on with ``loss nan``."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from gatelab.core.harness.errors import DataError, NonFiniteLossError
from gatelab.core.harness.task import RegressionTask, first_non_finite


def _batches(bad: int | None = None, where: tuple[int, int] = (1, 2), huge_target: bool = False):
    g = torch.Generator().manual_seed(0)
    out = []
    for i in range(4):
        x, y = torch.randn(4, 3, generator=g), torch.randn(4, 1, generator=g)
        if i == bad:
            x[where] = float("nan")
        if huge_target and i == 1:
            y[0, 0] = 3e38  # finite, but its squared error overflows float32
        out.append((x, y))
    return out


def _fit(batches, stage: str = "train") -> None:
    torch.manual_seed(0)
    task = RegressionTask(model=nn.Linear(3, 1), task={"optimizer": "sgd", "lr": 1e-3})
    trainer = L.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    loader = DataLoader(batches, batch_size=None)
    if stage == "train":
        trainer.fit(task, train_dataloaders=loader)
    else:
        trainer.test(task, dataloaders=loader)


def test_nan_input_stops_training_naming_step_batch_and_input():
    with pytest.raises(NonFiniteLossError) as e:
        _fit(_batches(bad=2))
    msg = str(e.value)
    assert "train: non-finite loss nan at global step 2" in msg
    assert "batch index 2" in msg
    assert "first non-finite input: batch[0][1, 2] = nan (shape (4, 3), 1 non-finite)" in msg
    assert isinstance(e.value, DataError)  # the CLI reports it as one line, exit 2


def test_nan_in_test_split_is_named_too():
    with pytest.raises(
        NonFiniteLossError, match=r"test: non-finite loss nan .* batch index 3; .*batch\[0\]\[0, 1\]"
    ):
        _fit(_batches(bad=3, where=(0, 1)), stage="test")


def test_divergence_with_finite_inputs_says_so():
    with pytest.raises(
        NonFiniteLossError, match="batch index 1; every input is finite: the model or the loss diverged"
    ):
        _fit(_batches(huge_target=True))


def test_clean_batches_train():
    _fit(_batches())


def test_first_non_finite_walks_mappings_and_ignores_integer_tensors():
    batch = {
        "categorical": torch.zeros(2, 2, dtype=torch.long),
        "numeric": torch.tensor([[0.0, float("inf")]]),
    }
    assert first_non_finite(batch) == "batch['numeric'][0, 1] = inf (shape (1, 2), 1 non-finite)"
    assert first_non_finite({"x": torch.ones(3)}) is None
