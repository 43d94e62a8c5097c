"""gatelab.recsys: gated CTR models (FinalMLP, GDCN) and the CTR feature pipeline.

Importing the package registers its models, datasets, data modules and paper tables with
:mod:`gatelab.core` (kept light: nothing here imports Lightning).
"""

from . import data, models  # registration side effects
