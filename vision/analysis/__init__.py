"""Interpretation and plots of gatelab.vision (attention overlays, image grids)."""
