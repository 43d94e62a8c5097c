"""Argument checks shared by the gate constructors, with one wording for every gate.

``check_positive_int(owner, name, value)`` and ``check_dropout(owner, value)`` raise
``ValueError(f"{owner}: {name} must be ...")``, so a bad argument names the class and the argument.
:func:`check_float_input` is the models' input check (floating dtype; optionally finite values).
No torch import (tensors are used through their methods).
"""

from __future__ import annotations

__all__ = ["check_dropout", "check_float_input", "check_positive_int", "check_positive_ints"]


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


def check_float_input(owner: str, name: str, x: object, *, check_finite: bool = False) -> None:
    """Raise ``TypeError`` unless ``x`` is a floating-point tensor, naming ``owner``, ``name`` and the dtype.

    Integer images (``uint8`` ``[0, 255]``) are the usual culprit: the message says to convert
    them (``x.float() / 255``). With ``check_finite``, NaN or infinite values raise ``ValueError``
    with their count and the index of the first one (a full pass over ``x``: off by default).
    """
    is_float = getattr(x, "is_floating_point", None)
    if is_float is None:
        raise TypeError(f"{owner}: {name} must be a floating-point tensor, got {type(x).__name__}")
    if not is_float():
        raise TypeError(
            f"{owner}: {name} must be a floating-point tensor, got dtype {x.dtype}"  # type: ignore[attr-defined]
            " (convert integer images first, e.g. x.float() / 255 for uint8 in [0, 255])"
        )
    if check_finite:
        bad = ~x.isfinite()  # type: ignore[attr-defined]
        if bool(bad.any()):
            first = tuple(int(i) for i in bad.nonzero()[0])
            value = float(x[first])  # type: ignore[index]
            raise ValueError(
                f"{owner}: {name} has {int(bad.sum())} non-finite value(s) (NaN or inf); the first is {value} at"
                f" index {first} of shape {tuple(x.shape)}"  # type: ignore[attr-defined]
            )
