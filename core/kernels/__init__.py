"""gatelab.core.kernels: pointwise/fused ops with a PyTorch reference and optional fast backends.

``dispatch("swiglu", gate, value)`` runs an op on the backend chosen by :mod:`.dispatch` (``auto``
picks Triton on CUDA when its verifier accepts the inputs, else the reference; ``GATELAB_BACKEND``
or :func:`use_backend` force a choice). Importing this package registers every op module below.

Ops: ``swiglu``, ``geglu`` (:mod:`.glu`).
"""

from __future__ import annotations

from . import (
    feature_gate,  # "feature_gate", "gated_cross"
    gate_add_norm,  # "gate_add_norm"
    glu,  # registers "swiglu" and "geglu" with their triton backends
    sigmoid_gate,  # "sigmoid_gate"
    tokenwise,  # "tokenwise_gate"
)
from .dispatch import (
    BackendError,
    backends,
    dispatch,
    ops,
    reference,
    register_backend,
    register_op,
    requested_backend,
    select,
    use_backend,
)

__all__ = [
    "BackendError",
    "backends",
    "dispatch",
    "ops",
    "reference",
    "register_backend",
    "register_op",
    "requested_backend",
    "select",
    "use_backend",
]
