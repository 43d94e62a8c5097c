"""MAXIM-3S speed on the CPU: gatelab's :class:`~gatelab.vision.models.maxim.Maxim` vs the PyTorch port users find.

The reference is ``MAXIM_dns_3s`` of vztu/maxim-pytorch (``maxim_pytorch/maxim_torch.py``),
imported from a user's checkout (``--official-repo PATH`` or ``$GATELAB_MAXIM_PYTORCH_REPO``, put
on ``sys.path``); nothing of it is copied into gatelab. Without a checkout the benchmark says so
and exits 0 (nothing timed, nothing recorded).

Both models are MAXIM-3S (our preset ``S-3``: 3 stages, depth 3, 2 groups per block, 2
bottleneck blocks, 3 supervision scales, HR blocks/grids 16x16, LR 8x8, as their
``MAXIM_dns_3s``), at full width ``features=32`` unless ``--features`` says otherwise. The
default input is ``1 x 3 x 64 x 64``: the smallest size these block and grid sizes allow
(the bottleneck at ``H/8`` is cut into 8x8 blocks and an 8x8 grid, so ``H`` must be a multiple
of 64), chosen because the released 256x256 crops take ~16x longer per step on one thread.

1. **Same weights.** A Flax-layout parameter dict (the layout of the official
   google-research/maxim checkpoints, :mod:`gatelab.vision.models.maxim_port`) is drawn at random
   (:func:`random_flax_params`: LeCun-normal kernels, biases ~ N(0, 0.1), LayerNorm scales
   ~ 1 + N(0, 0.1), so a dropped or swapped norm shows) and loaded into ours by
   :func:`~gatelab.vision.models.maxim_port.convert_flax_params` and into theirs by
   :func:`flax_to_reference` (their module names are the Flax paths with ``.``; Dense kernels
   transposed, conv kernels ``[kh, kw, in, out] -> [out, in, kh, kw]``, ``scale``/``bias`` of a
   LayerNorm -> ``gamma``/``beta``). Their own converter (``jax2torch.py``) does not flip the
   2x2 transposed-convolution kernels, which a Flax ``ConvTranspose`` needs in PyTorch
   (see :mod:`~gatelab.vision.models.maxim_port`); :func:`flax_to_reference` flips them so that
   both models compute the Flax function (the flip does not change their speed). Their module
   also builds parameters its forward never uses (the stage-0 encoders' cross-gating blocks, the
   decoders' ``Conv_1``...): those keep their init and must get no gradient (checked).
2. **Equal outputs.** In eval mode each of the 9 outputs (3 stages x 3 scales) must agree to
   ``max |ours - theirs| / max |theirs| <= 1e-4`` (:data:`TOLERANCE`; float32 summation order
   through ~100 LayerNorms and gating units, measured ~1e-6 to 1e-5), and after one backward of
   the training loss the gradient w.r.t. the input image to 1e-3 (:data:`GRAD_TOLERANCE`).
   A mismatch stops the benchmark (exit 1).
3. **Timing**, one thread, rounds interleaved (ours, theirs, then theirs, ours, ... alternating):

   * ``inference``: ``model.eval()`` forward under ``torch.no_grad()``;
   * ``train``: ``model.train()``, forward, loss = Charbonnier over all 9 outputs against the
     target pyramid (:func:`gatelab.vision.tasks.metrics.restoration_loss` with
     ``freq_weight=0``, the same function for both), backward, AdamW step (lr 3e-4, weight decay
     1e-4, as their ``Options/*.yml``); ours builds its optimizer with
     :func:`gatelab.core.harness.task.build_optimizer` (fused AdamW, what a gatelab user gets),
     theirs ``torch.optim.AdamW`` as their basicsr trainer.

   Speed is process CPU time per call (``time.process_time``, robust to other jobs on a shared
   machine); wall time beside it. ``speedup`` = their median / our median; the spread is the
   min-max and the quartiles of the per-round ratios.

``--record`` appends one row per mode to ``docs/results/maxim-speed.jsonl`` and renders
``maxim-speed.md`` through the ledger.

Usage::

    python benchmarks/maxim_speed.py --official-repo /path/to/maxim-pytorch --record   # ~2 min idle
    python benchmarks/maxim_speed.py --official-repo /path/to/maxim-pytorch --rounds 3 --size 64
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from gatelab.core.harness.official import checkout_root, import_from_checkout

#: environment variable naming the checkout (same as ``--official-repo``)
ENV_REPO = "GATELAB_MAXIM_PYTORCH_REPO"
#: output tolerance of the equality check: max |ours - theirs| / max |theirs| per output (float32)
TOLERANCE = 1e-4
#: the same for the gradient of the training loss w.r.t. the input image (float32)
GRAD_TOLERANCE = 1e-3
#: their trainer's optimizer settings (Options/*.yml: AdamW, lr 3e-4, weight decay 1e-4)
LEARNING_RATE, WEIGHT_DECAY = 3e-4, 1e-4
REFERENCE = "vztu/maxim-pytorch MAXIM_dns_3s"
MODES = ("inference", "train")

DESCRIPTION = (
    "gatelab's MAXIM-3S (preset `S-3`) against `MAXIM_dns_3s` of vztu/maxim-pytorch (the PyTorch port users "
    "find; imported from a checkout). Both get the same random Flax-layout weights (ours through "
    "`maxim_port.convert_flax_params`, theirs through the benchmark's name map, with the transposed-convolution "
    "flip their converter lacks); the 9 outputs agree to max|diff|/max|theirs| <= 1e-4 in eval mode "
    "(`max_rel_diff`) and the input gradient of the training loss to 1e-3 (`max_rel_grad_diff`). "
    "`inference`: eval forward under no_grad; `train`: forward, Charbonnier loss over all outputs, backward, "
    "AdamW step (ours: `build_optimizer`, fused; theirs: `torch.optim.AdamW`). `ms` / `baseline_ms`: median "
    "process CPU time per call over interleaved rounds, one thread; `speedup` = baseline / ours of those "
    "medians; `speedup_min`/`_max`, `speedup_q1`/`_q3`: range and quartiles of the per-round ratios. "
    "Issue 17's goal: keep >= 1.5x."
)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--official-repo",
        default=os.environ.get(ENV_REPO) or None,
        help=f"checkout of vztu/maxim-pytorch (default ${ENV_REPO})",
    )
    p.add_argument("--features", type=int, default=32, help="width F of level 0 (MAXIM-3S: 32)")
    p.add_argument("--size", type=int, default=64, help="input H = W (a multiple of 64 for S-3's block sizes)")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--warmup", type=int, default=1, help="untimed calls per model and mode before the rounds")
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--record", action="store_true", help="append the result to docs/results/maxim-speed")
    p.add_argument("--results-dir", default=None)
    return p.parse_args(argv)


# --------------------------------------------------------------------------- their model


def check_official_repo(path: str | os.PathLike[str] | None) -> Path | None:
    """The checkout's root if ``path`` holds ``maxim_pytorch/maxim_torch.py``, else ``None``."""
    return checkout_root(path, "maxim_pytorch/maxim_torch.py")


def reference_model_class(root: Path) -> type:
    """``MAXIM_dns_3s`` of ``<root>/maxim_pytorch/maxim_torch.py``."""
    return import_from_checkout(root, "maxim_torch", search_dir="maxim_pytorch", what="vztu/maxim-pytorch").MAXIM_dns_3s


def _git_commit(root: Path) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() or None


# --------------------------------------------------------------------------- weights


def _config(features: int) -> Any:
    from gatelab.vision.models.maxim import MaximConfig

    return MaximConfig.from_preset("S-3", features=features)


def random_flax_params(model: Any, seed: int = 0) -> dict[str, np.ndarray]:
    """Random parameters of our MAXIM ``model``'s config in the official Flax layout (``{path/kernel: array}``).

    Shapes are read from ``model`` through the port's map (:mod:`gatelab.vision.models.maxim_port`): Dense
    kernels ``[in, out]``, conv kernels ``[kh, kw, in, out]`` (1x1 ones too), LayerNorm
    ``scale``/``bias``. Kernels ~ LeCun normal (std ``1/sqrt(fan_in)``), biases ~ N(0, 0.1),
    scales ~ 1 + N(0, 0.1).
    """
    from gatelab.vision.models import maxim_port

    config = model.config
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for ours, flax, transform in maxim_port._name_map(config):
        s = shapes[ours]
        if transform is maxim_port._t_dense:
            shape = (s[1], s[0])
        elif transform is maxim_port._t_conv1x1:
            shape = (1, 1, s[1], s[0])
        elif transform is maxim_port._t_conv:
            shape = (s[2], s[3], s[1], s[0])
        elif transform is maxim_port._t_conv_transpose:
            shape = (s[2], s[3], s[0], s[1])
        else:  # copies and the gating units' bias (+1 in ours)
            shape = s
        if flax.endswith("/kernel"):
            a = rng.standard_normal(shape) / math.sqrt(math.prod(shape[:-1]))
        elif flax.endswith("/scale"):
            a = 1.0 + 0.1 * rng.standard_normal(shape)
        else:
            a = 0.1 * rng.standard_normal(shape)
        out[flax] = a.astype(np.float32)
    return out


def flax_to_reference(params: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Their ``state_dict`` entries for Flax-layout MAXIM parameters (names and layouts).

    ``a/b/kernel`` -> ``a.b.weight`` (2-D: transposed; 4-D ``[kh, kw, in, out]`` ->
    ``[out, in, kh, kw]``; ``ConvTranspose_0``: ``[in, out, kh, kw]`` flipped in both spatial
    axes), ``a/b/scale`` -> ``a.b.gamma`` and ``a/b/bias`` -> ``a.b.beta`` for LayerNorms (the
    modules that have a ``scale``), other ``bias`` -> ``bias``.
    """
    import torch

    norms = {k.rsplit("/", 1)[0] for k in params if k.endswith("/scale")}
    out: dict[str, Any] = {}
    for key, value in params.items():
        module, leaf = key.rsplit("/", 1)
        name = module.replace("/", ".")
        a = torch.from_numpy(np.asarray(value, dtype=np.float32))
        if leaf == "kernel":
            if a.dim() == 2:
                a = a.T
            elif module.endswith("ConvTranspose_0"):
                a = a.flip(0, 1).permute(2, 3, 0, 1)
            elif a.dim() == 4:
                a = a.permute(3, 2, 0, 1)
            else:
                raise ValueError(f"flax_to_reference: {key!r}: kernel of shape {tuple(a.shape)}, expected 2-D or 4-D")
            out[f"{name}.weight"] = a.contiguous()
        elif leaf == "scale":
            out[f"{name}.gamma"] = a.clone()
        elif leaf == "bias":
            out[f"{name}.beta" if module in norms else f"{name}.bias"] = a.clone()
        else:
            raise ValueError(f"flax_to_reference: {key!r}: unknown leaf {leaf!r}")
    return out


def load_reference(model: Any, params: Mapping[str, np.ndarray]) -> set[str]:
    """Load Flax-layout ``params`` into their ``model``; returns the names filled.

    Raises ``ValueError`` naming a parameter their model lacks or whose shape differs. Their
    parameters left out are the ones their forward never uses (checked by :func:`check_equal`).
    """
    mapped = flax_to_reference(params)
    state = model.state_dict()
    for name, t in mapped.items():
        if name not in state:
            raise ValueError(f"load_reference: their model has no parameter {name!r}")
        if tuple(state[name].shape) != tuple(t.shape):
            raise ValueError(f"load_reference: {name}: theirs {tuple(state[name].shape)} vs mapped {tuple(t.shape)}")
    state.update(mapped)
    model.load_state_dict(state)
    return set(mapped)


def build_pair(root: Path, features: int = 32, seed: int = 0) -> tuple[Any, Any, set[str]]:
    """``(ours, theirs, their names filled)`` with the same random Flax weights."""
    import torch

    from gatelab.vision.models.maxim import Maxim
    from gatelab.vision.models.maxim_port import convert_flax_params

    cfg = _config(features)
    ours = Maxim(cfg)
    params = random_flax_params(ours, seed)
    ours.load_state_dict(convert_flax_params(params, cfg), strict=True)
    torch.manual_seed(seed)
    theirs = reference_model_class(root)(features=features)
    filled = load_reference(theirs, params)
    return ours, theirs, filled


# --------------------------------------------------------------------------- equality


def _flat(outputs: Any) -> list[Any]:
    return [t for stage in outputs for t in stage]


def make_batch(batch_size: int, size: int, seed: int = 0) -> tuple[Any, Any]:
    """``(noisy, clean)`` images ``[B, 3, size, size]`` in [0, 1] (clean + Gaussian noise 0.1)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    clean = torch.rand(batch_size, 3, size, size, generator=g)
    return (clean + 0.1 * torch.randn(clean.shape, generator=g)).clamp(0, 1), clean


def train_loss(outputs: Any, target: Any) -> Any:
    """Charbonnier loss summed over every output (stages x scales) against ``target`` resized."""
    from gatelab.vision.tasks.metrics import restoration_loss

    return restoration_loss(outputs, target, freq_weight=0.0)


def _rel_diff(a: Any, b: Any) -> float:
    a, b = a.detach(), b.detach()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


def check_equal(ours: Any, theirs: Any, x: Any, y: Any, filled: set[str]) -> dict[str, float]:
    """Eval-mode outputs and the input gradient of :func:`train_loss` of both models on ``x``.

    Raises ``AssertionError`` (naming the output) when ``max |ours - theirs| / max |theirs|`` of an
    output exceeds :data:`TOLERANCE`, or of the input gradient :data:`GRAD_TOLERANCE`, or when one
    of their parameters that was not filled from the weights gets a gradient (it would be one the
    forward uses). Returns the largest absolute and relative differences.
    """
    ours.eval()
    theirs.eval()
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    a, b = _flat(ours(xa)), _flat(theirs(xb))
    if len(a) != len(b):
        raise AssertionError(f"ours returns {len(a)} outputs, theirs {len(b)}")
    diff = rel = 0.0
    for i, (p, q) in enumerate(zip(a, b, strict=True)):
        if p.shape != q.shape:
            raise AssertionError(f"output {i} (stage-major, coarse to fine): ours {tuple(p.shape)}, theirs {tuple(q.shape)}")
        r = _rel_diff(p, q)
        if not r <= TOLERANCE:
            raise AssertionError(
                f"output {i} (stage-major, coarse to fine) differs: max |diff| / max |theirs| = {r:.3g} > {TOLERANCE:g}"
            )
        diff, rel = max(diff, (p - q).abs().max().item()), max(rel, r)
    train_loss([a], y).backward()
    train_loss([b], y).backward()
    grad_rel = _rel_diff(xa.grad, xb.grad)
    if not grad_rel <= GRAD_TOLERANCE:
        raise AssertionError(
            f"input gradient differs: max |diff| / max |theirs| = {grad_rel:.3g} > {GRAD_TOLERANCE:g}"
        )
    stray = sorted(n for n, p in theirs.named_parameters() if p.grad is not None and n not in filled)
    if stray:
        raise AssertionError(f"their parameters {stray[:3]} get gradients but were not filled from the weights")
    for m in (ours, theirs):
        m.zero_grad(set_to_none=True)
    return {
        "max_abs_diff": diff,
        "max_rel_diff": rel,
        "max_abs_grad_diff": (xa.grad - xb.grad).abs().max().item(),
        "max_rel_grad_diff": grad_rel,
    }


def forward_gflop(model: Any, x: Any) -> float:
    """Multiply-add work of one eval forward in GFLOP (2 per MAC; ``torch.utils.flop_counter``)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    model.eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return counter.get_total_flops() / 1e9


# --------------------------------------------------------------------------- timing


def inference_fn(model: Any, x: Any) -> Callable[[], None]:
    """One eval forward under ``no_grad``."""
    import torch

    def run() -> None:
        model.eval()
        with torch.no_grad():
            model(x)

    return run


def train_fn(model: Any, x: Any, y: Any, optimizer: Any) -> Callable[[], None]:
    """One training step: forward, :func:`train_loss`, backward, ``optimizer.step()``."""

    def run() -> None:
        model.train()
        optimizer.zero_grad(set_to_none=True)
        train_loss(model(x), y).backward()
        optimizer.step()

    return run


def time_rounds(fns: dict[str, Callable[[], None]], *, rounds: int, warmup: int) -> dict[str, dict[str, list[float]]]:
    """Per-round CPU and wall seconds of each contender, rounds interleaved (order reversed every round)."""
    names = list(fns)
    for name in names:
        for _ in range(warmup):
            fns[name]()
    out: dict[str, dict[str, list[float]]] = {n: {"cpu": [], "wall": []} for n in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            c0, w0 = time.process_time(), time.perf_counter()
            fns[name]()
            out[name]["cpu"].append(time.process_time() - c0)
            out[name]["wall"].append(time.perf_counter() - w0)
    return out


def _quartiles(v: list[float]) -> tuple[float, float]:
    if len(v) < 2:
        return v[0], v[0]
    q = statistics.quantiles(v, n=4, method="inclusive")
    return q[0], q[2]


def summarise(t: dict[str, list[float]], ref: dict[str, list[float]]) -> dict[str, float]:
    """Medians, speedup and the spread (min-max, quartiles) of the per-round ratios ``ref / ours``."""
    ratios = [r / o for r, o in zip(ref["cpu"], t["cpu"], strict=True)]
    wall = [r / o for r, o in zip(ref["wall"], t["wall"], strict=True)]
    q1, q3 = _quartiles(ratios)
    ms, ref_ms = statistics.median(t["cpu"]) * 1e3, statistics.median(ref["cpu"]) * 1e3
    return {
        "speedup": ref_ms / ms,
        "speedup_round_median": statistics.median(ratios),
        "speedup_min": min(ratios),
        "speedup_max": max(ratios),
        "speedup_q1": q1,
        "speedup_q3": q3,
        "wall_speedup": statistics.median(wall),
        "ms": ms,
        "baseline_ms": ref_ms,
        "wall_ms": statistics.median(t["wall"]) * 1e3,
        "baseline_wall_ms": statistics.median(ref["wall"]) * 1e3,
    }


def run(root: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Build, check and time; one result dict per mode."""
    import torch

    from gatelab.core.harness.configs import TaskConfig
    from gatelab.core.harness.task import build_optimizer

    ours, theirs, filled = build_pair(root, args.features)
    x, y = make_batch(args.batch_size, args.size)
    eq = check_equal(ours, theirs, x, y, filled)
    print(
        f"equal outputs: max |diff| / max |theirs| {eq['max_rel_diff']:.2e} (9 outputs), "
        f"{eq['max_rel_grad_diff']:.2e} (input gradient)"
    )
    params = sum(p.numel() for p in ours.parameters())
    base_params = sum(p.numel() for p in theirs.parameters())
    base_used = sum(p.numel() for n, p in theirs.named_parameters() if n in filled)
    gflop, base_gflop = forward_gflop(ours, x), forward_gflop(theirs, x)
    print(
        f"params: ours {params:,}, theirs {base_params:,} ({base_used:,} used by the forward); "
        f"forward GFLOP: ours {gflop:.2f}, theirs {base_gflop:.2f}"
    )
    rows = []
    for mode in args.modes:
        if mode == "inference":
            fns = {"ours": inference_fn(ours, x), "theirs": inference_fn(theirs, x)}
        else:
            opt_ours = build_optimizer(
                ours.parameters(), TaskConfig(optimizer="adamw", lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
            )
            opt_theirs = torch.optim.AdamW(theirs.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
            fns = {"ours": train_fn(ours, x, y, opt_ours), "theirs": train_fn(theirs, x, y, opt_theirs)}
        t = time_rounds(fns, rounds=args.rounds, warmup=args.warmup)
        s = summarise(t["ours"], t["theirs"])
        print(
            f"{mode}: {s['ms']:.1f} ms vs theirs {s['baseline_ms']:.1f} ms -> speedup {s['speedup']:.2f}x "
            f"(per-round {s['speedup_min']:.2f}-{s['speedup_max']:.2f}, IQR {s['speedup_q1']:.2f}-{s['speedup_q3']:.2f}); "
            f"wall {s['wall_speedup']:.2f}x"
        )
        rows.append(
            {"mode": mode, **eq, **s, "params": params, "baseline_params": base_params,
             "baseline_params_used": base_used, "gflop": gflop, "baseline_gflop": base_gflop}
        )  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parse(argv)
    root = check_official_repo(args.official_repo)
    if root is None:
        where = args.official_repo or f"(none: pass --official-repo or set ${ENV_REPO})"
        print(
            f"maxim_speed: SKIPPED, no vztu/maxim-pytorch checkout at {where}: clone "
            "https://github.com/vztu/maxim-pytorch and pass its path (the directory holding maxim_pytorch/maxim_torch.py)"
        )
        return 0
    if args.size % 64:
        raise SystemExit(f"maxim_speed: --size {args.size}: MAXIM-3S's block/grid sizes need a multiple of 64")
    import torch

    from gatelab.core.harness import provenance

    torch.set_num_threads(args.threads)
    ref_commit = _git_commit(root)
    command = "python benchmarks/maxim_speed.py " + " ".join(a for a in argv if a != args.official_repo).replace(
        "--official-repo", "--official-repo PATH"
    )
    print(
        f"reference checkout: {root} (commit {ref_commit}); torch {torch.__version__}, {torch.get_num_threads()} "
        f"thread(s); {platform.processor() or platform.machine()}"
    )
    print(f"command: {command}")
    rows = run(root, args)
    if args.record:
        from gatelab.core.harness.ledger import append_records, render_markdown, resolve_results_dir

        config = {
            "features": args.features, "batch_size": args.batch_size, "size": args.size, "warmup": args.warmup,
            "threads": args.threads, "rounds": args.rounds, "torch": torch.__version__,
            "measure": "process CPU time per call, median over interleaved rounds",
        }  # fmt: skip
        records = []
        for r in rows:
            r = dict(r)
            mode = r.pop("mode")
            records.append(
                {
                    "model": "maxim-s3",
                    "dataset": "synthetic",
                    "split": mode,
                    "variant": f"{args.batch_size}x3x{args.size}x{args.size}-f{args.features}",
                    "seed": 0,
                    "baseline": f"{REFERENCE} @ {ref_commit[:12] if ref_commit else 'unknown commit'}",
                    "rounds": args.rounds,
                    "threads": args.threads,
                    "config": config,
                    "commit": provenance.git_commit(),
                    "command": command,
                    **r,
                }
            )
        append_records("maxim-speed", records, args.results_dir, render=False)
        render_markdown("maxim-speed", args.results_dir, title="MAXIM-3S vs vztu/maxim-pytorch", description=DESCRIPTION)
        print(f"recorded in {resolve_results_dir(args.results_dir) / 'maxim-speed.jsonl'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
