r"""``gatelab repro vl-audio``: the VL decoder with an audio stream on spoken shapes captions.

Data: the shapes images (:mod:`gatelab.multimodal.data.shapes`, regenerated from the parameters in
``spoken_captions/speech.json``) with their captions spoken by espeak-ng
(``gatelab prepare spoken-captions``; several voices, speeds and noise levels). Each example is
(caption text, image, the caption's speech), features: 40 log-mel bins, 25 ms / 10 ms, CMVN.

Model: :class:`~gatelab.multimodal.models.GatedVLDecoder` with ``audio_mels=40``: per layer a
cross-attention to the image tokens and one to the audio memory (conv subsampling + GAU blocks),
mixed with the text stream by a 3-stream softmax :class:`~gatelab.core.TokenwiseGate` (scalar:
one weight per stream and token).

Training (plain PyTorch loop, AdamW, cosine schedule): caption NLL + InfoNCE(text, image) +
InfoNCE(audio, image). Stream dropout: each training row loses its image with probability
``--drop-image`` and its audio with ``--drop-audio`` (never both), so the decoder learns to use
either stream alone; the gate then masks the missing stream (its weight is 0).

Rows (test split, per seed; ``variant``):

* ``all-streams``: caption perplexity with every stream (``ppl_all``) and with each ablated
  (``ppl_noimage``, ``ppl_noaudio``, ``ppl_textonly``: the stream removed from the gate);
  audio-to-image retrieval ``r@1`` / ``r@5`` over the test images by the contrastive embeddings
  (mean of audio->image and image->audio); the mean gate weight of each stream at the positions
  predicting each word class, ``gate_<stream>_<class>`` (mean over layers).
* ``blank-image``: the same gate weights when the image is uninformative (all pixels mid-grey):
  does the gate turn to audio when the image says nothing, and to the image for colour and
  shape words when it does?

Budget: ``--quick`` runs a smoke size (64 training captions, 1 epoch). The committed run (600
training / 150 test captions, ``gatelab prepare spoken-captions --sources shapes --shapes-train 600
--shapes-val 0 --shapes-test 150``; defaults: d=64, 2 decoder layers, 2 GAU layers, 8 epochs) costs
about 2 minutes of one CPU core per seed (0.6 s per training step of 32 captions), 16 minutes of wall
time for the three seeds run side by side on the shared 2-core machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import random
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any

from gatelab.core.harness.repro import Option, ReproTable, register_table

__all__ = ["VL_AUDIO_TABLE", "SpokenSet", "load_spoken_shapes", "run_vl_audio", "stream_gates_by_word_class"]

STREAMS = ("image", "audio", "text")
CLASSES = ("colour", "shape", "position", "function", "punct")


@dataclasses.dataclass
class SpokenSet:
    """One split: ``captions[i]``, its image ``images[i]`` ``[N_tok, D]`` (patch tokens in
    [-1, 1]) and its speech features ``feats[i]`` ``[F_i, num_mels]``; ``image_of[i]`` the image index."""

    captions: list[str]
    images: Any
    feats: list[Any]
    image_of: list[int]


def load_spoken_shapes(
    data_dir: str | os.PathLike[str] | None, *, num_mels: int = 40, patch: int = 8, max_items: int | None = None
) -> dict[str, SpokenSet]:
    """The spoken shapes splits of ``<data dir>/spoken_captions`` (one rendition per caption: the first).

    Images are regenerated with the manifest's shapes parameters and every spoken caption is
    checked against the regenerated caption (an error names the manifest line's id otherwise).
    """
    import torch

    from gatelab.core.harness import resolve_data_dir
    from gatelab.core.harness.errors import DataError

    from ..data.audio import AudioFeatures, load_audio
    from ..data.shapes import make_shapes, patchify
    from ..data.speech import SPEECH_SUBDIR, read_speech_manifest

    root = resolve_data_dir(data_dir) / SPEECH_SUBDIR
    header_path = root / "speech.json"
    if not header_path.is_file():
        raise DataError(f"{header_path} not found: run `gatelab prepare spoken-captions --data-dir DIR` first")
    header = json.loads(header_path.read_text())
    shapes = header["shapes"]
    utts = [u for u in read_speech_manifest(root / "manifest.jsonl") if u.source == "shapes" and u.id.endswith("-0")]
    feat = AudioFeatures(int(header["sample_rate"]), num_mels=num_mels)
    out: dict[str, SpokenSet] = {}
    for k, split in enumerate(("train", "val", "test")):
        n = int(shapes[f"n_{split}"])
        rows = [u for u in utts if u.split == split]
        if n == 0 or not rows:
            continue
        d = make_shapes(n, size=shapes["image_size"], two_object_prob=shapes["two_object_prob"],
                        seed=shapes["seed"] * 1000 + k)  # fmt: skip
        rows.sort(key=lambda u: u.item)
        if max_items is not None:
            rows = rows[:max_items]
        caps, feats, owner = [], [], []
        for u in rows:
            if u.item >= n or d.captions[u.item] != u.caption:
                raise DataError(
                    f"{root / 'manifest.jsonl'}: {u.id}: caption {u.caption!r} is not shapes {split} caption "
                    f"{u.item} of the parameters in speech.json; re-run `gatelab prepare spoken-captions`"
                )
            wav, _ = load_audio(root / u.path, int(header["sample_rate"]))
            f, _ = feat(wav)
            caps.append(u.caption)
            feats.append(f[0])
            owner.append(u.item)
        images = patchify(d.images.sub(0.5).div(0.5), patch)[torch.tensor(owner)]
        out[split] = SpokenSet(caps, images, feats, owner)
    if "train" not in out or "test" not in out:
        raise DataError(f"{root}: the manifest needs spoken shapes captions of the train and test splits")
    return out


def _pad_feats(feats: Sequence[Any]) -> tuple[Any, Any]:
    import torch

    lengths = torch.tensor([f.shape[0] for f in feats])
    out = torch.zeros(len(feats), int(lengths.max()), feats[0].shape[1])
    for i, f in enumerate(feats):
        out[i, : f.shape[0]] = f
    return out, lengths


def _encode(tokenizer: Any, captions: Sequence[str]) -> tuple[Any, Any, list[Any]]:
    from ..analysis.evaluation import _pad

    encs = tokenizer.encode_batch(list(captions))
    ids, mask = _pad([e.ids for e in encs])
    return ids, mask, encs


def stream_gates_by_word_class(
    model: Any, tokenizer: Any, data: SpokenSet, *, blank_image: bool = False, batch_size: int = 64
) -> dict[str, dict[str, float]]:
    """Mean gate weight of each stream (image, audio, text; mean over layers and over the
    tokens of a word) at the positions predicting each word class: ``{class: {stream: w, "n": count}}``."""
    import torch

    from gatelab.core import capture_gates

    from ..analysis.wordclasses import shapes_word_class

    model.eval()
    sums: dict[str, Any] = defaultdict(lambda: torch.zeros(3, dtype=torch.float64))
    counts: dict[str, int] = defaultdict(int)
    L = len(model.layers)
    for s in range(0, len(data.captions), batch_size):
        caps = data.captions[s : s + batch_size]
        ids, mask, encs = _encode(model.tokenizer, caps)
        img = data.images[s : s + batch_size]
        if blank_image:
            img = torch.zeros_like(img)  # mid-grey in [-1, 1]
        au, al = _pad_feats(data.feats[s : s + batch_size])
        with torch.no_grad(), capture_gates(model, include="layers.*.gate") as cap:
            model(ids, img, attention_mask=mask, audio=au, audio_lengths=al)
        w = torch.stack([cap[f"layers.{i}.gate"].double() for i in range(L)]).mean(0)  # [B, T, 3]
        for b, e in enumerate(encs):
            tokens_of: dict[int, list[int]] = defaultdict(list)
            for j, wid in enumerate(e.word_ids):
                if wid is not None and j >= 1:
                    tokens_of[wid].append(j)
            for positions in tokens_of.values():
                lo, hi = e.offsets[positions[0]][0], e.offsets[positions[-1]][1]
                cls = shapes_word_class(caps[b][lo:hi].strip())
                sums[cls] += w[b, [p - 1 for p in positions]].mean(0)
                counts[cls] += 1
    return {c: {**{st: float(sums[c][i] / counts[c]) for i, st in enumerate(STREAMS)}, "n": counts[c]} for c in sums}


def lm_nll(logits: Any, input_ids: Any, attention_mask: Any) -> tuple[Any, Any]:
    """Summed next-token NLL over real targets and their count (the formula of
    :func:`gatelab.multimodal.tasks.vl.lm_nll`, here without importing Lightning)."""
    import torch.nn.functional as F

    target = input_ids[:, 1:]
    lp = F.cross_entropy(logits[:, :-1].float().transpose(1, 2), target, reduction="none")
    valid = attention_mask[:, 1:].to(lp.dtype)
    return (lp * valid).sum(), valid.sum()


def _perplexity(model: Any, data: SpokenSet, *, image: bool, audio: bool, batch_size: int = 64) -> float:
    import torch

    model.eval()
    total, count = 0.0, 0.0
    with torch.no_grad():
        for s in range(0, len(data.captions), batch_size):
            ids, mask, _ = _encode(model.tokenizer, data.captions[s : s + batch_size])
            kw: dict[str, Any] = {}
            if audio:
                kw["audio"], kw["audio_lengths"] = _pad_feats(data.feats[s : s + batch_size])
            img = data.images[s : s + batch_size] if image else None
            nll, n = lm_nll(model(ids, img, attention_mask=mask, **kw).logits, ids, mask)
            total, count = total + float(nll), count + float(n)
    return math.exp(total / count)


def _audio_image_recall(model: Any, data: SpokenSet, ks: Sequence[int] = (1, 5)) -> dict[str, float]:
    """Audio->image and image->audio R@k over the split's distinct images (mean of the two)."""
    import torch

    from ..analysis.evaluation import _recall

    model.eval()
    with torch.no_grad():
        za = torch.cat([model.audio_embedding(*_pad_feats(data.feats[s : s + 64])) for s in range(0, len(data.feats), 64)])
        zi = torch.cat([model.image_embedding(data.images[s : s + 64]) for s in range(0, len(data.feats), 64)])
    sim = za.double() @ zi.double().t()  # one image per caption here (captions_per_image = 1)
    truth = torch.arange(len(data.feats))
    a2i, i2a = _recall(sim, truth, ks), _recall(sim.t(), truth, ks)
    return {k: 0.5 * (a2i[k] + i2a[k]) for k in a2i}


def _train(model: Any, data: SpokenSet, opts: dict[str, Any], seed: int) -> float:
    """Plain AdamW loop (module docstring); returns the last epoch's mean loss."""
    import torch

    from ..data.audio import SpecAugment
    from ..models.vl_decoder import contrastive_loss

    g = torch.Generator().manual_seed(seed)
    rng = random.Random(seed)
    aug = SpecAugment(freq_mask_param=6, time_mask_param=15).train()
    opt = torch.optim.AdamW(model.parameters(), lr=opts["lr"], weight_decay=0.01)
    n, bs = len(data.captions), opts["batch_size"]
    steps = opts["epochs"] * math.ceil(n / bs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=opts["lr"], total_steps=steps, pct_start=0.1)
    last = 0.0
    for _ in range(opts["epochs"]):
        model.train()
        order = torch.randperm(n, generator=g).tolist()
        losses = []
        for s in range(0, n, bs):
            idx = order[s : s + bs]
            ids, mask, _ = _encode(model.tokenizer, [data.captions[i] for i in idx])
            au, al = _pad_feats([data.feats[i] for i in idx])
            au = aug(au, al)
            drop = [rng.random() for _ in idx]
            has_img = torch.tensor([d >= opts["drop_image"] for d in drop])
            has_aud = torch.tensor([d < opts["drop_image"] or d >= opts["drop_image"] + opts["drop_audio"] for d in drop])
            out = model(ids, data.images[idx], attention_mask=mask, image_mask=has_img, audio=au,
                        audio_lengths=al, audio_mask=has_aud)  # fmt: skip
            s_nll, cnt = lm_nll(out.logits, ids, mask)
            loss = s_nll / cnt + contrastive_loss(out.contrastive_logits) + contrastive_loss(out.audio_image_logits)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
        last = sum(losses) / len(losses)
        if not math.isfinite(last):
            raise FloatingPointError(f"vl-audio: training loss became {last}")
    return last


def _options(args: argparse.Namespace) -> dict[str, Any]:
    opts = {k: getattr(args, k) for k in ("d_model", "num_layers", "num_heads", "num_audio_layers", "vocab_size",
                                           "batch_size", "lr", "epochs", "drop_image", "drop_audio",
                                           "max_train", "max_test")}  # fmt: skip
    if args.quick:
        opts.update(d_model=32, num_layers=1, num_heads=2, num_audio_layers=1, epochs=1, max_train=64, max_test=32)
    return opts


def run_vl_audio(args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    """Rows of ``gatelab repro vl-audio`` (module docstring)."""
    import torch

    from gatelab.core.harness import resolve_data_dir

    from ..data.tokenizer import train_bpe
    from ..models.vl_decoder import GatedVLDecoder

    if os.environ.get("GATELAB_NUM_THREADS"):
        torch.set_num_threads(int(os.environ["GATELAB_NUM_THREADS"]))
    opts = _options(args)
    data_dir = resolve_data_dir(args.data_dir)
    splits = load_spoken_shapes(data_dir, num_mels=40)
    train, test = splits["train"], splits["test"]
    if opts["max_train"]:
        train = SpokenSet(train.captions[: opts["max_train"]], train.images[: opts["max_train"]],
                          train.feats[: opts["max_train"]], train.image_of[: opts["max_train"]])  # fmt: skip
    if opts["max_test"]:
        test = SpokenSet(test.captions[: opts["max_test"]], test.images[: opts["max_test"]],
                         test.feats[: opts["max_test"]], test.image_of[: opts["max_test"]])  # fmt: skip
    header = json.loads((data_dir / "spoken_captions" / "speech.json").read_text())
    for seed in args.seeds:
        base = {"model": "vl-gated-decoder+audio", "dataset": "shapes-spoken", "split": "test", "seed": int(seed)}
        cfg = {**opts, "speech": {k: header[k] for k in ("voices", "speeds", "snrs", "synthesizer", "shapes")}}
        keys = [{**base, "variant": v} for v in ("all-streams", "blank-image")]
        if not any([args.should_run(k, cfg) for k in keys]):  # a list: both rows declare their config
            continue
        torch.manual_seed(seed)
        tok = train_bpe(train.captions, opts["vocab_size"])
        model = GatedVLDecoder(
            vocab_size=tok.get_vocab_size(), d_model=opts["d_model"], num_layers=opts["num_layers"],
            num_heads=opts["num_heads"], image_dim=train.images.shape[-1], max_image_tokens=train.images.shape[1],
            max_len=64, num_image_layers=1, audio_mels=40, num_audio_layers=opts["num_audio_layers"], dropout=0.1,
        )  # fmt: skip
        model.set_tokenizer(tok)
        loss = _train(model, train, opts, seed)
        ppl = {
            "ppl_all": _perplexity(model, test, image=True, audio=True),
            "ppl_noimage": _perplexity(model, test, image=False, audio=True),
            "ppl_noaudio": _perplexity(model, test, image=True, audio=False),
            "ppl_textonly": _perplexity(model, test, image=False, audio=False),
        }
        recall = _audio_image_recall(model, test)
        note = (f"{len(train.captions)} train / {len(test.captions)} test spoken captions; "
                f"last train loss {loss:.3f}; gate weights: mean over layers at the position predicting the word")  # fmt: skip
        for variant, blank in (("all-streams", False), ("blank-image", True)):
            gates = stream_gates_by_word_class(model, tok, test, blank_image=blank)
            row = {**base, "variant": variant, "config": json.dumps(cfg, sort_keys=True), "note": note}
            if variant == "all-streams":
                row.update(ppl, **{f"audio_image_{k}": 100.0 * v for k, v in recall.items()})
            for c in CLASSES:
                for st in STREAMS:
                    if c in gates:
                        row[f"gate_{st}_{c}"] = gates[c][st]
            yield row


#: ``gatelab repro vl-audio``
VL_AUDIO_TABLE = register_table(
    ReproTable(
        name="vl-audio",
        description=(
            "VL decoder + audio stream (GAU encoder, 3-stream token-wise gate) on espeak-ng spoken shapes captions: "
            "caption perplexity with each stream ablated, audio-image retrieval R@k (%), mean gate weight of each "
            "stream per word class (with the real image and with a blank one)"
        ),
        paper="issue 16 (no paper reference: the audio stream is a gatelab extension of Ganescu et al. 2025)",
        run="gatelab.multimodal.recipes.vl_audio:run_vl_audio",
        domain="multimodal",
        quick_table="vl-audio-quick",
        metrics=["ppl_all", "ppl_noimage", "ppl_noaudio", "ppl_textonly", "audio_image_r@1", "audio_image_r@5",
                 *[f"gate_{st}_{c}" for c in CLASSES for st in STREAMS]],
        options=[
            Option("--d-model", type=int, default=64),
            Option("--num-layers", type=int, default=2),
            Option("--num-heads", type=int, default=4),
            Option("--num-audio-layers", type=int, default=2),
            Option("--vocab-size", type=int, default=256 + 3 + 64, help="BPE vocabulary trained on the captions"),
            Option("--batch-size", type=int, default=32),
            Option("--lr", type=float, default=2e-3),
            Option("--epochs", type=int, default=8),
            Option("--drop-image", type=float, default=0.25, help="training rows without their image"),
            Option("--drop-audio", type=float, default=0.25, help="training rows without their audio"),
            Option("--max-train", type=int, default=None, help="first N training captions (default: all)"),
            Option("--max-test", type=int, default=None, help="first N test captions (default: all)"),
        ],
        default_seeds=(0, 1, 2),
    )
)  # fmt: skip
