"""Byte-level BPE tokenizer trained on the training text (``tokenizers`` library, no hub downloads).

The vision-language decoder follows the paper's GPT-2-style tokenizer (byte-level BPE with
``[PAD]``, ``[BOS]``, ``[EOS]`` and the template ``[BOS] $A [EOS]``), but GPT-2's vocabulary cannot
be downloaded here, so a BPE of the same kind is trained on the training text itself
(:func:`train_bpe`) and saved with the model (``GatedVLDecoder.set_tokenizer`` keeps its JSON in
the model's ``state_dict``).

Special-token ids are fixed: ``[PAD] = 0``, ``[BOS] = 1``, ``[EOS] = 2``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

__all__ = [
    "BOS",
    "BOS_ID",
    "EOS",
    "EOS_ID",
    "PAD",
    "PAD_ID",
    "SPECIAL_TOKENS",
    "batch_encode",
    "load_tokenizer",
    "tokenizer_from_json",
    "train_bpe",
]

PAD, BOS, EOS = "[PAD]", "[BOS]", "[EOS]"
SPECIAL_TOKENS = (PAD, BOS, EOS)
PAD_ID, BOS_ID, EOS_ID = 0, 1, 2


def _finish(tok: Tokenizer) -> Tokenizer:
    """Check the special-token ids and set the ``[BOS] $A [EOS]`` template."""
    for token, want in zip(SPECIAL_TOKENS, (PAD_ID, BOS_ID, EOS_ID)):
        got = tok.token_to_id(token)
        if got != want:
            raise ValueError(f"tokenizer: special token {token} has id {got}, expected {want}")
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A {EOS}", special_tokens=[(BOS, BOS_ID), (EOS, EOS_ID)]
    )
    return tok


def train_bpe(
    texts: Iterable[str],
    vocab_size: int = 4096,
    *,
    min_frequency: int = 2,
    lowercase: bool = False,
) -> Tokenizer:
    """Train a byte-level BPE on ``texts`` (an iterable of documents or lines).

    Pre-tokenisation is GPT-2's (``ByteLevel(add_prefix_space=True)``: every word, including a
    sentence's first, is tokenised as if preceded by a space, so a word has the same tokens
    wherever it stands). The 256 byte symbols are always in the vocabulary, so any text can be
    encoded. The result encodes ``text`` as ``[BOS] tokens [EOS]``.

    Args:
        texts: training text.
        vocab_size: target vocabulary size including the 3 special tokens and 256 byte symbols
            (the trainer stops earlier when no pair occurs ``min_frequency`` times).
        min_frequency: minimum pair count for a merge.
        lowercase: lower-case all text first (a normaliser saved with the tokenizer).
    """
    if vocab_size < len(SPECIAL_TOKENS) + 256:
        raise ValueError(f"train_bpe: vocab_size must be >= 259 (3 special + 256 bytes), got {vocab_size}")
    tok = Tokenizer(models.BPE())
    if lowercase:
        tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return _finish(tok)


def tokenizer_from_json(text: str) -> Tokenizer:
    """A tokenizer from its JSON string (as saved in a model's state_dict)."""
    return _finish(Tokenizer.from_str(text))


def load_tokenizer(path: str | os.PathLike[str]) -> Tokenizer:
    """Load a tokenizer saved with ``Tokenizer.save(path)`` (a clear error if it is missing)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"tokenizer file not found: {p}")
    try:
        return _finish(Tokenizer.from_file(str(p)))
    except Exception as e:  # tokenizers raises a bare Exception on malformed JSON
        raise ValueError(f"{p}: not a valid tokenizers JSON file ({e})") from e


def batch_encode(
    tok: Tokenizer, texts: Sequence[str], max_len: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Encode ``texts`` as right-padded ``[BOS] ... [EOS]`` rows.

    Returns ``(input_ids [N, L], attention_mask [N, L] bool)``, ``L`` the longest row (at most
    ``max_len``). A text longer than ``max_len`` is an error (nothing is truncated silently).
    """
    encs = tok.encode_batch(list(texts))
    lengths = [len(e.ids) for e in encs]
    L = max(lengths) if lengths else 0
    if max_len is not None and L > max_len:
        i = lengths.index(L)
        raise ValueError(f"batch_encode: text {i} has {L} tokens > max_len={max_len}: {texts[i][:80]!r}")
    ids = torch.full((len(encs), L), PAD_ID, dtype=torch.long)
    for i, e in enumerate(encs):
        ids[i, : len(e.ids)] = torch.tensor(e.ids, dtype=torch.long)
    mask = torch.arange(L)[None, :] < torch.tensor(lengths)[:, None]
    return ids, mask
