"""Fixtures of the harness tests: test-only registrations and isolated data/results/cache dirs."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
TINY_MODULE = "gatelab_harness_tiny"


def load_tiny():
    """Import tests/core/harness/tiny_setup.py once per process (it registers the test model/data/task)."""
    mod = sys.modules.get(TINY_MODULE)
    if mod is None:
        spec = importlib.util.spec_from_file_location(TINY_MODULE, HERE / "tiny_setup.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[TINY_MODULE] = mod
        spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def tiny():
    return load_tiny()


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path, monkeypatch):
    """No test reads the user's data, writes docs/results or the user's hash cache."""
    monkeypatch.setenv("GATELAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("GATELAB_RESULTS", str(tmp_path / "results"))
    monkeypatch.delenv("GATELAB_DATA", raising=False)
