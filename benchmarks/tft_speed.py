"""Training speed and memory: gatelab's Temporal Fusion Transformer vs pytorch-forecasting's, on CPU.

Both models are built from the same pytorch-forecasting ``TimeSeriesDataSet`` (the stallion
tutorial's: 7 static, 13 encoder and 6 decoder variables, a group of 12 categorical columns) with
the same sizes (``hidden_size``/``d_model``, heads, ``hidden_continuous_size``/``continuous_dim``, dropout, 7 quantiles); ours
with ``layout="pytorch-forecasting"``, i.e. the same network (pytorch-forecasting's weights port
into it exactly, tests/timeseries/models/test_tft_port.py). Two modes:

* ``--mode step`` (model only): both train on the *same* pre-collated batches (data loading not
  timed): forward, each library's quantile loss (pytorch-forecasting's ``QuantileLoss`` metric as
  its ``training_step`` calls it; ours :func:`gatelab.timeseries.tasks.metrics.quantile_loss`, the
  same value), backward, gradient-norm clipping 0.1, an Adam step. Each side uses the optimizer
  its users get: pytorch-forecasting plain ``torch.optim.Adam`` (its ``configure_optimizers``);
  ours :func:`gatelab.core.harness.task.build_optimizer` with ``TaskConfig(optimizer="adam")``
  (``task.optimizer_impl: auto``, i.e. torch's fused Adam: one kernel over all parameters).
  ``rounds`` rounds of ``steps`` steps per model, the order alternating per round.
* ``--mode fit`` (end to end): each library's own training loop and data pipeline, one Lightning
  epoch of ``fit_batches`` batches without validation: pytorch-forecasting's
  ``TemporalFusionTransformer`` (a LightningModule; Adam, no logger) on
  ``TimeSeriesDataSet.to_dataloader``; ours :class:`gatelab.timeseries.tasks.tft.TFTTask` (the
  harness task and trainer path, whose ``configure_optimizers`` uses fused Adam by default) on
  :func:`gatelab.timeseries.data.tft_loader.window_dataloader` (the same batches, built
  vectorised). Per-batch cost = (cost of a ``fit_batches`` run - cost of a 2-batch run) /
  (``fit_batches`` - 2), which removes the set-up.

Speed is *process CPU time* (``time.process_time``) with one thread (``torch.set_num_threads(1)``):
robust to other jobs on a shared machine; wall-clock numbers are reported beside it. The rounds
interleave the two libraries (the order alternates). Samples/s = batch size / median time per
batch (over all steps, or over the fit repetitions). ``speedup`` is the *median over rounds* of
the per-round ratio pytorch-forecasting's time / ours (step mode: of the round's median step
times), with its spread: quartiles ``speedup_q1``/``speedup_q3`` and range
``speedup_min``/``speedup_max``; ``speedup_of_medians`` is the ratio of the overall medians.

``--compile MODE`` compiles ours (``model.compile(mode=MODE)`` in step mode, the task option
``task.compile: MODE`` in fit mode; pytorch-forecasting stays eager, as its users run it); the
warm-up steps (and, in fit mode, the 2-batch run that is subtracted) absorb the compilation.

Peak memory: each model trains in a fresh child process (``memory_steps`` steps, or the fit);
just before training the kernel's peak-RSS counter is reset (``/proc/self/clear_refs``) and the
resident set size noted; ``peak_mem_mb`` = peak RSS during training minus that.
``mem_growth_mb`` = RSS after the last step minus after the 10th.

With ``--record`` the result goes to ``docs/results/tft-speed.jsonl`` (and ``.md``) through the
ledger (``speedup`` with ``baseline`` naming pytorch-forecasting's version).

Usage::

    python benchmarks/tft_speed.py                          # model step, stallion sizes, batch 128
    python benchmarks/tft_speed.py --mode fit --record      # end to end
    python benchmarks/tft_speed.py --compile default --record   # ours compiled (torch.compile)
    python benchmarks/tft_speed.py --synthetic --steps 3 --rounds 1 --no-memory   # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from typing import Any


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mode", choices=["step", "fit"], default="step")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--hidden", type=int, default=16)
    p.add_argument("--heads", type=int, default=2)
    p.add_argument("--hidden-continuous", type=int, default=8)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--steps", type=int, default=10, help="step mode: timed steps per model per round")
    p.add_argument("--rounds", type=int, default=7, help="step mode: rounds; fit mode: repetitions")
    p.add_argument("--fit-batches", type=int, default=40, help="fit mode: batches per timed epoch")
    p.add_argument("--memory-steps", type=int, default=60)
    p.add_argument("--batches", type=int, default=20, help="step mode: distinct pre-collated batches, cycled")
    p.add_argument("--data-dir", default=None)
    p.add_argument(
        "--synthetic", action="store_true", help="stallion-shaped random data (no data dir needed)"
    )
    p.add_argument("--record", action="store_true", help="append the result to docs/results/tft-speed")
    p.add_argument("--results-dir", default=None)
    p.add_argument("--no-memory", action="store_true")
    p.add_argument(
        "--compile",
        choices=["none", "default", "reduce-overhead", "max-autotune-no-cudagraphs"],
        default="none",
        help="torch.compile ours (step mode: model.compile(mode); fit mode: the task option task.compile)",
    )
    p.add_argument("--memory-child", choices=["ours", "pf"], help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _synthetic_stallion(seed: int = 0) -> Any:
    """A random frame with the stallion columns (350 series x 60 months), for smoke runs."""
    import numpy as np
    import pandas as pd

    from gatelab.timeseries.data.tft import STALLION_SPECIAL_DAYS

    rng = np.random.default_rng(seed)
    dates = pd.date_range("2013-01-01", periods=60, freq="MS")
    n = 350 * 60
    agency = np.repeat([f"Agency_{a:02d}" for a in range(58)], 60 * 7)[:n]
    sku = np.tile(np.repeat([f"SKU_{s:02d}" for s in range(7)], 60), 58)[:n]
    df = pd.DataFrame(
        {
            "agency": agency,
            "sku": sku,
            "volume": rng.gamma(2.0, 500.0, n),
            "date": np.tile(dates, 350),
            "industry_volume": rng.integers(4e8, 6e8, n),
            "soda_volume": rng.integers(7e8, 9e8, n),
            "avg_max_temp": rng.normal(25, 5, n),
            "price_regular": rng.normal(1500, 100, n),
            "price_actual": rng.normal(1400, 100, n),
            "discount": rng.uniform(0, 200, n),
            "avg_population_2017": np.repeat(rng.integers(1e4, 1e6, 350), 60),
            "avg_yearly_household_income_2017": np.repeat(rng.integers(1e5, 3e5, 350), 60),
            "discount_in_percent": rng.uniform(0, 20, n),
            "timeseries": np.repeat(np.arange(350), 60),
        }
    )
    for c in STALLION_SPECIAL_DAYS:
        df[c] = (rng.random(n) < 0.1).astype(int)
    df["agency"] = df["agency"].astype("category")
    df["sku"] = df["sku"].astype("category")
    return df


def _sizes(args: argparse.Namespace) -> dict[str, Any]:
    """The sizes in pytorch-forecasting's names (its ``from_dataset``)."""
    return dict(
        hidden_size=args.hidden,
        attention_head_size=args.heads,
        dropout=args.dropout,
        hidden_continuous_size=args.hidden_continuous,
    )


def _our_sizes(args: argparse.Namespace) -> dict[str, Any]:
    """The same sizes as :class:`~gatelab.timeseries.models.tft.TFTConfig` keys."""
    return dict(d_model=args.hidden, num_heads=args.heads, dropout=args.dropout, continuous_dim=args.hidden_continuous)


def _setup(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    from pytorch_forecasting import TemporalFusionTransformer as PFTFT
    from pytorch_forecasting.metrics import QuantileLoss

    from gatelab.core.harness.data import locate, resolve_data_dir
    from gatelab.timeseries.data.tft import STALLION, read_stallion, stallion_datasets, stallion_frame
    from gatelab.timeseries.models.tft import TemporalFusionTransformer

    if args.synthetic:
        raw, data = _synthetic_stallion(), "synthetic stallion-shaped frame"
    else:
        folder = locate(STALLION, resolve_data_dir(args.data_dir))
        raw, data = read_stallion(folder), f"stallion ({folder})"
    training, _ = stallion_datasets(stallion_frame(raw))
    env: dict[str, Any] = {"data": data, "training": training}
    if args.mode == "step":
        torch.manual_seed(0)
        loader = training.to_dataloader(train=True, batch_size=args.batch_size, num_workers=0)
        batches = []
        for x, y in loader:
            batches.append((x, y))
            if len(batches) == args.batches:
                break
        env["batches"] = batches
        torch.manual_seed(0)
        env["pf"] = PFTFT.from_dataset(training, loss=QuantileLoss(), **_sizes(args))
        torch.manual_seed(0)
        env["ours"] = TemporalFusionTransformer.from_dataset(
            training, quantiles=env["pf"].loss.quantiles, **_our_sizes(args)
        )
        if args.compile != "none":
            env["ours"].compile(mode=args.compile)  # in place: same module, same parameter names
    return env


# ------------------------------------------------------------------------------ step mode
def _step_fn(name: str, model: Any) -> Any:
    import torch
    from torch.nn.utils import rnn

    from gatelab.timeseries.tasks.metrics import quantile_loss, valid_mask

    params = [p for p in model.parameters() if p.requires_grad]
    if name == "pf":  # what pytorch-forecasting's users get (its configure_optimizers: plain Adam)
        opt = torch.optim.Adam(params, lr=1e-3)
    else:  # what a gatelab user gets: the harness's optimizer (task.optimizer_impl "auto": fused Adam)
        from gatelab.core.harness.configs import TaskConfig
        from gatelab.core.harness.task import build_optimizer

        opt = build_optimizer(params, TaskConfig(optimizer="adam", lr=1e-3))
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
            mask = valid_mask(x["decoder_lengths"], target.shape)
            return quantile_loss(out.prediction, target, quantiles, mask, weight)

    def step(x: dict, y: tuple) -> float:
        loss = loss_of(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 0.1)
        opt.step()
        return float(loss.detach())

    return step


def _time_steps(args: argparse.Namespace, env: dict[str, Any]) -> dict[str, Any]:
    """Interleaved rounds (the order alternates); per round the median step time of each model;
    returns the medians over all steps and the per-round speedups (CPU and wall clock)."""
    batches = env["batches"]
    steps = {name: _step_fn(name, env[name]) for name in ("pf", "ours")}
    for name in steps:  # warm-up: first calls allocate, build the optimizer state (and compile)
        for x, y in batches[: max(3, min(len(batches), 6))]:
            steps[name](x, y)
    cpu: dict[str, list[float]] = {"pf": [], "ours": []}
    wall: dict[str, list[float]] = {"pf": [], "ours": []}
    ratios: dict[str, list[float]] = {"cpu": [], "wall": []}
    k = 0
    for r in range(args.rounds):
        rc: dict[str, list[float]] = {"pf": [], "ours": []}
        rw: dict[str, list[float]] = {"pf": [], "ours": []}
        for name in ("pf", "ours") if r % 2 == 0 else ("ours", "pf"):
            for _ in range(args.steps):
                x, y = batches[k % len(batches)]
                k += 1
                c0, w0 = time.process_time(), time.perf_counter()
                steps[name](x, y)
                rc[name].append(time.process_time() - c0)
                rw[name].append(time.perf_counter() - w0)
            cpu[name] += rc[name]
            wall[name] += rw[name]
        ratios["cpu"].append(statistics.median(rc["pf"]) / statistics.median(rc["ours"]))
        ratios["wall"].append(statistics.median(rw["pf"]) / statistics.median(rw["ours"]))
        print(
            f"round {r + 1}/{args.rounds}: pf {statistics.median(rc['pf']) * 1e3:.1f} ms, "
            f"ours {statistics.median(rc['ours']) * 1e3:.1f} ms (CPU time per step), "
            f"speedup {ratios['cpu'][-1]:.2f}x",
            flush=True,
        )
    return {
        "ours_cpu": statistics.median(cpu["ours"]),
        "pf_cpu": statistics.median(cpu["pf"]),
        "ours_wall": statistics.median(wall["ours"]),
        "pf_wall": statistics.median(wall["pf"]),
        "ratios": ratios,
    }


def _spread(values: list[float]) -> dict[str, float]:
    """Median, quartiles (inclusive method) and range of the per-round speedups."""
    if len(values) == 1:
        return {"median": values[0], "q1": values[0], "q3": values[0], "min": values[0], "max": values[0]}
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return {"median": statistics.median(values), "q1": q1, "q3": q3, "min": min(values), "max": max(values)}


# ------------------------------------------------------------------------------ fit mode
def _fit(name: str, args: argparse.Namespace, env: dict[str, Any], n_batches: int, seed: int = 0) -> None:
    import lightning as L
    import torch

    training = env["training"]
    torch.manual_seed(seed)
    kw = dict(
        max_epochs=1,
        limit_train_batches=n_batches,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        gradient_clip_val=0.1,
    )
    if name == "pf":
        from pytorch_forecasting import TemporalFusionTransformer as PFTFT
        from pytorch_forecasting.metrics import QuantileLoss

        model = PFTFT.from_dataset(
            training,
            loss=QuantileLoss(),
            learning_rate=1e-3,
            optimizer="adam",
            log_interval=-1,
            **_sizes(args),
        )
        loader = training.to_dataloader(train=True, batch_size=args.batch_size, num_workers=0)
    else:
        from gatelab.timeseries.data.tft_loader import window_dataloader
        from gatelab.timeseries.models.tft import config_from_dataset
        from gatelab.timeseries.tasks.tft import TFTTask

        model = TFTTask(
            model_name="tft",
            model_kwargs={
                **config_from_dataset(training),
                **_our_sizes(args),
                "quantiles": [0.02, 0.1, 0.25, 0.5, 0.75, 0.9, 0.98],
            },
            task={
                "name": "tft",
                "optimizer": "adam",
                "lr": 1e-3,
                "compile": False if args.compile == "none" else args.compile,
            },
        )
        loader = window_dataloader(training, train=True, batch_size=args.batch_size)
    L.Trainer(**kw).fit(model, train_dataloaders=loader)


def _time_fit(args: argparse.Namespace, env: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, list[float]] = {k: [] for k in ("ours_cpu", "pf_cpu", "ours_wall", "pf_wall")}
    for name in ("pf", "ours"):  # warm-up (imports, first allocations, compilation caches)
        _fit(name, args, env, 2)
    for r in range(args.rounds):
        for name in ("pf", "ours") if r % 2 == 0 else ("ours", "pf"):
            costs = {}
            for n in (2, args.fit_batches):
                c0, w0 = time.process_time(), time.perf_counter()
                _fit(name, args, env, n, seed=r)
                costs[n] = (time.process_time() - c0, time.perf_counter() - w0)
            d = args.fit_batches - 2
            out[f"{name}_cpu"].append((costs[args.fit_batches][0] - costs[2][0]) / d)
            out[f"{name}_wall"].append((costs[args.fit_batches][1] - costs[2][1]) / d)
        print(
            f"round {r + 1}/{args.rounds}: pf {out['pf_cpu'][-1] * 1e3:.1f} ms, "
            f"ours {out['ours_cpu'][-1] * 1e3:.1f} ms (CPU time per batch, end to end), "
            f"speedup {out['pf_cpu'][-1] / out['ours_cpu'][-1]:.2f}x",
            flush=True,
        )
    res: dict[str, Any] = {k: statistics.median(v) for k, v in out.items()}
    res["ratios"] = {
        "cpu": [p / o for p, o in zip(out["pf_cpu"], out["ours_cpu"])],
        "wall": [p / o for p, o in zip(out["pf_wall"], out["ours_wall"])],
    }
    return res


# ------------------------------------------------------------------------------ memory
def _vm(key: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"{key} not in /proc/self/status")


def _memory_child(args: argparse.Namespace) -> None:
    name = args.memory_child
    env = _setup(args)
    rss10 = None
    if args.mode == "step":
        step = _step_fn(name, env[name])
        batches = env["batches"]
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak-RSS counter
        base = _vm("VmRSS")
        for i in range(args.memory_steps):
            x, y = batches[i % len(batches)]
            step(x, y)
            if i == 9:
                rss10 = _vm("VmRSS")
    else:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        base = _vm("VmRSS")
        _fit(name, args, env, args.fit_batches)
    print(json.dumps({"peak_mb": _vm("VmHWM") - base, "growth_mb": _vm("VmRSS") - (rss10 or base)}))


def _memory(argv: list[str]) -> dict[str, dict[str, float]]:
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
    import pytorch_forecasting
    import torch

    from gatelab.core.harness import provenance

    commit = provenance.git_commit()  # the code that runs (stamped at the start, not at the end)
    command = "python benchmarks/tft_speed.py " + " ".join(argv)
    print(f"command: {command}", flush=True)
    env = _setup(args)
    t = _time_steps(args, env) if args.mode == "step" else _time_fit(args, env)
    B = args.batch_size
    cpu_spread, wall_spread = _spread(t["ratios"]["cpu"]), _spread(t["ratios"]["wall"])
    result: dict[str, Any] = {
        "speedup": cpu_spread["median"],
        "speedup_q1": cpu_spread["q1"],
        "speedup_q3": cpu_spread["q3"],
        "speedup_min": cpu_spread["min"],
        "speedup_max": cpu_spread["max"],
        "speedup_of_medians": t["pf_cpu"] / t["ours_cpu"],
        "rounds": args.rounds,
        "threads": torch.get_num_threads(),
        "samples_per_s": B / t["ours_cpu"],
        "baseline_samples_per_s": B / t["pf_cpu"],
        "wall_speedup": wall_spread["median"],
        "wall_speedup_min": wall_spread["min"],
        "wall_speedup_max": wall_spread["max"],
        "wall_samples_per_s": B / t["ours_wall"],
        "baseline_wall_samples_per_s": B / t["pf_wall"],
    }
    if args.mode == "step":
        result["params"] = _n_params(env["ours"])
        result["baseline_params"] = _n_params(env["pf"])
    if not args.no_memory:
        mem = _memory(argv)
        result.update(
            peak_mem_mb=mem["ours"]["peak_mb"],
            baseline_peak_mem_mb=mem["pf"]["peak_mb"],
            mem_growth_mb=mem["ours"]["growth_mb"],
            baseline_mem_growth_mb=mem["pf"]["growth_mb"],
        )
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}, indent=1))
    print(f"data: {env['data']}; torch {torch.__version__}; {platform.processor() or platform.machine()}")
    if args.record:
        from gatelab.core.harness.ledger import append_records

        config = {k: v for k, v in vars(args).items() if k not in ("record", "results_dir", "memory_child")}
        config["measure"] = (
            "process CPU time per batch, 1 thread; peak memory: VmHWM growth during training in a child process"
        )
        row = {
            "model": "tft",
            "dataset": "stallion" if not args.synthetic else "stallion-synthetic",
            "split": "train",
            "variant": f"{'model-step' if args.mode == 'step' else 'end-to-end'}-b{B}-h{args.hidden}"
            + ("" if args.compile == "none" else f"-compile-{args.compile}"),
            "seed": 0,
            "baseline": f"pytorch-forecasting {pytorch_forecasting.__version__} TemporalFusionTransformer",
            "config": config,
            "commit": commit,
            "command": command,
            **result,
        }
        append_records("tft-speed", [row], args.results_dir)
        from gatelab.core.harness.ledger import resolve_results_dir

        print(f"recorded in {resolve_results_dir(args.results_dir) / 'tft-speed.jsonl'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
