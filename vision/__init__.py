"""gatelab.vision: gated vision models (Attention U-Net 2D/3D, MAXIM) with segmentation and restoration data.

Importing the package registers its models, datasets, data modules and paper tables with
:mod:`gatelab.core` (kept light: nothing here imports Lightning).
"""

from . import data, models, segmentation_registry  # registration side effects
