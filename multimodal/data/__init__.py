"""Data of gatelab.multimodal: readers and the BPE tokenizer (no Lightning here) and, in
``datamodule``, the data modules."""

from .audio import AUDIO_FEATURES, AudioFeatures, SpecAugment, load_audio, resample, save_wav
from .blimp import BLIMP, BLIMP_PARADIGMS, MinimalPair, read_blimp
from .captions import COCO_MINI, load_image, read_babylm, read_caption_manifest, read_coco_captions
from .shapes import COLOURS, POSITIONS, SHAPES, ShapesData, make_shapes, patchify, render
from .text import CORPUS_FILES, TEXT_CORPORA, pack_blocks, read_corpus, split_documents

__all__ = [
    "AUDIO_FEATURES",
    "BLIMP",
    "BLIMP_PARADIGMS",
    "COCO_MINI",
    "COLOURS",
    "CORPUS_FILES",
    "POSITIONS",
    "SHAPES",
    "TEXT_CORPORA",
    "AudioFeatures",
    "MinimalPair",
    "ShapesData",
    "SpecAugment",
    "load_audio",
    "load_image",
    "make_shapes",
    "pack_blocks",
    "patchify",
    "read_babylm",
    "read_blimp",
    "read_caption_manifest",
    "read_coco_captions",
    "read_corpus",
    "render",
    "resample",
    "save_wav",
    "split_documents",
]
