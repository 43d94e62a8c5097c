"""Kernel dispatch: auto selection, GATELAB_BACKEND, use_backend, errors, torch.compile, logging."""

from __future__ import annotations

import importlib
import importlib.util
import logging

import pytest
import torch

from gatelab.core.glu_family import glu
from gatelab.core.kernels import (
    BackendError,
    backends,
    dispatch,
    ops,
    reference,
    select,
    use_backend,
)
from gatelab.core.kernels.glu import triton_available, triton_interpreted, verify_triton_inputs

# the package exports the function ``dispatch``, which shadows the submodule's attribute
dispatch_mod = importlib.import_module("gatelab.core.kernels.dispatch")

needs_interpreter = pytest.mark.skipif(
    triton_available() is not None or not triton_interpreted(),
    reason="needs triton with TRITON_INTERPRET=1 (tests/conftest.py sets it)",
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    monkeypatch.delenv("GATELAB_BACKEND", raising=False)


def _pair(dtype=torch.float32, shape=(3, 5)):
    return torch.randn(shape, dtype=dtype), torch.randn(shape, dtype=dtype)


def test_registered_ops_and_backends():
    assert {"swiglu", "geglu"} <= set(ops())
    for op in ("swiglu", "geglu"):
        assert backends(op) == ["triton", "reference"]
    g, v = _pair(torch.float64)
    torch.testing.assert_close(reference("swiglu")(g, v), g * torch.sigmoid(g) * v)
    torch.testing.assert_close(reference("geglu")(g, v), 0.5 * g * (1 + torch.erf(g / 2**0.5)) * v)


def test_auto_on_cpu_picks_reference(monkeypatch):
    g, v = _pair()
    # TRITON_INTERPRET=1: the interpreted triton backend is available but never auto-picked
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert select("swiglu", g, v)[0] == "reference"
    assert select("geglu", g, v)[0] == "reference"
    monkeypatch.delenv("TRITON_INTERPRET")
    assert select("swiglu", g, v)[0] == "reference"
    with use_backend("auto"):
        assert select("swiglu", g, v)[0] == "reference"


@needs_interpreter
def test_env_var_selects(monkeypatch):
    g, v = _pair()
    monkeypatch.setenv("GATELAB_BACKEND", "triton")
    assert select("swiglu", g, v)[0] == "triton"
    assert select("geglu", g, v)[0] == "triton"
    monkeypatch.setenv("GATELAB_BACKEND", "reference")
    assert select("swiglu", g, v)[0] == "reference"
    monkeypatch.setenv("GATELAB_BACKEND", "swiglu=triton")
    assert select("swiglu", g, v)[0] == "triton"
    assert select("geglu", g, v)[0] == "reference"
    monkeypatch.setenv("GATELAB_BACKEND", " geglu = triton , swiglu=reference ")
    assert select("swiglu", g, v)[0] == "reference"
    assert select("geglu", g, v)[0] == "triton"


@needs_interpreter
def test_use_backend_selects_nests_and_beats_env(monkeypatch):
    g, v = _pair()
    monkeypatch.setenv("GATELAB_BACKEND", "reference")
    with use_backend("triton"):
        assert select("swiglu", g, v)[0] == "triton"
        with use_backend("reference"):
            assert select("swiglu", g, v)[0] == "reference"
        with use_backend({"geglu": "reference"}):
            assert select("geglu", g, v)[0] == "reference"
            assert select("swiglu", g, v)[0] == "triton"  # falls through to the outer block
        assert select("swiglu", g, v)[0] == "triton"
    assert select("swiglu", g, v)[0] == "reference"  # back to the env var


@needs_interpreter
def test_per_op_spec_in_use_backend():
    g, v = _pair()
    with use_backend("swiglu=triton"):
        assert select("swiglu", g, v)[0] == "triton"
        assert select("geglu", g, v)[0] == "reference"
        out = dispatch("swiglu", g, v)
    torch.testing.assert_close(out, g * torch.sigmoid(g) * v, rtol=1e-5, atol=1e-6)


@needs_interpreter
def test_explicit_backend_rejects_inputs_with_reason():
    with use_backend("triton"):
        with pytest.raises(BackendError, match=r"'triton'.*'swiglu'.*float64"):
            dispatch("swiglu", *_pair(torch.float64))
        with pytest.raises(BackendError, match="float64"):
            glu(torch.randn(2, 8, dtype=torch.float64), "geglu")
        g, v = _pair(shape=(4, 6))
        with pytest.raises(BackendError, match="stride"):
            dispatch("swiglu", g.t(), v.t())
    # auto falls back to the reference on the same inputs instead of raising
    g, v = _pair(torch.float64)
    torch.testing.assert_close(dispatch("swiglu", g, v), g * torch.sigmoid(g) * v)


def test_explicit_triton_without_interpreter_on_cpu_raises(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    g, v = _pair()
    if not torch.cuda.is_available():
        why = triton_available()
        assert why is not None and ("TRITON_INTERPRET" in why or "not installed" in why)
    with use_backend("triton"), pytest.raises(BackendError, match=r"TRITON_INTERPRET|not installed"):
        dispatch("swiglu", g, v)
    monkeypatch.setenv("GATELAB_BACKEND", "geglu=triton")
    with pytest.raises(BackendError, match="cannot run"):
        glu(torch.randn(2, 8), "geglu")


def test_available_reports_missing_triton(monkeypatch):
    # the installation check is cached per process (find_spec is slow); start from an empty cache
    monkeypatch.setattr(importlib.import_module("gatelab.core.kernels._common"), "_import_result", {})
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "triton" else real(name, *a)
    )
    assert triton_available() == "triton is not installed"
    with use_backend("triton"), pytest.raises(BackendError, match="not installed"):
        dispatch("swiglu", *_pair())


def test_verifier_reasons(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    g, v = _pair(shape=(4, 6))
    assert verify_triton_inputs(g, v) is None
    x = torch.randn(4, 12)
    assert verify_triton_inputs(*x.chunk(2, dim=-1)) is None  # row stride 12, no copy needed
    assert "float64" in verify_triton_inputs(g.double(), v.double())
    assert "differs from value dtype" in verify_triton_inputs(g, v.half())
    assert "shape (4, 6) differs from value shape (4, 5)" in verify_triton_inputs(g, v[:, :5])
    assert "stride" in verify_triton_inputs(g.t(), v.t())
    assert "0-dimensional" in verify_triton_inputs(g[0, 0], v[0, 0])
    assert "not a tensor" in verify_triton_inputs(g, 1.0)
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    assert "TRITON_INTERPRET" in verify_triton_inputs(g, v)
    meta = torch.empty(4, 6, device="meta")
    assert "'meta'" in verify_triton_inputs(meta, meta)


def test_unknown_names_raise(monkeypatch):
    g, v = _pair()
    with use_backend("cuda_magic"), pytest.raises(BackendError, match="no backend 'cuda_magic'"):
        dispatch("swiglu", g, v)
    with pytest.raises(KeyError, match="unknown kernel op 'nope'"):
        dispatch("nope", g, v)
    with pytest.raises(BackendError, match="unknown kernel op 'nope'"):
        with use_backend("nope=triton"):
            pass
    with pytest.raises(KeyError, match="unknown kernel op 'nope'"):
        with use_backend({"nope": "triton"}):
            pass
    monkeypatch.setenv("GATELAB_BACKEND", "nope=triton")
    with pytest.raises(BackendError, match="GATELAB_BACKEND"):
        dispatch("swiglu", g, v)


@pytest.fixture
def fake_op(monkeypatch):
    """A throw-away op ``fake`` (reference 2x) with a CPU backend ``fast`` (3x) that auto would pick."""
    op = dispatch_mod.KernelOp(name="fake", reference=lambda x: 2 * x)
    op.backends["fast"] = dispatch_mod.Backend("fast", lambda x: 3 * x, 10, lambda: None, lambda x: None)
    monkeypatch.setitem(dispatch_mod._OPS, "fake", op)
    monkeypatch.setattr(dispatch_mod, "_logged", set())
    return op


def test_auto_inside_torch_compile_uses_reference(fake_op):
    x = torch.randn(4)
    torch.testing.assert_close(dispatch("fake", x), 3 * x)  # eager auto: the fast backend

    def f(t):
        return dispatch("fake", t) + 1

    torch._dynamo.reset()
    got = torch.compile(f, backend="aot_eager", fullgraph=True)(x)
    torch.testing.assert_close(got, 2 * x + 1)  # compiled auto: the reference


def test_glu_inside_torch_compile_matches_eager():
    x = torch.randn(3, 10)
    torch._dynamo.reset()
    for kind in ("swiglu", "geglu"):
        got = torch.compile(lambda t, k=kind: glu(t, k), backend="aot_eager", fullgraph=True)(x)
        torch.testing.assert_close(got, glu(x, kind))


def test_choice_is_logged_once(fake_op, caplog):
    caplog.set_level(logging.INFO, logger="gatelab.kernels")
    x = torch.randn(3)
    for _ in range(3):
        dispatch("fake", x)
    with use_backend("reference"):
        dispatch("fake", x)
        dispatch("fake", x)
    recs = [r.getMessage() for r in caplog.records if r.name == "gatelab.kernels"]
    assert recs == [
        "gatelab.kernels: op 'fake' runs on backend 'fast' (cpu tensors)",
        "gatelab.kernels: op 'fake' runs on backend 'reference' (cpu tensors)",
    ]


ALL_OPS = (
    "swiglu",
    "geglu",
    "swiglu_packed",
    "geglu_packed",
    "sigmoid_gate",
    "gate_add_norm",
    "feature_gate",
    "gated_cross",
    "tokenwise_gate",
    "gla_chunk",
    "topk_router",
)


def test_every_op_has_a_reference_and_a_cuda_triton_backend():
    assert set(ALL_OPS) <= set(ops())
    for op in ALL_OPS:
        assert backends(op) == ["triton", "reference"], op
        b = dispatch_mod._OPS[op].backends["triton"]
        assert b.devices == ("cuda",), op  # auto considers it for CUDA tensors only
        assert b.interpreted is triton_interpreted, op


def test_auto_skips_backends_for_other_devices_without_asking_them(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("auto must not ask a CUDA-only backend about CPU tensors")

    op = dispatch_mod.KernelOp(name="fake2", reference=lambda x: 2 * x)
    op.backends["gpu"] = dispatch_mod.Backend(
        "gpu", lambda x: 3 * x, 10, boom, boom, lambda: False, ("cuda",)
    )
    op.backends["any"] = dispatch_mod.Backend("any", lambda x: 4 * x, 5, lambda: None, lambda x: None)
    monkeypatch.setitem(dispatch_mod._OPS, "fake2", op)
    x = torch.randn(3)
    assert select("fake2", x)[0] == "any"  # the lower-priority backend without a device restriction
    torch.testing.assert_close(dispatch("fake2", x), 4 * x)
    with use_backend("gpu"), pytest.raises(AssertionError, match="must not ask"):
        select("fake2", x)  # an explicit request does ask (and here the check itself fails loudly)


def test_register_backend_resets_the_ranking(monkeypatch):
    op = dispatch_mod.KernelOp(name="fake3", reference=lambda x: 2 * x)
    monkeypatch.setitem(dispatch_mod._OPS, "fake3", op)
    x = torch.randn(2)
    assert select("fake3", x)[0] == "reference"
    assert op.ranked == []
    dispatch_mod.register_backend("fake3", "fast", priority=1)(lambda x: 5 * x)
    assert op.ranked is None
    assert select("fake3", x)[0] == "fast"


# ---------------------------------------------------------------------------- gate options
def _gate_op_args() -> dict:
    """Tiny inputs of every gate op whose reference takes ``return_gate`` (and ``gate_act``)."""
    D = 4
    h, skip = torch.randn(2, 3, 2 * D), torch.randn(2, 3, D)
    a, b = torch.randn(2, 3, D), torch.randn(2, 3, D)
    return {
        "swiglu": ((torch.randn(2, D), torch.randn(2, D)), torch.nn.functional.silu, None),
        "geglu": ((torch.randn(2, D), torch.randn(2, D)), torch.nn.functional.gelu, None),
        "swiglu_packed": ((torch.randn(2, 2 * D),), torch.nn.functional.silu, None),
        "geglu_packed": ((torch.randn(2, 2 * D),), torch.nn.functional.gelu, None),
        "gate_add_norm": ((h, skip, torch.randn(D), torch.randn(D), 1e-5), torch.sigmoid, h[..., D:]),
        "sigmoid_gate": ((torch.randn(2, 3, 2, D), torch.randn(2, 3, 2, 1)), torch.sigmoid, 1),
        "feature_gate": ((torch.randn(2, D), torch.randn(2, D), 2.0, torch.randn(D)), torch.sigmoid, 1),
        "gated_cross": ((a, b, torch.randn(2, 3, D), a, torch.randn(D)), torch.sigmoid, 2),
        "tokenwise_gate": ((a, b, torch.randn(D, 2 * D), torch.randn(D)), torch.sigmoid, None),
    }


@pytest.mark.parametrize("op", sorted(_gate_op_args()))
def test_reference_returns_the_gate_without_changing_the_output(op):
    args, act, logits = _gate_op_args()[op]
    ref = reference(op)
    out = ref(*args)
    got = ref(*args, return_gate=True)
    assert torch.equal(got[0], out), f"{op}: return_gate changed the output"
    gate = got[1]
    if logits is not None:  # the gate is the activation of the named logits argument
        src = logits if isinstance(logits, torch.Tensor) else args[logits]
        assert torch.equal(gate, act(src))
    assert gate.shape[-1] in (1, out.shape[-1])
    if op not in ("swiglu", "geglu", "swiglu_packed", "geglu_packed"):  # gate ops take another squashing
        other = ref(*args, gate_act=torch.tanh, return_gate=True)
        assert not torch.equal(other[0], out) and torch.all(other[1].abs() <= 1)


@needs_interpreter
def test_gate_options_are_served_by_the_reference_only():
    o, logits = torch.randn(2, 3, 2, 4), torch.randn(2, 3, 2, 1)
    with use_backend("triton"):
        fused = dispatch("sigmoid_gate", o, logits)  # the interpreted kernel
        with pytest.raises(BackendError, match="return_gate=True is served by the reference"):
            dispatch("sigmoid_gate", o, logits, return_gate=True)
        with pytest.raises(BackendError, match="is not the sigmoid"):
            dispatch("sigmoid_gate", o, logits, gate_act=torch.tanh)
        assert torch.allclose(dispatch("sigmoid_gate", o, logits, gate_act=torch.sigmoid), fused)
    out, gate = dispatch("sigmoid_gate", o, logits, return_gate=True)  # auto: the reference
    assert torch.equal(gate, torch.sigmoid(logits)) and torch.allclose(out, fused)


# ---------------------------------------------------------------------------- the short path
def test_short_path_reference_logged_once_and_cached(monkeypatch, caplog):
    calls = []

    def available():
        calls.append("available")

    op = dispatch_mod.KernelOp(name="fake4", reference=lambda x: 2 * x)
    op.backends["gpu"] = dispatch_mod.Backend(
        "gpu", lambda x: 3 * x, 10, available, lambda x: None, devices=("cuda",)
    )
    monkeypatch.setitem(dispatch_mod._OPS, "fake4", op)
    monkeypatch.setattr(dispatch_mod, "_logged", set())
    caplog.set_level(logging.INFO, logger="gatelab.kernels")
    x = torch.randn(3)
    for _ in range(3):
        torch.testing.assert_close(dispatch("fake4", x), 2 * x)
    assert calls == []  # a CUDA-only backend is never asked about CPU tensors
    assert list(op.auto.values()) == [[]]  # one cached (cpu, TRITON_INTERPRET) entry: no candidate
    recs = [r.getMessage() for r in caplog.records if r.name == "gatelab.kernels"]
    assert recs == ["gatelab.kernels: op 'fake4' runs on backend 'reference' (cpu tensors)"]


def test_auto_cache_follows_triton_interpret_and_clear_cache(monkeypatch):
    from gatelab.core.kernels import clear_cache

    avail = {"why": None}
    op = dispatch_mod.KernelOp(name="fake5", reference=lambda x: 2 * x)
    op.backends["interp"] = dispatch_mod.Backend(
        "interp", lambda x: 3 * x, 10, lambda: avail["why"], lambda x: None, triton_interpreted
    )
    monkeypatch.setitem(dispatch_mod._OPS, "fake5", op)
    x = torch.randn(3)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    torch.testing.assert_close(dispatch("fake5", x), 2 * x)  # interpreted: never auto
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    torch.testing.assert_close(dispatch("fake5", x), 3 * x)  # a new TRITON_INTERPRET value: re-evaluated
    avail["why"] = "gone"
    torch.testing.assert_close(dispatch("fake5", x), 3 * x)  # cached until clear_cache
    clear_cache()
    torch.testing.assert_close(dispatch("fake5", x), 2 * x)
    assert select("fake5", x)[0] == "reference"


def test_env_var_and_blocks_beat_the_short_path(fake_op, monkeypatch):
    x = torch.randn(3)
    torch.testing.assert_close(dispatch("fake", x), 3 * x)
    monkeypatch.setenv("GATELAB_BACKEND", "fake=reference")
    torch.testing.assert_close(dispatch("fake", x), 2 * x)
    monkeypatch.setenv("GATELAB_BACKEND", " ")  # blank: auto
    torch.testing.assert_close(dispatch("fake", x), 3 * x)
    monkeypatch.delenv("GATELAB_BACKEND")
    with use_backend("reference"):
        torch.testing.assert_close(dispatch("fake", x), 2 * x)
    assert dispatch_mod._open_blocks == 0
    torch.testing.assert_close(dispatch("fake", x), 3 * x)


def test_a_block_in_another_thread_does_not_leak(fake_op):
    import threading

    x = torch.randn(3)
    entered, release = threading.Event(), threading.Event()

    def other():
        with use_backend("reference"):
            entered.set()
            release.wait(10)

    t = threading.Thread(target=other)
    t.start()
    try:
        assert entered.wait(10)
        assert dispatch_mod._open_blocks == 1
        torch.testing.assert_close(dispatch("fake", x), 3 * x)  # this thread has no block: auto
    finally:
        release.set()
        t.join()
    assert dispatch_mod._open_blocks == 0


def test_short_path_matches_select_for_every_op_on_cpu():
    for op, (args, _, _) in _gate_op_args().items():
        name, fn = select(op, *args)
        assert name == "reference" and fn is reference(op)
        torch.testing.assert_close(dispatch(op, *args), reference(op)(*args))


def test_family_requests_cover_the_packed_ops(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    x = torch.randn(2, 8)
    with use_backend("swiglu=reference"):
        assert select("swiglu_packed", x)[0] == "reference"
    with use_backend({"swiglu": "triton"}):
        assert select("swiglu_packed", x)[0] == "triton"
        assert select("geglu_packed", x)[0] == "reference"  # another family: auto on CPU
        with use_backend("swiglu_packed=reference"):  # the op's own name wins over its family
            assert select("swiglu_packed", x)[0] == "reference"
    monkeypatch.setenv("GATELAB_BACKEND", "geglu=triton")
    assert select("geglu_packed", x)[0] == "triton"
    assert dispatch_mod._OPS["swiglu_packed"].family == "swiglu"
