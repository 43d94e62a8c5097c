"""Central tolerance table for comparing a kernel or gate with its reference.

Tolerances follow from each dtype's unit round-off (fp32 2^-24 ~ 6e-8, bf16 2^-8 ~ 4e-3,
fp16 2^-11 ~ 5e-4) times a small factor for the accumulated operations of a fused op; no
tolerance here is looser than its dtype justifies. Use :func:`assert_close` in tests.
"""

from __future__ import annotations

import torch

# dtype -> (rtol, atol) for elementwise / fused pointwise ops
POINTWISE: dict[torch.dtype, tuple[float, float]] = {
    torch.float64: (1e-10, 1e-12),
    torch.float32: (1e-5, 1e-6),
    torch.bfloat16: (1.6e-2, 1e-2),
    torch.float16: (2e-3, 1e-3),
}

# dtype -> (rtol, atol) for reductions and matmul-bearing ops (GLA chunks, layer norm, routers)
REDUCTION: dict[torch.dtype, tuple[float, float]] = {
    torch.float64: (1e-8, 1e-10),
    torch.float32: (1e-4, 1e-5),
    torch.bfloat16: (3e-2, 2e-2),
    torch.float16: (5e-3, 3e-3),
}


def tol(dtype: torch.dtype, kind: str = "pointwise") -> tuple[float, float]:
    table = POINTWISE if kind == "pointwise" else REDUCTION
    return table[dtype]


def assert_close(
    actual: torch.Tensor, expected: torch.Tensor, kind: str = "pointwise", msg: str = ""
) -> None:
    """``torch.testing.assert_close`` with the table's tolerance for ``expected.dtype``."""
    rtol, atol = tol(expected.dtype, kind)
    torch.testing.assert_close(
        actual, expected, rtol=rtol, atol=atol, msg=(lambda m: f"{msg}\n{m}") if msg else None
    )
