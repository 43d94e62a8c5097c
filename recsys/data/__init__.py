"""Data loaders of gatelab.recsys."""
