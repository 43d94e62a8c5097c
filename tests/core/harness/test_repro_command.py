"""The command a repro row records (gatelab.core.harness.repro.recorded_command): no machine paths."""

from __future__ import annotations

from gatelab.core.harness.repro import recorded_command


def test_place_options_are_left_out_and_paths_made_relative(tmp_path):
    cmd = recorded_command(
        "ctr",
        ["--models", "lr", "--data-dir", "/work/shared/data", "--results-dir=/x/docs/results",
         "--output-dir", str(tmp_path / "runs" / "ctr"), "--cache", f"--out={tmp_path}/a b", "--seeds", "0"],
        cwd=tmp_path,
    )  # fmt: skip
    assert cmd == "gatelab repro ctr --models lr --output-dir runs/ctr --cache '--out=a b' --seeds 0"


def test_paths_outside_the_working_directory_are_kept(tmp_path):
    assert recorded_command("ctr", ["--output-dir", "/elsewhere/runs"], cwd=tmp_path) == (
        "gatelab repro ctr --output-dir /elsewhere/runs"
    )
    assert recorded_command("ctr", ["--output-dir", str(tmp_path)], cwd=tmp_path) == "gatelab repro ctr --output-dir ."


def test_verify_names_other_data_as_the_reason():
    from gatelab.core.harness.repro import ReproTable, _compare

    table = ReproTable("t-data", "d", "p", run=lambda a: [])
    rec = {"model": "m", "dataset": "d", "split": "s", "seed": 0, "mse": 1.0, "data_sha256": "a" * 64}
    same = _compare(table, 1, rec, dict(rec))
    assert same["passed"], same
    other = _compare(table, 1, rec, {**rec, "data_sha256": "b" * 64, "mse": 1.5})
    assert not other["passed"] and "data differs (recorded data_sha256 aaaaaaaaaaaa, now bbbbbbbbbbbb)" in other["reason"]
