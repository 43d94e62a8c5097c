"""One reader of JSON-lines manifests (caption manifests, ``gatelab predict`` inputs, the speech
manifest): each line a JSON object with known keys; errors name the file and line."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator
from pathlib import Path

__all__ = ["jsonl_objects"]


def jsonl_objects(
    path: Path,
    allowed: Collection[str],
    *,
    required: Collection[str] = (),
    error: type[Exception] = ValueError,
    blank_lines: bool = True,
) -> Iterator[tuple[int, dict]]:
    """``(line number, object)`` for each line of the JSONL file ``path``.

    Every line must be a JSON object whose keys are in ``allowed`` and include ``required``;
    otherwise ``error`` is raised as ``"<path>:<line>: ..."`` (not valid JSON, not an object,
    missing keys, unknown keys). ``blank_lines``: skip empty lines (``False``: an error).
    """
    allowed = set(allowed)
    with Path(path).open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                if blank_lines:
                    continue
                raise error(f"{path}:{lineno}: empty line")
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise error(f"{path}:{lineno}: not valid JSON ({e.msg}, column {e.colno})") from None
            if not isinstance(rec, dict):
                raise error(f"{path}:{lineno}: expected a JSON object, got {type(rec).__name__}")
            missing = [k for k in required if k not in rec]
            unknown = sorted(set(rec) - allowed)
            if missing or unknown:
                raise error(
                    f"{path}:{lineno}: "
                    + "; ".join(
                        ([f"missing keys {missing}"] if missing else [])
                        + ([f"unknown key(s) {unknown}; allowed: {', '.join(sorted(allowed))}"] if unknown else [])
                    )
                )
            yield lineno, rec
