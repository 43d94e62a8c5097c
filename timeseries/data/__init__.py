"""Data loaders of gatelab.timeseries."""

from . import ltsf_datasets  # registers the long-horizon forecasting datasets (light: no pandas)
