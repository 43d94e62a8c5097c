"""Plots for long-horizon forecasters: a forecast plot and the Gateformer gate values per variate.

Both functions take trained models and an :class:`~gatelab.timeseries.data.ltsf.LTSFData`, run
the models in eval mode without gradients, and write a PNG with matplotlib's Agg backend
(no display needed)::

    from gatelab.timeseries.analysis.ltsf import plot_forecast, plot_gate_values
    plot_forecast({"gateformer": m1, "itransformer": m2}, data, "forecast.png", variates=[-1])
    plot_gate_values(m1, data, "gates.png")

``gatelab repro gateformer`` calls them for the first seed and horizon of every dataset it runs
and saves the figures under ``docs/results/``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from gatelab.core import capture_gates

from ..data.ltsf import LTSFData

__all__ = ["gate_values", "plot_forecast", "plot_gate_values"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _call(model: nn.Module, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    return model(batch["x"], x_mark=batch["x_mark"])


@torch.no_grad()
def plot_forecast(
    models: Mapping[str, nn.Module],
    data: LTSFData,
    path: str | os.PathLike[str],
    *,
    stage: str = "test",
    window: int | None = None,
    variates: Sequence[int] = (-1,),
    history: int | None = None,
    title: str | None = None,
) -> Path:
    """Plot history, ground truth and each model's forecast for one window.

    Args:
        models: label -> trained forecaster (``model(x, x_mark=...) -> [1, H, C_out]``).
        data: the prepared dataset (its scaler un-scales the curves to the original units).
        path: PNG file to write (folders are created).
        stage: split to take the window from.
        window: window index in that split (default: the middle window).
        variates: output variates to draw, one panel each (indices into the model output;
            ``-1`` is the target ``OT``).
        history: how many lookback steps to show (default: all).
        title: figure title (default: dataset, split, window, horizon).

    Returns the path written.
    """
    plt = _pyplot()
    ds = data.windows(stage)
    idx = len(ds) // 2 if window is None else int(window)
    item = ds[idx]
    batch = {k: v.unsqueeze(0) for k, v in item.items()}
    L, H = data.lookback, data.horizon
    n_out = item["target"].shape[-1]
    hist_in = data.inverse_transform(item["x"][:, data.num_vars - n_out :])  # [L, C_out]
    truth = data.inverse_transform(item["target"])  # [H, C_out]
    preds = {}
    for label, model in models.items():
        was = model.training
        model.eval()
        preds[label] = data.inverse_transform(_call(model, batch)[0])
        model.train(was)
    show = L if history is None else min(history, L)
    t_hist = np.arange(-show, 0)
    t_fut = np.arange(0, H)
    names = data.columns[data.num_vars - n_out :]
    fig, axes = plt.subplots(len(variates), 1, figsize=(9, 2.6 * len(variates)), squeeze=False)
    for ax, v in zip(axes[:, 0], variates):
        ax.plot(t_hist, hist_in[-show:, v], color="0.35", lw=1.2, label="history")
        ax.plot(t_fut, truth[:, v], color="black", lw=1.4, label="truth")
        for (label, p), color in zip(preds.items(), ("tab:red", "tab:blue", "tab:green", "tab:orange")):
            ax.plot(t_fut, p[:, v], color=color, lw=1.3, label=label)
        ax.axvline(0, color="0.6", ls="--", lw=0.8)
        ax.set_ylabel(names[v])
        ax.legend(loc="upper left", fontsize=8, ncols=2 + len(preds))
    axes[-1, 0].set_xlabel("time step (0 = first forecast step)")
    fig.suptitle(title or f"{data.name}: {stage} window {idx}, lookback {L}, horizon {H}")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


@torch.no_grad()
def gate_values(
    model: nn.Module, data: LTSFData, *, stage: str = "test", max_windows: int = 512, batch_size: int = 128
) -> dict[str, np.ndarray]:
    """Mean gate value per variate: ``{gate name: [N]}`` averaged over the first ``max_windows``
    windows of ``stage`` and over the model width (captured with :func:`gatelab.core.capture_gates`).

    For Gateformer: ``temporal_gate`` is the weight of the global (whole-series) embedding against
    the patch/temporal one; ``variate_gate`` the weight of the embedding before variate-wise
    attention against after it (1 - the share of cross-variate information).
    """
    ds = data.windows(stage)
    n = min(len(ds), max_windows)
    loader = DataLoader(torch.utils.data.Subset(ds, range(n)), batch_size=batch_size)
    was = model.training
    model.eval()
    sums: dict[str, torch.Tensor] = {}
    count = 0
    for batch in loader:
        with capture_gates(model) as gates:
            _call(model, batch)
        for name, g in gates.items():
            g = g.float()
            per_var = g.reshape(g.shape[0], g.shape[1], -1).mean(dim=-1).sum(dim=0)  # [N]
            sums[name] = sums.get(name, 0) + per_var
        count += batch["x"].shape[0]
    model.train(was)
    if not sums:
        raise ValueError("gate_values: the model recorded no gates (is it a Gateformer with gates=True?)")
    return {name: (s / count).numpy() for name, s in sums.items()}


def plot_gate_values(
    model: nn.Module,
    data: LTSFData,
    path: str | os.PathLike[str],
    *,
    stage: str = "test",
    max_windows: int = 512,
    title: str | None = None,
) -> Path:
    """Bar chart of :func:`gate_values` per variate, one bar group per gate; returns the path."""
    plt = _pyplot()
    vals = gate_values(model, data, stage=stage, max_windows=max_windows)
    names = list(data.columns)
    n = len(names)
    labels = {
        "temporal_gate": "gate 1: global vs temporal embedding",
        "variate_gate": "gate 2: before vs after variate attention",
    }
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * n + 2), 3.4))
    width = 0.8 / len(vals)
    x = np.arange(n)
    for k, (name, v) in enumerate(vals.items()):
        ax.bar(x + (k - (len(vals) - 1) / 2) * width, v[:n], width, label=labels.get(name, name))
    ax.axhline(0.5, color="0.5", ls="--", lw=0.8)
    ax.set_xticks(
        x, [s[:14] for s in names], rotation=45 if n > 8 else 0, ha="right" if n > 8 else "center", fontsize=8
    )
    ax.set_ylim(0, 1)
    ax.set_ylabel("mean gate value g")
    ax.legend(fontsize=8, loc="upper right")
    ax.set_title(
        title or f"{data.name}: Gateformer gate values per variate ({stage}, horizon {data.horizon})",
        fontsize=10,
    )
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
