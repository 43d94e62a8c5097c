"""gatelab.timeseries: gated forecasters (Temporal Fusion Transformer, Gateformer, iTransformer).

Importing the package imports only :mod:`.registry`, which declares its models, datasets, data
modules, task and paper tables with :mod:`gatelab.core` (no torch, no pandas: every entry is
imported on first use).

The forecasting API is exported lazily (PEP 562; importing it loads torch and pandas):
:class:`Forecaster` (``Forecaster.load(dir)``), :class:`TFTForecaster` with :class:`TFTSpec`,
:class:`LTSFForecaster` with :class:`LTSFSpec` (:mod:`gatelab.timeseries.tasks.forecaster`).
"""

from typing import TYPE_CHECKING

from gatelab.core.layers.lazy import lazy_exports

from . import registry

_EXPORTS: dict[str, str] = {
    "Forecaster": "tasks.forecaster",
    "LTSFForecaster": "tasks.forecaster",
    "LTSFSpec": "tasks.forecaster",
    "TFTForecaster": "tasks.forecaster",
    "TFTSpec": "data.tft",
}

__all__ = ["registry", *sorted(_EXPORTS)]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from .data.tft import TFTSpec
    from .tasks.forecaster import Forecaster, LTSFForecaster, LTSFSpec, TFTForecaster
