"""The static schema reader (:mod:`gatelab.core.harness.schema`) against the import path
(:func:`~gatelab.core.harness.validation.signature_params`, ``build_options``) for every
registered model, data module and task: same names, same open-endedness, the same annotation
where the reader resolved one, and the same annotation text where it did not. An entry the
reader cannot read with certainty must say so (``StaticReadError``: validation imports it)."""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import subprocess
import sys
import textwrap
import typing
from pathlib import Path
from typing import Any

import pytest

from gatelab.core.harness import schema
from gatelab.core.harness.configs import ExperimentConfig
from gatelab.core.harness.validation import signature_params
from gatelab.core.registry import DATAMODULES, MODELS, TASKS

HERE = Path(__file__).resolve().parent


def _raw_annotations(fn: Any) -> dict[str, Any]:
    """The annotations as written (text under ``from __future__ import annotations``) of the
    parameters ``signature_params`` lists, found the same way it finds them."""
    config_class = getattr(fn, "config_class", None) if isinstance(fn, type) else None
    if dataclasses.is_dataclass(config_class):
        return {f.name: f.type for f in dataclasses.fields(config_class) if f.init}
    target = fn.__init__ if isinstance(fn, type) else fn
    sig = inspect.signature(target)
    raw = {
        n: (p.annotation if p.annotation is not inspect.Parameter.empty else None)
        for n, p in sig.parameters.items()
    }
    if not isinstance(fn, type) and any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        ret = typing.get_type_hints(fn).get("return")
        if isinstance(ret, type) and ret.__init__ is not object.__init__:
            raw = {**_raw_annotations(ret), **raw}
    return raw


def _text(raw: Any) -> str | None:
    return raw if isinstance(raw, str) or raw is None else None


def _compare(
    static: schema.Params, imported: dict[str, Any], open_ended: bool, raw: dict[str, Any]
) -> list[str]:
    problems = []
    if list(static.params) != list(imported):
        problems.append(f"names: static {list(static.params)} != import {list(imported)}")
        return problems
    if static.open_ended != open_ended:
        problems.append(f"open_ended: static {static.open_ended} != import {open_ended}")
    for name, hint in imported.items():
        text = _text(raw.get(name))
        if text is not None and static.texts.get(name) is not None and static.texts[name] != text:
            problems.append(f"{name}: text {static.texts[name]!r} != {text!r}")
        if name in static.unresolved:
            if hint is Any:
                problems.append(f"{name}: unresolved statically but plain Any by import")
            continue
        if static.params[name] != hint:
            problems.append(f"{name}: static {static.params[name]!r} != import {hint!r}")
    return problems


def _entries(registry: Any) -> list[tuple[str, str]]:
    return [(n, e.target) for n, e in registry.entries().items() if isinstance(e.target, str)]


@pytest.mark.parametrize(
    ("kind", "name", "target"),
    [("model", n, t) for n, t in _entries(MODELS)] + [("data", n, t) for n, t in _entries(DATAMODULES)],
)
def test_static_params_match_import(kind, name, target):
    registry = MODELS if kind == "model" else DATAMODULES
    try:
        static = schema.read_params(target)
    except schema.StaticReadError as e:  # validation falls back to the import path
        assert not isinstance(e, schema.Missing), e
        pytest.skip(f"not statically readable (validated by import): {e}")
    fn = registry.get(name)
    params, open_ended = signature_params(fn)
    problems = _compare(static, params, open_ended, _raw_annotations(fn))
    assert not problems, problems


@pytest.mark.parametrize(("name", "target"), _entries(TASKS))
def test_static_task_options_match_import(name, target):
    static = schema.read_options(target)
    options = TASKS.get(name).Options
    hints = typing.get_type_hints(options, include_extras=True)
    fields = {f.name: hints.get(f.name, Any) for f in dataclasses.fields(options) if f.init}
    raw = {f.name: f.type for f in dataclasses.fields(options) if f.init}
    problems = _compare(static, fields, False, raw)
    assert not problems, problems


def test_most_entries_are_read_statically():
    """The fallback is the exception: nearly every registered component is read from source."""
    readable = total = 0
    for registry in (MODELS, DATAMODULES):
        for _, target in _entries(registry):
            total += 1
            try:
                schema.read_params(target)
                readable += 1
            except schema.StaticReadError:
                pass
    assert readable >= 0.75 * total, (readable, total)


def test_lightning_trainer_and_callbacks_match_import():
    import lightning as L
    from lightning.pytorch.callbacks import Callback

    static = schema.read_params("lightning:Trainer")
    params, open_ended = signature_params(L.Trainer)
    raw = {n: p.annotation for n, p in inspect.signature(L.Trainer.__init__).parameters.items()}
    assert not _compare(static, params, open_ended, raw)
    for path in (
        "lightning.pytorch.callbacks:StochasticWeightAveraging",
        "lightning.pytorch.callbacks:Timer",
    ):
        assert schema.is_subclass(path, "lightning.pytorch.callbacks.callback:Callback")
        cls = schema.resolve(*path.split(":"))
        assert cls.kind == "class"
        mod, _, attr = path.partition(":")
        real = getattr(__import__(mod, fromlist=[attr]), attr)
        assert issubclass(real, Callback)
        sp, so = signature_params(real)
        assert not _compare(schema.read_params(path), sp, so, {})
    assert not schema.is_subclass("collections:OrderedDict", "lightning.pytorch.callbacks.callback:Callback")
    with pytest.raises(schema.Missing):
        schema.resolve("lightning.pytorch.callbacks", "EarlyStoping")
    with pytest.raises(schema.Missing):
        schema.resolve("no_such_pkg_gatelab", "Callback")


# --------------------------------------------------------------------------- the reader itself


_SOURCE = """
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

from gatelab.core.config import Dropout, ModelConfig, PositiveInt
from somewhere_heavy import HeavyType

Alias = PositiveInt | None
_PRESETS = {"small": {"dim": 4}, "large": {"dim": 64}}


@dataclasses.dataclass(frozen=True, kw_only=True)
class BaseCfg(ModelConfig):
    dim: PositiveInt = 8
    presets: ClassVar = _PRESETS


@dataclasses.dataclass(frozen=True, kw_only=True)
class ToyCfg(BaseCfg):
    dropout: Dropout = 0.1
    mode: Literal["a", "b"] = "a"
    sizes: Sequence[int] = (1,)
    heavy: HeavyType | None = None
    hidden: int = dataclasses.field(default=3, init=False)
    alias: Alias = None
    registry: ClassVar[dict] = {}


class Toy:
    config_class = ToyCfg

    def __init__(self, config=None, /, **overrides: Any) -> None:
        pass


class Plain:
    def __init__(self, a: PositiveInt, b, *args, c: "Alias" = None, **kw) -> None:
        pass


def factory(**cfg: Any) -> Plain:
    return Plain(**cfg)


def made(**cfg):
    return Plain(**cfg)


built = factory


def dynamic(**cfg):
    pass


dynamic = dataclasses.dataclass(dynamic)


def patched(a: int = 1):
    pass


patched.__signature__ = None


class Configured:
    def __init__(self, a: int = 1) -> None:
        pass


setattr(Configured, "config_class", ToyCfg)
"""


@pytest.fixture
def toy_module(tmp_path, monkeypatch):
    (tmp_path / "gatelab_schema_toy.py").write_text(textwrap.dedent(_SOURCE))
    monkeypatch.syspath_prepend(str(tmp_path))
    schema.clear_cache()
    yield "gatelab_schema_toy"
    schema.clear_cache()
    sys.modules.pop("gatelab_schema_toy", None)


def test_reader_config_class_fields_presets_and_aliases(toy_module):
    from gatelab.core.config import Dropout, PositiveInt

    p = schema.read_params(f"{toy_module}:Toy")
    assert list(p.params) == ["dim", "dropout", "mode", "sizes", "heavy", "alias", "preset"]
    assert p.params["dim"] == PositiveInt and p.params["dropout"] == Dropout
    assert p.params["mode"] == typing.Literal["a", "b"]
    assert p.params["alias"] == (PositiveInt | None)
    assert p.params["preset"] == typing.Literal["small", "large"]
    assert p.unresolved == {"heavy"} and p.params["heavy"] is Any
    assert p.texts["heavy"] == "HeavyType | None" and not p.open_ended
    assert toy_module not in sys.modules  # read, never imported


def test_reader_functions_classes_and_fallbacks(toy_module):
    from gatelab.core.config import PositiveInt

    plain = schema.read_params(f"{toy_module}:Plain")
    assert list(plain.params) == ["a", "b", "c"] and plain.open_ended
    assert plain.params["a"] == PositiveInt and plain.params["b"] is Any
    assert plain.params["c"] == (PositiveInt | None)  # a quoted alias
    assert schema.read_params(f"{toy_module}:factory").params == plain.params  # **cfg -> Plain
    assert schema.read_params(f"{toy_module}:built").params == plain.params  # an alias
    made = schema.read_params(f"{toy_module}:made")  # **cfg without return annotation
    assert made.params == {} and made.open_ended
    for name in ("dynamic", "patched", "Configured"):  # changed at run time: not certain
        with pytest.raises(schema.StaticReadError):
            schema.read_params(f"{toy_module}:{name}")
    with pytest.raises(schema.Missing):
        schema.read_params(f"{toy_module}:nothing")
    assert toy_module not in sys.modules


_NO_TORCH = """
import json, sys
from gatelab.core.config import ConfigError
from gatelab.core.harness.validation import validate_experiment
out = []
for cfg, ckpt, resume in json.loads(sys.argv[1]):
    try:
        validate_experiment(cfg, checkpoint=ckpt, resume=resume)
        out.append(None)
    except ConfigError as e:
        out.append(str(e))
heavy = sorted(m for m in ("torch", "lightning", "torchmetrics", "numpy", "pandas") if m in sys.modules)
print(json.dumps({"msgs": out, "heavy": heavy}))
"""

#: bad sections found by static reading alone, and a fragment of their one-line error
_STATIC_CASES = [
    ({"model": {"name": "gateformer", "kwargs": {"d_model": 0}}}, "model.kwargs.d_model=0"),
    ({"model": {"name": "finalmlp", "kwargs": {"mlp1_dropout": 1.0}}}, "model.kwargs.mlp1_dropout=1.0"),
    ({"model": {"name": "maxim", "kwargs": {"featurs": 3}}}, "did you mean 'features'"),
    ({"data": {"name": "ltsf", "kwargs": {"lookback": 0}}}, "data.kwargs.lookback=0"),
    ({"task": {"name": "regression", "kwargs": {"los": "mae"}}}, "did you mean 'loss'"),
    ({"task": {"name": "regression", "kwargs": {"loss": "l3"}}}, "task.kwargs.loss='l3'"),
    ({"task": {"name": "ctr", "kwargs": {"min_lr": "abc"}}}, "task.kwargs.min_lr='abc'"),
    ({"trainer": {"extra": {"detect_anomaly": "maybe"}}}, "trainer.extra.detect_anomaly='maybe'"),
    ({"trainer": {"early_stopping": {"monitor": "val/los"}}}, "did you mean 'val/loss'"),
    ({"trainer": {"strategy": "dpp"}}, "did you mean 'ddp'"),
    (
        {"trainer": {"callbacks": ["lightning.pytorch.callbacks.EarlyStoping"]}},
        "did you mean 'EarlyStopping'",
    ),
    ({"trainer": {"callbacks": ["collections.OrderedDict"]}}, "Callback subclass"),
    (
        {
            "trainer": {
                "callbacks": [
                    {"class_path": "lightning.pytorch.callbacks.Timer", "init_args": {"intervl": 1}}
                ]
            }
        },
        "did you mean 'interval'",
    ),
]


def _checkpoints(tmp: Path) -> list[tuple[str, bool, str]]:
    """``(path, resume, fragment)``: checkpoint files the static check rejects."""
    import torch

    good = tmp / "good.ckpt"
    ckpt = {
        "state_dict": {"w": torch.zeros(3)},
        "loops": {},
        "optimizer_states": [],
        "hyper_parameters": {"model_name": "gateformer", "task": {"name": "regression"}},
    }
    torch.save(ckpt, good)
    other = tmp / "other.ckpt"
    torch.save({**ckpt, "hyper_parameters": {"model_name": "tft", "task": {"name": "regression"}}}, other)
    other_task = tmp / "other-task.ckpt"
    torch.save({**ckpt, "hyper_parameters": {"model_name": "gateformer", "task": {"name": "ctr"}}}, other_task)
    weights = tmp / "weights.ckpt"
    torch.save({"state_dict": ckpt["state_dict"]}, weights)
    truncated = tmp / "truncated.ckpt"
    truncated.write_bytes(good.read_bytes()[:300])
    junk = tmp / "junk.ckpt"
    junk.write_text("hello")
    empty = tmp / "empty.ckpt"
    empty.write_bytes(b"")
    return [
        (str(other), False, "holds model 'tft', but the config names 'gateformer'"),
        (str(other_task), True, "trained with task 'ctr', but the config names 'regression'"),
        (str(weights), True, "not a Lightning training checkpoint (missing loops, optimizer_states)"),
        (str(truncated), False, "not a readable checkpoint (truncated or corrupt zip archive)"),
        (str(junk), False, "not a readable checkpoint (not a torch.save file)"),
        (str(empty), True, "not a readable checkpoint (empty file)"),
        (str(tmp / "missing.ckpt"), False, "checkpoint not found"),
    ]


def test_bad_kwargs_are_found_without_torch(tmp_path):
    """A bad model/data/task kwarg, Trainer extra, monitor, strategy, callback or checkpoint file
    is reported by static reading alone: a fresh interpreter never imports torch or Lightning.
    (A good checkpoint passes the file check; what remains is then checked by import.)"""
    base = {
        "name": "no-torch",
        "model": {"name": "gateformer"},
        "data": {"name": "ltsf", "kwargs": {"dataset": "etth1"}},
        "task": {"name": "regression"},
    }
    ckpts = _checkpoints(tmp_path)
    runs = [({**base, **section}, None, False) for section, _ in _STATIC_CASES]
    runs += [(base, path, resume) for path, resume, _ in ckpts]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", _NO_TORCH, json.dumps(runs)], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["heavy"] == [], res
    expected = [f for _, f in _STATIC_CASES] + [f for _, _, f in ckpts]
    assert len(res["msgs"]) == len(expected)
    for fragment, msg in zip(expected, res["msgs"]):
        assert msg is not None and fragment in msg and "\n" not in msg, (fragment, msg)
    # the good checkpoint passes the file check (for evaluation and for resuming)
    from gatelab.core.harness.validation import check_checkpoint_file

    check_checkpoint_file(tmp_path / "good.ckpt", ExperimentConfig.from_dict(base), training=True)


def test_task_logged_metrics_cover_what_tasks_log():
    """Each task's static ``logged_metrics`` (read from source for the load-time monitor check)
    contains every metric its ``metric_names`` gives for the default options."""
    from gatelab.core.harness.task import build_options

    for name, target in _entries(TASKS):
        declared = schema.read_class_attr(target, "logged_metrics")
        cls = TASKS.get(name)
        assert declared == cls.logged_metrics
        if declared is None:
            continue
        names = cls.metric_names(build_options(cls.Options, {}))
        if names is not None:
            assert set(names) <= set(declared), (name, names, declared)


def test_known_lightning_names_are_lightnings():
    """The accelerator/strategy names checked without Lightning are exactly its registries."""
    from lightning.pytorch.accelerators import AcceleratorRegistry
    from lightning.pytorch.strategies import StrategyRegistry

    from gatelab.core.harness import validation

    assert set(validation._KNOWN_ACCELERATORS) == {"auto", "gpu", *AcceleratorRegistry.available_accelerators()}
    assert set(validation._KNOWN_STRATEGIES) == {"auto", *StrategyRegistry.available_strategies()}


def test_checkpoint_model_from_run_dir_config(tmp_path):
    """A checkpoint whose pickle cannot be peeked at is matched against its run directory's
    saved ``config.yaml`` (``<run dir>/checkpoints/<file>``)."""
    import zipfile

    import yaml

    from gatelab.core.config import ConfigError
    from gatelab.core.harness.validation import check_checkpoint_file

    run = tmp_path / "version_0"
    (run / "checkpoints").mkdir(parents=True)
    ckpt = run / "checkpoints" / "last.ckpt"
    with zipfile.ZipFile(ckpt, "w") as z:
        z.writestr("last/data.pkl", b"not a pickle")
    (run / "config.yaml").write_text(yaml.safe_dump({"model": {"name": "tft"}, "task": {"name": "tft"}}))
    cfg = ExperimentConfig.from_dict({"name": "x", "model": "gateformer", "data": "ltsf"})
    with pytest.raises(ConfigError, match=r"holds model 'tft', but the config names 'gateformer'"):
        check_checkpoint_file(ckpt, cfg)
    (run / "config.yaml").write_text(yaml.safe_dump({"model": {"name": "gateformer"}, "task": {"name": "tft"}}))
    with pytest.raises(ConfigError, match=r"trained with task 'tft', but the config names 'regression'"):
        check_checkpoint_file(ckpt, cfg)


#: registry entries whose fixed config key is a ``Literal`` of their config subclass (they were
#: closures, read by import only): a wrong fixed value or a preset of another variant is found
#: by static reading alone
_FIXED_KEY_CASES = [
    ("attention-unet-2d", {"spatial_dims": 3}, "model.kwargs.spatial_dims=3", "2"),
    ("attention-unet-3d", {"spatial_dims": 2}, "model.kwargs.spatial_dims=2", "3"),
    ("attention-unet-2d", {"preset": "unet-3d"}, "model.kwargs.preset='unet-3d'", "'attention-unet-2d'"),
    ("vl-gated-decoder", {"fusion": "add"}, "model.kwargs.fusion='add'", "'gate'"),
    ("vl-nogate-decoder", {"fusion": "gate"}, "model.kwargs.fusion='gate'", "'add'"),
    ("vl-visual-decoder", {"preset": "gate-scalar"}, "model.kwargs.preset='gate-scalar'", "'always-visual'"),
]


def test_fixed_key_entries_are_read_statically(tmp_path):
    """Every registered model is read from source (no closure left to the import path), and the
    entries that fix one config key reject a wrong value in a fresh interpreter without torch,
    in one line naming the key, the value and the allowed value."""
    unreadable = []
    for name, target in _entries(MODELS):
        try:
            schema.read_params(target)
        except schema.StaticReadError as e:
            unreadable.append(f"{name}: {e}")
    assert not unreadable, unreadable
    base = {
        "name": "fixed",
        "data": {"name": "ltsf", "kwargs": {"dataset": "etth1"}},
        "task": {"name": "regression"},
    }
    runs = [
        ({**base, "model": {"name": name, "kwargs": kw}}, None, False) for name, kw, _, _ in _FIXED_KEY_CASES
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", _NO_TORCH, json.dumps(runs)], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["heavy"] == [], res
    for (name, _, key, allowed), msg in zip(_FIXED_KEY_CASES, res["msgs"], strict=True):
        assert msg is not None and key in msg and allowed in msg and "\n" not in msg, (name, msg)
