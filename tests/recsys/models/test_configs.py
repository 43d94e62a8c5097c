"""The recsys model configs: every preset builds (parameter counts as the BARS / RecZoo logs),
create_model(name, preset=...), strict one-line ConfigErrors, configs that rebuild their model."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from ctr_model_fixtures import SPEC, frappe_spec, inputs

from gatelab.core.config import ConfigError, from_dict
from gatelab.core.registry import create_model, model_info, registered
from gatelab.recsys.data import as_feature_spec
from gatelab.recsys.data.frappe import FRAPPE_X1_VOCAB
from gatelab.recsys.models import CTRConfig, CTRModel, DualMLP, FinalMLP, FinalMLPConfig, model_param_groups

RECSYS = sorted(n for n, i in registered().items() if i.domain == "recsys")
#: the models of the ``ctr`` table: each config has the BARS / GDCN-paper ``frappe-x1`` preset
FRAPPE_X1 = ["dcnv2", "deepfm", "dnn", "dualmlp", "fignn", "finalmlp", "gdcn-p", "gdcn-s", "lr"]


@pytest.mark.parametrize("name", FRAPPE_X1)
def test_every_frappe_preset_builds_and_runs(name):
    """``create_model(name, preset="frappe-x1", feature_spec=...)`` = the config class's preset
    with the data's spec; the model runs on Frappe-shaped inputs."""
    cls = model_info(name).fn
    cfg_cls = cls.config_class
    assert issubclass(cfg_cls, CTRConfig) and "frappe-x1" in cfg_cls.presets
    spec = frappe_spec()
    m = create_model(name, preset="frappe-x1", feature_spec=spec)
    assert type(m) is cls and isinstance(m, CTRModel)
    assert m.config == cfg_cls.from_preset("frappe-x1", feature_spec=spec)
    for key, value in cfg_cls.presets["frappe-x1"].items():
        assert getattr(m.config, key) == value, (name, key)
    g = torch.Generator().manual_seed(0)
    x = {"categorical": torch.randint(1, 3, (4, len(FRAPPE_X1_VOCAB)), generator=g)}
    assert m.eval()(**x).shape == (4,)


def test_frappe_parameter_counts_match_fuxictr_logs():
    """Parameter counts with the official Frappe_x1 vocabulary sizes, as printed in the BARS /
    RecZoo logs (FinalMLP 253392 with FuxiCTR's two fusion biases -- one here -- and DualMLP 972992)."""
    spec = frappe_spec()
    fin = FinalMLP(FinalMLPConfig.from_preset("frappe-x1", feature_spec=spec))
    assert sum(p.numel() for p in fin.parameters()) == 253392 - 1
    dual = create_model("dualmlp", preset="frappe-x1", feature_spec=spec)
    assert isinstance(dual, DualMLP) and sum(p.numel() for p in dual.parameters()) == 972992
    emb, other = model_param_groups(fin)
    # main table + separate user/item context tables, as FuxiCTR's fs*_ctx_emb
    assert sum(p.numel() for p in emb) == 10 * (
        sum(f["vocab_size"] for f in spec["fields"]) + FRAPPE_X1_VOCAB["user"] + FRAPPE_X1_VOCAB["item"]
    )
    assert {id(p) for p in emb}.isdisjoint({id(p) for p in other})


@pytest.mark.parametrize("name", RECSYS)
def test_config_rebuilds_the_model(name):
    """``model.config`` is the whole recipe: frozen, YAML-safe, and ``type(model)(config)``
    (or the config's plain dict) gives the same architecture and, from the same seed, the same
    weights and outputs. A ``FeatureSpec`` is stored as its ``model_dict()``."""
    info = model_info(name)
    tiny = info.tiny
    torch.manual_seed(0)
    m = create_model(name, **tiny)
    cfg = m.config
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.embedding_dim = 3  # type: ignore[misc]
    plain = cfg.to_dict()
    assert from_dict(type(cfg), plain) == cfg
    torch.manual_seed(0)
    again = type(m)(plain)
    assert again.config == cfg
    a, b = m.state_dict(), again.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    x = inputs(3)
    torch.testing.assert_close(m.eval()(**x), again.eval()(**x), rtol=0, atol=0)
    via_spec = type(m)(cfg, feature_spec=as_feature_spec(tiny["feature_spec"]))
    assert via_spec.config == cfg and via_spec.feature_spec == cfg.feature_spec


def _spec(**changes):
    """The tiny spec with field ``user`` changed (e.g. its embedding size)."""
    fields = [dict(f, **changes) if f["name"] == "user" else f for f in SPEC["fields"]]
    return {**SPEC, "fields": fields}


@pytest.mark.parametrize(
    ("call", "fragments"),
    [
        (lambda: create_model("finalmlp", feature_spec=SPEC, crossing_layers=3),
         ["'crossing_layers'", "FinalMLPConfig", "valid keys: feature_spec"]),
        (lambda: create_model("dnn", feature_spec=SPEC, net_dropout=0.1),  # FuxiCTR's name
         ["'net_dropout'", "did you mean 'dropout'"]),
        (lambda: create_model("finalmlp", feature_spec=SPEC, mlp1_activation="relu"),
         ["'mlp1_activation'", "did you mean 'mlp1_act'"]),
        (lambda: FinalMLP(feature_spec=SPEC, mlp1_hidden_dims=[4], mlp2_hidden_dims=[3], num_heads=2),
         ["FinalMLPConfig.mlp2_hidden_dims=[3]", "divisible by num_heads=2"]),
        (lambda: FinalMLP(feature_spec=SPEC, mlp1_hidden_dims=[]), ["FinalMLPConfig.mlp1_hidden_dims=()"]),
        (lambda: FinalMLP(feature_spec=SPEC, fs1_context=["shop"]),
         ["FinalMLPConfig.fs1_context=['shop']", "not in feature_spec", "user, item"]),
        (lambda: FinalMLP(feature_spec=SPEC, use_fs=False, fs2_context=["item"]),
         ["FinalMLPConfig.fs2_context=['item']", "unused with use_fs=false"]),
        (lambda: FinalMLP(feature_spec=SPEC, mlp2_act="reluu"),
         ["FinalMLPConfig.mlp2_act='reluu'", "did you mean 'relu'"]),
        (lambda: FinalMLP(feature_spec=SPEC, mlp1_dropout=1.0), ["FinalMLPConfig.mlp1_dropout=1.0", "[0, 1)"]),
        (lambda: FinalMLP(feature_spec=SPEC, num_heads=0), ["FinalMLPConfig.num_heads=0", ">= 1"]),
        (lambda: FinalMLP(feature_spec=SPEC, use_fs="yes"), ["FinalMLPConfig.use_fs='yes'", "boolean"]),
        (lambda: FinalMLP(embedding_dim=4), ["FinalMLPConfig", "'feature_spec'"]),
        (lambda: FinalMLP(feature_spec=_spec(vocab_size=None)),
         ["FinalMLPConfig.feature_spec", "['user'] have no vocab_size"]),
        (lambda: create_model("finalmlp", preset="frappe-x2", feature_spec=SPEC),
         ["unknown preset 'frappe-x2'", "did you mean 'frappe-x1'"]),
        (lambda: create_model("gcn", preset="frappe-x1", feature_spec=SPEC), ["GCNConfig", "presets: none"]),
        (lambda: create_model("gdcn-s", feature_spec=SPEC, structure="parallel"),
         ["GDCNSConfig.structure='parallel'", "'stacked'"]),
        (lambda: create_model("gdcn-p", feature_spec=SPEC, dnn_hidden_dims=[]),
         ["GDCNPConfig.dnn_hidden_dims=[]", "needs a DNN"]),
        (lambda: create_model("gcn", feature_spec=SPEC, dnn_hidden_dims=[8]),
         ["GCNConfig.dnn_hidden_dims=[8]", "unused with structure='crossnet_only'"]),
        (lambda: create_model("gdcn-p", feature_spec=SPEC, num_cross_layers=-1),
         ["GDCNPConfig.num_cross_layers=-1", ">= 0"]),
        (lambda: create_model("dcnv2", feature_spec=SPEC, structure="stacked"),
         ["DCNv2Config.stacked_dnn_hidden_dims=[]", "structure='stacked' needs it"]),
        (lambda: create_model("dcnv2", feature_spec=SPEC, parallel_dnn_hidden_dims=[4], stacked_dnn_hidden_dims=[4]),
         ["DCNv2Config.stacked_dnn_hidden_dims=[4]", "unused with structure='parallel'"]),
        (lambda: create_model("dcnv2", feature_spec=SPEC, structure="serial"), ["DCNv2Config.structure='serial'"]),
        (lambda: create_model("deepfm", feature_spec=_spec(embedding_dim=3), hidden_dims=[4]),
         ["DeepFMConfig.feature_spec", "one embedding size", "'user': 3"]),
        (lambda: create_model("dnn", feature_spec=SPEC, hidden_dims=[8, 0]), ["DNNConfig.hidden_dims", "[1]", "> 0"]),
        (lambda: create_model("lr", feature_spec=SPEC, embedding_dim=4), ["LogisticRegressionConfig.embedding_dim=4"]),
        (lambda: FinalMLP(SPEC), ["unknown config keys", "'fields'", "valid keys: feature_spec"]),
    ],
)  # fmt: skip
def test_bad_configs_are_one_line_config_errors(call, fragments):
    with pytest.raises(ConfigError) as e:
        call()
    msg = str(e.value)
    assert "\n" not in msg
    for f in fragments:
        assert f in msg, msg


def test_no_model_writes_the_scaffold():
    """One scaffold: every registered CTR model is a CTRModel built by CTRModel.__init__ (no
    model class defines ``__init__`` or ``forward``); each declares its own config class."""
    seen = set()
    for name in RECSYS:
        cls = model_info(name).fn
        for klass in cls.__mro__[: cls.__mro__.index(CTRModel)]:
            assert "__init__" not in vars(klass) and "forward" not in vars(klass), (name, klass)
        assert cls.config_class is not CTRConfig, name
        seen.add(cls.config_class)
    assert len(seen) == len(RECSYS)
