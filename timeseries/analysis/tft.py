"""Interpretation of a trained Temporal Fusion Transformer: variable importances and attention over time.

The TFT's interpretable quantities are its gates: the softmax weights of the three variable
selection networks and the (head-averaged) attention. :func:`interpret` records them with
:func:`gatelab.core.capture_gates` while the model forecasts a dataloader and aggregates them as
the paper does (Lim et al. 2021, Sec. 7):

* **variable importance** -- the selection weight of each variable, averaged over samples (and
  over the valid encoder / decoder steps), in percent: three ``pandas.DataFrame`` (``static``,
  ``encoder``, ``decoder``) indexed by variable, sorted by importance;
* **attention over time** -- the attention of each forecast step (horizon ``h = 1..T_d``) on every
  earlier step, averaged over heads and samples, with encoder steps aligned on the last observed
  step (relative time ``-1``) as pytorch-forecasting's ``interpret_output``: a ``DataFrame``
  indexed by relative time (``-lookback .. T_d - 1``, the model's ``lookback``) with one column per horizon.
  Entries no sample reaches are NaN.

:func:`plot_interpretation` draws each as a PNG (matplotlib's Agg backend).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from gatelab.core import capture_gates

__all__ = ["TFTInterpretation", "interpret", "plot_interpretation"]


@dataclasses.dataclass
class TFTInterpretation:
    """Variable importances (percent) and attention over time (see the module docstring)."""

    static: pd.DataFrame
    encoder: pd.DataFrame
    decoder: pd.DataFrame
    attention: pd.DataFrame
    samples: int

    def to_csv(self, folder: str | Path) -> dict[str, Path]:
        """Write ``<name>.csv`` for each table into ``folder``; returns the paths."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        out = {}
        for name in ("static", "encoder", "decoder", "attention"):
            path = folder / f"tft_{name}.csv"
            getattr(self, name).to_csv(path)
            out[name] = path
        return out


def _importance(names: list[str], total: torch.Tensor, count: float) -> pd.DataFrame:
    if not names:
        return pd.DataFrame({"importance": []}, index=pd.Index([], name="variable"))
    mean = (total / max(count, 1.0)).double().numpy()
    pct = 100.0 * mean / mean.sum() if mean.sum() > 0 else mean
    df = pd.DataFrame({"importance": pct}, index=pd.Index(names, name="variable"))
    return df.sort_values("importance", ascending=False)


@torch.no_grad()
def interpret(
    model: torch.nn.Module, batches: Iterable[Any], *, max_batches: int | None = None
) -> TFTInterpretation:
    """Aggregate the selection weights and attention of ``model`` over ``batches``.

    Args:
        model: a :class:`~gatelab.timeseries.models.tft.TemporalFusionTransformer` (eval mode is
            set here).
        batches: batches ``x`` or ``(x, y)`` in the model's input layout (e.g. a
            ``TimeSeriesDataSet`` dataloader).
        max_batches: stop after this many batches.
    """
    model.eval()
    include = ["static_vsn:weights", "encoder_vsn:weights", "decoder_vsn:weights", "attention:attention"]
    s_tot = e_tot = d_tot = None
    s_n = e_n = d_n = 0.0
    att_sum: np.ndarray | None = None
    att_cnt: np.ndarray | None = None
    max_enc = model.lookback
    samples = 0
    for i, batch in enumerate(batches):
        if max_batches is not None and i >= max_batches:
            break
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        with capture_gates(model, include=include) as gates:
            out = model(x)
        B, Te = x["encoder_cont"].shape[:2]
        Td = x["decoder_cont"].shape[1]
        enc_len, dec_len = out.encoder_lengths, out.decoder_lengths
        samples += B
        if "static_vsn:weights" in gates:
            w = gates["static_vsn:weights"].float()
            s_tot = w.sum(0) if s_tot is None else s_tot + w.sum(0)
            s_n += B
        w = gates["encoder_vsn:weights"].float()  # [B, Te, Ve]
        m = (torch.arange(Te)[None, :] < enc_len[:, None]).float()
        per = (w * m[..., None]).sum(1) / enc_len.clamp(min=1)[:, None].float()
        e_tot = per.sum(0) if e_tot is None else e_tot + per.sum(0)
        e_n += float((enc_len > 0).sum())
        w = gates["decoder_vsn:weights"].float()
        m = (torch.arange(Td)[None, :] < dec_len[:, None]).float()
        per = (w * m[..., None]).sum(1) / dec_len.clamp(min=1)[:, None].float()
        d_tot = per.sum(0) if d_tot is None else d_tot + per.sum(0)
        d_n += B
        # attention [B, heads, Td, Te + Td] -> mean over heads, encoder aligned on its last step
        a = gates["attention:attention"].float().mean(1).numpy()
        width = max(max_enc or Te, Te)
        if att_sum is None:
            att_sum = np.zeros((Td, width + Td))
            att_cnt = np.zeros((Td, width + Td))
        if att_sum.shape[0] < Td or att_sum.shape[1] < width + Td:
            raise ValueError("interpret: batches must share the decoder length and encoder window")
        el = enc_len.numpy()[:, None, None]
        dl = dec_len.numpy()[:, None, None]
        k = np.arange(Te + Td)[None, None, :]
        q = np.arange(Td)[None, :, None]
        col = np.where(k < Te, width - el + k, width + k - Te)  # [B, 1, Te + Td]
        ok = ((k >= Te) | (k < el)) & (q < dl)  # [B, Td, Te + Td]
        rows = np.broadcast_to(q, ok.shape)[ok]
        cols = np.broadcast_to(col, ok.shape)[ok]
        np.add.at(att_sum, (rows, cols), a[ok])
        np.add.at(att_cnt, (rows, cols), 1.0)
    if samples == 0:
        raise ValueError("interpret: no batches")
    with np.errstate(invalid="ignore", divide="ignore"):
        att = att_sum / att_cnt
    width = att.shape[1] - att.shape[0]
    rel = np.arange(-width, att.shape[0])
    attention = pd.DataFrame(
        att.T, index=pd.Index(rel, name="relative_time"), columns=[f"h{h + 1}" for h in range(att.shape[0])]
    )
    return TFTInterpretation(
        static=_importance(model.static_variables, s_tot if s_tot is not None else torch.zeros(0), s_n),
        encoder=_importance(model.encoder_variables, e_tot, e_n),
        decoder=_importance(model.decoder_variables, d_tot, d_n),
        attention=attention,
        samples=samples,
    )


def plot_interpretation(interp: TFTInterpretation, folder: str | Path, *, title: str = "") -> dict[str, Path]:
    """Write ``tft_static.png``, ``tft_encoder.png``, ``tft_decoder.png`` (importance bars) and
    ``tft_attention.png`` (attention over relative time, one line per horizon) into ``folder``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    prefix = f"{title}: " if title else ""
    labels: Mapping[str, str] = {
        "static": "Static variables",
        "encoder": "Encoder (past) variables",
        "decoder": "Decoder (known future) variables",
    }
    for name, label in labels.items():
        df = getattr(interp, name)
        if df.empty:
            continue
        fig, ax = plt.subplots(figsize=(8, 0.3 * len(df) + 1.8))
        d = df.iloc[::-1]
        ax.barh(d.index.astype(str), d["importance"], color="#3b6ea8")
        ax.set_xlabel("importance (%)")
        ax.set_title(f"{prefix}\n{label} importance" if prefix else f"{label} importance", fontsize=10)
        fig.tight_layout()
        path = folder / f"tft_{name}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        out[name] = path
    fig, ax = plt.subplots(figsize=(8, 4))
    att = interp.attention
    cmap = plt.get_cmap("viridis")
    n = att.shape[1]
    for j, col in enumerate(att.columns):
        ax.plot(att.index, att[col], color=cmap(j / max(n - 1, 1)), label=col, lw=1.5)
    ax.axvline(-0.5, color="grey", ls="--", lw=1)
    ax.set_xlabel("time relative to the first forecast step (encoder < 0 <= decoder)")
    ax.set_ylabel("attention (mean over heads and samples)")
    ax.set_title(f"{prefix}attention over time, per forecast horizon", fontsize=10)
    ax.legend(title="horizon", ncol=2, fontsize=8)
    fig.tight_layout()
    path = folder / "tft_attention.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    out["attention"] = path
    return out
