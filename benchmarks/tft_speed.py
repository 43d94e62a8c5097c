"""Training speed and memory: gatelab's Temporal Fusion Transformer vs pytorch-forecasting's, on CPU.

Both models are built from the same pytorch-forecasting ``TimeSeriesDataSet`` (the stallion
tutorial's: 13 encoder, 6 decoder, 7 static variables, 2 categorical groups) with the same sizes
(``hidden_size``, heads, ``hidden_continuous_size``, 7 quantiles); ours with
``layout="pytorch-forecasting"``, i.e. the same network (its weights port exactly, see
tests/timeseries/test_tft_port.py). Both train on the *same* pre-collated batches (the data
loader is not timed), each with its own loss (pytorch-forecasting's ``QuantileLoss`` metric as
its ``training_step`` calls it, ours :func:`gatelab.timeseries.tft_metrics.quantile_loss`; the
same values), Adam and gradient-norm clipping 0.1, as in the tutorial.

Measurement:

* **speed**: ``rounds`` rounds, each running ``steps`` training steps of one model then of the
  other (order alternating per round). A step's cost is the *process CPU time*
  (``time.process_time``) it takes with one thread (``torch.set_num_threads(1)``), robust to other
  jobs on a shared machine; wall-clock time is reported beside it. Samples/s = batch size /
  median step time. ``speedup`` = pytorch-forecasting's median CPU time per step / ours.
* **memory**: each model trains ``memory_steps`` steps in a fresh child process; peak memory is
  the growth of the process' peak resident set size (``resource.getrusage(RUSAGE_SELF).ru_maxrss``)
  from just before the first step (model, optimizer and batches already built) to the end;
  ``growth`` is the resident set size after the last step minus after step 10 (``/proc/self/statm``).

With ``--record`` the result goes to ``docs/results/tft-speed.jsonl`` (and ``.md``) through the
ledger: ``speedup`` with ``baseline`` naming pytorch-forecasting's version.

Usage::

    python benchmarks/tft_speed.py                       # stallion tutorial sizes, batch 128
    python benchmarks/tft_speed.py --batch-size 64 --hidden 32 --record
    python benchmarks/tft_speed.py --synthetic --steps 3 --rounds 1   # smoke run, no data needed
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import warnings
from typing import Any


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--hidden", type=int, default=16)
    p.add_argument("--heads", type=int, default=2)
    p.add_argument("--hidden-continuous", type=int, default=8)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--steps", type=int, default=10, help="timed steps per model per round")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--memory-steps", type=int, default=60)
    p.add_argument("--batches", type=int, default=20, help="distinct pre-collated batches, cycled")
    p.add_argument("--data-dir", default=None)
    p.add_argument(
        "--synthetic", action="store_true", help="stallion-shaped random data (no data dir needed)"
    )
    p.add_argument("--record", action="store_true", help="append the result to docs/results/tft-speed")
    p.add_argument("--results-dir", default=None)
    p.add_argument("--no-memory", action="store_true")
    p.add_argument("--memory-child", choices=["ours", "pf"], help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _synthetic_stallion(seed: int = 0) -> Any:
    """A random frame with the stallion columns (350 series x 60 months), for smoke runs."""
    import numpy as np
    import pandas as pd

    from gatelab.timeseries.data.tft_data import STALLION_SPECIAL_DAYS

    rng = np.random.default_rng(seed)
    rows = []
    dates = pd.date_range("2013-01-01", periods=60, freq="MS")
    for a in range(58):
        for s in range(6 if a < 48 else 7):
            base = rng.gamma(2.0, 500.0)
            for t, d in enumerate(dates):
                r = {
                    "agency": f"Agency_{a:02d}",
                    "sku": f"SKU_{s:02d}",
                    "volume": float(max(0.0, base * (1 + 0.2 * np.sin(t / 2)) + rng.normal(0, 50))),
                    "date": d,
                    "industry_volume": int(5e8 + rng.normal(0, 1e7)),
                    "soda_volume": int(8e8 + rng.normal(0, 1e7)),
                    "avg_max_temp": float(rng.normal(25, 5)),
                    "price_regular": float(rng.normal(1500, 100)),
                    "price_actual": float(rng.normal(1400, 100)),
                    "discount": float(rng.uniform(0, 200)),
                    "avg_population_2017": int(rng.integers(1e4, 1e6)),
                    "avg_yearly_household_income_2017": int(rng.integers(1e5, 3e5)),
                    "discount_in_percent": float(rng.uniform(0, 20)),
                    "timeseries": a * 10 + s,
                }
                for c in STALLION_SPECIAL_DAYS:
                    r[c] = int(rng.random() < 0.1)
                rows.append(r)
    df = pd.DataFrame(rows)
    df["agency"] = df["agency"].astype("category")
    df["sku"] = df["sku"].astype("category")
    return df


def _setup(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    from pytorch_forecasting import TemporalFusionTransformer as PFTFT
    from pytorch_forecasting.metrics import QuantileLoss

    from gatelab.core.harness.data import locate, resolve_data_dir
    from gatelab.timeseries.data.tft_data import STALLION, read_stallion, stallion_datasets, stallion_frame
    from gatelab.timeseries.models.tft import TemporalFusionTransformer

    if args.synthetic:
        raw, data = _synthetic_stallion(), "synthetic stallion-shaped frame"
    else:
        folder = locate(STALLION, resolve_data_dir(args.data_dir))
        raw, data = read_stallion(folder), f"stallion ({folder})"
    training, _ = stallion_datasets(stallion_frame(raw))
    torch.manual_seed(0)
    loader = training.to_dataloader(train=True, batch_size=args.batch_size, num_workers=0)
    batches = []
    for x, y in loader:
        batches.append((x, y))
        if len(batches) == args.batches:
            break
    sizes = dict(
        hidden_size=args.hidden,
        attention_head_size=args.heads,
        dropout=args.dropout,
        hidden_continuous_size=args.hidden_continuous,
    )
    torch.manual_seed(0)
    pf = PFTFT.from_dataset(training, loss=QuantileLoss(), **sizes)
    torch.manual_seed(0)
    ours = TemporalFusionTransformer.from_dataset(training, quantiles=pf.loss.quantiles, **sizes)
    return {"pf": pf, "ours": ours, "batches": batches, "data": data, "training": training}


def _step_fn(name: str, model: Any) -> Any:
    import torch
    from torch.nn.utils import rnn

    from gatelab.timeseries.tft_metrics import quantile_loss, valid_mask

    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=1e-3)
    model.train()

    if name == "pf":

        def loss_of(x: dict, y: tuple) -> Any:  # pytorch-forecasting's BaseModel.step
            target, weight = y
            if (x["decoder_lengths"] < x["decoder_lengths"].max()).any():
                target = rnn.pack_padded_sequence(
                    target, lengths=x["decoder_lengths"].cpu(), batch_first=True, enforce_sorted=False
                )
            return model.loss(model(x)["prediction"], (target, weight))

    else:
        quantiles = model.quantiles

        def loss_of(x: dict, y: tuple) -> Any:
            target, weight = y
            out = model(x)
            return quantile_loss(
                out.prediction, target, quantiles, valid_mask(x["decoder_lengths"], target.shape), weight
            )

    def step(x: dict, y: tuple) -> float:
        loss = loss_of(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 0.1)
        opt.step()
        return float(loss.detach())

    return step


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _memory_child(args: argparse.Namespace) -> None:
    env = _setup(args)
    step = _step_fn(args.memory_child, env[args.memory_child])
    batches = env["batches"]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rss10 = None
    for i in range(args.memory_steps):
        x, y = batches[i % len(batches)]
        step(x, y)
        if i == 9:
            rss10 = _rss_mb()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_mb": peak - before, "growth_mb": _rss_mb() - (rss10 or _rss_mb())}))


def _memory(args: argparse.Namespace, argv: list[str]) -> dict[str, dict[str, float]]:
    out = {}
    for name in ("pf", "ours"):
        cmd = [sys.executable, __file__, *argv, "--memory-child", name]
        res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        if res.returncode != 0:
            raise RuntimeError(f"memory child {name} failed:\n{res.stderr[-3000:]}")
        out[name] = json.loads(res.stdout.strip().splitlines()[-1])
    return out


def _n_params(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parse(argv)
    if args.memory_child:
        _memory_child(args)
        return 0
    import torch

    env = _setup(args)
    batches = env["batches"]
    steps = {name: _step_fn(name, env[name]) for name in ("pf", "ours")}
    # warm-up (first calls allocate, pick kernels, build optimizer state)
    for name in steps:
        for x, y in batches[:3]:
            steps[name](x, y)
    cpu: dict[str, list[float]] = {"pf": [], "ours": []}
    wall: dict[str, list[float]] = {"pf": [], "ours": []}
    k = 0
    for r in range(args.rounds):
        order = ("pf", "ours") if r % 2 == 0 else ("ours", "pf")
        for name in order:
            for _ in range(args.steps):
                x, y = batches[k % len(batches)]
                k += 1
                c0, w0 = time.process_time(), time.perf_counter()
                steps[name](x, y)
                cpu[name].append(time.process_time() - c0)
                wall[name].append(time.perf_counter() - w0)
        print(
            f"round {r + 1}/{args.rounds}: pf {statistics.median(cpu['pf']) * 1e3:.1f} ms, "
            f"ours {statistics.median(cpu['ours']) * 1e3:.1f} ms (CPU time per step)",
            flush=True,
        )
    B = args.batch_size
    med = {n: statistics.median(v) for n, v in cpu.items()}
    medw = {n: statistics.median(v) for n, v in wall.items()}
    result: dict[str, Any] = {
        "samples_per_s": B / med["ours"],
        "baseline_samples_per_s": B / med["pf"],
        "speedup": med["pf"] / med["ours"],
        "wall_samples_per_s": B / medw["ours"],
        "baseline_wall_samples_per_s": B / medw["pf"],
        "wall_speedup": medw["pf"] / medw["ours"],
        "params": _n_params(env["ours"]),
        "baseline_params": _n_params(env["pf"]),
    }
    if not args.no_memory:
        mem = _memory(args, argv)
        result.update(
            peak_mem_mb=mem["ours"]["peak_mb"],
            baseline_peak_mem_mb=mem["pf"]["peak_mb"],
            mem_growth_mb=mem["ours"]["growth_mb"],
            baseline_mem_growth_mb=mem["pf"]["growth_mb"],
        )
    import pytorch_forecasting

    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}, indent=1))
    print(f"data: {env['data']}; torch {torch.__version__}; {platform.processor() or platform.machine()}")
    if args.record:
        from gatelab.core.harness.ledger import append_records

        config = {k: v for k, v in vars(args).items() if k not in ("record", "results_dir", "memory_child")}
        config["measure"] = "median process CPU time per step, 1 thread; memory: ru_maxrss growth in a child"
        row = {
            "model": "tft",
            "dataset": "stallion" if not args.synthetic else "stallion-synthetic",
            "split": "train",
            "variant": f"b{B}-h{args.hidden}",
            "seed": 0,
            "baseline": f"pytorch-forecasting {pytorch_forecasting.__version__} TemporalFusionTransformer",
            "config": config,
            **result,
        }
        append_records("tft-speed", [row], args.results_dir)
        print("recorded in docs/results/tft-speed.jsonl")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
