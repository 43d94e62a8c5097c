"""The scripts under ``tools/`` stay runnable as the tree moves: each reliability part loads,
exposes ``rows(quick)``, and every module it imports inside its functions (the shared test case
lists) is found on the path the part sets up. A moved test helper fails here, not in a
half-hour reliability run."""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PARTS = sorted(p for p in (ROOT / "tools" / "reliability").glob("*.py") if p.stem not in ("__init__", "run"))


def _deferred_imports(path: Path) -> set[str]:
    """Top-level names of the modules imported inside functions of ``path``."""
    names: set[str] = set()
    for fn in ast.walk(ast.parse(path.read_text())):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                if isinstance(node, ast.Import):
                    names |= {a.name.split(".")[0] for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", PARTS, ids=[p.stem for p in PARTS])
def test_reliability_part_loads_and_finds_its_helpers(path, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))  # the part may extend it
    spec = importlib.util.spec_from_file_location(f"gatelab_reliability_test_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert callable(getattr(module, "rows", None)), f"{path.name}: no rows(quick)"
    missing = [n for n in sorted(_deferred_imports(path)) if importlib.util.find_spec(n) is None]
    assert not missing, f"{path.name} imports modules not on its path: {missing}"
