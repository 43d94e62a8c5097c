"""Interpretation and plots of gatelab.timeseries: :mod:`.tft` (TFT variable importances and attention
over time) and :mod:`.ltsf` (LTSF forecast and gate-value plots of Gateformer / iTransformer)."""
