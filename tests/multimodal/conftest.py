"""Fixtures of the multimodal tests: a tiny data directory in the real layouts (never the real data).

``vl_data_dir`` holds ``text_corpora/`` (every file of ``CORPUS_FILES``, a few sentences each, in
its document format), ``blimp/data/<paradigm>.jsonl.gz`` for all 67 paradigms (3 pairs each) and
``coco_mini/`` (two captions JSONs in COCO format and small JPEGs).
"""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gatelab.multimodal.data.blimp import BLIMP_PARADIGMS
from gatelab.multimodal.data.text import CORPUS_FILES

_WORDS = (
    "the a dog cat sees runs big small red ball and then is in on park happy there circle square triangle "
    "diamond top bottom left right blue green yellow purple orange"
).split()


def _sentence(rng: random.Random, n: int = 6) -> str:
    words = [rng.choice(_WORDS) for _ in range(n)]
    return " ".join(words).capitalize() + "."


def write_corpus(root: Path, n_docs: int = 40, seed: int = 0) -> Path:
    rng = random.Random(seed)
    for rel, (rule, _) in CORPUS_FILES.items():
        p = root / "text_corpora" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if rule == "lines":
            text = "\n".join(_sentence(rng) for _ in range(n_docs)) + "\n"
        else:  # hard-wrapped paragraphs separated by blank lines
            paras = []
            for _ in range(n_docs // 4):
                para = " ".join(_sentence(rng) for _ in range(3))
                paras.append(para[: len(para) // 2] + "\n" + para[len(para) // 2 :])
            text = "\n\n".join(paras) + "\n"
        p.write_text(text, encoding="utf-8")
    return root / "text_corpora"


def write_blimp(root: Path, per_paradigm: int = 3) -> Path:
    d = root / "blimp" / "data"
    d.mkdir(parents=True, exist_ok=True)
    for p in BLIMP_PARADIGMS:
        lines = []
        for i in range(per_paradigm):
            rec = {
                "sentence_good": f"The cat sees the dog {i}.",
                "sentence_bad": f"The cat see the dog {i}.",
                "field": "morphology",
                "linguistics_term": "agreement",
                "UID": p,
                "pairID": str(i),
            }
            lines.append(json.dumps(rec))
        with gzip.open(d / f"{p}.jsonl.gz", "wt", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")
    return root / "blimp"


def write_coco(root: Path, n_train: int = 4, n_val: int = 44, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    base = root / "coco_mini"
    (base / "annotations").mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("val", n_val)):
        folder = base / f"{split}2017"
        folder.mkdir(parents=True, exist_ok=True)
        images, anns = [], []
        for k in range(n):
            iid = 1000 * (split == "val") + k + 1
            name = f"{iid:012d}.jpg"
            arr = rng.integers(0, 255, size=(24, 32, 3), dtype=np.uint8)
            Image.fromarray(arr).save(folder / name)
            images.append({"id": iid, "file_name": name, "height": 24, "width": 32, "license": 4})
            for c in range(5):
                anns.append(
                    {"image_id": iid, "id": iid * 10 + c, "caption": f"A red ball {c} on the grass. "}
                )
        (base / "annotations" / f"captions_{split}2017.json").write_text(
            json.dumps({"info": {}, "licenses": [], "images": images, "annotations": anns})
        )
    return base


@pytest.fixture(scope="session")
def vl_data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("vl_data")
    write_corpus(root)
    write_blimp(root)
    write_coco(root)
    return root


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models gain nothing from intra-op threads; on a shared 2-core machine they thrash."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
