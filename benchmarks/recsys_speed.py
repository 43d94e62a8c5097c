"""Training throughput of gatelab's FinalMLP, GDCN-P and Fi-GNN vs FuxiCTR's on the CPU, same sizes, one process.

For each model, one *training step* on a batch is: forward, BCE + embedding L2 (0.05, FuxiCTR's
``embedding_regularizer`` over the whole tables), backward, gradient-norm clipping at 10, Adam
step -- for gatelab through :class:`gatelab.recsys.tasks.ctr.CTRTask` (``compute_loss`` in train
mode) with the optimizer a gatelab user gets, ``build_optimizer(params, TaskConfig(optimizer="adam",
lr=1e-3))`` (what ``CTRTask.configure_optimizers`` builds: ``optimizer_impl`` auto = torch's fused
Adam), for FuxiCTR through its own ``BaseModel.train_step`` with its own ``torch.optim.Adam``
(torch's default implementation). Both models get the Frappe_x1
sizes (the official vocabularies: 5,399 embedding rows over 10 fields) and the published Frappe
presets (FinalMLP: BARS ``FinalMLP_frappe_x1_004``; GDCN-P: embedding 16, DNN 400-400-400, BN,
dropout 0.5, 3 gated cross layers; Fi-GNN: BARS ``FiGNN_frappe_x1_003``, 17 graph layers without
GRU, embedding L2 0.001 on both sides), and the same random batches. Before timing, FuxiCTR's
weights are copied into gatelab's model and the eval-mode predictions compared (the difference
is recorded), so both sides compute the same function.

Timing alternates rounds (gatelab, FuxiCTR, gatelab, ...) to spread machine noise over both.
Each round gives one rate per side and one *paired ratio* (gatelab / FuxiCTR of that round);
``speedup`` is the median of the per-round ratios and ``speedup_lo`` / ``speedup_hi`` its
bootstrap 95% interval (10,000 resamples of the rounds, percentile method, seed 0);
``samples_per_s`` / ``baseline_samples_per_s`` are the medians of the per-round rates, all of
which are kept in the record's ``config`` (``all_rates``). Threads: 1 by default (``--threads``).

Two measurements (``--mode``):

* ``step`` (split ``train-step``, dataset ``frappe-sized``): training steps on random batches of
  the Frappe_x1 sizes, weights copied and predictions compared first (above). ``--compile`` adds a
  ``gatelab-compile`` variant (``torch.compile`` of the model, default mode).
* ``epoch`` (split ``train-epoch``, dataset ``frappe``): end to end with data loading on the
  Frappe data at ``--data-dir`` (default ``/work/shared/data``, layout ``frappe``: the official
  x1 valid/test and the rebuilt train split, :mod:`gatelab.recsys.data.frappe`). FuxiCTR reads the
  same training csv with its own encoder -- ``FeatureProcessor`` read/preprocess/fit/transform
  once -- and its own loader each round, ``RankDataLoader`` with ``data_format="npz"``
  (``NpzDataLoader``: a torch ``DataLoader`` over rows with one worker process and FuxiCTR's
  ``BatchCollator``, shuffled; FuxiCTR 2.3.10's default Ray parquet pipeline does not start
  reliably on a busy 2-core machine); gatelab with its data module (:func:`gatelab.recsys.data.ctr_datamodule`, encoded once,
  then ``train_dataloader()`` each round). A round is one pass over the first
  ``--epoch-batches`` shuffled batches (default 0: the whole training split, 50 batches of
  4096) of a fresh loader iterator, each batch followed by the training step; samples/s count the
  rows trained. Each library's model is built from its own encoder's vocabularies (a few rows
  differ in size; no weight copy -- ``step`` checks the equal function). The one-time encoding is
  not timed. FuxiCTR 2.3.10's reader passes polars' removed ``dtypes=`` keyword to
  ``scan_csv``; the benchmark maps it to ``schema_overrides=`` while FuxiCTR encodes (the same
  types).

FuxiCTR's model code is not in its pip package: point ``--fuxictr-model-zoo`` (or
``$GATELAB_FUXICTR_MODEL_ZOO``) at a checkout's ``model_zoo`` folder (reczoo/FuxiCTR; its
``FinalMLP/src``, ``GDCN/src`` and ``FiGNN/src`` are imported) with the ``fuxictr`` package installed
(``uv sync --group anchors``). Results go to ``docs/results/recsys-speed.jsonl`` (table
``recsys-speed``) unless ``--dry-run``.

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/recsys_speed.py --fuxictr-model-zoo /path/FuxiCTR/model_zoo
    # one model, one mode:
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/recsys_speed.py --models gdcn-p --mode epoch --fuxictr-model-zoo ...
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import itertools
import json
import os
import random
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from gatelab.recsys.data.frappe import FRAPPE_X1_VOCAB

#: gatelab config field -> FuxiCTR constructor keyword, where the names differ (the glossary's
#: names on our side, FuxiCTR's on theirs)
FUXICTR_NAMES = {
    "mlp1_hidden_dims": "mlp1_hidden_units",
    "mlp2_hidden_dims": "mlp2_hidden_units",
    "fs_hidden_dims": "fs_hidden_units",
    "dnn_hidden_dims": "dnn_hidden_units",
    "dropout": "net_dropout",
    "num_layers": "gnn_layers",
    "share_weights": "reuse_graph_layer",
    "residual": "use_residual",
}

#: benchmark name -> (FuxiCTR model_zoo folder, its class)
FUXICTR_MODELS = {
    "finalmlp": ("FinalMLP", "FinalMLP"),
    "gdcn-p": ("GDCN", "GDCNP"),
    "fignn": ("FiGNN", "FiGNN"),
}
#: embedding L2 of each model's BARS Frappe_x1 run (both sides)
EMBEDDING_L2 = {"finalmlp": 0.05, "gdcn-p": 0.05, "fignn": 0.001}


def _fuxictr_kwargs(config: Any, keys: list[str]) -> dict[str, Any]:
    """FuxiCTR keyword arguments from a gatelab model config's ``keys`` (renamed by :data:`FUXICTR_NAMES`)."""
    out = {}
    for k in keys:
        v = getattr(config, k)
        out[FUXICTR_NAMES.get(k, k)] = list(v) if isinstance(v, tuple) else v
    return out


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--fuxictr-model-zoo",
        default=os.environ.get("GATELAB_FUXICTR_MODEL_ZOO"),
        help="FuxiCTR's model_zoo folder",
    )
    p.add_argument("--models", nargs="+", default=list(FUXICTR_MODELS), choices=list(FUXICTR_MODELS))
    p.add_argument(
        "--mode",
        nargs="+",
        default=["step", "epoch"],
        choices=["step", "epoch"],
        help="train-step throughput on random batches and/or end-to-end epochs with data loading "
        "(epoch: finalmlp and gdcn-p only)",
    )
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--rounds", type=int, default=15, help="alternating timing rounds (step mode)")
    p.add_argument("--steps", type=int, default=3, help="training steps per round (step mode)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--epoch-rounds", type=int, default=7, help="alternating epochs per side (epoch mode)")
    p.add_argument(
        "--epoch-batches", type=int, default=0, help="batches per epoch round (0: the whole training split)"
    )
    p.add_argument("--data-dir", default="/work/shared/data", help="data directory holding frappe/")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (0: leave as is)")
    p.add_argument("--compile", action="store_true", help="also time gatelab's step under torch.compile")
    p.add_argument("--results-dir", default=None)
    p.add_argument("--dry-run", action="store_true", help="print the records, write nothing")
    return p.parse_args(argv)


def _import_src(model_zoo: Path, name: str) -> Any:
    """Import ``<model_zoo>/<name>/src`` as a uniquely named package."""
    src = model_zoo / name / "src" / "__init__.py"
    if not src.is_file():
        raise SystemExit(
            f"recsys_speed: {src} not found (give --fuxictr-model-zoo, FuxiCTR's model_zoo folder)"
        )
    spec = importlib.util.spec_from_file_location(
        f"fuxictr_zoo_{name.lower()}", src, submodule_search_locations=[str(src.parent)]
    )
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def _feature_map(tmp: str, embedding_dim: int) -> Any:
    from fuxictr.features import FeatureMap

    fm = FeatureMap("frappe_bench", tmp)
    for name, v in FRAPPE_X1_VOCAB.items():
        fm.features[name] = {"source": "", "type": "categorical", "padding_idx": 0, "vocab_size": v}
    fm.labels = ["label"]
    fm.num_fields = len(FRAPPE_X1_VOCAB)
    fm.default_emb_dim = embedding_dim
    fm.set_column_index()
    return fm


def _gatelab_spec() -> dict[str, Any]:
    return {
        "fields": [
            {"name": k, "type": "categorical", "vocab_size": v, "num_tokens": v - 2}
            for k, v in FRAPPE_X1_VOCAB.items()
        ]
    }


def _copy_embeddings(their_dict: Any, ours: Any, names: list[str]) -> None:
    import torch

    with torch.no_grad():
        for n in names:
            ours.field_table(n).copy_(their_dict.embedding_layers[n].weight)


def _copy_mlp(theirs: Any, ours: Any) -> None:
    import torch

    a = [m for m in theirs if isinstance(m, (torch.nn.Linear, torch.nn.BatchNorm1d))]
    b = [m for m in ours if isinstance(m, (torch.nn.Linear, torch.nn.BatchNorm1d))]
    assert len(a) == len(b), (len(a), len(b))
    for x, y in zip(a, b):
        y.load_state_dict(x.state_dict())


def _build(
    name: str, zoo: Path, tmp: str, spec: dict[str, Any] | None = None, feature_map: Any = None
) -> tuple[Any, Any]:
    """(gatelab CTRTask, FuxiCTR model): at the Frappe_x1 sizes with identical weights, or (epoch
    mode) from a data module's ``spec`` and FuxiCTR's own ``feature_map``, each initialised by its
    library (then no weights are copied)."""
    import torch

    copy = spec is None
    spec = _gatelab_spec() if spec is None else spec

    def fmap(embedding_dim: int) -> Any:
        if feature_map is None:
            return _feature_map(tmp, embedding_dim)
        feature_map.default_emb_dim = embedding_dim
        return feature_map

    from gatelab.recsys.tasks.ctr import CTRTask

    common = dict(
        gpu=-1,
        learning_rate=1e-3,
        optimizer="adam",
        loss="binary_crossentropy",
        verbose=0,
        model_root=tmp,
        metrics=["AUC"],
        embedding_regularizer=EMBEDDING_L2[name],
        net_regularizer=0,
    )
    task_spec = {
        "name": "ctr",
        "optimizer": "adam",
        "lr": 1e-3,
        "kwargs": {"embedding_regularizer": EMBEDDING_L2[name]},
    }
    task = CTRTask(model_name=name, model_kwargs={"feature_spec": spec, "preset": "frappe-x1"}, task=task_spec)
    cfg = task.model.config
    if name == "finalmlp":
        zoo_mod = _import_src(zoo, "FinalMLP")
        theirs = zoo_mod.FinalMLP(
            fmap(cfg.embedding_dim),
            model_id="bench_finalmlp",
            **_fuxictr_kwargs(
                cfg,
                [
                    "embedding_dim",
                    "mlp1_hidden_dims",
                    "mlp1_dropout",
                    "mlp1_batch_norm",
                    "mlp2_hidden_dims",
                    "mlp2_dropout",
                    "mlp2_batch_norm",
                    "use_fs",
                    "fs_hidden_dims",
                    "fs1_context",
                    "fs2_context",
                    "num_heads",
                ],
            ),
            **common,
        )
        ours = task.model
        if not copy:
            return task, theirs
        _copy_embeddings(theirs.embedding_layer.embedding_layer, ours.embedding, list(FRAPPE_X1_VOCAB))
        _copy_embeddings(theirs.fs_module.fs1_ctx_emb.embedding_layer, ours.ctx1, list(cfg.fs1_context))
        _copy_embeddings(theirs.fs_module.fs2_ctx_emb.embedding_layer, ours.ctx2, list(cfg.fs2_context))
        _copy_mlp(theirs.fs_module.fs1_gate.mlp, ours.gate1.mlp)
        _copy_mlp(theirs.fs_module.fs2_gate.mlp, ours.gate2.mlp)
        _copy_mlp(theirs.mlp1.mlp, ours.mlp1)
        _copy_mlp(theirs.mlp2.mlp, ours.mlp2)
        f, g = theirs.fusion_module, ours.fusion
        k, hx, hy = g.num_heads, g.head_x, g.head_y
        with torch.no_grad():
            g.w_x.weight.copy_(f.w_x.weight)
            g.w_y.weight.copy_(f.w_y.weight)
            g.bias.copy_(f.w_x.bias + f.w_y.bias)
            g.w_xy.copy_(f.w_xy.view(k, hx, 1, hy).permute(0, 2, 1, 3))
    elif name == "fignn":
        zoo_mod = _import_src(zoo, "FiGNN")
        theirs = zoo_mod.FiGNN(
            fmap(cfg.embedding_dim),
            model_id="bench_fignn",
            use_gru=cfg.update == "gru",
            **_fuxictr_kwargs(cfg, ["embedding_dim", "num_layers", "residual", "share_weights"]),
            **common,
        )
        ours = task.model
        if not copy:
            return task, theirs
        _copy_embeddings(theirs.embedding_layer.embedding_layer, ours.embedding, list(FRAPPE_X1_VOCAB))
        layer, prop = theirs.fignn, ours.propagation
        gnn = [layer.gnn] if cfg.share_weights else list(layer.gnn)
        with torch.no_grad():
            ours.edge_attention.weight.copy_(layer.W_attn.weight)
            for t, g in enumerate(gnn):
                prop.weight_out[t].copy_(g.W_out)
                prop.weight_in[t].copy_(g.W_in)
                prop.bias_in[t].copy_(g.bias_p)
            if layer.gru is not None:
                prop.gru_ih.weight.copy_(layer.gru.weight_ih)
                prop.gru_ih.bias.copy_(layer.gru.bias_ih)
                prop.gru_hh.weight.copy_(layer.gru.weight_hh)
                prop.gru_hh.bias.copy_(layer.gru.bias_hh)
            ours.score.weight.copy_(theirs.fc.mlp1.weight)
            ours.score_weight.weight.copy_(theirs.fc.mlp2[0].weight)
    else:
        zoo_mod = _import_src(zoo, "GDCN")
        theirs = zoo_mod.GDCNP(
            fmap(cfg.embedding_dim),
            model_id="bench_gdcnp",
            **_fuxictr_kwargs(
                cfg, ["embedding_dim", "dnn_hidden_dims", "num_cross_layers", "dropout", "batch_norm"]
            ),
            **common,
        )
        ours = task.model
        if not copy:
            return task, theirs
        _copy_embeddings(theirs.embedding_layer.embedding_layer, ours.embedding, list(FRAPPE_X1_VOCAB))
        with torch.no_grad():
            for i, layer in enumerate(ours.cross.layers):
                layer.w.weight.copy_(theirs.cross_net.w[i].weight)
                layer.wg.weight.copy_(theirs.cross_net.wg[i].weight)
                layer.b.copy_(theirs.cross_net.b[i])
            ours.fc.load_state_dict(theirs.fc.state_dict())
        _copy_mlp(theirs.dnn.mlp, ours.dnn)
    return task, theirs


def _batches(n: int, batch: int) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    import torch

    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        cols = {k: torch.randint(1, v - 1, (batch,), generator=g) for k, v in FRAPPE_X1_VOCAB.items()}
        y = torch.randint(0, 2, (batch,), generator=g).float()
        ours = {"categorical": torch.stack(list(cols.values()), dim=1), "target": y}
        theirs = {**cols, "label": y}
        out.append((ours, theirs))
    return out


def bootstrap_median_ci(values: list[float], resamples: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap 95% interval of the median of ``values`` (resampling with replacement)."""
    if not values:
        raise ValueError("bootstrap_median_ci: no values")
    rng = random.Random(seed)
    n = len(values)
    meds = sorted(statistics.median(rng.choices(values, k=n)) for _ in range(resamples))
    return meds[int(0.025 * resamples)], meds[min(resamples - 1, int(0.975 * resamples))]


def _train_step(task: Any, model: Any, params: list[Any]) -> Callable[[dict[str, Any]], None]:
    """gatelab's training step: forward, ``CTRTask.compute_loss`` (BCE + embedding L2), backward,
    clip 10, Adam -- the optimizer the task's ``configure_optimizers`` builds,
    ``build_optimizer(params, TaskConfig(optimizer="adam", lr=1e-3))`` (``optimizer_impl`` auto:
    torch's fused Adam)."""
    import torch

    from gatelab.core.harness.task import build_optimizer

    opt = build_optimizer(params, task.config)
    if task.config.optimizer != "adam" or task.config.lr != 1e-3:
        raise SystemExit(f"recsys_speed: the task's optimizer is {task.config.optimizer} lr {task.config.lr}, not adam 1e-3")

    def step(b: dict[str, Any]) -> None:
        opt.zero_grad()
        loss = task.compute_loss(model(categorical=b["categorical"]), b["target"])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 10.0)
        opt.step()

    return step


def _interleave(sides: dict[str, Callable[[], tuple[int, float]]], rounds: int) -> dict[str, list[float]]:
    """Run each side's round in turn, ``rounds`` times; per side the list of samples/s."""
    rates: dict[str, list[float]] = {k: [] for k in sides}
    for _ in range(rounds):
        for label, fn in sides.items():
            n, seconds = fn()
            rates[label].append(n / seconds)
    return rates


def _rows(
    name: str, dataset: str, split: str, rates: dict[str, list[float]], baseline: str, config: dict[str, Any]
) -> list[dict[str, Any]]:
    """One ledger record per gatelab variant: medians, paired-ratio median and its bootstrap 95% CI."""
    out = []
    base = statistics.median(rates["fuxictr"])
    for label, r in rates.items():
        if label == "fuxictr":
            continue
        ratios = [a / b for a, b in zip(r, rates["fuxictr"])]
        lo, hi = bootstrap_median_ci(ratios)
        sps = statistics.median(r)
        speedup = statistics.median(ratios)
        out.append(
            {
                "model": name,
                "dataset": dataset,
                "split": split,
                "variant": label,
                "baseline": baseline,
                "seed": 0,
                "samples_per_s": round(sps, 1),
                "baseline_samples_per_s": round(base, 1),
                "speedup": round(speedup, 3),
                "speedup_lo": round(lo, 3),
                "speedup_hi": round(hi, 3),
                "rounds": len(ratios),
                "config": json.dumps(
                    {**config, "all_rates": {k: [round(x, 1) for x in v] for k, v in rates.items()}},
                    sort_keys=True,
                ),
            }
        )
        print(
            f"{name:9s} {split:11s} {label:16s} {sps:9.0f} samples/s   fuxictr {base:9.0f}   "
            f"speedup {speedup:.2f}x  95% CI [{lo:.2f}, {hi:.2f}]  ({len(ratios)} rounds)"
        )
    return out


def _step_mode(args: argparse.Namespace, zoo: Path, tmp: str, threads: int) -> list[dict[str, Any]]:
    import fuxictr
    import torch

    rows = []
    batches = _batches(args.steps, args.batch_size)
    for name in args.models:
        torch.manual_seed(0)
        task, theirs = _build(name, zoo, tmp)
        ours = task.model
        # same function: eval-mode predictions on one batch
        ours.eval(), theirs.eval()
        with torch.no_grad():
            p_ours = torch.sigmoid(ours(categorical=batches[0][0]["categorical"]))
            p_theirs = theirs(batches[0][1])["y_pred"].view(-1)
        max_diff = float((p_ours - p_theirs).abs().max())
        if max_diff > 1e-5:
            raise SystemExit(
                f"recsys_speed: {name}: gatelab and FuxiCTR predictions differ by {max_diff:.2e}"
            )
        ours.train(), theirs.train()
        params = list(ours.parameters())
        theirs._max_gradient_norm = 10.0  # fit() sets this before train_step
        steps: dict[str, tuple[Callable[[Any], Any], int]] = {
            "gatelab": (_train_step(task, ours, params), 0),
            "fuxictr": (theirs.train_step, 1),
        }
        if args.compile:
            compiled = torch.compile(ours)
            steps["gatelab-compile"] = (_train_step(task, compiled, params), 0)
        for fn, key in steps.values():
            for i in range(args.warmup):
                fn(batches[i % len(batches)][key])

        def timed(fn: Callable[[Any], Any], key: int) -> tuple[int, float]:
            t0 = time.perf_counter()
            for b in batches:
                fn(b[key])
            return len(batches) * args.batch_size, time.perf_counter() - t0

        rates = _interleave(
            {label: (lambda fn=fn, key=key: timed(fn, key)) for label, (fn, key) in steps.items()},
            args.rounds,
        )
        config = {
            "batch_size": args.batch_size,
            "threads": threads,
            "rounds": args.rounds,
            "steps": args.steps,
            "max_pred_diff": max_diff,
        }
        baseline = f"fuxictr {fuxictr.__version__} {FUXICTR_MODELS[name][1]}"
        rows += _rows(name, "frappe-sized", "train-step", rates, baseline, config)
    return rows


@contextlib.contextmanager
def _polars_dtypes_compat() -> Iterator[None]:
    """FuxiCTR 2.3.10 calls ``polars.scan_csv(dtypes=...)``, a keyword polars 1.x renamed to
    ``schema_overrides`` and 2.x removed: map it while FuxiCTR reads."""
    import polars

    scan = polars.scan_csv

    def scan_csv(*a: Any, dtypes: Any = None, **k: Any) -> Any:
        if dtypes is not None:
            k["schema_overrides"] = dtypes
        return scan(*a, **k)

    polars.scan_csv = scan_csv
    try:
        yield
    finally:
        polars.scan_csv = scan


def _fuxictr_data(files: dict[str, Path], tmp: str, batch_size: int) -> tuple[Any, Any]:
    """(FeatureMap, shuffled train loader) from FuxiCTR's own encoder and loader on the csv files.

    FuxiCTR's ``FeatureProcessor`` reads (polars), preprocesses, fits (vocabularies, written to
    its ``feature_map.json``) and transforms the training csv in this process; the encoded
    columns go to an ``.npz`` that FuxiCTR's ``RankDataLoader`` serves with its
    ``NpzDataLoader`` (a torch ``DataLoader`` over rows, one worker, its ``BatchCollator``).
    ``build_dataset``'s Ray pipeline (parallel transform to parquet, Ray ``ParquetDataLoader``)
    is not used: Ray's node does not start reliably on a busy 2-core machine.
    """
    import logging

    import numpy as np
    from fuxictr.features import FeatureMap
    from fuxictr.preprocess import FeatureProcessor
    from fuxictr.pytorch.dataloaders import RankDataLoader

    from gatelab.recsys.data.frappe import FRAPPE_FIELDS

    logging.getLogger().setLevel(logging.WARNING)
    cols = [{"active": True, "dtype": "float", "name": list(FRAPPE_FIELDS), "type": "categorical"}]
    fp = FeatureProcessor(
        feature_cols=cols,
        label_col={"dtype": "float", "name": "label"},
        dataset_id="frappe",
        data_root=os.path.join(tmp, "fuxictr_data"),
    )
    os.makedirs(fp.data_dir, exist_ok=True)
    with _polars_dtypes_compat():
        train = fp.preprocess(fp.read_data(str(files["train"]), data_format="csv"))
    fp.fit(train, rebuild_dataset=True)
    df = train.collect()
    encoded = fp.transform({c: df[c].to_numpy() for c in df.columns})
    path = os.path.join(fp.data_dir, "train.npz")
    np.savez(path, **{k: np.asarray(v) for k, v in encoded.items()})
    fm = FeatureMap("frappe", fp.data_dir)
    fm.load(os.path.join(fp.data_dir, "feature_map.json"), {})
    loader = RankDataLoader(
        fm, stage="train", train_data=path, batch_size=batch_size, shuffle=True, data_format="npz"
    )
    return fm, loader[0]


def _epoch_round(
    loader: Iterable[Any], step: Callable[[Any], Any], max_batches: int, rows_of: Callable[[Any], int]
) -> tuple[int, float]:
    """One epoch (or its first ``max_batches`` batches): fresh iterator, load, train; (rows, seconds)."""
    t0 = time.perf_counter()
    n = 0
    it = iter(loader)
    for b in itertools.islice(it, max_batches or None):
        step(b)
        n += rows_of(b)
    return n, time.perf_counter() - t0


def _epoch_mode(args: argparse.Namespace, zoo: Path, tmp: str, threads: int) -> list[dict[str, Any]]:
    import fuxictr
    import torch

    from gatelab.core.harness.data import cache_dir
    from gatelab.recsys.data import ctr_datamodule
    from gatelab.recsys.data.frappe import prepare_frappe_x1

    names = [n for n in args.models if n in ("finalmlp", "gdcn-p")]
    if not names:
        return []
    dm = ctr_datamodule(args.data_dir, "frappe", batch_size=args.batch_size, seed=0)
    ours_loader = dm.train_dataloader()
    files, _ = prepare_frappe_x1(Path(args.data_dir) / "frappe", cache_dir() / "recsys")
    fm, their_loader = _fuxictr_data(files, tmp, args.batch_size)
    spec = dm.model_kwargs()["feature_spec"]
    vocab = {
        "gatelab_rows": sum(f["vocab_size"] for f in spec["fields"]),
        "fuxictr_rows": sum(int(f["vocab_size"]) for f in fm.features.values()),
    }
    rows = []
    for name in names:
        torch.manual_seed(0)
        task, theirs = _build(name, zoo, tmp, spec=spec, feature_map=fm)
        ours = task.model
        ours.train(), theirs.train()
        theirs._max_gradient_norm = 10.0
        step = _train_step(task, ours, list(ours.parameters()))
        ours_side = (ours_loader, step, lambda b: len(b["target"]))
        their_side = (their_loader, theirs.train_step, lambda b: len(b["label"]))
        for loader, fn, count in (ours_side, their_side):  # warm-up: 2 batches each (allocator, loader worker)
            _epoch_round(loader, fn, 2, count)
        sides = {
            label: (lambda side=side: _epoch_round(side[0], side[1], args.epoch_batches, side[2]))
            for label, side in (("gatelab", ours_side), ("fuxictr", their_side))
        }
        rates = _interleave(sides, args.epoch_rounds)
        config = {
            "batch_size": args.batch_size,
            "threads": threads,
            "rounds": args.epoch_rounds,
            "epoch_batches": args.epoch_batches or "all",
            "train_rows": int(dm.spec.splits["train"]["rows"]),
            "loaders": "gatelab CTRDataModule.train_dataloader; fuxictr RankDataLoader(npz, shuffle)",
            **vocab,
        }
        baseline = f"fuxictr {fuxictr.__version__} {FUXICTR_MODELS[name][1]} + its loader"
        rows += _rows(name, "frappe", "train-epoch", rates, baseline, config)
    return rows


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if not args.fuxictr_model_zoo:
        raise SystemExit("recsys_speed: give --fuxictr-model-zoo (or set GATELAB_FUXICTR_MODEL_ZOO)")
    zoo = Path(args.fuxictr_model_zoo).expanduser()
    import torch

    from gatelab.core.harness import ledger

    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if "step" in args.mode:
            rows += _step_mode(args, zoo, tmp, threads)
        if "epoch" in args.mode:
            rows += _epoch_mode(args, zoo, tmp, threads)
    command = shlex.join(
        ["python", "benchmarks/recsys_speed.py", *(argv if argv is not None else sys.argv[1:])]
    )
    for r in rows:
        r["command"] = command
    if args.dry_run:
        print("\n".join(json.dumps(r) for r in rows))
        return 0
    ledger.append_records("recsys-speed", rows, args.results_dir, render=False)
    md = ledger.render_markdown(
        "recsys-speed",
        args.results_dir,
        title="recsys-speed: CTR training throughput on the CPU, gatelab vs FuxiCTR",
        description=(
            "Samples/s of training at the Frappe_x1 presets, batch 4096, gatelab vs FuxiCTR in the same process, "
            "alternating rounds. `train-step` (dataset `frappe-sized`): one training step (forward, BCE + embedding L2, "
            "backward, clip 10, Adam: gatelab's build_optimizer -- fused Adam, what CTRTask trains with -- and "
            "FuxiCTR's own torch.optim.Adam) on random batches of the Frappe_x1 sizes, FuxiCTR's weights copied into gatelab's "
            "model and the predictions checked equal. `train-epoch` (dataset `frappe`): end to end with data loading, "
            "each library's own loader (FuxiCTR: its encoder + RankDataLoader npz, one worker; gatelab: its CTR data "
            "module) over the same shuffled training split. speedup = median over rounds of the per-round ratio "
            "gatelab / FuxiCTR; speedup_lo / speedup_hi: its bootstrap 95% interval; all per-round rates are in each "
            "record's config."
        ),
        metrics=["samples_per_s", "baseline_samples_per_s", "speedup", "speedup_lo", "speedup_hi", "rounds"],
    )
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
