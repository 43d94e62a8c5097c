"""``gatelab repro vl-gating``: token-wise gate vs no gate vs always-visual on shapes (+ text pre-training).

The table is one :class:`~gatelab.core.harness.recipes.Recipe` (:data:`VL_RECIPE`) run cell by
cell by the harness's recipe runner (``run_experiment`` with the registered ``vl-*`` data
modules, the ``vl-lm`` task and the ``vl-*-decoder`` models). Cells, per seed, in order:

1. **Tokenizer + text pre-training** (``text-corpora``, variant ``text-pretrain``). A byte-level
   BPE is trained on the text corpus (``<data dir>/text_corpora``, ~2.3M words, 1% of documents
   held out for validation and 1% for test); a ``vl-gated-decoder`` is trained on it with the
   visual path off (``--text-epochs``). Row: BLiMP and held-out text perplexity.
2. **Shapes** (``shapes``, one variant each): ``gate-scalar`` and ``gate-vector`` (token-wise
   gate, one value per token or per channel, ``vl-gated-decoder``), ``no-gate`` (cross-attention
   added to the residual, ``vl-nogate-decoder``) and ``always-visual`` (gate fixed at 1,
   ``vl-visual-decoder``), each starting from the text-pre-trained weights (its visual path
   freshly initialised) and trained on generated shapes captions interleaved with text batches
   (``--text-ratio``), with the same budget (``--shapes-epochs``). Rows: BLiMP, text perplexity,
   caption perplexity with and without the image, text-to-image retrieval R@1/R@5 by caption
   likelihood (``r@k``) and by the InfoNCE embeddings (``clip_r@k``) on the held-out gallery,
   and the mean visual gate per word class.
3. **COCO-mini** (``coco-mini-captions``, ``gate-scalar``): the gated model, from the same text
   weights, trained on the 400 train2017 captions (images as 16x16-pixel patch tokens of a 64x64
   resize) interleaved with text; perplexities, retrieval on the held-out val2017 images and the
   gate per word class.

Every later cell starts from the text cell's best checkpoint (``task.kwargs.init_from``) and
reads its tokenizer (``data.kwargs.tokenizer``, ``<output dir>/seed<seed>/tokenizer.json``):
the run fills in the checkpoint just before the cell runs, training the text cell first when
it has not run in this invocation (``--resume`` / ``--verify`` of a later row). These paths
are left out of a row's config hash; the text pre-training's settings are in it through the
table options.

What is specific to this table stays here and in :mod:`gatelab.multimodal.analysis`: the
evaluations of each trained model (:mod:`~gatelab.multimodal.analysis.table`), the side tables
(same results dir; ``-quick`` appended for ``--quick``) ``vl-gating-blimp`` (accuracy per BLiMP
paradigm per row), ``vl-gating-gates`` and ``vl-gating-words``, and the figure
``vl-gating-gates.png`` (last-layer visual gate per word class, shapes and COCO-mini).

**Gate analysis** (issue 19). The visual gate at the position predicting each word, averaged
per word class, is read for the **last layer** (``split`` ``last``: what the paper's official
``evaluation/test_gate.py`` reads), the **mean over layers** (``mean``) and **every layer**
(``layer0`` ..), for **every** class the captions contain: ``colour``, ``shape``, ``position``
(the visual words of the shapes captions), ``function``, ``content``, ``number``, ``punct``.
Word classes come from a fixed lexicon, :mod:`gatelab.multimodal.analysis.wordclasses` (no
part-of-speech tagger is installed; the paper uses spaCy's): closed-class English words are
``function``, a token without letters or digits ``punct``, a number ``number``; the shapes
captions' colour / shape / position words (:data:`~gatelab.multimodal.data.shapes.COLOURS`,
``SHAPES``, ``POSITIONS``) their own classes; everything else ``content``. In
``vl-gating-gates`` a row is ``(model = word class, dataset, split = layer reading, variant,
seed)`` with ``gate`` and ``n``: the classes of one trained model are the "models" of a
:class:`~gatelab.core.harness.stats.Comparison`, so :data:`GATE_COMPARISONS` (each visual class
against function words and against punctuation; content against function words) pair them by
seed -- the same run, the same captions -- per variant and per layer reading, with a 95% paired
t-interval over the seeds (default 0, 1, 2). :func:`gate_claim` states what that says about
"the gate opens on visual words", misses included. The main table's rows carry
``gate_last_<class>`` and ``gate_mean_<class>``.

Deviations from the paper's protocol (stated in the table): 2.3M words instead of BabyLM's 50M,
DINOv2 embeddings of CC3M/Localized Narratives replaced by raw pixel patches of generated shapes
and COCO-mini images, a d=192 4-layer decoder instead of d=768 with 8 decoder + 5 encoder
layers, a few epochs on one CPU thread, the full (unfiltered) BLiMP, and one shared text
pre-training run for all variants instead of alternating text and caption epochs.

This module stays import-light (no torch at import): the registry names its table lazily.
"""

from __future__ import annotations

import argparse
import hashlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from gatelab.core.harness.recipes import Budget, Cell, CellRun, Recipe, Reference, run_cell
from gatelab.core.harness.repro import Option, ReproTable, register_table
from gatelab.core.harness.stats import Comparison

__all__ = [
    "GATE_COMPARISONS",
    "PAPER_BLIMP",
    "SIDE_PAGES",
    "VARIANTS",
    "VL_RECIPE",
    "VL_TABLE",
    "gate_claim",
    "run_vl_gating",
    "vl_cells",
    "vl_options",
    "vl_settings",
]

#: the paper's BLiMP accuracy (%) of its token-wise gated model trained on BabyLM's 50M words
PAPER_BLIMP = 73.86
_PAPER = (
    "Ganescu et al. 2025 (BabyLM), Looking to Learn: Token-wise Dynamic Gating; BLiMP 73.86 (soft gate per token)"
)

#: variant -> (registered model, extra model kwargs); the row's ``variant`` is the variant name
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "gate-scalar": ("vl-gated-decoder", {"gate_mode": "scalar"}),
    "gate-vector": ("vl-gated-decoder", {"gate_mode": "vector"}),
    "no-gate": ("vl-nogate-decoder", {}),
    "always-visual": ("vl-visual-decoder", {}),
}
TEXT, SHAPES, COCO = "text-corpora", "shapes", "coco-mini-captions"

#: the word classes whose identity only the image reveals (shapes captions), and the rest
VISUAL_CLASSES = ("colour", "shape", "position")
TEXT_CLASSES = ("function", "punct")
#: gate(class a) - gate(class b) of the same trained model, paired by seed, per variant and
#: layer reading, on the ``vl-gating-gates`` side table (``model`` = the word class there)
GATE_COMPARISONS: tuple[Comparison, ...] = (
    *(
        Comparison("gate", v, t, lower_is_better=False, label=f"gate: {v} − {t}")
        for v in VISUAL_CLASSES
        for t in TEXT_CLASSES
    ),
    Comparison("gate", "content", "function", lower_is_better=False, label="gate: content − function"),
)
_GATES_DESCRIPTION = (
    "Visual gate per word class (model = the word class; fixed lexicon, "
    "gatelab.multimodal.analysis.wordclasses) at the position predicting each word: split = last "
    "(last layer, the official evaluation's reading), mean (over layers), layer<i>; n = word "
    "occurrences. Paired comparisons: classes of the same trained model, paired by seed."
)

#: the side ledgers a run writes beside ``vl-gating`` (``-quick`` for ``--quick``), with the
#: render arguments of their pages: BLiMP per paradigm, the gate per word class and layer (with
#: the paired class comparisons), the gate per word
SIDE_PAGES: dict[str, dict[str, Any]] = {
    "vl-gating-blimp": {},
    "vl-gating-gates": {"description": _GATES_DESCRIPTION, "comparisons": GATE_COMPARISONS},
    "vl-gating-words": {},
}

#: what ``--quick`` replaces (``coco_epochs`` only when the COCO row is not switched off)
_QUICK = {
    "d_model": 32, "num_layers": 2, "num_heads": 2, "vocab_size": 600, "text_max_words": 20000,
    "text_epochs": 1, "shapes_train": 256, "shapes_eval": 48, "shapes_epochs": 1, "coco_epochs": 1,
    "blimp_per_paradigm": 4, "gallery": 16,
}  # fmt: skip


def vl_options(args: argparse.Namespace | Mapping[str, Any]) -> dict[str, Any]:
    """The table options with ``--quick``'s settings applied (what the cells are built from):
    the smaller sizes of ``_QUICK`` and only the first of ``--seeds``."""
    opts = dict(args if isinstance(args, Mapping) else vars(args))
    if opts.get("quick"):
        opts.update({k: v for k, v in _QUICK.items() if k != "coco_epochs" or opts["coco_epochs"] > 0})
        opts["seeds"] = list(opts["seeds"])[:1]  # a smoke / CI run: the first seed only
    return opts


def _variant(cell: Cell) -> str:
    return (cell.variant or "").removesuffix("-quick")


def _root(cell: Cell, options: Mapping[str, Any]) -> Path:
    return Path(options["output_dir"]) / f"seed{cell.seed}{'-quick' if options.get('quick') else ''}"


def vl_settings(cell: Cell, options: Mapping[str, Any]) -> dict[str, Any]:
    """The recipe's ``configure`` hook: the run of ``cell`` under ``options`` (:func:`vl_options`):
    its name and directory, the decoder's sizes (plus the variant's model kwargs), the data
    module of the stage with its sizes, and the stage's learning rate and warm-up. The text cell
    saves the tokenizer the later cells read."""
    root = _root(cell, options)
    quick = bool(options.get("quick"))
    model = {"d_model": options["d_model"], "num_layers": options["num_layers"], "num_heads": options["num_heads"]}
    common = {"seq_len": options["seq_len"], "batch_size": options["batch_size"], "seed": cell.seed,
              "verify": not options.get("skip_checksums")}  # fmt: skip
    if cell.dataset == TEXT:
        return {
            "name": "text-pretrain",
            "output_dir": str(root),
            "model": {"kwargs": model},
            "data": {"name": "vl-text", "kwargs": {
                **common, "vocab_size": options["vocab_size"], "save_tokenizer": str(root / "tokenizer.json"),
                "max_words": options["text_max_words"], "val_fraction": 0.05 if quick else 0.01,
                "test_fraction": 0.05 if quick else 0.01}},
            "task": {"lr": options["lr"], "scheduler": {"warmup": 0 if quick else 200}},
        }  # fmt: skip
    shared = {"tokenizer": str(root / "tokenizer.json"), "text_ratio": options["text_ratio"],
              "text_max_words": options["text_max_words"]}  # fmt: skip
    if cell.dataset == SHAPES:
        variant = _variant(cell)
        return {
            "name": f"shapes-{variant}",
            "output_dir": str(root),
            "model": {"kwargs": {**model, **VARIANTS[variant][1]}},
            "data": {"name": "vl-shapes", "kwargs": {
                **common, **shared, "n_train": options["shapes_train"], "n_val": options["shapes_eval"],
                "n_test": options["shapes_eval"]}},
            "task": {"lr": options["finetune_lr"], "scheduler": {"warmup": 0 if quick else 100}},
        }  # fmt: skip
    return {
        "name": "coco-gate",
        "output_dir": str(root),
        "model": {"kwargs": model},
        # a BPE trained on a capped corpus can split a long caption past seq_len: cut it (counted
        # per split in the row's note) rather than fail the table
        "data": {"name": "vl-coco", "kwargs": {**common, **shared, "truncate_captions": True}},
        "task": {"lr": options["finetune_lr"], "scheduler": {"warmup": 0 if quick else 20}},
    }


#: the ``vl-gating`` table as data: the stages' shared protocol; per-cell settings in :func:`vl_settings`
# fmt: off
VL_RECIPE = Recipe(
    name="vl-gating",
    models=("vl-gated-decoder", "vl-nogate-decoder", "vl-visual-decoder"),
    datasets=(TEXT, SHAPES, COCO),
    splits=("test",),
    seeds=(0, 1, 2),
    base={
        "output_dir": "runs/vl-gating",
        "test": False,
        "model": {"kwargs": {"dropout": 0.1}},
        "task": {
            "name": "vl-lm",
            "kwargs": {"contrastive_weight": 1.0},
            "optimizer": "adamw",
            "weight_decay": 0.01,
            "scheduler": {"name": "cosine", "interval": "step"},
            "monitor": "val/loss",
        },
        "trainer": {
            "accelerator": "cpu",
            "devices": 1,
            "loggers": ["csv"],
            "checkpoint": {"enabled": True, "monitor": "val/loss", "mode": "min", "save_top_k": 1, "save_last": False},
            "early_stopping": None,
            "gradient_clip_val": 1.0,
            "log_every_n_steps": 20,
            "enable_model_summary": False,
            "num_sanity_val_steps": 0,
        },
    },
    configure=vl_settings,
    references=(Reference("vl-gated-decoder", SHAPES, {"blimp": PAPER_BLIMP}, _PAPER, split="test", variant="gate-scalar"),),
    not_hashed=("output_dir", "trainer.progress_bar", "task.kwargs.init_from", "data.kwargs.tokenizer",
                "data.kwargs.save_tokenizer", "data.kwargs.seed"),
)
# fmt: on


def vl_cells(args: argparse.Namespace | Mapping[str, Any]) -> list[tuple[Cell, Budget]]:
    """The cells of the options ``args`` with their budgets, in run order: per seed the text
    pre-training, each ``--variants`` variant on shapes, then COCO-mini (unless ``--coco-epochs 0``).
    ``variant`` is the row label (``-quick`` appended for ``--quick``)."""
    opts = vl_options(args)
    unknown = [v for v in opts["variants"] if v not in VARIANTS]
    if unknown:
        raise ValueError(f"--variants: unknown {unknown}; choose from {list(VARIANTS)}")
    tag = "-quick" if opts.get("quick") else ""
    out: list[tuple[Cell, Budget]] = []
    for seed in opts["seeds"]:
        s = int(seed)
        out.append((Cell("vl-gated-decoder", TEXT, s, split="test", variant=f"text-pretrain{tag}"),
                    Budget(max_epochs=opts["text_epochs"], note="text pre-training")))  # fmt: skip
        for v in dict.fromkeys(opts["variants"]):
            out.append((Cell(VARIANTS[v][0], SHAPES, s, split="test", variant=f"{v}{tag}"),
                        Budget(max_epochs=opts["shapes_epochs"], note="the same for every variant, from the text weights")))  # fmt: skip
        if opts["coco_epochs"] > 0:
            out.append((Cell("vl-gated-decoder", COCO, s, split="test", variant=f"gate-scalar{tag}"),
                        Budget(max_epochs=opts["coco_epochs"], note="from the text weights")))  # fmt: skip
    return out


def gate_claim(
    records: list[Mapping[str, Any]] | str = "vl-gating-gates", results_dir: str | os.PathLike[str] | None = None
) -> list[str]:
    """What the ``vl-gating-gates`` ledger says about "the gate opens on visual words": one line
    per dataset, variant and layer reading (``last`` first, then ``mean``, then each layer),
    listing every :data:`GATE_COMPARISONS` result of a visual class against a text class as
    ``<visual> − <text> <diff> [<lo>, <hi>] yes`` (``yes``: the interval is above 0; ``NO``:
    below 0, the text class's gate is higher -- a miss; ``n.s.``: the interval contains 0;
    ``<2 pairs``: fewer than two seeds), then ``k/m yes``. ``records`` is a table name
    (read from ``results_dir``) or the records themselves."""
    from gatelab.core.harness.ledger import paired_comparisons

    visual = [c for c in GATE_COMPARISONS if c.model in VISUAL_CLASSES]
    found = paired_comparisons(records, visual, results_dir)
    order = {"last": 0, "mean": 1}
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in found:
        split = str(r.get("split"))
        key = (str(r.get("dataset")), str(r.get("variant")), order.get(split, 2), split)
        groups.setdefault(key, []).append(r)
    lines = []
    for (dataset, variant, _, split), rows in sorted(groups.items()):
        parts, yes = [], 0
        for r in rows:
            if r["diff"] is None:
                parts.append(f"{r['model']} − {r['rival']} <2 pairs")
                continue
            verdict = "yes" if r["lo"] > 0 else ("NO" if r["hi"] < 0 else "n.s.")
            yes += verdict == "yes"
            parts.append(f"{r['model']} − {r['rival']} {r['diff']:+.3f} [{r['lo']:+.3f}, {r['hi']:+.3f}] {verdict}")
        reading = {"last": "last layer", "mean": "mean over layers"}.get(split, split)
        lines.append(f"{dataset}, {variant}, {reading}: " + "; ".join(parts) + f" -> {yes}/{len(rows)} yes")
    return lines


def _unverified_digest(spec: Any, data_dir: Path) -> str:
    """``dataset_sha256``'s digest without the check against the published digests (``--skip-checksums``)."""
    from gatelab.core.harness import dataset_file, file_sha256

    root = spec.root(data_dir)
    h = hashlib.sha256()
    for rel in spec.files:
        path = dataset_file(spec, rel, data_dir)
        h.update(f"{path.relative_to(root).as_posix()} {file_sha256(path)}\n".encode())
    return h.hexdigest()


def run_vl_gating(args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    """Rows of ``gatelab repro vl-gating``: :data:`VL_RECIPE`'s cells through the recipe runner,
    each evaluated (module docstring); also writes the side tables and the plot."""
    import torch

    from gatelab.core.harness import locate, provenance, resolve_data_dir
    from gatelab.core.harness.ledger import append_records, config_hash, render_markdown, resolve_results_dir

    from ..analysis.evaluation import GateReport, blimp_accuracy, plot_gate_classes
    from ..analysis.table import (
        blimp_rows,
        caption_metrics,
        gate_class_rows,
        gate_word_rows,
        load_best,
        text_perplexity,
    )
    from ..analysis.wordclasses import shapes_word_class, word_class
    from ..data.blimp import BLIMP, read_blimp
    from ..data.captions import COCO_MINI
    from ..data.text import TEXT_CORPORA

    if os.environ.get("GATELAB_NUM_THREADS"):
        torch.set_num_threads(int(os.environ["GATELAB_NUM_THREADS"]))
    opts = vl_options(args)
    cells = vl_cells(opts)
    commit = provenance.git_commit()  # the side tables record the code the run started from
    data_dir = resolve_data_dir(args.data_dir)
    tag = "-quick" if args.quick else ""
    verify = not args.skip_checksums
    # run_table verifies the files when it stamps data_sha256; with --skip-checksums stamp it here
    stamp: dict[str, dict[str, str]] = {TEXT: {}, COCO: {}}
    if not verify:
        stamp = {spec.name: {"data_sha256": _unverified_digest(spec, data_dir)} for spec in (TEXT_CORPORA, COCO_MINI)}
    unchecked = "" if verify else "; data checksums not verified (--skip-checksums)"
    pairs = read_blimp(locate(BLIMP, data_dir, verify=verify), per_paradigm=opts["blimp_per_paradigm"])
    plain = argparse.Namespace(**vars(args))  # no should_run: a text cell run as a dependency
    texts: dict[int, CellRun] = {}

    def text_of(seed: int) -> CellRun:
        """The seed's text pre-training, run now if it has not run in this invocation."""
        if seed not in texts:
            (text_cell, budget), = [(c, b) for c, b in cells if c.dataset == TEXT and c.seed == seed]
            texts[seed] = run_cell(VL_RECIPE, text_cell, plain, budget=budget, data_dir=str(data_dir), options=opts)
        return texts[seed]

    def from_text(cell: Cell, cfg: dict[str, Any]) -> None:
        if cell.dataset != TEXT:
            ckpt = text_of(cell.seed).result.best_checkpoint
            if not ckpt:
                raise RuntimeError(f"vl-gating: the text pre-training of seed {cell.seed} saved no checkpoint")
            cfg["task"]["kwargs"]["init_from"] = str(ckpt)

    def side(table: str, rows: list[dict[str, Any]], config: str) -> None:
        """Append side-table rows at once (a later failure keeps them), unless --dry-run, and
        render the page as :data:`SIDE_PAGES` declares it; each row carries its run's config and
        its hash (a changed protocol is a new configuration)."""
        if args.dry_run:
            return
        name = f"{table}{tag}"
        extra = {"config": config, "config_hash": config_hash(config), "commit": commit}
        append_records(name, [{**r, **extra} for r in rows], args.results_dir, render=False)
        render_markdown(name, args.results_dir, **SIDE_PAGES[table])

    reports: dict[str, GateReport] = {}
    for cell, budget in cells:
        done = run_cell(VL_RECIPE, cell, args, budget=budget, data_dir=str(data_dir), before_run=from_text, options=opts)
        if done is None:  # recorded already (--resume) or not chosen (--verify)
            continue
        if cell.dataset == TEXT:
            texts[cell.seed] = done
        res, row = done.result, done.row
        model = load_best(res)
        text_blocks = text_of(cell.seed).result.datamodule.text_blocks("test")
        base = {"model": cell.model, "seed": cell.seed, "variant": cell.variant, "budget": row["budget"]}
        row.update(stamp.get(cell.dataset, {}))
        if cell.dataset == TEXT:
            b = blimp_accuracy(model, model.tokenizer, pairs, progress=True)
            side("vl-gating-blimp", blimp_rows(b, {**base, "dataset": "blimp"}), row["config"])
            row.update(blimp=100.0 * b["overall"], text_ppl=text_perplexity(model, text_blocks),
                       params_m=sum(p.numel() for p in model.parameters()) / 1e6,
                       note=f"run {res.run_dir}; {len(pairs)} BLiMP pairs{unchecked}")  # fmt: skip
            yield row
            continue
        classify = shapes_word_class if cell.dataset == SHAPES else word_class
        metrics, report = caption_metrics(model, res.datamodule, "test", opts["gallery"], classify)
        if cell.dataset == SHAPES:
            b = blimp_accuracy(model, model.tokenizer, pairs, progress=True)
            side("vl-gating-blimp", blimp_rows(b, {**base, "dataset": "blimp"}), row["config"])
            row["blimp"] = 100.0 * b["overall"]
            note = f"gallery {min(opts['gallery'], opts['shapes_eval'])} images"
        else:
            n_test = len(res.datamodule.captions["test"].images)
            note = (f"test = the last {n_test} val2017 images by id (gallery {min(opts['gallery'], n_test)}); "
                    f"captions cut to seq_len {args.seq_len}: {dict(res.datamodule.truncated)}")  # fmt: skip
        if report is not None:
            where = {"seed": cell.seed, "dataset": cell.dataset, "budget": row["budget"], "decoder": cell.model}
            side("vl-gating-gates", gate_class_rows(report, where, str(cell.variant)), row["config"])
            side("vl-gating-words", gate_word_rows(report, {**base, "dataset": cell.dataset, "split": "test"}, str(cell.variant)),
                 row["config"])  # fmt: skip
            reports[f"{'shapes' if cell.dataset == SHAPES else 'COCO-mini'} ({cell.variant})"] = report
        row.update(text_ppl=text_perplexity(model, text_blocks), **metrics, note=f"run {res.run_dir}; {note}{unchecked}")
        yield row

    if reports and not args.dry_run:
        plot_gate_classes(
            reports,
            resolve_results_dir(args.results_dir) / f"vl-gating-gates{tag}.png",
            classes=["colour", "shape", "position", "content", "function", "punct"],
            title="Visual gate (last layer) at the position predicting each word",
            value="gate_last",
        )


#: ``gatelab repro vl-gating``
VL_TABLE = register_table(
    ReproTable(
        name="vl-gating",
        description=(
            "token-wise visual gate (scalar / vector) vs no gate vs always-visual: BLiMP (%), text/caption perplexity "
            "with and without the image, text-to-image retrieval R@k (%), visual gate per word class in the "
            "last layer (gate_last_*; per layer and the paired class comparisons: vl-gating-gates). "
            "paper_blimp is the paper's BLiMP with BabyLM's 50M words and d=768; ours is trained on "
            "~2.3M words and generated shapes with a d=192 model on one CPU thread, so it is far lower"
        ),
        paper=_PAPER,
        run="gatelab.multimodal.recipes.vl_gating:run_vl_gating",
        domain="multimodal",
        references=VL_RECIPE.reference_rows(),
        metrics=["blimp", "text_ppl", "ppl_image", "ppl_noimage", "r@1", "r@5", "clip_r@1", "clip_r@5",
                 "gate_last_colour", "gate_last_shape", "gate_last_position", "gate_last_content",
                 "gate_last_function", "gate_last_punct", "params_m"],
        options=[
            Option("--variants", nargs="+", default=list(VARIANTS), help=f"fusion variants ({', '.join(VARIANTS)})"),
            Option("--d-model", type=int, default=192),
            Option("--num-layers", type=int, default=4),
            Option("--num-heads", type=int, default=6),
            Option("--vocab-size", type=int, default=4096, help="BPE vocabulary trained on the corpus"),
            Option("--seq-len", type=int, default=64),
            Option("--batch-size", type=int, default=32),
            Option("--lr", type=float, default=1e-3, help="text pre-training learning rate"),
            Option("--finetune-lr", type=float, default=5e-4, help="shapes / COCO learning rate"),
            Option("--text-epochs", type=int, default=2),
            Option("--text-max-words", type=int, default=None, help="cap on corpus words (default: all)"),
            Option("--text-ratio", type=float, default=1.0, help="text batches per caption batch"),
            Option("--shapes-train", type=int, default=4000, help="training images (one caption each)"),
            Option("--shapes-eval", type=int, default=200, help="validation and test images each"),
            Option("--shapes-epochs", type=int, default=6),
            Option("--coco-epochs", type=int, default=10, help="0 skips the COCO-mini row"),
            Option("--blimp-per-paradigm", type=int, default=None, help="pairs per paradigm (default: all 1000)"),
            Option("--gallery", type=int, default=200, help="retrieval gallery size (images)"),
            Option("--output-dir", default="runs/vl-gating", help="run directories and checkpoints"),
            Option("--skip-checksums", action="store_true",
                   help="do not check the data files' sha256 (fixtures in the same layout)"),
        ],
        default_seeds=VL_RECIPE.seeds,
        quick_table="vl-gating-quick",
        not_in_hash=("output_dir",),
        side_pages=SIDE_PAGES,
    )
)  # fmt: skip
