"""gatelab.recsys: gated CTR models (FinalMLP, GDCN) and the CTR feature pipeline.

Importing the package imports only :mod:`.registry`, which declares its models, datasets, data
module (``ctr``), task (``ctr``) and paper table (``ctr``) with :mod:`gatelab.core` (kept light:
no torch, Lightning or pyarrow; those entries are ``"module:attr"`` strings imported on first use).
"""

from . import registry
