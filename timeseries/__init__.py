"""gatelab.timeseries: gated forecasters (Temporal Fusion Transformer, Gateformer, iTransformer).

Importing the package registers its models, datasets, data modules and paper tables with
:mod:`gatelab.core` (kept light: nothing here imports Lightning).
"""

# registration side effects: repro_ltsf (`gatelab repro gateformer`), tft_registry (`gatelab repro tft`)
from . import data, models, repro_ltsf, tft_registry
