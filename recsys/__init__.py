"""gatelab.recsys: gated CTR models (FinalMLP, GDCN) and the CTR feature pipeline.

Importing the package registers its models, datasets, data module (``ctr``), task (``ctr``) and
paper table (``ctr``) with :mod:`gatelab.core` (kept light: nothing here imports Lightning or
pyarrow; those are registered as ``"module:attr"`` strings).
"""

from gatelab.core.harness import register_datamodule, register_dataset, register_table, register_task

from . import data, models  # registration side effects (models)
from .data.layouts import DATASETS
from .repro_tables import CTR_TABLE

for _spec in DATASETS:
    register_dataset(_spec)
register_datamodule("ctr", "gatelab.recsys.data.datamodule:ctr_datamodule")
register_task("ctr", "gatelab.recsys.task:CTRTask")
register_table(CTR_TABLE)
