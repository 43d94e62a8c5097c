"""Data loaders of gatelab.vision (their datasets are declared in :mod:`gatelab.vision.registry`)."""
