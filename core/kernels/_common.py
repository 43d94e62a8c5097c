"""Shared pieces of the Triton backends: availability, input checks, launch helpers.

* :func:`triton_interpreted` / :func:`triton_available`: whether a Triton backend can run at all in
  this process (the verifier of every Triton backend calls the latter through ``dispatch``).
* :func:`check_tensors`: the checks every Triton verifier makes (tensor type, dtype, one device,
  CPU only under the interpreter), returning the reason a backend rejects the inputs.
* :func:`is_sigmoid`: whether a gate's squashing function is the logistic sigmoid (the fused
  kernels hard-code it; a model with another ``gate_act`` keeps its plain PyTorch path).
* :func:`reference_only`: the verifier check for the ``gate_act`` / ``return_gate`` options every
  gate op's reference takes and no kernel serves.
* :func:`device_ctx`, :func:`launch_ctx`: make the inputs' CUDA device current for a launch.
* :func:`tuning_configs`: the autotuning candidates of a kernel in this process (one under the
  interpreter); :func:`gatelab.core.kernels._triton_common.tuned` builds the autotuned kernels.

Nothing here imports triton at module import time (a CPU-only process never pays for it).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

TRITON_DTYPES: tuple[torch.dtype, ...] = (torch.float16, torch.bfloat16, torch.float32)
T = TypeVar("T")

_TRUE = frozenset({"1", "true", "on", "yes", "y"})


def triton_interpreted() -> bool:
    """True when ``TRITON_INTERPRET`` is set to a true value (``1``, ``true``, ``on``, ``yes``).

    Triton reads the variable when it defines its kernels, so set it before anything imports
    triton (``tests/conftest.py`` does).
    """
    return os.environ.get("TRITON_INTERPRET", "").strip().lower() in _TRUE


# Caches (plain dicts: Dynamo traces them). ``find_spec`` costs ~80 us, far too much for a check that
# runs on every dispatched call, and whether triton is installed does not change within a process.
_import_result: dict[str, str | None] = {}


def _triton_installed() -> bool:
    if "spec" not in _import_result:
        _import_result["spec"] = None if importlib.util.find_spec("triton") is not None else "missing"
    return _import_result["spec"] is None


def _triton_import_error() -> str | None:
    if "triton" not in _import_result:
        try:
            import triton  # noqa: F401
        except Exception as e:  # ImportError, or a broken install raising at import time
            _import_result["triton"] = f"triton is not importable ({type(e).__name__}: {e})"
        else:
            _import_result["triton"] = None
    return _import_result["triton"]


def triton_available() -> str | None:
    """``None`` when the Triton backends can run in this process, else the reason they cannot.

    Cheap checks come first so a CPU-only process never imports triton just to learn it cannot run;
    the installation check is cached (clear ``_import_result`` to re-check).
    """
    if not _triton_installed():
        return "triton is not installed"
    if not (triton_interpreted() or torch.cuda.is_available()):
        return (
            "no CUDA device and TRITON_INTERPRET is not set (set TRITON_INTERPRET=1 to run Triton on the CPU)"
        )
    return _triton_import_error()


def check_tensors(
    named: Iterable[tuple[str, Any]],
    *,
    dtypes: tuple[torch.dtype, ...] = TRITON_DTYPES,
    same_dtype: bool = True,
) -> str | None:
    """Common verifier checks on ``(name, tensor)`` pairs; ``None`` entries (optional inputs) are skipped.

    Every tensor must be a floating tensor of ``dtypes`` (and all of one dtype when ``same_dtype``),
    all on one device, which is CUDA or the CPU under ``TRITON_INTERPRET=1``.
    """
    first: tuple[str, torch.Tensor] | None = None
    for name, t in named:
        if t is None:
            continue
        if not isinstance(t, torch.Tensor):
            return f"{name} is a {type(t).__name__}, not a tensor"
        if t.dtype not in dtypes:
            return f"{name} dtype {t.dtype} is not supported ({', '.join(str(d) for d in dtypes)})"
        if first is None:
            first = (name, t)
            dev = t.device.type
            if dev == "cpu":
                if not triton_interpreted():
                    return "CPU tensors need the Triton interpreter (TRITON_INTERPRET=1)"
            elif dev != "cuda":
                return f"device type {dev!r} is not supported (cuda, or cpu under TRITON_INTERPRET=1)"
            continue
        if same_dtype and t.dtype != first[1].dtype:
            return f"{name} dtype {t.dtype} differs from {first[0]} dtype {first[1].dtype}"
        if t.device != first[1].device:
            return f"{name} is on {t.device} but {first[0]} is on {first[1].device}"
    return None


_SIGMOIDS: tuple[Callable[..., Any], ...] = (torch.sigmoid, F.sigmoid, torch.Tensor.sigmoid)


def is_sigmoid(act: Any) -> bool:
    """True when ``act`` is the logistic sigmoid (``torch.sigmoid``, ``F.sigmoid`` or ``nn.Sigmoid``)."""
    return type(act) is nn.Sigmoid or any(act is s for s in _SIGMOIDS)


def reference_only(gate_act: Any = None, return_gate: bool = False) -> str | None:
    """Why a fused kernel rejects the gate options of an op's reference, or ``None``.

    Every gate op's reference takes ``gate_act`` (the squashing, ``None`` = the sigmoid the
    kernels hard-code) and ``return_gate`` (also return the gate, for :func:`gatelab.core.capture_gates`);
    the kernels serve only the defaults, so their verifiers send anything else to the reference.
    """
    if return_gate:
        return "return_gate=True is served by the reference (the kernels do not store the gate)"
    if gate_act is not None and not is_sigmoid(gate_act):
        return f"gate_act {gate_act!r} is not the sigmoid the kernels hard-code"
    return None


def tuning_configs(configs: Sequence[T]) -> list[T]:
    """The autotuning candidates to use in this process: all of ``configs`` for compiled kernels,
    only ``configs[0]`` (the default) under ``TRITON_INTERPRET=1``.

    The interpreter is for tests: benchmarking candidates there would only multiply the run time
    (and measure numpy), so every autotuned kernel runs its first configuration. Read when the
    kernel module is imported, as Triton itself reads ``TRITON_INTERPRET`` then.
    """
    if not configs:
        raise ValueError("tuning_configs: need at least one configuration")
    return list(configs[:1]) if triton_interpreted() else list(configs)


def device_ctx(t: torch.Tensor) -> Any:
    """Context making ``t``'s CUDA device current (Triton launches on the current device)."""
    return torch.cuda.device(t.device) if t.device.type == "cuda" else contextlib.nullcontext()


def next_power_of_2(n: int) -> int:
    """Smallest power of two ``>= n`` (``1`` for ``n <= 1``)."""
    return 1 if n <= 1 else 1 << (int(n) - 1).bit_length()


def cdiv(a: int, b: int) -> int:
    """Ceiling division of non-negative ints."""
    return -(-a // b)


def dot_upcast(dtype: torch.dtype, device: torch.device) -> bool:
    """Whether a kernel must feed ``tl.dot`` float32 copies of ``dtype`` operands.

    Triton's interpreter (3.x) evaluates ``tl.dot`` with numpy, which has no bfloat16: bfloat16
    operands come out as garbage. Products of bfloat16 values are exact in float32 and the
    accumulation is float32 anyway, so upcasting first computes what the tensor cores compute. On
    CUDA the operands go to ``tl.dot`` as they are.
    """
    return dtype == torch.bfloat16 and device.type != "cuda"
