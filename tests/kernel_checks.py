"""Shared helpers of the kernel tests: run an op on a backend with gradients, compare two backends.

Import in a test file as ``from kernel_checks import ...`` (``pythonpath = ["tests"]`` in pyproject).
CPU runs go through the Triton interpreter (``TRITON_INTERPRET=1``, set by tests/conftest.py), so
shapes stay small.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest
import torch
from tolerances import assert_close, assert_close_normwise

from gatelab.core.kernels import dispatch, select, use_backend
from gatelab.core.kernels.glu import triton_available, triton_interpreted

_why = triton_available()
needs_interpreter = pytest.mark.skipif(
    _why is not None or not triton_interpreted(),
    reason=f"CPU kernel tests need triton and TRITON_INTERPRET=1 ({_why or 'TRITON_INTERPRET is off'})",
)
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

DTYPES = (torch.float32, torch.bfloat16, torch.float16)

_dispatch_mod = importlib.import_module("gatelab.core.kernels.dispatch")


def _outputs(out: Any) -> list[torch.Tensor | None]:
    return list(out) if isinstance(out, (tuple, list)) else [out]


def run(
    op: str,
    backend: str,
    args: Sequence[Any],
    kwargs: dict[str, Any] | None = None,
    *,
    seed: int = 1,
    grad_of: Callable[[torch.Tensor], bool] = lambda t: t.is_floating_point(),
) -> tuple[list[torch.Tensor | None], list[torch.Tensor | None]]:
    """Forward and backward of ``op`` on ``backend``.

    Every tensor argument for which ``grad_of`` is true becomes a fresh leaf requiring grad. The
    loss is ``sum_i <output_i, cotangent_i>`` over the differentiable floating outputs, with
    cotangents drawn from ``seed`` (the same for every backend). Returns the detached outputs and
    the gradients of the tensor arguments (``None`` for the others), in argument order
    (positional, then keyword).
    """
    kwargs = dict(kwargs or {})

    def leaf(a: Any) -> Any:
        if isinstance(a, torch.Tensor) and grad_of(a):
            return a.detach().clone().requires_grad_(True)
        return a

    largs = [leaf(a) for a in args]
    lkw = {k: leaf(v) for k, v in kwargs.items()}
    with use_backend(backend):
        assert select(op, *largs, **lkw)[0] == backend
        outs = _outputs(dispatch(op, *largs, **lkw))
    gen = torch.Generator().manual_seed(seed)
    loss = None
    for o in outs:
        if isinstance(o, torch.Tensor) and o.is_floating_point() and o.requires_grad:
            cot = torch.randn(o.shape, generator=gen).to(o.device)
            term = (o.float() * cot).sum()
            loss = term if loss is None else loss + term
    if loss is not None:
        loss.backward()
    grads = [
        a.grad if isinstance(a, torch.Tensor) and a.requires_grad else None for a in [*largs, *lkw.values()]
    ]
    return [o.detach() if isinstance(o, torch.Tensor) else o for o in outs], grads


def compare(
    op: str,
    args: Sequence[Any],
    kwargs: dict[str, Any] | None = None,
    *,
    kind: str = "pointwise",
    dtype: torch.dtype | None = None,
    normwise: Sequence[str] = (),
    out_names: Sequence[str] | None = None,
    arg_names: Sequence[str] | None = None,
    backend: str = "triton",
) -> None:
    """``backend`` vs the reference: every output and every gradient, with the table's tolerance.

    ``dtype``: the precision the computation runs in (default: each reference value's dtype);
    names in ``normwise`` are compared by :func:`tolerances.assert_close_normwise` instead of
    elementwise. Outputs and gradients must also agree in dtype and shape.
    """
    got_o, got_g = run(op, backend, args, kwargs)
    ref_o, ref_g = run(op, "reference", args, kwargs)
    n_args = len(args) + len(kwargs or {})
    out_names = list(out_names or [f"out{i}" for i in range(len(ref_o))])
    arg_names = list(arg_names or [f"d{i}" for i in range(n_args)])
    assert len(out_names) == len(ref_o) == len(got_o), f"{op}: {len(ref_o)} outputs, names {out_names}"
    assert len(arg_names) == n_args, f"{op}: {n_args} arguments, gradient names {arg_names}"
    pairs = list(zip(out_names, got_o, ref_o)) + list(zip(arg_names, got_g, ref_g))
    for name, a, b in pairs:
        if b is None:
            assert a is None, f"{op}: {name}: {backend} gives a value where the reference gives None"
            continue
        assert a is not None, f"{op}: {name}: {backend} gives None"
        assert a.dtype == b.dtype, f"{op}: {name}: dtype {a.dtype} != reference {b.dtype}"
        assert a.shape == b.shape, f"{op}: {name}: shape {tuple(a.shape)} != reference {tuple(b.shape)}"
        msg = f"{op} {backend} vs reference: {name}"
        if not a.is_floating_point():
            assert torch.equal(a, b), msg
        elif name in normwise:
            assert_close_normwise(a, b, msg=msg, dtype=dtype)
        else:
            assert_close(a, b, kind=kind, msg=msg, dtype=dtype)


@contextmanager
def count_calls(op: str, backend: str = "triton") -> Iterator[list[int]]:
    """Count the calls of ``backend`` of ``op`` inside the block (``counter[0]``)."""
    b = _dispatch_mod._OPS[op].backends[backend]
    real = b.fn
    counter = [0]

    def spy(*a: Any, **k: Any) -> Any:
        counter[0] += 1
        return real(*a, **k)

    b.fn = spy
    try:
        yield counter
    finally:
        b.fn = real
