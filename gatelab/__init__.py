"""gatelab: gated deep-learning models on one shared gating core.

Sub-packages: :mod:`gatelab.core` (gates, kernels, harness), :mod:`gatelab.timeseries`,
:mod:`gatelab.recsys`, :mod:`gatelab.vision`, :mod:`gatelab.multimodal`.

``import gatelab`` imports neither torch nor any domain: ``create_model``, ``list_models``,
``model_info``, ``save_pretrained`` and ``from_pretrained`` are loaded on first use (PEP 562), and ``create_model(name)`` imports only the
module of model ``name``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gatelab.core.layers.lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "create_model": "core.registry",
    "list_models": "core.registry",
    "model_info": "core.registry",
    "save_pretrained": "core.pretrained",
    "from_pretrained": "core.pretrained",
}

__all__ = ["__version__", "create_model", "from_pretrained", "list_models", "model_info", "save_pretrained"]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from gatelab.core.pretrained import from_pretrained, save_pretrained
    from gatelab.core.registry import create_model, list_models, model_info
