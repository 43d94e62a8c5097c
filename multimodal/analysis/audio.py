"""Evaluations of the decoder with an audio stream on spoken captions (the ``vl-audio`` table).

Every function takes a trained :class:`~gatelab.multimodal.models.GatedVLDecoder` with
``audio_mels`` (its tokenizer attached) and one split of a ``vl-spoken`` data module, a
:class:`~gatelab.multimodal.data.datamodule.SpokenCaptionSet` ``cs`` with its token ids ``ids``
(``[BOS] ... [EOS]`` per caption, :meth:`~gatelab.multimodal.data.datamodule.VLDataModule.caption_ids`):

* :func:`stream_perplexities`: caption perplexity with every stream and with each ablated (the
  stream left out of the forward pass, so the gate renormalises over the others);
* :func:`audio_image_recall`: audio-to-image and image-to-audio ``R@k`` by the contrastive
  embeddings over the split's distinct images (an image query hits when any of its captions'
  audio is within the top ``k``);
* :func:`stream_gates_by_word_class`: the mean gate weight of each stream (image, audio, text)
  at the positions predicting each word class, optionally with every image blanked (mid-grey).

All run in eval mode without gradients, in batches of ``batch_size`` captions.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import torch

from .evaluation import _pad, _recall

__all__ = ["STREAMS", "audio_image_recall", "stream_gates_by_word_class", "stream_perplexities"]

#: the gate's streams, in the order of its weights
STREAMS = ("image", "audio", "text")


def _audio(cs: Any, rows: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-padded feature frames ``[b, F_max, M]`` and frame counts ``[b]`` of captions ``rows``."""
    clips = [cs.audio[i] for i in rows]
    lengths = torch.tensor([c.shape[0] for c in clips])
    out = clips[0].new_zeros(len(clips), int(lengths.max()), clips[0].shape[1])
    for k, c in enumerate(clips):
        out[k, : c.shape[0]] = c
    return out, lengths


def _images(cs: Any, rows: Sequence[int], blank: bool = False) -> torch.Tensor:
    img = cs.images[cs.caption_image[list(rows)]]
    return torch.zeros_like(img) if blank else img  # 0 = mid-grey in the [-1, 1] pixel scale


@torch.no_grad()
def stream_perplexities(
    model: torch.nn.Module, cs: Any, ids: Sequence[torch.Tensor], *, batch_size: int = 64
) -> dict[str, float]:
    """``ppl_all`` (image + audio + text), ``ppl_noimage``, ``ppl_noaudio`` and ``ppl_textonly``:
    ``exp`` of the mean next-token NLL over every real target token of the split."""
    from ..tasks.vl import lm_nll

    model.eval()
    out = {}
    for name, image, audio in (("ppl_all", True, True), ("ppl_noimage", False, True),
                               ("ppl_noaudio", True, False), ("ppl_textonly", False, False)):  # fmt: skip
        total, count = 0.0, 0.0
        for s in range(0, len(ids), batch_size):
            rows = list(range(s, min(s + batch_size, len(ids))))
            tok, mask = _pad([ids[i] for i in rows])
            kw: dict[str, Any] = {}
            if audio:
                kw["audio"], kw["audio_lengths"] = _audio(cs, rows)
            logits = model(tok, _images(cs, rows) if image else None, attention_mask=mask, **kw).logits
            nll, n = lm_nll(logits, tok, mask)
            total, count = total + float(nll), count + float(n)
        out[name] = math.exp(total / count)
    return out


@torch.no_grad()
def audio_image_recall(
    model: torch.nn.Module, cs: Any, *, ks: Sequence[int] = (1, 5), batch_size: int = 64
) -> dict[str, float]:
    """``{"r@k": mean of audio->image and image->audio R@k}`` (fractions) over the split's
    distinct images ``cs.images``; also ``a2i_r@k`` and ``i2a_r@k``."""
    model.eval()
    n = len(cs.captions)
    za = torch.cat([model.audio_embedding(*_audio(cs, range(s, min(s + batch_size, n))))
                    for s in range(0, n, batch_size)])  # fmt: skip
    zi = torch.cat([model.image_embedding(cs.images[s : s + batch_size]) for s in range(0, len(cs.images), batch_size)])
    sim = za.double() @ zi.double().t()  # [captions, images]
    owner = cs.caption_image
    a2i = _recall(sim, owner, ks)
    # image -> audio: the rank of the image's best-ranked own caption among all captions
    s_i = sim.t()  # [images, captions]
    own = owner[None, :] == torch.arange(len(cs.images))[:, None]
    best_true = s_i.masked_fill(~own, float("-inf")).max(dim=1).values
    rank = (s_i.masked_fill(own, float("-inf")) > best_true[:, None]).sum(dim=1)
    has = own.any(dim=1)
    i2a = {f"r@{k}": (rank[has] < k).double().mean().item() for k in ks}
    out = {k: 0.5 * (a2i[k] + i2a[k]) for k in a2i}
    out.update({f"a2i_{k}": v for k, v in a2i.items()})
    out.update({f"i2a_{k}": v for k, v in i2a.items()})
    return out


@torch.no_grad()
def stream_gates_by_word_class(
    model: torch.nn.Module,
    cs: Any,
    ids: Sequence[torch.Tensor],
    classify: Callable[[str], str],
    *,
    blank_image: bool = False,
    batch_size: int = 64,
) -> dict[str, dict[str, float]]:
    """``{class: {"image": w, "audio": w, "text": w, "n": words}}``: the gate's weight of each
    stream, averaged over the layers and the tokens of a word, at the positions that predict the
    word (the position before each of its tokens), then over the words of each class
    (``classify(word)``). A word cut off by truncation to ``len(ids[i])`` tokens is skipped.
    Needs a 3-stream gate (``fusion="gate"`` with audio) and a scalar ``gate_mode``."""
    from gatelab.core import capture_gates

    model.eval()
    tok = model.tokenizer
    if tok is None:
        raise ValueError("stream_gates_by_word_class: the model has no tokenizer (set_tokenizer)")
    sums: dict[str, torch.Tensor] = defaultdict(lambda: torch.zeros(len(STREAMS), dtype=torch.float64))
    counts: dict[str, int] = defaultdict(int)
    L = len(model.layers)
    for s in range(0, len(ids), batch_size):
        rows = list(range(s, min(s + batch_size, len(ids))))
        tokens, mask = _pad([ids[i] for i in rows])
        au, al = _audio(cs, rows)
        with capture_gates(model, include="layers.*.gate") as cap:
            model(tokens, _images(cs, rows, blank_image), attention_mask=mask, audio=au, audio_lengths=al)
        w = torch.stack([cap[f"layers.{i}.gate"].double() for i in range(L)]).mean(0)  # [b, T, 3]
        if w.dim() != 3 or w.shape[-1] != len(STREAMS):
            raise ValueError(f"stream_gates_by_word_class: expected scalar 3-stream gates [B, T, 3], got {tuple(w.shape)}")
        for b, e in zip(range(len(rows)), tok.encode_batch([cs.captions[i] for i in rows])):
            n_tok = len(ids[rows[b]])
            words: dict[int, list[int]] = defaultdict(list)
            for j, wid in enumerate(e.word_ids):
                if wid is not None and j >= 1:
                    words[wid].append(j)
            caption = cs.captions[rows[b]]
            for positions in words.values():
                if positions[-1] >= n_tok:
                    continue
                lo, hi = e.offsets[positions[0]][0], e.offsets[positions[-1]][1]
                cls = classify(caption[lo:hi].strip())
                sums[cls] += w[b, [p - 1 for p in positions]].mean(0)
                counts[cls] += 1
    return {c: {**{st: float(sums[c][i] / counts[c]) for i, st in enumerate(STREAMS)}, "n": counts[c]} for c in sums}
