"""Bad experiment configs and what the CLI must say about each (shared by
``tests/core/harness/test_bad_configs.py`` and ``tools/reliability/configs.py``).

Each case is ``Case(id, sets, fragments, files)``: ``--set`` overrides applied to the good base
config :func:`base_config`, optional extra files (``{"name.yaml": text}``; a value of ``None``
names a missing file, a name starting with ``!`` replaces the base file), and the substrings
the one-line error must contain (the key path, the value, what is allowed). The registered
test model/data module come from ``tests/core/harness/tiny_setup.py``.
"""

from __future__ import annotations

import dataclasses
import io
import os
import resource
import subprocess
import sys
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import yaml
from file_modules import load_tiny  # noqa: F401  (bc.load_tiny, used by test_bad_configs and tools/reliability/configs.py)

MODEL = "harness-test-mlp"
DATA = "harness-test-regression"


def base_config(out_dir: Path) -> dict[str, Any]:
    """A good config touching every section (it trains in ~1 s with the tiny model)."""
    return {
        "name": "bad-config-base",
        "seed": 0,
        "output_dir": str(out_dir),
        "model": {"name": MODEL, "kwargs": {"hidden": 8}},
        "data": {"name": DATA, "kwargs": {"n": 32, "batch_size": 8}},
        "task": {
            "name": "regression",
            "kwargs": {"loss": "mse"},
            "optimizer": "adamw",
            "lr": 1e-2,
            "scheduler": {"name": "step", "step_size": 1, "gamma": 0.5},
        },
        "trainer": {
            "max_epochs": 1,
            "accelerator": "cpu",
            "devices": 1,
            "progress_bar": False,
            "enable_model_summary": False,
            "num_sanity_val_steps": 0,
            "loggers": [],
            "early_stopping": {"monitor": "val/loss", "patience": 2},
            "checkpoint": {"monitor": "val/loss", "save_top_k": 1},
        },
    }


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    sets: tuple[str, ...] = ()
    fragments: tuple[str, ...] = ()
    files: tuple[tuple[str, str | None], ...] = ()


def C(id: str, sets: str | tuple[str, ...] = (), *fragments: str, files: dict[str, str | None] | None = None) -> Case:
    sets = (sets,) if isinstance(sets, str) else tuple(sets)
    return Case(id, sets, tuple(fragments), tuple((files or {}).items()))


def M(name: str, **kwargs: Any) -> str:
    """``--set`` replacing the whole model section: ``model={name: ..., kwargs: {...}}``."""
    return f"model={{name: {name}, kwargs: {yaml.safe_dump(kwargs, default_flow_style=True).strip()}}}"


CASES: list[Case] = [
    # ---- task ------------------------------------------------------------------------------
    C("betas-text", "task.betas=abc", "task.betas='abc'", "two numbers in [0, 1)"),
    C("betas-one", "task.betas=[0.9]", "task.betas=[0.9]", "two numbers in [0, 1)"),
    C("betas-range", "task.betas=[0.9, 1.5]", "task.betas=[0.9, 1.5]", "[0, 1)"),
    C("weight-decay-negative", "task.weight_decay=-0.1", "task.weight_decay=-0.1", ">= 0"),
    C("lr-zero", "task.lr=0", "task.lr=0", "> 0"),
    C("lr-negative", "task.lr=-1e-3", "task.lr=-0.001", "> 0"),
    C("lr-text", "task.lr=fast", "task.lr='fast'", "a number > 0"),
    C("eps-zero", "task.eps=0", "task.eps=0", "> 0"),
    C("momentum-negative", "task.momentum=-0.5", "task.momentum=-0.5", ">= 0"),
    C("nesterov-yes", "task.nesterov=yes", "task.nesterov='yes'", "a boolean (true or false)"),
    C("nesterov-text", "task.nesterov=yes-please", "task.nesterov='yes-please'", "a boolean (true or false)"),
    C("optimizer", "task.optimizer=adagrad", "task.optimizer='adagrad'", "'adam', 'adamw' or 'sgd'"),
    C("scheduler-name", "task.scheduler=linear", "task.scheduler.name='linear'", "'cosine'"),
    C("gamma-negative", "task.scheduler.gamma=-1", "task.scheduler.gamma=-1", "(0, 1]"),
    C("gamma-above-one", "task.scheduler.gamma=1.5", "task.scheduler.gamma=1.5", "(0, 1]"),
    C("factor-one", ("task.scheduler.name=plateau", "task.scheduler.factor=1"), "task.scheduler.factor=1", "(0, 1)"),
    C("plateau-patience", "task.scheduler.patience=-1", "task.scheduler.patience=-1", ">= 0"),
    C("warmup-negative", "task.scheduler.warmup=-2", "task.scheduler.warmup=-2", ">= 0"),
    C("warmup-factor", "task.scheduler.warmup_start_factor=0", "task.scheduler.warmup_start_factor=0", "(0, 1]"),
    C("interval", "task.scheduler.interval=batch", "task.scheduler.interval='batch'", "'epoch' or 'step'"),
    C("scheduler-mode", "task.scheduler.mode=up", "task.scheduler.mode='up'", "'min' or 'max'"),
    C("t-max-zero", "task.scheduler.t_max=0", "task.scheduler.t_max=0", ">= 1"),
    C("step-size-zero", "task.scheduler.step_size=0", "task.scheduler.step_size=0", ">= 1"),
    C("frequency-zero", "task.scheduler.frequency=0", "task.scheduler.frequency=0", ">= 1"),
    C("eta-min-negative", "task.scheduler.eta_min=-1", "task.scheduler.eta_min=-1", ">= 0"),
    C(
        "plateau-warmup",
        ("task.scheduler.name=plateau", "task.scheduler.warmup=2"),
        "task.scheduler.warmup=2",
        "plateau",
    ),
    C("scheduler-unknown-key", "task.scheduler.tmax=3", "'tmax'", "did you mean 't_max'"),
    C("scheduler-list", "task.scheduler=[1]", "task.scheduler=[1]", "scheduler name or a mapping"),
    C("task-unknown-key", "task.learning_rate=3", "'learning_rate'", "in task"),
    C("task-monitor-typo", "task.monitor=val/los", "task.monitor='val/los'", "did you mean 'val/loss'"),
    C("task-kwargs-key", "task.kwargs.los=mae", "'los'", "did you mean 'loss'"),
    C("task-kwargs-choice", "task.kwargs.loss=l3", "task.kwargs.loss='l3'", "mse"),
    C("task-kwargs-type", "task.kwargs.huber_delta=abc", "task.kwargs.huber_delta='abc'", "a number"),
    C("task-kwargs-list", "task.kwargs=[1, 2]", "task.kwargs=[1, 2]", "a mapping"),
    C("task-name", "task.name=no-such-task", "task.name='no-such-task'", "unknown task"),
    C("task-name-empty", "task.name=''", "task.name=''", "non-empty"),
    # ---- trainer ---------------------------------------------------------------------------
    C("max-epochs-negative", "trainer.max_epochs=-5", "trainer.max_epochs=-5", ">= -1"),
    C("max-epochs-text", "trainer.max_epochs=abc", "trainer.max_epochs='abc'", ">= -1"),
    C("max-epochs-fraction", "trainer.max_epochs=2.5", "trainer.max_epochs=2.5", ">= -1"),
    C("max-steps", "trainer.max_steps=-2", "trainer.max_steps=-2", ">= -1"),
    C("min-epochs", "trainer.min_epochs=-1", "trainer.min_epochs=-1", ">= 0"),
    C("devices-text", "trainer.devices=abc", "trainer.devices='abc'", "'auto'"),
    C("devices-zero", "trainer.devices=0", "trainer.devices=0", "an integer >= 1"),
    C("devices-empty", "trainer.devices=[]", "trainer.devices=[]", "non-empty list"),
    C("devices-negative-index", "trainer.devices=[0, -3]", "trainer.devices=[0, -3]", "device indices"),
    C("devices-bool", "trainer.devices=true", "trainer.devices=True", "'auto'"),
    C("num-nodes", "trainer.num_nodes=0", "trainer.num_nodes=0", ">= 1"),
    C("precision-int", "trainer.precision=8", "trainer.precision=8", "bf16-mixed"),
    C("precision-text", "trainer.precision=fp16", "trainer.precision='fp16'", "16-mixed"),
    C("clip-negative", "trainer.gradient_clip_val=-1", "trainer.gradient_clip_val=-1", ">= 0"),
    C("clip-algorithm", "trainer.gradient_clip_algorithm=max", "trainer.gradient_clip_algorithm='max'", "'norm' or 'value'"),
    C("accumulate", "trainer.accumulate_grad_batches=0", "trainer.accumulate_grad_batches=0", ">= 1"),
    C("deterministic", "trainer.deterministic=yes", "trainer.deterministic='yes'", "true, false or 'warn'"),
    C("benchmark", "trainer.benchmark=maybe", "trainer.benchmark='maybe'", "a boolean (true or false)"),
    C("progress-bar", "trainer.progress_bar=maybe", "trainer.progress_bar='maybe'", "a boolean (true or false)"),
    C("model-summary-int", "trainer.enable_model_summary=1", "trainer.enable_model_summary=1", "a boolean (true or false)"),
    C("loggers-list", "trainer.loggers=[wandb]", "trainer.loggers=['wandb']", "'csv', 'tensorboard'"),
    C("loggers-str", "trainer.loggers=wandb", "trainer.loggers=['wandb']", "'csv', 'tensorboard'"),
    C("limit-negative", "trainer.limit_train_batches=-1", "trainer.limit_train_batches=-1", "[0.0, 1.0]"),
    C("limit-fraction", "trainer.limit_val_batches=1.5", "trainer.limit_val_batches=1.5", "[0.0, 1.0]"),
    C("val-check-zero", "trainer.val_check_interval=0", "trainer.val_check_interval=0", "(0.0, 1.0]"),
    C("check-val-every", "trainer.check_val_every_n_epoch=0", "trainer.check_val_every_n_epoch=0", ">= 1"),
    C("sanity-steps", "trainer.num_sanity_val_steps=-2", "trainer.num_sanity_val_steps=-2", ">= -1"),
    C("log-every", "trainer.log_every_n_steps=-1", "trainer.log_every_n_steps=-1", ">= 0"),
    C("accelerator", "trainer.accelerator=gpux", "trainer.accelerator='gpux'", "did you mean 'gpu'"),
    C("strategy", "trainer.strategy=dpp", "trainer.strategy='dpp'", "did you mean 'ddp'"),
    C("log-dir-empty", "trainer.log_dir=''", "trainer.log_dir=''", "a string of at least 1 character"),
    C("trainer-unknown-key", "trainer.max_epoch=3", "'max_epoch'", "did you mean 'max_epochs'"),
    C("trainer-list", "trainer=[1]", "trainer=[1]", "expected a mapping"),
    # ---- trainer.early_stopping ------------------------------------------------------------
    C("es-unknown-section", "trainer.early_stoping.patience=3", "'early_stoping'", "did you mean 'early_stopping'"),
    C("es-patience", "trainer.early_stopping.patience=-1", "trainer.early_stopping.patience=-1", ">= 0"),
    C("es-monitor", "trainer.early_stopping.monitor=val/los", "trainer.early_stopping.monitor='val/los'", "did you mean 'val/loss'"),
    C("es-monitor-metric", "trainer.early_stopping.monitor=val/auc", "trainer.early_stopping.monitor='val/auc'", "val/mse"),
    C("es-mode", "trainer.early_stopping.mode=minimum", "trainer.early_stopping.mode='minimum'", "'min' or 'max'"),
    C("es-min-delta", "trainer.early_stopping.min_delta=-0.1", "trainer.early_stopping.min_delta=-0.1", ">= 0"),
    C("es-check-finite", "trainer.early_stopping.check_finite=maybe", "trainer.early_stopping.check_finite='maybe'", "a boolean (true or false)"),
    C("es-unknown-key", "trainer.early_stopping.patiense=3", "'patiense'", "did you mean 'patience'"),
    C("es-scalar", "trainer.early_stopping=5", "trainer.early_stopping=5", "mapping"),
    # ---- trainer.checkpoint ----------------------------------------------------------------
    C("ck-top-k", "trainer.checkpoint.save_top_k=-5", "trainer.checkpoint.save_top_k=-5", ">= -1"),
    C("ck-monitor", "trainer.checkpoint.monitor=val/mae2", "trainer.checkpoint.monitor='val/mae2'", "did you mean 'val/mae'"),
    C("ck-mode", "trainer.checkpoint.mode=avg", "trainer.checkpoint.mode='avg'", "'min' or 'max'"),
    C("ck-save-last", "trainer.checkpoint.save_last=maybe", "trainer.checkpoint.save_last='maybe'", "a boolean (true or false)"),
    C("ck-every", "trainer.checkpoint.every_n_epochs=-1", "trainer.checkpoint.every_n_epochs=-1", ">= 1"),
    C("ck-enabled", "trainer.checkpoint.enabled=no-thanks", "trainer.checkpoint.enabled='no-thanks'", "a boolean (true or false)"),
    C("ck-unknown-key", "trainer.checkpoint.top_k=3", "'top_k'", "did you mean 'save_top_k'"),
    C("ck-scalar", "trainer.checkpoint=5", "trainer.checkpoint=5", "mapping"),
    # ---- trainer.extra ---------------------------------------------------------------------
    C("extra-owned", "trainer.extra.max_epochs=3", "trainer.extra.max_epochs=3", "trainer.max_epochs"),
    C("extra-gatelab", "trainer.extra.logger=false", "trainer.extra.logger=False", "trainer.loggers"),
    C("extra-type", "trainer.extra.detect_anomaly=maybe", "trainer.extra.detect_anomaly='maybe'", "a boolean (true or false)"),
    C("extra-unknown", "trainer.extra.fast_dev_rn=1", "trainer.extra.fast_dev_rn=1", "did you mean 'fast_dev_run'"),
    C("extra-list", "trainer.extra=[1]", "trainer.extra=[1]", "a mapping"),
    # ---- trainer.callbacks -----------------------------------------------------------------
    C("cb-module", "trainer.callbacks=[no_such_pkg.Callback]", "trainer.callbacks[0].class_path='no_such_pkg.Callback'", "cannot import"),
    C(
        "cb-class",
        "trainer.callbacks=[lightning.pytorch.callbacks.EarlyStoping]",
        "class_path='lightning.pytorch.callbacks.EarlyStoping'",
        "did you mean 'EarlyStopping'",
    ),
    C(
        "cb-init-arg",
        "trainer.callbacks=[{class_path: lightning.pytorch.callbacks.StochasticWeightAveraging, init_args: {swa_lrs: 0.1, swa_epoch_strt: 1}}]",
        "trainer.callbacks[0].init_args.swa_epoch_strt=1",
        "did you mean 'swa_epoch_start'",
    ),
    C(
        "cb-init-type",
        "trainer.callbacks=[{class_path: gatelab_harness_tiny.RecordingCallback, init_args: {tag: x, every: 0}}]",
        "trainer.callbacks[0].init_args.every=0",
        ">= 1",
    ),
    C("cb-path", "trainer.callbacks=['not a path']", "trainer.callbacks[0].class_path='not a path'", "dotted import path"),
    C("cb-not-callback", "trainer.callbacks=[collections.OrderedDict]", "class_path='collections.OrderedDict'", "Callback subclass"),
    C(
        "cb-key",
        "trainer.callbacks=[{class_path: lightning.pytorch.callbacks.Timer, init_arg: {}}]",
        "'init_arg'",
        "did you mean 'init_args'",
    ),
    C("cb-scalar", "trainer.callbacks=5", "trainer.callbacks=5", "list"),
    # ---- top level ---------------------------------------------------------------------------
    C("test-yes-please", "test=yes-please", "test='yes-please'", "a boolean (true or false)"),
    C("test-yes", "test=yes", "test='yes'", "a boolean (true or false)"),
    C("seed-negative", "seed=-1", "seed=-1", "[0, 2**32 - 1]"),
    C("seed-fraction", "seed=1.5", "seed=1.5", "[0, 2**32 - 1]"),
    C("seed-text", "seed=abc", "seed='abc'", "[0, 2**32 - 1]"),
    C("name-empty", "name=''", "name=''", "non-empty"),
    C("output-dir-null", "output_dir=null", "output_dir=None", "a string"),
    C("top-unknown-key", "nme=x", "'nme'", "did you mean 'name'"),
    # ---- model / data components -------------------------------------------------------------
    C("model-name", "model.name=no-such-model", "model.name='no-such-model'", "unknown model"),
    C("model-name-typo", "model.name=gatefromer", "model.name='gatefromer'", "did you mean 'gateformer'"),
    C("model-kwarg-unknown", "model.kwargs.hiden=8", "model.kwargs.hiden=8", "did you mean 'hidden'"),
    C("model-kwarg-zero", "model.kwargs.hidden=0", "model.kwargs.hidden=0", ">= 1"),
    C("model-kwarg-text", "model.kwargs.hidden=abc", "model.kwargs.hidden='abc'", ">= 1"),
    C("model-kwarg-bool", "model.kwargs.hidden=true", "model.kwargs.hidden=True", ">= 1"),
    C("model-kwargs-scalar", "model.kwargs=5", "model.kwargs=5", "a mapping"),
    C("model-list", "model=[1]", "model=[1]", "name or a mapping"),
    C("model-unknown-key", "model.kwarg.x=1", "'kwarg'", "did you mean 'kwargs'"),
    C("gateformer-d-model", M("gateformer", d_model=0), "model.kwargs.d_model=0", ">= 1"),
    C("gateformer-dropout", M("gateformer", dropout=1.5), "model.kwargs.dropout=1.5", "[0, 1)"),
    C("gateformer-heads", M("gateformer", num_heads=-2), "model.kwargs.num_heads=-2", ">= 1"),
    C("gateformer-flag", M("gateformer", gates="maybe"), "model.kwargs.gates='maybe'", "a boolean (true or false)"),
    C("gateformer-unknown", M("gateformer", dmodel=8), "model.kwargs.dmodel=8", "did you mean 'd_model'"),
    C("finalmlp-dropout", M("finalmlp", mlp1_dropout=1.0), "model.kwargs.mlp1_dropout=1.0", "[0, 1)"),
    C("finalmlp-units", M("finalmlp", mlp1_hidden_dims=[64, 0]), "model.kwargs.mlp1_hidden_dims=[64, 0]", "[1]"),
    C("maxim-key", M("maxim", featurs=32), "model.kwargs.featurs=32", "did you mean 'features'"),
    C("maxim-dropout", M("maxim", dropout=2), "model.kwargs.dropout=2", "[0, 1)"),
    C("data-name", "data.name=no-such-data", "data.name='no-such-data'", "unknown data module"),
    C("data-kwarg-unknown", "data.kwargs.bs=3", "data.kwargs.bs=3", "valid: data_dir, n, in_features, batch_size"),
    C("data-batch-size", "data.kwargs.batch_size=0", "data.kwargs.batch_size=0", ">= 1"),
    C("data-n-text", "data.kwargs.n=abc", "data.kwargs.n='abc'", ">= 1"),
    C("ctr-batch-size", ("data.name=ctr", "data.kwargs={batch_size: -8}"), "data.kwargs.batch_size=-8", ">= 1"),
    C("ltsf-lookback", ("data.name=ltsf", "data.kwargs={lookback: 0}"), "data.kwargs.lookback=0", ">= 1"),
    # ---- found by static reading (no torch/Lightning import) ---------------------------------
    C("strategy-long", "trainer.strategy=fsdp_cpu_ofload", "trainer.strategy='fsdp_cpu_ofload'", "did you mean 'fsdp_cpu_offload'"),
    C("classification-key", ("task.name=classification", "task.kwargs={mod: binary}"), "'mod'", "did you mean 'mode'"),
    C("classification-mode", ("task.name=classification", "task.kwargs={mode: multi}"), "task.kwargs.mode='multi'", "'binary' or 'multiclass'"),
    C(
        "cb-lightning-init-type",
        "trainer.callbacks=[{class_path: lightning.pytorch.callbacks.StochasticWeightAveraging, init_args: {swa_lrs: abc}}]",
        "trainer.callbacks[0].init_args.swa_lrs='abc'",
        "a number",
    ),
    C("extra-int", "trainer.extra.reload_dataloaders_every_n_epochs=abc", "trainer.extra.reload_dataloaders_every_n_epochs='abc'", "integer"),
    C("ltsf-scale", ("data.name=ltsf", "data.kwargs={scale: maybe}"), "data.kwargs.scale='maybe'", "a boolean (true or false)"),
    C(
        "ctr-monitor",
        ("data.name=ctr", "data.kwargs={dataset: frappe}", "task.name=ctr", "task.kwargs={}", "task.monitor=val/acc"),
        "task.monitor='val/acc'",
        "val/auc",
    ),
    # ---- files, merging and overrides --------------------------------------------------------
    C("bad-yaml", (), "invalid YAML at line 3, column 1", files={"!bad.yaml": "name: x\nmodel: [unclosed\n"}),
    C("empty-file", (), "empty.yaml", "is empty", files={"!empty.yaml": ""}),
    C("missing-file", (), "config file not found", "missing.yaml", files={"missing.yaml": None}),
    C("top-level-list", (), "list.yaml", "mapping at the top level", files={"!list.yaml": "- 1\n- 2\n"}),
    C("non-string-key", (), "keys.yaml", "keys must be strings", files={"!keys.yaml": "1: x\n"}),
    C("second-file-key", (), "over.yaml", "'max_epoch'", "did you mean 'max_epochs'", files={"over.yaml": "trainer: {max_epoch: 2}\n"}),
    C("second-file-value", (), "over.yaml", "trainer.devices='abc'", files={"over.yaml": "trainer: {devices: abc}\n"}),
    C("second-file-bad-yaml", (), "over.yaml", "invalid YAML", files={"over.yaml": "trainer: {devices: [1\n"}),
    C("override-no-equals", "trainer.max_epochs", "'trainer.max_epochs'", "key.sub=value"),
    C("override-through-scalar", "seed.x=1", "seed.x=1", "not a mapping"),
    C("override-empty-key", "trainer..max_epochs=1", "trainer..max_epochs=1", "empty key"),
]


def write_case(case: Case, tmp: Path) -> list[str]:
    """Write the base config (and the case's files) under ``tmp``; the CLI's ``--config`` list."""
    tmp.mkdir(parents=True, exist_ok=True)
    base = tmp / "exp.yaml"
    base.write_text(yaml.safe_dump(base_config(tmp / "runs")))
    configs = [str(base)]
    for name, text in case.files:
        replace = name.startswith("!")
        path = tmp / name.lstrip("!")
        if text is not None:
            path.write_text(text)
        configs = [str(path)] if replace else [*configs, str(path)]
    return configs


def cli_args(case: Case, configs: list[str], mode: str, tmp: Path) -> list[str]:
    """``train``, ``train --print-config`` or ``eval --ckpt`` arguments for ``case``."""
    args = ["eval"] if mode == "eval" else ["train"]
    args += ["--config", *configs]
    if case.sets:
        args += ["--set", *case.sets]
    if mode == "print":
        args.append("--print-config")
    if mode == "eval":
        args += ["--ckpt", str(tmp / "no-such.ckpt")]
    return args


MODES = ("print", "train", "eval")


def run_case(case: Case, tmp: Path, mode: str) -> tuple[int, str, str, float]:
    """Run ``case`` through ``gatelab.core.harness.cli.main`` in this process: ``(rc, stdout, stderr, seconds)``."""
    from gatelab.core.harness.cli import main

    configs = write_case(case, tmp)
    out, err = io.StringIO(), io.StringIO()
    t0 = time.perf_counter()
    with redirect_stdout(out), redirect_stderr(err):
        rc = main(cli_args(case, configs, mode, tmp))
    return rc, out.getvalue(), err.getvalue(), time.perf_counter() - t0


def check(case: Case, rc: int, err: str) -> list[str]:
    """What is wrong with the CLI's answer to a bad config (empty: a clear exit-2 message)."""
    problems = []
    if rc != 2:
        problems.append(f"exit code {rc}, expected 2")
    if "Traceback" in err:
        problems.append("traceback")
    lines = err.strip().splitlines()
    if len(lines) != 1:
        problems.append(f"{len(lines)} stderr lines, expected 1")
    for frag in case.fragments:
        if frag not in err:
            problems.append(f"{frag!r} not in the message")
    return problems


#: a fresh interpreter running the real CLI with the test registrations declared lazily
#: (``"gatelab_harness_tiny:TinyMLP"``: the module is found by a path finder, imported only
#: if validation imports it), so that nothing is imported before the CLI decides to
COLD_DRIVER = """
import importlib.abc, importlib.util, sys
tiny_path = sys.argv[1]

class _TinyFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "gatelab_harness_tiny":
            return importlib.util.spec_from_file_location(name, tiny_path)
        return None

sys.meta_path.append(_TinyFinder())
from gatelab.core.registry import DATAMODULES, register_model
register_model(
    "harness-test-mlp", "gatelab_harness_tiny:TinyMLP", domain="core",
    paper="test only (not a paper model)", gates=("GluMlp",), tags=("test",),
)
DATAMODULES.register("harness-test-regression", "gatelab_harness_tiny:TinyRegressionData", domain="core")
from gatelab.core.harness.cli import main
sys.exit(main(sys.argv[2:]))
"""


def run_cold(case: Case, tmp: Path, mode: str) -> tuple[int, str, str, float, float]:
    """Run ``case`` through the CLI in a fresh interpreter: ``(rc, stdout, stderr, wall seconds,
    CPU seconds)`` of the whole process (interpreter start included)."""
    configs = write_case(case, tmp)
    args = cli_args(case, configs, mode, tmp)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", COLD_DRIVER, str(Path(__file__).with_name("tiny_setup.py")), *args],
        capture_output=True,
        text=True,
        env=env,
    )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return proc.returncode, proc.stdout, proc.stderr, wall, cpu
