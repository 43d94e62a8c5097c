"""Build the MAXIM converter's test fixture with the official Flax code (google-research/maxim).

    uv sync --group port        # jax, flax, einops (CPU wheels)
    .venv/bin/python tools/make_maxim_fixture.py --official-repo /path/to/maxim \\
        --out tests/vision/fixtures/maxim_flax.npz

For each variant below (the 1-, 2- and 3-stage models, a bias-free one and the ablation without
MAB / cross-gating, all at small width and block sizes so the file stays small) the script builds
the official ``maxim.models.maxim.MAXIM`` module, initialises it, draws every parameter at random
(the official init leaves LayerNorms at identity and biases at 0 or 1, which would hide a
converter that drops or swaps them: here every leaf gets its own noise), runs it on a fixed random
batch of images in [0, 1] and saves:

* ``<variant>:opt/target/<flax/param/path>`` -- the parameters (float32), named as in the
  released checkpoints (``run_eval.get_params`` reads ``opt/target`` of the flattened tree);
* ``<variant>:input`` -- the NCHW float32 batch (the official model sees its NHWC transpose);
* ``<variant>:output/<stage>/<scale>`` -- every output (NCHW), computed in float64 by JAX from
  the float32 parameters (``jax_enable_x64``), so a test can check both a float32 run (1e-4) and
  a float64 run (tight);
* ``meta`` -- JSON: the official repository commit, jax/flax versions, each variant's official
  constructor arguments.

The official code is imported from ``--official-repo`` (never copied into gatelab). Nothing here
is imported by gatelab or its tests; only the ``.npz`` is.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from gatelab.core.harness.official import import_from_checkout

# Official ``MAXIM`` constructor arguments (official names) of each fixture variant. Non-square
# blocks and grids at high resolution catch a transposed token order; 16 x 32 inputs catch a
# transposed image.
_BASE: dict[str, Any] = dict(
    features=4,
    depth=3,
    num_groups=1,
    num_supervision_scales=3,
    num_bottleneck_blocks=1,
    high_res_stages=2,
    block_size_hr=(4, 2),
    grid_size_hr=(2, 4),
    block_size_lr=(2, 2),
    grid_size_lr=(2, 2),
    use_bias=True,
    num_outputs=3,
    dropout_rate=0.0,
)
VARIANTS: dict[str, dict[str, Any]] = {
    "s1": dict(_BASE, num_stages=1),
    "s2": dict(_BASE, num_stages=2, num_groups=2, num_bottleneck_blocks=2),
    # square blocks at high resolution, as every released model: infer_config can read them
    "s3": dict(_BASE, num_stages=3, block_size_hr=(4, 4), grid_size_hr=(4, 4)),
    "s2-nobias": dict(_BASE, num_stages=2, use_bias=False, high_res_stages=1),
    "s2-ablation": dict(
        _BASE, num_stages=2, use_cross_gating=False, use_global_mlp=False, num_supervision_scales=2
    ),
}
BATCH, HEIGHT, WIDTH = 2, 16, 32


def _randomise(params: Any, rng: np.random.Generator) -> Any:
    """Every leaf plus its own noise, at a scale that keeps the outputs near the image range.

    Kernels: the official init times 0.5 plus ``N(0, 0.3^2 / fan_in)`` noise (so the small
    ``normal(0.02)`` kernels of the gMLP layers matter too); biases and LayerNorm offsets
    ``N(0, 0.05^2)``; LayerNorm scales ``1 + N(0, 0.1^2)``. The convolutions
    that produce images (SAM's ``Conv_1``, the last stage's ``output_conv``) are scaled by 0.5
    more, so every output is the input image plus a correction of order 0.1 (random
    weights through many residual blocks otherwise give outputs of 1e3-1e5, where a 1e-4
    comparison on the [0, 1] scale would mean nothing).
    """
    import jax

    def leaf(path: tuple[Any, ...], x: Any) -> np.ndarray:
        a = np.asarray(x, np.float32)
        names = [str(getattr(p, "key", p)) for p in path]
        if names[-1] == "kernel":
            fan_in = int(np.prod(a.shape[:-1]))
            a = 0.5 * a + rng.normal(0.0, 0.3 / np.sqrt(fan_in), a.shape)
            head = "output_conv" in names[0] or (
                "supervised_attention_module" in names[0] and names[-2] == "Conv_1"
            )
            return (a * (0.5 if head else 1.0)).astype(np.float32)
        if names[-1] == "scale":
            return (a + rng.normal(0.0, 0.1, a.shape)).astype(np.float32)
        return (a + rng.normal(0.0, 0.05, a.shape)).astype(np.float32)

    return jax.tree_util.tree_map_with_path(leaf, params)


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for k, v in tree.items():
        name = f"{prefix}/{k}" if prefix else str(k)
        if isinstance(v, dict) or hasattr(v, "items"):
            out.update(_flatten(dict(v.items()), name))
        else:
            out[name] = np.asarray(v, np.float32)
    return out


def build(official_repo: Path, seed: int = 0, variants: list[str] | None = None) -> dict[str, np.ndarray]:
    """The fixture arrays (see the module docstring)."""
    import flax
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    official = import_from_checkout(official_repo, "maxim.models.maxim", what="google-research/maxim")

    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {}
    for i, (name, kwargs) in enumerate(VARIANTS.items()):
        if variants and name not in variants:
            continue
        model = official.MAXIM(**kwargs)
        x = rng.random((BATCH, 3, HEIGHT, WIDTH), dtype=np.float32)
        x_nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        params = model.init(jax.random.PRNGKey(seed + i), jnp.asarray(x_nhwc))["params"]
        params = _randomise(flax.core.unfreeze(params), rng)
        flat = _flatten(params)
        params64 = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), params)
        outs = model.apply({"params": params64}, jnp.asarray(x_nhwc, jnp.float64))
        for k, v in flat.items():
            arrays[f"{name}:opt/target/{k}"] = v
        arrays[f"{name}:input"] = x
        for s, stage in enumerate(outs):
            for c, out in enumerate(stage):
                arrays[f"{name}:output/{s}/{c}"] = np.asarray(out, np.float64).transpose(0, 3, 1, 2)
        final = np.asarray(outs[-1][-1])
        print(f"{name}: {len(flat)} parameter arrays, final output range [{final.min():.3f}, {final.max():.3f}]")
    commit = subprocess.run(
        ["git", "-C", str(official_repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    meta = {
        "official_repo": "google-research/maxim",
        "official_commit": commit or "unknown",
        "jax": jax.__version__,
        "flax": flax.__version__,
        "seed": seed,
        "input_shape_nchw": [BATCH, 3, HEIGHT, WIDTH],
        "variants": {k: {kk: list(vv) if isinstance(vv, tuple) else vv for kk, vv in v.items()} for k, v in VARIANTS.items()},
    }
    arrays["meta"] = np.array(json.dumps(meta, sort_keys=True))
    return arrays


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official-repo", type=Path, required=True, help="a checkout of google-research/maxim")
    parser.add_argument("--out", type=Path, required=True, help="the .npz to write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", nargs="*", choices=sorted(VARIANTS), help="only these (default: all)")
    args = parser.parse_args(argv)
    if not (args.official_repo / "maxim" / "models" / "maxim.py").is_file():
        parser.error(f"--official-repo {args.official_repo}: no maxim/models/maxim.py there")
    arrays = build(args.official_repo, args.seed, args.variants)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **arrays)
    print(f"wrote {args.out} ({args.out.stat().st_size / 2**20:.2f} MiB, {len(arrays)} arrays)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
