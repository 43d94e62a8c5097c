"""Data loaders of gatelab.vision."""

from . import (
    restoration,
    segmentation_specs,  # registers isbi2012-membrane, drive
)
