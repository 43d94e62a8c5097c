"""Import a module from a user's checkout of a paper's official repository.

Equivalence checks and benchmarks compare against the official code without copying it: the
user passes ``--official-repo PATH`` (or an environment variable), and the module is imported
from that checkout. Official repositories import their own packages under generic top-level
names (``models``, ``layers``, ``utils``), so two such checkouts, or one checkout and an
unrelated installed package, would shadow each other. :func:`import_from_checkout` drops
already-imported modules of those names that do not come from the checkout, puts the checkout
on ``sys.path`` for the import only, and names the path and file when the checkout is not the
expected one.
"""

from __future__ import annotations

import importlib
import os
import sys
import sysconfig
import warnings
from pathlib import Path
from types import ModuleType

__all__ = ["checkout_root", "import_from_checkout"]


def checkout_root(path: str | os.PathLike[str] | None, marker: str) -> Path | None:
    """The resolved checkout root if ``path`` holds the file ``marker`` (relative), else ``None``.

    For the "skip when absent" check of a benchmark or test: ``None`` for an empty ``path``.
    """
    if not path:
        return None
    root = Path(path).expanduser().resolve()
    return root if (root / marker).is_file() else None


def import_from_checkout(
    root: str | os.PathLike[str],
    module: str,
    *,
    search_dir: str = "",
    what: str = "the official repository",
    quiet: bool = False,
) -> ModuleType:
    """Import ``module`` (dotted) from the checkout at ``root``.

    ``search_dir`` is the folder below ``root`` that goes on ``sys.path`` (``""``: the root
    itself; e.g. ``"maxim_pytorch"`` for a checkout whose module sits one level down). Modules
    already imported under ``module``'s top-level name, or under the checkout's own top-level
    packages, that do not come from this checkout are removed from ``sys.modules`` first (except,
    for the checkout's other names, installed libraries: a vendored ``torch/`` folder never
    unloads torch).
    ``sys.path`` is restored afterwards. ``quiet`` silences the official code's warnings while
    it is imported (deprecation notices of old torch APIs).

    Raises ``FileNotFoundError`` naming the expected file and ``what`` when the checkout does not
    hold ``module``.
    """
    base = (Path(root).expanduser().resolve() / search_dir).resolve()
    parts = module.split(".")
    file = base.joinpath(*parts).with_suffix(".py")
    if not file.is_file() and not (base.joinpath(*parts) / "__init__.py").is_file():
        raise FileNotFoundError(
            f"{file} not found; expected a checkout of {what} at {Path(root).expanduser()}"
        )
    tops = {parts[0]} | {
        p.stem for p in base.iterdir() if not p.name.startswith(".") and (p.is_dir() or p.suffix == ".py")
    }
    for name in [m for m in sys.modules if m.split(".")[0] in tops]:
        mod = sys.modules[name]
        if _comes_from(mod, base) or (name.split(".")[0] != parts[0] and _installed(mod)):
            continue  # the checkout's own, or an installed library (torch, numpy) it may also vendor
        del sys.modules[name]  # another project's package of the same name would shadow the checkout
    sys.path.insert(0, str(base))
    try:
        with warnings.catch_warnings():
            if quiet:
                warnings.simplefilter("ignore")
            return importlib.import_module(module)
    finally:
        try:
            sys.path.remove(str(base))
        except ValueError:
            pass


def _installed(mod: ModuleType) -> bool:
    """Whether ``mod`` is built in or lives in the interpreter's standard library or site-packages."""
    origins = _origins(mod)
    if not origins:
        return True
    roots = {Path(sysconfig.get_paths()[k]).resolve() for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    return any(Path(o).resolve().is_relative_to(r) for o in origins for r in roots)


def _origins(mod: ModuleType) -> list[str]:
    return [o for o in [getattr(mod, "__file__", None) or "", *list(getattr(mod, "__path__", []) or [])] if o]


def _comes_from(mod: ModuleType, base: Path) -> bool:
    """Whether ``mod`` (a module, or a namespace package without ``__file__``) lies under ``base``."""
    return any(Path(o).resolve().is_relative_to(base) for o in _origins(mod))
