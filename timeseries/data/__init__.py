"""Data loaders of gatelab.timeseries."""
