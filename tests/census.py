"""The census writer for the bad-input tests: ``tools/census.py`` loaded by path (``tools/`` is
not a package on the test path), re-exported here so census modules write
``from census import check_error, check_policy, record``."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_PATH = Path(__file__).resolve().parents[1] / "tools" / "census.py"
_NAME = "gatelab_tools_census"
if _NAME in sys.modules:
    _mod = sys.modules[_NAME]
else:
    _spec = importlib.util.spec_from_file_location(_NAME, _PATH)
    assert _spec is not None and _spec.loader is not None, _PATH
    _mod = importlib.util.module_from_spec(_spec)
    sys.modules[_NAME] = _mod
    _spec.loader.exec_module(_mod)

record = _mod.record
check_error = _mod.check_error
check_policy = _mod.check_policy
ENV = _mod.ENV

__all__ = ["ENV", "check_error", "check_policy", "record"]
