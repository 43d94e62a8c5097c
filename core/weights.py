"""Load weights into a built model strictly, from what gatelab writes: a ``save_pretrained``
folder (:mod:`gatelab.core.pretrained`), a ``.safetensors`` file, or a torch / Lightning
checkpoint of a gatelab task. Used by ``create_model(name, checkpoint_path=...)`` (timm's
convention) and by :func:`gatelab.core.pretrained.from_pretrained`; it imports no registry.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gatelab.core.config import ConfigError

__all__ = ["EXTRA_NAME", "WEIGHTS_NAME", "load_state", "load_weights", "state_from_checkpoint"]

WEIGHTS_NAME = "model.safetensors"
EXTRA_NAME = "extra_state.json"


def _state_from_file(path: Path, device: str) -> dict[str, Any]:
    """A state dict from a save_pretrained folder, a ``.safetensors`` file, or a torch/Lightning
    checkpoint (its ``state_dict``, with the task's ``model.`` prefix removed)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    if path.is_dir():
        weights = path / WEIGHTS_NAME
        if not weights.is_file():
            raise ConfigError(f"{path}: no {WEIGHTS_NAME} in this folder (written by save_pretrained)")
        state: dict[str, Any] = load_file(str(weights), device=device)
        with safe_open(str(weights), framework="pt") as f:
            aliases = json.loads((f.metadata() or {}).get("aliases", "{}"))
        state.update({alias: state[src] for alias, src in aliases.items()})
        if (path / EXTRA_NAME).is_file():
            state.update(json.loads((path / EXTRA_NAME).read_text()))
        return state
    if not path.is_file():
        raise ConfigError(f"checkpoint_path={str(path)!r}: no such file or folder")
    if path.suffix == ".safetensors":
        return dict(load_file(str(path), device=device))
    try:
        obj = torch.load(str(path), map_location=device, weights_only=True)
    except Exception as e:  # not a torch file, truncated, or pickled objects beyond tensors
        raise ConfigError(f"{path}: cannot read as a torch checkpoint ({type(e).__name__}: {e})") from None
    return state_from_checkpoint(obj, path)


def state_from_checkpoint(obj: Any, path: Path) -> dict[str, Any]:
    """The model state of a loaded torch / Lightning checkpoint ``obj`` (read from ``path``): its
    ``state_dict`` (or ``obj`` itself), with a gatelab task's ``model.`` prefix removed."""
    state = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict):
        raise ConfigError(f"{path}: expected a state dict (or a checkpoint with 'state_dict')")
    if state and all(isinstance(k, str) and k.startswith("model.") for k in state):
        state = {k[len("model.") :]: v for k, v in state.items()}  # a gatelab task's checkpoint
    return state


def load_weights(model: nn.Module, checkpoint_path: str | os.PathLike[str], *, device: str = "cpu") -> nn.Module:
    """Load ``checkpoint_path`` into ``model`` strictly (timm's ``create_model(checkpoint_path=)``):
    a :func:`save_pretrained` folder, a ``.safetensors`` file, or a torch / Lightning checkpoint of
    a gatelab task. Returns ``model``.

    Raises:
        ConfigError: the file cannot be read, or its keys or shapes do not fit (named).
    """
    path = Path(checkpoint_path)
    return load_state(model, _state_from_file(path, device), path)


def load_state(model: nn.Module, state: dict[str, Any], path: Path) -> nn.Module:
    """``model.load_state_dict(state, strict=True)``, a misfit as one :class:`ConfigError` naming
    ``path`` (where ``state`` was read from)."""
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ConfigError(f"{path}: weights do not fit {type(model).__name__}: {' '.join(str(e).split())[:400]}") from None
    return model

