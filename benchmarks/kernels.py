"""Benchmark every gate kernel: Triton vs torch eager vs torch.compile vs Liger-Kernel / fla.

For each op of :mod:`gatelab.core.kernels` and sizes typical of the models that use it, times the
forward and the forward+backward of

* ``eager``: the op's PyTorch reference (the anchor: ``speedup`` is relative to it),
* ``compile``: ``torch.compile`` (Inductor) of the reference,
* ``triton``: our Triton kernels (``use_backend("triton")``; CUDA only, or ``--interpret``),
* ``liger``: Liger-Kernel's ``LigerSiLUMulFunction`` / ``LigerGELUMulFunction`` for ``swiglu`` /
  ``geglu`` (CUDA only; note Liger's GEGLU uses the tanh GELU approximation, ours the exact erf),
* ``fla``: flash-linear-attention's ``chunk_gla`` for ``gla_chunk`` (CUDA only),

and reports milliseconds, effective bandwidth (GB/s over the op's minimal traffic: every input read
once, every output written once; the same byte count for every implementation), the percentage of
the GPU's peak HBM bandwidth, TFLOP/s for the matmul-bearing ops (chunked GLA, the vector token-wise
gate) and the speed ratios. Every implementation is first checked against eager (outputs and
gradients, normwise); a wrong one aborts the run.

Results go through the harness ledger: ``docs/results/kernels.jsonl`` (one record per op, size and
implementation, with the command, commit, machine and date), ``kernels.md`` rendered from it, and
``kernels.csv`` (all records, flat). Without CUDA the script times the references on the CPU
(eager and torch.compile) at smaller sizes and the table says the GPU numbers are pending.

Usage::

    python benchmarks/kernels.py                        # CUDA if present, else the CPU references
    python benchmarks/kernels.py --ops swiglu gla_chunk --dtype bf16
    python benchmarks/kernels.py --interpret --sizes tiny --no-write   # exercise the Triton path on CPU
    /work/notes/cpu_slot python benchmarks/kernels.py   # on the shared CPU machine

Also (``--parts``; all by default): ``layer``, our ``GatedLinearAttention`` (bf16 end to end, Triton
chunk kernels) against flash-linear-attention's ``GatedLinearAttention`` with the same weights
(outputs checked first; CUDA only), and ``dispatch``, the Python overhead of
``gatelab.core.kernels.dispatch`` per call (interleaved rounds, one thread; any machine), written to
``docs/results/kernels-dispatch-speed.{jsonl,md}``.

Goals on H100/H200 (issues 9 and 17), checked at the end of every run and in ``kernels.md``:
element-wise gates >= 85% of peak HBM bandwidth, SwiGLU >= 1.0x Liger, chunk GLA >= 0.8x
flash-linear-attention's ``chunk_gla``, the GLA layer >= 0.8x fla's layer (bf16), and dispatch
overhead < 2 us per call. On a GPU machine one command runs them all::

    python benchmarks/kernels.py            # bf16 on CUDA: ops, GLA layer, dispatch; writes the ledgers

Without CUDA the GPU goals print as ``pending``.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import importlib.util
import json
import os
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

TABLE = "kernels"
DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
IMPLS = ("eager", "compile", "triton", "liger", "fla")
PARTS = ("ops", "layer", "dispatch")
# Spec-sheet peak HBM bandwidth in GB/s, matched against torch.cuda.get_device_name() (first match).
PEAK_HBM_GBPS: tuple[tuple[str, float], ...] = (
    ("H200", 4800.0),
    ("H100 NVL", 3900.0),
    ("H100 PCIE", 2000.0),
    ("H100", 3350.0),  # SXM5 (HBM3)
    ("A100 80GB PCIE", 1935.0),
    ("A100-SXM4-80GB", 2039.0),
    ("A100", 1555.0),
    ("L40S", 864.0),
)
GLA_CHUNK = 64  # the chunk length of the FLOP count (our kernels' chunk; fla's default too)
CSV_COLUMNS = (
    "date",
    "machine",
    "model",
    "split",
    "variant",
    "fwd_ms",
    "fwd_bwd_ms",
    "fwd_gbps",
    "fwd_bwd_gbps",
    "pct_hbm_fwd",
    "pct_hbm_fwd_bwd",
    "fwd_tflops",
    "fwd_bwd_tflops",
    "speedup_fwd",
    "speedup",
    "speedup_vs_compile",
    "speedup_vs_anchor",
    "commit",
    "command",
)


# ------------------------------------------------------------------------------------------------
# cases
# ------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Case:
    """One op at one size: how to build its inputs and count its traffic and FLOPs."""

    op: str
    label: str  # size label, e.g. "tft N=24576 D=160"
    model: str  # where the size comes from
    make: Callable[[Any, Any, Any], tuple[list[Any], dict[str, Any]]]  # (torch, dtype, device) -> args
    bytes_fwd: Callable[[int], float]  # element size in bytes -> minimal bytes moved by the forward
    bytes_bwd: Callable[[int], float]  # ... by the backward (fwd+bwd = fwd + bwd)
    flops_fwd: float = 0.0  # 0: report no TFLOP/s
    flops_bwd: float = 0.0
    grad_args: tuple[int, ...] = ()  # positional args that get gradients
    grad_kwargs: tuple[str, ...] = ()
    dtype: str | None = None  # force this dtype ("float32") whatever --dtype says


def _glu(op: str, n: int, h: int, model: str) -> Case:
    def make(torch, dtype, device):
        return [torch.randn(n, h, device=device).to(dtype), torch.randn(n, h, device=device).to(dtype)], {}

    return Case(
        op, f"N={n} H={h}", model, make, lambda b: 3 * n * h * b, lambda b: 5 * n * h * b, grad_args=(0, 1)
    )


def _glu_packed(op: str, n: int, h: int, model: str) -> Case:
    """The packed op on the fused projection's output ``x [n, 2h]``: same traffic as the unpacked op
    (read x, write out; backward: read dout and x, write ONE dx buffer)."""

    def make(torch, dtype, device):
        return [torch.randn(n, 2 * h, device=device).to(dtype)], {}

    return Case(
        op, f"N={n} H={h}", model, make, lambda b: 3 * n * h * b, lambda b: 5 * n * h * b, grad_args=(0,)
    )


def _sigmoid_gate(b_: int, t: int, heads: int, dh: int, mode: str, model: str) -> Case:
    g = 1 if mode == "headwise" else dh
    m, mg = b_ * t * heads * dh, b_ * t * heads * g

    def make(torch, dtype, device):
        # the layer's views: transposed SDPA output, gate slice of the fused q projection
        o = torch.randn(b_, heads, t, dh, device=device).to(dtype).transpose(1, 2)
        logits = torch.randn(b_, t, heads, dh + g, device=device).to(dtype)[..., dh:]
        return [o, logits], {}

    return Case(
        "sigmoid_gate",
        f"{mode} B={b_} T={t} H={heads} Dh={dh}",
        model,
        make,
        lambda b: (2 * m + mg) * b,
        lambda b: (3 * m + 2 * mg) * b,
        grad_args=(0, 1),
    )


def _gate_add_norm(n: int, d: int, model: str) -> Case:
    def make(torch, dtype, device):
        h = torch.randn(n, 2 * d, device=device).to(dtype)
        skip = torch.randn(n, d, device=device).to(dtype)
        w = (1 + 0.1 * torch.randn(d, device=device)).to(dtype)
        bias = (0.1 * torch.randn(d, device=device)).to(dtype)
        return [h, skip, w, bias, 1e-5], {}

    return Case(
        "gate_add_norm",
        f"N={n} D={d}",
        model,
        make,
        lambda b: 4 * n * d * b + 8 * n,
        lambda b: 7 * n * d * b + 8 * n,
        grad_args=(0, 1, 2, 3),
    )


def _feature_gate(n: int, f: int, learned: bool, model: str) -> Case:
    mz = f if learned else n * f

    def make(torch, dtype, device):
        x = torch.randn(n, f, device=device).to(dtype)
        z = torch.randn(*((f,) if learned else (n, f)), device=device).to(dtype)
        return [x, z, 2.0], {}

    label = f"{'learned-context' if learned else 'context'} N={n} F={f}"
    return Case(
        "feature_gate",
        label,
        model,
        make,
        lambda b: (2 * n * f + mz) * b,
        lambda b: (3 * n * f + 2 * mz) * b,
        grad_args=(0, 1),
    )


def _gated_cross(n: int, d: int, model: str) -> Case:
    def make(torch, dtype, device):
        ts = [torch.randn(n, d, device=device).to(dtype) for _ in range(4)]
        return [*ts, torch.rand(d, device=device).to(dtype)], {}

    return Case(
        "gated_cross",
        f"N={n} D={d}",
        model,
        make,
        lambda b: 5 * n * d * b,
        lambda b: 7 * n * d * b,
        grad_args=(0, 1, 2, 3, 4),
    )


def _tokenwise(n: int, d: int, mode: str, model: str) -> Case:
    e = 1 if mode == "scalar" else d

    def make(torch, dtype, device):
        a = torch.randn(n, d, device=device).to(dtype)
        b2 = torch.randn(n, d, device=device).to(dtype)
        w = (torch.randn(e, 2 * d, device=device) / d**0.5).to(dtype)
        return [a, b2, w, torch.zeros(e, device=device).to(dtype)], {}

    # forward: a [a; b] W^T projection (2 N E 2D flops) + the mix; backward: three matmuls of that size
    flops = 2.0 * n * e * 2 * d
    return Case(
        "tokenwise_gate",
        f"{mode} N={n} D={d}",
        model,
        make,
        lambda b: (3 * n * d + 2 * e * d) * b,
        lambda b: (5 * n * d + 4 * e * d) * b,
        flops_fwd=flops if mode == "vector" else 0.0,
        flops_bwd=2 * flops if mode == "vector" else 0.0,
        grad_args=(0, 1, 2, 3),
    )


def _gla(b_: int, t: int, heads: int, k: int, v: int, model: str, dtype: str | None = None) -> Case:
    def make(torch, dtype, device):
        import torch.nn.functional as F

        q = torch.randn(b_, t, heads, k, device=device).to(dtype)
        kk = torch.randn(b_, t, heads, k, device=device).to(dtype)
        vv = torch.randn(b_, t, heads, v, device=device).to(dtype)
        g = (F.logsigmoid(torch.randn(b_, t, heads, k, device=device)) / 16).to(dtype)
        return [q, kk, vv, g], {}

    # matmul FLOPs of the chunk form (chunk C = 64, causal halves not discounted): state update and
    # inter-chunk output (2 x 2TKV), intra-chunk scores (2TCK) and output (2TCV); backward ~ 2x forward
    flops = 2.0 * b_ * heads * t * (2 * k * v + GLA_CHUNK * (k + v))
    return Case(
        "gla_chunk",
        f"B={b_} T={t} H={heads} K={k} V={v}",
        model,
        make,
        lambda b: b_ * t * heads * (3 * k + 2 * v) * b,  # read q, k, g, v; write o
        lambda b: b_ * t * heads * (6 * k + 4 * v) * b,  # read q, k, g, v, do; write dq, dk, dg, dv
        flops_fwd=flops,
        flops_bwd=2 * flops,
        grad_args=(0, 1, 2, 3),
        dtype=dtype,
    )


def _router(n: int, e: int, k: int, smooth: bool, model: str) -> Case:
    def make(torch, dtype, device):
        logits = torch.randn(n, e, device=device).to(dtype)
        if not smooth:
            return [logits, k, None, None], {}
        clean = torch.randn(n, e, device=device).to(dtype)
        std = (torch.rand(n, e, device=device) + 0.1).to(dtype)
        return [logits, k, clean, std], {}

    ins = 3 if smooth else 1
    return Case(
        "topk_router",
        f"{'noisy ' if smooth else ''}N={n} E={e} k={k}",
        model,
        make,
        # read logits (+ clean, std); write gates, probs, weights, indices (int64)
        lambda b: (ins + 2) * n * e * b + n * k * (b + 8),
        # read logits (+ clean, std), dgates, dprobs, dweights; write dlogits (+ dclean, dstd)
        lambda b: (2 * ins + 2) * n * e * b + n * k * b,
        grad_args=(0, 2, 3) if smooth else (0,),
    )


def cases(sizes: str) -> list[Case]:
    """Benchmark cases: ``gpu`` (sizes of the models), ``cpu`` (smaller, for the references on a CPU
    core), ``tiny`` (a smoke run: tests and ``--interpret``)."""
    if sizes == "gpu":
        return [
            _glu("swiglu", 8192, 4096, "transformer FFN (GluMlp)"),
            _glu("swiglu", 4096, 11008, "LLaMA-7B FFN"),
            _glu("geglu", 8192, 4096, "transformer FFN (GluMlp)"),
            _glu_packed("swiglu_packed", 8192, 4096, "transformer FFN (GluMlp, one-buffer backward)"),
            _glu_packed("geglu_packed", 8192, 4096, "transformer FFN (GluMlp, one-buffer backward)"),
            _sigmoid_gate(8, 2048, 16, 128, "headwise", "gated attention 1.7B"),
            _sigmoid_gate(8, 2048, 16, 128, "elementwise", "gated attention 1.7B"),
            _gate_add_norm(128 * 192, 160, "TFT (batch 128, 168+24 steps, hidden 160)"),
            _gate_add_norm(32768, 512, "TFT large hidden"),
            _feature_gate(4096, 39 * 16, False, "FinalMLP Criteo (39 fields x 16)"),
            _feature_gate(4096, 39 * 16, True, "FinalMLP Criteo, learned context"),
            _gated_cross(4096, 39 * 16, "GDCN Criteo (39 fields x 16)"),
            _tokenwise(8192, 1024, "scalar", "vision-language fusion"),
            _tokenwise(8192, 1024, "vector", "vision-language fusion"),
            _gla(8, 2048, 4, 128, 256, "GLA 340M (dim 1024, 4 heads)"),
            _gla(8, 2048, 4, 128, 256, "GLA 340M, float32 as GatedLinearAttention calls it", "float32"),
            _router(16384, 64, 2, True, "noisy top-2 MoE, 64 experts"),
            _router(16384, 8, 2, False, "top-2 MoE, 8 experts (eval)"),
        ]
    if sizes == "cpu":
        return [
            _glu("swiglu", 256, 1024, "transformer FFN (GluMlp), CPU size"),
            _glu("geglu", 256, 1024, "transformer FFN (GluMlp), CPU size"),
            _glu_packed("swiglu_packed", 256, 1024, "transformer FFN (GluMlp), CPU size"),
            _sigmoid_gate(2, 256, 8, 64, "headwise", "gated attention, CPU size"),
            _sigmoid_gate(2, 256, 8, 64, "elementwise", "gated attention, CPU size"),
            _gate_add_norm(16 * 192, 160, "TFT (batch 16, 168+24 steps, hidden 160)"),
            _feature_gate(1024, 39 * 16, False, "FinalMLP Criteo, batch 1024"),
            _feature_gate(1024, 39 * 16, True, "FinalMLP Criteo, learned context, batch 1024"),
            _gated_cross(1024, 39 * 16, "GDCN Criteo, batch 1024"),
            _tokenwise(1024, 512, "scalar", "vision-language fusion, CPU size"),
            _tokenwise(1024, 512, "vector", "vision-language fusion, CPU size"),
            _gla(1, 512, 2, 64, 64, "GLA, CPU size"),
            _router(4096, 64, 2, True, "noisy top-2 MoE, 64 experts"),
            _router(4096, 8, 2, False, "top-2 MoE, 8 experts (eval)"),
        ]
    if sizes == "tiny":
        return [
            _glu("swiglu", 4, 40, "tiny"),
            _glu("geglu", 4, 40, "tiny"),
            _glu_packed("swiglu_packed", 4, 40, "tiny"),
            _sigmoid_gate(1, 3, 2, 8, "headwise", "tiny"),
            _sigmoid_gate(1, 3, 2, 8, "elementwise", "tiny"),
            _gate_add_norm(6, 12, "tiny"),
            _feature_gate(4, 10, False, "tiny"),
            _feature_gate(4, 10, True, "tiny"),
            _gated_cross(4, 10, "tiny"),
            _tokenwise(5, 16, "scalar", "tiny"),
            _tokenwise(5, 16, "vector", "tiny"),
            _gla(1, 20, 1, 16, 16, "tiny"),
            _router(9, 6, 2, True, "tiny"),
        ]
    raise ValueError(f"unknown --sizes {sizes!r}; expected gpu, cpu or tiny")


# ------------------------------------------------------------------------------------------------
# implementations
# ------------------------------------------------------------------------------------------------
def _installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


ANCHOR_OF = {"swiglu": "liger", "geglu": "liger", "gla_chunk": "fla"}


def anchor_impl(op: str, cuda: bool) -> tuple[Callable[..., Any] | None, str]:
    """``(callable, note)`` of the external anchor of ``op`` (:data:`ANCHOR_OF`): ``None`` with the
    reason when it cannot run here, else the callable with a note on how it differs from our op."""
    anchor = ANCHOR_OF.get(op)
    if anchor == "liger":
        if not _installed("liger_kernel"):
            return None, "liger-kernel not installed (uv sync --group anchors)"
        if not cuda:
            return None, "liger-kernel has no CPU path"
        if op == "swiglu":
            from liger_kernel.ops.swiglu import LigerSiLUMulFunction

            # Liger's (a, b) -> silu(a) * b: a is the gate
            return (lambda gate, value: LigerSiLUMulFunction.apply(gate, value)), ""
        from liger_kernel.ops.geglu import LigerGELUMulFunction

        return (lambda gate, value: LigerGELUMulFunction.apply(gate, value)), "tanh-approximate GELU"
    if anchor == "fla":
        if not _installed("fla"):
            return None, "flash-linear-attention not installed (uv sync --group anchors)"
        if not cuda:
            return None, "flash-linear-attention needs a GPU"
        from fla.ops.gla import chunk_gla

        def fla_gla(q, k, v, g, scale=None, initial_state=None, output_final_state=False, chunk_size=16):
            # same [B, T, H, K] layout and (o, final_state) result as ours; fla picks its own chunk
            return chunk_gla(
                q, k, v, g, scale=scale, initial_state=initial_state, output_final_state=output_final_state
            )

        return fla_gla, ""
    return None, "no external anchor"


# ------------------------------------------------------------------------------------------------
# timing
# ------------------------------------------------------------------------------------------------
def _tensors(out: Any) -> list[Any]:
    return list(out) if isinstance(out, (tuple, list)) else [out]


class Runner:
    """Times callables on one device (CUDA: ``triton.testing.do_bench``; CPU: perf_counter)."""

    def __init__(self, torch: Any, cuda: bool, warmup: int, iters: int, repeats: int) -> None:
        self.torch, self.cuda = torch, cuda
        self.warmup, self.iters, self.repeats = warmup, iters, repeats

    def ms(self, fn: Callable[[], Any]) -> float:
        """Median milliseconds per call."""
        if self.cuda:
            from triton.testing import do_bench  # flushes L2 between calls, CUDA-event timing

            return float(do_bench(fn, warmup=25, rep=100, return_mode="median"))
        for _ in range(self.warmup):
            fn()
        per_call = []
        for _ in range(self.repeats):
            t0 = time.perf_counter()
            for _ in range(self.iters):
                fn()
            per_call.append((time.perf_counter() - t0) * 1e3 / self.iters)
        return statistics.median(per_call)


def _leaves(
    torch: Any, case: Case, args: list[Any], kwargs: dict[str, Any]
) -> tuple[list[Any], dict[str, Any]]:
    la = [
        a.detach().clone().requires_grad_(True) if i in case.grad_args and a is not None else a
        for i, a in enumerate(args)
    ]
    lk = {
        k: (v.detach().clone().requires_grad_(True) if k in case.grad_kwargs else v)
        for k, v in kwargs.items()
    }
    return la, lk


def _diff_outputs(out: Any) -> list[Any]:
    return [
        o for o in _tensors(out) if hasattr(o, "requires_grad") and o.requires_grad and o.is_floating_point()
    ]


def check_against_eager(
    torch: Any,
    case: Case,
    name: str,
    fn: Callable[..., Any],
    eager: Callable[..., Any],
    args: list[Any],
    kwargs: dict[str, Any],
    dtype: Any,
    loose: bool,
) -> str | None:
    """``None`` when ``fn`` matches ``eager`` (outputs and gradients, normwise), else the mismatch."""
    tol = 1e-4 if dtype == torch.float32 else 2e-2
    if loose:
        tol = max(tol, 5e-3)
    res = {}
    for key, f in (("impl", fn), ("eager", eager)):
        la, lk = _leaves(torch, case, args, kwargs)
        out = f(*la, **lk)
        diff = _diff_outputs(out)
        gen = torch.Generator(device=diff[0].device).manual_seed(0)
        cots = [torch.randn(o.shape, generator=gen, device=o.device, dtype=o.dtype) for o in diff]
        torch.autograd.backward(diff, cots)
        grads = [t.grad for t in [*la, *lk.values()] if hasattr(t, "grad") and t.requires_grad]
        res[key] = [
            o.detach() for o in _tensors(out) if hasattr(o, "is_floating_point") and o.is_floating_point()
        ]
        res[key] += grads
    for i, (a, b) in enumerate(zip(res["impl"], res["eager"])):
        a, b = a.double(), b.double()
        err = (a - b).norm().item() / max(b.norm().item(), 1e-30)
        if not err <= tol:
            return f"{case.op} [{case.label}] {name}: tensor {i} differs from eager (normwise {err:.3g} > {tol:g})"
    return None


# ------------------------------------------------------------------------------------------------
# the GLA layer against flash-linear-attention's layer (CUDA)
# ------------------------------------------------------------------------------------------------
GLA_LAYER_GPU = {"batch": 8, "seq": 2048, "dim": 1024, "num_heads": 4}  # GLA 340M (fla's defaults)
LAYER_TOL_BF16 = 3e-2  # normwise, bf16 against bf16: both round projections, operands and outputs


def fla_gla_layer(ours: Any) -> Any:
    """flash-linear-attention's ``GatedLinearAttention`` with ``ours``' weights (same config).

    fla's layer holds the same projections under the same names; its fused RMSNorm+swish gate holds
    the head-norm weight (``g_norm_swish_gate.weight``, ours ``norm_weight``). Loaded strictly: a
    renamed parameter in either library fails loudly instead of timing different layers.
    """
    from fla.layers.gla import GatedLinearAttention as FlaGLA

    if ours.norm != "rmsnorm" or ours.gate_logit_normalizer != 16.0:
        raise ValueError("the fla comparison needs norm='rmsnorm' and gate_logit_normalizer=16")
    ref = FlaGLA(
        mode="chunk",
        hidden_size=ours.dim,
        expand_k=ours.key_dim / ours.dim,
        expand_v=ours.value_dim / ours.dim,
        num_heads=ours.num_heads,
        gate_low_rank_dim=ours.gk_proj[0].out_features,
        norm_eps=ours.norm_eps,
        gate_logit_normalizer=16,
    )
    state = {
        ("g_norm_swish_gate.weight" if k == "norm_weight" else k): v for k, v in ours.state_dict().items()
    }
    ref.load_state_dict(state, strict=True)
    p = next(ours.parameters())
    return ref.to(device=p.device, dtype=p.dtype)


def gla_layer_records(st: Setup) -> list[dict[str, Any]]:
    """Our ``GatedLinearAttention`` (bf16 end to end, Triton chunk kernels) vs fla's layer, fwd+bwd.

    CUDA only (fla's layer has no CPU path). Outputs and the input gradient are checked first
    (normwise, :data:`LAYER_TOL_BF16`); a mismatch raises.
    """
    torch = st.torch
    from gatelab.core import GatedLinearAttention

    cfg = GLA_LAYER_GPU
    torch.manual_seed(0)
    ours = GatedLinearAttention(cfg["dim"], cfg["num_heads"], mode="chunk").to(st.device, st.dtype)
    ref = fla_gla_layer(ours)
    x = torch.randn(cfg["batch"], cfg["seq"], cfg["dim"], device=st.device, dtype=st.dtype)
    fns = {"ours": lambda t: ours(t), "fla": lambda t: ref(t)[0]}
    got = {}
    for name, fn in fns.items():
        xi = x.clone().requires_grad_(True)
        y = fn(xi)
        y.backward(torch.ones_like(y))
        got[name] = (y.detach().double(), xi.grad.double())
    for i, what in enumerate(("output", "input gradient")):
        a, b = got["ours"][i], got["fla"][i]
        err = (a - b).norm().item() / max(b.norm().item(), 1e-30)
        if not err <= LAYER_TOL_BF16:
            raise RuntimeError(
                f"gla_layer: {what} differs from fla's layer (normwise {err:.3g} > {LAYER_TOL_BF16})"
            )
    dname = str(st.dtype).removeprefix("torch.")
    label = f"B={cfg['batch']} T={cfg['seq']} dim={cfg['dim']} H={cfg['num_heads']}"
    print(f"\ngla_layer [{label}] (GatedLinearAttention vs fla.layers.GatedLinearAttention), {dname}")
    times: dict[str, tuple[float, float]] = {}
    for name, fn in fns.items():
        xi = x.clone().requires_grad_(True)
        dy = torch.randn_like(x)

        def fwd(fn: Callable[[Any], Any] = fn) -> Any:
            with torch.no_grad():
                return fn(x)

        def fwd_bwd(fn: Callable[[Any], Any] = fn, xi: Any = xi, dy: Any = dy) -> None:
            xi.grad = None
            fn(xi).backward(dy)

        times[name] = (st.runner.ms(fwd), st.runner.ms(fwd_bwd))
        print(f"  {name:8s} fwd {times[name][0]:9.4f} ms   f+b {times[name][1]:9.4f} ms")
    records = []
    for name, (f_ms, fb_ms) in times.items():
        rec: dict[str, Any] = {
            "model": "gla_layer",
            "dataset": "synthetic",
            "split": f"{st.tag}/{label}/{dname}",
            "variant": "triton" if name == "ours" else "fla",
            "baseline": "fla",
            "seed": 0,
            "fwd_ms": f_ms,
            "fwd_bwd_ms": fb_ms,
            "config": {
                "op": "gla_layer",
                "size": label,
                "source": "GLA 340M layer (fla defaults: expand_k 0.5, expand_v 1, low rank 16)",
                "dtype": str(st.dtype),
                "device": st.device_name,
                "timing": st.timing,
                "torch": torch.__version__,
                "tolerance_normwise": LAYER_TOL_BF16,
            },
        }
        if name == "ours":
            rec["speedup_vs_anchor"] = times["fla"][1] / fb_ms
            rec["speedup_fwd_vs_anchor"] = times["fla"][0] / f_ms
            rec["config"]["anchor"] = "fla"
        records.append(rec)
    return records


# ------------------------------------------------------------------------------------------------
# dispatch overhead (CPU; plus the CUDA auto path when a GPU is present)
# ------------------------------------------------------------------------------------------------
DISPATCH_TABLE = "kernels-dispatch-speed"
DISPATCH_GOAL_US = 2.0
_NOOP_OP = "bench_dispatch_noop"


def _us_per_call(fn: Callable[[], Any], calls: int) -> float:
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls * 1e6


def _quartiles(xs: list[float]) -> tuple[float, float, float]:
    q = statistics.quantiles(xs, n=4, method="inclusive") if len(xs) > 1 else [xs[0]] * 3
    return q[0], statistics.median(xs), q[2]


def overhead_us(
    ours: Callable[[], Any], direct: Callable[[], Any], rounds: int, calls: int, sync: Callable[[], Any]
) -> dict[str, float]:
    """Per-call microseconds of ``ours`` and ``direct`` in interleaved rounds (order alternating),
    and the per-round difference: median and quartiles."""
    for _ in range(max(1, calls // 10)):
        ours(), direct()
    sync()
    a: list[float] = []
    b: list[float] = []
    for i in range(rounds):
        order = ((ours, a), (direct, b)) if i % 2 == 0 else ((direct, b), (ours, a))
        for fn, out in order:
            out.append(_us_per_call(fn, calls))
            sync()
    diff = [x - y for x, y in zip(a, b)]
    q1, med, q3 = _quartiles(diff)
    return {
        "overhead_us": med,
        "overhead_us_q1": q1,
        "overhead_us_q3": q3,
        "overhead_us_min": min(diff),  # the lower envelope: least disturbed by preemption on a busy machine
        "dispatch_us": statistics.median(a),
        "direct_us": statistics.median(b),
    }


def dispatch_records(torch: Any, tag: str, device_name: str, rounds: int, calls: int) -> list[dict[str, Any]]:
    """Dispatch overhead per call: ``dispatch(op, ...)`` against calling what it selects directly.

    Cases (tiny tensors, one thread): a trivial op (``x -> x``; the pure decision + call cost),
    ``swiglu`` on CPU tensors under ``auto`` (the reference) and inside an open
    ``use_backend("reference")`` block (the explicit path), and on CUDA ``swiglu`` under ``auto``
    (the Triton backend, verifier included) against the Triton function called directly.
    """
    from gatelab.core.kernels import dispatch, ops, register_op, select, use_backend

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        if _NOOP_OP not in ops():
            register_op(_NOOP_OP, doc="identity (dispatch benchmark)")(lambda x: x)
        x = torch.randn(4, 8)
        g, v = torch.randn(4, 8), torch.randn(4, 8)
        ref_swiglu = ops()["swiglu"].reference
        cases: list[tuple[str, str, Callable[[], Any], Callable[[], Any], Callable[[], Any]]] = []
        noop = ops()[_NOOP_OP].reference
        cases.append(("cpu", "identity [4, 8]", lambda: dispatch(_NOOP_OP, x), lambda: noop(x), lambda: None))
        cases.append(
            ("cpu", "swiglu [4, 8]", lambda: dispatch("swiglu", g, v), lambda: ref_swiglu(g, v), lambda: None)
        )
        cuda = torch.cuda.is_available()
        if cuda:
            gc, vc = (t.cuda().to(torch.bfloat16) for t in (g, v))
            name, fn = select("swiglu", gc, vc)
            cases.append(
                (
                    "cuda",
                    f"swiglu [4, 8] bf16 -> {name}",
                    lambda: dispatch("swiglu", gc, vc),
                    lambda: fn(gc, vc),
                    torch.cuda.synchronize,
                )
            )
        records = []
        print(
            f"\ndispatch overhead (1 thread, {rounds} interleaved rounds x {calls} calls; goal < {DISPATCH_GOAL_US} us)"
        )
        for dev, label, ours, direct, sync in cases:
            m = overhead_us(ours, direct, rounds, calls, sync)
            records.append(
                _dispatch_record(
                    torch, tag if dev == "cpu" else "cuda", device_name, label, "auto", m, rounds, calls
                )
            )
            print(
                f"  {dev:4s} {label:28s} auto      {m['overhead_us']:6.2f} us [{m['overhead_us_q1']:.2f}, {m['overhead_us_q3']:.2f}]"
            )
        # the explicit path: a use_backend block stays open for the whole measurement
        with use_backend("reference"):
            m = overhead_us(
                lambda: dispatch("swiglu", g, v), lambda: ref_swiglu(g, v), rounds, calls, lambda: None
            )
        records.append(
            _dispatch_record(
                torch, tag, device_name, "swiglu [4, 8]", "use_backend(reference)", m, rounds, calls
            )
        )
        print(
            f"  cpu  {'swiglu [4, 8]':28s} explicit  {m['overhead_us']:6.2f} us [{m['overhead_us_q1']:.2f}, {m['overhead_us_q3']:.2f}]"
        )
        return records
    finally:
        torch.set_num_threads(threads)


def _dispatch_record(
    torch: Any,
    tag: str,
    device_name: str,
    label: str,
    variant: str,
    m: dict[str, float],
    rounds: int,
    calls: int,
) -> dict[str, Any]:
    return {
        "model": "dispatch",
        "dataset": "synthetic",
        "split": f"{tag}/{label}",
        "variant": variant,
        "baseline": "direct call",
        "seed": 0,
        **m,
        "goal_us": DISPATCH_GOAL_US,
        "meets_goal": m["overhead_us"] < DISPATCH_GOAL_US,
        "config": {
            "device": device_name,
            "threads": 1,
            "rounds": rounds,
            "calls_per_round": calls,
            "timing": "perf_counter per round; overhead = dispatch - direct per round, median and quartiles",
            "load_avg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
        },
    }


# ------------------------------------------------------------------------------------------------
# main
# ------------------------------------------------------------------------------------------------
def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    p.add_argument("--ops", nargs="*", default=None, help="ops to run (default: all)")
    p.add_argument(
        "--sizes", choices=["gpu", "cpu", "tiny"], default=None, help="default gpu on CUDA, else cpu"
    )
    p.add_argument("--dtype", choices=sorted(DTYPES), default=None, help="default bf16 on CUDA, fp32 on CPU")
    p.add_argument("--impls", nargs="*", choices=IMPLS, default=None, help="implementations (default: all)")
    p.add_argument("--no-compile", action="store_true", help="skip torch.compile (slow to build on a CPU)")
    p.add_argument("--interpret", action="store_true", help="run triton via TRITON_INTERPRET=1 on the CPU")
    p.add_argument("--warmup", type=int, default=2, help="CPU warm-up calls")
    p.add_argument("--iters", type=int, default=5, help="CPU calls per repeat")
    p.add_argument("--repeats", type=int, default=3, help="CPU repeats (the median is reported)")
    p.add_argument("--results-dir", default=None, help="ledger directory (default docs/results)")
    p.add_argument("--no-write", action="store_true", help="print only (default with --interpret)")
    p.add_argument(
        "--parts",
        nargs="*",
        choices=PARTS,
        default=None,
        help="what to run (default: all): ops (every op, every implementation), layer (GLA layer vs "
        "fla's layer, CUDA), dispatch (dispatch overhead per call)",
    )
    p.add_argument(
        "--dispatch-rounds", type=int, default=15, help="interleaved rounds of the dispatch timing"
    )
    p.add_argument("--dispatch-calls", type=int, default=20000, help="calls per round of the dispatch timing")
    return p.parse_args(argv)


def _device_tag(torch: Any, cuda: bool) -> tuple[str, str]:
    """(short tag for the split label, full device description)."""
    if cuda:
        name = torch.cuda.get_device_name()
        return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-"), name
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return "cpu", f"{cpu} (torch threads: {torch.get_num_threads()})"


def peak_hbm_gbps(device_name: str) -> float | None:
    """Spec-sheet peak HBM bandwidth of a CUDA device name, or ``None`` when unknown."""
    up = device_name.upper()
    for key, gbps in PEAK_HBM_GBPS:
        if key in up:
            return gbps
    return None


@dataclasses.dataclass
class Setup:
    """What every case of one run shares."""

    torch: Any
    cuda: bool
    device: Any
    dtype: Any
    impls: list[str]
    runner: Runner
    tag: str
    device_name: str
    peak: float | None
    why_triton: str | None
    interpret: bool
    timing: str
    notes: list[str] = dataclasses.field(default_factory=list)


def implementations(st: Setup, case: Case) -> tuple[dict[str, Callable[..., Any]], dict[str, bool]]:
    """The callables to time for ``case`` (eager first) and which of them approximate the op."""
    from gatelab.core.kernels import dispatch, reference, use_backend

    ref = reference(case.op)
    fns: dict[str, Callable[..., Any]] = {}
    loose: dict[str, bool] = {}
    for impl in st.impls:
        if impl == "eager":
            fns[impl] = ref
        elif impl == "compile":
            fns[impl] = st.torch.compile(ref)
        elif impl == "triton":
            if st.why_triton is None:

                def triton_fn(*a: Any, _op: str = case.op, **k: Any) -> Any:
                    with use_backend("triton"):
                        return dispatch(_op, *a, **k)

                fns[impl] = triton_fn
        elif ANCHOR_OF.get(case.op) == impl:
            fn, note = anchor_impl(case.op, st.cuda)
            if fn is None:
                st.notes.append(f"{case.op}: {impl} not run: {note}")
                continue
            fns[impl] = fn
            loose[impl] = bool(note)
            if note:
                st.notes.append(f"{case.op}: {impl} uses the {note} (ours: exact erf)")
    return fns, loose


def time_case(
    st: Setup,
    case: Case,
    fns: dict[str, Callable[..., Any]],
    in_args: list[Any],
    in_kwargs: dict[str, Any],
    dtype: Any,
) -> list[dict[str, Any]]:
    """Time every implementation of ``case``; one ledger record each."""
    torch = st.torch
    b = torch.finfo(dtype).bits // 8
    bytes_fwd, bytes_all = case.bytes_fwd(b), case.bytes_fwd(b) + case.bytes_bwd(b)
    flops_all = case.flops_fwd + case.flops_bwd
    dname = str(dtype).removeprefix("torch.")
    print(f"\n{case.op} [{case.label}] ({case.model}), {dname}")
    print(
        f"  {'impl':8s} {'fwd ms':>9s} {'f+b ms':>9s} {'fwd GB/s':>9s} {'f+b GB/s':>9s} {'TFLOP/s':>8s} {'speedup':>8s}"
    )
    timings: dict[str, tuple[float, float]] = {}
    records: list[dict[str, Any]] = []
    for name, fn in fns.items():
        la, lk = _leaves(torch, case, in_args, in_kwargs)
        cots = [torch.randn_like(o) for o in _diff_outputs(fn(*la, **lk))]
        params = [t for t in [*la, *lk.values()] if hasattr(t, "requires_grad") and t.requires_grad]

        def fwd(fn: Callable[..., Any] = fn, a: list[Any] = in_args, k: dict[str, Any] = in_kwargs) -> Any:
            with torch.no_grad():
                return fn(*a, **k)

        def fwd_bwd(
            fn: Callable[..., Any] = fn,
            la: list[Any] = la,
            lk: dict[str, Any] = lk,
            cots: list[Any] = cots,
            params: list[Any] = params,
        ) -> None:
            for t in params:
                t.grad = None
            torch.autograd.backward(_diff_outputs(fn(*la, **lk)), cots)

        f_ms, fb_ms = st.runner.ms(fwd), st.runner.ms(fwd_bwd)
        timings[name] = (f_ms, fb_ms)
        e_f, e_fb = timings.get("eager", (f_ms, fb_ms))
        rec: dict[str, Any] = {
            "model": case.op,
            "dataset": "synthetic",
            "split": f"{st.tag}/{case.label}/{dname}",
            "variant": name + (" (interpreted)" if name == "triton" and st.interpret else ""),
            "baseline": "eager",
            "seed": 0,
            "fwd_ms": f_ms,
            "fwd_bwd_ms": fb_ms,
            "fwd_gbps": bytes_fwd / f_ms / 1e6,
            "fwd_bwd_gbps": bytes_all / fb_ms / 1e6,
            "speedup_fwd": e_f / f_ms,
            "speedup": e_fb / fb_ms,
        }
        if st.peak:
            rec["pct_hbm_fwd"] = 100 * rec["fwd_gbps"] / st.peak
            rec["pct_hbm_fwd_bwd"] = 100 * rec["fwd_bwd_gbps"] / st.peak
        if case.flops_fwd:
            rec["fwd_tflops"] = case.flops_fwd / f_ms / 1e9
            rec["fwd_bwd_tflops"] = flops_all / fb_ms / 1e9
        rec["config"] = {
            "op": case.op,
            "size": case.label,
            "source": case.model,
            "dtype": str(dtype),
            "device": st.device_name,
            "peak_hbm_gbps": st.peak,
            "bytes_fwd": bytes_fwd,
            "bytes_fwd_bwd": bytes_all,
            "flops_fwd": case.flops_fwd,
            "flops_fwd_bwd": flops_all,
            "timing": st.timing,
            "torch": torch.__version__,
        }
        records.append(rec)
        tf = rec.get("fwd_bwd_tflops")
        tf_s = f"{tf:8.2f}" if tf is not None else f"{'-':>8s}"
        print(
            f"  {name:8s} {f_ms:9.4f} {fb_ms:9.4f} {rec['fwd_gbps']:9.2f} {rec['fwd_bwd_gbps']:9.2f} "
            f"{tf_s} {rec['speedup']:8.2f}"
        )
    # the Triton row against torch.compile and the external anchor (timed after it)
    for rec in records:
        if rec["variant"].startswith("triton"):
            fb = rec["fwd_bwd_ms"]
            if "compile" in timings:
                rec["speedup_vs_compile"] = timings["compile"][1] / fb
            anchor = ANCHOR_OF.get(case.op)
            if anchor in timings:
                rec["speedup_vs_anchor"] = timings[anchor][1] / fb
                rec["config"]["anchor"] = anchor
    return records


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    if args.interpret:
        os.environ["TRITON_INTERPRET"] = "1"  # before anything imports triton

    import torch

    from gatelab.core.harness import ledger
    from gatelab.core.kernels import reference
    from gatelab.core.kernels._common import triton_available

    cuda = torch.cuda.is_available() and not args.interpret
    sizes = args.sizes or ("gpu" if cuda else ("tiny" if args.interpret else "cpu"))
    dtype_name = args.dtype or ("bf16" if cuda else "fp32")
    impls = [i for i in (args.impls or IMPLS) if not (args.no_compile and i == "compile")]
    tag, device_name = _device_tag(torch, cuda)
    why_triton = triton_available()
    if why_triton is None and not cuda and not args.interpret:
        why_triton = "no CUDA device (Triton rows need a GPU; --interpret runs them in the interpreter)"
    st = Setup(
        torch=torch,
        cuda=cuda,
        device=torch.device("cuda" if cuda else "cpu"),
        dtype=getattr(torch, DTYPES[dtype_name]),
        impls=impls,
        runner=Runner(torch, cuda, args.warmup, args.iters, args.repeats),
        tag=tag,
        device_name=device_name,
        peak=peak_hbm_gbps(device_name) if cuda else None,
        why_triton=why_triton,
        interpret=args.interpret,
        timing="triton.testing.do_bench median (L2 flushed)"
        if cuda
        else f"perf_counter, median of {args.repeats} x {args.iters} calls after {args.warmup} warm-up",
    )
    write = not args.no_write and not (args.interpret and args.results_dir is None)
    print(f"torch {torch.__version__}, device {st.device} ({device_name}), sizes {sizes}, dtype {dtype_name}")
    if args.interpret:
        print("NOTE: triton runs in the interpreter: its times are NOT a speed measurement.")

    all_cases = cases(sizes)
    unknown = set(args.ops or ()) - {c.op for c in all_cases}
    if unknown:
        print(f"unknown ops {sorted(unknown)}; known: {sorted({c.op for c in all_cases})}", file=sys.stderr)
        return 2
    parts = set(args.parts if args.parts is not None else PARTS)
    records: list[dict[str, Any]] = []
    for case in [c for c in all_cases if "ops" in parts and (args.ops is None or c.op in args.ops)]:
        torch.manual_seed(0)
        dtype = getattr(torch, case.dtype) if case.dtype else st.dtype
        in_args, in_kwargs = case.make(torch, dtype, st.device)
        fns, loose = implementations(st, case)
        for name, fn in fns.items():  # correctness first: every implementation against eager
            if name != "eager":
                why = check_against_eager(
                    torch,
                    case,
                    name,
                    fn,
                    reference(case.op),
                    in_args,
                    in_kwargs,
                    dtype,
                    loose.get(name, False),
                )
                if why is not None:
                    print(f"WRONG: {why}", file=sys.stderr)
                    return 1
        records += time_case(st, case, fns, in_args, in_kwargs, dtype)

    if "layer" in parts:
        if not cuda:
            print("\ngla_layer: pending (our GLA layer vs fla's layer runs on a CUDA machine only)")
        elif not _installed("fla"):
            st.notes.append("gla_layer: flash-linear-attention not installed (uv sync --group anchors)")
        else:
            try:
                records += gla_layer_records(st)
            except RuntimeError as e:
                print(f"WRONG: {e}", file=sys.stderr)
                return 1
    dispatch_recs: list[dict[str, Any]] = []
    if "dispatch" in parts:
        dispatch_recs = dispatch_records(
            torch, "cpu", _device_tag(torch, False)[1], args.dispatch_rounds, args.dispatch_calls
        )

    if why_triton is not None and "ops" in parts:
        st.notes.append(f"triton not run: {why_triton}")
    notes = list(dict.fromkeys(st.notes))
    for n in notes:
        print(f"note: {n}")
    print("\ngoals (issue 17 point 5):")
    for goal, status in goal_checks(records + dispatch_recs):
        print(f"  {status:>8s}  {goal}")
    if not cuda:
        print("\nGPU numbers pending: run `python benchmarks/kernels.py` on a CUDA machine (H100/H200).")
    if not write:
        print("(not written: --no-write, or --interpret without --results-dir)")
        return 0
    if notes:
        for rec in records:
            rec["note"] = "; ".join(notes)
    folder = ledger.resolve_results_dir(args.results_dir)
    if records:
        written = ledger.append_records(TABLE, records, args.results_dir, render=False)
        render(folder, ledger)
        print(f"\nwrote {len(written)} records to {folder / (TABLE + '.jsonl')} (+ .md, .csv)")
    if dispatch_recs:
        written = ledger.append_records(DISPATCH_TABLE, dispatch_recs, args.results_dir, render=False)
        render_dispatch(folder, ledger)
        print(f"wrote {len(written)} records to {folder / (DISPATCH_TABLE + '.jsonl')} (+ .md)")
    return 0


# the goal checks of issue 17 point 5: (description, ops/rows it reads)
ELEMENTWISE_OPS = (
    "swiglu",
    "geglu",
    "swiglu_packed",
    "geglu_packed",
    "sigmoid_gate",
    "feature_gate",
    "gated_cross",
)
HBM_GOAL_PCT = 85.0


def goal_checks(records: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
    """``(goal, status)`` per goal of issue 17 point 5 from benchmark records (this run's or the
    ledger's): status ``"met"``, ``"MISSED"`` (with the measured value) or ``"pending"`` (no GPU
    row yet). GPU goals read the Triton rows of CUDA splits (``split`` not starting with ``cpu/``)."""

    def gpu_triton(op: str) -> list[dict[str, Any]]:
        return [
            r
            for r in records
            if r.get("model") == op
            and str(r.get("variant", "")).startswith("triton")
            and not str(r.get("split", "")).startswith("cpu/")
            and "(interpreted)" not in str(r.get("variant", ""))
        ]

    def status(values: list[float], ok: Callable[[float], bool], fmt: str) -> str:
        if not values:
            return "pending"
        worst = min(values)
        return "met" if ok(worst) else f"MISSED ({fmt.format(worst)})"

    out = []
    pct = [r["pct_hbm_fwd_bwd"] for op in ELEMENTWISE_OPS for r in gpu_triton(op) if r.get("pct_hbm_fwd_bwd")]
    out.append(
        (
            f"element-wise gates ({', '.join(ELEMENTWISE_OPS)}) >= {HBM_GOAL_PCT:g}% of HBM peak (fwd+bwd, worst row)",
            status(pct, lambda x: x >= HBM_GOAL_PCT, "{:.1f}%"),
        )
    )
    for op, goal, what in (
        ("swiglu", 1.0, "SwiGLU vs Liger-Kernel"),
        ("gla_chunk", 0.8, "chunked GLA vs fla chunk_gla"),
        ("gla_layer", 0.8, "GLA layer vs fla's layer"),
    ):
        vals = [
            r["speedup_vs_anchor"]
            for r in gpu_triton(op)
            if r.get("speedup_vs_anchor") is not None and "bfloat16" in str(r.get("split", ""))
        ]
        out.append(
            (
                f"{what} >= {goal:g}x (bf16, fwd+bwd, worst row)",
                status(vals, lambda x, g=goal: x >= g, "{:.2f}x"),
            )
        )
    disp = [r["overhead_us"] for r in records if r.get("model") == "dispatch" and r.get("variant") == "auto"]
    worst = max(disp) if disp else None
    out.append(
        (
            f"dispatch overhead < {DISPATCH_GOAL_US:g} us per call (auto, worst row)",
            "pending" if worst is None else "met" if worst < DISPATCH_GOAL_US else f"MISSED ({worst:.2f} us)",
        )
    )
    return out


def render_dispatch(folder: Path, ledger: Any) -> None:
    """Re-render ``kernels-dispatch-speed.md`` from its ledger."""
    ledger.render_markdown(
        DISPATCH_TABLE,
        folder,
        title="Kernel dispatch overhead",
        description="\n".join(
            [
                "Microseconds of Python per `gatelab.core.kernels.dispatch(op, ...)` call on top of calling what it",
                "selects directly, on tiny tensors (one thread): `overhead_us` is the median over interleaved rounds of",
                "(dispatch - direct) per call, with quartiles; `dispatch_us` / `direct_us` the per-call medians.",
                f"Goal: < {DISPATCH_GOAL_US:g} us per call (`auto`). The `use_backend(reference)` row is the explicit",
                "path (a block open around the calls). CUDA rows (auto -> Triton, verifier included) need a GPU.",
                "Absolute times on a shared machine are noisy; the rounds interleave both callables to cancel drift,",
                "`overhead_us_min` is the least disturbed round, and `config` records the load average and CPUs.",
            ]
        ),
        metrics=[
            "overhead_us",
            "overhead_us_q1",
            "overhead_us_q3",
            "overhead_us_min",
            "dispatch_us",
            "direct_us",
        ],
    )


def render(folder: Path, ledger: Any) -> None:
    """Re-render ``kernels.md`` and ``kernels.csv`` from every record of the ledger."""
    records = ledger.read_records(TABLE, folder)
    devices = sorted({json.loads(r["config"]).get("device", "?") for r in records if r.get("config")})
    has_gpu = any(not str(r["split"]).startswith("cpu/") for r in records)
    lines = [
        "Gate kernels: milliseconds per call (forward, forward+backward), effective bandwidth over each op's",
        "minimal traffic (GB/s; % of the GPU's spec-sheet HBM peak), TFLOP/s for the matmul-bearing ops, and",
        "speed ratios (`speedup`: eager / this, forward+backward; `speedup_vs_compile`, `speedup_vs_anchor`:",
        "torch.compile or Liger-Kernel / flash-linear-attention / ours, on the Triton rows). Split = device/size/dtype.",
        "",
        f"Devices measured: {', '.join(devices) or 'none'}.",
    ]
    if not has_gpu:
        lines += [
            "",
            "**GPU numbers pending**: no GPU was available. These rows time the PyTorch references (eager and",
            "torch.compile) on the CPU named above, at smaller sizes than the GPU cases; the Triton kernels,",
            "Liger-Kernel and flash-linear-attention need CUDA. Run `python benchmarks/kernels.py` on an",
            "H100/H200 to fill in the Triton rows and check the goals below.",
        ]
    try:
        disp = ledger.read_records(DISPATCH_TABLE, folder)
    except Exception:  # no dispatch ledger yet
        disp = []
    lines += ["", "Goals (issue 17 point 5; worst row of the ledger; `pending` = no GPU row yet):", ""]
    lines += [f"* {status}: {goal}" for goal, status in goal_checks(records + disp)]
    metrics = [
        "fwd_ms",
        "fwd_bwd_ms",
        "fwd_gbps",
        "fwd_bwd_gbps",
        "pct_hbm_fwd_bwd",
        "fwd_bwd_tflops",
        "speedup",
        "speedup_vs_compile",
        "speedup_vs_anchor",
    ]
    present = [m for m in metrics if any(r.get(m) is not None for r in records)]
    ledger.render_markdown(
        TABLE, folder, title="Gate kernel benchmarks", description="\n".join(lines), metrics=present
    )
    with open(folder / f"{TABLE}.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in records:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in CSV_COLUMNS})


if __name__ == "__main__":
    raise SystemExit(main())
