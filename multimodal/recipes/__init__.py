"""Paper tables of gatelab.multimodal: :mod:`.vl_gating` (``gatelab repro vl-gating``, registered in
:mod:`gatelab.multimodal.registry`)."""
