"""Data loaders of gatelab.timeseries (their datasets are declared in :mod:`gatelab.timeseries.registry`)."""
