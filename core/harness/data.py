"""Data directory resolution, dataset specs, sha256 checks with a hash cache.

gatelab never ships or downloads data in tests: loaders read the official file layouts from a
*data directory*, resolved in this order (:func:`resolve_data_dir`):

1. an explicit flag (``--data-dir`` on the CLI, ``data_dir=`` in Python),
2. the environment variable ``$GATELAB_DATA``,
3. the default ``~/.cache/gatelab/data``.

A domain describes each dataset it can read with a :class:`DatasetSpec` (the files it expects,
relative to ``<data dir>/<subdir>``, their sha256 when known, where to get them and the license)
and registers it with :func:`register_dataset`. :func:`locate` finds a dataset and checks it:

* a missing file raises :class:`DatasetNotFoundError`, whose message names the directory searched,
  every expected file (found or missing), where to get them and how to point gatelab at them;
* a file whose sha256 differs raises :class:`ChecksumError` naming the file and both digests.

A file ``x.csv`` may also be stored gzip-compressed as ``x.csv.gz`` when the spec allows it
(``compressed=True``, the default); list the digests of both forms if both are acceptable.

Hashing large files is slow, so digests are cached in ``$GATELAB_CACHE/sha256.json`` (default
``~/.cache/gatelab``) keyed by absolute path, size and modification time: a file that changes gets
re-hashed, an unchanged one does not.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import ChecksumError, DatasetNotFoundError

__all__ = [
    "DatasetSpec",
    "cache_dir",
    "data_dir_origin",
    "dataset_file",
    "dataset_sha256",
    "dataset_status",
    "file_sha256",
    "get_dataset",
    "list_datasets",
    "locate",
    "register_dataset",
    "resolve_data_dir",
]

ENV_DATA = "GATELAB_DATA"
ENV_CACHE = "GATELAB_CACHE"
DEFAULT_DATA_DIR = Path("~/.cache/gatelab/data")
DEFAULT_CACHE_DIR = Path("~/.cache/gatelab")
#: files at least this large have their digest cached (smaller ones are cheap to re-hash)
CACHE_MIN_BYTES = 1 << 20


# --------------------------------------------------------------------------- data directory


def resolve_data_dir(flag: str | os.PathLike[str] | None = None) -> Path:
    """The data directory: ``flag``, else ``$GATELAB_DATA``, else ``~/.cache/gatelab/data``.

    The directory need not exist (synthetic data modules ignore it); :func:`locate` reports a
    missing dataset with the directory it searched.
    """
    if flag is not None and str(flag) != "":
        return Path(flag).expanduser().absolute()
    env = os.environ.get(ENV_DATA, "").strip()
    if env:
        return Path(env).expanduser().absolute()
    return DEFAULT_DATA_DIR.expanduser().absolute()


def data_dir_origin(flag: str | os.PathLike[str] | None = None) -> str:
    """Which rule :func:`resolve_data_dir` used: ``"--data-dir"``, ``"$GATELAB_DATA"`` or ``"default"``."""
    if flag is not None and str(flag) != "":
        return "--data-dir"
    if os.environ.get(ENV_DATA, "").strip():
        return f"${ENV_DATA}"
    return "default"


def cache_dir() -> Path:
    """gatelab's cache directory: ``$GATELAB_CACHE`` or ``~/.cache/gatelab``."""
    env = os.environ.get(ENV_CACHE, "").strip()
    return Path(env).expanduser() if env else DEFAULT_CACHE_DIR.expanduser()


# --------------------------------------------------------------------------- specs and registry

Digest = str | Sequence[str] | None


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """The files of one dataset as published, and where to get them.

    Args:
        name: registry key (e.g. ``"etth1"``); used by ``gatelab env`` and ledger records.
        subdir: folder under the data directory holding the files (e.g. ``"ETT-small"``).
        files: relative path (``/``-separated, under ``subdir``) -> expected sha256 (lower-case
            hex), a sequence of acceptable digests (e.g. of the plain and the ``.gz`` form), or
            ``None`` when no official digest exists (the file must only be present).
        source: where and how to get the files: official URLs, a download command.
        license: the license as stated by the source (say when redistribution is forbidden).
        description: one line for ``gatelab env``.
        compressed: accept ``<path>.gz`` when ``<path>`` is absent.
    """

    name: str
    subdir: str
    files: Mapping[str, Digest]
    source: str
    license: str
    description: str = ""
    compressed: bool = True

    def __post_init__(self) -> None:
        if not self.files:
            raise ValueError(f"DatasetSpec({self.name!r}): files is empty")
        norm: dict[str, tuple[str, ...] | None] = {}
        for rel, digest in self.files.items():
            if Path(rel).is_absolute() or ".." in Path(rel).parts:
                raise ValueError(
                    f"DatasetSpec({self.name!r}): file path {rel!r} must be relative, inside subdir"
                )
            if digest is None:
                norm[rel] = None
                continue
            digests = (digest,) if isinstance(digest, str) else tuple(digest)
            for d in digests:
                if len(d) != 64 or any(c not in "0123456789abcdef" for c in d):
                    raise ValueError(
                        f"DatasetSpec({self.name!r}): {rel!r}: {d!r} is not a lower-case hex sha256"
                    )
            norm[rel] = digests
        object.__setattr__(self, "files", norm)

    def root(self, data_dir: str | os.PathLike[str] | None = None) -> Path:
        """``<resolved data dir>/<subdir>``."""
        return resolve_data_dir(data_dir) / self.subdir


def register_dataset(spec: DatasetSpec | str, target: str | None = None, *, domain: str = "core") -> Any:
    """Register ``spec`` under ``spec.name`` (re-registering an equal spec is a no-op).

    Lazily: ``register_dataset("etth1", "package.module:attr", domain="timeseries")`` declares
    the name without importing the module that defines the spec (returns the entry). Entries
    live in :data:`gatelab.core.registry.DATASETS`.
    """
    from gatelab.core.registry import DATASETS

    if isinstance(spec, str):
        if target is None:
            raise TypeError(f"register_dataset({spec!r}): a name needs a 'module:attr' target")
        return DATASETS.register(spec, target, domain=domain)
    if not isinstance(spec, DatasetSpec):
        raise TypeError(f"register_dataset: expected a DatasetSpec, got {type(spec).__name__}")
    DATASETS.register(spec.name, spec, domain=domain)
    return spec


def list_datasets(domain: str | None = None) -> list[str]:
    """Sorted names of registered datasets (after loading the domains' registrations)."""
    from gatelab.core.registry import DATASETS

    return DATASETS.names(domain)


def get_dataset(name: str) -> DatasetSpec:
    """The registered spec ``name`` (:class:`DatasetNotFoundError` naming the known ones if unknown)."""
    from gatelab.core.registry import DATASETS

    return DATASETS.get(name)


def _spec(name_or_spec: str | DatasetSpec) -> DatasetSpec:
    return name_or_spec if isinstance(name_or_spec, DatasetSpec) else get_dataset(name_or_spec)


# --------------------------------------------------------------------------- hashing


def _read_cache(path: Path) -> dict[str, dict[str, object]]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_cache(path: Path, data: dict[str, dict[str, object]]) -> None:
    """Atomic replace; a read-only or full cache location only costs re-hashing next time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".sha256.", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=0, sort_keys=True)
        os.replace(tmp, path)
    except OSError:
        pass


def file_sha256(path: str | os.PathLike[str], *, use_cache: bool = True) -> str:
    """sha256 (lower-case hex) of a file, cached by (absolute path, size, mtime) for large files."""
    p = Path(path).absolute()
    st = p.stat()
    key = str(p)
    cache_file = cache_dir() / "sha256.json"
    cacheable = use_cache and st.st_size >= CACHE_MIN_BYTES
    if cacheable:
        hit = _read_cache(cache_file).get(key)
        if hit and hit.get("size") == st.st_size and hit.get("mtime_ns") == st.st_mtime_ns:
            return str(hit["sha256"])
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    digest = h.hexdigest()
    if cacheable:
        cache = _read_cache(cache_file)  # re-read: another process may have added entries
        cache[key] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}
        _write_cache(cache_file, cache)
    return digest


# --------------------------------------------------------------------------- locating


def _find(root: Path, rel: str, compressed: bool) -> Path | None:
    p = root / rel
    if p.is_file():
        return p
    if compressed and not rel.endswith(".gz"):
        gz = root / (rel + ".gz")
        if gz.is_file():
            return gz
    return None


def dataset_file(
    name_or_spec: str | DatasetSpec, relpath: str, data_dir: str | os.PathLike[str] | None = None
) -> Path:
    """The path of one expected file (``relpath`` or its ``.gz`` form); raises if absent."""
    spec = _spec(name_or_spec)
    if relpath not in spec.files:
        raise KeyError(f"dataset {spec.name!r} has no file {relpath!r}; expected: {list(spec.files)}")
    found = _find(spec.root(data_dir), relpath, spec.compressed)
    if found is None:
        _raise_missing(spec, data_dir)
    return found  # type: ignore[return-value]


def _raise_missing(spec: DatasetSpec, data_dir: str | os.PathLike[str] | None) -> None:
    root = spec.root(data_dir)
    lines = [
        f"dataset {spec.name!r} not found (or incomplete) in {root}",
        f"  data directory {resolve_data_dir(data_dir)} (from {data_dir_origin(data_dir)}); "
        f"set it with --data-dir or ${ENV_DATA}",
        "  expected files:",
    ]
    for rel in spec.files:
        found = _find(root, rel, spec.compressed)
        alt = " (or .gz)" if spec.compressed and not rel.endswith(".gz") else ""
        lines.append(f"    {'ok     ' if found else 'MISSING'} {root / rel}{alt}")
    lines.append(f"  get them from: {spec.source}")
    lines.append(f"  license: {spec.license}")
    raise DatasetNotFoundError("\n".join(lines))


def locate(
    name_or_spec: str | DatasetSpec,
    data_dir: str | os.PathLike[str] | None = None,
    verify: bool = True,
) -> Path:
    """Find a dataset and return its folder ``<data dir>/<subdir>``.

    Args:
        name_or_spec: a registered dataset name or a :class:`DatasetSpec`.
        data_dir: explicit data directory (see :func:`resolve_data_dir`).
        verify: check every file with a known digest (cached, see :func:`file_sha256`).

    Raises:
        DatasetNotFoundError: any expected file is missing (message lists them all).
        ChecksumError: a file's sha256 is not one of the expected digests.
    """
    spec = _spec(name_or_spec)
    root = spec.root(data_dir)
    paths = {rel: _find(root, rel, spec.compressed) for rel in spec.files}
    if any(p is None for p in paths.values()):
        _raise_missing(spec, data_dir)
    if verify:
        for rel, expected in spec.files.items():
            if expected is None:
                continue
            path = paths[rel]
            assert path is not None
            actual = file_sha256(path)
            if actual not in expected:
                raise ChecksumError(
                    f"dataset {spec.name!r}: checksum mismatch for {path}\n"
                    f"  expected sha256 {' or '.join(expected)}\n"
                    f"  actual   sha256 {actual}\n"
                    f"  the file is corrupt, truncated or a different version; get it again from: {spec.source}"
                )
    return root


def dataset_sha256(name_or_spec: str | DatasetSpec, data_dir: str | os.PathLike[str] | None = None) -> str:
    """One digest of the whole dataset for ledger records.

    ``sha256`` over the lines ``"<relpath> <file sha256>\\n"`` in the spec's file order, where
    ``relpath`` is the file actually found (``.gz`` included). Raises like :func:`locate`.
    """
    spec = _spec(name_or_spec)
    root = locate(spec, data_dir, verify=True)
    h = hashlib.sha256()
    for rel in spec.files:
        path = _find(root, rel, spec.compressed)
        assert path is not None
        h.update(f"{path.relative_to(root).as_posix()} {file_sha256(path)}\n".encode())
    return h.hexdigest()


def dataset_status(name_or_spec: str | DatasetSpec, data_dir: str | os.PathLike[str] | None = None) -> str:
    """``"present"``, ``"missing"`` or ``"incomplete (k/n files)"`` (no hashing)."""
    spec = _spec(name_or_spec)
    root = spec.root(data_dir)
    found = sum(_find(root, rel, spec.compressed) is not None for rel in spec.files)
    if found == len(spec.files):
        return "present"
    return "missing" if found == 0 else f"incomplete ({found}/{len(spec.files)} files)"
