"""Data loaders of gatelab.vision."""

from . import restoration
