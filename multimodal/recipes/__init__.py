"""Paper tables of gatelab.multimodal: :mod:`.vl_gating` (``VL_RECIPE``, ``gatelab repro vl-gating``; named in
:mod:`gatelab.multimodal.registry`, built when the table is first used)."""
