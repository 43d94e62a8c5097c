"""Plain-text corpus for text-only pre-training (``<data dir>/text_corpora``, BabyLM-style).

The corpus folder (see its ``SOURCE.txt`` files) holds child-directed speech (CHILDES, one
utterance per line), fairy tales and OneStopEnglish (one paragraph per line), the Switchboard
sample (one turn per line) and NLTK Gutenberg books (hard-wrapped paragraphs separated by blank
lines). :data:`CORPUS_FILES` says how each file is split into documents:

* ``"lines"``: every non-empty line is a document;
* ``"paragraphs"``: blank-line-separated blocks, inner newlines joined with spaces.

Documents are tokenised as ``[BOS] doc [EOS]``, concatenated and cut into blocks of ``seq_len``
tokens (GPT-style packing, :func:`pack_blocks`); a deterministic fraction of documents is held
out for validation and test.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

from gatelab.core.harness import DatasetSpec

__all__ = ["CORPUS_FILES", "TEXT_CORPORA", "pack_blocks", "read_corpus", "split_documents"]

#: file (relative to ``text_corpora/``) -> (document rule, sha256 from its SOURCE.txt)
CORPUS_FILES: dict[str, tuple[str, str]] = {
    "childes_cds/childes_cds.txt": (
        "lines",
        "db4f967bc63372c9fc2449c7c4c4bb62859da776ce7ec684e190e675dbef14d5",
    ),
    "fairy_tales_lcats/andersen_fairy_tales.txt": (
        "lines",
        "99a1a4c5906af26395224d2ce290ed37aa360719cd522a3f69bb025214ccedf5",
    ),
    "fairy_tales_lcats/grimm_household_tales.txt": (
        "lines",
        "e75d92f67cc69d01989962453450567414c4c127904d6118675bb05875af4ec3",
    ),
    "fairy_tales_lcats/wilde_happy_prince.txt": (
        "lines",
        "bc511ad3277724358d08149f9ae33e450210df9c8a135475aadcf188f5382001",
    ),
    "onestopenglish/onestopenglish_ele.txt": (
        "lines",
        "3df4eb561374670b1f0cd61445c1afbb4f8bc45bbc79f249fd78d107f2d1f98a",
    ),
    "onestopenglish/onestopenglish_int.txt": (
        "lines",
        "83e8088e708d97bb81fe20c51be03c7da9427af5898bbb27117644969c09084f",
    ),
    "onestopenglish/onestopenglish_adv.txt": (
        "lines",
        "0c7ade5680be1e33aa6225578ea4506e65889421b9c803b0d336823ea76d9adc",
    ),
    "switchboard_sample/switchboard_transcript.txt": (
        "lines",
        "400c3bef1ffc7c285b7a6c6a485024f843e1165cbf5d22716718763ec86c836d",
    ),
    "gutenberg_nltk/children/bryant-stories.txt": (
        "paragraphs",
        "5d86761f8609a6501c0bf9c00e4dd7e391681eb179bcb3bd61c43b5aa0f53b68",
    ),
    "gutenberg_nltk/children/burgess-busterbrown.txt": (
        "paragraphs",
        "d3e237c6e895644b573dd47b0b35a6474ed559e1d0a0fd2ed525b95087c17d5b",
    ),
    "gutenberg_nltk/children/carroll-alice.txt": (
        "paragraphs",
        "5ce9042c0d8536b072b61d4c7c4e6d70c72d9dbb5f3d816261326d9280749266",
    ),
    "gutenberg_nltk/children/edgeworth-parents.txt": (
        "paragraphs",
        "d36ac7a257467d242e1c3e3ae98d054853109873aa0899db25d045af619ad6f6",
    ),
    "gutenberg_nltk/adult_prose/austen-emma.txt": (
        "paragraphs",
        "71b0923d75fcf2f1faa897b22da8de8e2476d7478a2b22388eb58a3420e00215",
    ),
    "gutenberg_nltk/adult_prose/austen-pride.txt": (
        "paragraphs",
        "df745e22510f37f140f69d7d8ac97a9172a5652da6fe22396493e6e852f73375",
    ),
    "gutenberg_nltk/adult_prose/austen-sense.txt": (
        "paragraphs",
        "57b169c7cfa502896dee25bd66616f61cc1d21084caf31f015176ee46fda9718",
    ),
    "gutenberg_nltk/adult_prose/chesterton-ball.txt": (
        "paragraphs",
        "1a4e8851d7ccb5b5ad3298b09be050746a0d3f50d3e0b3f7a34cd5661cfebe74",
    ),
    "gutenberg_nltk/adult_prose/chesterton-brown.txt": (
        "paragraphs",
        "67027976205b4b30e367c704807f56c8ffac3e8ea6037d993e57ab1fe28447ec",
    ),
    "gutenberg_nltk/adult_prose/chesterton-thursday.txt": (
        "paragraphs",
        "8b431a2a8db84089cd6f83fa66610c3b12c04114609df6e90137c0c58f2c5493",
    ),
    "gutenberg_nltk/adult_prose/melville-piazza.txt": (
        "paragraphs",
        "a95a02c25c2dc008de19cc59a3316417e5297df2dd68d083f7714c20f2bdeda7",
    ),
}

TEXT_CORPORA = DatasetSpec(
    name="text-corpora",
    subdir="text_corpora",
    files={rel: digest for rel, (_, digest) in CORPUS_FILES.items()},
    source=(
        "BabyLM-style mix assembled from public repositories (see each folder's SOURCE.txt): "
        "AO-CHILDES (github.com/UIUCLearningLanguageLab/AOCHILDES), LCATS fairy tales "
        "(github.com/xenotaur/LCATS), OneStopEnglish (github.com/nishkalavallabhi/OneStopEnglishCorpus), "
        "NLTK Switchboard sample and Gutenberg selections (nltk_data)"
    ),
    license=(
        "mixed: CHILDES CC BY-NC-SA 3.0 (non-commercial), OneStopEnglish CC BY-SA 4.0, Switchboard "
        "sample Open Content License, Gutenberg texts and fairy tales public domain; not redistributed"
    ),
    description="~2.3M words of child-directed speech and children's/adult prose for text-only LM pre-training",
    compressed=False,
)


def split_documents(text: str, rule: str) -> list[str]:
    """Documents of one file's ``text`` under ``rule`` (``"lines"`` or ``"paragraphs"``), whitespace-normalised."""
    if rule == "lines":
        docs = (" ".join(line.split()) for line in text.splitlines())
    elif rule == "paragraphs":
        blocks: list[list[str]] = [[]]
        for line in text.splitlines():
            if line.strip():
                blocks[-1].append(line)
            elif blocks[-1]:
                blocks.append([])
        docs = (" ".join(" ".join(b).split()) for b in blocks)
    else:
        raise ValueError(f"split_documents: rule must be 'lines' or 'paragraphs', got {rule!r}")
    return [d for d in docs if d]


def read_corpus(
    root: str | os.PathLike[str],
    files: Iterable[str] | None = None,
    *,
    max_words: int | None = None,
) -> list[str]:
    """Documents of the corpus under ``root`` (``<data dir>/text_corpora``), file by file.

    Args:
        root: the corpus folder.
        files: relative paths from :data:`CORPUS_FILES` (default: all of them, in that order).
        max_words: stop after this many whitespace words (documents are interleaved round-robin
            across files first, so a cap keeps every source represented).
    """
    root = Path(root)
    names = list(CORPUS_FILES) if files is None else list(files)
    per_file: list[list[str]] = []
    for rel in names:
        if rel not in CORPUS_FILES:
            raise ValueError(f"read_corpus: unknown corpus file {rel!r}; known: {', '.join(CORPUS_FILES)}")
        path = root / rel
        if not path.is_file():
            raise FileNotFoundError(f"read_corpus: missing corpus file {path}")
        per_file.append(split_documents(path.read_text(encoding="utf-8"), CORPUS_FILES[rel][0]))
    if max_words is None:
        return [d for docs in per_file for d in docs]
    out: list[str] = []
    words = 0
    iters = [iter(d) for d in per_file]
    while iters and words < max_words:
        alive = []
        for it in iters:
            doc = next(it, None)
            if doc is None:
                continue
            alive.append(it)
            out.append(doc)
            words += len(doc.split())
            if words >= max_words:
                break
        iters = alive
    return out


def pack_blocks(token_lists: Sequence[Sequence[int]], seq_len: int) -> torch.Tensor:
    """Concatenate token lists and cut them into ``[n_blocks, seq_len]`` (the tail shorter than a block is dropped)."""
    if seq_len < 2:
        raise ValueError(f"pack_blocks: seq_len must be >= 2, got {seq_len}")
    flat = np.fromiter((t for ids in token_lists for t in ids), dtype=np.int64)
    n = len(flat) // seq_len
    return torch.from_numpy(flat[: n * seq_len].reshape(n, seq_len).copy())
