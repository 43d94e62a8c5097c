"""Data loaders of gatelab.vision."""
