"""Lazy package exports (PEP 562), shared by the packages that keep ``import`` cheap.

A package lists ``{public name: submodule}`` and gets a module ``__getattr__`` that imports the
submodule on first access (and caches the value in the package), plus a ``__dir__`` that lists
the exports next to what is already loaded.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` whose public names live in its submodules.

    Args:
        package: the package's ``__name__`` (it must be in ``sys.modules``: call this at its top level).
        exports: public name -> submodule (relative to ``package``) that defines it.
    """
    namespace = sys.modules[package].__dict__

    def __getattr__(name: str) -> Any:
        sub = exports.get(name)
        if sub is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{sub}"), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
