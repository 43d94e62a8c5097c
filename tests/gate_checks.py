"""Shared checks every gate test runs: torch.compile, half precision, gate capture, gradients.

Import in a test file as ``from gate_checks import ...`` (``pythonpath = ["tests"]`` in pyproject).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from gatelab.core import capture_gates


def output_tensors(out) -> list[torch.Tensor]:
    """Every tensor of a model or gate output, in order: a tensor, a tuple / list / NamedTuple,
    a dict (values) or a dataclass (fields), nested."""
    if isinstance(out, torch.Tensor):
        return [out]
    if hasattr(out, "_asdict"):
        out = out._asdict()
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in output_tensors(o)]
    if hasattr(out, "__dataclass_fields__"):
        return [t for k in out.__dataclass_fields__ for t in output_tensors(getattr(out, k))]
    return []


def check_compile(
    module: nn.Module, *inputs: torch.Tensor, atol: float = 1e-5, backend: str = "aot_eager"
) -> None:
    """The module compiles with ``fullgraph=True`` (no graph breaks) and matches eager output.

    ``aot_eager`` traces through Dynamo and AOTAutograd (what breaks on Python control flow) without
    spending minutes in Inductor code generation; one Inductor test lives in tests/core/test_compile.py.
    """
    torch._dynamo.reset()
    module.eval()
    with torch.no_grad():
        eager = output_tensors(module(*inputs))
        compiled = torch.compile(module, backend=backend, fullgraph=True)
        got = output_tensors(compiled(*inputs))
    assert len(eager) == len(got)
    for a, b in zip(got, eager):
        torch.testing.assert_close(a, b, atol=atol, rtol=1e-4)


def check_half_finite(
    make: Callable[[], nn.Module],
    make_inputs: Callable[[torch.dtype], Sequence[torch.Tensor]],
    dtypes: Sequence[torch.dtype] = (torch.float16, torch.bfloat16),
) -> None:
    """Outputs and gradients stay finite in half precision with extreme inputs.

    ``make_inputs(dtype)`` should build inputs with extreme values (e.g. +-1e4 scaled logits, the
    largest magnitude the dtype holds after the layer's linear maps) so sigmoid/softmax saturate.
    """
    for dtype in dtypes:
        m = make().to(dtype)
        ins = [t.detach().requires_grad_(t.is_floating_point()) for t in make_inputs(dtype)]
        out = output_tensors(m(*ins))
        for o in out:
            assert torch.isfinite(o).all(), f"non-finite output in {dtype}"
        loss = sum(o.float().sum() for o in out if o.is_floating_point())
        loss.backward()
        for p in list(m.parameters()) + [t for t in ins if t.requires_grad]:
            if p.grad is not None:
                assert torch.isfinite(p.grad).all(), f"non-finite gradient in {dtype}"


def check_capture(module: nn.Module, *inputs: torch.Tensor, expect: Sequence[str] = ("",)) -> dict:
    """``capture_gates`` records a gate in [0, 1] (or any finite value) under each expected name.

    ``expect`` holds suffixes matched against recorded names (``""`` accepts any name).
    """
    with capture_gates(module) as gates:
        module(*inputs)
    assert len(gates) > 0, "no gate was recorded"
    for e in expect:
        assert any(name.endswith(e) for name in gates), f"no gate named *{e!r}; got {list(gates)}"
    for name in gates:
        assert torch.isfinite(gates[name]).all(), name
    return dict(gates)


def check_grads(module: nn.Module, *inputs: torch.Tensor) -> None:
    """A backward pass reaches every parameter with a finite gradient."""
    ins = [t.detach().requires_grad_(t.is_floating_point()) for t in inputs]
    out = output_tensors(module(*ins))
    sum(o.sum() for o in out if o.is_floating_point()).backward()
    for name, p in module.named_parameters():
        if p.requires_grad:
            assert p.grad is not None, f"parameter {name} got no gradient"
            assert torch.isfinite(p.grad).all(), f"parameter {name} has a non-finite gradient"
