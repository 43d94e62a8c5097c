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
