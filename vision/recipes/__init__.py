"""The paper tables of gatelab.vision (``attention-unet``, ``maxim``; declared in :mod:`gatelab.vision.registry`)."""
