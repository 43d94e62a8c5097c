"""``provenance.source_hash``: one hash for commits that differ only in results, on a temp git repo."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from gatelab.core.harness import ledger, provenance


def _git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false", *args],
        cwd=root, check=True, capture_output=True,
    )  # fmt: skip


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "core").mkdir(parents=True)
    (root / "docs" / "results").mkdir(parents=True)
    (root / "core" / "a.py").write_text("x = 1\n")
    (root / "docs" / "guide.md").write_text("guide\n")
    (root / "docs" / "results" / "t.jsonl").write_text("{}\n")
    (root / "README.md").write_text("readme\n")
    _git(root, "init", "-q")
    _git(root, "add", ".")
    _git(root, "commit", "-q", "-m", "one")
    return root


def test_results_only_commits_share_the_source_hash(repo):
    first, first_commit = provenance.source_hash(repo), provenance.git_commit(repo)
    assert first is not None and len(first) == 16 and not first.endswith("-dirty")
    (repo / "docs" / "results" / "t.jsonl").write_text("{}\n{}\n")
    (repo / "docs" / "results" / "new.md").write_text("# new\n")
    (repo / "README.md").write_text("readme with a regenerated block\n")
    assert provenance.source_hash(repo) == first  # uncommitted results: not dirty
    assert provenance.git_commit(repo) == first_commit  # nor is the commit: a row's own ledger append
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "results")
    assert provenance.git_commit(repo) != first_commit
    assert provenance.source_hash(repo) == first


def test_source_changes_change_the_hash_and_dirty_is_marked(repo):
    first = provenance.source_hash(repo)
    (repo / "core" / "a.py").write_text("x = 2\n")
    assert provenance.source_hash(repo) == f"{first}-dirty"
    assert provenance.git_commit(repo).endswith("-dirty")
    _git(repo, "commit", "-q", "-am", "code")
    second = provenance.source_hash(repo)
    assert second != first and not second.endswith("-dirty")
    (repo / "docs" / "guide.md").write_text("changed guide\n")  # documentation cannot change a result
    (repo / "core" / "README.md").write_text("# core\n")  # nor can a package's README
    _git(repo, "add", "core/README.md")
    (repo / "tests").mkdir()
    (repo / "tests" / "test_a.py").write_text("def test_a():\n    pass\n")  # nor can a test
    _git(repo, "add", "tests")
    assert provenance.source_hash(repo) == second
    assert provenance.git_commit(repo).endswith("-dirty")  # the commit says the checkout differs
    _git(repo, "commit", "-q", "-am", "docs and tests")
    assert provenance.source_hash(repo) == second
    (repo / "core" / "notes.txt").write_text("not markdown\n")  # any other file in a package counts
    _git(repo, "add", "core/notes.txt")
    assert provenance.source_hash(repo) == f"{second}-dirty"
    _git(repo, "rm", "-q", "--cached", "core/notes.txt")
    (repo / "tools").mkdir()
    (repo / "tools" / "make_rows.py").write_text("print(1)\n")  # a tool may write rows: it counts
    _git(repo, "add", "tools")
    _git(repo, "commit", "-q", "-m", "tool")
    third = provenance.source_hash(repo)
    assert third not in (first, second)
    (repo / "tools" / "results_pages.py").write_text("print('page')\n")  # renders pages, writes no row
    _git(repo, "add", "tools")
    assert provenance.source_hash(repo) == third
    _git(repo, "commit", "-q", "-m", "renderer")
    assert provenance.source_hash(repo) == third


def test_a_renamed_or_removed_file_changes_the_hash(repo):
    first = provenance.source_hash(repo)
    _git(repo, "mv", "core/a.py", "core/b.py")
    _git(repo, "commit", "-q", "-m", "rename")
    assert provenance.source_hash(repo) != first


def test_outside_a_checkout_there_is_no_source_hash(tmp_path):
    assert provenance.source_hash(tmp_path) is None


def test_ledger_records_carry_the_source_hash(tmp_path):
    rec = ledger.append_records(
        "t", [{"model": "m", "dataset": "d", "split": "s", "seed": 0, "mse": 1.0}], tmp_path
    )[0]
    expected = provenance.source_hash()
    if expected is None:
        assert "source_hash" not in rec
    else:
        assert rec["source_hash"] == expected
    assert "source_hash" not in ledger.metric_keys([rec])
