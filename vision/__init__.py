"""gatelab.vision: gated vision models (Attention U-Net 2D/3D, MAXIM) with segmentation and restoration data.

Importing the package registers its models, datasets, data modules and paper tables with
:mod:`gatelab.core` (kept light: nothing here imports Lightning).
"""

# registration side effects: restoration (MAXIM's datasets, data modules, task and `maxim` paper
# table) and segmentation_registry (Attention U-Net's data modules, task and `attention-unet` table)
from . import data, models, restoration, segmentation_registry
