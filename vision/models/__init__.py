"""Models of gatelab.vision (each registered with gatelab.core.registry)."""
