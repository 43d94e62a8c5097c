"""Training throughput of gatelab's FinalMLP, GDCN-P and Fi-GNN vs FuxiCTR's on the CPU, same sizes, one process.

For each model, one *training step* on a batch is: forward, BCE + embedding L2 (0.05, FuxiCTR's
``embedding_regularizer`` over the whole tables), backward, gradient-norm clipping at 10, Adam
step -- for gatelab through :class:`gatelab.recsys.tasks.ctr.CTRTask` (``compute_loss`` in train
mode), for FuxiCTR through its own ``BaseModel.train_step``. Both models get the Frappe_x1
sizes (the official vocabularies: 5,399 embedding rows over 10 fields) and the published Frappe
presets (FinalMLP: BARS ``FinalMLP_frappe_x1_004``; GDCN-P: embedding 16, DNN 400-400-400, BN,
dropout 0.5, 3 gated cross layers; Fi-GNN: BARS ``FiGNN_frappe_x1_003``, 17 graph layers without
GRU, embedding L2 0.001 on both sides), and the same random batches. Before timing, FuxiCTR's
weights are copied into gatelab's model and the eval-mode predictions compared (the difference
is recorded), so both sides compute the same function.

Timing alternates rounds (gatelab, FuxiCTR, gatelab, ...) to spread machine noise over both and
reports the median samples/s over rounds; ``speedup = gatelab / FuxiCTR``. Threads: whatever
torch uses (``OMP_NUM_THREADS``; the shared slot runner sets 1).

FuxiCTR's model code is not in its pip package: point ``--fuxictr-model-zoo`` (or
``$GATELAB_FUXICTR_MODEL_ZOO``) at a checkout's ``model_zoo`` folder (reczoo/FuxiCTR; its
``FinalMLP/src``, ``GDCN/src`` and ``FiGNN/src`` are imported) with the ``fuxictr`` package installed
(``uv sync --group anchors``). Results go to ``docs/results/recsys-speed.jsonl`` (table
``recsys-speed``) unless ``--dry-run``.

Usage::

    /work/notes/cpu_slot .venv/bin/python benchmarks/recsys_speed.py --fuxictr-model-zoo /path/FuxiCTR/model_zoo
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shlex
import statistics
import sys
import tempfile
import time
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
FUXICTR_MODELS = {"finalmlp": ("FinalMLP", "FinalMLP"), "gdcn-p": ("GDCN", "GDCNP"), "fignn": ("FiGNN", "FiGNN")}
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
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--rounds", type=int, default=5, help="alternating timing rounds")
    p.add_argument("--steps", type=int, default=5, help="training steps per round")
    p.add_argument("--warmup", type=int, default=3)
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


def _build(name: str, zoo: Path, tmp: str) -> tuple[Any, Any]:
    """(gatelab CTRTask, FuxiCTR model) with identical weights."""
    import torch

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
    if name == "finalmlp":
        task = CTRTask(
            model_name="finalmlp",
            model_kwargs={"feature_spec": _gatelab_spec(), "preset": "frappe-x1"},
            task=task_spec,
        )
        cfg = task.model.config
        zoo_mod = _import_src(zoo, "FinalMLP")
        theirs = zoo_mod.FinalMLP(
            _feature_map(tmp, cfg.embedding_dim),
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
        task = CTRTask(
            model_name="fignn",
            model_kwargs={"feature_spec": _gatelab_spec(), "preset": "frappe-x1"},
            task=task_spec,
        )
        cfg = task.model.config
        zoo_mod = _import_src(zoo, "FiGNN")
        theirs = zoo_mod.FiGNN(
            _feature_map(tmp, cfg.embedding_dim),
            model_id="bench_fignn",
            use_gru=cfg.update == "gru",
            **_fuxictr_kwargs(cfg, ["embedding_dim", "num_layers", "residual", "share_weights"]),
            **common,
        )
        ours = task.model
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
        task = CTRTask(
            model_name="gdcn-p",
            model_kwargs={"feature_spec": _gatelab_spec(), "preset": "frappe-x1"},
            task=task_spec,
        )
        cfg = task.model.config
        zoo_mod = _import_src(zoo, "GDCN")
        theirs = zoo_mod.GDCNP(
            _feature_map(tmp, cfg.embedding_dim),
            model_id="bench_gdcnp",
            **_fuxictr_kwargs(
                cfg, ["embedding_dim", "dnn_hidden_dims", "num_cross_layers", "dropout", "batch_norm"]
            ),
            **common,
        )
        ours = task.model
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


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if not args.fuxictr_model_zoo:
        raise SystemExit("recsys_speed: give --fuxictr-model-zoo (or set GATELAB_FUXICTR_MODEL_ZOO)")
    zoo = Path(args.fuxictr_model_zoo).expanduser()
    import fuxictr
    import torch

    from gatelab.core.harness import ledger, provenance

    threads = torch.get_num_threads()
    rows = []
    batches = _batches(args.steps, args.batch_size)
    with tempfile.TemporaryDirectory() as tmp:
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
            opt = torch.optim.Adam(ours.parameters(), lr=1e-3)
            params = list(ours.parameters())

            def step_ours(b: dict[str, Any], task=task, ours=ours, opt=opt, params=params) -> None:
                opt.zero_grad()
                loss = task.compute_loss(ours(categorical=b["categorical"]), b["target"])
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 10.0)
                opt.step()

            theirs._max_gradient_norm = 10.0  # fit() sets this before train_step
            steps = {"gatelab": step_ours, "fuxictr": lambda b, m=theirs: m.train_step(b)}
            if args.compile:
                compiled = torch.compile(ours)

                def step_compiled(
                    b: dict[str, Any], task=task, model=compiled, opt=opt, params=params
                ) -> None:
                    opt.zero_grad()
                    loss = task.compute_loss(model(categorical=b["categorical"]), b["target"])
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(params, 10.0)
                    opt.step()

                steps["gatelab-compile"] = step_compiled
            key = {"gatelab": 0, "fuxictr": 1, "gatelab-compile": 0}
            for label, fn in steps.items():
                for i in range(args.warmup):
                    fn(batches[i % len(batches)][key[label]])
            rates: dict[str, list[float]] = {k: [] for k in steps}
            for _ in range(args.rounds):
                for label, fn in steps.items():
                    t0 = time.perf_counter()
                    for b in batches:
                        fn(b[key[label]])
                    rates[label].append(len(batches) * args.batch_size / (time.perf_counter() - t0))
            base = statistics.median(rates["fuxictr"])
            for label in steps:
                if label == "fuxictr":
                    continue
                sps = statistics.median(rates[label])
                rows.append(
                    {
                        "model": name,
                        "dataset": "frappe-sized",
                        "split": "train-step",
                        "variant": label,
                        "baseline": f"fuxictr {fuxictr.__version__} {FUXICTR_MODELS[name][1]}",
                        "seed": 0,
                        "samples_per_s": round(sps, 1),
                        "baseline_samples_per_s": round(base, 1),
                        "speedup": round(sps / base, 3),
                        "config": json.dumps(
                            {
                                "batch_size": args.batch_size,
                                "threads": threads,
                                "rounds": args.rounds,
                                "steps": args.steps,
                                "max_pred_diff": max_diff,
                                "all_rates": {k: [round(r, 1) for r in v] for k, v in rates.items()},
                            },
                            sort_keys=True,
                        ),
                    }
                )
                print(
                    f"{name:9s} {label:16s} {sps:10.0f} samples/s   fuxictr {base:10.0f}   speedup {sps / base:.2f}x   (pred diff {max_diff:.1e})"
                )
    command = shlex.join(
        ["python", "benchmarks/recsys_speed.py", *(argv if argv is not None else sys.argv[1:])]
    )
    for r in rows:
        r["command"] = command
    if args.dry_run:
        print("\n".join(json.dumps(r) for r in rows))
        return 0
    ledger.append_records("recsys-speed", rows, args.results_dir)
    md = ledger.render_markdown(
        "recsys-speed",
        args.results_dir,
        title="recsys-speed: CTR training throughput on the CPU, gatelab vs FuxiCTR",
        description=(
            "Samples/s of one training step (forward, BCE + embedding L2, backward, clip 10, Adam) at the Frappe_x1 sizes "
            "and presets, batch 4096, gatelab vs FuxiCTR's model_zoo code in the same process (alternating rounds, median); "
            "speedup = gatelab / FuxiCTR. Predictions of both were checked equal after copying FuxiCTR's weights."
        ),
        metrics=["samples_per_s", "baseline_samples_per_s", "speedup"],
    )
    print(md)
    del provenance
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
