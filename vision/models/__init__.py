"""Models of gatelab.vision (each registered with gatelab.core.registry)."""

from . import maxim
