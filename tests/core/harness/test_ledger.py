"""Results ledger: record validation, append, markdown with mean ± std and paper differences."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from gatelab.core.harness import ledger
from gatelab.core.harness.ledger import (
    LedgerError,
    append_records,
    read_records,
    render_markdown,
    resolve_results_dir,
    validate_record,
)

PROV = {
    "command": "gatelab repro t",
    "commit": "abc123",
    "machine": "cpu x2",
    "date": "2025-01-01T00:00:00+00:00",
}


def _row(**kw):
    return {"model": "m", "dataset": "d", "horizon": 96, "seed": 0, **PROV, **kw}


def test_validate_normalises():
    rec = validate_record(
        _row(
            mse=np.float32(0.5), mae=torch.tensor(0.25), auc=float("nan"), psnr=math.inf, config={"lr": 0.1}
        ),
        "t",
    )
    assert rec["table"] == "t"
    assert rec["mse"] == 0.5 and type(rec["mse"]) is float
    assert rec["mae"] == 0.25 and type(rec["mae"]) is float
    assert rec["auc"] is None and rec["psnr"] is None
    assert "auc=nan" in rec["note"] and "psnr=inf" in rec["note"]
    assert json.loads(rec["config"]) == {"lr": 0.1}
    # an existing note is kept
    assert validate_record(_row(mse=float("nan"), note="quick run"), "t")["note"].startswith("quick run; ")


@pytest.mark.parametrize(
    "row, msg",
    [
        (_row(MSE=0.1), "'MSE'"),
        (_row(**{"val mse": 0.1}), "'val mse'"),
        (_row(mse=[0.1, 0.2]), "'mse'.*not flat"),
        (_row(extra={"a": 1}), "'extra'.*not flat"),
        ({k: v for k, v in _row().items() if k != "commit"}, "commit"),
        ({k: v for k, v in _row().items() if k != "horizon"}, "horizon|split"),
        (_row(seed="0"), "seed"),
        (_row(table="other"), "differs"),
    ],
)
def test_validate_rejects(row, msg):
    with pytest.raises(LedgerError, match=msg):
        validate_record(row, "t")


def test_append_and_read(tmp_path):
    rows = [_row(seed=0, mse=0.5), _row(seed=1, mse=0.7, split="test")]
    written = append_records("t", rows, tmp_path)
    lines = (tmp_path / "t.jsonl").read_text().splitlines()
    assert [json.loads(x) for x in lines] == written == read_records("t", tmp_path)
    assert all(r["table"] == "t" for r in written)
    assert (tmp_path / "t.md").is_file()
    # one bad row: nothing appended
    with pytest.raises(LedgerError):
        append_records("t", [_row(seed=2, mse=0.1), _row(seed=3, MSE=1.0)], tmp_path)
    assert len(read_records("t", tmp_path)) == 2
    # NaN never reaches the file as a bare NaN token
    append_records("t", [_row(seed=4, mse=float("nan"))], tmp_path)
    assert "NaN" not in (tmp_path / "t.jsonl").read_text()
    with pytest.raises(LedgerError, match="table name"):
        append_records("Bad Name", [_row()], tmp_path)


def test_stamp_fills_provenance(tmp_path):
    (rec,) = append_records(
        "s", [{"model": "m", "dataset": "d", "split": "test", "seed": 0, "acc": 1.0}], tmp_path
    )
    for k in ("command", "commit", "machine", "date"):
        assert isinstance(rec[k], str) and rec[k]
    with pytest.raises(LedgerError, match="command"):
        append_records(
            "s", [{"model": "m", "dataset": "d", "split": "test", "seed": 0}], tmp_path, stamp=False
        )


def test_render_mean_std_paper_diff(tmp_path):
    rows = [
        _row(seed=0, mse=0.10, mae=1.0, paper_mse=0.15),
        _row(seed=1, mse=0.99, mae=2.0, paper_mse=0.15),  # replaced below by a re-run of seed 1
        _row(seed=2, mse=0.30, mae=3.0, paper_mse=0.15),
        _row(seed=1, mse=0.20, mae=float("nan"), paper_mse=0.15, command="gatelab repro t --seeds 1"),
        _row(model="n", seed=0, mse=0.40, mae=5.0),
        _row(model="m", horizon=192, seed=0, mse=123.456, mae=7.0, paper_mse=120.0),
    ]
    append_records("t", rows, tmp_path, render=False)
    md = render_markdown("t", tmp_path, title="T", description="what")
    assert md == (tmp_path / "t.md").read_text()
    lines = md.splitlines()
    assert lines[0] == "# T" and "what" in lines
    header = next(line for line in lines if line.startswith("| model"))
    assert header == "| model | dataset | horizon | seeds | mse | paper mse | Δ mse | mae |"
    body = [line for line in lines if line.startswith("| m ") or line.startswith("| n ")]
    # group (m, d, 96): seeds 0, 1 (latest: 0.20), 2 -> mse 0.10, 0.20, 0.30
    mean = (0.10 + 0.20 + 0.30) / 3
    std = math.sqrt(((0.10 - mean) ** 2 + (0.20 - mean) ** 2 + (0.30 - mean) ** 2) / 2)
    # mae: seed 1 is NaN -> mean/std over seeds 0 and 2
    mae_mean = (1.0 + 3.0) / 2
    mae_std = math.sqrt(((1.0 - mae_mean) ** 2 + (3.0 - mae_mean) ** 2) / 1)
    assert body[0] == (
        f"| m | d | 96 | 3 | {mean:.4f} ± {std:.4f} | 0.1500 | {mean - 0.15:+.4f} | {mae_mean:.4f} ± {mae_std:.4f} (1 NaN) |"
    )
    # horizons sort numerically (96 before 192); big values get 2 decimals; one seed: no ±
    assert body[1] == f"| m | d | 192 | 1 | 123.46 | 120.00 | {123.456 - 120.0:+.2f} | 7.0000 |"
    assert body[2] == "| n | d | 96 | 1 | 0.4000 | — | — | 5.0000 |"
    assert "- `gatelab repro t --seeds 1` (commit abc123" in md
    assert "- `gatelab repro t` (commit abc123" in md


def test_results_dir_resolution(tmp_path, monkeypatch, repo_root):
    assert resolve_results_dir(tmp_path / "x") == tmp_path / "x"
    monkeypatch.setenv("GATELAB_RESULTS", str(tmp_path / "env"))
    assert resolve_results_dir() == tmp_path / "env"
    monkeypatch.delenv("GATELAB_RESULTS")
    assert resolve_results_dir() == repo_root / "docs" / "results"
    monkeypatch.setattr(ledger.provenance, "repo_root", lambda: None)
    assert str(resolve_results_dir()) == "results"


def test_metric_keys():
    recs = [
        _row(mse=0.1, wall_s=3.0, data_sha256="ab", config="{}", paper_mse=0.2, variant="v", note="n"),
        _row(q50=None, speedup=2.0, baseline="eager"),
    ]
    assert ledger.metric_keys(recs) == ["mse", "q50", "speedup"]


# --------------------------------------------------------------------------- crash safety


def _lines(path):
    return path.read_bytes().split(b"\n")


def test_torn_tail_is_skipped_on_read_and_quarantined_before_the_next_append(tmp_path):
    append_records("t", [_row(seed=0, mse=0.1), _row(seed=1, mse=0.2)], tmp_path)
    path = tmp_path / "t.jsonl"
    good = path.read_bytes()
    fragment = b'{"model": "m", "dataset": "d", "hori'  # a write cut short by a kill
    path.write_bytes(good + fragment)
    with pytest.warns(RuntimeWarning, match=r"t\.jsonl:3: torn last line skipped"):
        assert [r["seed"] for r in read_records("t", tmp_path)] == [0, 1]
    with pytest.warns(RuntimeWarning, match=r"torn last line at byte \d+ .* moved to .*t\.jsonl\.torn"):
        append_records("t", [_row(seed=2, mse=0.3)], tmp_path)
    assert (tmp_path / "t.jsonl.torn").read_bytes() == fragment + b"\n"
    assert path.read_bytes().startswith(good) and path.read_bytes().endswith(b"\n")
    assert [r["seed"] for r in read_records("t", tmp_path)] == [0, 1, 2]  # no warning now
    # a complete last line that is not JSON (zeros from a crash) is torn too; several are moved at once
    path.write_bytes(path.read_bytes() + b"\x00\x00\x00\n" + b"garbage\n" + b'{"seed": ')
    with pytest.warns(RuntimeWarning, match="torn last line"):
        append_records("t", [_row(seed=3, mse=0.4)], tmp_path)
    assert [r["seed"] for r in read_records("t", tmp_path)] == [0, 1, 2, 3]
    assert (
        tmp_path / "t.jsonl.torn"
    ).read_bytes() == fragment + b"\n" + b'\x00\x00\x00\ngarbage\n{"seed": \n'
    # a ledger that is all torn tail (the first write was cut short)
    (tmp_path / "u.jsonl").write_bytes(b'{"mod')
    with pytest.warns(RuntimeWarning):
        assert read_records("u", tmp_path) == []
    with pytest.warns(RuntimeWarning):
        append_records("u", [_row(mse=0.5)], tmp_path)
    assert len(read_records("u", tmp_path)) == 1


def test_corrupt_middle_line_names_file_and_line(tmp_path):
    append_records("t", [_row(seed=0, mse=0.1), _row(seed=1, mse=0.2), _row(seed=2, mse=0.3)], tmp_path)
    path = tmp_path / "t.jsonl"
    lines = _lines(path)
    lines[1] = b'{"model": broken'
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(LedgerError, match=r"t\.jsonl:2: not a JSON object"):
        read_records("t", tmp_path)
    lines[1] = b"[1, 2]"
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(LedgerError, match=r"t\.jsonl:2: not a JSON object: list"):
        read_records("t", tmp_path)


def test_old_records_without_config_hash_still_read_and_render(tmp_path):
    path = tmp_path / "old.jsonl"
    path.write_text(
        "".join(json.dumps({"table": "old", **_row(seed=s, mse=0.1 * (s + 1))}) + "\n" for s in (0, 1))
    )
    md = render_markdown("old", tmp_path)
    assert "| model | dataset | horizon | seeds | mse |" in md  # no config column without hashes
    assert "| m | d | 96 | 2 | 0.1500 ± 0.0707 |" in md


def test_config_hash_is_canonical():
    a = ledger.config_hash({"lr": 0.1, "model": {"d": 8, "e": [1, 2]}})
    assert a == ledger.config_hash({"model": {"e": [1, 2], "d": 8}, "lr": 0.1})
    assert a == ledger.config_hash('{"model": {"e": [1, 2], "d": 8}, "lr": 0.1}')  # json text alike
    assert a != ledger.config_hash({"lr": 0.2, "model": {"d": 8, "e": [1, 2]}})
    assert len(a) == 16 and int(a, 16) >= 0


def test_markdown_never_mixes_configs(tmp_path):
    rows = [
        _row(seed=0, mse=0.10, config_hash="aaaa1111aaaa1111"),
        _row(seed=1, mse=0.20, config_hash="aaaa1111aaaa1111"),
        _row(seed=0, mse=0.50, config_hash="bbbb2222bbbb2222"),  # a re-run with another config
        _row(model="n", seed=0, mse=0.70, config_hash="cccc3333cccc3333"),
        _row(model="o", seed=0, mse=0.90),  # an old record without a hash
    ]
    append_records("t", rows, tmp_path, render=False)
    md = render_markdown("t", tmp_path)
    body = [line for line in md.splitlines() if line.startswith(("| m ", "| n ", "| o "))]
    # group m: only the latest config's record (seed 0 of bbbb...): not mean(0.50, 0.20)
    assert body == [
        "| m | d | 96 | bbbb2222 | 1 | 0.5000 |",
        "| n | d | 96 | cccc3333 | 1 | 0.7000 |",
        "| o | d | 96 |  | 1 | 0.9000 |",
    ]
    assert "Records of an earlier configuration, not shown" in md
    assert "- model=m, dataset=d, horizon=96 (shown: bbbb2222bbbb2222; not shown: aaaa1111aaaa1111: 2)" in md


def _append_many(folder, start):
    for i in range(start, start + 40):
        append_records("c", [_row(seed=i, mse=float(i), note="x" * 3000)], folder, render=False)


def test_concurrent_appends_never_interleave(tmp_path):
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_append_many, args=(tmp_path, k * 100)) for k in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(600)  # generous: each append reads git provenance, slow on a loaded machine; not a timing test
        assert p.exitcode == 0
    recs = read_records("c", tmp_path)
    assert sorted(r["seed"] for r in recs) == sorted(k * 100 + i for k in range(3) for i in range(40))
    assert (tmp_path / "c.jsonl.lock").exists()
