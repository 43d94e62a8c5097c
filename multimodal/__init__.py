"""gatelab.multimodal: a decoder with token-wise dynamic gating between text and image features.

Importing the package registers its models, datasets, data modules and paper tables with
:mod:`gatelab.core` (kept light: nothing here imports Lightning).
"""

from . import data, models  # registration side effects
