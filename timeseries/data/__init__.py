"""Data of gatelab.timeseries (datasets declared in :mod:`gatelab.timeseries.registry`).

Readers and dataset specs without Lightning: :mod:`.ltsf` (LTSF reader, splits, scaling, windows),
:mod:`.ltsf_datasets` (the LTSF dataset table), :mod:`.tft` (TFT readers, protocols,
``TimeSeriesDataSet`` builders), :mod:`.tft_loader` (vectorised TFT batches); the Lightning data
modules (``ltsf``, ``tft-*``) all live in :mod:`.datamodule`.
"""
