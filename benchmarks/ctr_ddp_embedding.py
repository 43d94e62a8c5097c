"""How large an embedding table trains with DDP replicas: peak memory per rank vs table rows
(issue 18 point 7, the measured limits of the DDP path in ``recsys/README.md``).

Under DDP every rank holds the whole model, so the largest table is bounded by one rank's memory:
per table row of width ``d``, the float32 parameters (``4d`` bytes), their dense gradient (``4d``;
``nn.Embedding`` is dense by default), Adam's two moments (``8d``) and DDP's gradient bucket copy
(``4d``) -- ``20d`` bytes -- and every step all-reduces the whole dense table gradient.

For each ``--rows`` value, ``--world`` fresh processes (gloo, this machine's CPU: the same
``torch.nn.parallel.DistributedDataParallel`` wrapper Lightning's ``ddp`` strategy uses) build a
:class:`gatelab.recsys.models.DNN` whose spec has one categorical field of ``rows`` rows (width
``--embedding-dim``) plus one small field, wrap it in DDP and take ``--steps`` Adam steps of
``--batch-size`` random ids per rank. Each rank reports its peak RSS (``VmHWM``) and its RSS
before the model was built; the row records the worst rank: ``peak_rss_mb``, ``model_mb``
(peak - baseline), ``bytes_per_row`` (model_mb / rows), ``step_s`` (median step time).

``--budget-mb B`` then fits ``model = a + b * rows`` to the measured sizes, predicts the largest
table whose peak stays under ``B`` MB per rank, trains it the same way and records whether it
trained and its measured peak (``model`` ``ddp-limit``).

Rows go to ``docs/results/ctr-ddp-embedding.jsonl`` + ``.md`` unless ``--dry-run``. Usage::

    nice -n 10 env OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ctr_ddp_embedding.py \\
        --rows 250000 500000 1000000 2000000 --budget-mb 1024
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import socket
import statistics
import subprocess
import sys
import time


def _hwm_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def _rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def worker(args: argparse.Namespace) -> None:
    """One DDP rank: build, wrap, train ``steps`` steps; print a JSON line."""
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from gatelab.core.registry import create_model

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{args.port}", rank=args.rank, world_size=args.world
    )
    base = _rss_kb()
    spec = {
        "fields": [
            {"name": "id", "type": "categorical", "vocab_size": args.rows, "num_tokens": args.rows - 2},
            {"name": "ctx", "type": "categorical", "vocab_size": 10, "num_tokens": 8},
        ]
    }
    torch.manual_seed(0)
    model = create_model("dnn", feature_spec=spec, embedding_dim=args.embedding_dim, hidden_dims=(64,))
    ddp = DistributedDataParallel(model)
    opt = torch.optim.Adam(ddp.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(args.rank)
    times = []
    for _ in range(args.steps):
        x = torch.stack(
            [
                torch.randint(1, args.rows, (args.batch_size,), generator=g),
                torch.randint(1, 10, (args.batch_size,), generator=g),
            ],
            dim=1,
        )
        y = torch.randint(0, 2, (args.batch_size,), generator=g).float()
        t0 = time.perf_counter()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(ddp(categorical=x), y)
        opt.zero_grad(set_to_none=False)
        loss.backward()  # all-reduces the dense table gradient
        opt.step()
        times.append(time.perf_counter() - t0)
    ok = bool(torch.isfinite(loss))
    dist.barrier()
    print(json.dumps({"rank": args.rank, "base_kb": base, "peak_kb": _hwm_kb(), "step_s": times, "ok": ok}))
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_size(rows: int, args: argparse.Namespace) -> dict:
    port = _free_port()
    cmd = [
        sys.executable, __file__, "--worker", "--port", str(port), "--world", str(args.world),
        "--rows-one", str(rows), "--embedding-dim", str(args.embedding_dim),
        "--batch-size", str(args.batch_size), "--steps", str(args.steps),
    ]  # fmt: skip
    procs = [
        subprocess.Popen([*cmd, "--rank", str(r)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for r in range(args.world)
    ]
    outs = [p.communicate() for p in procs]
    res = []
    for p, (out, err) in zip(procs, outs):
        if p.returncode != 0:
            return {"ok": False, "error": (err or out).strip().splitlines()[-1:]}
        res.append(json.loads(out.strip().splitlines()[-1]))
    worst = max(res, key=lambda r: r["peak_kb"])
    steps = [t for r in res for t in r["step_s"][1:]] or [t for r in res for t in r["step_s"]]
    model_mb = (worst["peak_kb"] - worst["base_kb"]) / 1024
    return {
        "ok": all(r["ok"] for r in res),
        "peak_rss_mb": round(worst["peak_kb"] / 1024, 1),
        "baseline_rss_mb": round(worst["base_kb"] / 1024, 1),
        "model_mb": round(model_mb, 1),
        "bytes_per_row": round(model_mb * 2**20 / rows, 1),
        "step_s": round(statistics.median(steps), 3),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, nargs="+", default=[250_000, 500_000, 1_000_000, 2_000_000])
    p.add_argument("--embedding-dim", type=int, default=16)
    p.add_argument("--world", type=int, default=2, help="DDP ranks (processes)")
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--budget-mb", type=float, default=None, help="per-rank memory budget to find the limit for")
    p.add_argument("--results-dir", default=None)
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--rank", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--rows-one", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        args.rows = args.rows_one
        worker(args)
        return 0
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    settings = {"embedding_dim": args.embedding_dim, "world": args.world, "batch_size": args.batch_size,
                "steps": args.steps, "backend": "gloo (CPU)", "optimizer": "adam", "model": "dnn (hidden 64)"}  # fmt: skip
    rows_out = []
    measured = []
    for n in args.rows:
        r = run_size(n, args)
        print(f"rows {n:>10,}: {r}")
        if r.get("ok"):
            measured.append((n, r["model_mb"]))
        rows_out.append({"model": "ddp-replica", "dataset": "synthetic-ids", "split": f"{n}-rows", "seed": 0,
                         "rows": n, **{k: v for k, v in r.items() if k != "error"},
                         "trained": int(bool(r.get("ok"))), "config": json.dumps(settings, sort_keys=True)})  # fmt: skip
    if args.budget_mb is not None and len(measured) >= 2:
        xs, ys = zip(*measured)
        mx, my = statistics.fmean(xs), statistics.fmean(ys)
        slope = sum((x - mx) * (y - my) for x, y in measured) / sum((x - mx) ** 2 for x in xs)
        intercept = my - slope * mx
        base = max(r["baseline_rss_mb"] for r in rows_out if r.get("trained"))
        limit = int((args.budget_mb - base - intercept) / slope)
        r = run_size(limit, args)
        print(f"limit at {args.budget_mb} MB/rank: {limit:,} rows -> {r}")
        rows_out.append({"model": "ddp-limit", "dataset": "synthetic-ids", "split": f"budget-{int(args.budget_mb)}mb",
                         "seed": 0, "rows": limit, **{k: v for k, v in r.items() if k != "error"},
                         "trained": int(bool(r.get("ok"))), "fit_bytes_per_row": round(slope * 2**20, 1),
                         "fit_intercept_mb": round(intercept, 1), "budget_mb": args.budget_mb,
                         "under_budget": int(bool(r.get("ok")) and r["peak_rss_mb"] <= args.budget_mb),
                         "config": json.dumps(settings, sort_keys=True)})  # fmt: skip
    command = shlex.join(["python", "benchmarks/ctr_ddp_embedding.py", *(argv if argv is not None else sys.argv[1:])])
    for r in rows_out:
        r["command"] = command
    if args.dry_run:
        print("\n".join(json.dumps(r) for r in rows_out))
        return 0
    from gatelab.core.harness import ledger

    ledger.append_records("ctr-ddp-embedding", rows_out, args.results_dir)
    print(
        ledger.render_markdown(
            "ctr-ddp-embedding",
            args.results_dir,
            title="ctr-ddp-embedding: embedding table size vs peak memory per DDP rank",
            description=(
                "Each DDP rank (gloo, CPU, one thread) holds the whole table: a DNN with one categorical field of "
                "`rows` rows trained a few Adam steps; peak RSS (VmHWM) of the worst rank, model_mb = peak - RSS "
                "before the model, bytes_per_row = model_mb / rows. ddp-limit: the largest table predicted to fit "
                "the per-rank budget from a linear fit, then trained."
            ),
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
