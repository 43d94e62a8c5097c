r"""``gatelab repro vl-audio``: the VL decoder with an audio stream on spoken captions.

The table is one :class:`~gatelab.core.harness.recipes.Recipe` (:data:`VL_AUDIO_RECIPE`) run by
the harness's recipe runner: every (dataset, seed) trains once through ``run_experiment`` (the
``vl-spoken`` data module, the ``vl-lm`` task, the ``vl-gated-decoder`` with ``audio_mels``),
so it has the harness's exact resume (``--resume-training`` continues a killed run from its
newest checkpoint, bit-identically), ledger rows (one per seed and variant, with the config
hash) and progress bar.

Data (``--dataset``): ``shapes`` (the shapes images regenerated from the parameters in
``spoken_captions/speech.json``) and/or ``coco-mini`` (COCO-mini train2017 for training,
val2017 split by image id into validation and test, images as 16x16 patch tokens of a 64x64
resize), with their captions spoken by espeak-ng (``gatelab prepare spoken-captions``; several
voices, speeds and noise levels; the first rendition of each caption). Features: 40 log-mel
bins, 25 ms / 10 ms, per-utterance CMVN.

Model: :class:`~gatelab.multimodal.models.GatedVLDecoder` with ``audio_mels=40``: per layer a
cross-attention to the image tokens and one to the audio memory (conv subsampling + GAU blocks),
mixed with the text stream by a 3-stream softmax :class:`~gatelab.core.TokenwiseGate` (scalar:
one weight per stream and token).

Training (``vl-lm``: AdamW, cosine schedule with warm-up, best checkpoint by ``val/loss``):
caption NLL + InfoNCE(text, image) + InfoNCE(audio, image). Stream dropout: each training row
loses its image with probability ``--drop-image`` and its audio with ``--drop-audio`` (never
both), so the decoder learns to use either stream alone; the gate then masks the missing stream
(its weight is 0). SpecAugment on the training audio.

Rows (test split, per dataset and seed; ``variant``), from the best checkpoint
(:mod:`gatelab.multimodal.analysis.audio`):

* ``all-streams``: caption perplexity with every stream (``ppl_all``) and with each ablated
  (``ppl_noimage``, ``ppl_noaudio``, ``ppl_textonly``: the stream removed from the gate);
  audio-image retrieval ``audio_image_r@1`` / ``r@5`` over the test images by the contrastive
  embeddings (mean of audio->image and image->audio, %); the mean gate weight of each stream at
  the positions predicting each word class, ``gate_<stream>_<class>`` (mean over layers).
* ``blank-image``: the same gate weights when the image is uninformative (all pixels mid-grey):
  does the gate turn to audio when the image says nothing, and to the image for colour and
  shape words when it does?

Budget: ``--quick`` runs a smoke size (64 training captions, 1 epoch). The committed run's
commands are in the table's markdown and in the multimodal README.

This module stays import-light (no torch at import): the registry names its table lazily.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from gatelab.core.harness.recipes import Budget, Cell, Recipe, run_shared
from gatelab.core.harness.repro import Option, ReproTable, register_table

__all__ = [
    "CLASSES",
    "DATASETS",
    "MODEL",
    "STREAMS",
    "VARIANTS",
    "VL_AUDIO_RECIPE",
    "VL_AUDIO_TABLE",
    "run_vl_audio",
    "vl_audio_cells",
    "vl_audio_options",
    "vl_audio_settings",
]

#: the row label of the model (the registered ``vl-gated-decoder`` built with an audio stream)
MODEL = "vl-gated-decoder+audio"
#: ``--dataset`` choice -> (row dataset, ``vl-spoken`` source)
DATASETS = {"shapes": ("shapes-spoken", "shapes"), "coco-mini": ("coco-mini-spoken", "coco")}
STREAMS = ("image", "audio", "text")
#: word classes reported (shapes captions use the first three and the last two)
CLASSES = ("colour", "shape", "position", "content", "number", "function", "punct")
#: the rows of one training: every stream, and the same model with blank images
VARIANTS = ("all-streams", "blank-image")

#: what ``--quick`` replaces
_QUICK = {"d_model": 32, "num_layers": 1, "num_heads": 2, "num_audio_layers": 1, "epochs": 1, "max_train": 64,
          "max_test": 32, "warmup": 0}  # fmt: skip


def vl_audio_options(args: argparse.Namespace | Mapping[str, Any]) -> dict[str, Any]:
    """The table options with ``--quick``'s settings applied (what the cells are built from)."""
    opts = dict(args if isinstance(args, Mapping) else vars(args))
    if opts.get("quick"):
        opts.update(_QUICK)
    return opts


#: environment variable naming the folder that holds ``spoken_captions/`` when ``--speech-dir`` is not given
SPEECH_DIR_ENV = "GATELAB_SPEECH_DIR"


def speech_dir_of(options: Mapping[str, Any]) -> str | None:
    """The folder holding ``spoken_captions/``: ``--speech-dir``, else ``$GATELAB_SPEECH_DIR``, else
    ``None`` (the data directory)."""
    return options.get("speech_dir") or os.environ.get(SPEECH_DIR_ENV) or None


def vl_audio_settings(cell: Cell, options: Mapping[str, Any]) -> dict[str, Any]:
    """The recipe's ``configure`` hook: the run of ``cell`` under ``options``
    (:func:`vl_audio_options`): run name and directory, the decoder's sizes, the ``vl-spoken``
    data module of the cell's dataset and the learning rate with its warm-up."""
    source = {row: src for row, src in DATASETS.values()}[cell.dataset]
    quick = bool(options.get("quick"))
    return {
        "name": f"{cell.dataset}{'-quick' if quick else ''}",
        "output_dir": str(options["output_dir"]),
        "model": {"kwargs": {k: options[k] for k in ("d_model", "num_layers", "num_heads", "num_audio_layers")}},
        "data": {"name": "vl-spoken", "kwargs": {
            "source": source, "speech_dir": speech_dir_of(options), "num_mels": options["num_mels"],
            "drop_image": options["drop_image"], "drop_audio": options["drop_audio"],
            "max_train": options["max_train"], "max_eval": options["max_test"], "vocab_size": options["vocab_size"],
            "batch_size": options["batch_size"], "seq_len": 64, "truncate_captions": source == "coco",
            "seed": cell.seed, "verify": not options.get("skip_checksums")}},
        "task": {"lr": options["lr"], "scheduler": {"warmup": options["warmup"]}},
    }  # fmt: skip


# fmt: off
VL_AUDIO_RECIPE = Recipe(
    name="vl-audio",
    models=(MODEL,),
    datasets=tuple(row for row, _ in DATASETS.values()),
    splits=("test",),
    seeds=(0, 1, 2),
    model_names={MODEL: "vl-gated-decoder"},
    base={
        "output_dir": "runs/vl-audio",
        "model": {"kwargs": {"dropout": 0.1, "num_image_layers": 1, "gate_mode": "scalar"}},
        "task": {
            "name": "vl-lm",
            "kwargs": {"contrastive_weight": 1.0, "audio_contrastive_weight": 1.0},
            "optimizer": "adamw",
            "weight_decay": 0.01,
            "scheduler": {"name": "cosine", "interval": "step"},
            "monitor": "val/loss",
        },
        "trainer": {
            "accelerator": "cpu",
            "devices": 1,
            "loggers": ["csv"],
            # best by val/loss (evaluated), last.ckpt and a mid-epoch checkpoint every 20 steps
            # (what --resume-training continues from)
            "checkpoint": {"enabled": True, "monitor": "val/loss", "mode": "min", "save_top_k": 1,
                           "save_last": True, "every_n_train_steps": 20},
            "early_stopping": None,
            "gradient_clip_val": 1.0,
            "log_every_n_steps": 10,
            "enable_model_summary": False,
            "num_sanity_val_steps": 0,
        },
    },
    configure=vl_audio_settings,
    # data.kwargs.seed is the cell's seed (the row key has it): every seed of a cell shares one hash
    not_hashed=("output_dir", "trainer.progress_bar", "data.kwargs.speech_dir", "data.kwargs.seed"),
)
# fmt: on


def vl_audio_cells(args: argparse.Namespace | Mapping[str, Any]) -> list[tuple[list[Cell], Budget]]:
    """Per ``--dataset`` and seed, the cells of one training (one per :data:`VARIANTS`) and its budget."""
    opts = vl_audio_options(args)
    unknown = [d for d in opts["dataset"] if d not in DATASETS]
    if unknown:
        raise ValueError(f"--dataset: unknown {unknown}; choose from {list(DATASETS)}")
    budget = Budget(max_epochs=opts["epochs"], note="stream dropout + SpecAugment; best val/loss checkpoint")
    out = []
    for name in dict.fromkeys(opts["dataset"]):
        row_ds = DATASETS[name][0]
        for seed in opts["seeds"]:
            out.append(([Cell(MODEL, row_ds, int(seed), split="test", variant=v) for v in VARIANTS], budget))
    return out


def _speech_header(speech_dir: str | None, data_dir: Path) -> dict[str, Any]:
    from ..data.speech import SPEECH_SUBDIR

    path = (Path(speech_dir) if speech_dir else data_dir) / SPEECH_SUBDIR / "speech.json"
    header = json.loads(path.read_text())
    return {k: header[k] for k in ("voices", "speeds", "snrs", "synthesizer", "shapes") if k in header}


def run_vl_audio(args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    """Rows of ``gatelab repro vl-audio`` (module docstring)."""
    import torch

    from gatelab.core.harness import resolve_data_dir

    from ..analysis.audio import audio_image_recall, stream_gates_by_word_class, stream_perplexities
    from ..analysis.table import load_best
    from ..analysis.wordclasses import shapes_word_class, word_class

    if os.environ.get("GATELAB_NUM_THREADS"):
        torch.set_num_threads(int(os.environ["GATELAB_NUM_THREADS"]))
    opts = vl_audio_options(args)
    data_dir = resolve_data_dir(args.data_dir)
    for cells, budget in vl_audio_cells(opts):
        done = run_shared(VL_AUDIO_RECIPE, cells, args, budget=budget, data_dir=str(data_dir), options=opts,
                          ckpt_path="auto" if args.resume_training else None)  # fmt: skip
        if not done:  # recorded already (--resume) or not chosen (--verify)
            continue
        res = done[0].result
        model = load_best(res)
        dm = res.datamodule
        cs, ids = dm.captions["test"], dm.caption_ids("test")
        classify = shapes_word_class if cells[0].dataset == "shapes-spoken" else word_class
        ppl = stream_perplexities(model, cs, ids)
        recall = audio_image_recall(model, cs)
        speech = json.dumps(_speech_header(speech_dir_of(opts), data_dir), sort_keys=True)
        note = (f"run {res.run_dir}; {len(dm.captions['train'].captions)} train / {len(cs.captions)} test spoken "
                f"captions ({len(cs.images)} test images); gate weights: mean over layers at the position "
                f"predicting the word; speech {speech}")  # fmt: skip
        for d in done:
            row = d.row
            gates = stream_gates_by_word_class(model, cs, ids, classify, blank_image=d.cell.variant == "blank-image")
            if d.cell.variant == "all-streams":
                row.update(ppl)
                row.update({f"audio_image_{k}": 100.0 * recall[k] for k in ("r@1", "r@5")})
            for c in CLASSES:
                for st in STREAMS:
                    if c in gates:
                        row[f"gate_{st}_{c}"] = gates[c][st]
            row["note"] = note
            yield row


#: ``gatelab repro vl-audio``
VL_AUDIO_TABLE = register_table(
    ReproTable(
        name="vl-audio",
        description=(
            "VL decoder + audio stream (GAU encoder, 3-stream token-wise gate) on espeak-ng spoken shapes / COCO-mini "
            "captions: caption perplexity with each stream ablated, audio-image retrieval R@k (%), mean gate weight "
            "of each stream per word class (with the real image and with a blank one)"
        ),
        paper="issue 16 (no paper reference: the audio stream is a gatelab extension of Ganescu et al. 2025)",
        run="gatelab.multimodal.recipes.vl_audio:run_vl_audio",
        domain="multimodal",
        quick_table="vl-audio-quick",
        metrics=["ppl_all", "ppl_noimage", "ppl_noaudio", "ppl_textonly", "audio_image_r@1", "audio_image_r@5",
                 *[f"gate_{st}_{c}" for c in CLASSES for st in STREAMS]],
        options=[
            Option("--dataset", nargs="+", default=["shapes"], choices=list(DATASETS),
                   help="spoken captions to train on: shapes and/or coco-mini (one training each)"),
            Option("--speech-dir", default=None,
                   help="folder holding spoken_captions/ (gatelab prepare spoken-captions; default: "
                        "$GATELAB_SPEECH_DIR, else --data-dir)"),
            Option("--d-model", type=int, default=64),
            Option("--num-layers", type=int, default=2),
            Option("--num-heads", type=int, default=4),
            Option("--num-audio-layers", type=int, default=2),
            Option("--num-mels", type=int, default=40),
            Option("--vocab-size", type=int, default=256 + 3 + 64, help="BPE vocabulary trained on the captions"),
            Option("--batch-size", type=int, default=32),
            Option("--lr", type=float, default=2e-3),
            Option("--warmup", type=int, default=20, help="linear warm-up steps"),
            Option("--epochs", type=int, default=8),
            Option("--drop-image", type=float, default=0.25, help="training rows without their image"),
            Option("--drop-audio", type=float, default=0.25, help="training rows without their audio"),
            Option("--max-train", type=int, default=None, help="first N training captions (default: all)"),
            Option("--max-test", type=int, default=None, help="first N validation / test captions (default: all)"),
            Option("--output-dir", default="runs/vl-audio", help="run directories and checkpoints"),
            Option("--resume-training", action="store_true",
                   help="continue each run from its newest checkpoint (exact resume) instead of starting afresh"),
            Option("--skip-checksums", action="store_true",
                   help="do not check COCO-mini's sha256 (fixtures in the same layout)"),
        ],
        default_seeds=VL_AUDIO_RECIPE.seeds,
        not_in_hash=("output_dir", "speech_dir", "resume_training", "dataset"),
    )
)  # fmt: skip
