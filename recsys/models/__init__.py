"""Models of gatelab.recsys (each registered with gatelab.core.registry)."""
