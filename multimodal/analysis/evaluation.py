"""Evaluation of the vision-language decoder: BLiMP, caption perplexity, retrieval, gate analysis.

* :func:`sequence_logprobs`: ``log p(w_1 .. w_n | [BOS] [, image]) = sum_t log p(w_t | w_<t)`` per
  sentence, batched by length (sentences sorted by token count, padded per batch).
* :func:`blimp_accuracy`: a minimal pair counts when ``log p(good) > log p(bad)`` (strictly), both
  scored as whole sentences from ``[BOS]`` without the ``[EOS]`` term (the "simple LM method" of
  BLiMP, as lm-evaluation-harness scores it); accuracy per paradigm and over all pairs.
* :func:`caption_perplexity`: ``exp(total NLL / total tokens)`` over captions (targets after
  ``[BOS]``, ``[EOS]`` included), with the image or with the visual path off.
* :func:`generative_retrieval`: text-to-image retrieval by caption likelihood: caption ``c`` ranks
  every gallery image ``j`` by ``log p(c | image_j)``; ``R@k`` is the fraction of captions whose own
  image is among the top ``k``. :func:`contrastive_retrieval`: the same ranking by the InfoNCE
  embeddings' cosine similarity (both directions averaged).
* :func:`gate_by_word_class`: the visual gate ``g`` (mean over channels for a vector gate) at the
  position that *predicts* each word (as the official ``evaluation/test_gate.py``: the gate at
  token ``t - 1`` is the gate "for" token ``t``), averaged over the word's sub-word tokens, then per
  word class (:mod:`gatelab.multimodal.analysis.wordclasses`), for the last layer and the mean over layers.
  :func:`plot_gate_classes` draws the table as a bar chart.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from gatelab.core import capture_gates

from ..data.tokenizer import EOS_ID, PAD_ID
from .wordclasses import word_class

__all__ = [
    "GateReport",
    "blimp_accuracy",
    "caption_perplexity",
    "contrastive_retrieval",
    "gate_by_word_class",
    "generative_retrieval",
    "plot_gate_classes",
    "sequence_logprobs",
]


def _progress(it: Any, total: int, desc: str, show: bool) -> Any:
    if not show:
        return it
    from tqdm.auto import tqdm

    return tqdm(it, total=total, desc=desc, leave=False)


def _pad(seqs: Sequence[Sequence[int]] | Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    L = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), L), PAD_ID, dtype=torch.long)
    lengths = torch.tensor([len(s) for s in seqs])
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.as_tensor(s, dtype=torch.long)
    return ids, torch.arange(L)[None, :] < lengths[:, None]


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def sequence_logprobs(
    model: torch.nn.Module,
    sequences: Sequence[Sequence[int]] | Sequence[torch.Tensor],
    images: torch.Tensor | None = None,
    *,
    include_eos: bool = True,
    batch_size: int = 256,
    progress: bool = False,
    desc: str = "scoring",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed token log-probabilities of each ``[BOS] ... [EOS]`` sequence and the number of scored tokens.

    Args:
        model: a :class:`~gatelab.multimodal.models.GatedVLDecoder` (put in eval mode here).
        sequences: token ids, each starting with ``[BOS]``.
        images: ``[N, ...]`` one image per sequence, or ``None`` (visual path off).
        include_eos: score the final ``[EOS]`` too.
        batch_size: sequences per forward pass (sorted by length first).

    Returns ``(logp [N] float64, n_tokens [N] long)`` in the input order.
    """
    model.eval()
    n = len(sequences)
    if images is not None and len(images) != n:
        raise ValueError(f"sequence_logprobs: {n} sequences but {len(images)} images")
    order = sorted(range(n), key=lambda i: len(sequences[i]))
    out = torch.zeros(n, dtype=torch.float64)
    count = torch.zeros(n, dtype=torch.long)
    dev = _device(model)
    chunks = [order[i : i + batch_size] for i in range(0, n, batch_size)]
    for idx in _progress(chunks, len(chunks), desc, progress):
        ids, mask = _pad([sequences[i] for i in idx])
        ids, mask = ids.to(dev), mask.to(dev)
        img = images[idx].to(dev) if images is not None else None
        logits = model(ids, img, attention_mask=mask).logits[:, :-1].float()
        target = ids[:, 1:]
        lp = torch.log_softmax(logits, dim=-1).gather(-1, target.unsqueeze(-1)).squeeze(-1)
        valid = mask[:, 1:]
        if not include_eos:
            valid = valid & (target != EOS_ID)
        out[idx] = (lp * valid).sum(dim=1).double().cpu()
        count[idx] = valid.sum(dim=1).cpu()
    return out, count


def blimp_accuracy(
    model: torch.nn.Module,
    tokenizer: Any,
    pairs: Sequence[Any],
    *,
    batch_size: int = 512,
    progress: bool = False,
) -> dict[str, Any]:
    """BLiMP accuracy of ``model`` on ``pairs`` (:class:`~gatelab.multimodal.data.blimp.MinimalPair`).

    Returns ``{"overall": float, "per_paradigm": {name: float}, "n_pairs": int}``.
    """
    if not pairs:
        raise ValueError("blimp_accuracy: no pairs")
    sentences = [p.good for p in pairs] + [p.bad for p in pairs]
    encs = tokenizer.encode_batch(sentences)
    lp, _ = sequence_logprobs(
        model,
        [e.ids for e in encs],
        None,
        include_eos=False,
        batch_size=batch_size,
        progress=progress,
        desc="BLiMP",
    )
    n = len(pairs)
    correct = (lp[:n] > lp[n:]).tolist()
    per: dict[str, list[bool]] = defaultdict(list)
    for p, c in zip(pairs, correct):
        per[p.paradigm].append(c)
    return {
        "overall": sum(correct) / n,
        "per_paradigm": {k: sum(v) / len(v) for k, v in sorted(per.items())},
        "n_pairs": n,
    }


def caption_perplexity(
    model: torch.nn.Module,
    sequences: Sequence[Sequence[int]] | Sequence[torch.Tensor],
    images: torch.Tensor | None,
    *,
    batch_size: int = 256,
) -> float:
    """``exp(sum NLL / sum tokens)`` of captions (targets after ``[BOS]``, ``[EOS]`` included);
    ``images=None`` scores them with the visual path off."""
    lp, n = sequence_logprobs(model, sequences, images, include_eos=True, batch_size=batch_size)
    return math.exp(-lp.sum().item() / n.sum().item())


def _recall(scores: torch.Tensor, truth: torch.Tensor, ks: Sequence[int]) -> dict[str, float]:
    """``R@k`` for a ``[n_query, n_gallery]`` score matrix and each query's true gallery index."""
    true_score = scores.gather(1, truth[:, None])
    rank = (scores > true_score).sum(dim=1)  # 0 = ranked first; ties count in the query's favour
    return {f"r@{k}": (rank < k).double().mean().item() for k in ks}


@torch.no_grad()
def generative_retrieval(
    model: torch.nn.Module,
    sequences: Sequence[Sequence[int]] | Sequence[torch.Tensor],
    caption_image: torch.Tensor,
    images: torch.Tensor,
    *,
    ks: Sequence[int] = (1, 5),
    batch_size: int = 256,
    progress: bool = False,
) -> dict[str, float]:
    """Text-to-image ``R@k`` by caption likelihood over the gallery ``images`` (module docstring).

    Args:
        sequences: caption token ids.
        caption_image: ``[n_captions]`` index of each caption's image in ``images``.
        images: the gallery ``[n_images, ...]``.
    """
    n_img = len(images)
    scores = torch.empty(len(sequences), n_img, dtype=torch.float64)
    for j in _progress(range(n_img), n_img, "retrieval", progress):
        img = images[j : j + 1].expand(len(sequences), *images.shape[1:])
        scores[:, j], _ = sequence_logprobs(model, sequences, img, include_eos=True, batch_size=batch_size)
    return _recall(scores, torch.as_tensor(caption_image, dtype=torch.long), ks)


@torch.no_grad()
def contrastive_retrieval(
    model: torch.nn.Module,
    sequences: Sequence[Sequence[int]] | Sequence[torch.Tensor],
    caption_image: torch.Tensor,
    images: torch.Tensor,
    *,
    ks: Sequence[int] = (1, 5),
    batch_size: int = 256,
) -> dict[str, float]:
    """``R@k`` by the InfoNCE embeddings, mean of text-to-image and image-to-text.

    Image-to-text: each image ranks every caption; a hit is any of its own captions in the top ``k``.
    """
    model.eval()
    dev = _device(model)
    zt, zi = [], []
    for i in range(0, len(sequences), batch_size):
        ids, mask = _pad(sequences[i : i + batch_size])
        zt.append(model.text_embedding(ids.to(dev), mask.to(dev)).cpu())
    for i in range(0, len(images), batch_size):
        zi.append(model.image_embedding(images[i : i + batch_size].to(dev)).cpu())
    sim = torch.cat(zt).double() @ torch.cat(zi).double().t()  # [n_cap, n_img]
    truth = torch.as_tensor(caption_image, dtype=torch.long)
    t2i = _recall(sim, truth, ks)
    # image -> text: the best-ranked own caption decides
    own = truth[None, :] == torch.arange(len(images))[:, None]  # [n_img, n_cap]
    s = sim.t()
    best_own = s.masked_fill(~own, -math.inf).amax(dim=1, keepdim=True)
    rank = (s > best_own).sum(dim=1)
    i2t = {f"r@{k}": (rank < k).double().mean().item() for k in ks}
    return {k: 0.5 * (t2i[k] + i2t[k]) for k in t2i}


@dataclasses.dataclass
class GateReport:
    """Mean visual gate per word class (``last``: last layer, ``mean``: mean over layers),
    with the number of word occurrences and the per-layer means; ``words`` holds the per-word means."""

    classes: dict[str, dict[str, float]]
    words: dict[str, dict[str, float]]
    num_layers: int

    def table(self) -> list[dict[str, Any]]:
        """Rows ``{"class", "n", "gate_mean", "gate_last", "gate_sem"}`` sorted by class name."""
        return [{"class": c, **v} for c, v in sorted(self.classes.items())]


@torch.no_grad()
def gate_by_word_class(
    model: torch.nn.Module,
    tokenizer: Any,
    captions: Sequence[str],
    images: torch.Tensor,
    *,
    classify: Callable[[str], str] = word_class,
    batch_size: int = 128,
) -> GateReport:
    """Visual gate per word class over ``captions`` with their ``images`` (module docstring).

    The model must have ``fusion="gate"``. Gates are captured with
    :func:`gatelab.core.capture_gates` from every decoder layer's ``TokenwiseGate``.
    """
    if getattr(model, "fusion", None) != "gate":
        raise ValueError("gate_by_word_class: the model has no token-wise gate (fusion != 'gate')")
    if len(captions) != len(images):
        raise ValueError(f"gate_by_word_class: {len(captions)} captions but {len(images)} images")
    model.eval()
    dev = _device(model)
    encs = tokenizer.encode_batch(list(captions))
    num_layers = len(model.layers)
    per_word: list[tuple[str, str, torch.Tensor]] = []  # (word, class, gate per layer [L])
    for start in range(0, len(encs), batch_size):
        batch = encs[start : start + batch_size]
        ids, mask = _pad([e.ids for e in batch])
        with capture_gates(model, include="layers.*.gate") as cap:
            model(ids.to(dev), images[start : start + batch_size].to(dev), attention_mask=mask.to(dev))
        g = torch.stack([cap[f"layers.{i}.gate"].float().mean(dim=-1) for i in range(num_layers)])  # [L, B, T]
        g = g.cpu()
        for b, e in enumerate(batch):
            text = captions[start + b]
            tokens_of: dict[int, list[int]] = defaultdict(list)
            for j, w in enumerate(e.word_ids):
                if w is not None and j >= 1:
                    tokens_of[w].append(j)
            for positions in tokens_of.values():
                lo, hi = e.offsets[positions[0]][0], e.offsets[positions[-1]][1]
                word = text[lo:hi].strip()
                gates = g[:, b, [p - 1 for p in positions]].mean(dim=1)  # gate at the predicting position
                per_word.append((word, classify(word), gates))
    if not per_word:
        raise ValueError("gate_by_word_class: no words")
    by_class: dict[str, list[torch.Tensor]] = defaultdict(list)
    by_word: dict[str, list[torch.Tensor]] = defaultdict(list)
    for word, cls, gates in per_word:
        by_class[cls].append(gates)
        by_word[word.lower()].append(gates)

    def summary(vals: list[torch.Tensor]) -> dict[str, float]:
        v = torch.stack(vals)  # [n, L]
        m = v.mean(dim=1)

        def sem(x: torch.Tensor) -> float:
            return (x.std(unbiased=True) / math.sqrt(len(x))).item() if len(x) > 1 else float("nan")

        out = {
            "n": float(len(v)),
            "gate_mean": m.mean().item(),
            "gate_last": v[:, -1].mean().item(),
            "gate_sem": sem(m),
            "gate_last_sem": sem(v[:, -1]),
        }
        out.update({f"gate_layer{i}": v[:, i].mean().item() for i in range(v.shape[1])})
        return out

    return GateReport(
        {c: summary(v) for c, v in by_class.items()},
        {w: summary(v) for w, v in by_word.items()},
        num_layers,
    )


def plot_gate_classes(
    reports: dict[str, GateReport],
    path: str | os.PathLike[str],
    *,
    classes: Sequence[str] | None = None,
    title: str = "Visual gate by word class",
    value: str = "gate_mean",
) -> Path:
    """Bar chart of the visual gate per word class for each report (one colour per report), +-
    its s.e.m. over word occurrences: ``value`` ``"gate_mean"`` (mean over layers) or
    ``"gate_last"`` (last layer, what the official evaluation reads); written as PNG to ``path``."""
    if value not in ("gate_mean", "gate_last"):
        raise ValueError(f"plot_gate_classes: value={value!r}; expected 'gate_mean' or 'gate_last'")
    sem_key = "gate_sem" if value == "gate_mean" else "gate_last_sem"
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(reports)
    cls = list(classes) if classes is not None else sorted({c for r in reports.values() for c in r.classes})
    width = 0.8 / max(1, len(names))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(cls) + 2), 4.0))
    for k, name in enumerate(names):
        rep = reports[name]
        xs = [i + (k - (len(names) - 1) / 2) * width for i in range(len(cls))]
        ys = [rep.classes.get(c, {}).get(value, float("nan")) for c in cls]
        es = [rep.classes.get(c, {}).get(sem_key, 0.0) for c in cls]
        es = [0.0 if e != e else e for e in es]
        ax.bar(xs, ys, width=width, yerr=es, capsize=3, label=name)
        for x, y, c in zip(xs, ys, cls):
            n = int(rep.classes.get(c, {}).get("n", 0))
            if n and y == y:
                ax.text(x, y + 0.01, f"n={n}", ha="center", va="bottom", fontsize=7, rotation=90)
    ax.set_xticks(range(len(cls)))
    ax.set_xticklabels(cls)
    ax.set_ylabel("mean visual gate g (1 = image, 0 = text)")
    ax.set_ylim(0, 1.15)
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
