r"""Spoken captions: the shapes and COCO-mini captions read aloud by espeak-ng, with noise.

``gatelab prepare spoken-captions --data-dir DIR`` (or :func:`prepare_spoken_captions`) writes

.. code-block:: text

    DIR/spoken_captions/
        speech.json              what was generated: shapes parameters, voices, speeds, SNRs, espeak version
        manifest.jsonl           one utterance per line (see MANIFEST_KEYS)
        shapes/<split>/<i>_<k>.wav, coco/<split>/<image id>_<j>.wav     16-bit PCM, 16 kHz mono

Each caption is spoken ``renditions`` times, each rendition with a voice, a speed (words per
minute) and a background-noise level drawn (seeded) from the given lists. Noise: white Gaussian
noise at ``snr_db`` relative to the utterance's own mean power (``None``: clean); the mix is
scaled down only if it would clip (the scale is recorded as ``gain``).

Shapes captions are those of :func:`gatelab.multimodal.data.shapes.make_shapes` with the seeds of
the ``vl-shapes`` data module (``seed * 1000 + k`` for train/val/test), so a reader regenerates
the same images; COCO-mini captions are read from ``<data dir>/coco_mini`` (train2017 -> train,
val2017 -> test). espeak-ng is a system program: :func:`find_espeak` finds it, ``--install``
runs ``apt-get install -y espeak-ng`` when allowed, and an absent program raises an error that
says how to get it. Tests never need it (they pass a stand-in synthesiser).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import random
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from gatelab.core.harness.data import resolve_data_dir
from gatelab.core.harness.errors import DataError
from gatelab.multimodal.data.jsonl import jsonl_objects

from .audio import load_audio, save_wav
from .captions import read_coco_captions
from .shapes import make_shapes

__all__ = [
    "DEFAULT_SNRS",
    "DEFAULT_SPEEDS",
    "DEFAULT_VOICES",
    "MANIFEST_KEYS",
    "SPEECH_SUBDIR",
    "EspeakNotFoundError",
    "SpokenSplit",
    "Utterance",
    "add_noise",
    "espeak_synthesizer",
    "find_espeak",
    "main",
    "prepare_spoken_captions",
    "read_speech_manifest",
    "read_spoken_splits",
    "spoken_header",
]

SPEECH_SUBDIR = "spoken_captions"
DEFAULT_VOICES = ("en-us", "en-gb", "en-us+f3", "en-gb-scotland")
DEFAULT_SPEEDS = (130, 160, 190)
DEFAULT_SNRS: tuple[float | None, ...] = (None, 20.0, 10.0)
#: keys of every manifest line
MANIFEST_KEYS = (
    "id", "source", "split", "item", "caption", "voice", "speed", "snr_db", "gain", "path", "sample_rate",
    "num_samples",
)  # fmt: skip
_INSTALL_HELP = (
    "espeak-ng (https://github.com/espeak-ng/espeak-ng) is needed to synthesise speech: "
    "Debian/Ubuntu `apt-get install espeak-ng`, Fedora `dnf install espeak-ng`, macOS `brew install espeak-ng`, "
    "conda `conda install -c conda-forge espeak-ng`; or pass --install (runs apt-get as root), or --espeak PATH"
)

Synthesizer = Callable[[str, str, int, Path], None]


class EspeakNotFoundError(DataError):
    """espeak-ng is not installed (the message says how to get it)."""


def find_espeak(executable: str | None = None, *, install: bool = False) -> str:
    """Path of the espeak-ng program: ``executable``, else ``espeak-ng`` / ``espeak`` on ``PATH``.

    ``install=True`` runs ``apt-get install -y espeak-ng`` when none is found (needs root and a
    reachable Debian mirror). Raises :class:`EspeakNotFoundError` saying how to get it.
    """
    if executable is not None:
        found = shutil.which(executable)
        if found is None:
            raise EspeakNotFoundError(f"--espeak {executable!r}: no such program. {_INSTALL_HELP}")
        return found
    for name in ("espeak-ng", "espeak"):
        found = shutil.which(name)
        if found is not None:
            return found
    if install:
        apt = shutil.which("apt-get")
        if apt is None or os.geteuid() != 0:
            raise EspeakNotFoundError(f"--install needs apt-get and root. {_INSTALL_HELP}")
        proc = subprocess.run([apt, "install", "-y", "espeak-ng"], capture_output=True, text=True)
        found = shutil.which("espeak-ng")
        if proc.returncode != 0 or found is None:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise EspeakNotFoundError(f"apt-get install espeak-ng failed ({' | '.join(tail)}). {_INSTALL_HELP}")
        return found
    raise EspeakNotFoundError(f"espeak-ng not found on PATH. {_INSTALL_HELP}")


def espeak_synthesizer(program: str) -> Synthesizer:
    """``synth(text, voice, speed, wav_path)`` running ``program -v voice -s speed -w wav_path text``."""

    def synth(text: str, voice: str, speed: int, path: Path) -> None:
        proc = subprocess.run(
            [program, "-v", voice, "-s", str(speed), "-w", str(path), "--", text], capture_output=True, text=True
        )
        if proc.returncode != 0 or not path.is_file():
            raise DataError(
                f"espeak-ng failed on {text!r} (voice {voice!r}, speed {speed}): {proc.stderr.strip() or proc.returncode}"
            )

    return synth


def add_noise(
    waveform: torch.Tensor, snr_db: float | None, generator: torch.Generator
) -> tuple[torch.Tensor, float]:
    """``waveform + n`` with white Gaussian ``n`` at ``snr_db`` (dB, vs the waveform's mean power),
    then scaled by ``gain <= 1`` only if a sample would leave ``[-1, 1]``. Returns ``(mix, gain)``."""
    x = waveform.double()
    if snr_db is not None:
        power = float(x.square().mean())
        if power == 0.0:
            raise ValueError("add_noise: a silent waveform has no signal-to-noise ratio")
        sigma = math.sqrt(power / (10.0 ** (snr_db / 10.0)))
        x = x + sigma * torch.randn(x.shape, generator=generator, dtype=torch.float64)
    peak = float(x.abs().max())
    gain = 1.0 if peak <= 1.0 else 0.999 / peak
    return (x * gain).float(), gain


@dataclasses.dataclass(frozen=True)
class Utterance:
    """One manifest line (:data:`MANIFEST_KEYS`); ``path`` is relative to the manifest's folder."""

    id: str
    source: str
    split: str
    item: int
    caption: str
    voice: str
    speed: int
    snr_db: float | None
    gain: float
    path: str
    sample_rate: int
    num_samples: int


def _captions(
    coco_dir: Path, sources: Sequence[str], shapes: dict[str, Any]
) -> Iterator[tuple[str, str, int, str, str]]:
    """``(source, split, item, stem, caption)`` of every caption to speak."""
    if "shapes" in sources:
        for k, split in enumerate(("train", "val", "test")):
            n = shapes[f"n_{split}"]
            if n == 0:
                continue
            d = make_shapes(n, size=shapes["image_size"], two_object_prob=shapes["two_object_prob"],
                            seed=shapes["seed"] * 1000 + k)  # fmt: skip
            for i, cap in enumerate(d.captions):
                yield "shapes", split, d.caption_image[i], f"{d.caption_image[i]:06d}", cap
    if "coco" in sources:
        root = coco_dir
        for split, name in (("train", "train2017"), ("test", "val2017")):
            images = read_coco_captions(root / "annotations" / f"captions_{name}.json", root / name)
            for im in images:
                for j, cap in enumerate(im.captions):
                    yield "coco", split, im.image_id, f"{im.image_id:012d}_{j}", cap


def prepare_spoken_captions(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    sources: Sequence[str] = ("shapes", "coco"),
    voices: Sequence[str] = DEFAULT_VOICES,
    speeds: Sequence[int] = DEFAULT_SPEEDS,
    snrs: Sequence[float | None] = DEFAULT_SNRS,
    renditions: int = 1,
    sample_rate: int = 16000,
    shapes_train: int = 1000,
    shapes_val: int = 100,
    shapes_test: int = 200,
    shapes_seed: int = 0,
    image_size: int = 32,
    two_object_prob: float = 0.5,
    seed: int = 0,
    coco_dir: str | os.PathLike[str] | None = None,
    synthesize: Synthesizer | None = None,
    espeak: str | None = None,
    install: bool = False,
    progress: bool = False,
) -> Path:
    """Write the spoken captions under ``<data dir>/spoken_captions`` (module docstring); returns
    the manifest path. ``synthesize`` replaces espeak-ng (tests); otherwise it is found (or
    installed with ``install=True``) by :func:`find_espeak`. ``coco_dir``: the COCO-mini folder
    (default ``<data dir>/coco_mini``). An existing manifest is replaced."""
    unknown = sorted(set(sources) - {"shapes", "coco"})
    if unknown or not sources:
        raise ValueError(f"sources must be among 'shapes', 'coco', got {list(sources)}")
    if not voices or not speeds or not snrs or renditions < 1:
        raise ValueError("voices, speeds and snrs need at least one value each, renditions >= 1")
    root = resolve_data_dir(data_dir)
    out = root / SPEECH_SUBDIR
    version = "stand-in synthesiser"
    if synthesize is None:
        program = find_espeak(espeak, install=install)
        synthesize = espeak_synthesizer(program)
        version = subprocess.run([program, "--version"], capture_output=True, text=True).stdout.strip()
    shapes = {"n_train": shapes_train, "n_val": shapes_val, "n_test": shapes_test, "seed": shapes_seed,
              "image_size": image_size, "two_object_prob": two_object_prob}  # fmt: skip
    header = {"sources": list(sources), "voices": list(voices), "speeds": list(speeds), "snrs": list(snrs),
              "renditions": renditions, "sample_rate": sample_rate, "seed": seed, "shapes": shapes,
              "synthesizer": version, "noise": "white Gaussian at snr_db vs the utterance's mean power"}  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    lines: list[str] = []
    coco = Path(coco_dir) if coco_dir is not None else root / "coco_mini"
    items = list(_captions(coco, sources, shapes))
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        for n, (source, split, item, stem, caption) in enumerate(items):
            for k in range(renditions):
                voice, speed, snr = rng.choice(list(voices)), int(rng.choice(list(speeds))), rng.choice(list(snrs))
                synthesize(caption, voice, speed, raw)
                wav, _ = load_audio(raw, sample_rate)
                mix, gain = add_noise(wav[0], snr, gen)
                rel = f"{source}/{split}/{stem}_{k}.wav"
                save_wav(out / rel, mix, sample_rate)
                utt = Utterance(f"{source}-{split}-{stem}-{k}", source, split, int(item), caption, voice, speed,
                                snr, round(gain, 6), rel, sample_rate, int(mix.shape[0]))  # fmt: skip
                lines.append(json.dumps(dataclasses.asdict(utt)))
            if progress and (n + 1) % 200 == 0:
                print(f"  {n + 1}/{len(items)} captions spoken", flush=True)
    (out / "speech.json").write_text(json.dumps(header, indent=2) + "\n")
    manifest = out / "manifest.jsonl"
    tmp_manifest = manifest.with_suffix(".jsonl.tmp")
    tmp_manifest.write_text("\n".join(lines) + "\n")
    tmp_manifest.replace(manifest)  # readers never see a half-written manifest
    return manifest


def read_speech_manifest(path: str | os.PathLike[str], *, check_files: bool = True) -> list[Utterance]:
    """The utterances of a ``manifest.jsonl``; errors name the file, line and key at fault."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(
            f"speech manifest not found: {p} (write it with `gatelab prepare spoken-captions --data-dir DIR`)"
        )
    types = {f.name: f.type for f in dataclasses.fields(Utterance)}
    out: list[Utterance] = []
    seen: set[str] = set()
    for lineno, rec in jsonl_objects(p, MANIFEST_KEYS, required=MANIFEST_KEYS, blank_lines=False):
        for key in MANIFEST_KEYS:
            v, t = rec[key], types[key]
            ok = {
                "str": isinstance(v, str) and v != "",
                "int": isinstance(v, int) and not isinstance(v, bool),
                "float": isinstance(v, (int, float)) and not isinstance(v, bool),
                "float | None": v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)),
            }[t]
            if not ok:
                raise ValueError(f"{p}:{lineno}: key {key!r} must be {t}, got {v!r}")
        if rec["source"] not in ("shapes", "coco") or rec["split"] not in ("train", "val", "test"):
            raise ValueError(f"{p}:{lineno}: unknown source/split {rec['source']!r}/{rec['split']!r}")
        if rec["id"] in seen:
            raise ValueError(f"{p}:{lineno}: duplicate id {rec['id']!r}")
        seen.add(rec["id"])
        if check_files and not (p.parent / rec["path"]).is_file():
            raise FileNotFoundError(f"{p}:{lineno}: audio file not found: {p.parent / rec['path']}")
        out.append(Utterance(**rec))
    if not out:
        raise ValueError(f"{p}: no utterances")
    return out


def _snr(text: str) -> float | None:
    if text.lower() in ("none", "clean", "inf"):
        return None
    return float(text)


def main(argv: Sequence[str] | None = None) -> int:
    """``gatelab prepare spoken-captions [options]``: see :func:`prepare_spoken_captions`."""
    p = argparse.ArgumentParser(
        prog="gatelab prepare spoken-captions",
        description="Speak the shapes and COCO-mini captions with espeak-ng (several voices, speeds, noise "
        "levels): WAV + manifest.jsonl under DATA_DIR/spoken_captions.",
    )
    p.add_argument("--data-dir", default=None, help="data directory (else $GATELAB_DATA, else ~/.cache/gatelab/data)")
    p.add_argument("--sources", nargs="+", default=["shapes", "coco"], choices=["shapes", "coco"])
    p.add_argument("--voices", nargs="+", default=list(DEFAULT_VOICES), help="espeak-ng voices (espeak-ng --voices)")
    p.add_argument("--speeds", nargs="+", type=int, default=list(DEFAULT_SPEEDS), help="words per minute")
    p.add_argument("--snrs", nargs="+", type=_snr, default=list(DEFAULT_SNRS), help="noise SNRs in dB; none = clean")
    p.add_argument("--renditions", type=int, default=1, help="spoken versions of each caption")
    p.add_argument("--sample-rate", type=int, default=16000)
    p.add_argument("--shapes-train", type=int, default=1000)
    p.add_argument("--shapes-val", type=int, default=100)
    p.add_argument("--shapes-test", type=int, default=200)
    p.add_argument("--shapes-seed", type=int, default=0)
    p.add_argument("--seed", type=int, default=0, help="draws of voice/speed/noise and the noise itself")
    p.add_argument("--coco-dir", default=None, help="COCO-mini folder (default DATA_DIR/coco_mini)")
    p.add_argument("--espeak", default=None, help="path of the espeak-ng program")
    p.add_argument("--install", action="store_true", help="apt-get install espeak-ng if it is missing (root)")
    a = p.parse_args(list(argv) if argv is not None else None)
    manifest = prepare_spoken_captions(
        a.data_dir, sources=a.sources, voices=a.voices, speeds=a.speeds, snrs=a.snrs, renditions=a.renditions,
        sample_rate=a.sample_rate, shapes_train=a.shapes_train, shapes_val=a.shapes_val,
        shapes_test=a.shapes_test, shapes_seed=a.shapes_seed, seed=a.seed, coco_dir=a.coco_dir, espeak=a.espeak,
        install=a.install,
        progress=True,
    )  # fmt: skip
    n = sum(1 for _ in manifest.open())
    print(f"wrote {n} utterances: {manifest}")
    return 0


@dataclasses.dataclass
class SpokenSplit:
    """The spoken captions of one split: ``captions[i]`` was spoken as ``audio[i]`` (feature frames
    ``[F_i, num_mels]``) and belongs to image ``images[caption_image[i]]`` (pixels ``[M, 3, S, S]``
    in ``[0, 1]``); ``ids[i]`` is the manifest id of the utterance."""

    captions: list[str]
    caption_image: list[int]
    images: torch.Tensor
    audio: list[torch.Tensor]
    ids: list[str]


def _rendition(u: Utterance) -> int:
    return int(u.id.rsplit("-", 1)[1])


def spoken_header(speech_root: str | os.PathLike[str], source: str | None = None) -> dict[str, Any]:
    """``speech.json`` of a prepared ``spoken_captions`` folder; with ``source`` also checks that
    its captions were spoken. Errors say how to prepare them."""
    header_path = Path(speech_root) / "speech.json"
    if not header_path.is_file():
        raise DataError(
            f"{header_path} not found: run `gatelab prepare spoken-captions --data-dir DIR` first "
            "(the folder that holds spoken_captions/)"
        )
    header = json.loads(header_path.read_text())
    if source is not None and source not in ("shapes", "coco"):
        raise ValueError(f"source must be 'shapes' or 'coco', got {source!r}")
    if source is not None and source not in header.get("sources", []):
        raise DataError(
            f"{header_path}: no {source!r} captions were spoken (sources {header.get('sources')}); run "
            f"`gatelab prepare spoken-captions --sources {source} ...`"
        )
    return header


def read_spoken_splits(
    speech_root: str | os.PathLike[str],
    source: str,
    features: Callable[[torch.Tensor], torch.Tensor],
    *,
    coco_root: str | os.PathLike[str] | None = None,
    coco_image_size: int = 64,
    val_images: int = 39,
    max_train: int | None = None,
    max_eval: int | None = None,
) -> dict[str, SpokenSplit]:
    """The train/val/test :class:`SpokenSplit` of one ``source`` of a prepared
    ``spoken_captions`` folder (the first rendition of every caption).

    * ``source="shapes"``: the images are regenerated from ``speech.json``'s shapes parameters (as
      :func:`prepare_spoken_captions` drew the captions) and every spoken caption is checked
      against its regenerated caption; the manifest's splits are used as they are.
    * ``source="coco"``: the images and captions are read from ``coco_root`` (COCO-mini) and
      every spoken caption is checked against its COCO caption; train2017 is the train split
      and val2017 (the manifest's ``test``) is split by image id as the ``vl-coco`` data module
      does: the first ``val_images`` images for validation, the rest for test.

    ``features(waveform [1, T]) -> [F, num_mels]`` turns a waveform (at the manifest's sample
    rate) into feature frames. ``max_train`` / ``max_eval``: keep the first N captions of the
    training / each held-out split (in image order). Errors name the manifest line's id and the
    caption at fault; a split without utterances is an error naming the preparation flag.
    """
    from .audio import load_audio
    from .captions import load_image

    root = Path(speech_root)
    header = spoken_header(root, source)
    rate = int(header["sample_rate"])
    manifest = root / "manifest.jsonl"
    utts = [u for u in read_speech_manifest(manifest) if u.source == source and _rendition(u) == 0]

    def load(rows: list[Utterance], images: torch.Tensor, owner: list[int], limit: int | None) -> SpokenSplit:
        if limit is not None:
            rows, owner = rows[:limit], owner[:limit]
        used = sorted(set(owner))  # keep only the images of the kept captions, in order
        where = {i: k for k, i in enumerate(used)}
        audio = []
        for u in rows:
            wav, _ = load_audio(root / u.path, rate)
            audio.append(features(wav))
        return SpokenSplit([u.caption for u in rows], [where[i] for i in owner], images[used], audio,
                           [u.id for u in rows])  # fmt: skip

    def bad(u: Utterance, what: str) -> DataError:
        return DataError(
            f"{manifest}: {u.id}: caption {u.caption!r} is not {what}; re-run `gatelab prepare spoken-captions`"
        )

    out: dict[str, SpokenSplit] = {}
    if source == "shapes":
        shapes = header["shapes"]
        for k, split in enumerate(("train", "val", "test")):
            rows = sorted((u for u in utts if u.split == split), key=lambda u: u.item)
            n = int(shapes[f"n_{split}"])
            if n == 0 or not rows:
                flag = f"--shapes-{split} N (N > 0)"
                raise DataError(f"{manifest}: no spoken shapes {split} captions; prepare them with {flag}")
            d = make_shapes(n, size=shapes["image_size"], two_object_prob=shapes["two_object_prob"],
                            seed=shapes["seed"] * 1000 + k)  # fmt: skip
            for u in rows:
                if u.item >= n or d.captions[u.item] != u.caption:
                    raise bad(u, f"shapes {split} caption {u.item} of the parameters in speech.json")
            limit = max_train if split == "train" else max_eval
            out[split] = load(rows, d.images, [u.item for u in rows], limit)
        return out

    if coco_root is None:
        raise ValueError("read_spoken_splits: source='coco' needs coco_root (the COCO-mini folder)")
    coco = Path(coco_root)
    for split, name in (("train", "train2017"), ("test", "val2017")):
        images = read_coco_captions(coco / "annotations" / f"captions_{name}.json", coco / name)
        index = {im.image_id: k for k, im in enumerate(images)}
        rows = [u for u in utts if u.split == split]
        if not rows:
            raise DataError(f"{manifest}: no spoken COCO-mini {split} captions; prepare them with --sources coco")
        for u in rows:
            j = int(u.id.rsplit("-", 1)[0].rsplit("_", 1)[1])
            if u.item not in index or j >= len(images[index[u.item]].captions):
                raise bad(u, f"a caption of COCO-mini {name} (no image {u.item} caption {j})")
            if images[index[u.item]].captions[j] != u.caption:
                raise bad(u, f"COCO-mini {name} image {u.item} caption {j}")
        rows.sort(key=lambda u: (index[u.item], u.id))
        pixels = torch.stack([load_image(im.path, coco_image_size) for im in images])
        if split == "train":
            out["train"] = load(rows, pixels, [index[u.item] for u in rows], max_train)
            continue
        if not 0 < val_images < len(images):
            raise ValueError(f"val_images must be in (0, {len(images)}), got {val_images}")
        for part, keep in (("val", lambda k: k < val_images), ("test", lambda k: k >= val_images)):
            sub = [u for u in rows if keep(index[u.item])]
            out[part] = load(sub, pixels, [index[u.item] for u in sub], max_eval)
    return out
