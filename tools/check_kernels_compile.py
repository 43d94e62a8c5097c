"""Compile every gatelab Triton kernel for a CUDA target without a GPU (ptx and cubin).

The interpreter tests (``TRITON_INTERPRET=1``) check what the kernels compute, but not that they
compile: the interpreter runs the Python of a ``@triton.jit`` function directly and accepts code
the compiler would reject (type mismatches across branches, loop-carried shape changes, bad
``tl.dot`` operands). This script runs each op's host wrappers on small CPU tensors with the
*compiled* kernel objects and, instead of launching, compiles every launch for the target GPU
architecture with the exact argument types and constexprs of that launch (Triton needs no GPU
for that; ptxas ships with the triton wheel). The kernels are never executed.

It covers the CUDA configuration: ``tl.dot`` operands in bfloat16 (no interpreter upcast), the
CUDA tile sizes and every autotuning candidate (warps, stages, rows per program) a launch would
benchmark. For every variant it also runs ``ptxas -v`` on the PTX and prints
the registers per thread and any spill stores (spills cost bandwidth in a memory-bound kernel).
Spills are counted for each kernel's default (first) autotuning candidate; the other candidates'
spills are listed apart (the autotuner measures them; a spilling candidate is just slower).
Run it in a process without ``TRITON_INTERPRET``::

    python tools/check_kernels_compile.py            # sm_90 (H100/H200)
    python tools/check_kernels_compile.py --arch 80  # sm_80 (A100)

Exit status 0 when every launch compiled; the list of failures otherwise.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

_DT = {
    "torch.float32": "fp32",
    "torch.float16": "fp16",
    "torch.bfloat16": "bf16",
    "torch.int64": "i64",
    "torch.int32": "i32",
    "torch.bool": "i1",
}


def _signature(
    fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(signature, constexprs, compile options) of one launch ``fn[grid](*args, **kwargs)``."""
    import torch

    options = {k: kwargs.pop(k) for k in ("num_warps", "num_stages") if k in kwargs}
    bound = dict(zip(fn.arg_names, args))
    bound.update(kwargs)

    def ty(name: str, v: Any) -> Any:
        if isinstance(v, torch.Tensor):
            return "*" + _DT[str(v.dtype)]
        if isinstance(v, bool):
            return "i1"
        if isinstance(v, int):
            return "i32" if -(2**31) <= v < 2**31 else "i64"
        if isinstance(v, float):
            return "fp32"
        if isinstance(v, tuple):  # e.g. an operand's strides: a tuple of the element types
            return tuple(ty(name, x) for x in v)
        raise TypeError(f"{fn.__name__}: argument {name} of type {type(v).__name__}")

    sig: dict[str, Any] = {}
    consts: dict[str, Any] = {}
    for p in fn.params:
        v = bound[p.name]
        if p.is_constexpr:
            sig[p.name] = "constexpr"
            consts[p.name] = v
        else:
            sig[p.name] = ty(p.name, v)
    return sig, consts, options


def _ptxas_info(ptx: str, arch: int) -> tuple[int | None, int | None]:
    """(registers per thread, spill-store bytes) that ptxas reports for ``ptx``; ``None`` if unknown."""
    import triton

    ptxas = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "ptxas"
    if not ptxas.is_file():
        return None, None
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "k.ptx"
        src.write_text(ptx)
        out = subprocess.run(
            [
                str(ptxas),
                "-v",
                f"--gpu-name=sm_{arch}a" if arch >= 90 else f"--gpu-name=sm_{arch}",
                str(src),
                "-o",
                str(Path(tmp) / "k.cubin"),
            ],
            capture_output=True,
            text=True,
            check=False,
        ).stderr
    regs = re.search(r"Used (\d+) registers", out)
    spills = re.search(r"(\d+) bytes spill stores", out)
    return (int(regs.group(1)) if regs else None), (int(spills.group(1)) if spills else None)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    p.add_argument("--arch", type=int, default=90, help="CUDA compute capability x10 (90: H100/H200)")
    p.add_argument(
        "--candidates",
        choices=("all", "default"),
        default="all",
        help="compile every autotuning candidate a launch would benchmark (all) or its first one (default)",
    )
    args = p.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET", "").strip().lower() in ("1", "true", "on", "yes", "y"):
        print("unset TRITON_INTERPRET: this checks the compiled kernels", file=sys.stderr)
        return 2

    import torch
    import torch.nn.functional as F
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from triton.runtime.autotuner import Autotuner
    from triton.runtime.jit import JITFunction

    from gatelab.core.kernels import (
        feature_gate_triton,
        gate_add_norm_triton,
        gla_triton,
        glu_triton,
        router_triton,
        sigmoid_gate_triton,
        tokenwise_triton,
    )

    target = GPUTarget("cuda", args.arch, 32)
    seen: set[tuple[str, str]] = set()
    failures: list[str] = []
    spilled: list[str] = []
    spilled_candidates: list[str] = []  # autotuning candidates other than the default
    count = [0]

    def compile_launch(
        fn: JITFunction, launch_args: tuple[Any, ...], kwargs: dict[str, Any], default: bool = True
    ) -> None:
        sig, consts, options = _signature(fn, launch_args, dict(kwargs))
        key = (fn.__name__, repr(sorted(sig.items())) + repr(sorted(consts.items())) + repr(options))
        if key in seen:
            return
        seen.add(key)
        t0 = time.perf_counter()
        try:
            ck = triton.compile(
                ASTSource(fn=fn, signature=sig, constexprs=consts), target=target, options=options
            )
        except Exception as e:  # report every failing kernel, not only the first
            failures.append(f"{fn.__name__} {consts}: {type(e).__name__}: {str(e)[:2000]}")
            print(f"  FAIL {fn.__name__} {consts}")
            return
        count[0] += 1
        secs = time.perf_counter() - t0
        regs, spill = _ptxas_info(ck.asm["ptx"], args.arch)
        if spill:
            msg = f"{fn.__name__} {consts} {options}: {spill} bytes spill stores"
            (spilled if default else spilled_candidates).append(msg)
        print(
            f"  ok   {fn.__name__:28s} {secs:5.1f}s  regs {regs} spill {spill}  warps {ck.metadata.num_warps}"
            f"  stages {ck.metadata.num_stages}  {consts}"
        )

    def getitem(self: JITFunction, grid: Any) -> Callable[..., None]:
        return lambda *a, **k: compile_launch(self, a, k)

    def tuned_getitem(self: Autotuner, grid: Any) -> Callable[..., None]:
        # every autotuning candidate this launch would benchmark (after the kernel's pruning)
        def launch(*a: Any, **k: Any) -> None:
            cands = self.configs
            if self.early_config_prune is not None:
                cands = self.early_config_prune(self.configs, dict(zip(self.arg_names, a)), **k)
            first = self.all_configs[0]
            for cfg in (
                cands if args.candidates == "all" else [c for c in cands if c is first][:1] or cands[:1]
            ):
                compile_launch(self.fn, a, {**k, **cfg.all_kwargs()}, default=cfg is first)

        return launch

    JITFunction.__getitem__ = getitem  # compile instead of launching (this process only)
    Autotuner.__getitem__ = tuned_getitem
    # the CUDA configuration on CPU tensors: native bf16 dots, CUDA tiles and warps
    gla_triton.dot_upcast = lambda dtype, device: False
    tokenwise_triton.dot_upcast = lambda dtype, device: False
    real_blocks = tokenwise_triton._matmul_blocks
    tokenwise_triton._matmul_blocks = lambda dtype, on_cuda: real_blocks(dtype, True)
    gla_triton._Cfg.cuda = property(lambda self: True, lambda self, v: None)

    torch.manual_seed(0)
    for dt in (torch.bfloat16, torch.float16, torch.float32):
        print(f"{dt} (sm_{args.arch})")
        x = torch.randn(64, 2 * 300).to(dt)
        v, g = x.chunk(2, dim=-1)
        for act in ("swiglu", "geglu"):
            glu_triton.glu_forward(g, v, act)
            glu_triton.glu_backward(v, g, v, act)
            glu_triton.glu_packed_backward(v, x, act)  # one [64, 600] gradient buffer
        o = torch.randn(2, 4, 8, 64).to(dt).transpose(1, 2)
        for gd in (1, 64):
            gl = torch.randn(2, 8, 4, 64 + gd).to(dt)[..., 64:]
            sigmoid_gate_triton.sigmoid_gate_forward(o, gl)
            sigmoid_gate_triton.sigmoid_gate_backward(o, o, gl)
        f = torch.randn(32, 624).to(dt)
        for z, m in ((f, None), (f[0], f[0])):
            feature_gate_triton.feature_gate_forward(f, z, 2.0, m)
            feature_gate_triton.feature_gate_backward(f, f, z, 2.0, m)
        for b in (f[0], None):
            feature_gate_triton.gated_cross_forward(f, f, f, f, b)
            feature_gate_triton.gated_cross_backward(f, f, f, f, b)
        h, s, w = torch.randn(48, 320).to(dt), torch.randn(48, 160).to(dt), torch.randn(160).to(dt)
        _, mean, rstd = gate_add_norm_triton.gate_add_norm_forward(h, s, w, w, 1e-5)
        gate_add_norm_triton.gate_add_norm_backward(s, h, s, w, mean, rstd)
        a = torch.randn(40, 256).to(dt)
        for e in (1, 256):
            wt = torch.randn(e, 512).to(dt)
            for c in (wt[:, 0], None):
                _, logits = tokenwise_triton.tokenwise_forward(a, a, wt, c)
                tokenwise_triton.tokenwise_backward(a, a, a, wt, logits, c is not None)
        q = torch.randn(1, 130, 2, 128).to(dt)
        vv = torch.randn(1, 130, 2, 256).to(dt)
        gk = F.logsigmoid(torch.randn(1, 130, 2, 128)).to(dt)
        for h0 in (torch.randn(1, 2, 128, 256), None):
            _, ht, A = gla_triton.gla_forward(q, q, vv, gk, 0.1, h0, True)
            gla_triton.gla_backward(q, q, vv, gk, 0.1, h0, A, vv, ht)
        # the layer's call: q, k, v in the input dtype, float32 log gates
        _, ht, A = gla_triton.gla_forward(q, q, vv, gk.float(), 0.1, None, True)
        gla_triton.gla_backward(q, q, vv, gk.float(), 0.1, None, A, vv, ht)
        lg = torch.randn(100, 64).to(dt)
        for smooth in (True, False):
            c_ = lg if smooth else None
            router_triton.router_forward(lg, 2, c_, c_)
            router_triton.router_backward(
                lg, 2, c_, c_, lg, lg[:, :2].contiguous(), lg, lg[0].float(), lg[0].float()
            )
    print(f"\n{count[0]} kernel variants compiled for sm_{args.arch}; {len(failures)} failed")
    print(f"{len(spilled)} variants spill registers" + "".join(f"\n  {m}" for m in spilled))
    print(
        f"{len(spilled_candidates)} other autotuning candidates spill registers (benchmarked by the "
        "autotuner like any other; a slow candidate is simply not picked)"
        + "".join(f"\n  {m}" for m in spilled_candidates)
    )
    for msg in failures:
        print(f"\nFAILED: {msg}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
