r"""Losses and metrics of the Temporal Fusion Transformer.

* :func:`quantile_loss` -- the training loss, pytorch-forecasting's ``QuantileLoss``:
  ``2 * max(q (y - y_hat_q), (q - 1)(y - y_hat_q))`` averaged over the quantiles and the valid
  (series, horizon) cells.
* :class:`QRisk` -- the paper's normalised quantile loss (Lim et al. 2021, Sec. 6.1 and the
  official ``utils.numpy_normalised_quantile_loss``)::

      q-Risk(q) = 2 * sum_{i, tau} QL(y_{i,tau}, y_hat_{i,tau}(q), q) / sum_{i, tau} |y_{i,tau}|
      QL(y, y_hat, q) = max(q (y - y_hat), (q - 1)(y - y_hat))

  accumulated over a whole evaluation set (sums, reduced across DDP ranks), so batch sizes do
  not weigh in.
* :func:`valid_mask` -- which cells of a ``[B, T_d]`` window are real (decoder lengths).

MAE is torchmetrics' ``MeanAbsoluteError`` on the median forecast of the valid cells.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torchmetrics

__all__ = ["PointMAE", "QRisk", "evaluate_forecasts", "quantile_loss", "valid_mask"]


def valid_mask(
    decoder_lengths: torch.Tensor | None, shape: torch.Size | Sequence[int]
) -> torch.Tensor | None:
    """``[B, T]`` boolean mask of cells ``t < decoder_lengths[b]`` (``None`` if all are valid)."""
    if decoder_lengths is None:
        return None
    B, T = shape[0], shape[1]
    if decoder_lengths.shape != (B,):
        raise ValueError(f"decoder_lengths must be [B={B}], got {tuple(decoder_lengths.shape)}")
    return torch.arange(T, device=decoder_lengths.device)[None, :] < decoder_lengths[:, None]


def quantile_loss(
    prediction: torch.Tensor,
    target: torch.Tensor,
    quantiles: Sequence[float],
    mask: torch.Tensor | None = None,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean over valid ``[B, T]`` cells and the quantiles of ``2 * pinball_q`` (pytorch-forecasting's ``QuantileLoss``).

    Args:
        prediction: ``[B, T, Q]`` quantile forecasts.
        target: ``[B, T]``.
        quantiles: the ``Q`` quantile levels.
        mask: optional ``[B, T]`` boolean, ``True`` for cells that count.
        weight: optional per-sample ``[B]`` or per-cell ``[B, T]`` weights (multiply the loss;
            the denominator stays the number of valid cells, as pytorch-forecasting).
    """
    if (
        prediction.dim() != 3
        or prediction.shape[:2] != target.shape
        or prediction.shape[-1] != len(quantiles)
    ):
        raise ValueError(
            f"quantile_loss: prediction {tuple(prediction.shape)} must be [B, T, {len(quantiles)}] "
            f"for target {tuple(target.shape)}"
        )
    q = torch.as_tensor(list(quantiles), dtype=prediction.dtype, device=prediction.device)
    err = target.unsqueeze(-1).to(prediction.dtype) - prediction
    cell = 2.0 * torch.maximum(q * err, (q - 1.0) * err).mean(-1)  # [B, T]
    if weight is not None:
        cell = cell * (weight if weight.dim() == 2 else weight[:, None]).to(cell.dtype)
    if mask is None:
        return cell.mean()
    return (cell * mask).sum() / mask.sum().clamp(min=1)


class QRisk(torchmetrics.Metric):
    """Normalised quantile loss at one quantile: ``2 * sum QL / sum |y|`` over all valid cells.

    ``update(prediction, target, mask=None)`` takes the forecast of quantile ``q`` ``[B, T]`` (or
    ``[B, T, Q]`` with ``index`` selecting the quantile) and the target ``[B, T]``.
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(self, q: float, index: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not 0.0 < q < 1.0:
            raise ValueError(f"QRisk: q must be in (0, 1), got {q}")
        self.q = float(q)
        self.index = index
        self.add_state("loss", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("norm", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(
        self, prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
    ) -> None:
        if prediction.dim() == target.dim() + 1:
            if self.index is None:
                raise ValueError("QRisk: got [B, T, Q] forecasts; give index= (the quantile's position)")
            prediction = prediction[..., self.index]
        if prediction.shape != target.shape:
            raise ValueError(f"QRisk: prediction {tuple(prediction.shape)} != target {tuple(target.shape)}")
        y = target.double()
        err = y - prediction.double()
        ql = torch.maximum(self.q * err, (self.q - 1.0) * err)
        a = y.abs()
        if mask is not None:
            ql, a = ql[mask], a[mask]
        self.loss += ql.sum()
        self.norm += a.sum()

    def compute(self) -> torch.Tensor:
        return 2.0 * self.loss / self.norm


class PointMAE(torchmetrics.MeanAbsoluteError):
    """torchmetrics' MAE of one quantile's forecast (``index``; the median for a point forecast).

    ``update(prediction, target)`` takes ``[..., Q]`` forecasts and ``[...]`` targets.
    """

    def __init__(self, index: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.index = index

    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        super().update(prediction[..., self.index], target)


def evaluate_forecasts(
    prediction: torch.Tensor,
    target: torch.Tensor,
    quantiles: Sequence[float],
    mask: torch.Tensor | None = None,
    qrisk: Sequence[float] = (0.5, 0.9),
) -> dict[str, float]:
    """``{"mae": ..., "q50": ..., "q90": ...}`` of quantile forecasts ``[N, T, Q]`` against ``[N, T]``.

    MAE of the median (the quantile nearest 0.5) and the paper's q-risk at each level of
    ``qrisk`` that is one of ``quantiles`` (named ``q<100 q>``), over the valid cells.
    """
    qs = [float(q) for q in quantiles]
    median = min(range(len(qs)), key=lambda i: abs(qs[i] - 0.5))
    p, y = prediction, target
    if mask is not None:
        p, y = p[mask], y[mask]
    mae = PointMAE(median)
    mae.update(p.float(), y.float())
    out = {"mae": float(mae.compute())}
    for q in qrisk:
        if q not in qs:
            raise ValueError(f"evaluate_forecasts: q-risk at {q} needs {q} among the quantiles {qs}")
        m = QRisk(q, qs.index(q))
        m.update(p, y)
        out[f"q{round(q * 100)}"] = float(m.compute())
    return out
