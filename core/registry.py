"""Model registry: ``create_model(name, **cfg)`` and ``list_models(domain=..., gate=...)``.

Each domain registers one constructor per model variant with its metadata (timm's pattern)::

    @register_model("gateformer", domain="timeseries", paper="Huang et al. 2025",
                    gates=("TokenwiseGate",), tiny=dict(seq_len=16, pred_len=4, n_vars=3),
                    example_inputs=lambda model, batch: ((torch.randn(batch, 16, 3),), {}))
    def gateformer(**cfg) -> nn.Module: ...

``tiny`` gives a small configuration and ``example_inputs`` builds a forward call for it, so
the generic model test (tests/test_models_generic.py) covers every registered model
automatically. Registration of domain models happens when their package is imported;
:func:`create_model` and :func:`list_models` import every domain first.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from .config import ConfigError

DOMAINS = ("core", "timeseries", "recsys", "vision", "multimodal")

ExampleInputs = Callable[[nn.Module, int], tuple[tuple[Any, ...], dict[str, Any]]]


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about one model variant."""

    name: str
    fn: Callable[..., nn.Module]
    domain: str
    paper: str
    gates: tuple[str, ...]
    description: str = ""
    tiny: dict[str, Any] = dataclasses.field(default_factory=dict)
    example_inputs: ExampleInputs | None = None
    tags: tuple[str, ...] = ()


_REGISTRY: dict[str, ModelInfo] = {}
_domains_loaded = False


def register_model(
    name: str,
    *,
    domain: str,
    paper: str,
    gates: tuple[str, ...] | list[str],
    description: str = "",
    tiny: dict[str, Any] | None = None,
    example_inputs: ExampleInputs | None = None,
    tags: tuple[str, ...] | list[str] = (),
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering a model constructor under ``name``.

    Args:
        name: registry key (lower-case, ``-`` separated), unique across domains.
        domain: one of :data:`DOMAINS`.
        paper: citation of the paper the model follows.
        gates: names of the :mod:`gatelab.core` gate classes the model is assembled from.
        description: one line for ``gatelab list``; defaults to the docstring's first line.
        tiny: keyword arguments for a small instance used by the generic model test.
        example_inputs: ``fn(model, batch_size) -> (args, kwargs)`` for a forward call of the
            tiny model.
    """
    if domain not in DOMAINS:
        raise ValueError(f"register_model({name!r}): unknown domain {domain!r}; expected one of {DOMAINS}")

    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY and _REGISTRY[name].fn is not fn:
            raise ValueError(f"model {name!r} is already registered by {_REGISTRY[name].fn.__module__}")
        from . import __all__ as core_names  # gates must be real core exports

        unknown = [g for g in gates if g not in core_names]
        if unknown:
            raise ValueError(f"register_model({name!r}): {unknown} are not gatelab.core exports")
        doc = description or (inspect.getdoc(fn) or "").split("\n")[0]
        _REGISTRY[name] = ModelInfo(
            name=name,
            fn=fn,
            domain=domain,
            paper=paper,
            gates=tuple(gates),
            description=doc,
            tiny=dict(tiny or {}),
            example_inputs=example_inputs,
            tags=tuple(tags),
        )
        return fn

    return deco


def _load_domains() -> None:
    global _domains_loaded
    if _domains_loaded:
        return
    for d in DOMAINS[1:]:
        importlib.import_module(f"gatelab.{d}")
    _domains_loaded = True


def model_info(name: str) -> ModelInfo:
    """Metadata of a registered model; unknown names list the known ones."""
    _load_domains()
    try:
        return _REGISTRY[name]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(name, list(_REGISTRY), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise KeyError(
            f"unknown model {name!r}.{hint} Known models: {', '.join(sorted(_REGISTRY))}"
        ) from None


def create_model(name: str, **cfg: Any) -> nn.Module:
    """Build registered model ``name`` with keyword config ``cfg`` (unknown keys raise)."""
    info = model_info(name)
    try:
        return info.fn(**cfg)
    except (TypeError, ValueError) as e:
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(_constructor_error(name, cfg, e)) from None


def _constructor_error(name: str, cfg: dict[str, Any], e: Exception) -> str:
    """One line for a ``ValueError``/``TypeError`` of a model constructor, naming the key it
    mentions (``model.kwargs.d_model=0: ...``) when there is one."""
    import re

    msg = " ".join(str(e).split()) or type(e).__name__
    for key in sorted(cfg, key=len, reverse=True):
        if re.search(rf"(?<![\w.]){re.escape(key)}(?!\w)", msg):
            return f"model {name!r}: model.kwargs.{key}={cfg[key]!r}: {msg}"
    return f"create_model({name!r}): {msg}"


def list_models(domain: str | None = None, gate: str | None = None) -> list[str]:
    """Names of registered models, optionally filtered by domain and by a core gate they use."""
    _load_domains()
    if domain is not None and domain not in DOMAINS:
        raise ValueError(f"unknown domain {domain!r}; expected one of {DOMAINS}")
    out = []
    for name, info in sorted(_REGISTRY.items()):
        if domain is not None and info.domain != domain:
            continue
        if gate is not None and gate not in info.gates:
            continue
        out.append(name)
    return out


def registered() -> dict[str, ModelInfo]:
    """Every registered model (after importing all domains)."""
    _load_domains()
    return dict(_REGISTRY)
