"""What the ``vl-gating`` table measures on a trained decoder, beyond the run's own metrics.

* :func:`load_best`: the best (else last) checkpoint's model of a run, in eval mode;
* :func:`text_perplexity`: ``exp(total NLL / total tokens)`` over packed text blocks ``[n, L]``;
* :func:`caption_metrics`: on a caption split of a data module, caption perplexity with and
  without the image, text-to-image retrieval R@k by likelihood (``r@k``) and by the InfoNCE
  embeddings (``clip_r@k``, contrastive models only) on the first ``gallery`` images (in %), and
  for a gated model the mean visual gate per word class (``gate_<class>``) with its
  :class:`~gatelab.multimodal.analysis.evaluation.GateReport`;
* :func:`blimp_rows` / :func:`gate_class_rows` / :func:`gate_word_rows`: the side-table rows
  (accuracy per BLiMP paradigm; the gate per word class and layer -- ``model`` = the word class,
  so classes of one run pair by seed in a paired comparison --; the gate of the most frequent
  words).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch

from .evaluation import (
    GateReport,
    caption_perplexity,
    contrastive_retrieval,
    gate_by_word_class,
    generative_retrieval,
    sequence_logprobs,
)

__all__ = [
    "blimp_rows",
    "caption_metrics",
    "gate_class_rows",
    "gate_layers",
    "gate_word_rows",
    "load_best",
    "text_perplexity",
]


def load_best(result: Any) -> torch.nn.Module:
    """The model (with its tokenizer) of ``result``'s best checkpoint, else its last, in eval mode
    (``result``: an :class:`~gatelab.core.harness.experiment.ExperimentResult` of a ``vl-lm`` run)."""
    from ..tasks.vl import VLTask

    ckpt = result.best_checkpoint or result.last_checkpoint
    if ckpt is None:
        raise RuntimeError(f"run {result.run_dir} saved no checkpoint")
    task = VLTask.load_from_checkpoint(ckpt, map_location="cpu", weights_only=True)
    return task.model.eval()


def text_perplexity(model: torch.nn.Module, blocks: torch.Tensor) -> float:
    """Perplexity of ``model`` on text blocks ``[n, L]`` (no image), over every predicted token."""
    lp, n = sequence_logprobs(model, list(blocks), None, batch_size=64)
    return math.exp(-lp.sum().item() / n.sum().item())


def caption_metrics(
    model: torch.nn.Module, dm: Any, split: str, gallery: int, classify: Callable[[str], str]
) -> tuple[dict[str, float], GateReport | None]:
    """Perplexities, retrieval (%) and, for a gated model, the gate report on caption split
    ``split`` of data module ``dm`` (a :class:`~gatelab.multimodal.data.datamodule.VLDataModule`);
    ``classify`` maps a word to its class."""
    ids = dm.caption_ids(split)
    cs = dm.captions[split]
    images = cs.images[cs.caption_image]
    out = {
        "ppl_image": caption_perplexity(model, ids, images),
        "ppl_noimage": caption_perplexity(model, ids, None),
    }
    n_img = min(gallery, len(cs.images))
    keep = [i for i, j in enumerate(cs.caption_image.tolist()) if j < n_img]
    sub_ids = [ids[i] for i in keep]
    owner = cs.caption_image[keep]
    gen = generative_retrieval(model, sub_ids, owner, cs.images[:n_img], progress=True)
    out.update({k: 100.0 * v for k, v in gen.items()})
    if getattr(model, "contrastive", False):
        clip = contrastive_retrieval(model, sub_ids, owner, cs.images[:n_img])
        out.update({f"clip_{k}": 100.0 * v for k, v in clip.items()})
    report = None
    if model.fusion == "gate":
        report = gate_by_word_class(model, model.tokenizer, cs.captions, images, classify=classify)
        for cls, v in report.classes.items():
            out[f"gate_last_{cls}"] = v["gate_last"]  # the official evaluation reads the last layer
            out[f"gate_mean_{cls}"] = v["gate_mean"]
    return out, report


def blimp_rows(result: Mapping[str, Any], base: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per BLiMP paradigm (``split``: the paradigm, ``accuracy`` in %) and ``overall``,
    from :func:`~gatelab.multimodal.analysis.evaluation.blimp_accuracy`'s result."""
    rows = [{**base, "split": p, "accuracy": 100.0 * a} for p, a in result["per_paradigm"].items()]
    rows.append({**base, "split": "overall", "accuracy": 100.0 * result["overall"]})
    return rows


def gate_layers(num_layers: int) -> list[tuple[str, str]]:
    """``(split label, GateReport key)`` of every layer reading: ``last`` (the official
    evaluation's), ``mean`` (over layers) and ``layer0`` .. ``layer<L-1>``."""
    return [("last", "gate_last"), ("mean", "gate_mean"), *((f"layer{i}", f"gate_layer{i}") for i in range(num_layers))]


def gate_class_rows(report: GateReport, base: Mapping[str, Any], variant: str) -> list[dict[str, Any]]:
    """One row per word class and layer reading (:func:`gate_layers`): ``model`` = the class,
    ``split`` = ``last`` / ``mean`` / ``layer<i>``, ``variant`` = ``variant``, ``gate`` (mean
    visual gate at the positions predicting the class's words), ``n`` (word occurrences), plus
    ``base`` (``dataset``, ``seed``, ``budget``, ``decoder`` ...). Keyed this way, the classes of
    one trained model pair by seed in a :class:`~gatelab.core.harness.stats.Comparison`
    (``Comparison("gate", "colour", "function", lower_is_better=False)``), per layer reading."""
    rows = []
    for cls, v in sorted(report.classes.items()):
        for split, key in gate_layers(report.num_layers):
            rows.append({**base, "model": cls, "split": split, "variant": variant, "gate": v[key], "n": v["n"]})
    return rows


def gate_word_rows(
    report: GateReport, base: Mapping[str, Any], label: str, top_words: int = 20
) -> list[dict[str, Any]]:
    """The ``top_words`` most frequent words (``variant``: ``<label> word=...``), their gate
    (last layer, mean, per layer) and count."""
    frequent = sorted(report.words.items(), key=lambda kv: (-kv[1]["n"], kv[0]))[:top_words]
    return [{**base, "variant": f"{label} word={w}", **v} for w, v in frequent]
