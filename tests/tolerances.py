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


# dtype -> bound on the normwise relative error ||actual - expected||_2 / ||expected||_2, for values
# that are sums of many rounded terms and may cancel (a GLA gate gradient is the reverse cumulative sum
# of q*dq - k*dk): an elementwise tolerance would have to be loose for the cancelled entries, while
# over the whole tensor the error is that of one rounding. The bound equals POINTWISE's rtol.
NORMWISE: dict[torch.dtype, float] = {dt: rtol for dt, (rtol, _) in POINTWISE.items()}


def assert_close_normwise(
    actual: torch.Tensor, expected: torch.Tensor, msg: str = "", dtype: torch.dtype | None = None
) -> None:
    """``||actual - expected|| <= NORMWISE[dtype] * ||expected||`` (2-norms, in float64)."""
    bound = NORMWISE[dtype or expected.dtype]
    assert actual.shape == expected.shape, f"{msg}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    a, e = actual.double(), expected.double()
    err = (a - e).norm().item()
    ref = e.norm().item()
    assert err <= bound * ref, f"{msg}: normwise relative error {err / max(ref, 1e-300):.3g} > {bound:g}"


def tol(dtype: torch.dtype, kind: str = "pointwise") -> tuple[float, float]:
    table = POINTWISE if kind == "pointwise" else REDUCTION
    return table[dtype]


def assert_close(
    actual: torch.Tensor,
    expected: torch.Tensor,
    kind: str = "pointwise",
    msg: str = "",
    dtype: torch.dtype | None = None,
) -> None:
    """``torch.testing.assert_close`` with the table's tolerance for ``dtype`` (default ``expected.dtype``).

    Pass ``dtype`` when the compared value is stored in a wider dtype than the computation ran in:
    e.g. the float32 final state or gate gradient of a GLA kernel whose matmul operands are bfloat16
    is as accurate as bfloat16 arithmetic, not float32.
    """
    rtol, atol = tol(dtype or expected.dtype, kind)
    torch.testing.assert_close(
        actual, expected, rtol=rtol, atol=atol, msg=(lambda m: f"{msg}\n{m}") if msg else None
    )
