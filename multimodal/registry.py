"""Every registration of gatelab.multimodal: models, datasets, data modules, task, paper table.

Imported by :mod:`gatelab.multimodal` (and by :func:`gatelab.core.registry.load_registrations`).
It imports neither torch nor Lightning: every entry names its ``"module:attr"``, imported on first use.

* models: ``vl-gated-decoder`` (token-wise gate), ``vl-nogate-decoder``, ``vl-visual-decoder``
  (:class:`~gatelab.multimodal.models.vl_decoder.VLGatedDecoder`, ``VLNoGateDecoder``,
  ``VLVisualDecoder``: the :class:`~gatelab.multimodal.models.vl_decoder.GatedVLDecoder` with
  ``fusion`` fixed by its config);
* datasets: ``text-corpora``, ``coco-mini-captions``, ``blimp``;
* data modules: ``vl-text``, ``vl-shapes``, ``vl-coco``, ``vl-babylm``, ``vl-spoken`` (spoken
  captions with their images); task: ``vl-lm`` (text, image and audio streams);
* paper tables: ``vl-gating`` (``gatelab repro vl-gating``, built in :mod:`.recipes.vl_gating`) and
  ``vl-audio`` (:mod:`.recipes.vl_audio`).
"""

from __future__ import annotations

from gatelab.core.registry import DATAMODULES, DATASETS, PREPARERS, TABLES, TASKS, register_model

DOMAIN = "multimodal"
_DEC = "gatelab.multimodal.models.vl_decoder"
_PAPER = (
    "Ganescu et al. 2025, Looking to Learn: Token-wise Dynamic Gating for Low-Resource "
    "Vision-Language Modelling (BabyLM)"
)

# --------------------------------------------------------------------------- models

# each entry's class fixes its fusion (a Literal in its config) and starts from the preset of that variant
for _name, _cls, _preset, _gates, _desc in (
    ("vl-gated-decoder", "VLGatedDecoder", "gate-scalar",
     ("TokenwiseGate", "SqueezeExcite", "OutputGatedAttention", "GluMlp"),
     "Vision-language decoder with a token-wise gate between text and visual context (FiLM, SE, InfoNCE)."),
    ("vl-nogate-decoder", "VLNoGateDecoder", "no-gate", ("SqueezeExcite", "OutputGatedAttention", "GluMlp"),
     "Baseline without the gate: cross-attention output added to the residual (the paper's gate_none)."),
    ("vl-visual-decoder", "VLVisualDecoder", "always-visual", ("SqueezeExcite", "OutputGatedAttention", "GluMlp"),
     "Baseline with the gate fixed fully open: every token takes the (normalised) visual stream."),
):  # fmt: skip
    register_model(
        _name,
        f"{_DEC}:{_cls}",
        preset=_preset,
        domain=DOMAIN,
        paper=_PAPER,
        gates=_gates,
        description=_desc,
        tiny=f"{_DEC}:_TINY",
        example_inputs=f"{_DEC}:_example_inputs",
    )

# --------------------------------------------------------------------------- datasets, data modules, task

DATASETS.register("text-corpora", "gatelab.multimodal.data.text:TEXT_CORPORA", domain=DOMAIN)
DATASETS.register("coco-mini-captions", "gatelab.multimodal.data.captions:COCO_MINI", domain=DOMAIN)
DATASETS.register("blimp", "gatelab.multimodal.data.blimp:BLIMP", domain=DOMAIN)

DATAMODULES.register("vl-text", "gatelab.multimodal.data.datamodule:vl_text_datamodule", domain=DOMAIN)
DATAMODULES.register("vl-shapes", "gatelab.multimodal.data.datamodule:vl_shapes_datamodule", domain=DOMAIN)
DATAMODULES.register("vl-coco", "gatelab.multimodal.data.datamodule:vl_coco_datamodule", domain=DOMAIN)
DATAMODULES.register("vl-babylm", "gatelab.multimodal.data.datamodule:vl_babylm_datamodule", domain=DOMAIN)
DATAMODULES.register("vl-spoken", "gatelab.multimodal.data.datamodule:vl_spoken_datamodule", domain=DOMAIN)
TASKS.register("vl-lm", "gatelab.multimodal.tasks.vl:VLTask", domain=DOMAIN)
PREPARERS.register(
    "spoken-captions",
    "gatelab.multimodal.data.speech:main",
    domain=DOMAIN,
    description="shapes + COCO-mini captions spoken by espeak-ng (voices, speeds, noise): WAV + manifest",
)

# --------------------------------------------------------------------------- paper table

# built (and registered) by recipes.vl_gating when it is imported
TABLES.register("vl-gating", "gatelab.multimodal.recipes.vl_gating:VL_TABLE", domain=DOMAIN)
TABLES.register("vl-audio", "gatelab.multimodal.recipes.vl_audio:VL_AUDIO_TABLE", domain=DOMAIN)
