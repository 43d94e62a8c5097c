"""Benchmark the fused SwiGLU/GEGLU op: Triton kernel vs eager PyTorch vs torch.compile.

Times ``act(gate) * value`` forward and forward+backward on the two halves of a fused ``[N, 2H]``
projection (the layout ``GluMlp`` produces), for each implementation:

* ``eager``: the PyTorch reference (anchor; every other row is reported as a ratio to it)
* ``compile``: ``torch.compile`` (Inductor) of the reference
* ``triton``: the Triton kernels through ``use_backend("triton")`` (backward recomputes the activation)

On CUDA it also reports the peak extra memory of forward+backward (the recompute saves one
``[N, H]`` buffer per call compared with eager). Without CUDA it times the reference on the CPU
and says that the GPU numbers are pending; ``--interpret`` runs the Triton path through
``TRITON_INTERPRET=1`` on tiny sizes to check the script end to end (not a speed measurement).

Usage::

    python benchmarks/glu_kernel.py                      # CUDA if present, else CPU reference
    python benchmarks/glu_kernel.py --rows 8192 --hidden 11008 --dtype bf16 --op geglu
    python benchmarks/glu_kernel.py --interpret --rows 4 --hidden 33   # CPU smoke run
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable

DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--op", choices=["swiglu", "geglu", "both"], default="both")
    p.add_argument("--rows", type=int, default=None, help="N (default 8192 on CUDA, 256 on CPU)")
    p.add_argument("--hidden", type=int, default=None, help="H (default 4096 on CUDA, 512 on CPU)")
    p.add_argument("--dtype", choices=sorted(DTYPES), default=None, help="default bf16 on CUDA, fp32 on CPU")
    p.add_argument("--iters", type=int, default=None, help="timed iterations (default 100 CUDA, 10 CPU)")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument(
        "--compile", action="store_true", help="also time torch.compile on the CPU (slow to build)"
    )
    p.add_argument("--interpret", action="store_true", help="run triton via TRITON_INTERPRET=1 on the CPU")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.interpret:
        os.environ["TRITON_INTERPRET"] = "1"  # before anything imports triton

    import torch

    from gatelab.core.kernels import dispatch, reference, use_backend
    from gatelab.core.kernels.glu import triton_available, verify_triton_inputs

    cuda = torch.cuda.is_available() and not args.interpret
    device = torch.device("cuda" if cuda else "cpu")
    rows = args.rows or (8192 if cuda else 256)
    hidden = args.hidden or (4096 if cuda else 512)
    dtype = getattr(torch, DTYPES[args.dtype or ("bf16" if cuda else "fp32")])
    iters = args.iters or (100 if cuda else 10)
    ops = ["swiglu", "geglu"] if args.op == "both" else [args.op]

    print(
        f"torch {torch.__version__}, device {device}" + (f" ({torch.cuda.get_device_name()})" if cuda else "")
    )
    print(f"N={rows} H={hidden} dtype={dtype} iters={iters}\n")

    x = torch.randn(rows, 2 * hidden, device=device, dtype=dtype)
    dout = torch.randn(rows, hidden, device=device, dtype=dtype)

    def timed(fn: Callable[[], object]) -> float:
        """Mean milliseconds per call after warm-up."""
        for _ in range(args.warmup):
            fn()
        if cuda:
            torch.cuda.synchronize()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(iters):
                fn()
            end.record()
            torch.cuda.synchronize()
            return start.elapsed_time(end) / iters
        t0 = time.perf_counter()
        for _ in range(iters):
            fn()
        return (time.perf_counter() - t0) * 1e3 / iters

    def peak_mb(fn: Callable[[], object]) -> float | None:
        if not cuda:
            return None
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20

    why_triton = triton_available() or verify_triton_inputs(*x.chunk(2, dim=-1))
    if not cuda and not args.interpret:
        why_triton = why_triton or "no CUDA device"
    if args.interpret and why_triton is None:
        print("NOTE: triton runs in the interpreter: its times are NOT a speed measurement.\n")

    for op in ops:
        ref = reference(op)
        impls: dict[str, Callable] = {"eager": ref}
        if cuda or args.compile:
            impls["compile"] = torch.compile(ref)
        if why_triton is None:

            def triton_fn(g, v, _op=op):
                with use_backend("triton"):
                    return dispatch(_op, g, v)

            impls["triton"] = triton_fn

        # correctness first: every implementation against the eager reference (fp32 comparison)
        value, gate = x.chunk(2, dim=-1)
        want = ref(gate, value).float()
        for name, fn in impls.items():
            err = (fn(gate, value).float() - want).abs().max().item()
            scale = want.abs().max().item() or 1.0
            if err > 2e-2 * scale:
                print(
                    f"{op}/{name}: max abs error {err:.3g} vs eager (scale {scale:.3g}): WRONG",
                    file=sys.stderr,
                )
                return 1

        print(f"{op}: ms per call (ratio to eager; lower is better)")
        print(
            f"  {'impl':8s} {'fwd ms':>9s} {'ratio':>6s} {'fwd+bwd ms':>11s} {'ratio':>6s} {'peak MiB':>9s}"
        )
        anchor: tuple[float, float] | None = None
        for name, fn in impls.items():
            xg = x.detach().clone().requires_grad_(True)

            def fwd(fn=fn):
                with torch.no_grad():
                    v, g = x.chunk(2, dim=-1)
                    return fn(g, v)

            def fwd_bwd(fn=fn, xg=xg):
                xg.grad = None
                v, g = xg.chunk(2, dim=-1)
                fn(g, v).backward(dout)

            f_ms, fb_ms = timed(fwd), timed(fwd_bwd)
            mem = peak_mb(fwd_bwd)
            anchor = anchor or (f_ms, fb_ms)
            mem_s = f"{mem:9.1f}" if mem is not None else f"{'-':>9s}"
            print(
                f"  {name:8s} {f_ms:9.4f} {f_ms / anchor[0]:6.2f} {fb_ms:11.4f} {fb_ms / anchor[1]:6.2f} {mem_s}"
            )
        print()

    if not cuda:
        print(f"GPU numbers pending: {why_triton or 'no CUDA device in this run'}.")
        print("Run this script on a CUDA machine for the Triton vs eager vs torch.compile comparison.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
