"""Training-step speed: gatelab's Gateformer vs the official nyuolab/Gateformer code, on CPU.

The official model is imported from a user's checkout of https://github.com/nyuolab/Gateformer
(``--official-repo PATH`` or ``$GATELAB_GATEFORMER_REPO``; its ``models/Gateformer.py`` and the
``layers/`` it imports, put on ``sys.path``); nothing of it is copied into gatelab. Without a
checkout the benchmark says so and exits 0 (nothing timed, nothing recorded).

For each preset (``etth1-96`` and ``weather-96``: the first run of the official
``scripts/multivariate_forecasting/ETT/Gateformer_ETTh1.sh`` and ``Weather/Gateformer.sh``;
``run.py`` defaults for patch length 8, stride 8 and dropout 0.1; batch size 8 as the scripts):

1. both models are built at the same sizes, the official weights are copied into ours
   (:func:`copy_official_weights`: the two gate matrices of each gate stacked into our fused
   ``Linear(2d, d)``, their biases summed; ``nn.MultiheadAttention``'s packed ``in_proj`` into
   ours, the same layout);
2. equal outputs are checked in eval mode (dropout off) on a random batch: forecasts within
   ``rtol = atol = 1e-5`` (float32; :data:`RTOL`, :data:`ATOL`), and after one MSE backward every
   copied parameter's gradient within ``rtol = 1e-4, atol = 1e-5`` (the fused-gate bias gradient
   against the official ``b_1`` gradient). A mismatch stops the benchmark (exit 1);
3. training steps are timed: forward, ``F.mse_loss``, backward, Adam step (lr 1e-4 as the
   scripts), train mode (dropout on). Each side uses the optimizer its own code builds: ours
   ``gatelab.core.harness.task.build_optimizer(params, TaskConfig(optimizer="adam", lr=1e-4))``
   (what a gatelab run gets: torch's fused Adam, one kernel over all parameters), the official
   side the plain ``torch.optim.Adam`` of its training code (torch's per-parameter loop on
   CPU); same update rule, so the two trajectories differ only by rounding; ``rounds`` rounds of ``steps`` steps per model,
   interleaved (ours, official, ours, official, ... with the order alternating per round), the
   same pre-generated batches for both. ``--compile`` adds ours under ``torch.compile`` as a third
   contender (compiled once before timing; its outputs are checked against eager ours first).

The matrix products of our step (every ``mm`` / ``addmm`` / ``bmm``, shapes recorded in one
step; :func:`matmul_floor`) are replayed alone as a fourth contender of the same rounds:
``matmul_floor_ms``, and ``speedup_bound`` = official / floor, the speedup a rewrite that keeps
the same products (same FLOPs) cannot exceed on this machine.

Speed is *process CPU time* per step (``time.process_time``) with one thread
(``torch.set_num_threads(1)``), robust to other jobs on a shared machine; wall time is reported
beside it. ``speedup`` = official median / ours median; the spread is the min-max and IQR of the
per-round ratios. The data are random (standard-normal windows scaled per variate): a step's cost
does not depend on the values.

With ``--record`` one row per preset (and per compiled variant) goes to
``docs/results/gateformer-speed.jsonl`` and ``.md`` through the ledger.

Usage::

    python benchmarks/gateformer_speed.py --official-repo /path/to/Gateformer
    python benchmarks/gateformer_speed.py --official-repo /path/to/Gateformer --compile --record
    python benchmarks/gateformer_speed.py --official-repo /path/to/Gateformer --presets etth1-96 --rounds 3 --steps 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from gatelab.core.harness.official import checkout_root, import_from_checkout

#: environment variable naming the official checkout (same as ``--official-repo``)
ENV_REPO = "GATELAB_GATEFORMER_REPO"
#: forecast tolerance of the equality check (float32)
RTOL, ATOL = 1e-5, 1e-5
#: gradient tolerance of the equality check (float32; sums over the batch amplify rounding)
GRAD_RTOL, GRAD_ATOL = 1e-4, 1e-5
#: presets of the comparison: the official horizon-96 runs (scripts/multivariate_forecasting/...)
PRESETS = ("etth1-96", "weather-96")
#: steps per round when ``--steps`` is not given (one round of either model ~0.3-2 s here)
DEFAULT_STEPS = {"etth1-96": 30, "weather-96": 2}
#: the official scripts' batch size and learning rate for these runs
BATCH_SIZE, LEARNING_RATE = 8, 1e-4

#: the text above the rendered table (docs/results/gateformer-speed.md)
DESCRIPTION = (
    "gatelab's Gateformer against the official nyuolab/Gateformer `models/Gateformer.py` (imported from a "
    "checkout, weights copied into ours; forecasts equal within rtol = atol = 1e-5 and gradients within "
    "1e-4 / 1e-5 in eval mode, `max_abs_diff` / `max_abs_grad_diff`), at the official scripts' ETTh1-96 and "
    "Weather-96 sizes, batch 8. One training step = forward, MSE, backward, Adam step (train mode, dropout "
    "0.1); ours builds its optimizer with gatelab's `build_optimizer(params, TaskConfig(optimizer=\"adam\"))` "
    "(torch's fused Adam, what a gatelab run uses), the official side keeps its plain `torch.optim.Adam` "
    "(the per-parameter loop on CPU). `step_ms` / `baseline_step_ms`: median process CPU time per step over interleaved "
    "rounds, one thread; `speedup` = baseline / ours of those medians; `speedup_min`/`_max` and "
    "`speedup_q1`/`_q3`: the range and quartiles of the per-round ratios; `wall_*`: wall clock. "
    "`matmul_floor_ms`: the matrix products of our step (`matmul_gflop` GFLOP: every mm / addmm / bmm, shapes "
    "recorded in one step) replayed alone in the same interleaved rounds; `speedup_bound` = baseline / "
    "floor, the most any rewrite with the same products could reach here. The goal of issue 17 is 1.5x on both "
    "presets."
)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--official-repo",
        default=os.environ.get(ENV_REPO) or None,
        help=f"checkout of nyuolab/Gateformer (default ${ENV_REPO})",
    )
    p.add_argument("--presets", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    p.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--steps", type=int, default=None, help="timed steps per model per round (default per preset)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps per model before the rounds")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--compile", action="store_true", help="also time ours under torch.compile")
    p.add_argument("--record", action="store_true", help="append the result to docs/results/gateformer-speed")
    p.add_argument("--results-dir", default=None)
    return p.parse_args(argv)


# --------------------------------------------------------------------------- the official model


def check_official_repo(path: str | os.PathLike[str] | None) -> Path | None:
    """The checkout's root if ``path`` holds ``models/Gateformer.py``, else ``None``."""
    return checkout_root(path, "models/Gateformer.py")


def official_model_class(root: Path) -> type:
    """``Model`` of ``<root>/models/Gateformer.py`` (its ``models``/``layers`` packages imported from ``root``)."""
    return import_from_checkout(root, "models.Gateformer", what="nyuolab/Gateformer").Model


def official_configs(preset: str) -> SimpleNamespace:
    """The official ``run.py`` arguments of ``preset`` (scripts' values + ``run.py`` defaults)."""
    from gatelab.timeseries.models.gateformer import GateformerConfig

    p = GateformerConfig.presets[preset]
    return SimpleNamespace(
        seq_len=p["lookback"], pred_len=p["horizon"], enc_in=p["num_vars"], d_model=p["d_model"],
        d_ff=p["hidden_dim"], n_heads=p["num_heads"], e_layers=p["num_layers"], patch_len=8, stride=8,
        dropout=0.1, embed="timeF", freq="h",
    )  # fmt: skip


def copy_official_weights(ours: Any, official: Any) -> None:
    """Copy an official ``Model``'s weights into our :class:`~gatelab.timeseries.models.gateformer.Gateformer`.

    ``gate_w1``/``gate_w2`` -> ``temporal_gate.proj`` (weights stacked ``[W_1 W_2]``, bias
    ``b_1 + b_2``), ``gate_w3``/``gate_w4`` -> ``variate_gate.proj``; each
    ``nn.TransformerEncoderLayer``'s ``self_attn.in_proj_{weight,bias}`` into our packed
    ``attn.in_proj`` (the same ``[q; k; v]`` layout); every other tensor one to one. Raises ``ValueError`` naming the
    parameter whose shapes differ.
    """
    import torch

    o = official
    pairs: list[tuple[str, torch.Tensor]] = [
        ("global_embedding.weight", o.project_embedding.value_embedding.weight),
        ("global_embedding.bias", o.project_embedding.value_embedding.bias),
        ("patch_embedding.value.weight", o.patch_embedding.value_embedding.weight),
        ("temporal_head.weight", o.head.linear.weight),
        ("temporal_head.bias", o.head.linear.bias),
        ("temporal_gate.proj.weight", torch.cat([o.gate_w1.weight, o.gate_w2.weight], dim=1)),
        ("temporal_gate.proj.bias", o.gate_w1.bias + o.gate_w2.bias),
        ("variate_gate.proj.weight", torch.cat([o.gate_w3.weight, o.gate_w4.weight], dim=1)),
        ("variate_gate.proj.bias", o.gate_w3.bias + o.gate_w4.bias),
        ("projection.weight", o.projection.weight),
        ("projection.bias", o.projection.bias),
    ]
    for ours_name, enc in (("temporal_encoder", o.enc_temporal), ("variate_encoder", o.enc_variate)):
        for i, layer in enumerate(enc.layers):
            pre = f"{ours_name}.{i}"
            pairs += [
                (f"{pre}.attn.in_proj.weight", layer.self_attn.in_proj_weight),
                (f"{pre}.attn.in_proj.bias", layer.self_attn.in_proj_bias),
                (f"{pre}.attn.out_proj.weight", layer.self_attn.out_proj.weight),
                (f"{pre}.attn.out_proj.bias", layer.self_attn.out_proj.bias),
            ]
            for name in ("linear1", "linear2", "norm1", "norm2"):
                sub = getattr(layer, name)
                pairs += [(f"{pre}.{name}.weight", sub.weight), (f"{pre}.{name}.bias", sub.bias)]
    params = dict(ours.named_parameters())
    missing = set(params) - {n for n, _ in pairs}
    if missing:
        raise ValueError(f"copy_official_weights: our parameters {sorted(missing)} have no official source")
    with torch.no_grad():
        for name, src in pairs:
            if name not in params:
                raise ValueError(f"copy_official_weights: ours has no parameter {name!r}")
            if params[name].shape != src.shape:
                raise ValueError(
                    f"copy_official_weights: {name}: ours {tuple(params[name].shape)} vs official {tuple(src.shape)}"
                )
            params[name].copy_(src)


def official_grads(ours: Any, official: Any) -> dict[str, Any]:
    """The official gradients in our parameter layout (as :func:`copy_official_weights` maps weights;
    a fused gate bias gets ``b_1``'s gradient, equal to ``b_2``'s and to the fused bias')."""
    import torch

    o = official

    def g(p: torch.nn.Parameter) -> torch.Tensor:
        return torch.zeros_like(p) if p.grad is None else p.grad

    out = {
        "global_embedding.weight": g(o.project_embedding.value_embedding.weight),
        "global_embedding.bias": g(o.project_embedding.value_embedding.bias),
        "patch_embedding.value.weight": g(o.patch_embedding.value_embedding.weight),
        "temporal_head.weight": g(o.head.linear.weight),
        "temporal_head.bias": g(o.head.linear.bias),
        "temporal_gate.proj.weight": torch.cat([g(o.gate_w1.weight), g(o.gate_w2.weight)], dim=1),
        "temporal_gate.proj.bias": g(o.gate_w1.bias),
        "variate_gate.proj.weight": torch.cat([g(o.gate_w3.weight), g(o.gate_w4.weight)], dim=1),
        "variate_gate.proj.bias": g(o.gate_w3.bias),
        "projection.weight": g(o.projection.weight),
        "projection.bias": g(o.projection.bias),
    }
    for ours_name, enc in (("temporal_encoder", o.enc_temporal), ("variate_encoder", o.enc_variate)):
        for i, layer in enumerate(enc.layers):
            pre = f"{ours_name}.{i}"
            out[f"{pre}.attn.in_proj.weight"] = g(layer.self_attn.in_proj_weight)
            out[f"{pre}.attn.in_proj.bias"] = g(layer.self_attn.in_proj_bias)
            out[f"{pre}.attn.out_proj.weight"] = g(layer.self_attn.out_proj.weight)
            out[f"{pre}.attn.out_proj.bias"] = g(layer.self_attn.out_proj.bias)
            for name in ("linear1", "linear2", "norm1", "norm2"):
                sub = getattr(layer, name)
                out[f"{pre}.{name}.weight"], out[f"{pre}.{name}.bias"] = g(sub.weight), g(sub.bias)
    return out


def build_pair(root: Path, preset: str, seed: int = 0) -> tuple[Any, Any]:
    """``(ours, official)`` at ``preset``, the official initialised with ``seed``, its weights copied into ours."""
    import torch

    from gatelab import create_model

    model_cls = official_model_class(root)
    torch.manual_seed(seed)
    official = model_cls(official_configs(preset))
    ours = create_model("gateformer", preset=preset)
    copy_official_weights(ours, official)
    return ours, official


def check_equal(ours: Any, official: Any, x: Any, y: Any) -> dict[str, float]:
    """Eval-mode forecasts and MSE gradients of ``ours`` and ``official`` on ``x``; raises
    ``AssertionError`` (naming the tensor) beyond :data:`RTOL`/:data:`ATOL` (forecast) or
    :data:`GRAD_RTOL`/:data:`GRAD_ATOL` (gradients). Returns the largest absolute differences."""
    import torch
    import torch.nn.functional as F

    ours.eval()
    official.eval()
    for m in (ours, official):
        m.zero_grad(set_to_none=True)
    a = ours(x)
    b = official(x.clone(), None, None, None)
    torch.testing.assert_close(a, b, rtol=RTOL, atol=ATOL, msg=lambda m: f"forecast differs: {m}")
    F.mse_loss(a, y).backward()
    F.mse_loss(b, y).backward()
    want = official_grads(ours, official)
    grad_diff = 0.0
    for name, p in ours.named_parameters():
        got = torch.zeros_like(p) if p.grad is None else p.grad
        torch.testing.assert_close(
            got, want[name], rtol=GRAD_RTOL, atol=GRAD_ATOL, msg=lambda m, n=name: f"gradient of {n} differs: {m}"
        )
        grad_diff = max(grad_diff, (got - want[name]).abs().max().item())
    for m in (ours, official):
        m.zero_grad(set_to_none=True)
        m.train()
    return {"max_abs_diff": (a - b).abs().max().item(), "max_abs_grad_diff": grad_diff}


# --------------------------------------------------------------------------- timing


def make_batches(preset: str, batch_size: int, n: int, seed: int = 0) -> list[tuple[Any, Any]]:
    """``n`` random ``(x [B, L, N], y [B, H, N])`` batches shaped like the preset's windows."""
    import torch

    from gatelab.timeseries.models.gateformer import GateformerConfig

    p = GateformerConfig.presets[preset]
    g = torch.Generator().manual_seed(seed)
    scale = torch.rand(p["num_vars"], generator=g) * 10 + 0.5
    return [
        (
            torch.randn(batch_size, p["lookback"], p["num_vars"], generator=g) * scale,
            torch.randn(batch_size, p["horizon"], p["num_vars"], generator=g) * scale,
        )
        for _ in range(n)
    ]


def train_step_fn(
    model: Any, call: Callable[[Any], Any], lr: float = LEARNING_RATE, *, gatelab_optimizer: bool = True
) -> Callable[[Any, Any], float]:
    """One training step (forward, MSE, backward, Adam) of ``model`` through ``call(x)``.

    ``gatelab_optimizer=True`` (our side): the optimizer a gatelab user gets,
    ``build_optimizer(params, TaskConfig(optimizer="adam", lr=lr))`` (``optimizer_impl="auto"``:
    torch's fused Adam, one kernel over every parameter); ``False`` (the official side):
    ``torch.optim.Adam(params, lr=lr)``, the optimizer of the official training code (its
    ``exp/exp_long_term_forecasting.py`` ``_select_optimizer``; torch's CPU default, the
    per-parameter loop). Same update rule and hyper-parameters.
    """
    import torch
    import torch.nn.functional as F

    if gatelab_optimizer:
        from gatelab.core.harness.configs import TaskConfig
        from gatelab.core.harness.task import build_optimizer

        opt = build_optimizer(model.parameters(), TaskConfig(optimizer="adam", lr=lr))
    else:
        opt = torch.optim.Adam(model.parameters(), lr=lr)

    def step(x: Any, y: Any) -> float:
        opt.zero_grad(set_to_none=True)
        loss = F.mse_loss(call(x), y)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def matmul_floor(step: Callable[[Any, Any], float], x: Any, y: Any) -> tuple[Callable[[], None], float]:
    """The matrix products of one training step, replayed alone: a lower bound on the step.

    Runs ``step(x, y)`` once under a dispatch mode that records every ``aten.mm`` /
    ``aten.addmm`` / ``aten.bmm`` call (any overload, ``out=`` ones too) with its operand shapes
    (forward and backward), and returns
    ``(replay, gflop)``: ``replay()`` calls the same products, in order, on fresh random
    contiguous operands of the recorded shapes (each product its own tensors, so they come from
    memory as in the step), and ``gflop`` their floating-point operations. Timed in the rounds like
    a contender, it is what the step would cost if everything but its matrix products were free:
    ``official / floor`` bounds the speedup any rewrite with the same products can reach on this
    machine (``speedup_bound``).
    """
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    aten = torch.ops.aten
    shapes: list[tuple[Any, list[tuple[int, ...]]]] = []

    class _Record(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            if func.overloadpacket in (aten.mm, aten.addmm, aten.bmm):  # any overload (``out=`` too)
                shapes.append((func.overloadpacket, [tuple(a.shape) for a in args[:3] if isinstance(a, torch.Tensor)]))
            return func(*args, **(kwargs or {}))

    with _Record():
        step(x, y)
    calls: list[tuple[Callable[..., Any], list[Any]]] = []
    flop = 0
    for func, sh in shapes:
        if func is aten.bmm:
            (b, m, k), (_, _, n) = sh
            calls.append((torch.bmm, [torch.randn(b, m, k), torch.randn(b, k, n)]))
            flop += 2 * b * m * k * n
        elif func is aten.mm:
            (m, k), (_, n) = sh
            calls.append((torch.mm, [torch.randn(m, k), torch.randn(k, n)]))
            flop += 2 * m * k * n
        else:
            (m, k), (_, n) = sh[1], sh[2]
            calls.append((torch.addmm, [torch.randn(*sh[0]), torch.randn(m, k), torch.randn(k, n)]))
            flop += 2 * m * k * n

    def replay() -> None:
        for fn, args in calls:
            fn(*args)

    return replay, flop / 1e9


def time_rounds(
    steps: dict[str, Callable[[Any, Any], float]],
    batches: list[tuple[Any, Any]],
    *,
    rounds: int,
    n_steps: int,
    warmup: int,
) -> dict[str, dict[str, list[float]]]:
    """Per-round CPU and wall seconds per step of each contender, rounds interleaved (order rotated)."""
    names = list(steps)
    for name in names:
        for i in range(warmup):
            steps[name](*batches[i % len(batches)])
    out = {n: {"cpu": [], "wall": []} for n in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            c0, w0 = time.process_time(), time.perf_counter()
            for i in range(n_steps):
                steps[name](*batches[(r * n_steps + i) % len(batches)])
            out[name]["cpu"].append((time.process_time() - c0) / n_steps)
            out[name]["wall"].append((time.perf_counter() - w0) / n_steps)
    return out


def _quartiles(v: list[float]) -> tuple[float, float]:
    if len(v) < 2:
        return v[0], v[0]
    q = statistics.quantiles(v, n=4, method="inclusive")
    return q[0], q[2]


def summarise(t: dict[str, dict[str, list[float]]], ours: str, ref: str = "official") -> dict[str, float]:
    """Medians, speedups and the spread (min-max, IQR) of the per-round ratios ``ref / ours``."""
    ratios = [r / o for r, o in zip(t[ref]["cpu"], t[ours]["cpu"], strict=True)]
    wall_ratios = [r / o for r, o in zip(t[ref]["wall"], t[ours]["wall"], strict=True)]
    q1, q3 = _quartiles(ratios)
    ours_ms = statistics.median(t[ours]["cpu"]) * 1e3
    ref_ms = statistics.median(t[ref]["cpu"]) * 1e3
    return {
        "speedup": ref_ms / ours_ms,
        "speedup_round_median": statistics.median(ratios),
        "speedup_min": min(ratios),
        "speedup_max": max(ratios),
        "speedup_q1": q1,
        "speedup_q3": q3,
        "wall_speedup": statistics.median(wall_ratios),
        "step_ms": ours_ms,
        "baseline_step_ms": ref_ms,
        "wall_step_ms": statistics.median(t[ours]["wall"]) * 1e3,
        "baseline_wall_step_ms": statistics.median(t[ref]["wall"]) * 1e3,
    }


def run_preset(root: Path, preset: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Build, check and time one preset; returns the result rows (ours eager, ours compiled)."""
    import torch

    ours, official = build_pair(root, preset)
    n_steps = args.steps or DEFAULT_STEPS[preset]
    batches = make_batches(preset, args.batch_size, max(4, n_steps))
    eq = check_equal(ours, official, *batches[0])
    print(f"[{preset}] equal outputs: max |diff| {eq['max_abs_diff']:.2e} (forecast), {eq['max_abs_grad_diff']:.2e} (grads)")
    steps = {
        "ours": train_step_fn(ours, ours),
        "official": train_step_fn(official, lambda x: official(x, None, None, None), gatelab_optimizer=False),
    }
    if args.compile:
        twin = type(ours)(ours.config)
        twin.load_state_dict(ours.state_dict())
        compiled = torch.compile(twin)
        with torch.no_grad():
            twin.eval()
            torch.testing.assert_close(compiled(batches[0][0]), ours.eval()(batches[0][0]), rtol=RTOL, atol=ATOL)
            twin.train()
            ours.train()
        steps["ours_compiled"] = train_step_fn(twin, compiled)
    floor, gflop = matmul_floor(steps["ours"], *batches[0])
    steps["matmul_floor"] = lambda x, y: floor()
    t = time_rounds(steps, batches, rounds=args.rounds, n_steps=n_steps, warmup=args.warmup)
    params = sum(p.numel() for p in ours.parameters())
    base_params = sum(p.numel() for p in official.parameters())
    floor_ms = statistics.median(t["matmul_floor"]["cpu"]) * 1e3
    rows = []
    for name in [n for n in steps if n not in ("official", "matmul_floor")]:
        s = summarise(t, name)
        bound = {"matmul_gflop": gflop, "matmul_floor_ms": floor_ms, "speedup_bound": s["baseline_step_ms"] / floor_ms}
        rows.append(
            {"preset": preset, "contender": name, "steps": n_steps, **eq, **s, **bound, "params": params,
             "baseline_params": base_params}
        )  # fmt: skip
        print(
            f"[{preset}] {name}: {s['step_ms']:.2f} ms/step vs official {s['baseline_step_ms']:.2f} ms/step "
            f"-> speedup {s['speedup']:.2f}x (per-round {s['speedup_min']:.2f}-{s['speedup_max']:.2f}, "
            f"IQR {s['speedup_q1']:.2f}-{s['speedup_q3']:.2f}); wall {s['wall_speedup']:.2f}x; its {gflop:.1f} GFLOP "
            f"of matrix products alone {floor_ms:.2f} ms -> bound {bound['speedup_bound']:.2f}x"
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parse(argv)
    root = check_official_repo(args.official_repo)
    if root is None:
        where = args.official_repo or f"(none: pass --official-repo or set ${ENV_REPO})"
        print(
            f"gateformer_speed: SKIPPED, no official checkout at {where}: clone https://github.com/nyuolab/Gateformer "
            "and pass its path (the directory holding models/Gateformer.py)"
        )
        return 0
    import torch

    from gatelab.core.harness import provenance

    torch.set_num_threads(args.threads)
    commit = provenance.git_commit()
    command = "python benchmarks/gateformer_speed.py " + " ".join(a for a in argv if a != args.official_repo).replace(
        "--official-repo", "--official-repo PATH"
    )
    print(f"official checkout: {root}; torch {torch.__version__}, {torch.get_num_threads()} thread(s); {platform.processor() or platform.machine()}")
    rows = [r for preset in args.presets for r in run_preset(root, preset, args)]
    print(json.dumps([{k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()} for r in rows], indent=1))
    if args.record:
        from gatelab.core.harness.ledger import append_records, render_markdown, resolve_results_dir

        config = {k: v for k, v in vars(args).items() if k not in ("record", "results_dir", "official_repo", "presets")}
        config["measure"] = "process CPU time per training step (forward, MSE, backward, Adam), median over interleaved rounds"
        records = []
        for r in rows:
            r = dict(r)
            preset, contender = r.pop("preset"), r.pop("contender")
            records.append(
                {
                    "model": "gateformer",
                    "dataset": preset.split("-")[0],
                    "split": "train",
                    "horizon": int(preset.split("-")[1]),
                    "variant": f"model-step-b{args.batch_size}-{'eager' if contender == 'ours' else 'compiled'}",
                    "seed": 0,
                    "baseline": "official nyuolab/Gateformer models/Gateformer.py (eager)",
                    "config": {**config, "preset": preset, "steps": r["steps"], "threads": args.threads},
                    "commit": commit,
                    "command": command,
                    **{k: v for k, v in r.items() if k != "steps"},
                }
            )
        append_records("gateformer-speed", records, args.results_dir, render=False)
        render_markdown("gateformer-speed", args.results_dir, title="Gateformer training step vs the official code", description=DESCRIPTION)
        print(f"recorded in {resolve_results_dir(args.results_dir) / 'gateformer-speed.jsonl'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
