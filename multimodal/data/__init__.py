"""Data loaders of gatelab.multimodal."""
