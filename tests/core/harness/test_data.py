"""Data directory resolution, missing-dataset messages, sha256 checks and the hash cache."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from pathlib import Path

import pytest

from gatelab.core.harness import data as hdata
from gatelab.core.harness.data import (
    DatasetSpec,
    dataset_file,
    dataset_sha256,
    dataset_status,
    file_sha256,
    locate,
    resolve_data_dir,
)
from gatelab.core.harness.errors import ChecksumError, DatasetNotFoundError


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


A = b"date,x\n2020-01-01,1.0\n2020-01-02,2.0\n"
B = b"meta\n"


def _spec(**kw) -> DatasetSpec:
    base = dict(
        name="toy",
        subdir="toy-set",
        files={"a.csv": _sha(A), "sub/b.txt": None},
        source="https://example.org/toy (download a.csv and sub/b.txt)",
        license="CC BY 4.0",
    )
    base.update(kw)
    return DatasetSpec(**base)


def _write(root: Path, files: dict[str, bytes]) -> None:
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content)


def test_resolution_order(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("GATELAB_DATA", raising=False)
    assert resolve_data_dir() == tmp_path / "home" / ".cache" / "gatelab" / "data"
    assert hdata.data_dir_origin() == "default"
    monkeypatch.setenv("GATELAB_DATA", str(tmp_path / "env"))
    assert resolve_data_dir() == tmp_path / "env"
    assert resolve_data_dir(None) == tmp_path / "env"
    assert hdata.data_dir_origin() == "$GATELAB_DATA"
    assert resolve_data_dir(tmp_path / "flag") == tmp_path / "flag"
    assert hdata.data_dir_origin(str(tmp_path / "flag")) == "--data-dir"
    monkeypatch.setenv("GATELAB_DATA", "  ")  # blank counts as unset
    assert resolve_data_dir() == tmp_path / "home" / ".cache" / "gatelab" / "data"


def test_missing_dataset_message_lists_everything(tmp_path):
    spec = _spec()
    _write(tmp_path / "toy-set", {"a.csv": A})  # sub/b.txt missing
    with pytest.raises(DatasetNotFoundError) as e:
        locate(spec, tmp_path)
    msg = str(e.value)
    root = tmp_path / "toy-set"
    assert f"in {root}" in msg
    assert f"ok      {root / 'a.csv'}" in msg
    assert f"MISSING {root / 'sub/b.txt'}" in msg
    assert "https://example.org/toy" in msg and "CC BY 4.0" in msg
    assert "--data-dir" in msg and "GATELAB_DATA" in msg
    assert isinstance(e.value, FileNotFoundError)
    assert dataset_status(spec, tmp_path) == "incomplete (1/2 files)"
    assert dataset_status(spec, tmp_path / "nowhere") == "missing"


def test_locate_and_gz_alternative(tmp_path):
    gz = gzip.compress(A, mtime=0)
    spec = _spec(files={"a.csv": (_sha(A), _sha(gz)), "sub/b.txt": None})
    _write(tmp_path / "toy-set", {"a.csv.gz": gz, "sub/b.txt": B})
    assert locate(spec, tmp_path) == tmp_path / "toy-set"
    assert dataset_file(spec, "a.csv", tmp_path) == tmp_path / "toy-set" / "a.csv.gz"
    assert dataset_status(spec, tmp_path) == "present"
    # without the .gz allowance the same layout is incomplete
    strict = _spec(name="toy-strict", compressed=False)
    with pytest.raises(DatasetNotFoundError, match="MISSING"):
        locate(strict, tmp_path)


def test_checksum_mismatch_names_file_and_digests(tmp_path):
    spec = _spec()
    bad = A.replace(b"2.0", b"2.5")
    _write(tmp_path / "toy-set", {"a.csv": bad, "sub/b.txt": B})
    with pytest.raises(ChecksumError) as e:
        locate(spec, tmp_path)
    msg = str(e.value)
    assert str(tmp_path / "toy-set" / "a.csv") in msg
    assert f"expected sha256 {_sha(A)}" in msg
    assert f"actual   sha256 {_sha(bad)}" in msg
    # verify=False only checks presence
    assert locate(spec, tmp_path, verify=False) == tmp_path / "toy-set"


def test_dataset_digest_matches_hand_computation(tmp_path):
    spec = _spec()
    _write(tmp_path / "toy-set", {"a.csv": A, "sub/b.txt": B})
    expected = _sha(f"a.csv {_sha(A)}\nsub/b.txt {_sha(B)}\n".encode())
    assert dataset_sha256(spec, tmp_path) == expected


def test_hash_cache_keyed_by_size_and_mtime(tmp_path, monkeypatch):
    monkeypatch.setattr(hdata, "CACHE_MIN_BYTES", 1)
    f = tmp_path / "big.bin"
    f.write_bytes(b"x" * 100)
    assert file_sha256(f) == _sha(b"x" * 100)
    cache_file = tmp_path / "cache" / "sha256.json"  # $GATELAB_CACHE from conftest
    cache = json.loads(cache_file.read_text())
    assert cache[str(f.absolute())]["size"] == 100
    # a planted digest is returned while size and mtime are unchanged: the file is not re-read
    cache[str(f.absolute())]["sha256"] = "0" * 64
    cache_file.write_text(json.dumps(cache))
    assert file_sha256(f) == "0" * 64
    assert file_sha256(f, use_cache=False) == _sha(b"x" * 100)
    # touching the file (new mtime) invalidates the entry
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert file_sha256(f) == _sha(b"x" * 100)
    # same size, new content and mtime
    f.write_bytes(b"y" * 100)
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
    assert file_sha256(f) == _sha(b"y" * 100)


def test_registry(tmp_path):
    spec = hdata.register_dataset(_spec(name="harness-test-toy"))
    assert hdata.register_dataset(_spec(name="harness-test-toy")) is not None  # equal spec: fine
    assert "harness-test-toy" in hdata.list_datasets()
    assert hdata.get_dataset("harness-test-toy") is spec
    with pytest.raises(ValueError, match="already registered"):
        hdata.register_dataset(_spec(name="harness-test-toy", license="other"))
    _write(tmp_path / "toy-set", {"a.csv": A, "sub/b.txt": B})
    assert locate("harness-test-toy", tmp_path) == tmp_path / "toy-set"
    with pytest.raises(DatasetNotFoundError, match="unknown dataset 'no-such-set'"):
        locate("no-such-set", tmp_path)


def test_spec_validation():
    with pytest.raises(ValueError, match="sha256"):
        _spec(files={"a.csv": "abc"})
    with pytest.raises(ValueError, match="relative"):
        _spec(files={"../a.csv": None})
    with pytest.raises(ValueError, match="empty"):
        _spec(files={})
