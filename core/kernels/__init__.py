"""gatelab.core.kernels: fused gate ops with a PyTorch reference and optional fast backends.

``dispatch("swiglu", gate, value)`` runs an op on the backend chosen by :mod:`.dispatch` (``auto``
picks Triton on CUDA when its verifier accepts the inputs, else the reference; ``GATELAB_BACKEND``
or :func:`use_backend` force a choice). Importing this package registers every op module below.

Ops (each module holds the reference, the verifier and the backend registration; the Triton
kernels live in the ``*_triton`` module beside it):

============================ ====================== ==============================================
op                           module                 used by
============================ ====================== ==============================================
``swiglu``, ``geglu``        :mod:`.glu`            ``glu_pair``, ``glu`` over another dim
``swiglu_packed``            :mod:`.glu`            ``glu`` (last dim), ``GluMlp``: one-buffer backward
``geglu_packed``             :mod:`.glu`            ``glu`` (last dim), ``GluMlp``: one-buffer backward
``sigmoid_gate``             :mod:`.sigmoid_gate`   ``OutputGatedAttention`` (head-/element-wise)
``gate_add_norm``            :mod:`.gate_add_norm`  ``GateAddNorm`` (and so ``GatedResidualNetwork``)
``feature_gate``             :mod:`.feature_gate`   ``FeatureGate``
``gated_cross``              :mod:`.feature_gate`   ``GatedCrossLayer``, ``GatedCrossNetwork``
``tokenwise_gate``           :mod:`.tokenwise`      ``TokenwiseGate``
``gla_chunk``                :mod:`.gla`            ``GatedLinearAttention`` (``mode="chunk"``)
``topk_router``              :mod:`.router`         ``TopKRouter``, ``SparseMoE``
``attention_gate``           :mod:`.attention_gate` ``AttentionGate`` (Attention U-Net)
============================ ====================== ==============================================
"""

from __future__ import annotations

from . import (
    attention_gate,  # "attention_gate"
    feature_gate,  # "feature_gate", "gated_cross"
    gate_add_norm,  # "gate_add_norm"
    gla,  # "gla_chunk"
    glu,  # "swiglu", "geglu", "swiglu_packed", "geglu_packed"
    router,  # "topk_router"
    sigmoid_gate,  # "sigmoid_gate"
    tokenwise,  # "tokenwise_gate"
)
from ._common import is_sigmoid
from .dispatch import (
    BackendError,
    backends,
    clear_cache,
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
    "clear_cache",
    "dispatch",
    "is_sigmoid",
    "ops",
    "reference",
    "register_backend",
    "register_op",
    "requested_backend",
    "select",
    "use_backend",
]
