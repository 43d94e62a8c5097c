"""Fixtures of the recsys tests: tiny files in the real CTR formats, written under tmp_path."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # ctr_fixtures

from ctr_fixtures import criteo_rows, write_lines


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Encoded caches and results go to tmp_path, never to the user's ~/.cache or docs/results."""
    monkeypatch.setenv("GATELAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("GATELAB_RESULTS", str(tmp_path / "results"))


@pytest.fixture
def criteo_tsv(tmp_path) -> dict[str, Path]:
    """Criteo raw TSV train (600 rows, ~60 KB) / valid / test files (no header)."""
    return {
        "train": write_lines(tmp_path / "train.txt", criteo_rows(600, 1), "\t"),
        "valid": write_lines(tmp_path / "valid.txt", criteo_rows(80, 2, vocab=9), "\t"),
        "test": write_lines(tmp_path / "test.txt", criteo_rows(80, 3, vocab=9), "\t"),
    }
