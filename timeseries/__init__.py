"""gatelab.timeseries: gated forecasters (Temporal Fusion Transformer, Gateformer, iTransformer).

Importing the package imports only :mod:`.registry`, which declares its models, datasets, data
modules, task and paper tables with :mod:`gatelab.core` (no torch, no pandas: every entry is
imported on first use).
"""

from . import registry
