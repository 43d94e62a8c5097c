"""Gate introspection: record every gate's activation during a forward pass.

Every gate layer in :mod:`gatelab.core` calls :func:`record_gate` with its gate value (after the
sigmoid/softmax). Outside a :func:`capture_gates` block that call is a no-op costing one global
lookup; inside, values are stored by the module's qualified name in the captured model::

    with capture_gates(model) as gates:
        model(x)
    gates["encoder.layers.0.gate"]          # last value recorded by that module
    gates.all("encoder.layers.0.gate")      # every call (modules reused in a loop)

Recording is skipped while ``torch.compile`` traces (it would break the graph); run the
eager model to inspect gates.
"""

from __future__ import annotations

import fnmatch
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import torch
from torch import nn

_state = threading.local()


class GateCapture(Mapping[str, torch.Tensor]):
    """Mapping ``module name -> last recorded gate tensor``; ``all(name)`` gives every call."""

    def __init__(self) -> None:
        self._values: dict[str, list[torch.Tensor]] = {}

    def _add(self, name: str, value: torch.Tensor) -> None:
        self._values.setdefault(name, []).append(value)

    def __getitem__(self, name: str) -> torch.Tensor:
        try:
            return self._values[name][-1]
        except KeyError:
            raise KeyError(f"no gate recorded under {name!r}; recorded: {sorted(self._values)}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def all(self, name: str) -> list[torch.Tensor]:
        """Every value recorded under ``name``, in call order."""
        if name not in self._values:
            raise KeyError(f"no gate recorded under {name!r}; recorded: {sorted(self._values)}")
        return list(self._values[name])

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}: {tuple(v[-1].shape)}x{len(v)}" for k, v in self._values.items())
        return f"GateCapture({inner})"


def _active() -> list[tuple[dict[int, str], GateCapture, tuple[str, ...] | None, bool, bool]]:
    stack = getattr(_state, "stack", None)
    if stack is None:
        stack = _state.stack = []
    return stack


def is_capturing() -> bool:
    """True inside a :func:`capture_gates` block (outside ``torch.compile`` tracing).

    Layers whose fused kernels never materialise the gate use this to compute it only when
    someone is listening.
    """
    return bool(getattr(_state, "stack", None)) and not torch.compiler.is_compiling()


def record_gate(module: nn.Module, value: torch.Tensor, suffix: str | None = None) -> None:
    """Record ``value`` as the gate activation of ``module`` if a capture is active.

    ``suffix`` distinguishes several gates inside one module (stored as ``name:suffix``).
    """
    stack = getattr(_state, "stack", None)
    if not stack or torch.compiler.is_compiling():
        return
    for names, capture, include, detach, to_cpu in stack:
        name = names.get(id(module))
        if name is None:
            continue
        key = name if suffix is None else f"{name}:{suffix}"
        if include is not None and not any(fnmatch.fnmatchcase(key, p) for p in include):
            continue
        v = value.detach() if detach else value
        if to_cpu:
            v = v.cpu()
        capture._add(key, v)


@contextmanager
def capture_gates(
    model: nn.Module,
    include: str | list[str] | None = None,
    *,
    detach: bool = True,
    to_cpu: bool = False,
) -> Iterator[GateCapture]:
    """Context manager recording the gate activations of every gate inside ``model``.

    Args:
        model: the module whose sub-modules are named (``model`` itself is named ``""``, shown
            as the class name).
        include: optional glob pattern(s) over recorded names, e.g. ``"*.vsn*"``.
        detach: store detached tensors (default); ``False`` keeps the graph for gate losses.
        to_cpu: move recorded tensors to CPU as they are recorded (saves accelerator memory).
    """
    names = {id(m): (n or type(model).__name__) for n, m in model.named_modules()}
    pats = (include,) if isinstance(include, str) else (tuple(include) if include else None)
    capture = GateCapture()
    entry = (names, capture, pats, detach, to_cpu)
    stack = _active()
    stack.append(entry)
    try:
        yield capture
    finally:
        stack.remove(entry)
