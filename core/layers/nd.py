"""Tiny N-d layer factory (MONAI-style) shared by the vision gates.

One code path serves 1D, 2D and 3D inputs ``[B, C, *spatial]``: the layer classes and the
interpolation mode are looked up by ``spatial_dims`` instead of being hard-coded, so a gate written
once works for images and volumes. Private to :mod:`gatelab.core`.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

_CONV: dict[int, type[nn.Module]] = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_CONV_T: dict[int, type[nn.Module]] = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
_BATCH: dict[int, type[nn.Module]] = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
_INSTANCE: dict[int, type[nn.Module]] = {1: nn.InstanceNorm1d, 2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}
_MAXPOOL: dict[int, type[nn.Module]] = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}
_AVGPOOL: dict[int, type[nn.Module]] = {1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d}
# "linear" interpolation named by spatial rank, as F.interpolate expects it
_LINEAR_MODE: dict[int, str] = {1: "linear", 2: "bilinear", 3: "trilinear"}

NORMS = ("batch", "instance", None)


def check_spatial_dims(spatial_dims: int, allowed: Sequence[int] = (1, 2, 3), what: str = "layer") -> int:
    """Validate ``spatial_dims`` (an ``int`` in ``allowed``) and return it."""
    if isinstance(spatial_dims, bool) or not isinstance(spatial_dims, int) or spatial_dims not in allowed:
        raise ValueError(f"{what}: spatial_dims must be one of {tuple(allowed)}, got {spatial_dims!r}")
    return spatial_dims


def conv(spatial_dims: int) -> type[nn.Module]:
    """``nn.Conv1d`` / ``nn.Conv2d`` / ``nn.Conv3d``."""
    return _CONV[check_spatial_dims(spatial_dims)]


def conv_transpose(spatial_dims: int) -> type[nn.Module]:
    """``nn.ConvTranspose{1,2,3}d``."""
    return _CONV_T[check_spatial_dims(spatial_dims)]


def max_pool(spatial_dims: int) -> type[nn.Module]:
    """``nn.MaxPool{1,2,3}d``."""
    return _MAXPOOL[check_spatial_dims(spatial_dims)]


def avg_pool(spatial_dims: int) -> type[nn.Module]:
    """``nn.AvgPool{1,2,3}d``."""
    return _AVGPOOL[check_spatial_dims(spatial_dims)]


def norm(
    name: str | None, spatial_dims: int, channels: int, *, device=None, dtype=None, **options
) -> nn.Module:
    """A normalisation layer over ``channels`` for ``[B, C, *spatial]`` inputs.

    ``name``: ``"batch"`` (``BatchNorm{n}d``), ``"instance"`` (``InstanceNorm{n}d`` with affine
    parameters) or ``None`` (identity). ``options`` go to the layer (``eps``, ``momentum``).
    """
    check_spatial_dims(spatial_dims)
    factory_kwargs = {"device": device, "dtype": dtype}
    if name is None:
        return nn.Identity()
    key = name.lower() if isinstance(name, str) else name
    if key == "batch":
        return _BATCH[spatial_dims](channels, **options, **factory_kwargs)
    if key == "instance":
        options.setdefault("affine", True)
        return _INSTANCE[spatial_dims](channels, **options, **factory_kwargs)
    raise ValueError(f"unknown norm {name!r}; expected one of {NORMS}")


def linear_mode(spatial_dims: int) -> str:
    """The ``F.interpolate`` mode for (multi-)linear resampling: linear/bilinear/trilinear."""
    return _LINEAR_MODE[check_spatial_dims(spatial_dims)]


def interp_mode(mode: str, spatial_dims: int) -> str:
    """Resolve a user interpolation mode for ``spatial_dims``.

    ``"linear"`` means the multi-linear mode of that rank (``bilinear`` in 2D, ``trilinear`` in 3D,
    as the Attention U-Net code picks it); ``"bilinear"``/``"trilinear"`` must match the rank;
    ``"nearest"``, ``"nearest-exact"`` and ``"area"`` work for every rank. (No bicubic: its
    overshoot would take a resampled gate outside [0, 1].)
    """
    check_spatial_dims(spatial_dims)
    if mode in ("nearest", "nearest-exact", "area"):
        return mode
    if mode == "linear":
        return _LINEAR_MODE[spatial_dims]
    if mode in ("bilinear", "trilinear"):
        need = {"bilinear": 2, "trilinear": 3}[mode]
        if need != spatial_dims:
            raise ValueError(
                f"interpolation mode {mode!r} needs spatial_dims={need}, got spatial_dims={spatial_dims}"
            )
        return mode
    raise ValueError(
        f"unknown interpolation mode {mode!r}; expected 'linear', 'bilinear', 'trilinear', "
        "'nearest', 'nearest-exact' or 'area'"
    )


def as_tuple(value: int | Sequence[int], n: int, name: str) -> tuple[int, ...]:
    """``value`` repeated ``n`` times, or a length-``n`` sequence of positive ints, as a tuple."""
    if isinstance(value, int) and not isinstance(value, bool):
        out = (value,) * n
    else:
        out = tuple(value)
        if len(out) != n:
            raise ValueError(f"{name} must be an int or a sequence of {n} ints, got {value!r}")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in out):
        raise ValueError(f"{name} must hold positive ints, got {value!r}")
    return out


def align_corners_for(mode: str, align_corners: bool) -> bool | None:
    """``align_corners`` as ``F.interpolate`` accepts it: ``None`` for non-linear modes."""
    return align_corners if mode in ("linear", "bilinear", "trilinear") else None
