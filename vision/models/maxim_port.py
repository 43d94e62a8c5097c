"""Load the official MAXIM Flax checkpoints (``google-research/maxim``) into :class:`~gatelab.vision.models.maxim.Maxim`.

The official code releases its trained models as ``.npz`` files of the flattened Flax training
state: one array per leaf, named with ``/`` between tree levels (``opt/target/<module>/.../kernel``;
``run_eval.get_params`` keeps the ``opt/target`` subtree, the parameters). This module maps each
Flax parameter to our ``state_dict`` entry and converts its layout:

=====================================  ================================================================
Flax leaf                              PyTorch tensor
=====================================  ================================================================
``Dense`` kernel ``[in, out]``         ``nn.Linear.weight`` ``[out, in]`` (transposed)
``Conv`` 1x1 kernel ``[1, 1, in, out]``  ``nn.Linear.weight`` ``[out, in]`` (our 1x1 convs are Dense on NHWC)
``Conv`` kxk kernel ``[kh, kw, in, out]``  ``nn.Conv2d.weight`` ``[out, in, kh, kw]``
``ConvTranspose`` kernel ``[kh, kw, in, out]``  ``nn.ConvTranspose2d.weight`` ``[in, out, kh, kw]``, **spatially flipped**
token-mixing ``Dense`` (gating units)  ``nn.Linear.weight`` = kernel transposed; in the MAB's gating units
                                       the bias is the official one **plus 1** (the official unit adds
                                       a constant 1, ours folds it into the bias; see
                                       :class:`gatelab.core.SpatialGatingUnit`)
``LayerNorm`` ``scale`` / ``bias``     ``weight`` / ``bias``
=====================================  ================================================================

Why the flip: Flax's ``ConvTranspose`` (``transpose_kernel=False``) is a fractionally strided
*correlation* with the kernel as stored, PyTorch's ``ConvTranspose2d`` the gradient of a
convolution, which applies the kernel rotated by 180 degrees; for the 2x2 stride-2 up-sampling of
MAXIM the two agree once the kernel is flipped in both spatial axes (checked against the official
code by ``tests/vision/models/test_maxim_port.py``).

The Flax module names follow the official code's auto-naming (``Conv_0``, ``Dense_1``,
``UpSampleRatio_<n>`` counted over the whole model, ``channel_attention_block_1<g>`` in the
encoder and ``channel_attention_block_1_<g>`` in the bottleneck, as written there). Every Flax
parameter must be used and every one of ours filled, with the expected shape: anything else
raises :class:`~gatelab.core.config.ConfigError` naming the key and the shapes.

Exactness: our MAXIM computes the official function only where the official code's quirks and
our config agree; :func:`check_official_compatible` enforces that (``grid_size_lr ==
block_size_lr``: the official code uses ``block_size_lr`` as the low-resolution grid size;
``lrelu_slope == 0.2``: the official encoder ignores its argument; ``input_proj_factor == 2``:
the official decoder and cross-gating blocks use 2 whatever it is; ``in_channels ==
num_outputs``, and ``3`` when there is a SAM, for the residual to the input image).

Usage::

    from gatelab.vision.models.maxim_port import load_flax_checkpoint
    model = load_flax_checkpoint("SIDD/checkpoint.npz")          # config read from the shapes
    model = load_flax_checkpoint("GoPro/checkpoint.npz", "S-3")  # or named: a preset, config, dict

or, to a :func:`gatelab.save_pretrained` folder (``gatelab.from_pretrained(dir)`` loads it)::

    python -m gatelab.vision.models.maxim_port SIDD/checkpoint.npz runs/maxim-sidd [--variant S-3]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import re
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from gatelab.core.config import ConfigError

from .maxim import Maxim, MaximConfig

__all__ = [
    "OFFICIAL_TASK_VARIANTS",
    "check_official_compatible",
    "config_from_official",
    "convert_flax_params",
    "flatten_flax_params",
    "infer_config",
    "load_flax_checkpoint",
    "main",
    "read_flax_checkpoint",
]

#: the variant each task of the official ``run_eval.py`` builds (``_MODEL_VARIANT_DICT``)
OFFICIAL_TASK_VARIANTS: dict[str, str] = {
    "Denoising": "S-3",
    "Deblurring": "S-3",
    "Deraining": "S-2",
    "Dehazing": "S-2",
    "Enhancement": "S-2",
}

# defaults of the official ``MAXIM`` Flax module (which differ from ours) and its name changes
_OFFICIAL_DEFAULTS: dict[str, Any] = dict(
    features=64,
    depth=3,
    num_stages=2,
    num_groups=1,
    use_bias=True,
    num_supervision_scales=1,
    lrelu_slope=0.2,
    use_global_mlp=True,
    use_cross_gating=True,
    high_res_stages=2,
    block_size_hr=(16, 16),
    block_size_lr=(8, 8),
    grid_size_hr=(16, 16),
    grid_size_lr=(8, 8),
    num_bottleneck_blocks=1,
    block_gmlp_factor=2,
    grid_gmlp_factor=2,
    input_proj_factor=2,
    channels_reduction=4,
    num_outputs=3,
    dropout_rate=0.0,
)
_RENAMED = {"use_bias": "bias", "dropout_rate": "dropout"}
_PREFIXES = ("opt/target/", "params/", "target/")


# --------------------------------------------------------------------------- reading


def flatten_flax_params(params: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """``{"a/b/kernel": array}`` from a nested Flax parameter tree or an already flat mapping.

    Accepts the nested ``params`` dict of ``model.init(...)["params"]`` (a ``FrozenDict`` too), a
    flat ``{path: array}`` mapping with ``/`` separators, and either with the released
    checkpoints' ``opt/target/`` prefix (or ``params/``), which is stripped. Leaves become
    float32 numpy arrays (the released checkpoints are float32).
    """
    flat: dict[str, np.ndarray] = {}

    def walk(tree: Mapping[str, Any], prefix: str) -> None:
        for key, value in tree.items():
            name = f"{prefix}/{key}" if prefix else str(key)
            if isinstance(value, Mapping) or (hasattr(value, "items") and not hasattr(value, "shape")):
                walk(value, name)
            else:
                flat[name] = np.asarray(value, dtype=np.float32)

    walk(params, "")
    for prefix in _PREFIXES:
        if flat and all(k.startswith(prefix) for k in flat if not k.startswith("opt/state")):
            return {k[len(prefix) :]: v for k, v in flat.items() if k.startswith(prefix)}
    return flat


def read_flax_checkpoint(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """The parameters of a released MAXIM checkpoint ``.npz``, flat (see :func:`flatten_flax_params`).

    The file is what the official ``run_eval.get_params`` reads: ``np.load`` of an ``.npz`` whose
    keys are ``/``-joined tree paths; the ``opt/target`` subtree holds the parameters (the
    optimizer state, if present, is left out). Read without pickle.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"read_flax_checkpoint: {path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (ValueError, OSError, AttributeError) as e:
        raise ConfigError(f"read_flax_checkpoint: {path}: not a numpy .npz checkpoint ({e})") from e
    if any(k.startswith("opt/") for k in arrays) and not any(k.startswith("opt/target/") for k in arrays):
        raise ConfigError(f"read_flax_checkpoint: {path}: has 'opt/...' keys but no 'opt/target/' parameters")
    flat = flatten_flax_params(arrays)
    if not flat:
        raise ConfigError(f"read_flax_checkpoint: {path}: no arrays in the file")
    return flat


# --------------------------------------------------------------------------- configs


def config_from_official(**official: Any) -> MaximConfig:
    """Our :class:`MaximConfig` for the official ``MAXIM(**official)`` / ``Model(variant=..., **kw)``.

    Official names (``use_bias``, ``dropout_rate``) and the official class defaults apply
    (``features=64, num_groups=1, num_supervision_scales=1, num_bottleneck_blocks=1``); a
    ``variant`` (``"S-3"`` ...) fills what the official ``Model`` factory sets. ``grid_size_lr``
    is set to ``block_size_lr``, as the official code uses it (its ``grid_size_lr`` is unused).
    """
    kw = dict(official)
    variant = kw.pop("variant", None)
    fields = dict(_OFFICIAL_DEFAULTS)
    if variant is not None:
        if variant not in MaximConfig.presets:
            raise ConfigError(
                f"config_from_official: variant={variant!r}: expected one of {sorted(MaximConfig.presets)}"
            )
        fields.update(MaximConfig.presets[variant])
        fields.update(block_gmlp_factor=2, grid_gmlp_factor=2, input_proj_factor=2, channels_reduction=4)
    unknown = sorted(set(kw) - set(_OFFICIAL_DEFAULTS))
    if unknown:
        raise ConfigError(
            f"config_from_official: unknown official MAXIM arguments {unknown}; "
            f"expected some of {sorted(_OFFICIAL_DEFAULTS)}"
        )
    fields.update(kw)
    fields["grid_size_lr"] = fields["block_size_lr"]
    mapped = {_RENAMED.get(k, k): tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
    return MaximConfig(**mapped)


def check_official_compatible(config: MaximConfig) -> None:
    """Raise :class:`ConfigError` where our model with ``config`` would not compute what the
    official one does with the same weights (see the module docstring)."""
    problems = []
    if tuple(config.grid_size_lr) != tuple(config.block_size_lr):  # type: ignore[arg-type]
        problems.append(
            f"grid_size_lr={config.grid_size_lr} != block_size_lr={config.block_size_lr} "
            "(the official code uses block_size_lr as the low-resolution grid size)"
        )
    if config.lrelu_slope != 0.2:
        problems.append(f"lrelu_slope={config.lrelu_slope} (the official encoder blocks always use 0.2)")
    if config.input_proj_factor != 2:
        problems.append(
            f"input_proj_factor={config.input_proj_factor} (the official decoder and cross-gating blocks use 2)"
        )
    if config.in_channels != config.num_outputs:
        problems.append(
            f"in_channels={config.in_channels} != num_outputs={config.num_outputs} (the official output "
            "convs add the input image)"
        )
    elif config.num_stages > 1 and config.num_outputs != 3:
        problems.append(f"num_outputs={config.num_outputs} with SAMs (the official SAM adds the image only for 3)")
    if problems:
        raise ConfigError("MAXIM Flax port: config differs from the official model: " + "; ".join(problems))


def _count(flat: Mapping[str, Any], pattern: str) -> int:
    rx = re.compile(pattern)
    found = {m.group(1) for k in flat if (m := rx.match(k))}
    return len(found)


def _square(tokens: int, what: str) -> tuple[int, int]:
    a = math.isqrt(tokens)
    if a * a != tokens:
        raise ConfigError(
            f"infer_config: {what} mixes {tokens} tokens, not a square: the block/grid shape cannot be "
            "read from the weights; pass it (e.g. block_size_hr=(4, 2))"
        )
    return a, a


def _tokens(flat: Mapping[str, np.ndarray], *keys: str) -> tuple[int, str] | None:
    for key in keys:
        if key in flat:
            return int(flat[key].shape[0]), key
    return None


def infer_config(params: Mapping[str, Any], **overrides: Any) -> MaximConfig:
    """A :class:`MaximConfig` read from the parameter names and shapes of a Flax MAXIM.

    Read: ``num_stages``, ``depth``, ``num_supervision_scales``, ``num_groups``,
    ``num_bottleneck_blocks``, ``features``, ``in_channels``, ``num_outputs``, ``bias``,
    ``use_global_mlp``, ``use_cross_gating``, ``channels_reduction``, the gMLP factors, and the
    block/grid sizes when their token counts are squares (``16 x 16`` and ``8 x 8`` in every
    released model); ``high_res_stages`` from where the token count changes. ``overrides`` (our
    field names) replace what is read (needed for non-square blocks). Fixed to the official
    behaviour: ``grid_size_lr = block_size_lr``, ``lrelu_slope = 0.2``, ``dropout = 0``.
    """
    flat = flatten_flax_params(params)
    first_conv = "stage_0_input_conv_0/kernel"
    if first_conv not in flat:
        some = ", ".join(sorted(flat)[:3])
        raise ConfigError(f"infer_config: no '{first_conv}' parameter: not a MAXIM checkpoint (keys: {some}, ...)")
    kernel = flat[first_conv]
    stages = _count(flat, r"^stage_(\d+)_")
    depth = _count(flat, r"^stage_0_encoder_block_(\d+)/")
    enc0 = "stage_0_encoder_block_0/"
    fields: dict[str, Any] = dict(
        num_stages=stages,
        depth=depth,
        num_supervision_scales=_count(flat, r"^stage_0_input_conv_(\d+)/"),
        num_groups=_count(flat, rf"^{enc0}channel_attention_block_1(\d+)/"),
        num_bottleneck_blocks=_count(flat, r"^stage_0_global_block_(\d+)/"),
        features=int(kernel.shape[3]),
        in_channels=int(kernel.shape[2]),
        bias="stage_0_input_conv_0/bias" in flat,
        use_global_mlp=any(k.startswith(f"{enc0}SplitHeadMultiAxisGmlpLayer_0/") for k in flat),
        use_cross_gating=any(k.startswith("stage_0_cross_gating_block_") for k in flat),
        lrelu_slope=0.2,
        dropout=0.0,
    )
    out_conv = f"stage_{stages - 1}_output_conv_0/kernel"
    if out_conv in flat:
        fields["num_outputs"] = int(flat[out_conv].shape[3])
    ca = flat.get(f"{enc0}channel_attention_block_10/channel_attention/Conv_0/kernel")
    if ca is not None and ca.shape[3] > 0:
        fields["channels_reduction"] = fields["features"] // int(ca.shape[3])
    # gMLP factors from the first MAB (bottleneck, else encoder)
    mab = next(
        (p for p in ("stage_0_global_block_0/SplitHeadMultiAxisGmlpLayer_0/", f"{enc0}SplitHeadMultiAxisGmlpLayer_0/")
         if f"{p}in_project/kernel" in flat),
        None,
    )
    if mab is not None:
        w = flat[f"{mab}in_project/kernel"]
        fields["input_proj_factor"] = int(w.shape[1]) // int(w.shape[0])
        for branch, name in (("BlockGmlpLayer", "block_gmlp_factor"), ("GridGmlpLayer", "grid_gmlp_factor")):
            wb = flat[f"{mab}{branch}/in_project/kernel"]
            fields[name] = int(wb.shape[1]) // int(wb.shape[0])
    # block / grid sizes: token counts of the gating units per level (MAB, else cross-gating block)
    def level_tokens(i: int, kind: str) -> tuple[int, str] | None:
        unit = "BlockGmlpLayer/BlockGatingUnit" if kind == "block" else "GridGmlpLayer/GridGatingUnit"
        dense = "Dense_1" if kind == "block" else "Dense_0"
        return _tokens(
            flat,
            f"stage_0_encoder_block_{i}/SplitHeadMultiAxisGmlpLayer_0/{unit}/Dense_0/kernel",
            f"stage_0_cross_gating_block_{i}/SplitHeadMultiAxisGating_x/{dense}/kernel",
        )

    lr = _tokens(flat, "stage_0_global_block_0/SplitHeadMultiAxisGmlpLayer_0/BlockGmlpLayer/BlockGatingUnit/Dense_0/kernel")
    hr_block, hr_grid = level_tokens(0, "block"), level_tokens(0, "grid")
    if lr is not None and "block_size_lr" not in overrides:
        fields["block_size_lr"] = _square(*lr)
    if hr_block is not None and "block_size_hr" not in overrides:
        fields["block_size_hr"] = _square(*hr_block)
    if hr_grid is not None and "grid_size_hr" not in overrides:
        fields["grid_size_hr"] = _square(*hr_grid)
    if hr_block is not None and lr is not None and "high_res_stages" not in overrides:
        if hr_block[0] == lr[0] and (hr_grid is None or hr_grid[0] == lr[0]):
            fields["high_res_stages"] = depth  # all levels alike: the split is immaterial
        else:
            hrs = 0
            while hrs < depth and (t := level_tokens(hrs, "block")) is not None and t[0] == hr_block[0]:
                hrs += 1
            fields["high_res_stages"] = hrs
    fields.update(overrides)
    fields["grid_size_lr"] = fields.get("block_size_lr", MaximConfig.block_size_lr)
    return MaximConfig(**fields)


# --------------------------------------------------------------------------- the name map

_Transform = Callable[[np.ndarray], np.ndarray]


def _t_dense(k: np.ndarray) -> np.ndarray:
    return k.T


def _t_conv1x1(k: np.ndarray) -> np.ndarray:
    if k.ndim != 4 or k.shape[:2] != (1, 1):
        raise ValueError(f"expected a 1x1 conv kernel [1, 1, in, out], got shape {k.shape}")
    return k[0, 0].T


def _t_conv(k: np.ndarray) -> np.ndarray:
    return k.transpose(3, 2, 0, 1)


def _t_conv_transpose(k: np.ndarray) -> np.ndarray:
    return k[::-1, ::-1].transpose(2, 3, 0, 1)


def _t_copy(k: np.ndarray) -> np.ndarray:
    return k


def _t_plus_one(k: np.ndarray) -> np.ndarray:
    return k + 1.0


@dataclasses.dataclass
class _Map:
    """Collects ``(our key, flax key, transform)`` triples."""

    bias: bool
    items: list[tuple[str, str, _Transform]] = dataclasses.field(default_factory=list)

    def add(self, ours: str, flax: str, weight: _Transform, bias: _Transform = _t_copy) -> None:
        self.items.append((f"{ours}.weight", f"{flax}/kernel", weight))
        if self.bias:
            self.items.append((f"{ours}.bias", f"{flax}/bias", bias))

    def norm(self, ours: str, flax: str) -> None:  # Flax LayerNorm has scale and bias whatever use_bias
        self.items.append((f"{ours}.weight", f"{flax}/scale", _t_copy))
        self.items.append((f"{ours}.bias", f"{flax}/bias", _t_copy))

    def mab(self, ours: str, flax: str) -> None:
        self.norm(f"{ours}.norm", f"{flax}/LayerNorm_in")
        self.add(f"{ours}.in_project", f"{flax}/in_project", _t_dense)
        for branch, layer, unit in (("grid", "GridGmlpLayer", "GridGatingUnit"), ("block", "BlockGmlpLayer", "BlockGatingUnit")):
            self.norm(f"{ours}.{branch}.norm", f"{flax}/{layer}/LayerNorm")
            self.add(f"{ours}.{branch}.in_project", f"{flax}/{layer}/in_project", _t_dense)
            self.norm(f"{ours}.{branch}.gating.norm", f"{flax}/{layer}/{unit}/intermediate_layernorm")
            self.add(f"{ours}.{branch}.gating.proj", f"{flax}/{layer}/{unit}/Dense_0", _t_dense, _t_plus_one)
            self.add(f"{ours}.{branch}.out_project", f"{flax}/{layer}/out_project", _t_dense)
        self.add(f"{ours}.out_project", f"{flax}/out_project", _t_dense)

    def gating_weights(self, ours: str, flax: str) -> None:
        self.norm(f"{ours}.norm", f"{flax}/LayerNorm_in")
        self.add(f"{ours}.in_project", f"{flax}/in_project", _t_dense)
        self.add(f"{ours}.grid_proj", f"{flax}/Dense_0", _t_dense)
        self.add(f"{ours}.block_proj", f"{flax}/Dense_1", _t_dense)
        self.add(f"{ours}.out_project", f"{flax}/out_project", _t_dense)

    def cross_gating(self, ours: str, flax: str, upsample_y: bool) -> None:
        if upsample_y:
            self.add(f"{ours}.up_y", f"{flax}/ConvTranspose_0", _t_conv_transpose)
        self.add(f"{ours}.proj_x", f"{flax}/Conv_0", _t_conv1x1)
        self.add(f"{ours}.proj_y", f"{flax}/Conv_1", _t_conv1x1)
        for s in ("x", "y"):
            self.norm(f"{ours}.norm_{s}", f"{flax}/LayerNorm_{s}")
            self.add(f"{ours}.in_project_{s}", f"{flax}/in_project_{s}", _t_dense)
            self.gating_weights(f"{ours}.gating_{s}", f"{flax}/SplitHeadMultiAxisGating_{s}")
        self.add(f"{ours}.out_project_y", f"{flax}/out_project_y", _t_dense)
        self.add(f"{ours}.out_project_x", f"{flax}/out_project_x", _t_dense)

    def channel_attention(self, ours: str, flax: str) -> None:
        self.add(f"{ours}.se.fc1", f"{flax}/Conv_0", _t_conv1x1)
        self.add(f"{ours}.se.fc2", f"{flax}/Conv_1", _t_conv1x1)

    def groups(self, ours: str, flax: str, cfg: MaximConfig, *, bottleneck: bool) -> None:
        self.add(f"{ours}.conv_in", f"{flax}/{'input_proj' if bottleneck else 'Conv_0'}", _t_conv1x1)
        for g in range(cfg.num_groups):
            if bottleneck or cfg.use_global_mlp:
                self.mab(f"{ours}.mab.{g}", f"{flax}/SplitHeadMultiAxisGmlpLayer_{g}")
            cab = f"{ours}.cab.{g}"
            if bottleneck:
                f = f"{flax}/channel_attention_block_1_{g}"
                self.norm(f"{cab}.norm", f"{f}/LayerNorm")
                self.add(f"{cab}.fc1", f"{f}/channel_mixing/Dense_0", _t_dense)
                self.add(f"{cab}.fc2", f"{f}/channel_mixing/Dense_1", _t_dense)
            else:
                f = f"{flax}/channel_attention_block_1{g}"  # sic: official f"channel_attention_block_1{i}"
                self.norm(f"{cab}.norm", f"{f}/LayerNorm")
                self.add(f"{cab}.conv1", f"{f}/conv1", _t_conv)
                self.add(f"{cab}.conv2", f"{f}/conv2", _t_conv)
            self.channel_attention(f"{cab}.channel_attention", f"{f}/channel_attention")

    def stage(self, s: int, cfg: MaximConfig) -> None:
        d, n = cfg.depth, cfg.num_supervision_scales
        ours, flax = f"stages.{s}", f"stage_{s}"
        last = s == cfg.num_stages - 1
        for i in range(n):
            self.add(f"{ours}.input_conv.{i}", f"{flax}_input_conv_{i}", _t_conv)
            if s > 0 and cfg.use_cross_gating:
                self.cross_gating(f"{ours}.input_fuse.{i}", f"{flax}_input_fuse_sam_{i}", False)
            elif s > 0:
                self.add(f"{ours}.input_fuse.{i}", f"{flax}_input_catconv_{i}", _t_conv1x1)
        for i in range(d):
            enc, fenc = f"{ours}.encoders.{i}", f"{flax}_encoder_block_{i}"
            self.groups(f"{enc}.groups", fenc, cfg, bottleneck=False)
            if s > 0:
                self.cross_gating(f"{enc}.cross_gating", f"{fenc}/cross_gating_block", False)
            self.add(f"{enc}.down", f"{fenc}/Conv_1", _t_conv)
        for b in range(cfg.num_bottleneck_blocks):
            self.groups(f"{ours}.bottleneck.{b}.groups", f"{flax}_global_block_{b}", cfg, bottleneck=True)
        up = s * 2 * d * d  # UpSampleRatio_<n> is numbered over the whole model: 2 d^2 per stage
        for k in range(d):  # skips for level i = d-1-k
            i = d - 1 - k
            for j in range(d):
                self.add(f"{ours}.skip_resize.{k}.{j}.proj", f"UpSampleRatio_{up + k * d + j}/Conv_0", _t_conv1x1)
            if cfg.use_cross_gating:
                self.cross_gating(f"{ours}.skip_fuse.{k}", f"{flax}_cross_gating_block_{i}", True)
            else:  # unnamed Conv1x1 + Conv3x3 at the model's top level, numbered over all stages
                c = 2 * (s * d + k)
                self.add(f"{ours}.skip_fuse.{k}.0", f"Conv_{c}", _t_conv1x1)
                self.add(f"{ours}.skip_fuse.{k}.1", f"Conv_{c + 1}", _t_conv)
        for k in range(d):  # decoder for level i = d-1-k
            i = d - 1 - k
            for j in range(d):
                self.add(f"{ours}.dec_resize.{k}.{j}.proj", f"UpSampleRatio_{up + d * d + k * d + j}/Conv_0", _t_conv1x1)
            dec, fdec = f"{ours}.decoders.{k}", f"{flax}_decoder_block_{i}"
            self.add(f"{dec}.up", f"{fdec}/ConvTranspose_0", _t_conv_transpose)
            self.groups(f"{dec}.block.groups", f"{fdec}/UNetEncoderBlock_0", cfg, bottleneck=False)
            if i < n:
                head = f"{ours}.heads.{n - 1 - i}"
                if last:
                    self.add(head, f"{flax}_output_conv_{i}", _t_conv)
                else:
                    sam = f"{flax}_supervised_attention_module_{i}"
                    self.add(f"{head}.conv_feat", f"{sam}/Conv_0", _t_conv)
                    self.add(f"{head}.conv_out", f"{sam}/Conv_1", _t_conv)
                    self.add(f"{head}.conv_gate", f"{sam}/Conv_2", _t_conv)


def _name_map(cfg: MaximConfig) -> list[tuple[str, str, _Transform]]:
    m = _Map(bias=cfg.bias)
    for s in range(cfg.num_stages):
        m.stage(s, cfg)
    return m.items


# --------------------------------------------------------------------------- conversion


def _resolve_config(params: Mapping[str, np.ndarray], config: MaximConfig | Mapping[str, Any] | str | None) -> MaximConfig:
    if config is None:
        return infer_config(params)
    if isinstance(config, str):
        return config_from_official(variant=config, num_supervision_scales=3)
    return MaximConfig.build(config)


def convert_flax_params(
    params: Mapping[str, Any],
    config: MaximConfig | Mapping[str, Any] | str | None = None,
    *,
    dtype: torch.dtype = torch.float32,
) -> dict[str, torch.Tensor]:
    """Our ``state_dict`` for the official Flax MAXIM parameters ``params``.

    Args:
        params: the Flax parameters: nested (``variables["params"]``) or flat with ``/``
            (a released checkpoint's arrays; an ``opt/target/`` prefix is stripped).
        config: the model's :class:`MaximConfig` (or a mapping of its fields, or an official
            variant name ``"S-3"`` with ``run_eval``'s ``num_supervision_scales=3``); ``None``:
            read from the parameters (:func:`infer_config`).
        dtype: of the returned tensors (``torch.float32`` or ``torch.float64``); the layout
            changes, including the gating units' ``+1``, are computed in it (in float32 the
            ``+1`` rounds a bias to float32's spacing near 1, ~6e-8).

    Returns ``{name: tensor}`` that :class:`Maxim` ``(config)`` loads with
    ``strict=True``. Raises :class:`ConfigError` when the config is not one the official code
    computes the same way (:func:`check_official_compatible`), when a Flax parameter is missing
    or left over, or when a shape differs (naming the Flax key, its shape and ours).
    """
    if dtype not in (torch.float32, torch.float64):
        raise ConfigError(f"convert_flax_params: dtype={dtype}: expected torch.float32 or torch.float64")
    np_dtype = np.float32 if dtype == torch.float32 else np.float64
    flat = flatten_flax_params(params)
    cfg = _resolve_config(flat, config)
    check_official_compatible(cfg)
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in Maxim(cfg).state_dict().items()}
    out: dict[str, torch.Tensor] = {}
    missing = []
    for ours, flax, transform in _name_map(cfg):
        if flax not in flat:
            missing.append(flax)
            continue
        if ours not in expected:  # a bug in the map, not in the checkpoint
            raise AssertionError(f"convert_flax_params: mapped to unknown parameter {ours!r}")
        try:
            array = np.ascontiguousarray(transform(flat[flax].astype(np_dtype)))
        except ValueError as e:
            raise ConfigError(f"convert_flax_params: Flax parameter {flax!r}: {e}") from e
        if tuple(array.shape) != expected[ours]:
            raise ConfigError(
                f"convert_flax_params: Flax parameter {flax!r} of shape {tuple(flat[flax].shape)} gives "
                f"{tuple(array.shape)} for {ours!r}, which needs {expected[ours]} (config: {cfg})"
            )
        out[ours] = torch.from_numpy(array.copy())
    if missing:
        raise ConfigError(
            f"convert_flax_params: {len(missing)} parameters that this config needs are not in the "
            f"checkpoint, e.g. {missing[:3]} (config: {cfg})"
        )
    used = {flax for _, flax, _ in _name_map(cfg)}
    unused = sorted(set(flat) - used)
    if unused:
        raise ConfigError(
            f"convert_flax_params: {len(unused)} checkpoint parameters have no place in this config, "
            f"e.g. {unused[:3]} (config: {cfg})"
        )
    left = sorted(set(expected) - set(out))
    if left:  # every entry of our model comes from the map
        raise AssertionError(f"convert_flax_params: no Flax parameter for {left[:3]}")
    return out


def load_flax_checkpoint(
    path: str | os.PathLike[str], config: MaximConfig | Mapping[str, Any] | str | None = None
) -> Maxim:
    """A :class:`Maxim` with the weights of a released official checkpoint (``.npz``), in eval mode.

    ``config`` as in :func:`convert_flax_params` (default: read from the weights; the released
    models are ``S-3`` for denoising/deblurring and ``S-2`` for deraining, dehazing and
    enhancement, :data:`OFFICIAL_TASK_VARIANTS`). Run it like the official ``run_eval``
    with :func:`gatelab.vision.tasks.maxim_inference.restore` (its padding, optional x8
    self-ensemble), or ``model.restore(x, padding="run_eval", geometric_ensemble=True)``.
    """
    flat = read_flax_checkpoint(path)
    cfg = _resolve_config(flat, config)
    model = Maxim(cfg)
    model.load_state_dict(convert_flax_params(flat, cfg), strict=True)
    return model.eval()


def main(argv: list[str] | None = None) -> int:
    """``python -m gatelab.vision.models.maxim_port CHECKPOINT OUT_DIR [--variant S-3]``."""
    parser = argparse.ArgumentParser(
        prog="python -m gatelab.vision.models.maxim_port",
        description="Convert a released MAXIM Flax checkpoint (.npz) to a gatelab save_pretrained folder.",
        epilog="example: python -m gatelab.vision.models.maxim_port SIDD/checkpoint.npz runs/maxim-sidd",
    )
    parser.add_argument("checkpoint", help="the official checkpoint .npz")
    parser.add_argument("out_dir", help="the folder to write (config.json + model.safetensors)")
    parser.add_argument(
        "--variant",
        choices=sorted(MaximConfig.presets),
        help="the official variant (default: read from the weights); run_eval's num_supervision_scales=3",
    )
    args = parser.parse_args(argv)
    model = load_flax_checkpoint(args.checkpoint, args.variant)
    out = model.save_pretrained(args.out_dir)
    n = sum(p.numel() for p in model.parameters())
    print(f"{args.checkpoint} -> {out} (maxim, {n:,} parameters, config {model.config.to_dict()})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
