"""Data loaders of gatelab.vision."""

from . import segmentation_specs  # registers isbi2012-membrane, drive
