"""Lightning tasks, losses and metrics of gatelab.vision (registered in :mod:`gatelab.vision.registry`)."""
