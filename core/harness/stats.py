"""Paired comparisons of two models over seeds: the mean difference and its confidence interval.

A comparison in a paper table pairs the runs of two models that share everything but the model:
the dataset, horizon or split, budget, and the seeds (``seed``, and ``data_seed`` where the data
draw varies). With ``d_i = a_i - b_i`` over ``n`` pairs, the paired t-interval is

    mean(d) ± t_{n-1, (1+c)/2} · sd(d) / sqrt(n)

(``sd`` with the ``n-1`` denominator, ``c`` the confidence, 0.95 by default), and the two-sided
p-value of ``mean(d) = 0`` comes from the same t statistic. The difference is *significant* when
the interval excludes 0; otherwise tables print "not significant". With ``sd(d) = 0`` the interval
has zero width (identical differences in every pair). At least two pairs are needed.

:class:`Comparison` declares one such comparison on a :class:`~gatelab.core.harness.repro.ReproTable`;
:func:`gatelab.core.harness.ledger.paired_comparisons` evaluates it on a ledger and
:func:`gatelab.core.harness.ledger.render_markdown` prints it under the table.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["Comparison", "PairedDifference", "paired_difference"]


@dataclasses.dataclass(frozen=True)
class PairedDifference:
    """Mean of ``a - b`` over ``n`` pairs with its ``confidence`` t-interval ``[lo, hi]`` and p-value."""

    n: int
    mean: float
    lo: float
    hi: float
    sd: float
    p: float
    confidence: float = 0.95

    @property
    def significant(self) -> bool:
        """``True`` when the interval excludes 0."""
        return self.lo > 0 or self.hi < 0

    def verdict(self, a: str, b: str, lower_is_better: bool) -> str:
        """``"<a> better"``, ``"<b> better"`` or ``"not significant"`` for the difference ``a - b``."""
        if not self.significant:
            return "not significant"
        a_lower = self.hi < 0
        return f"{a} better" if a_lower == lower_is_better else f"{b} better"


def paired_difference(
    a: Sequence[float], b: Sequence[float], confidence: float = 0.95
) -> PairedDifference:
    """Paired t-interval of ``mean(a - b)``; ``a[i]`` and ``b[i]`` are one pair (same seed).

    Raises ``ValueError`` when the lengths differ, fewer than two pairs are given, a value is not
    finite or ``confidence`` is not in (0, 1).
    """
    from scipy import stats as _st

    if len(a) != len(b):
        raise ValueError(f"paired_difference: {len(a)} values against {len(b)}; pairs need equal lengths")
    if len(a) < 2:
        raise ValueError(f"paired_difference: {len(a)} pair(s); an interval needs at least 2")
    if not 0 < confidence < 1:
        raise ValueError(f"paired_difference: confidence={confidence!r} must be in (0, 1)")
    d = [float(x) - float(y) for x, y in zip(a, b, strict=True)]
    bad = [i for i, v in enumerate(d) if not math.isfinite(v)]
    if bad:
        raise ValueError(f"paired_difference: pair(s) {bad} are not finite: {[(a[i], b[i]) for i in bad]}")
    n = len(d)
    mean = statistics.fmean(d)
    sd = statistics.stdev(d)
    half = float(_st.t.ppf((1 + confidence) / 2, n - 1)) * sd / math.sqrt(n)
    if sd == 0:
        p = 1.0 if mean == 0 else 0.0
    else:
        p = float(2 * _st.t.sf(abs(mean) / (sd / math.sqrt(n)), n - 1))
    return PairedDifference(n=n, mean=mean, lo=mean - half, hi=mean + half, sd=sd, p=p, confidence=confidence)


@dataclasses.dataclass(frozen=True)
class Comparison:
    """``model`` against ``rival`` in ``metric``, paired by seed (and ``data_seed``).

    Args:
        metric: the metric compared (a ledger key, e.g. ``"mse"``).
        model: the ``model`` value of the first side (the difference is ``model - rival``).
        rival: the ``model`` value of the second side.
        lower_is_better: whether a lower ``metric`` is better (MSE) or not (AUC).
        where: key values both sides' records must have (e.g. ``{"budget": "equal steps"}``).
        model_where / rival_where: key values only one side must have; those keys are then not
            required to match between the pairs (e.g. ours at its preset budget against the rival
            at equal steps).
        label: a short name for the comparison in tables (default ``"<model> − <rival>"``).

    Pairs: the records left after the filters are grouped by every descriptive key except
    ``model`` and the keys named in ``model_where`` / ``rival_where``; within a group a record of
    ``model`` and one of ``rival`` with equal ``seed`` and ``data_seed`` form a pair. Only each
    group's latest configuration counts (as in the rendered table).
    """

    metric: str
    model: str
    rival: str
    lower_is_better: bool
    where: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    model_where: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    rival_where: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    label: str | None = None

    def __post_init__(self) -> None:
        if not self.metric or not self.model or not self.rival:
            raise ValueError(f"Comparison needs metric, model and rival, got {self!r}")
        if self.model == self.rival and set(self.model_where.items()) == set(self.rival_where.items()):
            raise ValueError(f"Comparison of {self.model!r} with itself under the same filters: {self!r}")

    @property
    def name(self) -> str:
        """The label shown in tables."""
        if self.label:
            return self.label
        return f"{self.model} − {self.rival}"
