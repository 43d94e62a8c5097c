"""Test-suite set-up.

``TRITON_INTERPRET=1`` must be set before anything imports triton, so Triton kernels run on the
CPU through the interpreter (slow: kernel tests use small shapes).
"""

from __future__ import annotations

import os

os.environ.setdefault("TRITON_INTERPRET", "1")

from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def _shared_data() -> Path | None:
    env = os.environ.get("GATELAB_DATA")
    if env and Path(env).is_dir():
        return Path(env)
    default = REPO.parent / "shared" / "data"
    return default if default.is_dir() else None


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real-data directory (GATELAB_DATA or ../shared/data); skips the test if absent."""
    path = _shared_data()
    if path is None:
        pytest.skip("real data directory not available (set GATELAB_DATA)")
    return path


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO
