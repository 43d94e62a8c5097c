"""``check_error`` / ``check_policy`` for the bad-input census modules of this branch.

They come from ``tests/census.py`` (the one census writer, ``tools/census.py``, issue 18 point 6)
when it is present; otherwise from the fallback below, which checks exactly the same things and
records nothing (``record`` is a no-op outside ``python tools/census.py`` anyway).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

try:
    from census import check_error, check_policy
except ImportError:  # the census writer is not in this checkout

    def check_error(
        loader: str,
        case: str,
        fault: str,
        fn: Callable[[], Any],
        *,
        names: Iterable[str],
        exc: type[BaseException] | tuple[type[BaseException], ...] = Exception,
    ) -> BaseException:
        """Run ``fn``; it must raise ``exc`` whose ``"Type: text"`` contains every string of ``names``."""
        names = [str(n) for n in names]
        try:
            fn()
        except exc as e:
            message = f"{type(e).__name__}: {e}"
            absent = [n for n in names if n not in message]
            if absent:
                raise AssertionError(f"census {loader}/{case}: the error does not name {absent}: {message}") from e
            return e
        except BaseException as e:
            raise AssertionError(f"census {loader}/{case}: expected {exc}, got {type(e).__name__}: {e}") from e
        raise AssertionError(f"census {loader}/{case}: {fault}: no error was raised")

    def check_policy(loader: str, case: str, fault: str, ok: bool, message: str) -> None:
        """Assert ``ok`` (the declared policy was applied and counted)."""
        assert ok, f"census {loader}/{case}: {message}"


__all__ = ["check_error", "check_policy"]
