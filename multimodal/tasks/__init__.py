"""Lightning task of gatelab.multimodal: :mod:`.vl` (``vl-lm``: the VL language-modelling task, its losses)."""
