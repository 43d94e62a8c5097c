"""gatelab: gated deep-learning models on one shared gating core.

Sub-packages: :mod:`gatelab.core` (gates, kernels, harness), :mod:`gatelab.timeseries`,
:mod:`gatelab.recsys`, :mod:`gatelab.vision`, :mod:`gatelab.multimodal`.
"""

from __future__ import annotations

from gatelab.core.registry import create_model, list_models, model_info

__version__ = "0.1.0"
__all__ = ["__version__", "create_model", "list_models", "model_info"]
