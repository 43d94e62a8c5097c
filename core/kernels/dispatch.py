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

Overhead: :func:`dispatch` runs on every forward, so its eager path does as little Python as it
can (measured by ``python benchmarks/kernels.py --parts dispatch``, recorded in
``docs/results/kernels-dispatch-speed.md``). The requested backend is resolved from a cached parse
of the raw ``GATELAB_BACKEND`` value (read from ``os.environ``'s dict, a few tens of ns; the
``use_backend`` stack is consulted only while some block is open); ``auto`` keeps, per op, the
backends that can run on each device type (``devices``, ``interpreted()`` and ``available()``
evaluated once per device type and ``TRITON_INTERPRET`` value, see :func:`clear_cache`), so a CPU
tensor with only CUDA backends goes straight to the reference. Verifiers still run on every call
(they check strides and shapes, which no cache key can summarise cheaply).
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
_is_compiling = torch.compiler.is_compiling

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
    # auto's candidates per (device type, raw TRITON_INTERPRET): the ranked backends whose
    # ``devices`` admit the device type, that are not interpreted and are available (their
    # verifiers still run per call); reset by register_backend and clear_cache
    auto: dict[tuple[str, Any], list[Backend]] = dataclasses.field(default_factory=dict)
    # device types whose auto choice of the reference was logged (the fast path's "logged once")
    logged_reference: set[str] = dataclasses.field(default_factory=set)
    # per-op requests for this op name apply to this op too (see register_op)
    family: str | None = None


_OPS: dict[str, KernelOp] = {}
_logged: set[tuple[str, str, str]] = set()
_local = threading.local()
# open use_backend blocks in all threads: while 0, no thread-local stack needs reading
_open_blocks = 0
_blocks_lock = threading.Lock()

# Raw environment reads: ``os.environ.get`` encodes the key and decodes the value (~1-2 us), too
# much for a per-call check; ``os.environ._data`` is the dict it wraps (CPython, every platform;
# updated by ``os.environ[...] = ...``, ``monkeypatch.setenv`` and ``del``).
_ENV_DATA: dict[Any, Any] | None = getattr(os.environ, "_data", None)
if not isinstance(_ENV_DATA, dict):  # another Python: fall back to the public mapping
    _ENV_DATA = None


def _env_key(name: str) -> Any:
    return os.environ.encodekey(name) if _ENV_DATA is not None else name  # type: ignore[attr-defined]


_BACKEND_KEY = _env_key(ENV_VAR)
_INTERPRET_KEY = _env_key("TRITON_INTERPRET")
# raw GATELAB_BACKEND value -> parsed spec (a parse error is raised again on every call)
_env_specs: dict[Any, dict[str, str]] = {}


# the raw (encoded) value of an environment variable, or None
_raw_env: Callable[[Any], Any] = _ENV_DATA.get if _ENV_DATA is not None else os.environ.get


def clear_cache() -> None:
    """Forget the per-op ``auto`` candidates and parsed ``GATELAB_BACKEND`` values.

    The candidates depend on each backend's ``available()`` and ``interpreted()``, evaluated once
    per device type and ``TRITON_INTERPRET`` value; call this after changing anything else they
    read (e.g. installing triton into a running process). ``register_backend`` clears its op's.
    """
    _env_specs.clear()
    for k in _OPS.values():
        k.auto.clear()
        k.logged_reference.clear()


def register_op(
    name: str, doc: str = "", *, family: str | None = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering ``fn`` as the reference implementation of op ``name``.

    ``family``: another op whose per-op backend requests also apply to this one (``swiglu_packed``
    is in the family ``swiglu``: ``GATELAB_BACKEND="swiglu=triton"`` covers both; a request naming
    ``swiglu_packed`` itself wins).
    """

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in _OPS:
            raise ValueError(f"kernel op {name!r} is already registered")
        _OPS[name] = KernelOp(
            name=name, reference=fn, doc=doc or (fn.__doc__ or "").strip().split("\n")[0], family=family
        )
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
        _OPS[op].auto.clear()
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


def _lookup(spec: dict[str, str], op: str) -> str | None:
    """The request of one parsed spec for ``op`` (its own name, its family's, ``*``), or ``None``."""
    if op in spec:
        return spec[op]
    k = _OPS.get(op)
    if k is not None and k.family is not None and k.family in spec:
        return spec[k.family]
    return spec.get("*")


def requested_backend(op: str) -> str:
    """The backend requested for ``op`` by the innermost :func:`use_backend`, else the env var."""
    if _open_blocks:
        for spec in reversed(getattr(_local, "stack", ())):
            want = _lookup(spec, op)
            if want is not None:
                return want
    raw = _raw_env(_BACKEND_KEY)
    if raw is None:
        return AUTO
    spec = _env_specs.get(raw)
    if spec is None:
        env = (os.environ.decodevalue(raw) if _ENV_DATA is not None else raw).strip()  # type: ignore[attr-defined]
        spec = _parse(env, f"${ENV_VAR}={env!r}") if env else {}
        _env_specs[raw] = spec
    return _lookup(spec, op) or AUTO


def _requested_traced(op: str) -> str:
    """:func:`requested_backend` through public APIs only, for Dynamo to trace."""
    for spec in reversed(getattr(_local, "stack", [])):
        want = _lookup(spec, op)
        if want is not None:
            return want
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return _lookup(_parse(env, f"${ENV_VAR}={env!r}"), op) or AUTO
    return AUTO


@contextmanager
def use_backend(spec: str | dict[str, str]) -> Iterator[None]:
    """Force a backend inside the block: ``"auto"``, ``"reference"``, ``"triton"``, or per op
    (``{"swiglu": "triton"}`` or ``"swiglu=triton,geglu=reference"``). Nested blocks win."""
    parsed = _parse(spec, "use_backend") if isinstance(spec, str) else dict(spec)
    for k in parsed:
        if k != "*":
            _op(k)
    global _open_blocks
    stack = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    stack.append(parsed)
    with _blocks_lock:
        _open_blocks += 1
    try:
        yield
    finally:
        stack.pop()
        with _blocks_lock:
            _open_blocks -= 1


def select(op: str, *args: Any, **kwargs: Any) -> tuple[str, Callable[..., Any]]:
    """Return ``(backend name, callable)`` that :func:`dispatch` would use for these inputs."""
    name, fn, _ = _select(op, args, kwargs)
    return name, fn


def _ranked(k: KernelOp) -> list[Backend]:
    cands = k.ranked
    if cands is None:
        cands = k.ranked = sorted(k.backends.values(), key=lambda b: -b.priority)
    return cands


def _auto_candidates(k: KernelOp, dev: str) -> list[Backend]:
    """The backends ``auto`` may pick for ``dev`` tensors, best first (cached; see ``KernelOp.auto``)."""
    key = (dev, _raw_env(_INTERPRET_KEY))
    cands = k.auto.get(key)
    if cands is None:
        cands = k.auto[key] = [
            b
            for b in _ranked(k)
            if (b.devices is None or dev in b.devices) and not b.interpreted() and b.available() is None
        ]
        if not cands and not _is_compiling():  # dispatch's short path goes to the reference unlogged
            _log_choice(k.name, REFERENCE, dev)
    return cands


def _select(op: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, Callable[..., Any], str]:
    """``(backend name, callable, device type of the first tensor argument)``."""
    k = _op(op)
    compiling = _is_compiling()
    want = _requested_traced(op) if compiling else requested_backend(op)
    dev = _device_type(args)
    if want == REFERENCE:
        return REFERENCE, k.reference, dev
    if want == AUTO:
        if compiling:
            return REFERENCE, k.reference, dev
        for b in _auto_candidates(k, dev):
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


def _log_choice(op: str, name: str, dev: str) -> None:
    key = (op, name, dev)
    if key not in _logged:
        _logged.add(key)
        log.info("gatelab.kernels: op %r runs on backend %r (%s tensors)", op, name, dev)


def dispatch(op: str, *args: Any, **kwargs: Any) -> Any:
    """Run ``op`` on the selected backend (see module docstring).

    Eager ``auto`` (no ``use_backend`` block open, ``GATELAB_BACKEND`` unset) takes a short path:
    the cached candidates for the tensors' device type, each asked through its verifier, else the
    reference (straight away when there is no candidate, e.g. CPU tensors and CUDA-only backends).
    Everything else goes through :func:`select`'s logic.
    """
    if not _is_compiling():
        k = _OPS.get(op)
        if k is not None and not _open_blocks and _raw_env(_BACKEND_KEY) is None:  # auto, eager
            try:  # Tensor.is_cpu/is_cuda: no torch.device object built (that costs ~0.5-1 us)
                a = args[0]
                dev = "cpu" if a.is_cpu else "cuda" if a.is_cuda else a.device.type
            except (IndexError, AttributeError):
                dev = _device_type(args)
            cands = k.auto.get((dev, _raw_env(_INTERPRET_KEY)))
            if cands is None:
                cands = _auto_candidates(k, dev)  # logs the reference when it is the only choice
            for b in cands:
                if b.verifier(*args, **kwargs) is None:
                    _log_choice(op, b.name, dev)
                    return b.fn(*args, **kwargs)
            if cands:
                _log_choice(op, REFERENCE, dev)
            return k.reference(*args, **kwargs)
        name, fn, dev = _select(op, args, kwargs)
        _log_choice(op, name, dev)
        return fn(*args, **kwargs)
    name, fn, _ = _select(op, args, kwargs)
    return fn(*args, **kwargs)


def reference(op: str) -> Callable[..., Any]:
    """The reference implementation of ``op``."""
    return _op(op).reference
