"""Models of gatelab.multimodal (each registered with gatelab.core.registry)."""
