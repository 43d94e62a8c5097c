"""Docs that run: every fenced block in README.md, docs/**/*.md and the domains' READMEs runs, or says why not.

The marker is an HTML comment on the line right before the opening fence (see docs/conventions.md,
"Docs that run"):

* ``<!-- doc-test: run -->``: executed. ``python``: ``exec``'d; ``bash``/``sh``/``console``: every
  line is a ``gatelab ...`` command run in-process through :func:`gatelab.core.harness.cli.main` (exit code
  0 expected; ``train``/``eval`` get tiny ``--set`` overrides); ``yaml``: loaded as an
  ``ExperimentConfig`` and trained with ``gatelab train`` on tiny settings (:data:`TINY` merged in);
  ``json``: a ledger record, validated and its ``table`` looked up. ``run file=NAME`` also writes
  the block (yaml: with :data:`TINY` merged in) to ``NAME`` for the blocks after it.
* ``<!-- doc-test: check: REASON -->`` (yaml, json): parsed and validated only; REASON says why it
  cannot run here.
* ``<!-- doc-test: skip: REASON -->``: not executed; REASON (required) says why (full training,
  real data, GPU, downloads, not code).

A fenced block without a marker fails :func:`test_every_block_is_marked`. The blocks of one file
run in order in one temporary working directory (``docs/`` is linked into it, so
``docs/examples/...`` paths work) with empty ``$GATELAB_DATA`` / ``$GATELAB_RESULTS`` /
``$GATELAB_CACHE`` folders of their own; registrations a block makes are undone afterwards.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import dataclasses
import importlib
import json
import re
import shlex
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import yaml

from gatelab.core import registry as core_registry
from gatelab.core.harness.cli import EXAMPLES, main

REPO = Path(__file__).resolve().parents[1]
#: the pages whose blocks run: README.md, docs/**, and each domain's README
DOC_FILES = sorted(
    [
        REPO / "README.md",
        *(REPO / "docs").rglob("*.md"),
        *(
            p
            for d in ("core", "timeseries", "recsys", "vision", "multimodal")
            if (p := REPO / d / "README.md").is_file()
        ),
    ]
)

_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_MARKER = re.compile(r"^\s*<!--\s*doc-test:\s*(?P<body>.*?)\s*-->\s*$")
_SHELL = {"bash", "sh", "shell", "console"}

#: merged into every YAML block that runs: seconds, not epochs
TINY: dict[str, Any] = {
    "output_dir": "runs",
    "trainer": {
        "max_epochs": 2,  # a cosine schedule with one warm-up epoch needs two
        "max_steps": -1,
        "limit_train_batches": 2,
        "limit_val_batches": 1,
        "limit_test_batches": 1,
        "progress_bar": False,
        "loggers": ["csv"],
    },
}
#: appended to ``gatelab train`` / ``gatelab eval`` commands of runnable shell blocks
TINY_SET = [
    "trainer.max_epochs=2",
    "trainer.max_steps=-1",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "trainer.progress_bar=false",
]


@dataclasses.dataclass
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    mode: str | None  # run | check | skip | None (no marker)
    reason: str = ""
    file: str | None = None
    error: str = ""  # a malformed marker

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


_MODE = re.compile(r"^(?P<mode>[\w-]+)\s*(?P<colon>:?)\s*(?P<rest>.*)$", re.S)


def _parse_marker(body: str) -> tuple[str | None, str, str | None, str]:
    """``(mode, reason, file, error)`` of a marker comment's body."""
    m = _MODE.match(body)
    mode, rest = (m["mode"], m["rest"].strip()) if m else (body, "")
    if mode == "run" and m and not m["colon"]:
        file = None
        for opt in rest.split():
            key, eq, value = opt.partition("=")
            if key != "file" or not eq or not value:
                return None, "", None, f"unknown run option {opt!r} (only file=NAME)"
            file = value
        return "run", "", file, ""
    if mode in ("check", "skip"):
        if not rest or not m or not m["colon"]:
            return None, "", None, f"'{mode}' needs a reason: <!-- doc-test: {mode}: why -->"
        return mode, rest, None, ""
    return (
        None,
        "",
        None,
        f"unknown doc-test marker {body!r} (run, run file=NAME, check: REASON, skip: REASON)",
    )


def parse_blocks(path: Path) -> list[Block]:
    """Every fenced block of a markdown file, with the marker on the line before it (if any)."""
    lines = path.read_text().splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, indent = m["fence"], len(m["indent"])
        start = i
        body = []
        i += 1
        while i < len(lines) and not (
            lines[i].strip().startswith(fence[0] * len(fence)) and lines[i].strip().strip(fence[0]) == ""
        ):
            body.append(lines[i][indent:] if lines[i][:indent].strip() == "" else lines[i])
            i += 1
        if i >= len(lines):
            raise AssertionError(f"{path.relative_to(REPO)}:{start + 1}: unclosed code fence")
        i += 1
        info = m["info"].strip()
        block = Block(path, start + 1, info.split()[0].lower() if info else "", "\n".join(body) + "\n", None)
        marker = _MARKER.match(lines[start - 1]) if start > 0 else None
        if marker:
            block.mode, block.reason, block.file, block.error = _parse_marker(marker["body"])
        blocks.append(block)
    return blocks


ALL_BLOCKS = [b for p in DOC_FILES for b in parse_blocks(p)]


def test_every_block_is_marked():
    """A fenced block must be runnable or say why not (a marker with a reason)."""
    assert len(ALL_BLOCKS) > 25  # the parser found the docs' blocks
    bad = []
    for b in ALL_BLOCKS:
        if b.error:
            bad.append(f"{b.where}: {b.error}")
        elif b.mode is None:
            bad.append(
                f"{b.where}: ```{b.lang} block without <!-- doc-test: run | check: why | skip: why -->"
            )
        elif b.mode == "check" and b.lang not in ("yaml", "json"):
            bad.append(f"{b.where}: 'check' is for yaml/json blocks; use run or skip: REASON")
        elif b.mode == "run" and b.lang not in ("python", "yaml", "json", *_SHELL):
            bad.append(f"{b.where}: no runner for ```{b.lang}; mark it <!-- doc-test: skip: why -->")
    assert not bad, "\n".join(bad)


def test_the_parser_reads_markers(tmp_path):
    md = tmp_path / "x.md"
    md.write_text(
        "text\n<!-- doc-test: run file=a.yaml -->\n```yaml\nname: x\n```\n"
        "<!-- doc-test: skip: needs a GPU -->\n~~~python\nimport cuda\n~~~\n"
        "```\nunmarked\n```\n<!-- doc-test: skip -->\n```bash\nx\n```\n"
        "<!-- doc-test: run fast -->\n```bash\nx\n```\n<!-- doc-test: skip:no space -->\n```\nx\n```\n"
        "<!-- doc-test: check: no data here -->\n```yaml\n  indented: 1\n```\n"
    )
    blocks = parse_blocks(md)
    got = [(b.line, b.lang, b.mode, b.reason, b.file, bool(b.error)) for b in blocks]
    assert got == [
        (3, "yaml", "run", "", "a.yaml", False),
        (7, "python", "skip", "needs a GPU", None, False),
        (10, "", None, "", None, False),
        (14, "bash", None, "", None, True),
        (18, "bash", None, "", None, True),
        (22, "", "skip", "no space", None, False),
        (26, "yaml", "check", "no data here", None, False),
    ]
    assert blocks[0].code == "name: x\n" and blocks[-1].code == "  indented: 1\n"


# --------------------------------------------------------------------------- runners


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _commands(code: str, where: str) -> list[list[str]]:
    """The ``gatelab`` commands of a shell block (``$`` prompts, comments and ``\\`` continuations allowed)."""
    joined = re.sub(r"\\\n", " ", code)
    out = []
    for line in joined.splitlines():
        line = line.strip().removeprefix("$ ")
        argv = shlex.split(line, comments=True)
        if not argv:
            continue
        if argv[:3] == ["python", "-m", "gatelab"]:
            argv = ["gatelab", *argv[3:]]
        if argv[0] != "gatelab":
            raise AssertionError(
                f"{where}: cannot run {line!r} (only gatelab commands run); mark the block "
                "<!-- doc-test: skip: why -->"
            )
        out.append(argv[1:])
    return out


def _run_gatelab(argv: list[str], where: str, capsys: pytest.CaptureFixture[str]) -> None:
    if argv and argv[0] in ("train", "eval"):
        argv = [*argv, "--set", *TINY_SET]
    rc = main(argv)
    out = capsys.readouterr()
    assert rc == 0, f"{where}: `gatelab {shlex.join(argv)}` exited with {rc}:\n{out.err[-3000:]}"


def _run_block(b: Block, cwd: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from gatelab.core.harness.configs import ExperimentConfig

    if b.mode == "skip":
        return
    if b.lang == "yaml":
        data = yaml.safe_load(b.code)
        ExperimentConfig.from_dict(data)  # the block as written is a valid config
        tiny = _merge(data, TINY)
        target = cwd / (b.file or f"doc-block-{b.line}.yaml")
        if b.file or b.mode == "run":
            target.write_text(yaml.safe_dump(tiny, sort_keys=False))
        if b.mode == "run":
            _run_gatelab(["train", "--config", str(target)], b.where, capsys)
    elif b.lang == "json":
        from gatelab.core.harness.ledger import validate_record
        from gatelab.core.harness.repro import get_table

        record = json.loads(b.code)
        validate_record(record, record["table"])
        if b.mode == "run":
            get_table(record["table"])  # a table that exists
    elif b.lang == "python":
        module = types.ModuleType("__doc_test__")  # a real module: dataclasses look their module up
        sys.modules[module.__name__] = module
        try:
            exec(compile(b.code, b.where, "exec"), module.__dict__)
        finally:
            del sys.modules[module.__name__]
    elif b.lang in _SHELL:
        for argv in _commands(b.code, b.where):
            _run_gatelab(argv, b.where, capsys)
    else:  # pragma: no cover - test_every_block_is_marked reports these
        raise AssertionError(f"{b.where}: no runner for ```{b.lang}")


@contextlib.contextmanager
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A working directory with docs/ linked in, private data/results/cache dirs, registries restored."""
    cwd = tmp_path / "work"
    cwd.mkdir()
    (cwd / "docs").symlink_to(REPO / "docs")
    for var, sub in (("GATELAB_DATA", "data"), ("GATELAB_RESULTS", "results"), ("GATELAB_CACHE", "cache")):
        (tmp_path / sub).mkdir()
        monkeypatch.setenv(var, str(tmp_path / sub))
    monkeypatch.chdir(cwd)
    regs = [core_registry.MODELS, core_registry.DATAMODULES, core_registry.TASKS, core_registry.DATASETS,
            core_registry.TABLES]  # fmt: skip
    core_registry.load_registrations()
    saved = [dict(r._entries) for r in regs]
    try:
        yield cwd
    finally:
        for r, entries in zip(regs, saved):
            r._entries.clear()
            r._entries.update(entries)


_RUNNABLE_FILES = sorted({b.path for b in ALL_BLOCKS if b.mode in ("run", "check")})


@pytest.mark.parametrize("path", _RUNNABLE_FILES, ids=[str(p.relative_to(REPO)) for p in _RUNNABLE_FILES])
def test_doc_blocks_run(path, tmp_path, monkeypatch, capsys):
    with _isolated(tmp_path, monkeypatch) as cwd:
        for b in (b for b in ALL_BLOCKS if b.path == path):
            _run_block(b, cwd, capsys)


def test_cli_help_examples_run(tmp_path, monkeypatch, capsys):
    """The example at the end of every subcommand's ``--help`` runs (train before eval and export: they need its checkpoint)."""
    order = ["list", "env", "train", "eval", "export", "predict", "repro", "prepare"]
    assert sorted(order) == sorted(EXAMPLES)
    with _isolated(tmp_path, monkeypatch):
        for command in order:
            for argv in _commands(EXAMPLES[command], f"gatelab {command} --help"):
                _run_gatelab(argv, f"example of gatelab {command} --help", capsys)


@pytest.mark.parametrize("path", sorted((REPO / "docs" / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_example_configs_load(path):
    """Every experiment YAML shipped in docs/examples loads and validates."""
    from gatelab.core.harness import get_datamodule, get_task
    from gatelab.core.harness.configs import load_experiment
    from gatelab.core.registry import model_info

    cfg = load_experiment(path)
    assert model_info(cfg.model.name).name == cfg.model.name
    assert callable(get_datamodule(cfg.data.name)) and get_task(cfg.task.name)


# --------------------------------------------------------------------------- names in prose

_REF = re.compile(r"(?<![\w./-])(gatelab(?:\.[A-Za-z_]\w*)+)(?::([A-Za-z_][\w.-]*))?")
#: dotted names in the docs that are not Python objects
_NOT_OBJECTS = {"gatelab.plugins": "the entry-point group", "gatelab.kernels": "a logger name"}


def _texts():
    """Every markdown page, and every docstring of gatelab's Python modules."""
    for p in DOC_FILES:
        yield p, p.read_text()
    for folder in ("gatelab", "core", "timeseries", "recsys", "vision", "multimodal"):
        for p in sorted((REPO / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(p.read_text())):
                if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                    doc = ast.get_docstring(node)
                    if doc:
                        yield p, doc


def _resolve(dotted: str, attr: str | None) -> object:
    parts = dotted.split(".")
    obj: object = None
    for i in range(len(parts), 0, -1):
        name = ".".join(parts[:i])
        try:
            obj = importlib.import_module(name)
            break
        except ModuleNotFoundError as e:
            if e.name and name.startswith(e.name):  # not a module: an attribute of a shorter prefix
                continue
            raise
    for part in [*parts[i:], *(attr.rstrip(".").split(".") if attr else [])]:
        obj = obj[part] if isinstance(obj, dict) else getattr(obj, part)
    return obj


def test_docs_name_what_exists():
    """Every ``gatelab.x.y`` / ``"gatelab.x:attr"`` named in the docs and docstrings exists
    (stale names such as ``run_gateformer_ett`` fail here)."""
    bad = set()
    for path, text in _texts():
        for m in _REF.finditer(text):
            dotted, attr = m[1].rstrip("."), m[2]
            if dotted in _NOT_OBJECTS:
                continue
            try:
                _resolve(dotted, attr)
            except Exception as e:  # reported below, all at once
                ref = dotted + (f":{attr}" if attr else "")
                bad.add(f"{path.relative_to(REPO)}: {ref}: {type(e).__name__}: {e}")
    assert not bad, "\n".join(sorted(bad))
