"""The ``gatelab`` command line (``gatelab = gatelab.core.harness.cli:main``; also ``python -m gatelab``).

Commands::

    gatelab list [--domain D] [--gate G]          registered models: name, domain, gates, paper
    gatelab env [--data-dir DIR] [--verify]       versions, devices, kernel backends, data
    gatelab train --config exp.yaml [more.yaml ...] [--set k.sub=v ...] [--data-dir DIR] [--resume CKPT|auto|last]
    gatelab eval --config exp.yaml [more.yaml ...] --ckpt PATH [--set ...] [--data-dir DIR]
    gatelab repro NAME [table options]            run a paper table, append to docs/results/
    gatelab repro NAME --resume                   ... skipping rows already recorded (same config)
    gatelab repro NAME --verify K                 re-run K recorded rows and compare (exit 1 on a mismatch)
    gatelab repro --list                          registered paper tables
    gatelab --version                             the installed version

Every subcommand's ``--help`` ends with an example.

User errors (a bad config key, an unknown model or table, a missing or corrupt dataset) print
one message and exit with code 2, without a traceback. Several ``--config`` files merge in order
(later wins, mappings merge key by key), then ``--set`` applies; ``train``, ``eval`` and
``train --print-config`` check the whole config (every section, the model/data/task kwargs, the
monitors, ``trainer.extra`` and ``trainer.callbacks``) before any data is read. ``list`` and ``env`` do not import
Lightning, so they stay fast.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import os
import pkgutil
import platform
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["main"]

_PACKAGES = (
    "torch",
    "triton",
    "lightning",
    "torchmetrics",
    "torchvision",
    "torchaudio",
    "timm",
    "pytorch-forecasting",
    "torch-geometric",
    "numpy",
    "pandas",
    "pyyaml",
)
_ENV_VARS = (
    "GATELAB_DATA",
    "GATELAB_RESULTS",
    "GATELAB_BACKEND",
    "GATELAB_CACHE",
    "TRITON_INTERPRET",
    "CUDA_VISIBLE_DEVICES",
)


def _table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*header).rstrip(), fmt.format(*("-" * w for w in widths)).rstrip()]
    lines += [fmt.format(*map(str, r)).rstrip() for r in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------- list


def _cmd_list(args: argparse.Namespace) -> int:
    from gatelab.core.config import ConfigError
    from gatelab.core.registry import list_models, model_info

    try:
        names = list_models(domain=args.domain, gate=args.gate)
    except ConfigError as e:
        raise ConfigError(f"--domain: {e}") from None
    if not names:
        filt = " ".join(f"--{k} {v}" for k, v in (("domain", args.domain), ("gate", args.gate)) if v)
        print(f"no registered models{' match ' + filt if filt else ''}")
        return 0
    rows = []
    for name in names:
        info = model_info(name)
        rows.append([name, info.domain, ", ".join(info.gates) or "-", info.paper])
    print(_table(rows, ["name", "domain", "gates", "paper"]))
    return 0


# --------------------------------------------------------------------------- env


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _import_kernels() -> tuple[Any, list[str]]:
    """Import gatelab.core.kernels and every module in it (ops register on import).

    Returns ``(dispatch module or None, errors)``: a module that fails to import is reported
    (and makes ``gatelab env`` exit with 1), not hidden, and does not stop the report.
    """
    errors = []
    try:
        kernels = importlib.import_module("gatelab.core.kernels")
    except Exception as e:  # reported and turned into exit code 1
        return None, [f"gatelab.core.kernels: {type(e).__name__}: {e}"]
    for mod in pkgutil.iter_modules(kernels.__path__):
        name = f"gatelab.core.kernels.{mod.name}"
        try:
            importlib.import_module(name)
        except Exception as e:  # reported and turned into exit code 1
            errors.append(f"{name}: {type(e).__name__}: {e}")
    return importlib.import_module("gatelab.core.kernels.dispatch"), errors


def _cmd_env(args: argparse.Namespace) -> int:
    import torch

    from gatelab.core.harness import data as hdata
    from gatelab.core.harness import ledger, provenance
    from gatelab.core.harness.errors import ChecksumError

    failures: list[str] = []
    print("gatelab")
    print(f"  version      {_version('gatelab')}")
    print(f"  commit       {provenance.git_commit()}")
    print(f"  location     {os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}")
    print("system")
    print(f"  python       {platform.python_version()} ({sys.executable})")
    print(f"  platform     {platform.platform()}")
    print(f"  machine      {provenance.machine()}")
    print("torch")
    print(f"  version      {torch.__version__} (CUDA build {torch.version.cuda or 'none'})")
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            print(
                f"  cuda:{i}       {p.name}, {p.total_memory / 2**30:.1f} GiB, capability {p.major}.{p.minor}"
            )
        cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
        print(f"  cudnn        {cudnn or 'not available'}")
    else:
        print("  cuda         not available (CPU only)")
    print("packages")
    for dist in _PACKAGES:
        print(f"  {dist:<20} {_version(dist)}")
    print("environment")
    for var in _ENV_VARS:
        print(f"  {var:<20} {os.environ.get(var, '(unset)')}")

    print("kernels (gatelab.core.kernels.dispatch)")
    dispatch, errors = _import_kernels()
    failures += errors
    ops = dispatch.ops() if dispatch is not None else {}
    if dispatch is None:
        print("  kernels could not be imported (see errors below)")
    elif not ops:
        print("  no kernel ops registered")
    for name, op in sorted(ops.items()):
        parts = []
        for b in sorted(op.backends.values(), key=lambda b: -b.priority):
            why = b.available()
            state = "available" if why is None else f"unavailable: {why}"
            if why is None and b.interpreted():
                state = "interpreted (auto skips it)"
            parts.append(f"{b.name} [priority {b.priority}, {state}]")
        parts.append("reference")
        print(f"  {name:<12} requested={dispatch.requested_backend(name)}; backends: {'; '.join(parts)}")

    try:
        from gatelab.core.registry import registered

        registered()  # domains register their datasets on import
    except Exception as e:  # a broken domain is reported, and fails the command
        failures.append(f"importing the domains: {type(e).__name__}: {e}")
    root = hdata.resolve_data_dir(args.data_dir)
    print("data")
    print(
        f"  data dir     {root} (from {hdata.data_dir_origin(args.data_dir)}; {'exists' if root.is_dir() else 'does not exist'})"
    )
    print(f"  results dir  {ledger.resolve_results_dir()}")
    datasets = hdata.list_datasets()
    if not datasets:
        print("  no datasets registered")
    for name in datasets:
        try:
            spec = hdata.get_dataset(name)
        except Exception as e:  # a broken declaration is reported, and fails the command
            failures.append(f"dataset {name}: {type(e).__name__}: {e}")
            continue
        status = hdata.dataset_status(spec, args.data_dir)
        if args.verify and status == "present":
            try:
                hdata.locate(spec, args.data_dir, verify=True)
                status = "present, checksums ok"
            except ChecksumError as e:
                status = "CHECKSUM MISMATCH"
                failures.append(str(e).splitlines()[0])
        print(f"  {name:<20} {status:<24} {spec.root(args.data_dir)}")
    if failures:
        print("errors")
        for f in failures:
            print(f"  {f}")
        return 1
    return 0


# --------------------------------------------------------------------------- train / eval


def _print_result(res: Any) -> None:
    print(f"run dir      {res.run_dir}")
    print(f"config       {res.config_path}")
    if res.best_checkpoint:
        print(f"checkpoint   {res.best_checkpoint}")
    if res.last_checkpoint and res.last_checkpoint != res.best_checkpoint:
        print(f"last         {res.last_checkpoint}")
    print(f"wall time    {res.wall_s:.1f} s")
    if res.metrics:
        print(_table([[k, f"{v:.6g}"] for k, v in sorted(res.metrics.items())], ["metric", "value"]))


def _load_config(args: argparse.Namespace) -> Any:
    from gatelab.core.config import ConfigError
    from gatelab.core.harness.configs import load_experiment

    cfg = load_experiment(args.config, args.set or ())  # harness sections: no torch needed
    from gatelab.core.harness.validation import CheckpointFileError, validate_experiment

    ckpt = getattr(args, "ckpt", None)
    resume = getattr(args, "resume", None)
    if ckpt is None and resume not in (None, "auto", "last"):
        ckpt = resume
    try:
        # static first (no torch): kwargs, monitors, Trainer extras, callbacks, the checkpoint file
        return validate_experiment(cfg, checkpoint=ckpt, resume=ckpt is not None and ckpt == resume)
    except CheckpointFileError:
        raise  # names the checkpoint, not the config files
    except ConfigError as e:
        raise ConfigError(f"{' + '.join(args.config)}: {e}") from None


def _cmd_train(args: argparse.Namespace, argv: Sequence[str]) -> int:
    cfg = _load_config(args)
    if args.print_config:
        import yaml

        print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), end="")
        return 0
    from gatelab.core.harness.experiment import run_experiment

    res = run_experiment(cfg, stage="fit", ckpt_path=args.resume, data_dir=args.data_dir, argv=argv)
    if res.trainer is None or res.trainer.is_global_zero:
        _print_result(res)
    return 0


def _cmd_eval(args: argparse.Namespace, argv: Sequence[str]) -> int:
    cfg = _load_config(args)
    from gatelab.core.harness.experiment import evaluate

    res = evaluate(cfg, args.ckpt, data_dir=args.data_dir, argv=argv)
    if res.trainer is None or res.trainer.is_global_zero:
        _print_result(res)
    return 0


# --------------------------------------------------------------------------- repro


def _cmd_repro(args: argparse.Namespace, extra: Sequence[str], parser: argparse.ArgumentParser) -> int:
    from gatelab.core.harness.repro import get_table, list_tables, run_table

    if args.list or args.name is None:
        tables = [get_table(name) for name in list_tables()]
        if tables:
            rows = [[t.name, t.domain, t.paper, t.description] for t in tables]
            print(_table(rows, ["table", "domain", "paper", "description"]))
        else:
            print("no repro tables registered")
        if args.name is None and not args.list:
            print(
                "\nusage: gatelab repro NAME [options]   (gatelab repro NAME --help lists a table's options)"
            )
            return 2
        return 0
    table = get_table(args.name)
    res = run_table(table, list(extra))
    print(res.markdown, end="")
    if res.verify is not None:
        return 1 if res.failed else 0
    if res.jsonl is not None:
        skipped = f" ({len(res.skipped)} recorded row(s) skipped)" if res.skipped else ""
        print(f"\nappended {len(res.rows)} record(s) to {res.jsonl}{skipped}; table written to {res.md}")
    return 0


def _cmd_prepare(args: argparse.Namespace, extra: Sequence[str]) -> int:
    """``gatelab prepare NAME [options]``: a registered data-preparation command (``PREPARERS``)."""
    from gatelab.core.registry import PREPARERS

    if args.list or args.name is None:
        names = PREPARERS.names()
        rows = [[n, PREPARERS.entry(n).domain, PREPARERS.entry(n).meta.get("description", "")] for n in names]
        print(_table(rows, ["name", "domain", "description"]) if rows else "no data preparations registered")
        return 0 if args.list else 2
    return int(PREPARERS.get(args.name)(list(extra)) or 0)


# --------------------------------------------------------------------------- main


def _gatelab_version() -> str:
    """The installed distribution's version (``gatelab.__version__`` when not installed)."""
    try:
        return importlib.metadata.version("gatelab")
    except importlib.metadata.PackageNotFoundError:
        import gatelab

        return gatelab.__version__


# the example each subcommand's ``--help`` ends with (tests/test_docs.py runs every one of them)
EXAMPLES: dict[str, str] = {
    "list": "gatelab list --domain timeseries --gate TokenwiseGate",
    "env": "gatelab env --verify",
    "train": "gatelab train --config docs/examples/ltsf_tiny.yaml --set trainer.max_epochs=1",
    "eval": "gatelab eval --config docs/examples/ltsf_tiny.yaml --ckpt runs/ltsf-tiny/seed0/version_0/checkpoints/last.ckpt",
    "repro": "gatelab repro --list",
    "prepare": "gatelab prepare --list",
    "export": "gatelab export runs/ltsf-tiny/seed0/version_0/checkpoints/last.ckpt my-model",
    "predict": "gatelab predict --model my-model --input docs/examples/etth1_recent.csv --output forecasts.csv",
}


class _VersionAction(argparse.Action):
    """``--version``: looks the version up only when asked (the metadata scan costs every other call)."""

    def __init__(self, option_strings: Sequence[str], dest: str, help: str | None = None) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        print(f"gatelab {_gatelab_version()}")
        parser.exit()


def _epilog(command: str) -> str:
    return f"example:\n  {EXAMPLES[command]}"


def build_parser() -> argparse.ArgumentParser:
    """The ``gatelab`` argument parser (``--version``; every subcommand's help ends with an example)."""
    p = argparse.ArgumentParser(
        prog="gatelab",
        description="gated deep-learning models: train, evaluate, reproduce",
        epilog="example:\n  gatelab list\n  gatelab train --config docs/examples/ltsf_tiny.yaml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action=_VersionAction, help="print gatelab's version and exit")
    sub = p.add_subparsers(dest="command", metavar="{list,env,train,eval,repro,export,predict,prepare}")

    def add(name: str, **kwargs: Any) -> argparse.ArgumentParser:
        return sub.add_parser(
            name, epilog=_epilog(name), formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs
        )

    ls = add("list", help="registered models")
    ls.add_argument("--domain", default=None, help="only this domain")
    ls.add_argument("--gate", default=None, help="only models using this gatelab.core gate")

    env = add("env", help="versions, devices, kernel backends, data")
    env.add_argument("--data-dir", default=None)
    env.add_argument("--verify", action="store_true", help="check sha256 of present datasets")

    for name, helptext in (("train", "fit an experiment config"), ("eval", "test a checkpoint")):
        sp = add(name, help=helptext)
        sp.add_argument(
            "--config",
            required=True,
            nargs="+",
            action="extend",
            metavar="YAML",
            help="experiment YAML; several files (or repeated --config) merge in order, later wins",
        )
        sp.add_argument(
            "--set",
            nargs="+",
            action="extend",
            default=[],
            metavar="KEY=VALUE",
            help="override config keys (trainer.max_epochs=2)",
        )
        sp.add_argument(
            "--data-dir", default=None, help="data directory (else $GATELAB_DATA, else ~/.cache/gatelab/data)"
        )
        if name == "train":
            sp.add_argument(
                "--resume",
                default=None,
                metavar="CKPT|auto|last",
                help="resume exactly from a checkpoint; auto: the newest of this experiment (fresh if "
                "none); last: the same, an error if none",
            )
            sp.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
        else:
            sp.add_argument("--ckpt", required=True, help="checkpoint to evaluate")

    ex = add("export", help="a training checkpoint -> a save_pretrained folder (config.json + model.safetensors)")
    ex.add_argument("ckpt", help="a checkpoint written by `gatelab train`")
    ex.add_argument("directory", help="output folder; load it with gatelab.from_pretrained(DIR)")

    pr = add("predict", help="run a saved model (gatelab export / save_pretrained folder) on new data")
    pr.add_argument("--model", required=True, metavar="DIR", help="a save_pretrained folder")
    pr.add_argument("--input", required=True, metavar="PATH", help="new data in the domain's format")
    pr.add_argument("--output", required=True, metavar="PATH", help="file (or folder, for images) to write")
    pr.add_argument("--batch-size", type=int, default=256, help="items per forward pass (default 256)")
    pr.add_argument("--device", default="cpu", help="torch device (default cpu)")
    pr.add_argument("--num-threads", type=int, default=None, help="torch threads (default: torch's)")
    pr.add_argument("--no-progress", action="store_true", help="no progress bar")

    rp = add(
        "repro",
        help="reproduce a paper table",
        add_help=False,
        allow_abbrev=False,
        usage="gatelab repro [--list] [NAME [--help] [table options]]",
        description="Run a registered paper table; `gatelab repro NAME --help` lists its options.",
    )
    rp.add_argument("name", nargs="?", default=None)
    rp.add_argument("--list", action="store_true", help="list registered tables")

    pp = add(
        "prepare",
        help="prepare a dataset (e.g. synthesise spoken captions)",
        add_help=False,
        usage="gatelab prepare [--list] [NAME [--help] [options]]",
    )
    pp.add_argument("name", nargs="?", default=None)
    pp.add_argument("--list", action="store_true", help="list registered data preparations")
    return p


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[name]
    raise KeyError(name)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (2 for user errors, with a one-message report)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if extra and args.command not in ("repro", "prepare"):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as e:  # argparse: --help (0) or a usage error (2)
        return int(e.code) if isinstance(e.code, int) else 2
    if args.command is None:
        parser.print_help()
        return 2
    if args.command in ("repro", "prepare") and args.name is None and {"-h", "--help"} & set(extra):
        _subparser(parser, args.command).print_help()  # without NAME, --help is the command's own
        return 0

    # imported only now: gatelab.core.config loads pydantic, which --help/--version never need
    from gatelab.core.config import ConfigError
    from gatelab.core.harness.errors import DataError

    try:
        if args.command == "list":
            return _cmd_list(args)
        if args.command == "env":
            return _cmd_env(args)
        if args.command == "train":
            return _cmd_train(args, argv)
        if args.command == "eval":
            return _cmd_eval(args, argv)
        if args.command == "export":
            from gatelab.core.pretrained import export_checkpoint

            print(f"saved {export_checkpoint(args.ckpt, args.directory)}")
            return 0
        if args.command == "predict":
            from gatelab.core.harness.predict import PredictOptions, predict

            opts = PredictOptions(
                batch_size=args.batch_size,
                device=args.device,
                num_threads=args.num_threads,
                progress=not args.no_progress,
            )
            print(predict(args.model, args.input, args.output, options=opts))
            return 0
        if args.command == "prepare":
            return _cmd_prepare(args, extra)
        return _cmd_repro(args, extra, parser)
    except (ConfigError, DataError) as e:
        print(f"gatelab {args.command}: error: {e}", file=sys.stderr)
        return 2
    except SystemExit as e:  # a table's argparse: --help or a usage error
        return int(e.code) if isinstance(e.code, int) else 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
