"""Attention U-Net training speed on the CPU: gatelab vs MONAI's ``AttentionUnet`` at the same widths.

Times forward + backward (``loss = logits.mean()``, ``zero_grad`` included) of each network on the
same input in one process, rounds interleaved (A, B, C, C, B, A, ...) so that load from other
processes hits every model alike; reports ``speedup`` = the median over rounds of (reference time /
ours) in the same round (> 1: gatelab faster) with the spread of those ratios (see "Timing"
below). Peak memory (``--memory``): the rise of the process's peak resident set (``VmHWM`` -
``VmRSS`` before) over one forward + backward, each model in a fresh subprocess (the CPU allocator
has no peak counter).

Networks at widths ``int((64, 128, 256, 512, 1024) / feature_scale)``, 4 poolings, 1 input
channel, 2 classes, batch norm, ReLU:

* ``attention-unet`` -- the paper's network (``unet_CT_multi_att_dsv``): 2 gates per gated skip
  (levels 2-4) + 1x1 combine, gating signal from the coarser scale, gates computed on the
  2x-subsampled grid (strided ``W_theta``), deep supervision, bi/trilinear upsampling followed by
  two 3x3 convolutions per decoder level;
* ``attention-unet-1gate`` -- the same with 1 gate per skip and no deep supervision (the topology
  closest to MONAI's);
* ``unet`` -- the same without gates (the paper's U-Net baseline);
* ``attention-unet-monai`` -- ours with ``topology="monai"`` (preset ``attention-unet-{2,3}d-monai``):
  MONAI's topology, same parameters and FLOPs, same outputs with copied weights.

MONAI ``AttentionUnet(spatial_dims, 1, 2, channels=widths, strides=(2, 2, 2, 2))`` differs in
structure, so "same widths" is not "same work": it downsamples with stride-2 convolutions instead
of max-pooling, upsamples with a stride-2 3x3 transposed convolution (``2c -> c``, cheap per output
pixel) followed by ONE 3x3 "merge" convolution (instance norm + PReLU) where the official code has
two 3x3 convolutions on ``[skip, up]`` (``3c -> c``, ``c -> c``); its gate takes the gating signal
*after* upsampling, runs at full resolution without a strided ``W_theta`` or output projection,
gates every skip including the finest, and it has no deep supervision. At equal widths MONAI's
decoder does roughly 40% fewer multiply-adds than the official decoder, so this is a comparison of
the two published designs, not of implementations of one design.

Against the official code (``--official-repo PATH``, a user's checkout of
ozan-oktay/Attention-Gated-Networks; nothing is copied): the paper's network
``unet_CT_multi_att_dsv_3D`` (``feature_scale`` 4, 1 input channel, 2 classes, ``is_deconv=False``)
is built from the checkout, its weights are copied into ours
(:mod:`gatelab.vision.models.unet_port`), the logits of one training-mode forward must agree to
``--tolerance`` (relative to the largest logit; default 1e-4: float32 summation order through 18
train-mode batch norms), then fwd+bwd is timed with rounds interleaved (official, ours per
preset, official, ...). ``speedup`` = median over rounds of (official time / ours time) in the
same round; ``speedup_q1`` / ``speedup_q3`` the quartiles of those per-round ratios. Presets of
ours (``--presets``):

* ``default``: oneDNN batch-1 convolutions + fused gates (the defaults of ``UNetConfig``);
* ``channels-last``: the same with model and input in ``channels_last_3d``;
* ``unfused-gates``: ``fuse_gates=False``;
* ``native-conv``: ``onednn_conv=False`` (PyTorch's own backend choice, as the official code);
* ``compile``: ``torch.compile`` of the default model (slow to compile on a busy CPU; opt-in).

Timing (every comparison): process CPU time of one forward + backward per model per round, one
thread, rounds interleaved with the order reversed every other round; ``speedup`` = the median over
rounds of (reference time / ours) in the same round, ``speedup_q1``/``_q3`` and ``speedup_min``/``_max``
the quartiles and range of those per-round ratios, with ``rounds`` and ``threads`` in each row.

The default run (about 2 minutes on an idle core) measures what issue 17's table needs: ours vs
the official code in 3D 32^3 (when ``--official-repo`` or ``$GATELAB_ATTENTION_UNET_REPO`` names
a checkout; skipped otherwise) and the MONAI topology (``attention-unet-monai``, weights copied from
MONAI's network and logits checked equal first) vs MONAI's ``AttentionUnet`` in 2D (128^2, batch 4)
and 3D (32^3, batch 1), the input contiguous as users call both (our config's ``memory_format``
then picks our layout: ``channels_last`` in 2D). The other networks, memory formats, the peak
memory and the single-gate comparison are opt-in (``--models``, ``--memory-format``,
``--memory``, ``--gates``).

Usage::

    python benchmarks/attention_unet_speed.py --official-repo /path/to/Attention-Gated-Networks
    python benchmarks/attention_unet_speed.py --dims 2 --rounds 3 --no-record   # quick look
    python benchmarks/attention_unet_speed.py --models attention-unet unet attention-unet-monai \\
        --memory-format both --memory --gates --size-3d 48                 # the older, longer table
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

BASE = (64, 128, 256, 512, 1024)
OFFICIAL = "official-agn"
#: our configurations in the official comparison: (UNet overrides, memory format, compile)
PRESETS: dict[str, tuple[dict[str, Any], str, bool]] = {
    "default": ({}, "contiguous", False),
    "channels-last": ({}, "channels_last", False),
    "unfused-gates": ({"fuse_gates": False}, "contiguous", False),
    "native-conv": ({"onednn_conv": False}, "contiguous", False),
    "compile": ({}, "contiguous", True),
}
OURS = ("attention-unet", "attention-unet-1gate", "unet", "attention-unet-monai")
#: environment variable naming the official checkout (same as ``--official-repo``)
ENV_REPO = "GATELAB_ATTENTION_UNET_REPO"
BASELINE = "monai-attentionunet"
GATE_BASELINE = "monai-attentionblock"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dims", type=int, nargs="+", default=[2, 3], choices=[2, 3])
    p.add_argument(
        "--models",
        nargs="+",
        default=["attention-unet-monai"],
        choices=list(OURS),
        help="our networks timed against MONAI (default: the MONAI topology, equal FLOPs)",
    )
    p.add_argument("--feature-scale", type=float, default=4, help="widths = (64..1024) / feature_scale")
    p.add_argument("--batch-2d", type=int, default=4)
    p.add_argument("--size-2d", type=int, default=128)
    p.add_argument("--batch-3d", type=int, default=1)
    p.add_argument("--size-3d", type=int, default=32)
    p.add_argument("--rounds", type=int, default=7, help="timed rounds (each runs every model once)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument(
        "--memory-format",
        choices=["contiguous", "channels_last", "both"],
        default="contiguous",
        help="of the input and of the baseline's (and, for channels_last, our) weights; contiguous = as users "
        "call both (our config's memory_format then decides our layout)",
    )
    p.add_argument("--memory", action="store_true", help="also measure peak memory (one subprocess per model)")
    p.add_argument("--gates", action="store_true", help="also time a single attention gate against MONAI's")
    p.add_argument("--no-record", action="store_true", help="print only; write nothing to docs/results")
    p.add_argument("--results-dir", default=None)
    p.add_argument(
        "--official-repo",
        default=os.environ.get(ENV_REPO) or None,
        help=f"checkout of ozan-oktay/Attention-Gated-Networks (default ${ENV_REPO}); without it the "
        "official comparison is skipped",
    )
    p.add_argument("--official-only", action="store_true", help="only the comparison with the official code")
    p.add_argument("--size-official", type=int, default=32, help="cube side of the official comparison")
    p.add_argument("--batch-official", type=int, default=1)
    p.add_argument(
        "--presets",
        nargs="+",
        default=["default"],
        choices=list(PRESETS),
        help="our configurations timed against the official network",
    )
    p.add_argument("--tolerance", type=float, default=1e-4, help="max |ours - reference| / max |reference| logits")
    p.add_argument(
        "--_memory", nargs=5, metavar=("MODEL", "DIMS", "FS", "BATCH", "SIZE_FORMAT"), help=argparse.SUPPRESS
    )
    return p.parse_args(argv)


def build(name: str, nd: int, fs: float) -> Any:
    """One of the benchmarked networks (see the module docstring)."""
    widths = [int(c / fs) for c in BASE]
    if name == BASELINE:
        from monai.networks.nets import AttentionUnet

        return AttentionUnet(nd, 1, 2, channels=widths, strides=(2, 2, 2, 2))
    from gatelab.vision.models.unet import UNet

    if name == "attention-unet":
        return UNet(spatial_dims=nd, in_channels=1, num_classes=2, feature_scale=fs, attention=True)
    if name == "attention-unet-1gate":
        return UNet(
            spatial_dims=nd,
            in_channels=1,
            num_classes=2,
            feature_scale=fs,
            attention=True,
            gates_per_level=1,
            deep_supervision=False,
        )
    if name == "unet":
        return UNet(spatial_dims=nd, in_channels=1, num_classes=2, feature_scale=fs, attention=False)
    if name == "attention-unet-monai":
        from gatelab.vision.models.unet import UNetConfig

        return UNet(UNetConfig.from_preset(f"attention-unet-{nd}d-monai", in_channels=1, num_classes=2, feature_scale=fs))
    raise ValueError(name)


def _input(nd: int, batch: int, size: int, fmt: str):
    import torch

    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 1, *([size] * nd), generator=g)
    if fmt == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last if nd == 2 else torch.channels_last_3d)
    return x


def _prepare(model: Any, nd: int, fmt: str) -> Any:
    import torch

    model.train()
    if fmt == "channels_last":
        model = model.to(memory_format=torch.channels_last if nd == 2 else torch.channels_last_3d)
    return model


def _step(model: Any, x: Any) -> None:
    model.zero_grad(set_to_none=True)
    model(x).mean().backward()


def train_gflop(model: Any, x: Any) -> float:
    """Multiply-add work of one forward + backward in GFLOP (2 per MAC; convolutions and matmuls
    as counted by ``torch.utils.flop_counter``; element-wise ops are not counted)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    # oneDNN off: our oneDNN convolutions (gatelab.core.layers.conv) are invisible to the counter;
    # with it off they run aten.convolution, the same multiply-adds
    with FlopCounterMode(display=False) as counter, torch.backends.mkldnn.flags(enabled=False):
        _step(model, x)
    return counter.get_total_flops() / 1e9


def gate_rows(args: argparse.Namespace, nd: int, batch: int, size: int, threads: int) -> list[dict[str, Any]]:
    """One attention gate on the finest gated skip (level 1: ``[B, f_1, *S/2]``), fwd + bwd.

    gatelab: ``AttentionGate(f_1, gating f_2 at S/4)`` (theta/phi/psi on the S/4 grid, resampled
    alpha, output projection + norm). MONAI: ``AttentionBlock(f_int = f_1 / 2, f_g = f_l = f_1)``
    with the gating signal already upsampled to S/2 (its design), everything at S/2.
    """
    import torch
    from monai.networks.nets.attentionunet import AttentionBlock

    from gatelab.core import AttentionGate

    widths = [int(c / args.feature_scale) for c in BASE]
    c, cg = widths[1], widths[2]
    s1, s2 = [size // 2] * nd, [size // 4] * nd
    g = torch.Generator().manual_seed(1)
    x = torch.randn(batch, c, *s1, generator=g).requires_grad_(True)
    g_ours = torch.randn(batch, cg, *s2, generator=g).requires_grad_(True)
    g_monai = torch.randn(batch, c, *s1, generator=g).requires_grad_(True)
    ours = AttentionGate(nd, c, cg, c).train()
    monai = AttentionBlock(nd, f_int=c // 2, f_g=c, f_l=c).train()

    def run_ours():
        x.grad = g_ours.grad = None
        ours.zero_grad(set_to_none=True)
        y, a = ours(x, g_ours)
        (y.mean() + a.mean()).backward()

    def run_monai():
        x.grad = g_monai.grad = None
        monai.zero_grad(set_to_none=True)
        monai(g=g_monai, x=x).mean().backward()

    fns = {"attention-gate": run_ours, GATE_BASELINE: run_monai}
    for f in fns.values():
        for _ in range(args.warmup):
            f()
    times: dict[str, list[float]] = {n: [] for n in fns}
    for _ in range(args.rounds * 3):
        for n, f in fns.items():
            t0 = time.perf_counter()
            f()
            times[n].append(time.perf_counter() - t0)
    med = {n: statistics.median(t) for n, t in times.items()}
    shape = f"{batch}x{c}x" + "x".join(map(str, s1))
    ratio = med[GATE_BASELINE] / med["attention-gate"]
    print(f"\n{nd}D one gate on a {shape} skip; fwd+bwd median over {args.rounds * 3} rounds")
    for n in fns:
        print(f"  {n:22s} {med[n] * 1e3:9.2f} ms  {med[GATE_BASELINE] / med[n]:5.2f}x")
    return [
        {
            "model": "attention-gate",
            "dataset": "synthetic",
            "split": f"{nd}d-gate-fwd+bwd",
            "variant": f"{shape}-fs{args.feature_scale:g}",
            "baseline": GATE_BASELINE,
            "seed": 0,
            "speedup": ratio,
            "ms": med["attention-gate"] * 1e3,
            "baseline_ms": med[GATE_BASELINE] * 1e3,
            "params": sum(p.numel() for p in ours.parameters()),
            "baseline_params": sum(p.numel() for p in monai.parameters()),
            "config": {"threads": threads, "rounds": args.rounds * 3, "warmup": args.warmup},
        }
    ]


def _quartiles(v: list[float]) -> tuple[float, float, float]:
    q = statistics.quantiles(v, n=4, method="inclusive") if len(v) > 1 else [v[0]] * 3
    return q[0], statistics.median(v), q[2]


def time_rounds(models: dict[str, tuple[Any, Any]], rounds: int, warmup: int) -> dict[str, list[float]]:
    """Process CPU seconds of one fwd+bwd of each ``(model, input)`` per round; rounds interleaved,
    the order reversed every other round (so no model always runs right after another)."""
    names = list(models)
    for m, xi in models.values():
        for _ in range(warmup):
            _step(m, xi)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        for n in names if r % 2 == 0 else names[::-1]:
            m, xi = models[n]
            t0 = time.process_time()
            _step(m, xi)
            times[n].append(time.process_time() - t0)
    return times


def spread(ref: list[float], ours: list[float]) -> dict[str, float]:
    """``speedup`` = median over rounds of ``ref / ours`` in the same round, with the quartiles and
    the range of those per-round ratios, and both median times (ms)."""
    ratios = [r / t for r, t in zip(ref, ours, strict=True)]
    q1, med, q3 = _quartiles(ratios)
    return {
        "speedup": med,
        "speedup_q1": q1,
        "speedup_q3": q3,
        "speedup_min": min(ratios),
        "speedup_max": max(ratios),
        "ms": statistics.median(ours) * 1e3,
        "baseline_ms": statistics.median(ref) * 1e3,
    }


def official_rows(args: argparse.Namespace, threads: int) -> list[dict[str, Any]]:
    """Ours (each preset) vs the official ``unet_CT_multi_att_dsv_3D`` with copied weights, 3D."""
    import copy

    import torch

    from gatelab.vision.models.unet import UNet
    from gatelab.vision.models.unet_port import build_official, load_official_into

    fs, batch, size = args.feature_scale, args.batch_official, args.size_official
    torch.manual_seed(0)
    official = build_official(args.official_repo, attention=True, feature_scale=fs).train()
    base = load_official_into(
        UNet(spatial_dims=3, in_channels=1, num_classes=2, feature_scale=fs, attention=True), official
    )
    x = _input(3, batch, size, "contiguous")
    ref_state = copy.deepcopy(official.state_dict())
    with torch.no_grad():
        want = official(x)
    official.load_state_dict(ref_state)  # the check's forward moved the running statistics
    models: dict[str, tuple[Any, Any]] = {OFFICIAL: (official, x)}
    diffs: dict[str, float] = {}
    for name in args.presets:
        overrides, fmt, compiled = PRESETS[name]
        m = UNet(base.config, **overrides) if overrides else UNet(base.config)
        m.load_state_dict(base.state_dict())
        m = _prepare(m, 3, fmt)
        xi = _input(3, batch, size, fmt)
        with torch.no_grad():
            got = m(xi)
        m.load_state_dict(base.state_dict())
        diffs[name] = float((got - want).abs().max() / want.abs().max())
        if diffs[name] > args.tolerance:
            raise SystemExit(
                f"attention_unet_speed: preset {name!r} differs from the official network: max relative "
                f"logit difference {diffs[name]:.3g} > --tolerance {args.tolerance:g}"
            )
        models[name] = (torch.compile(m) if compiled else m, xi)
    times = time_rounds(models, args.rounds, args.warmup)
    shape = f"{batch}x1x{size}x{size}x{size}"
    print(f"\n3D {shape}, fs {fs:g}: ours vs the official code (weights copied); fwd+bwd over {args.rounds} rounds")
    print(f"  {'model':16s} {'median ms':>10s} {'speedup':>8s} {'q1':>6s} {'q3':>6s} {'max rel diff':>13s}")
    ref = times[OFFICIAL]
    print(f"  {OFFICIAL:16s} {statistics.median(ref) * 1e3:10.1f}")
    rows = []
    params = sum(p.numel() for p in official.parameters())
    for name in args.presets:
        sp = spread(ref, times[name])
        print(
            f"  {name:16s} {sp['ms']:10.1f} {sp['speedup']:7.2f}x {sp['speedup_q1']:6.2f} {sp['speedup_q3']:6.2f} "
            f"{diffs[name]:13.2e}"
        )
        rows.append(
            {
                "model": "attention-unet",
                "dataset": "synthetic",
                "split": "3d-fwd+bwd-vs-official",
                "variant": f"{shape}-fs{fs:g}-{name}",
                "baseline": OFFICIAL,
                "seed": 0,
                **sp,
                "rounds": args.rounds,
                "threads": threads,
                "max_rel_diff": diffs[name],
                "params": sum(p.numel() for p in models[name][0].parameters()),
                "baseline_params": params,
                "config": {
                    "threads": threads,
                    "rounds": args.rounds,
                    "warmup": args.warmup,
                    "torch": torch.__version__,
                    "tolerance": args.tolerance,
                    "official": "unet_CT_multi_att_dsv_3D",
                    "measure": "process CPU time per fwd+bwd, interleaved rounds",
                },
            }
        )
    return rows


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _memory_child(args: argparse.Namespace) -> int:
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    name, nd, fs, batch, size_fmt = args._memory
    size, fmt = size_fmt.split(":")
    nd, batch, size = int(nd), int(batch), int(size)
    model = _prepare(build(name, nd, float(fs)), nd, fmt)
    x = _input(nd, batch, size, fmt)
    with torch.no_grad():  # touch the weights and the kernels' workspaces once
        model.eval()(x)
    model.train()
    base = _status_kb("VmRSS")
    _step(model, x)
    peak = _status_kb("VmHWM")
    print(json.dumps({"peak_mb": max(peak - base, 0) / 1024}))
    return 0


def peak_memory_mb(name: str, nd: int, fs: float, batch: int, size: int, fmt: str) -> float | None:
    """Peak RSS rise (MiB) over one forward + backward, measured in a fresh subprocess."""
    cmd = [sys.executable, __file__, "--_memory", name, str(nd), str(fs), str(batch), f"{size}:{fmt}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        print(f"memory subprocess for {name} failed:\n{out.stderr[-2000:]}", file=sys.stderr)
        return None
    return float(json.loads(out.stdout.strip().splitlines()[-1])["peak_mb"])


def monai_rows(args: argparse.Namespace, nd: int, fmt: str, threads: int) -> list[dict[str, Any]]:
    """``args.models`` vs MONAI's ``AttentionUnet`` in ``nd`` D, fwd+bwd, interleaved rounds.

    The MONAI-topology network gets MONAI's weights (:func:`gatelab.vision.models.unet_port.monai_state_dict`)
    and its train-mode logits must agree to ``--tolerance`` before timing (``max_rel_diff``).
    """
    import torch

    from gatelab.vision.models.unet_port import monai_state_dict

    batch, size = (args.batch_2d, args.size_2d) if nd == 2 else (args.batch_3d, args.size_3d)
    names = [*args.models, BASELINE]
    torch.manual_seed(0)
    x = _input(nd, batch, size, fmt)
    models = {n: build(n, nd, args.feature_scale) for n in names}
    diffs: dict[str, float] = {}
    if "attention-unet-monai" in models:
        ours, monai = models["attention-unet-monai"], models[BASELINE]
        ours.load_state_dict(monai_state_dict(monai.state_dict(), ours.depth), strict=True)
        states = {n: {k: v.clone() for k, v in models[n].state_dict().items()} for n in ("attention-unet-monai", BASELINE)}
        with torch.no_grad():
            got, want = ours.train()(x), monai.train()(x)
        for n, st in states.items():  # the check's forward moved the running statistics
            models[n].load_state_dict(st)
        diffs["attention-unet-monai"] = float((got - want).abs().max() / want.abs().max())
        if diffs["attention-unet-monai"] > args.tolerance:
            raise SystemExit(
                f"attention_unet_speed: attention-unet-monai differs from MONAI with copied weights ({nd}D): max "
                f"relative logit difference {diffs['attention-unet-monai']:.3g} > --tolerance {args.tolerance:g}"
            )
    models = {n: _prepare(m, nd, fmt) for n, m in models.items()}
    params = {n: sum(p.numel() for p in m.parameters()) for n, m in models.items()}
    gflop = {n: train_gflop(m, x) for n, m in models.items()}
    times = time_rounds({n: (m, x) for n, m in models.items()}, args.rounds, args.warmup)
    mem = {}
    if args.memory:
        mem = {n: peak_memory_mb(n, nd, args.feature_scale, batch, size, fmt) for n in names}
    shape = f"{batch}x1x" + "x".join([str(size)] * nd)
    ref = times[BASELINE]
    print(f"\n{nd}D input {shape}, {fmt}; fwd+bwd, process CPU time over {args.rounds} interleaved rounds")
    print(
        f"  {'model':22s} {'params':>9s} {'GFLOP':>7s} {'ms':>9s} {'vs MONAI':>9s} {'q1':>6s} {'q3':>6s} "
        f"{'min':>6s} {'max':>6s} {'peak MiB':>9s}"
    )
    rows = []
    for n in names:
        sp = spread(ref, times[n])
        pm = mem.get(n)
        print(
            f"  {n:22s} {params[n]:9d} {gflop[n]:7.2f} {sp['ms']:9.1f} {sp['speedup']:8.2f}x {sp['speedup_q1']:6.2f} "
            f"{sp['speedup_q3']:6.2f} {sp['speedup_min']:6.2f} {sp['speedup_max']:6.2f} "
            f"{'' if pm is None else f'{pm:9.1f}'}"
        )
        if n == BASELINE:
            continue
        row = {
            "model": n,
            "dataset": "synthetic",
            "split": f"{nd}d-fwd+bwd",
            "variant": f"{shape}-fs{args.feature_scale:g}-{fmt}",
            "baseline": BASELINE,
            "seed": 0,
            **sp,
            "rounds": args.rounds,
            "threads": threads,
            "samples_per_s": batch * 1e3 / sp["ms"],
            "baseline_samples_per_s": batch * 1e3 / sp["baseline_ms"],
            "params": params[n],
            "baseline_params": params[BASELINE],
            "gflop": gflop[n],
            "baseline_gflop": gflop[BASELINE],
            "config": {
                "threads": threads,
                "rounds": args.rounds,
                "warmup": args.warmup,
                "torch": torch.__version__,
                "measure": "process CPU time per fwd+bwd, interleaved rounds",
            },
        }
        if n in diffs:
            row["max_rel_diff"] = diffs[n]
        if args.memory:
            row["peak_mb"], row["baseline_peak_mb"] = mem.get(n), mem.get(BASELINE)
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parse(argv)
    if args._memory:
        return _memory_child(args)
    import torch

    threads = int(os.environ.get("OMP_NUM_THREADS", "1"))
    torch.set_num_threads(threads)
    fmts = ["contiguous", "channels_last"] if args.memory_format == "both" else [args.memory_format]
    command = "python benchmarks/attention_unet_speed.py " + " ".join(
        a for a in argv if a != args.official_repo
    ).replace("--official-repo", "--official-repo PATH")
    print(f"torch {torch.__version__}, CPU, {threads} thread(s); feature_scale {args.feature_scale}")
    print(f"command: {command}")
    rows: list[dict[str, Any]] = []
    if args.official_repo:
        rows += official_rows(args, threads)
    elif args.official_only:
        raise SystemExit("attention_unet_speed: --official-only needs --official-repo PATH")
    else:
        print(f"official comparison SKIPPED: no --official-repo (or ${ENV_REPO})")
    for nd in [] if args.official_only else args.dims:
        batch, size = (args.batch_2d, args.size_2d) if nd == 2 else (args.batch_3d, args.size_3d)
        for fmt in fmts:
            rows += monai_rows(args, nd, fmt, threads)
        if args.gates:
            rows += gate_rows(args, nd, batch, size, threads)
    if not args.no_record:
        from gatelab.core.harness.ledger import append_records

        append_records("attention-unet-speed", [{**r, "command": command} for r in rows], args.results_dir)
        print("\nrecorded in docs/results/attention-unet-speed.jsonl (.md)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
