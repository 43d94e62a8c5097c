"""Hyperparameter presets of Gateformer and iTransformer for every LTSF dataset x horizon.

Taken from the official scripts:

* Gateformer: ``nyuolab/Gateformer`` ``scripts/multivariate_forecasting/*/Gateformer*.sh`` (commit
  f209962): per dataset x horizon ``e_layers``, ``d_model``, ``d_ff``, ``learning_rate``,
  ``n_heads``; ``batch_size 8`` everywhere; ``run.py`` defaults: 10 epochs, patience 3, dropout
  0.1, patch length = stride = 8, Adam, ``lradj type1``, seed 2021.
* iTransformer: ``thuml/iTransformer`` ``scripts/multivariate_forecasting/*/iTransformer*.sh``:
  ``e_layers``, ``d_model``, ``d_ff`` per dataset (``learning_rate`` / ``batch_size`` where the
  script sets them, else the ``run.py`` defaults 1e-4 / 32), ``n_heads`` 8, GELU, 10 epochs,
  patience 3, dropout 0.1, Adam, ``lradj type1``. The Exchange-336 script trains 1 epoch.

ILI has no official script for either model (neither paper reports it); its presets are ours
(``source == "ours"``), the same for both models. Lookback is 96 for every dataset but ILI (36).

``lradj type1`` sets the learning rate to ``lr * 0.5 ** (epoch - 1)`` *after* epoch ``epoch``
(1-based), so epochs 1 and 2 run at ``lr``, epoch 3 at ``lr / 2``, ...: in the harness this is
``scheduler: {name: exponential, gamma: 0.5, warmup: 1, warmup_start_factor: 1.0}``.
"""

from __future__ import annotations

import dataclasses

__all__ = ["MODELS", "PRESETS", "Preset", "get_preset"]

MODELS = ("gateformer", "itransformer")


@dataclasses.dataclass(frozen=True)
class Preset:
    """One official run: model size, optimiser settings and where they come from."""

    e_layers: int
    d_model: int
    d_ff: int
    lr: float
    n_heads: int
    batch_size: int
    epochs: int = 10
    source: str = "official"

    def model_kwargs(self) -> dict[str, int]:
        return {
            "e_layers": self.e_layers,
            "d_model": self.d_model,
            "d_ff": self.d_ff,
            "n_heads": self.n_heads,
        }


def _g(e: int, d: int, ff: int, lr: float, heads: int) -> Preset:
    return Preset(e, d, ff, lr, heads, batch_size=8)


def _i(e: int, d: int, ff: int, lr: float = 1e-4, batch: int = 32, epochs: int = 10) -> Preset:
    return Preset(e, d, ff, lr, 8, batch_size=batch, epochs=epochs)


_ILI = Preset(2, 128, 128, 5e-4, 8, batch_size=8, source="ours")

#: (model, dataset, horizon) -> Preset
PRESETS: dict[tuple[str, str, int], Preset] = {}

_GATEFORMER = {
    "etth1": {96: _g(1, 64, 64, 1e-4, 4), 192: _g(2, 64, 64, 5e-4, 4), 336: _g(2, 128, 128, 5e-4, 4), 720: _g(2, 64, 64, 5e-4, 4)},
    "etth2": {96: _g(2, 128, 128, 5e-4, 4), 192: _g(1, 64, 64, 5e-4, 4), 336: _g(2, 64, 64, 1e-4, 4), 720: _g(1, 128, 128, 1e-4, 4)},
    "ettm1": {96: _g(1, 64, 64, 5e-4, 4), 192: _g(1, 128, 128, 5e-4, 4), 336: _g(1, 128, 128, 1e-4, 4), 720: _g(1, 64, 64, 5e-4, 4)},
    "ettm2": {96: _g(1, 64, 64, 5e-4, 4), 192: _g(1, 64, 64, 1e-4, 4), 336: _g(2, 64, 64, 5e-4, 4), 720: _g(2, 64, 64, 5e-4, 4)},
    "weather": {96: _g(2, 512, 1024, 1e-4, 8), 192: _g(2, 512, 1024, 1e-4, 8), 336: _g(2, 256, 256, 5e-4, 8), 720: _g(2, 256, 512, 1e-4, 8)},
    "exchange": {96: _g(1, 64, 64, 1e-4, 4), 192: _g(1, 64, 64, 1e-3, 4), 336: _g(1, 64, 64, 1e-4, 4), 720: _g(2, 128, 128, 1e-3, 4)},
    "ecl": {96: _g(2, 512, 512, 5e-4, 8), 192: _g(4, 512, 1024, 5e-4, 8), 336: _g(2, 512, 1024, 5e-4, 8), 720: _g(2, 512, 1024, 5e-4, 8)},
    "traffic": {96: _g(2, 512, 1024, 5e-4, 8), 192: _g(2, 512, 1024, 5e-4, 8), 336: _g(3, 512, 1024, 5e-4, 8), 720: _g(3, 512, 512, 5e-4, 8)},
    "solar": {96: _g(3, 512, 512, 1e-4, 8), 192: _g(2, 512, 512, 1e-4, 8), 336: _g(2, 512, 512, 1e-4, 8), 720: _g(2, 512, 512, 1e-4, 8)},
}  # fmt: skip

_ITRANSFORMER = {
    "etth1": {96: _i(2, 256, 256), 192: _i(2, 256, 256), 336: _i(2, 512, 512), 720: _i(2, 512, 512)},
    "etth2": dict.fromkeys((96, 192, 336, 720), _i(2, 128, 128)),
    "ettm1": dict.fromkeys((96, 192, 336, 720), _i(2, 128, 128)),
    "ettm2": dict.fromkeys((96, 192, 336, 720), _i(2, 128, 128)),
    "weather": dict.fromkeys((96, 192, 336, 720), _i(3, 512, 512)),
    "exchange": {
        96: _i(2, 128, 128),
        192: _i(2, 128, 128),
        336: _i(2, 128, 128, epochs=1),
        720: _i(2, 128, 128),
    },
    "ecl": dict.fromkeys((96, 192, 336, 720), _i(3, 512, 512, lr=5e-4, batch=16)),
    "traffic": dict.fromkeys((96, 192, 336, 720), _i(4, 512, 512, lr=1e-3, batch=16)),
    "solar": dict.fromkeys((96, 192, 336, 720), _i(2, 512, 512, lr=5e-4)),
}

for _model, _table in (("gateformer", _GATEFORMER), ("itransformer", _ITRANSFORMER)):
    for _ds, _by_h in _table.items():
        for _h, _p in _by_h.items():
            PRESETS[(_model, _ds, _h)] = _p
    for _h in (24, 36, 48, 60):
        PRESETS[(_model, "ili", _h)] = _ILI


def get_preset(model: str, dataset: str, horizon: int) -> Preset:
    """The preset of ``model`` on ``dataset`` at ``horizon``; a clear error for unknown triples."""
    key = (model, dataset.lower(), int(horizon))
    if key not in PRESETS:
        known = sorted({h for (m, d, h) in PRESETS if m == key[0] and d == key[1]})
        raise KeyError(
            f"no preset for {model} on {dataset} at horizon {horizon}"
            + (f"; presets exist for horizons {known}" if known else f"; models: {MODELS}")
        )
    return PRESETS[key]
