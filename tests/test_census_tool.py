"""``tools/census.py``, the one bad-input census writer: records only under GATELAB_CENSUS_OUT,
validates cases, records unclear cases before failing, renders the summary."""

from __future__ import annotations

import json

import census
import pytest

tool = census._mod


def test_record_is_a_no_op_without_the_env_var(monkeypatch, tmp_path):
    monkeypatch.delenv(census.ENV, raising=False)
    census.record("x.loader", [{"case": "c", "fault": "f", "outcome": "error", "clear": True, "message": "m"}])
    assert not list(tmp_path.iterdir())


def test_record_validates_cases(monkeypatch):
    monkeypatch.delenv(census.ENV, raising=False)
    with pytest.raises(ValueError, match="misses keys"):
        census.record("x", [{"case": "c"}])
    with pytest.raises(ValueError, match="outcome='crash'"):
        census.record("x", [{"case": "c", "fault": "f", "outcome": "crash", "clear": True, "message": ""}])
    with pytest.raises(TypeError, match="clear must be a bool"):
        census.record("x", [{"case": "c", "fault": "f", "outcome": "error", "clear": 1, "message": ""}])


def test_check_error_records_clear_and_unclear_cases(monkeypatch, tmp_path):
    out = tmp_path / "rows.jsonl"
    monkeypatch.setenv(census.ENV, str(out))

    def bad() -> None:
        raise ValueError("/tmp/pytest-of-u/pytest-7/test_x0/a.csv:3: column 'p': nan")

    census.check_error("t.csv", "named", "nan", bad, names=["a.csv:3", "column 'p'"], exc=ValueError)
    with pytest.raises(AssertionError, match="does not name"):
        census.check_error("t.csv", "vague", "nan", bad, names=["line 4"], exc=ValueError)
    with pytest.raises(AssertionError, match="no error was raised"):
        census.check_error("t.csv", "silent", "nan", lambda: None, names=["x"])
    with pytest.raises(AssertionError):
        census.check_policy("t.csv", "policy", "nan filled", False, "filled 0")
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["case"], r["clear"]) for r in rows] == [
        ("named", True),
        ("vague", False),
        ("silent", False),
        ("policy", False),
    ]
    assert rows[0]["message"] == "ValueError: <tmp>/a.csv:3: column 'p': nan"
    md = tool.render_md(rows)
    assert "| t.csv | 4 | 1 | 3 | 1 |" in md and "## Not clear" in md and "| t.csv | vague |" in md
