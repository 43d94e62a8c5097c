"""Import the harness tests' helper files (``tiny_setup.py``, ``fake_table.py``) by path, once per process.

They register test-only models, data modules and tables when imported, so each must be executed
exactly once per process under one module name; ``conftest.py``, ``bad_config_cases.py`` and
``test_repro_crash.py`` share :func:`load_once` (``from file_modules import ...`` with this folder
on ``sys.path``).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
#: the module name ``tiny_setup.py`` is imported under (the cold-start checks look it up by this name)
TINY_MODULE = "gatelab_harness_tiny"


def load_once(name: str, filename: str) -> ModuleType:
    """``sys.modules[name]``, importing ``tests/core/harness/<filename>`` as ``name`` on first use."""
    mod = sys.modules.get(name)
    if mod is None:
        spec = importlib.util.spec_from_file_location(name, HERE / filename)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import {HERE / filename} as {name}")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return mod


def load_tiny() -> ModuleType:
    """Import tests/core/harness/tiny_setup.py once per process (it registers the test model/data/task)."""
    return load_once(TINY_MODULE, "tiny_setup.py")
