"""gatelab.vision: gated vision models (Attention U-Net 2D/3D, MAXIM) with segmentation and restoration data.

Importing the package imports only :mod:`.registry`, which declares its models, datasets, data
modules, tasks and paper tables with :mod:`gatelab.core` (no torch, no Lightning: every entry is
imported on first use).
"""

from . import registry
