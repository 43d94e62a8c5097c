"""Argument checks shared by the gate constructors, with one wording for every gate.

``check_positive_int(owner, name, value)`` and ``check_dropout(owner, value)`` raise
``ValueError(f"{owner}: {name} must be ...")``, so a bad argument names the class and the argument.
No torch import.
"""

from __future__ import annotations

__all__ = ["check_dropout", "check_positive_int", "check_positive_ints"]


def check_positive_int(
    owner: str, name: str, value: object, *, allow_none: bool = False, allow_bool: bool = False
) -> None:
    """Raise ``ValueError("{owner}: {name} must be a positive int, got {value!r}")`` unless ``value >= 1``.

    ``value`` must be an ``int``; ``bool`` is rejected unless ``allow_bool`` (some gates historically
    accept ``True`` as 1) and ``None`` passes when ``allow_none``.
    """
    if value is None and allow_none:
        return
    if (isinstance(value, bool) and not allow_bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{owner}: {name} must be a positive int, got {value!r}")


def check_positive_ints(owner: str, *pairs: tuple[str, object], allow_bool: bool = False) -> None:
    """:func:`check_positive_int` for each ``(name, value)`` pair, in order."""
    for name, value in pairs:
        check_positive_int(owner, name, value, allow_bool=allow_bool)


def check_dropout(owner: str, value: float, name: str = "dropout") -> None:
    """Raise ``ValueError("{owner}: {name} must be in [0, 1), got {value!r}")`` unless ``0 <= value < 1``."""
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{owner}: {name} must be in [0, 1), got {value!r}")
