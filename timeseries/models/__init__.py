"""Models of gatelab.timeseries (each registered with gatelab.core.registry)."""
