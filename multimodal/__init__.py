"""gatelab.multimodal: a decoder with token-wise dynamic gating between text and image features.

Importing the package imports only :mod:`.registry`, which declares its models, datasets, data
modules, task and paper table with :mod:`gatelab.core` (no torch, no Lightning: every entry is
imported on first use).

* models: ``vl-gated-decoder`` (token-wise gate), ``vl-nogate-decoder``, ``vl-visual-decoder``
  (:mod:`gatelab.multimodal.models`);
* datasets: ``text-corpora``, ``coco-mini-captions``, ``blimp``;
* data modules: ``vl-text``, ``vl-shapes``, ``vl-coco``, ``vl-babylm``; task: ``vl-lm``;
* paper table: ``vl-gating`` (``gatelab repro vl-gating``).

See ``multimodal/README.md`` for the equations, config keys and deviations from the paper.
"""

from . import registry
