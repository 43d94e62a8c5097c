"""The one generic registry (gatelab.core.registry): lazy entries, metadata, open domains, one
did-you-mean, one list type; cheap imports; third-party plugins; ``gatelab --version``."""

from __future__ import annotations

import importlib.metadata
import inspect
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import gatelab
from gatelab.core.config import ConfigError
from gatelab.core.harness import (
    get_datamodule,
    get_dataset,
    get_table,
    get_task,
    list_datamodules,
    list_datasets,
    list_tables,
    list_tasks,
)
from gatelab.core.harness.cli import EXAMPLES, main
from gatelab.core.registry import (
    BUILTIN_DOMAINS,
    DATAMODULES,
    DATASETS,
    MODELS,
    TABLES,
    TASKS,
    Registry,
    UnknownNameError,
    create_model,
    list_models,
    model_info,
    register_model,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def lazy_module(tmp_path, monkeypatch):
    """A module ``regtest_lazy_<n>`` on sys.path that records its own import; yields its name."""
    name = f"regtest_lazy_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent(
            """
            IMPORTED = True
            TABLE = {"nested": {"value": 42}}

            def factory(width=4):
                '''A factory used only by tests/test_registry.py.'''
                return {"width": width}
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


# --------------------------------------------------------------------------- the Registry class


def test_lazy_entry_is_imported_on_first_use_only(lazy_module):
    reg: Registry = Registry("widget", key="widget.name")
    entry = reg.register("w", f"{lazy_module}:factory", domain="mylab", colour="red")
    assert entry.lazy and lazy_module not in sys.modules
    assert "w" in reg and entry.meta == {"colour": "red"} and entry.domain == "mylab"
    assert reg.names() == ["w"] and reg.names(domain="mylab") == ["w"]
    assert lazy_module not in sys.modules  # listing and metadata import nothing
    fn = reg.get("w")
    assert lazy_module in sys.modules and fn(width=2) == {"width": 2} and not entry.lazy
    assert reg.get("w") is fn


def test_dotted_target_walks_attributes_and_mapping_keys(lazy_module):
    reg: Registry = Registry("value")
    reg.register("v", f"{lazy_module}:TABLE.nested.value")
    assert reg.get("v") == 42
    reg.register("bad", f"{lazy_module}:TABLE.nestd.value")
    with pytest.raises(ImportError, match=r"value 'bad'.*key 'nestd' not found \(did you mean 'nested'\?\)"):
        reg.get("bad")
    reg.register("gone", "regtest_no_such_module:x")
    with pytest.raises(ImportError, match=r"'regtest_no_such_module:x'.*ModuleNotFoundError"):
        reg.get("gone")


def test_unknown_name_one_message_with_did_you_mean():
    reg: Registry = Registry("widget", key="widget.name")
    reg.register("alpha", object())
    reg.register("beta", object(), domain="mylab")
    with pytest.raises(UnknownNameError) as e:
        reg.get("alpah")
    assert (
        str(e.value) == "widget.name='alpah': unknown widget (did you mean 'alpha'?); registered: alpha, beta"
    )
    assert isinstance(e.value, ConfigError) and isinstance(e.value, KeyError)
    with pytest.raises(
        ConfigError,
        match=r"unknown domain 'mylb' for widgets \(did you mean 'mylab'\?\); domains: core, mylab",
    ):
        reg.names(domain="mylb")


def test_registration_clashes_and_validation():
    reg: Registry = Registry("widget")
    a, b = object(), object()
    reg.register("x", a)
    assert reg.register("x", a, note=1).meta == {"note": 1}  # same object again: metadata refreshed
    with pytest.raises(ValueError, match="'x' is already registered"):
        reg.register("x", b)
    with pytest.raises(ValueError, match="already registered by domain 'core'"):
        reg.register("x", a, domain="mylab")
    reg.register("x", b, replace=True)
    assert reg.get("x") is b
    for bad_name in ("", "with space", "-lead", "a:b"):
        with pytest.raises(ValueError, match="name"):
            reg.register(bad_name, a)
    for bad_domain in ("", "MyLab", "my lab", "9lab"):
        with pytest.raises(ValueError, match="lower-case identifier"):
            reg.register("y", a, domain=bad_domain)
    with pytest.raises(ValueError, match=r"is not 'package\.module:attr'"):
        reg.register("z", "not a target")
    reg.unregister("x")
    assert "x" not in reg
    with pytest.raises(UnknownNameError):
        reg.unregister("x")


def test_check_rejects_a_wrong_object(lazy_module):
    def check(name, obj):
        if not isinstance(obj, int):
            raise TypeError(f"{name}: expected an int, got {type(obj).__name__}")

    reg: Registry = Registry("number", check=check)
    reg.register("n", f"{lazy_module}:TABLE")
    with pytest.raises(TypeError, match="n: expected an int, got dict"):
        reg.get("n")


def test_module_registering_itself_fills_its_lazy_entry(tmp_path, monkeypatch):
    """``register_table(...)`` inside a lazily named module replaces the placeholder (the gateformer table)."""
    monkeypatch.syspath_prepend(str(tmp_path))
    reg: Registry = Registry("widget")
    (tmp_path / "regtest_selfreg.py").write_text(
        "from test_registry_support import REG\nOBJ = object()\nREG.register('w', OBJ, domain='mylab')\n"
    )
    (tmp_path / "regtest_other.py").write_text("OBJ = object()\n")
    support = type(sys)("test_registry_support")
    support.REG = reg
    monkeypatch.setitem(sys.modules, "test_registry_support", support)
    try:
        reg.register("w", "regtest_selfreg:OBJ", domain="mylab")
        import regtest_selfreg

        assert reg.get("w") is regtest_selfreg.OBJ
        # a module-only target: importing the module must register the name
        reg.register("m", "regtest_other", domain="mylab")
        with pytest.raises(ImportError, match="importing regtest_other did not register it"):
            reg.get("m")
        # a lazy entry naming another module's object cannot be replaced by a third object
        reg.register("o", "regtest_other:OBJ")
        with pytest.raises(ValueError, match="'o' is already registered"):
            reg.register("o", object())
    finally:
        for m in ("regtest_selfreg", "regtest_other"):
            sys.modules.pop(m, None)


# --------------------------------------------------------------------------- the five registries


def test_every_list_is_a_sorted_list_of_names():
    lists = {
        "models": list_models(),
        "data modules": list_datamodules(),
        "tasks": list_tasks(),
        "datasets": list_datasets(),
        "tables": list_tables(),
    }
    for what, names in lists.items():
        assert isinstance(names, list) and names == sorted(names) and names, what
        assert all(isinstance(n, str) for n in names), what
    # what the domains declare (a missing or extra name here means a registration moved or was lost)
    assert {"gateformer", "itransformer", "tft", "finalmlp", "gdcn-p", "attention-unet-2d", "maxim-3s",
            "vl-gated-decoder"} <= set(lists["models"])  # fmt: skip
    builtin = {n for n in lists["data modules"] if DATAMODULES.entry(n).domain in BUILTIN_DOMAINS}
    assert builtin == {
        "ltsf", "tft-stallion", "tft-electricity", "tft-traffic", "tft-frame", "ctr", "membrane", "drive", "seg-folder",
        "seg-nifti", "denoise", "paired_restoration", "vl-text", "vl-shapes", "vl-coco", "vl-babylm", "vl-spoken",
    }  # fmt: skip
    assert {"regression", "classification", "tft", "ctr", "segmentation", "restoration", "vl-lm"} <= set(
        lists["tasks"]
    )
    assert {"gateformer", "tft", "ctr", "attention-unet", "maxim", "vl-gating"} <= set(lists["tables"])
    assert list_models(domain="vision") == [
        "attention-unet-2d", "attention-unet-3d", "dncnn", "maxim", "maxim-1s", "maxim-2s", "maxim-3s",
    ]  # fmt: skip
    assert "gateformer" in list_models(gate="TokenwiseGate") and "lr" in list_models(tag="baseline")


def test_every_lazy_entry_resolves_to_the_right_kind():
    """Each ``"module:attr"`` in the domains' registry.py imports and passes its registry's check."""
    from gatelab.core.harness.data import DatasetSpec
    from gatelab.core.harness.repro import ReproTable
    from gatelab.core.harness.task import GatelabTask

    for name in list_datasets():
        assert isinstance(get_dataset(name), DatasetSpec) and get_dataset(name).name == name
    for name in list_tables():
        assert isinstance(get_table(name), ReproTable) and get_table(name).name == name
    for name in list_tasks():
        assert issubclass(get_task(name), GatelabTask), name
    for name in list_datamodules():
        assert callable(get_datamodule(name)), name
    for name in list_models():
        info = model_info(name)
        assert callable(info.fn) and isinstance(info.tiny, dict) and callable(info.example_inputs), name
        assert info.description and info.paper, name


def test_unknown_names_keep_their_error_types_and_messages():
    from gatelab.core.harness.errors import DatasetNotFoundError

    with pytest.raises(KeyError, match=r"unknown model 'gatefromer' \(did you mean 'gateformer'\?\)"):
        create_model("gatefromer")
    with pytest.raises(ConfigError, match=r"data.name='ltfs': unknown data module \(did you mean 'ltsf'"):
        get_datamodule("ltfs")
    with pytest.raises(ConfigError, match=r"task.name='regresion': unknown task \(did you mean 'regression'"):
        get_task("regresion")
    with pytest.raises(
        DatasetNotFoundError, match=r"unknown dataset 'etth3' \(did you mean 'etth2', 'etth1'"
    ):
        get_dataset("etth3")
    with pytest.raises(
        ConfigError, match=r"unknown repro table 'maxmi' \(did you mean 'maxim'\?\).*gatelab repro --list"
    ):
        get_table("maxmi")
    with pytest.raises(
        ConfigError, match=r"unknown domain 'timeseres' for models \(did you mean 'timeseries'"
    ):
        list_models(domain="timeseres")


def test_open_domain_model_registration():
    name = "regtest-mylab-mlp"
    entry = register_model(
        name,
        "gatelab.core.glu_family:GluMlp",
        domain="mylab",
        paper="test only",
        gates=("GluMlp",),
        tiny={"dim": 4, "hidden_dim": 8},
        tags=("test",),
    )
    try:
        assert entry.lazy
        assert list_models(domain="mylab") == [name] and "mylab" in MODELS.domains()
        info = model_info(name)
        assert (
            info.domain == "mylab"
            and info.gates == ("GluMlp",)
            and info.tiny == {"dim": 4, "hidden_dim": 8}
        )
        from gatelab.core.glu_family import GluMlp

        assert info.description == inspect.getdoc(GluMlp).split("\n")[0]  # none declared: the docstring's
        model = create_model(name, **info.tiny)
        assert type(model).__name__ == "GluMlp"
        with pytest.raises(ConfigError, match=r"model 'regtest-mylab-mlp'.*in_featurs.*unexpected keyword"):
            create_model(name, in_featurs=4)
        with pytest.raises(
            ValueError, match=r"\['GluMpl'\] are not gatelab.core exports \(did you mean 'GluMlp'"
        ):
            register_model("regtest-bad", "x.y:z", domain="mylab", paper="p", gates=("GluMpl",))
    finally:
        MODELS.unregister(name)
    assert name not in list_models()


def test_harness_wrappers_register_in_the_generic_registries(tmp_path):
    from gatelab.core.harness import register_datamodule, register_dataset, register_table, register_task
    from gatelab.core.harness.data import DatasetSpec
    from gatelab.core.harness.repro import ReproTable

    spec = DatasetSpec(name="regtest-set", subdir="x", files={"a.csv": None}, source="s", license="l")

    @register_datamodule("regtest-dm", domain="mylab")
    def dm(data_dir):
        return data_dir

    try:
        assert (
            register_dataset(spec, domain="mylab") is spec and DATASETS.entry("regtest-set").domain == "mylab"
        )
        register_task("regtest-task", "gatelab.core.harness.task:RegressionTask", domain="mylab")
        table = register_table(
            ReproTable(name="regtest-table", description="d", paper="p", run=lambda a: [], domain="mylab")
        )
        assert list_datamodules(domain="mylab") == ["regtest-dm"] and get_datamodule("regtest-dm") is dm
        assert list_tasks(domain="mylab") == ["regtest-task"] and list_datasets(domain="mylab") == [
            "regtest-set"
        ]
        assert list_tables(domain="mylab") == ["regtest-table"] and get_table("regtest-table") is table
        with pytest.raises(TypeError, match="expected a DatasetSpec"):
            register_dataset({"name": "x"})  # type: ignore[arg-type]
    finally:
        for reg, name in ((DATAMODULES, "regtest-dm"), (TASKS, "regtest-task"), (DATASETS, "regtest-set"),
                          (TABLES, "regtest-table")):  # fmt: skip
            if name in reg:
                reg.unregister(name)


# --------------------------------------------------------------------------- cheap imports (subprocesses)


def _python(code: str, **env: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**__import__("os").environ, "OMP_NUM_THREADS": "1", **env},
        cwd=REPO,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


_HEAVY = ("torch", "lightning", "numpy", "pandas", "pyarrow", "PIL")
_DOMAINS = ("gatelab.timeseries", "gatelab.recsys", "gatelab.vision", "gatelab.multimodal")


def test_import_gatelab_and_cli_help_version_are_cheap():
    """``import gatelab``, ``gatelab --help`` / ``--version`` import no torch and no domain, in < 0.5 s CPU."""
    res = _python(
        f"""
        import contextlib, io, json, sys, time
        t0 = time.process_time()
        import gatelab
        after_import = sorted(m for m in sys.modules if m.split(".")[0] in {_HEAVY!r} or m.startswith({_DOMAINS!r}))
        from gatelab.core.harness.cli import main
        codes = []
        for argv in (["--version"], ["--help"], ["train", "--help"], ["repro", "--help"]):
            with contextlib.redirect_stdout(io.StringIO()):
                codes.append(main(argv))
        cpu = time.process_time() - t0
        after_cli = sorted(m for m in sys.modules if m.split(".")[0] in {_HEAVY!r} or m.startswith({_DOMAINS!r}))
        print(json.dumps({{"import": after_import, "cli": after_cli, "codes": codes, "cpu": cpu}}))
        """
    )
    assert res["import"] == [] and res["cli"] == [], res
    assert res["codes"] == [0, 0, 0, 0]
    assert res["cpu"] < 0.5, f"import gatelab + 4 help/version calls took {res['cpu']:.2f} s CPU"


def test_listing_imports_no_model_module_and_create_model_only_its_own():
    res = _python(
        f"""
        import json, sys
        import gatelab
        from gatelab.core.registry import registered
        from gatelab.core.harness import list_datamodules, list_datasets, list_tables, list_tasks
        infos = registered()
        names = [list_datamodules(), list_datasets(), list_tables(), list_tasks()]
        gates = {{n: list(i.gates) for n, i in infos.items()}}
        listed = sorted(m for m in sys.modules if m.split(".")[0] in {_HEAVY!r} or ".models" in m)
        before = set(sys.modules)
        model = gatelab.create_model("gateformer", num_vars=3, lookback=16, horizon=4)
        created = sorted(m for m in set(sys.modules) - before if m.startswith(("gatelab.timeseries",
                         "gatelab.recsys", "gatelab.vision", "gatelab.multimodal")))
        heavy = sorted(m for m in ("pandas", "pyarrow", "lightning", "PIL", "pytorch_forecasting") if m in sys.modules)
        print(json.dumps({{"listed": listed, "created": created, "heavy": heavy, "gates": gates,
                           "type": type(model).__name__}}))
        """
    )
    assert res["listed"] == [], res["listed"]
    assert res["created"] == ["gatelab.timeseries.models", "gatelab.timeseries.models.gateformer"], res[
        "created"
    ]
    assert res["heavy"] == [] and res["type"] == "Gateformer"
    assert res["gates"]["gateformer"] == ["TokenwiseGate", "OutputGatedAttention"]


def test_plugin_entry_points(tmp_path):
    """A third-party package registers through the ``gatelab.plugins`` entry-point group."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "mylab_plugin.py").write_text(
        textwrap.dedent(
            """
            from gatelab.core.registry import register_model

            def build(width=4):
                '''A mylab model: a plain dict, so this test needs no torch.'''
                return {"width": width}

            register_model("mylab-model", "mylab_plugin:build", domain="mylab", paper="Someone 2026",
                           gates=("GluMlp",), tiny={"width": 2})
            """
        )
    )
    (site / "mylab_broken.py").write_text("raise RuntimeError('broken on purpose')\n")
    for dist, value in (("mylab_plugin", "mylab = mylab_plugin"), ("mylab_broken", "broken = mylab_broken")):
        info = site / f"{dist}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text(f"[gatelab.plugins]\n{value}\n")
    res = _python(
        """
        import contextlib, io, json, sys, warnings
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import gatelab
            names = gatelab.list_models(domain="mylab")
        model = gatelab.create_model("mylab-model", width=3)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = __import__("gatelab.core.harness.cli", fromlist=["main"]).main(["list", "--domain", "mylab"])
        print(json.dumps({"names": names, "model": model, "warnings": [str(w.message) for w in caught],
                          "list": out.getvalue(), "code": code, "torch": "torch" in sys.modules}))
        """,
        PYTHONPATH=str(site),
    )
    assert res["names"] == ["mylab-model"] and res["model"] == {"width": 3}
    assert any(
        "plugin 'broken' (mylab_broken) failed to load: RuntimeError: broken on purpose" in w
        for w in res["warnings"]
    )
    assert res["code"] == 0 and "mylab-model  mylab   GluMlp  Someone 2026" in res["list"]
    assert res["torch"] is False


# --------------------------------------------------------------------------- CLI


def test_version(capsys):
    assert main(["--version"]) == 0
    out = capsys.readouterr().out.strip()
    assert out == f"gatelab {importlib.metadata.version('gatelab')}" == f"gatelab {gatelab.__version__}"


@pytest.mark.parametrize("command", sorted(EXAMPLES))
def test_every_subcommand_help_ends_with_its_example(command, capsys):
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.rstrip().endswith(f"example:\n  {EXAMPLES[command]}"), out


def test_list_domain_errors(capsys):
    assert main(["list", "--domain", "visoin"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        "gatelab list: error: --domain: unknown domain 'visoin' for models (did you mean 'vision'?); domains: "
    ), err
    assert {"multimodal", "recsys", "timeseries", "vision"} <= set(err[0].split("domains: ")[1].split(", "))
    assert main(["list", "--domain", "vision", "--gate", "AttentionGate"]) == 0
    out = capsys.readouterr().out
    assert "attention-unet-2d" in out and "maxim" not in out
