"""The vision models of gatelab in timm's registry: ``timm.create_model("gatelab_attention_unet_2d")``.

Importing this module registers one timm entrypoint per vision model of gatelab's registry, named
``gatelab_`` + the gatelab name with ``-`` as ``_`` (:data:`TIMM_NAMES`):

=============================  ======================
timm name                      gatelab registry name
=============================  ======================
``gatelab_attention_unet_2d``  ``attention-unet-2d``
``gatelab_attention_unet_3d``  ``attention-unet-3d``
``gatelab_dncnn``              ``dncnn``
``gatelab_maxim``              ``maxim``
``gatelab_maxim_1s``           ``maxim-1s``
``gatelab_maxim_2s``           ``maxim-2s``
``gatelab_maxim_3s``           ``maxim-3s``
=============================  ======================

Usage::

    import timm
    import gatelab.vision.models.timm_models  # registers the gatelab_* names

    model = timm.create_model("gatelab_attention_unet_2d", in_channels=1, num_classes=2)
    model = timm.create_model("gatelab_dncnn", checkpoint_path="runs/dncnn/model.safetensors")

Why an import and not automatic: ``import gatelab.vision`` imports neither torch nor timm (its
registry is declarative), and timm 1.0 has no plugin entry points through which a package could
register itself when timm loads; so the registration is this module's import (it imports torch and
timm).

Each entrypoint calls :func:`gatelab.core.registry.create_model` with the keywords timm passes
through (the model's config fields, ``preset=``), so the model is the same object gatelab builds
(``model.registry_name`` set; :func:`gatelab.save_pretrained` works on it). ``checkpoint_path=``
is timm's own loader (``timm.models.load_checkpoint``: a ``.safetensors`` file such as a
:func:`~gatelab.core.pretrained.save_pretrained` folder's ``model.safetensors``, or a torch state
dict). ``pretrained=True`` raises: gatelab hosts no weights (load a folder with
:func:`gatelab.from_pretrained` or pass ``checkpoint_path``). timm's ``pretrained_cfg``,
``pretrained_cfg_overlay`` and ``cache_dir`` keywords only concern hosted weights and are not
passed on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from timm.models import register_model as _timm_register
from torch import nn

from gatelab.core.config import ConfigError

__all__ = ["TIMM_NAMES"]

#: timm name -> gatelab registry name
TIMM_NAMES: dict[str, str] = {
    "gatelab_" + name.replace("-", "_"): name
    for name in (
        "attention-unet-2d",
        "attention-unet-3d",
        "dncnn",
        "maxim",
        "maxim-1s",
        "maxim-2s",
        "maxim-3s",
    )
}

#: keywords timm.create_model always passes that only concern hosted weights
_TIMM_ONLY = ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir")


def _entrypoint(timm_name: str, gatelab_name: str) -> Callable[..., nn.Module]:
    def build(pretrained: bool = False, **kwargs: Any) -> nn.Module:
        if pretrained:
            raise ConfigError(
                f"timm.create_model({timm_name!r}, pretrained=True): gatelab hosts no weights; pass "
                "checkpoint_path='DIR/model.safetensors' or load the folder with gatelab.from_pretrained(DIR)"
            )
        from gatelab.core.registry import create_model

        for key in _TIMM_ONLY:
            kwargs.pop(key, None)
        return create_model(gatelab_name, **kwargs)

    build.__name__ = build.__qualname__ = timm_name
    build.__module__ = __name__
    build.__doc__ = f"timm entrypoint of gatelab's ``{gatelab_name}`` (keywords: its config fields, ``preset``)."
    return build


for _timm_name, _name in TIMM_NAMES.items():
    globals()[_timm_name] = _timm_register(_entrypoint(_timm_name, _name))
