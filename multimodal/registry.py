"""Every registration of gatelab.multimodal: models, datasets, data modules, task, paper table.

Imported by :mod:`gatelab.multimodal` (and by :func:`gatelab.core.registry.load_registrations`).
It imports neither torch nor Lightning: every entry names its ``"module:attr"``, imported on first use.

* models: ``vl-gated-decoder`` (token-wise gate), ``vl-nogate-decoder``, ``vl-visual-decoder``
  (:mod:`gatelab.multimodal.models`);
* datasets: ``text-corpora``, ``coco-mini-captions``, ``blimp``;
* data modules: ``vl-text``, ``vl-shapes``, ``vl-coco``, ``vl-babylm``; task: ``vl-lm``;
* paper table: ``vl-gating`` (``gatelab repro vl-gating``).
"""

from __future__ import annotations

from gatelab.core.harness.repro import Option, ReproTable, register_table
from gatelab.core.registry import DATAMODULES, DATASETS, TASKS, register_model

DOMAIN = "multimodal"
_DEC = "gatelab.multimodal.models.vl_decoder"
_PAPER = (
    "Ganescu et al. 2025, Looking to Learn: Token-wise Dynamic Gating for Low-Resource "
    "Vision-Language Modelling (BabyLM)"
)

# --------------------------------------------------------------------------- models

# each entry starts from a GatedVLDecoderConfig preset (its fusion variant) and fixes its fusion
for _name, _fn, _preset, _gates, _desc in (
    ("vl-gated-decoder", "vl_gated_decoder", "gate-scalar",
     ("TokenwiseGate", "SqueezeExcite", "OutputGatedAttention", "GluMlp"),
     "Vision-language decoder with a token-wise gate between text and visual context (FiLM, SE, InfoNCE)."),
    ("vl-nogate-decoder", "vl_nogate_decoder", "no-gate", ("SqueezeExcite", "OutputGatedAttention", "GluMlp"),
     "Baseline without the gate: cross-attention output added to the residual (the paper's gate_none)."),
    ("vl-visual-decoder", "vl_visual_decoder", "always-visual", ("SqueezeExcite", "OutputGatedAttention", "GluMlp"),
     "Baseline with the gate fixed fully open: every token takes the (normalised) visual stream."),
):  # fmt: skip
    register_model(
        _name,
        f"{_DEC}:{_fn}",
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
TASKS.register("vl-lm", "gatelab.multimodal.tasks.vl:VLTask", domain=DOMAIN)

# --------------------------------------------------------------------------- paper table

register_table(
    ReproTable(
        name="vl-gating",
        description=(
            "token-wise visual gate (scalar / vector) vs no gate vs always-visual: BLiMP (%), text/caption perplexity "
            "with and without the image, text-to-image retrieval R@k (%), mean visual gate per word class. "
            "paper_blimp is the paper's BLiMP with BabyLM's 50M words and d=768; ours is trained on "
            "~2.3M words and generated shapes with a d=192 model on one CPU thread, so it is far lower"
        ),
        paper="Ganescu et al. 2025 (BabyLM), Looking to Learn: Token-wise Dynamic Gating; BLiMP 73.86 (soft gate per token)",
        run="gatelab.multimodal.recipes.vl_gating:run_vl_gating",
        domain="multimodal",
        references=[
            {
                "model": "vl-gated-decoder",
                "dataset": "shapes",
                "split": "test",
                "variant": "gate-scalar",
                "blimp": 73.86,
            }
        ],
        metrics=[
            "blimp",
            "text_ppl",
            "ppl_image",
            "ppl_noimage",
            "r@1",
            "r@5",
            "clip_r@1",
            "clip_r@5",
            "gate_colour",
            "gate_shape",
            "gate_position",
            "gate_content",
            "gate_function",
            "gate_punct",
            "params_m",
        ],
        options=[
            Option(
                "--variants",
                nargs="+",
                default=["gate-scalar", "gate-vector", "no-gate", "always-visual"],
                help="fusion variants (gate-scalar, gate-vector, no-gate, always-visual)",
            ),
            Option("--d-model", type=int, default=192),
            Option("--n-layers", type=int, default=4),
            Option("--n-heads", type=int, default=6),
            Option("--vocab-size", type=int, default=4096, help="BPE vocabulary trained on the corpus"),
            Option("--seq-len", type=int, default=64),
            Option("--batch-size", type=int, default=32),
            Option("--lr", type=float, default=1e-3, help="text pre-training learning rate"),
            Option("--finetune-lr", type=float, default=5e-4, help="shapes / COCO learning rate"),
            Option("--text-epochs", type=int, default=2),
            Option("--text-max-words", type=int, default=None, help="cap on corpus words (default: all)"),
            Option("--text-ratio", type=float, default=1.0, help="text batches per caption batch"),
            Option("--shapes-train", type=int, default=4000, help="training images (one caption each)"),
            Option("--shapes-eval", type=int, default=200, help="validation and test images each"),
            Option("--shapes-epochs", type=int, default=6),
            Option("--coco-epochs", type=int, default=10, help="0 skips the COCO-mini row"),
            Option(
                "--blimp-per-paradigm", type=int, default=None, help="pairs per paradigm (default: all 1000)"
            ),
            Option("--gallery", type=int, default=200, help="retrieval gallery size (images)"),
            Option("--output-dir", default="runs/vl-gating", help="run directories and checkpoints"),
            Option(
                "--skip-checksums",
                action="store_true",
                help="do not check the data files' sha256 (fixtures in the same layout)",
            ),
        ],
        default_seeds=(0,),
    )
)
