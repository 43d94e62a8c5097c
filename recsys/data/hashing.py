"""Stable token hashing for ``hash_buckets`` fields (vocabulary-free categorical/sequence fields).

A field with ``hash_buckets: N`` has no vocabulary: token ``t`` (its string form, the same string
the vocabulary path would look up) goes to index

    ``1 + (h(t) mod N)``,  ``h(t)`` = the first 8 bytes of ``blake2b(utf8(t), digest_size=8)`` read as
    an unsigned little-endian integer,

so indices are ``1 .. N`` (``0`` stays the padding index of sequences) and the field's
``vocab_size`` is ``N + 1``. There is no out-of-vocabulary bucket: a token never seen in training
hashes like any other. A missing categorical entry is hashed as the empty token ``""`` (FuxiCTR
fills a missing categorical value with ``""`` before encoding it), unless the field's
``na_policy`` is ``error`` or ``drop_row``; an empty sequence stays empty (all padding).

``h`` is a fixed function of the bytes (not Python's per-process salted ``hash``), so the same
token gets the same index in every process, on every machine and in every later session: encoded
shards written by several processes agree, and a saved model scores new rows with the indices it
was trained on.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["MISSING_TOKEN", "hash_token", "hash_tokens"]

#: the token a missing categorical entry is hashed as
MISSING_TOKEN = ""


def _h(token: str) -> int:
    return int.from_bytes(hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest(), "little")


def hash_token(token: str, buckets: int) -> int:
    """The index ``1 + (h(token) mod buckets)`` of one token (see the module docstring)."""
    if isinstance(buckets, bool) or not isinstance(buckets, int) or buckets < 1:
        raise ValueError(f"hash_token: buckets must be a positive int, got {buckets!r}")
    if not isinstance(token, str):
        raise TypeError(f"hash_token: token must be a str, got {type(token).__name__} {token!r}")
    return 1 + _h(token) % buckets


def hash_tokens(tokens: pa.Array | pa.ChunkedArray, buckets: int) -> np.ndarray:
    """:func:`hash_token` of every entry of a string array, as ``int32`` indices in ``1 .. buckets``;
    a null entry is hashed as :data:`MISSING_TOKEN`. Each distinct token is hashed once."""
    if isinstance(buckets, bool) or not isinstance(buckets, int) or buckets < 1:
        raise ValueError(f"hash_tokens: buckets must be a positive int, got {buckets!r}")
    if buckets > np.iinfo(np.int32).max - 1:
        raise ValueError(f"hash_tokens: buckets={buckets} does not fit int32 indices")
    if isinstance(tokens, pa.ChunkedArray):
        tokens = tokens.combine_chunks()
    if len(tokens) == 0:
        return np.zeros(0, np.int32)
    filled = pc.fill_null(tokens.cast(pa.string()), MISSING_TOKEN)
    enc = pc.dictionary_encode(filled)
    table = np.fromiter(
        (1 + _h(t) % buckets for t in enc.dictionary.to_pylist()), dtype=np.int64, count=len(enc.dictionary)
    )
    return table[enc.indices.to_numpy(zero_copy_only=False)].astype(np.int32)
