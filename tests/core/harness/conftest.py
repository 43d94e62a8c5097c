"""Fixtures of the harness tests: test-only registrations and isolated data/results/cache dirs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
from file_modules import load_tiny  # noqa: E402


@pytest.fixture
def tiny():
    return load_tiny()


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path, monkeypatch):
    """No test reads the user's data, writes docs/results or the user's hash cache."""
    monkeypatch.setenv("GATELAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("GATELAB_RESULTS", str(tmp_path / "results"))
    monkeypatch.delenv("GATELAB_DATA", raising=False)
