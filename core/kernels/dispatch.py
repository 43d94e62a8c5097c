"""Kernel dispatch: one PyTorch reference per op, optional faster backends.

Every op (``"swiglu"``, ``"geglu"``, ...) has a reference implementation in plain PyTorch that
runs on any device and is the ground truth in tests. Backends (Triton first) register with a
priority, an availability check and a *verifier* that accepts or rejects concrete inputs
(dtype, shape, device, strides). Selection:

* ``auto`` (default): the highest-priority backend that is available and whose verifier
  accepts the inputs; otherwise the reference. Auto never picks an interpreted Triton backend
  (``TRITON_INTERPRET=1`` is for tests, not speed), and inside ``torch.compile`` auto uses the
  reference so the compiler sees plain PyTorch it can fuse.
* an explicit backend (``GATELAB_BACKEND=triton``, ``use_backend("triton")`` or per op
  ``GATELAB_BACKEND="swiglu=triton,geglu=reference"``): used, or a :class:`BackendError`
  saying why it cannot run. Explicit requests never fall back silently.

The backend chosen for each (op, backend, device type) is logged once at INFO level on the
``gatelab.kernels`` logger.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

log = logging.getLogger("gatelab.kernels")

ENV_VAR = "GATELAB_BACKEND"
REFERENCE = "reference"
AUTO = "auto"


class BackendError(RuntimeError):
    """An explicitly requested backend cannot run these inputs (the message says why)."""


Verifier = Callable[..., "str | None"]


@dataclasses.dataclass
class Backend:
    name: str
    fn: Callable[..., Any]
    priority: int
    available: Callable[[], str | None]
    verifier: Verifier
    interpreted: Callable[[], bool] = lambda: False
    devices: tuple[str, ...] | None = None


@dataclasses.dataclass
class KernelOp:
    name: str
    reference: Callable[..., Any]
    doc: str = ""
    backends: dict[str, Backend] = dataclasses.field(default_factory=dict)
    # backends by priority, best first; filled by the first auto selection, reset by register_backend
    ranked: list[Backend] | None = None


_OPS: dict[str, KernelOp] = {}
_logged: set[tuple[str, str, str]] = set()
_local = threading.local()


def register_op(name: str, doc: str = "") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering ``fn`` as the reference implementation of op ``name``."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in _OPS:
            raise ValueError(f"kernel op {name!r} is already registered")
        _OPS[name] = KernelOp(name=name, reference=fn, doc=doc or (fn.__doc__ or "").strip().split("\n")[0])
        return fn

    return deco


def register_backend(
    op: str,
    name: str,
    *,
    priority: int = 10,
    available: Callable[[], str | None] = lambda: None,
    verifier: Verifier = lambda *a, **k: None,
    interpreted: Callable[[], bool] = lambda: False,
    devices: tuple[str, ...] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering ``fn`` as backend ``name`` of ``op``.

    ``available()`` returns ``None`` when the backend can run at all in this process, else the
    reason it cannot. ``verifier(*args, **kwargs)`` returns ``None`` when the backend accepts these
    inputs, else the reason (e.g. ``"dtype float64 not supported"``). ``devices``: the device types
    of the first tensor argument on which ``auto`` considers the backend (``None``: any); it lets
    ``auto`` skip a CUDA-only backend for CPU tensors without running its checks (dispatch runs on
    every forward, so its CPU overhead matters). Explicit requests ignore ``devices`` and ask the
    verifier.
    """
    if name in (REFERENCE, AUTO):
        raise ValueError(f"backend name {name!r} is reserved")

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        if op not in _OPS:
            raise ValueError(f"register the reference of op {op!r} before its backends")
        _OPS[op].backends[name] = Backend(name, fn, priority, available, verifier, interpreted, devices)
        _OPS[op].ranked = None
        return fn

    return deco


def ops() -> dict[str, KernelOp]:
    """Registered ops by name."""
    return dict(_OPS)


def backends(op: str) -> list[str]:
    """Backends of ``op``, best first, ending with ``"reference"``."""
    k = _op(op)
    return [b.name for b in sorted(k.backends.values(), key=lambda b: -b.priority)] + [REFERENCE]


def _op(name: str) -> KernelOp:
    try:
        return _OPS[name]
    except KeyError:
        raise KeyError(f"unknown kernel op {name!r}; registered: {sorted(_OPS)}") from None


def _parse(spec: str, source: str) -> dict[str, str]:
    """``"triton"`` -> {"*": "triton"}; ``"swiglu=triton,gla=reference"`` -> per op."""
    out: dict[str, str] = {}
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        if "=" in part:
            k, v = (s.strip() for s in part.split("=", 1))
            if k not in _OPS:
                raise BackendError(f"{source}: unknown kernel op {k!r}; registered: {sorted(_OPS)}")
            out[k] = v
        else:
            out["*"] = part
    return out


def requested_backend(op: str) -> str:
    """The backend requested for ``op`` by the innermost :func:`use_backend`, else the env var."""
    for spec in reversed(getattr(_local, "stack", [])):
        if op in spec:
            return spec[op]
        if "*" in spec:
            return spec["*"]
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        spec = _parse(env, f"${ENV_VAR}={env!r}")
        return spec.get(op, spec.get("*", AUTO))
    return AUTO


@contextmanager
def use_backend(spec: str | dict[str, str]) -> Iterator[None]:
    """Force a backend inside the block: ``"auto"``, ``"reference"``, ``"triton"``, or per op
    (``{"swiglu": "triton"}`` or ``"swiglu=triton,geglu=reference"``). Nested blocks win."""
    parsed = _parse(spec, "use_backend") if isinstance(spec, str) else dict(spec)
    for k in parsed:
        if k != "*":
            _op(k)
    stack = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    stack.append(parsed)
    try:
        yield
    finally:
        stack.pop()


def select(op: str, *args: Any, **kwargs: Any) -> tuple[str, Callable[..., Any]]:
    """Return ``(backend name, callable)`` that :func:`dispatch` would use for these inputs."""
    name, fn, _ = _select(op, args, kwargs)
    return name, fn


def _select(op: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, Callable[..., Any], str]:
    """``(backend name, callable, device type of the first tensor argument)``."""
    k = _op(op)
    want = requested_backend(op)
    dev = _device_type(args)
    if want == REFERENCE:
        return REFERENCE, k.reference, dev
    if want == AUTO:
        if torch.compiler.is_compiling():
            return REFERENCE, k.reference, dev
        cands = k.ranked
        if cands is None:
            cands = k.ranked = sorted(k.backends.values(), key=lambda b: -b.priority)
        for b in cands:
            if b.devices is not None and dev not in b.devices:
                continue
            if b.interpreted() or b.available() is not None:
                continue
            if b.verifier(*args, **kwargs) is None:
                return b.name, b.fn, dev
        return REFERENCE, k.reference, dev
    if want not in k.backends:
        raise BackendError(f"op {op!r} has no backend {want!r}; available: {backends(op)}")
    b = k.backends[want]
    why = b.available() or b.verifier(*args, **kwargs)
    if why is not None:
        raise BackendError(f"backend {want!r} was requested for op {op!r} but cannot run: {why}")
    return b.name, b.fn, dev


def _device_type(args: tuple[Any, ...]) -> str:
    for a in args:
        if isinstance(a, torch.Tensor):
            return a.device.type
    return "none"


def dispatch(op: str, *args: Any, **kwargs: Any) -> Any:
    """Run ``op`` on the selected backend (see module docstring)."""
    name, fn, dev = _select(op, args, kwargs)
    key = (op, name, dev)
    if key not in _logged and not torch.compiler.is_compiling():
        _logged.add(key)
        log.info("gatelab.kernels: op %r runs on backend %r (%s tensors)", op, name, dev)
    return fn(*args, **kwargs)


def reference(op: str) -> Callable[..., Any]:
    """The reference implementation of ``op``."""
    return _op(op).reference
