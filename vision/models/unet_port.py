"""Weights of the official Attention U-Net code into :class:`gatelab.vision.models.unet.UNet`.

The official repository ``ozan-oktay/Attention-Gated-Networks`` is never imported here; this module
only renames state-dict keys, so a user can load a checkpoint trained with the official
``unet_CT_multi_att_dsv_3D`` (Attention U-Net, the paper's network) or ``unet_CT_dsv_3D`` (its U-Net
baseline) into ``UNet(spatial_dims=3, filters=(64, 128, 256, 512, 1024), feature_scale=fs,
attention=...)`` built at the same ``feature_scale``, ``in_channels`` and ``n_classes``
(``num_classes`` here). Official names are kept on purpose (weight-port code, see the glossary).

Key map (``i`` = 1 .. 4 official levels, ``i - 1`` ours; ``k`` = 1, 2 gates):

==========================================  ===========================================
official                                    gatelab
==========================================  ===========================================
``conv{i}.conv{j}.{0,1}``                   ``encoder.{i-1}.{3(j-1), 3(j-1)+1}``
``center.conv{j}.{0,1}``                    ``center.{3(j-1), 3(j-1)+1}``
``gating.conv1.{0,1}``                      ``gating.{0,1}``
``attentionblock{i}.gate_block_{k}.<p>``    ``gates.att{i}.gates.{k-1}.<p>`` (``W``, theta, phi, psi)
``attentionblock{i}.combine_gates.{0,1}``   ``gates.att{i}.combine.{0,1}``
``up_concat{i}.conv.conv{j}.{0,1}``         ``decoder.{i-1}.{3(j-1), 3(j-1)+1}``
``dsv{i}.dsv.0`` (``i`` >= 2), ``dsv1``     ``dsv.{i-1}``
``final``                                   ``final``
==========================================  ===========================================
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import nn

from gatelab.core.harness.official import import_from_checkout

__all__ = [
    "OFFICIAL_NETWORKS",
    "build_official",
    "import_official",
    "load_official_into",
    "monai_state_dict",
    "official_key",
    "official_state_dict",
]

def _blk(j: str, part: str) -> int:
    """Index in our ``ConvBlock`` (conv, norm, act, conv, norm, act) of official ``conv{j}.{part}``."""
    return 3 * (int(j) - 1) + int(part)


_RULES: tuple[tuple[re.Pattern[str], Callable[[tuple[str, ...]], str]], ...] = tuple(
    (re.compile(p), f)
    for p, f in (
        (r"^conv(\d)\.conv([12])\.([01])\.(.+)$", lambda g: f"encoder.{int(g[0]) - 1}.{_blk(g[1], g[2])}.{g[3]}"),
        (r"^center\.conv([12])\.([01])\.(.+)$", lambda g: f"center.{_blk(g[0], g[1])}.{g[2]}"),
        (r"^gating\.conv1\.([01])\.(.+)$", lambda g: f"gating.{g[0]}.{g[1]}"),
        (r"^attentionblock(\d)\.gate_block_(\d)\.(.+)$", lambda g: f"gates.att{g[0]}.gates.{int(g[1]) - 1}.{g[2]}"),
        (r"^attentionblock(\d)\.combine_gates\.([01])\.(.+)$", lambda g: f"gates.att{g[0]}.combine.{g[1]}.{g[2]}"),
        (
            r"^up_concat(\d)\.conv\.conv([12])\.([01])\.(.+)$",
            lambda g: f"decoder.{int(g[0]) - 1}.{_blk(g[1], g[2])}.{g[3]}",
        ),
        (r"^dsv(\d)\.dsv\.0\.(.+)$", lambda g: f"dsv.{int(g[0]) - 1}.{g[1]}"),
        (r"^dsv1\.(.+)$", lambda g: f"dsv.0.{g[0]}"),
        (r"^final\.(.+)$", lambda g: f"final.{g[0]}"),
    )
)


def official_key(key: str) -> str:
    """The gatelab state-dict key of one official ``unet_CT_(multi_att_)dsv_3D`` key.

    Raises ``KeyError`` naming the key when no rule matches (nothing is dropped silently).
    """
    for pattern, rename in _RULES:
        m = pattern.match(key)
        if m is not None:
            return rename(m.groups())
    raise KeyError(f"official_key: no gatelab parameter for official key {key!r}")


def official_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename every key of an official ``unet_CT_multi_att_dsv_3D`` / ``unet_CT_dsv_3D`` state dict
    (parameters and batch-norm buffers) to gatelab's; load the result with
    ``model.load_state_dict(..., strict=True)``, which names any missing or extra key."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        new = official_key(key)
        if new in out:
            raise KeyError(f"official_state_dict: two official keys map to {new!r} (second: {key!r})")
        out[new] = value
    return out


#: official network class per gatelab configuration: ``attention`` -> (module, class)
OFFICIAL_NETWORKS: dict[bool, tuple[str, str]] = {
    True: ("unet_CT_multi_att_dsv_3D", "unet_CT_multi_att_dsv_3D"),
    False: ("unet_CT_dsv_3D", "unet_CT_dsv_3D"),
}


def import_official(repo: str | Path, attention: bool = True) -> type[nn.Module]:
    """The official network class from a user's checkout of ``ozan-oktay/Attention-Gated-Networks``
    at ``repo`` (``unet_CT_multi_att_dsv_3D`` for ``attention=True``, else ``unet_CT_dsv_3D``).

    Imported with :func:`gatelab.core.harness.official.import_from_checkout`: the checkout's root
    goes on ``sys.path`` for the import (its modules import ``models.*`` absolutely), and a
    ``models`` package imported from elsewhere is dropped from ``sys.modules`` first; nothing is
    copied. Errors name the path and the missing file.
    """
    module, cls = OFFICIAL_NETWORKS[bool(attention)]
    mod = import_from_checkout(
        repo, f"models.networks.{module}", what="ozan-oktay/Attention-Gated-Networks", quiet=True
    )  # quiet: its init.kaiming_normal / F.upsample deprecation notices
    return getattr(mod, cls)


def build_official(
    repo: str | Path, *, attention: bool = True, feature_scale: float = 4, in_channels: int = 1, num_classes: int = 2
) -> nn.Module:
    """The official 3D network built as the paper's CT models are (``is_deconv=False``,
    ``is_batchnorm=True``, ``nonlocal_mode="concatenation"``, ``attention_dsample=(2, 2, 2)``)."""
    cls = import_official(repo, attention)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cls(feature_scale=feature_scale, n_classes=num_classes, is_deconv=False, in_channels=in_channels)


def load_official_into(model: nn.Module, official: nn.Module) -> nn.Module:
    """Copy an official network's parameters and buffers into ``model`` (strict) and return it."""
    model.load_state_dict(official_state_dict(official.state_dict()), strict=True)
    return model


def _monai_prefixes(depth: int) -> list[tuple[str, str]]:
    """``(MONAI module prefix, gatelab module prefix)`` of MONAI ``AttentionUnet`` with ``depth``
    stride-2 levels vs ``UNet(topology="monai")``."""
    pairs: list[tuple[str, str]] = []

    def block(monai: str, ours: str) -> None:  # ConvBlock: conv.{j} = Convolution(conv, adn.N)
        for j in (0, 1):
            pairs.append((f"{monai}.conv.{j}.conv.", f"{ours}.{3 * j}."))
            pairs.append((f"{monai}.conv.{j}.adn.N.", f"{ours}.{3 * j + 1}."))

    block("model.0", "encoder.0")
    for i in range(depth):
        layer = "model.1" + ".submodule.1" * i  # AttentionLayer of level i
        for part in ("W_g", "W_x", "psi"):
            pairs.append((f"{layer}.attention.{part}.0.conv.", f"gates.{i}.{part}.0."))
            pairs.append((f"{layer}.attention.{part}.1.", f"gates.{i}.{part}.1."))
        pairs.append((f"{layer}.upconv.up.conv.", f"up.{i}.0."))
        pairs.append((f"{layer}.upconv.up.adn.N.", f"up.{i}.1."))
        pairs.append((f"{layer}.merge.conv.", f"merge.{i}.0."))
        pairs.append((f"{layer}.merge.adn.A.", f"merge.{i}.2."))
        block(f"{layer}.submodule" + ("" if i == depth - 1 else ".0"), f"encoder.{i + 1}")
    pairs.append(("model.2.conv.", "final."))
    return pairs


def monai_state_dict(state_dict: Mapping[str, torch.Tensor], depth: int) -> dict[str, torch.Tensor]:
    """Rename a MONAI 1.6 ``AttentionUnet`` state dict (``len(strides) == depth``) to the keys of
    ``UNet(topology="monai")``; every key must map (``KeyError`` naming the first that does not)."""
    pairs = sorted(_monai_prefixes(depth), key=lambda p: -len(p[0]))
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        for monai, ours in pairs:
            rest = key[len(monai) :]
            if key.startswith(monai) and "." not in rest:
                out[ours + rest] = value
                break
        else:
            raise KeyError(f"monai_state_dict: no gatelab parameter for MONAI key {key!r} (depth={depth})")
    return out
