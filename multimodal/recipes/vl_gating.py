"""``gatelab repro vl-gating``: token-wise gate vs no gate vs always-visual on shapes (+ text pre-training).

Protocol (every step through the harness: ``run_experiment`` with the registered ``vl-*`` data
modules, the ``vl-lm`` task and the ``vl-*-decoder`` models):

1. **Tokenizer + text pre-training.** A byte-level BPE is trained on the text corpus
   (``<data dir>/text_corpora``, ~2.3M words, 1% of documents held out for validation and 1% for
   test); a ``vl-gated-decoder`` is trained on it with the visual path off (``text_epochs``).
   Row ``text-pretrain``: BLiMP and held-out text perplexity.
2. **Shapes.** Each variant -- ``gate-scalar`` and ``gate-vector`` (token-wise gate, one value per
   token or per channel, ``vl-gated-decoder``), ``no-gate``
   (cross-attention added to the residual, ``vl-nogate-decoder``) and ``always-visual`` (gate
   fixed at 1, ``vl-visual-decoder``) -- starts from the text-pre-trained weights (its visual path
   freshly initialised) and trains on generated shapes captions interleaved with text batches
   (``text_ratio``). Rows: BLiMP, text perplexity, caption perplexity with and without the image,
   text-to-image retrieval R@1/R@5 by caption likelihood (``r@k``) and by the InfoNCE embeddings
   (``clip_r@k``) on the held-out gallery, and the mean visual gate per word class.
3. **COCO-mini.** The gated model, from the same text weights, trained on the 400 train2017
   captions (images as 16x16-pixel patch tokens of a 64x64 resize) interleaved with text; row
   with perplexities, retrieval on the held-out val2017 images and the gate per word class.

Side tables (same ledger, written by this run): ``vl-gating-blimp`` (accuracy per BLiMP paradigm
per row) and ``vl-gating-gates`` (gate per word class and for the 20 most frequent words, mean and
per layer); the figure
``vl-gating-gates.png`` (mean visual gate per word class, shapes and COCO-mini).

Deviations from the paper's protocol (stated in the table): 2.3M words instead of BabyLM's 50M,
DINOv2 embeddings of CC3M/Localized Narratives replaced by raw pixel patches of generated shapes
and COCO-mini images, a d=192 4-layer decoder instead of d=768 with 8 decoder + 5 encoder
layers, a few epochs on one CPU thread, the full (unfiltered) BLiMP, and one shared text
pre-training run for all variants instead of alternating text and caption epochs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from gatelab.core.harness import (
    ExperimentConfig,
    dataset_file,
    file_sha256,
    locate,
    provenance,
    resolve_data_dir,
    run_experiment,
)
from gatelab.core.harness.ledger import append_records, resolve_results_dir
from gatelab.core.harness.repro import table_options

from ..analysis.evaluation import (
    GateReport,
    blimp_accuracy,
    caption_perplexity,
    contrastive_retrieval,
    gate_by_word_class,
    generative_retrieval,
    plot_gate_classes,
    sequence_logprobs,
)
from ..analysis.wordclasses import shapes_word_class, word_class
from ..data.blimp import BLIMP, read_blimp
from ..data.captions import COCO_MINI
from ..data.text import TEXT_CORPORA
from ..tasks.vl import VLTask

__all__ = ["PAPER_BLIMP", "VARIANTS", "run_vl_gating"]

#: the paper's BLiMP accuracy (%) of its token-wise gated model trained on BabyLM's 50M words
PAPER_BLIMP = 73.86

#: variant -> (registered model, extra model kwargs); the row label is the variant name
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "gate-scalar": ("vl-gated-decoder", {"gate_mode": "scalar"}),
    "gate-vector": ("vl-gated-decoder", {"gate_mode": "vector"}),
    "no-gate": ("vl-nogate-decoder", {}),
    "always-visual": ("vl-visual-decoder", {}),
}

_QUICK = {
    "d_model": 32,
    "n_layers": 2,
    "n_heads": 2,
    "vocab_size": 600,
    "text_max_words": 20000,
    "text_epochs": 1,
    "shapes_train": 256,
    "shapes_eval": 48,
    "shapes_epochs": 1,
    "coco_epochs": 1,
    "blimp_per_paradigm": 4,
    "gallery": 16,
}


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    s = {k: getattr(args, k) for k in _QUICK}
    if args.quick:
        s.update({k: v for k, v in _QUICK.items() if k != "coco_epochs" or args.coco_epochs > 0})
    return s


def _trainer(epochs: int) -> dict[str, Any]:
    return {
        "max_epochs": epochs,
        "accelerator": "cpu",
        "devices": 1,
        "loggers": ["csv"],
        "checkpoint": {
            "enabled": True,
            "monitor": "val/loss",
            "mode": "min",
            "save_top_k": 1,
            "save_last": False,
        },
        "early_stopping": None,
        "gradient_clip_val": 1.0,
        "log_every_n_steps": 20,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
    }


def _task(lr: float, warmup: int, init_from: str | None = None) -> dict[str, Any]:
    return {
        "name": "vl-lm",
        "kwargs": {"contrastive_weight": 1.0, "init_from": init_from},
        "optimizer": "adamw",
        "lr": lr,
        "weight_decay": 0.01,
        "scheduler": {"name": "cosine", "interval": "step", "warmup": warmup},
        "monitor": "val/loss",
    }


def _load_best(res: Any) -> torch.nn.Module:
    """The best checkpoint's model (with its tokenizer), in eval mode."""
    ckpt = res.best_checkpoint or res.last_checkpoint
    if ckpt is None:
        raise RuntimeError(f"run {res.run_dir} saved no checkpoint")
    task = VLTask.load_from_checkpoint(ckpt, map_location="cpu", weights_only=True)
    return task.model.eval()


def _text_ppl(model: torch.nn.Module, blocks: torch.Tensor) -> float:
    lp, n = sequence_logprobs(model, list(blocks), None, batch_size=64)
    return math.exp(-lp.sum().item() / n.sum().item())


def _caption_metrics(
    model: torch.nn.Module, dm: Any, split: str, gallery: int, classify: Any
) -> tuple[dict[str, float], GateReport | None]:
    """Perplexities, retrieval and the gate report on a caption split of data module ``dm``."""
    ids = dm.caption_ids(split)
    cs = dm.captions[split]
    images = cs.images[cs.caption_image]
    out = {
        "ppl_image": caption_perplexity(model, ids, images),
        "ppl_noimage": caption_perplexity(model, ids, None),
    }
    n_img = min(gallery, len(cs.images))
    keep = [i for i, j in enumerate(cs.caption_image.tolist()) if j < n_img]
    sub_ids = [ids[i] for i in keep]
    owner = cs.caption_image[keep]
    gen = generative_retrieval(model, sub_ids, owner, cs.images[:n_img], progress=True)
    out.update({k: 100.0 * v for k, v in gen.items()})
    if getattr(model, "contrastive", False):
        clip = contrastive_retrieval(model, sub_ids, owner, cs.images[:n_img])
        out.update({f"clip_{k}": 100.0 * v for k, v in clip.items()})
    report = None
    if model.fusion == "gate":
        report = gate_by_word_class(model, model.tokenizer, cs.captions, images, classify=classify)
        for cls, v in report.classes.items():
            out[f"gate_{cls}"] = v["gate_mean"]
    return out, report


def _blimp_rows(result: dict[str, Any], base: dict[str, Any]) -> list[dict[str, Any]]:
    rows = [{**base, "split": p, "accuracy": 100.0 * a} for p, a in result["per_paradigm"].items()]
    rows.append({**base, "split": "overall", "accuracy": 100.0 * result["overall"]})
    return rows


def _gate_rows(
    report: GateReport, base: dict[str, Any], label: str, top_words: int = 20
) -> list[dict[str, Any]]:
    """One row per word class, then the ``top_words`` most frequent words (``variant``: ``class=...`` / ``word=...``)."""
    rows = [{**base, "variant": f"{label} class={cls}", **v} for cls, v in sorted(report.classes.items())]
    frequent = sorted(report.words.items(), key=lambda kv: (-kv[1]["n"], kv[0]))[:top_words]
    rows += [{**base, "variant": f"{label} word={w}", **v} for w, v in frequent]
    return rows


def _unverified_digest(spec: Any, data_dir: Path) -> str:
    """``dataset_sha256``'s digest without the check against the published digests (``--skip-checksums``)."""
    root = spec.root(data_dir)
    h = hashlib.sha256()
    for rel in spec.files:
        path = dataset_file(spec, rel, data_dir)
        h.update(f"{path.relative_to(root).as_posix()} {file_sha256(path)}\n".encode())
    return h.hexdigest()


def _config_json(args: argparse.Namespace, s: dict[str, Any]) -> str:
    opts = table_options(args)
    opts.update(s)  # the settings actually used (--quick replaces some)
    return json.dumps(opts, sort_keys=True, default=str)


def run_vl_gating(args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    """Rows of ``gatelab repro vl-gating`` (module docstring); also writes the side tables and the plot."""
    if os.environ.get("GATELAB_NUM_THREADS"):
        torch.set_num_threads(int(os.environ["GATELAB_NUM_THREADS"]))
    s = _settings(args)
    config = _config_json(args, s)
    commit = provenance.git_commit()  # the side tables record the code the run started from
    data_dir = resolve_data_dir(args.data_dir)
    tag = "-quick" if args.quick else ""
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"--variants: unknown {unknown}; choose from {list(VARIANTS)}")
    verify = not args.skip_checksums
    # run_table verifies the files when it stamps data_sha256; with --skip-checksums stamp it here
    stamp: dict[str, dict[str, str]] = {TEXT_CORPORA.name: {}, COCO_MINI.name: {}}
    if not verify:
        stamp = {
            spec.name: {"data_sha256": _unverified_digest(spec, data_dir)}
            for spec in (TEXT_CORPORA, COCO_MINI)
        }
    unchecked = "" if verify else "; data checksums not verified (--skip-checksums)"
    pairs = read_blimp(locate(BLIMP, data_dir, verify=verify), per_paradigm=s["blimp_per_paradigm"])
    model_kw = {
        "d_model": s["d_model"],
        "num_layers": s["n_layers"],
        "num_heads": s["n_heads"],
        "dropout": 0.1,
    }
    common_data = {"seq_len": args.seq_len, "batch_size": args.batch_size}
    extra = {"config": config, "commit": commit}

    def _side(table: str, rows: list[dict[str, Any]]) -> None:
        """Append side-table rows at once (a later failure keeps them), unless --dry-run."""
        if not args.dry_run:
            append_records(table, [{**r, **extra} for r in rows], args.results_dir)

    reports: dict[str, GateReport] = {}

    for seed in args.seeds:
        root = Path(args.output_dir) / f"seed{seed}{tag}"
        tok_path = root / "tokenizer.json"
        # which rows of this seed to produce (all but --resume's recorded ones / --verify's choice);
        # the text pre-training runs whenever any does: every later row starts from its weights
        want_text = args.should_run(
            {"model": "vl-gated-decoder", "dataset": "text-corpora", "split": "test", "seed": seed,
             "variant": f"text-pretrain{tag}"}, config,
        )  # fmt: skip
        want_variant = {
            v: args.should_run(
                {
                    "model": VARIANTS[v][0],
                    "dataset": "shapes",
                    "split": "test",
                    "seed": seed,
                    "variant": f"{v}{tag}",
                },
                config,
            )
            for v in args.variants
        }
        want_coco = s["coco_epochs"] > 0 and args.should_run(
            {"model": "vl-gated-decoder", "dataset": "coco-mini-captions", "split": "test", "seed": seed,
             "variant": f"gate-scalar{tag}"}, config,
        )  # fmt: skip
        if not (want_text or any(want_variant.values()) or want_coco):
            continue

        # 1. tokenizer + text pre-training ------------------------------------------------------
        text_cfg = ExperimentConfig.from_dict(
            {
                "name": "text-pretrain",
                "seed": seed,
                "output_dir": str(root),
                "test": False,
                "model": {"name": "vl-gated-decoder", "kwargs": model_kw},
                "data": {
                    "name": "vl-text",
                    "kwargs": {
                        **common_data,
                        "vocab_size": s["vocab_size"],
                        "save_tokenizer": str(tok_path),
                        "max_words": s["text_max_words"],
                        "val_fraction": 0.05 if args.quick else 0.01,
                        "test_fraction": 0.05 if args.quick else 0.01,
                        "seed": seed,
                        "verify": verify,
                    },
                },
                "task": _task(args.lr, 200 if not args.quick else 0),
                "trainer": _trainer(s["text_epochs"]),
            }
        )
        res = run_experiment(text_cfg, data_dir=data_dir)
        text_ckpt = res.best_checkpoint
        text_blocks = res.datamodule.text_blocks("test")
        if want_text:
            model = _load_best(res)
            b = blimp_accuracy(model, model.tokenizer, pairs, progress=True)
            base = {"model": "vl-gated-decoder", "seed": seed, "variant": f"text-pretrain{tag}"}
            _side("vl-gating-blimp", _blimp_rows(b, {**base, "dataset": "blimp"}))
            yield {
                **base,
                "config": config,
                "dataset": "text-corpora",
                **stamp[TEXT_CORPORA.name],
                "split": "test",
                "blimp": 100.0 * b["overall"],
                "text_ppl": _text_ppl(model, text_blocks),
                "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
                "note": f"run {res.run_dir}; {len(pairs)} BLiMP pairs{unchecked}",
            }

        # 2. shapes: gate vs no-gate vs always-visual -------------------------------------------
        for variant in args.variants:
            if not want_variant[variant]:
                continue
            cfg = ExperimentConfig.from_dict(
                {
                    "name": f"shapes-{variant}",
                    "seed": seed,
                    "output_dir": str(root),
                    "test": False,
                    "model": {"name": VARIANTS[variant][0], "kwargs": {**model_kw, **VARIANTS[variant][1]}},
                    "data": {
                        "name": "vl-shapes",
                        "kwargs": {
                            **common_data,
                            "tokenizer": str(tok_path),
                            "n_train": s["shapes_train"],
                            "n_val": s["shapes_eval"],
                            "n_test": s["shapes_eval"],
                            "text_ratio": args.text_ratio,
                            "text_max_words": s["text_max_words"],
                            "seed": seed,
                            "verify": verify,
                        },
                    },
                    "task": _task(args.finetune_lr, 100 if not args.quick else 0, str(text_ckpt)),
                    "trainer": _trainer(s["shapes_epochs"]),
                }
            )
            res = run_experiment(cfg, data_dir=data_dir)
            model = _load_best(res)
            label = f"{variant}{tag}"
            metrics, report = _caption_metrics(model, res.datamodule, "test", s["gallery"], shapes_word_class)
            b = blimp_accuracy(model, model.tokenizer, pairs, progress=True)
            base = {"model": VARIANTS[variant][0], "seed": seed, "variant": label}
            _side("vl-gating-blimp", _blimp_rows(b, {**base, "dataset": "blimp"}))
            if report is not None:
                _side(
                    "vl-gating-gates",
                    _gate_rows(report, {**base, "dataset": "shapes", "split": "test"}, label),
                )
                reports[f"shapes ({label})"] = report
            yield {
                **base,
                "config": config,
                "dataset": "shapes",
                "split": "test",
                "blimp": 100.0 * b["overall"],
                "text_ppl": _text_ppl(model, text_blocks),
                **metrics,
                "note": f"run {res.run_dir}; retrieval gallery {min(s['gallery'], s['shapes_eval'])} images{unchecked}",
            }

        # 3. COCO-mini: what the gate does on real captions ------------------------------------
        if want_coco:
            cfg = ExperimentConfig.from_dict(
                {
                    "name": "coco-gate",
                    "seed": seed,
                    "output_dir": str(root),
                    "test": False,
                    "model": {"name": "vl-gated-decoder", "kwargs": model_kw},
                    "data": {
                        "name": "vl-coco",
                        "kwargs": {
                            **common_data,
                            "tokenizer": str(tok_path),
                            "text_ratio": args.text_ratio,
                            "text_max_words": s["text_max_words"],
                            # a BPE trained on a capped corpus can split a long caption past seq_len:
                            # cut it (counted per split in the row's note) rather than fail the table
                            "truncate_captions": True,
                            "seed": seed,
                            "verify": verify,
                        },
                    },
                    "task": _task(args.finetune_lr, 20 if not args.quick else 0, str(text_ckpt)),
                    "trainer": _trainer(s["coco_epochs"]),
                }
            )
            res = run_experiment(cfg, data_dir=data_dir)
            model = _load_best(res)
            label = f"gate-scalar{tag}"
            metrics, report = _caption_metrics(model, res.datamodule, "test", s["gallery"], word_class)
            n_test = len(res.datamodule.captions["test"].images)
            base = {"model": "vl-gated-decoder", "seed": seed, "variant": label}
            if report is not None:
                _side(
                    "vl-gating-gates",
                    _gate_rows(report, {**base, "dataset": "coco-mini-captions", "split": "test"}, label),
                )
                reports[f"COCO-mini ({label})"] = report
            yield {
                **base,
                "config": config,
                "dataset": "coco-mini-captions",
                **stamp[COCO_MINI.name],
                "split": "test",
                "text_ppl": _text_ppl(model, text_blocks),
                **metrics,
                "note": (
                    f"run {res.run_dir}; test = the last {n_test} val2017 images by id "
                    f"(gallery {min(s['gallery'], n_test)}); captions cut to seq_len {args.seq_len}: "
                    f"{dict(res.datamodule.truncated)}{unchecked}"
                ),
            }

    if args.dry_run:
        return
    if reports:
        folder = resolve_results_dir(args.results_dir)
        plot_gate_classes(
            reports,
            folder / f"vl-gating-gates{tag}.png",
            classes=["colour", "shape", "position", "content", "function", "punct"],
            title="Mean visual gate (over layers) at the position predicting each word",
        )
