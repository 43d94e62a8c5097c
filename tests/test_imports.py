"""The locked environment imports the whole stack (torch 2.15 + torchaudio 2.11 did not)."""

from __future__ import annotations

import importlib

import pytest

STACK = [
    "torch",
    "torchvision",
    "torchaudio",
    "timm",
    "pytorch_forecasting",
    "torch_geometric",
    "triton",
    "lightning",
    "torchmetrics",
]


@pytest.mark.parametrize("name", STACK)
def test_stack_imports(name):
    mod = importlib.import_module(name)
    assert getattr(mod, "__version__", None), f"{name} has no __version__"


def test_torchvision_ops_run():
    """torchvision's compiled ops load against this torch (a CPU/CUDA build mismatch breaks them)."""
    import torch
    import torchvision

    boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0], [2.0, 2.0, 3.0, 3.0]])
    keep = torchvision.ops.nms(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.5)
    assert keep.tolist() == [0, 2]


PUBLIC_PACKAGES = [
    "gatelab.core",
    "gatelab.timeseries.models",
    "gatelab.recsys.models",
    "gatelab.vision.models",
    "gatelab.multimodal.models",
]


@pytest.mark.parametrize("package", PUBLIC_PACKAGES)
def test_public_exports_resolve(package):
    """``gatelab.core`` and each domain's ``models`` package export names that resolve (none empty)."""
    mod = importlib.import_module(package)
    assert mod.__all__, f"{package} exports nothing"
    for name in mod.__all__:
        assert getattr(mod, name) is not None, f"{package}.{name}"
