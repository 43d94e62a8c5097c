"""Lightning data modules of the vision-language decoder: text corpus, shapes, COCO, BabyLM.

One :class:`VLDataModule` serves every source. Its batches are *homogeneous*: either captions
with their images (``{"input_ids", "attention_mask", "image"}``) or packed text blocks
(``{"input_ids", "attention_mask"}``, no image: the model's visual path is off). A
:class:`MixedBatchSampler` interleaves the two kinds at random, ``text_ratio`` text batches per
caption batch, so one model trains on text and on captions (the official code alternates whole
epochs of each; see the task's docstring).

Distributed training (DDP): the sampler shards every global batch (``batch_size`` per rank times
the number of ranks) over the ranks, so every rank yields the same number of batches; an
incomplete last batch is split over the ranks (sizes differ by at most one; a rank is given a
repeated sample only when the batch has fewer samples than there are ranks), see
:mod:`gatelab.core.harness.sampling`. Evaluation uses ``len(text) // global batch`` full text
batches. The order is a pure function of ``(seed, epoch)``.

The tokenizer is loaded from ``tokenizer`` (a ``tokenizers`` JSON file) or trained on the
training text and training captions (:func:`gatelab.multimodal.data.tokenizer.train_bpe`); the task
attaches it to the model so it is saved in the checkpoint.

Registered factories (``data.name`` in configs): ``vl-text``, ``vl-shapes``, ``vl-coco``,
``vl-babylm``, ``vl-spoken``. Each takes ``verify`` (default true): check the sha256 of the real
data files (false for fixtures in the same layout).

Spoken captions (``vl-spoken``, issue 16): every caption batch also carries the caption's speech
(``"audio"`` feature frames ``[B, F, num_mels]`` zero-padded, ``"audio_lengths"`` ``[B]``); in
training a :class:`StreamDropout` collate removes, per row, the image (probability
``drop_image``) or the audio (``drop_audio``), never both (``"image_mask"`` / ``"audio_mask"``
``[B]`` bool, the decoder's gate then drops that stream), and applies SpecAugment to the audio.
Its random draws come from the global RNGs inside the training loader, i.e. the harness's data
stream (:mod:`gatelab.core.harness.resume`): a function of ``(seed, epoch)``, so a resumed run
draws the same masks.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset

from gatelab.core.config import NonNegativeInt, PositiveInt, UnitInterval
from gatelab.core.harness import locate
from gatelab.core.harness.sampling import (
    Batch,
    ShardedBatchSampler,
    batch_loader,
    epoch_permutation,
    replicas,
)

from .audio import AudioFeatures, SpecAugment
from .captions import COCO_MINI, load_image, read_babylm, read_caption_manifest, read_coco_captions
from .shapes import make_shapes, patchify
from .text import TEXT_CORPORA, pack_blocks, read_corpus
from .tokenizer import PAD_ID, load_tokenizer, train_bpe

__all__ = [
    "CaptionSet",
    "MixedBatchSampler",
    "SpokenCaptionSet",
    "SpokenVLDataModule",
    "StreamDropout",
    "VLDataModule",
    "collate",
    "pixel_preprocessing",
    "vl_babylm_datamodule",
    "vl_coco_datamodule",
    "vl_shapes_datamodule",
    "vl_spoken_datamodule",
    "vl_text_datamodule",
]

SPLITS = ("train", "val", "test")


@dataclasses.dataclass
class CaptionSet:
    """Captions of one split and their images: ``images[caption_image[i]]`` belongs to ``captions[i]``.

    ``images`` is ``[M, D]`` (global vectors), ``[M, N, D]`` (patch tokens) or ``[M, C, H, W]``
    (pixels for a timm backbone).
    """

    captions: list[str]
    caption_image: torch.Tensor
    images: torch.Tensor

    def __post_init__(self) -> None:
        self.caption_image = torch.as_tensor(self.caption_image, dtype=torch.long)
        if len(self.captions) != len(self.caption_image):
            raise ValueError(
                f"CaptionSet: {len(self.captions)} captions but {len(self.caption_image)} image indices"
            )
        if len(self.captions) and (
            int(self.caption_image.min()) < 0 or int(self.caption_image.max()) >= len(self.images)
        ):
            raise ValueError(f"CaptionSet: image indices outside [0, {len(self.images)})")

    def subset_images(self, image_ids: Sequence[int]) -> CaptionSet:
        """The captions of the given images (re-indexed), in image order."""
        keep = {int(i): k for k, i in enumerate(image_ids)}
        caps, owner = [], []
        for c, i in zip(self.captions, self.caption_image.tolist()):
            if i in keep:
                caps.append(c)
                owner.append(keep[i])
        return CaptionSet(caps, torch.tensor(owner, dtype=torch.long), self.images[list(image_ids)])


@dataclasses.dataclass
class SpokenCaptionSet(CaptionSet):
    """A :class:`CaptionSet` whose captions were also spoken: ``audio[i]`` are the feature frames
    ``[F_i, num_mels]`` of caption ``i``."""

    audio: list[torch.Tensor] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.audio) != len(self.captions):
            raise ValueError(f"SpokenCaptionSet: {len(self.captions)} captions but {len(self.audio)} audio clips")
        widths = {int(a.shape[-1]) for a in self.audio}
        if any(a.dim() != 2 or a.shape[0] < 1 for a in self.audio) or len(widths) > 1:
            bad = next(
                (i for i, a in enumerate(self.audio) if a.dim() != 2 or a.shape[0] < 1 or a.shape[-1] != max(widths)),
                0,
            )
            raise ValueError(
                f"SpokenCaptionSet: audio[{bad}] has shape {tuple(self.audio[bad].shape)}; every clip must be "
                f"[frames >= 1, num_mels] with one num_mels (got {sorted(widths)})"
            )


class _Captions(Dataset):
    def __init__(self, ids: list[torch.Tensor], cs: CaptionSet) -> None:
        self.ids, self.cs = ids, cs

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        item = {"ids": self.ids[i], "image": self.cs.images[self.cs.caption_image[i]]}
        if isinstance(self.cs, SpokenCaptionSet):
            item["audio"] = self.cs.audio[i]
        return item


class _Blocks(Dataset):
    def __init__(self, blocks: torch.Tensor) -> None:
        self.blocks = blocks

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"ids": self.blocks[i]}


def collate(items: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Right-pad token ids with ``[PAD]``; stack images; zero-pad spoken captions' feature frames
    (``"audio"`` ``[B, F_max, M]`` and ``"audio_lengths"`` ``[B]``). A batch must be all captions
    or all text."""
    with_image = ["image" in it for it in items]
    if any(with_image) and not all(with_image):
        raise ValueError("collate: a batch mixes captions and text blocks; use MixedBatchSampler")
    L_ = max(len(it["ids"]) for it in items)
    ids = torch.full((len(items), L_), PAD_ID, dtype=torch.long)
    lengths = torch.tensor([len(it["ids"]) for it in items])
    for i, it in enumerate(items):
        ids[i, : len(it["ids"])] = it["ids"]
    out = {"input_ids": ids, "attention_mask": torch.arange(L_)[None, :] < lengths[:, None]}
    if with_image[0]:
        out["image"] = torch.stack([it["image"] for it in items])
    if "audio" in items[0]:
        frames = torch.tensor([it["audio"].shape[0] for it in items])
        audio = items[0]["audio"].new_zeros(len(items), int(frames.max()), items[0]["audio"].shape[1])
        for i, it in enumerate(items):
            audio[i, : it["audio"].shape[0]] = it["audio"]
        out["audio"], out["audio_lengths"] = audio, frames
    return out


class StreamDropout:
    """The training collate of spoken captions: :func:`collate`, then per row one uniform draw
    ``u`` (global torch RNG: the loader's data stream): the image is dropped when
    ``u < drop_image``, the audio when ``drop_image <= u < drop_image + drop_audio`` (never both);
    ``"image_mask"`` / ``"audio_mask"`` ``[B]`` bool mark the kept streams. Then SpecAugment
    (``spec_augment``, training mode) on the audio frames within each row's length.

    Only the gate loses a dropped stream: the batch keeps its image and audio, so the contrastive
    losses still see every pair."""

    def __init__(self, drop_image: float, drop_audio: float, spec_augment: SpecAugment | None) -> None:
        if not (0.0 <= drop_image and 0.0 <= drop_audio and drop_image + drop_audio <= 1.0):
            raise ValueError(
                f"StreamDropout: need drop_image, drop_audio >= 0 and drop_image + drop_audio <= 1, got "
                f"{drop_image}, {drop_audio}"
            )
        self.drop_image, self.drop_audio = float(drop_image), float(drop_audio)
        self.spec_augment = spec_augment.train() if spec_augment is not None else None

    def __call__(self, items: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        out = collate(items)
        if "audio" not in out:
            return out
        u = torch.rand(len(items))
        out["image_mask"] = u >= self.drop_image
        out["audio_mask"] = (u < self.drop_image) | (u >= self.drop_image + self.drop_audio)
        if self.spec_augment is not None:
            out["audio"] = self.spec_augment(out["audio"], out["audio_lengths"])
        return out


class MixedBatchSampler(ShardedBatchSampler):
    """Homogeneous batches over ``ConcatDataset([captions, text])``, interleaved at random, sharded over DDP ranks.

    One epoch is a list of *global* batches of ``G = batch_size * num_replicas`` indices (one
    optimizer step over all ranks); rank ``r`` yields the ``r``-th part of each
    (:func:`gatelab.core.harness.sampling.shard_batch`), so every rank yields the same number of
    batches and a batch never mixes captions and text on any rank. An epoch holds:

    * every caption once (indices ``[0, n_captions)``, shuffled when ``shuffle``), cut into global
      batches of ``G`` (the last may be smaller: split over the ranks, or dropped with
      ``drop_last``);
    * ``round(text_ratio * n_caption_batches)`` full global text batches (indices
      ``n_captions + j``) taken in order from an endless stream of text-block permutations
      (cycle ``c`` is a permutation drawn from ``(seed, c)``; epoch ``e`` starts at stream position
      ``e * n_text_batches * G``), so the whole corpus is eventually seen. With no captions, every
      text block is used once per epoch instead.

    The order of the batches is shuffled too. Everything is a pure function of ``(seed, epoch)``
    (no global RNG; Lightning calls :meth:`set_epoch` on the loader's sampler every epoch), so a
    resumed run sees the batches of an uninterrupted one. Without ``shuffle`` (evaluation) every
    epoch is the same, unshuffled, and the text stream starts at position 0.

    Args:
        n_captions, n_text: sizes of the two parts of the ``ConcatDataset``.
        batch_size: samples per rank per step.
        text_ratio: text batches per caption batch (ignored without captions).
        shuffle, drop_last, seed, num_replicas, rank: see
            :class:`~gatelab.core.harness.sampling.ShardedBatchSampler`.
    """

    def __init__(
        self,
        n_captions: int,
        n_text: int,
        batch_size: int,
        *,
        text_ratio: float = 1.0,
        shuffle: bool = True,
        drop_last: bool = False,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
    ) -> None:
        if isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"MixedBatchSampler: batch_size must be >= 1, got {batch_size}")
        if n_captions < 0 or n_text < 0:
            raise ValueError(f"MixedBatchSampler: sizes must be >= 0, got {n_captions} captions, {n_text} text")
        if n_captions == 0 and n_text == 0:
            raise ValueError("MixedBatchSampler: no captions and no text")
        if text_ratio < 0:
            raise ValueError(f"MixedBatchSampler: text_ratio must be >= 0, got {text_ratio}")
        super().__init__(
            batch_size, num_replicas=num_replicas, rank=rank, seed=seed, shuffle=shuffle, drop_last=drop_last
        )
        self.n_captions, self.n_text, self.text_ratio = int(n_captions), int(n_text), float(text_ratio)

    @staticmethod
    def _sizes(n: int, g: int) -> list[int]:
        full, rest = divmod(n, g)
        return [g] * full + ([rest] if rest else [])

    def _n_caption_batches(self) -> int:
        return sum(1 for m in self._sizes(self.n_captions, self.global_batch_size) if self.keep(m))

    def _n_text_batches(self) -> int:
        if self.n_text == 0:
            return 0
        if self.n_captions == 0:
            return sum(1 for m in self._sizes(self.n_text, self.global_batch_size) if self.keep(m))
        return round(self.text_ratio * self._n_caption_batches())

    def global_batch_sizes(self) -> list[int]:
        g = self.global_batch_size
        sizes = self._sizes(self.n_captions, g)
        if self.n_captions == 0:
            return sizes + self._sizes(self.n_text, g)
        return sizes + [g] * self._n_text_batches()

    def _text_stream(self, start: int, count: int) -> list[int]:
        """Positions ``[start, start + count)`` of the endless stream of text-block permutations."""
        out: list[int] = []
        pos = start
        while len(out) < count:
            cycle, offset = divmod(pos, self.n_text)
            order = (
                epoch_permutation(self.n_text, self.seed, cycle, _TEXT_CYCLES)
                if self.shuffle
                else np.arange(self.n_text)
            )
            take = min(count - len(out), self.n_text - offset)
            out.extend(order[offset : offset + take].tolist())
            pos += take
        return out

    def global_batches(self, epoch: int) -> list[Batch]:
        g = self.global_batch_size

        def chunks(idx: list[int]) -> list[Batch]:
            return [idx[i : i + g] for i in range(0, len(idx), g)]

        def order(n: int, stream: int) -> list[int]:
            return epoch_permutation(n, self.seed, epoch, stream).tolist() if self.shuffle else list(range(n))

        batches = chunks(order(self.n_captions, _CAPTIONS))
        nt = self._n_text_batches()
        if nt:
            if self.n_captions == 0:
                text_batches = chunks(order(self.n_text, _TEXT_EPOCH))
            else:
                start = epoch * nt * g if self.shuffle else 0
                text_batches = chunks(self._text_stream(start, nt * g))
            batches += [[self.n_captions + j for j in b] for b in text_batches]
        if self.shuffle:
            perm = epoch_permutation(len(batches), self.seed, epoch, _BATCH_ORDER).tolist()
            batches = [batches[i] for i in perm]
        return batches


# streams of epoch_permutation (independent draws within one epoch)
_CAPTIONS, _TEXT_EPOCH, _BATCH_ORDER, _TEXT_CYCLES = 0, 1, 2, 3


class VLDataModule(L.LightningDataModule):
    """Captions and/or packed text for the vision-language decoder (see the module docstring).

    Args:
        captions: ``{"train": CaptionSet, "val": ..., "test": ...}`` or ``None`` (text only).
        text_docs: ``{"train": [...], "val": [...], "test": [...]}`` documents or ``None``.
        tokenizer: path of a saved tokenizer; ``None`` trains one on the training text and captions.
        vocab_size: BPE vocabulary size when training one.
        save_tokenizer: write the (loaded or trained) tokenizer here.
        seq_len: text block length (and the longest caption allowed).
        batch_size: batch size of both kinds of batches (per rank under DDP).
        text_ratio: text batches per caption batch in training (ignored without captions).
        truncate_captions: cut captions longer than ``seq_len`` (counted and warned); otherwise a
            long caption is an error.
        image_info: what :meth:`model_kwargs` reports about images (``image_dim``, ``max_image_tokens``).
        image_preprocessing: how an image becomes the model's image input (see :meth:`preprocessing`;
            the factories fill it), ``None`` for text only.
        num_workers: DataLoader workers.
        seed: shuffling seed.
    """

    def __init__(
        self,
        *,
        captions: Mapping[str, CaptionSet] | None,
        text_docs: Mapping[str, list[str]] | None,
        tokenizer: str | os.PathLike[str] | None = None,
        vocab_size: int = 4096,
        save_tokenizer: str | os.PathLike[str] | None = None,
        seq_len: int = 64,
        batch_size: int = 32,
        text_ratio: float = 1.0,
        truncate_captions: bool = False,
        image_info: Mapping[str, Any] | None = None,
        image_preprocessing: Mapping[str, Any] | None = None,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if captions is None and text_docs is None:
            raise ValueError("VLDataModule: give captions, text_docs or both")
        for name, part in (("captions", captions), ("text_docs", text_docs)):
            if part is not None and set(part) != set(SPLITS):
                raise ValueError(f"VLDataModule: {name} must have the splits {SPLITS}, got {sorted(part)}")
        self.captions = dict(captions) if captions is not None else None
        self.text_docs = dict(text_docs) if text_docs is not None else None
        self.seq_len, self.batch_size, self.text_ratio = seq_len, batch_size, text_ratio
        self.num_workers, self.seed = num_workers, seed
        self.truncate_captions = truncate_captions
        self.image_info = dict(image_info or {})
        self.image_preprocessing = dict(image_preprocessing) if image_preprocessing is not None else None
        if tokenizer is not None:
            self.tokenizer = load_tokenizer(tokenizer)
        else:
            corpus: list[str] = []
            if self.text_docs is not None:
                corpus += self.text_docs["train"]
            if self.captions is not None:
                corpus += self.captions["train"].captions
            self.tokenizer = train_bpe(corpus, vocab_size)
        if save_tokenizer is not None:
            Path(save_tokenizer).parent.mkdir(parents=True, exist_ok=True)
            self.tokenizer.save(str(save_tokenizer))
        self._datasets: dict[str, tuple[Dataset | None, Dataset | None]] = {}
        self.truncated: dict[str, int] = {}

    # ---- sizes for the model -------------------------------------------------------------------

    def model_kwargs(self) -> dict[str, Any]:
        """``vocab_size``, ``max_len`` and the image sizes the model needs."""
        kw: dict[str, Any] = {"vocab_size": self.tokenizer.get_vocab_size(), "max_len": self.seq_len}
        kw.update(self.image_info)
        return kw

    def preprocessing(self) -> dict[str, Any] | None:
        """What the model needs to caption new images (stored in every task checkpoint, written to
        ``preprocessing.json`` by ``gatelab export``, read by :mod:`gatelab.multimodal.predict`);
        the tokenizer travels with the model itself (``extra_state.json``).

        ``{"kind": "vl", "format": 1, "max_len": seq_len, "image": {...}}`` with ``image``:

        * pixels (``vl-shapes``, ``vl-coco``): ``{"source": "pixels", "size": S, "resize":
          "center-crop-bicubic", "channels": 3, "mean": [0.5] * 3, "std": [0.5] * 3, "layout":
          "patches" | "pixels", "patch": p}``: an RGB image, centre square crop and bicubic resize
          to ``S x S`` (:func:`~.captions.load_image`), ``(x - mean) / std`` on the [0, 1] scale,
          then ``p x p`` patch tokens (:func:`~.shapes.patchify`) or the pixels as they are;
        * features (``vl-babylm``): ``{"source": "features", "image_dim": D, "tokens": N | None}``:
          precomputed embeddings ``[D]`` (or ``[N, D]`` patch tokens) per image.

        ``None`` for a text-only module (``vl-text``): there is no image side to describe.
        """
        if self.image_preprocessing is None:
            return None
        return {"kind": "vl", "format": 1, "max_len": self.seq_len, "image": dict(self.image_preprocessing)}

    # ---- datasets ------------------------------------------------------------------------------

    def _caption_ids(self, split: str) -> list[torch.Tensor]:
        cs = self.captions[split]
        encs = self.tokenizer.encode_batch(cs.captions)
        ids, cut = [], 0
        for i, e in enumerate(encs):
            if len(e.ids) > self.seq_len:
                if not self.truncate_captions:
                    raise ValueError(
                        f"{split} caption {i} has {len(e.ids)} tokens > seq_len={self.seq_len} "
                        f"(set truncate_captions=true to cut): {cs.captions[i][:80]!r}"
                    )
                cut += 1
                ids.append(torch.tensor(e.ids[: self.seq_len], dtype=torch.long))
            else:
                ids.append(torch.tensor(e.ids, dtype=torch.long))
        if cut:
            warnings.warn(f"{split}: {cut} captions truncated to {self.seq_len} tokens", stacklevel=2)
        self.truncated[split] = cut
        return ids

    def _text_blocks(self, split: str) -> torch.Tensor:
        docs = self.text_docs[split]
        encs = self.tokenizer.encode_batch(docs)
        return pack_blocks([e.ids for e in encs], self.seq_len)

    def setup(self, stage: str | None = None) -> None:
        for split in SPLITS:
            if split in self._datasets:
                continue
            cap = _Captions(self._caption_ids(split), self.captions[split]) if self.captions else None
            txt = _Blocks(self._text_blocks(split)) if self.text_docs else None
            if txt is not None and len(txt) == 0:
                txt = None
            self._datasets[split] = (cap, txt)

    def caption_ids(self, split: str) -> list[torch.Tensor]:
        """Token ids (``[BOS] ... [EOS]``) of the split's captions (after :meth:`setup`)."""
        self.setup()
        cap = self._datasets[split][0]
        if cap is None:
            raise ValueError("this data module has no captions")
        return cap.ids

    def text_blocks(self, split: str) -> torch.Tensor:
        """Packed text blocks ``[n, seq_len]`` of the split (after :meth:`setup`)."""
        self.setup()
        txt = self._datasets[split][1]
        return txt.blocks if txt is not None else torch.empty(0, self.seq_len, dtype=torch.long)

    def _loader(self, split: str) -> DataLoader:
        self.setup()
        cap, txt = self._datasets[split]
        parts = [d for d in (cap, txt) if d is not None]
        if not parts:
            n_docs = len(self.text_docs[split]) if self.text_docs else 0
            raise ValueError(
                f"no {split} data: {n_docs} {split} documents make no block of seq_len={self.seq_len} "
                "tokens; raise the split's fraction (val_fraction / test_fraction) or lower seq_len"
            )
        train = split == "train"
        num_replicas, rank = replicas(self.trainer)
        sampler = MixedBatchSampler(
            len(cap) if cap is not None else 0,
            len(txt) if txt is not None else 0,
            self.batch_size,
            text_ratio=self.text_ratio if train else _eval_ratio(cap, txt, self.batch_size * num_replicas),
            shuffle=train,
            seed=self.seed,
            num_replicas=num_replicas,
            rank=rank,
        )
        return batch_loader(
            ConcatDataset(parts), sampler, collate_fn=self.collate_fn(split), num_workers=self.num_workers
        )

    def collate_fn(self, split: str) -> Any:
        """The collate function of ``split``'s loader (:func:`collate`)."""
        return collate

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")


def _eval_ratio(cap: Dataset | None, txt: Dataset | None, global_batch: int) -> float:
    """Text ratio that makes an evaluation epoch use every held-out text block once, in full global
    batches (``len(txt) // global_batch`` of them; the remainder is not evaluated)."""
    if cap is None or txt is None or len(cap) == 0:
        return 0.0
    n_cap = -(-len(cap) // global_batch)
    return (len(txt) // global_batch) / n_cap


# --------------------------------------------------------------------------- factories


def _split_docs(docs: list[str], val_fraction: float, test_fraction: float) -> dict[str, list[str]]:
    """Deterministic split: every k-th document goes to val/test (spread over all sources)."""
    for name, f in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= f < 0.5:
            raise ValueError(f"{name} must be in [0, 0.5), got {f}")
    out: dict[str, list[str]] = {s: [] for s in SPLITS}
    acc_v = acc_t = 0.0
    for d in docs:
        acc_v += val_fraction
        acc_t += test_fraction
        if acc_v >= 1.0:
            acc_v -= 1.0
            out["val"].append(d)
        elif acc_t >= 1.0:
            acc_t -= 1.0
            out["test"].append(d)
        else:
            out["train"].append(d)
    return out


def _load_text(
    data_dir: Path,
    files: Sequence[str] | None,
    max_words: int | None,
    val_fraction: float,
    test_fraction: float,
    verify: bool = True,
) -> dict[str, list[str]]:
    root = locate(TEXT_CORPORA, data_dir, verify=verify)
    return _split_docs(read_corpus(root, files, max_words=max_words), val_fraction, test_fraction)


def vl_text_datamodule(
    data_dir: Path,
    *,
    tokenizer: str | None = None,
    vocab_size: PositiveInt = 4096,
    save_tokenizer: str | None = None,
    files: list[str] | None = None,
    max_words: PositiveInt | None = None,
    val_fraction: UnitInterval = 0.01,
    test_fraction: UnitInterval = 0.01,
    seq_len: PositiveInt = 64,
    batch_size: PositiveInt = 32,
    num_workers: NonNegativeInt = 0,
    seed: int = 0,
    verify: bool = True,
) -> VLDataModule:
    """Text-only pre-training on ``<data dir>/text_corpora`` (packed ``seq_len`` blocks)."""
    docs = _load_text(data_dir, files, max_words, val_fraction, test_fraction, verify)
    return VLDataModule(
        captions=None,
        text_docs=docs,
        tokenizer=tokenizer,
        vocab_size=vocab_size,
        save_tokenizer=save_tokenizer,
        seq_len=seq_len,
        batch_size=batch_size,
        num_workers=num_workers,
        seed=seed,
    )


#: the [0, 1] -> [-1, 1] normalisation of every pixel source (:func:`_image_features`)
PIXEL_MEAN, PIXEL_STD = 0.5, 0.5


def pixel_preprocessing(size: int, image_format: str, patch: int, channels: int = 3) -> dict[str, Any]:
    """The ``image`` entry of :meth:`VLDataModule.preprocessing` for pixel sources."""
    return {
        "source": "pixels",
        "size": int(size),
        "resize": "center-crop-bicubic",
        "channels": int(channels),
        "mean": [PIXEL_MEAN] * channels,
        "std": [PIXEL_STD] * channels,
        "layout": image_format,
        "patch": int(patch),
    }


def _image_features(
    images: torch.Tensor, image_format: str, patch: int
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Normalise ``[M, 3, H, W]`` pixels to [-1, 1] and convert them to the model's input format."""
    x = images.sub(PIXEL_MEAN).div_(PIXEL_STD)
    if image_format == "patches":
        tokens = patchify(x, patch)
        return tokens, {"image_dim": tokens.shape[-1], "max_image_tokens": tokens.shape[1]}
    if image_format == "pixels":
        return x, {"in_channels": x.shape[1]}
    raise ValueError(f"image_format must be 'patches' or 'pixels', got {image_format!r}")


def _caption_module(
    data_dir: Path,
    captions: Mapping[str, CaptionSet],
    image_info: Mapping[str, Any],
    *,
    text_ratio: float,
    text_files: list[str] | None,
    text_max_words: int | None,
    verify: bool,
    **options: Any,
) -> VLDataModule:
    """The caption factories' common tail: a :class:`VLDataModule` over ``captions`` (split ->
    :class:`CaptionSet`), mixed with ``<data dir>/text_corpora`` documents (1% held out for
    validation, 1% for test) only when ``text_ratio > 0``; ``options`` go to :class:`VLDataModule`."""
    text = _load_text(data_dir, text_files, text_max_words, 0.01, 0.01, verify) if text_ratio > 0 else None
    return VLDataModule(
        captions=captions, text_docs=text, text_ratio=text_ratio, image_info=image_info, **options
    )


def vl_shapes_datamodule(
    data_dir: Path,
    *,
    tokenizer: str | None = None,
    vocab_size: PositiveInt = 4096,
    save_tokenizer: str | None = None,
    n_train: PositiveInt = 4000,
    n_val: NonNegativeInt = 200,
    n_test: NonNegativeInt = 200,
    image_size: PositiveInt = 32,
    patch: PositiveInt = 8,
    image_format: str = "patches",
    captions_per_image: PositiveInt = 1,
    two_object_prob: UnitInterval = 0.5,
    text_ratio: UnitInterval = 0.0,
    text_files: list[str] | None = None,
    text_max_words: PositiveInt | None = None,
    seq_len: PositiveInt = 64,
    batch_size: PositiveInt = 32,
    num_workers: NonNegativeInt = 0,
    seed: int = 0,
    verify: bool = True,
) -> VLDataModule:
    """Generated shapes captions (:mod:`gatelab.multimodal.data.shapes`), optionally mixed with text.

    The three splits are generated with different seeds (``seed``, ``seed + 1``, ``seed + 2``).
    ``text_ratio > 0`` mixes text batches from ``<data dir>/text_corpora`` into training.
    """
    captions = {}
    info: dict[str, Any] = {}
    for k, (split, n) in enumerate((("train", n_train), ("val", n_val), ("test", n_test))):
        d = make_shapes(
            n,
            size=image_size,
            captions_per_image=captions_per_image,
            two_object_prob=two_object_prob,
            seed=seed * 1000 + k,
        )
        feats, info = _image_features(d.images, image_format, patch)
        captions[split] = CaptionSet(d.captions, torch.tensor(d.caption_image), feats)
    return _caption_module(
        data_dir, captions, info, text_ratio=text_ratio, text_files=text_files, text_max_words=text_max_words,
        verify=verify, tokenizer=tokenizer, vocab_size=vocab_size, save_tokenizer=save_tokenizer,
        seq_len=seq_len, batch_size=batch_size, num_workers=num_workers, seed=seed,
        image_preprocessing=pixel_preprocessing(image_size, image_format, patch),
    )


def vl_coco_datamodule(
    data_dir: Path,
    *,
    tokenizer: str | None = None,
    vocab_size: PositiveInt = 4096,
    save_tokenizer: str | None = None,
    image_size: PositiveInt = 64,
    patch: PositiveInt = 16,
    image_format: str = "patches",
    val_images: NonNegativeInt = 39,
    truncate_captions: bool = False,
    text_ratio: UnitInterval = 0.0,
    text_files: list[str] | None = None,
    text_max_words: PositiveInt | None = None,
    seq_len: PositiveInt = 64,
    batch_size: PositiveInt = 32,
    num_workers: NonNegativeInt = 0,
    seed: int = 0,
    verify: bool = True,
) -> VLDataModule:
    """COCO-mini captions: train2017 (80 images x 5 captions) for training; val2017 (79 images)
    split by image id into ``val_images`` for validation and the rest for test."""
    root = locate(COCO_MINI, data_dir, verify=verify)
    train = read_coco_captions(root / "annotations/captions_train2017.json", root / "train2017")
    held = read_coco_captions(root / "annotations/captions_val2017.json", root / "val2017")
    if not 0 < val_images < len(held):
        raise ValueError(f"val_images must be in (0, {len(held)}), got {val_images}")
    groups = {"train": train, "val": held[:val_images], "test": held[val_images:]}
    captions = {}
    info: dict[str, Any] = {}
    for split, imgs in groups.items():
        pixels = torch.stack([load_image(im.path, image_size) for im in imgs])
        feats, info = _image_features(pixels, image_format, patch)
        caps = [c for im in imgs for c in im.captions]
        owner = [k for k, im in enumerate(imgs) for _ in im.captions]
        captions[split] = CaptionSet(caps, torch.tensor(owner), feats)
    return _caption_module(
        data_dir, captions, info, text_ratio=text_ratio, text_files=text_files, text_max_words=text_max_words,
        verify=verify, tokenizer=tokenizer, vocab_size=vocab_size, save_tokenizer=save_tokenizer,
        seq_len=seq_len, batch_size=batch_size, num_workers=num_workers, seed=seed, truncate_captions=truncate_captions,
        image_preprocessing=pixel_preprocessing(image_size, image_format, patch),
    )


def vl_babylm_datamodule(
    data_dir: Path,
    *,
    captions_json: str | None = None,
    embedding_files: list[str] | None = None,
    manifest: str | None = None,
    splits: tuple[float, float, float] = (0.8, 0.1, 0.1),
    tokenizer: str | None = None,
    vocab_size: PositiveInt = 4096,
    save_tokenizer: str | None = None,
    truncate_captions: bool = True,
    text_ratio: UnitInterval = 0.0,
    text_files: list[str] | None = None,
    text_max_words: PositiveInt | None = None,
    seq_len: PositiveInt = 128,
    batch_size: PositiveInt = 32,
    num_workers: NonNegativeInt = 0,
    seed: int = 0,
    verify: bool = True,
) -> VLDataModule:
    """Image-caption pairs with precomputed embeddings in the BabyLM multimodal layout
    (``captions_json`` + ``embedding_files``) or a JSONL ``manifest`` (see
    :mod:`gatelab.multimodal.data.captions`). Relative paths are resolved against
    ``<data dir>/babylm_multimodal``. Pairs are split at random (``seed``) by ``splits``, as the
    official code (0.8/0.1/0.1); captions longer than ``seq_len`` are truncated as the official
    code does (``truncate_captions``)."""
    base = Path(data_dir) / "babylm_multimodal"

    def res(p: str) -> Path:
        q = Path(p)
        return q if q.is_absolute() else base / q

    if manifest is not None and (captions_json is not None or embedding_files is not None):
        raise ValueError("give either manifest or captions_json + embedding_files, not both")
    if manifest is not None:
        caps, emb = read_caption_manifest(res(manifest))
    elif captions_json is not None and embedding_files:
        caps, emb = read_babylm(res(captions_json), [res(f) for f in embedding_files])
    else:
        raise ValueError("vl-babylm needs manifest, or captions_json and embedding_files")
    if len(splits) != 3 or abs(sum(splits) - 1.0) > 1e-6 or min(splits) < 0:
        raise ValueError(f"splits must be three fractions summing to 1, got {splits}")
    order = torch.randperm(len(caps), generator=torch.Generator().manual_seed(seed)).tolist()
    n_train = int(len(caps) * splits[0])
    n_val = int(len(caps) * splits[1])
    parts = {
        "train": order[:n_train],
        "val": order[n_train : n_train + n_val],
        "test": order[n_train + n_val :],
    }
    captions = {
        s: CaptionSet([caps[i] for i in idx], torch.arange(len(idx)), emb[idx]) for s, idx in parts.items()
    }
    info = {"image_dim": emb.shape[-1]}
    if emb.dim() == 3:
        info["max_image_tokens"] = emb.shape[1]
    prep = {"source": "features", "image_dim": int(emb.shape[-1]), "tokens": int(emb.shape[1]) if emb.dim() == 3 else None}
    return _caption_module(
        data_dir, captions, info, text_ratio=text_ratio, text_files=text_files, text_max_words=text_max_words,
        verify=verify, tokenizer=tokenizer, vocab_size=vocab_size, save_tokenizer=save_tokenizer,
        seq_len=seq_len, batch_size=batch_size, num_workers=num_workers, seed=seed, truncate_captions=truncate_captions,
        image_preprocessing=prep,
    )


class SpokenVLDataModule(VLDataModule):
    """A :class:`VLDataModule` over :class:`SpokenCaptionSet` captions (module docstring, "Spoken
    captions"): batches carry the audio; training batches go through :class:`StreamDropout`.

    Args:
        drop_image, drop_audio: per-row stream dropout probabilities in training.
        spec_augment: SpecAugment's ``(freq_mask_param, time_mask_param)`` in training, or ``None``.
        audio_info: what :meth:`model_kwargs` and :meth:`preprocessing` report about the audio
            (``audio_mels``; ``sample_rate``, ``kind``).
        **kwargs: :class:`VLDataModule`'s (``captions`` must be spoken).
    """

    def __init__(
        self,
        *,
        drop_image: float = 0.25,
        drop_audio: float = 0.25,
        spec_augment: tuple[int, int] | None = (6, 15),
        audio_info: Mapping[str, Any],
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        bad = [s for s, cs in (self.captions or {}).items() if not isinstance(cs, SpokenCaptionSet)]
        if self.captions is None or bad:
            raise ValueError(f"SpokenVLDataModule: every split needs SpokenCaptionSet captions (not: {bad})")
        self.train_collate = StreamDropout(
            drop_image, drop_audio, SpecAugment(*spec_augment) if spec_augment is not None else None
        )
        self.audio_info = dict(audio_info)

    def collate_fn(self, split: str) -> Any:
        return self.train_collate if split == "train" else collate

    def model_kwargs(self) -> dict[str, Any]:
        """:meth:`VLDataModule.model_kwargs` plus ``audio_mels``."""
        return {**super().model_kwargs(), "audio_mels": int(self.audio_info["num_mels"])}

    def preprocessing(self) -> dict[str, Any] | None:
        """:meth:`VLDataModule.preprocessing` plus ``"audio": {"sample_rate", "kind", "num_mels",
        "win_ms", "hop_ms", "cmvn"}`` (:class:`~gatelab.multimodal.data.audio.AudioFeatures`)."""
        out = super().preprocessing()
        if out is not None:
            out["audio"] = dict(self.audio_info)
        return out


def vl_spoken_datamodule(
    data_dir: Path,
    *,
    source: str = "shapes",
    speech_dir: str | None = None,
    num_mels: PositiveInt = 40,
    features: str = "logmel",
    drop_image: UnitInterval = 0.25,
    drop_audio: UnitInterval = 0.25,
    spec_augment: bool = True,
    max_train: PositiveInt | None = None,
    max_eval: PositiveInt | None = None,
    patch: PositiveInt | None = None,
    coco_image_size: PositiveInt = 64,
    val_images: PositiveInt = 39,
    tokenizer: str | None = None,
    vocab_size: PositiveInt = 4096,
    save_tokenizer: str | None = None,
    truncate_captions: bool = False,
    seq_len: PositiveInt = 64,
    batch_size: PositiveInt = 32,
    num_workers: NonNegativeInt = 0,
    seed: int = 0,
    verify: bool = True,
) -> SpokenVLDataModule:
    """Spoken captions (``gatelab prepare spoken-captions``) with their images, for the decoder
    with an audio stream (``audio_mels`` is passed to the model).

    Args:
        source: ``"shapes"`` (images regenerated from the manifest's parameters, the manifest's
            train/val/test) or ``"coco"`` (COCO-mini from ``<data dir>/coco_mini``: train2017 for
            training, val2017 split by image id, the first ``val_images`` for validation); see
            :func:`~gatelab.multimodal.data.speech.read_spoken_splits`.
        speech_dir: the folder holding ``spoken_captions/`` (default: the data directory).
        num_mels, features: :class:`~gatelab.multimodal.data.audio.AudioFeatures` (``logmel`` /
            ``fbank``, 25 ms / 10 ms, per-utterance CMVN).
        drop_image, drop_audio, spec_augment: training-time stream dropout and SpecAugment
            (``freq_mask_param=6``, ``time_mask_param=15``), see :class:`StreamDropout`.
        max_train, max_eval: the first N captions of training / of each held-out split.
        patch: patch size of the image tokens (default 8 for shapes' 32-pixel images, 16 for
            COCO-mini at ``coco_image_size``).
        Others as :func:`vl_shapes_datamodule` (no text mixing).
    """
    from .speech import SPEECH_SUBDIR, read_spoken_splits, spoken_header

    if features not in ("logmel", "fbank"):
        raise ValueError(f"data.kwargs.features must be 'logmel' or 'fbank', got {features!r}")
    if source not in ("shapes", "coco"):
        raise ValueError(f"data.kwargs.source must be 'shapes' or 'coco', got {source!r}")
    speech_root = (Path(speech_dir) if speech_dir is not None else Path(data_dir)) / SPEECH_SUBDIR
    rate = int(spoken_header(speech_root, source)["sample_rate"])  # errors first: how to prepare them
    feat = AudioFeatures(rate, kind=features, num_mels=num_mels)
    coco_root = locate(COCO_MINI, data_dir, verify=verify) if source == "coco" else None
    with torch.no_grad():
        splits = read_spoken_splits(
            speech_root, source, lambda wav: feat(wav)[0][0], coco_root=coco_root, coco_image_size=coco_image_size,
            val_images=val_images, max_train=max_train, max_eval=max_eval,
        )  # fmt: skip
    patch = patch if patch is not None else (8 if source == "shapes" else 16)
    captions: dict[str, CaptionSet] = {}
    info: dict[str, Any] = {}
    for split, sp in splits.items():
        tokens, info = _image_features(sp.images, "patches", patch)
        captions[split] = SpokenCaptionSet(sp.captions, torch.tensor(sp.caption_image), tokens, audio=sp.audio)
    size = int(splits["train"].images.shape[-1])
    audio_info = {"sample_rate": rate, "kind": features, "num_mels": num_mels, "win_ms": feat.win_ms,
                  "hop_ms": feat.hop_ms, "cmvn": feat.cmvn}  # fmt: skip
    return SpokenVLDataModule(
        captions=captions, text_docs=None, tokenizer=tokenizer, vocab_size=vocab_size,
        save_tokenizer=save_tokenizer, seq_len=seq_len, batch_size=batch_size, truncate_captions=truncate_captions,
        image_info=info, image_preprocessing=pixel_preprocessing(size, "patches", patch), num_workers=num_workers,
        seed=seed, drop_image=drop_image, drop_audio=drop_audio, spec_augment=(6, 15) if spec_augment else None,
        audio_info=audio_info,
    )  # fmt: skip
