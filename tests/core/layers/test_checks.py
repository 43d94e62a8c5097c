"""The argument checks shared by the gate constructors: what passes, and the one-line messages."""

from __future__ import annotations

import pytest

from gatelab.core.layers.checks import check_dropout, check_positive_int, check_positive_ints


def test_positive_int_accepts_and_rejects():
    check_positive_int("G", "dim", 1)
    check_positive_int("G", "dim", None, allow_none=True)
    check_positive_int("G", "dim", True, allow_bool=True)
    for bad in (0, -3, 2.0, "4", None, True):
        with pytest.raises(ValueError, match=rf"^G: dim must be a positive int, got {bad!r}$"):
            check_positive_int("G", "dim", bad)


def test_positive_ints_reports_the_first_bad_pair():
    check_positive_ints("G", ("a", 1), ("b", 2))
    with pytest.raises(ValueError, match=r"^G: b must be a positive int, got 0$"):
        check_positive_ints("G", ("a", 1), ("b", 0), ("c", -1))


def test_dropout_range():
    for ok in (0.0, 0, 0.5, 0.999):
        check_dropout("G", ok)
    for bad in (-0.1, 1.0, 2):
        with pytest.raises(ValueError, match=rf"^G: dropout must be in \[0, 1\), got {bad!r}$"):
            check_dropout("G", bad)
    with pytest.raises(ValueError, match=r"^G: attn_dropout must be in"):
        check_dropout("G", 1.5, "attn_dropout")
