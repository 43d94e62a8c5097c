"""Autotuning of the Triton kernels: every kernel is autotuned, one configuration under the interpreter.

On CUDA each kernel benchmarks its candidates (warps, stages, rows per program) once per key and
keeps the fastest; under ``TRITON_INTERPRET=1`` (tests/conftest.py) every kernel runs its first
candidate only, so the interpreter tests see one fixed configuration.
"""

from __future__ import annotations

import importlib

import pytest

triton = pytest.importorskip("triton")
from triton.runtime.autotuner import Autotuner  # noqa: E402
from triton.runtime.jit import JITFunction  # noqa: E402

from gatelab.core.kernels import _common, _triton_common  # noqa: E402
from gatelab.core.kernels._common import triton_interpreted, tuning_configs  # noqa: E402


def _modules() -> list[str]:
    """Every Triton kernel module of the package (``*_triton``), found on disk: a new op's module is
    checked without being listed here."""
    import pkgutil

    import gatelab.core.kernels as pkg

    return sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if m.name.endswith("_triton"))


MODULES = _modules()


def _kernels():
    """Every launchable kernel (``*_kernel`` attribute) of the Triton modules: (module, name, object).

    A new kernel is autotuned by wrapping it after its definition, e.g.
    ``_my_kernel = _triton_common.tuned_warps(_my_kernel, ("D",))`` (fixed tiles) or
    ``tuned_rows(_my_kernel)`` (row blocks; the launch passes ``BLOCK_N`` and a grid of ``BLOCK_M``).
    """
    out = []
    for mod_name in MODULES:
        mod = importlib.import_module(f"gatelab.core.kernels.{mod_name}")
        for name, obj in vars(mod).items():
            if name.endswith("_kernel") and isinstance(obj, (Autotuner, JITFunction)):
                out.append((mod_name, name, obj))
    return out


def test_every_kernel_is_autotuned_with_several_candidates():
    assert {"glu_triton", "gla_triton", "sigmoid_gate_triton"} <= set(MODULES)
    kernels = _kernels()
    assert len(kernels) >= 20  # glu 2, gla 9, pointwise 6, gate_add_norm 2, router 2, tokenwise 4
    for mod, name, k in kernels:
        assert isinstance(k, Autotuner), f"{mod}.{name} is not autotuned"
        assert len(k.all_configs) > 1, f"{mod}.{name} has a single candidate"
        assert k.keys, f"{mod}.{name} has no autotuning key"


@pytest.mark.skipif(not triton_interpreted(), reason="needs TRITON_INTERPRET=1 (tests/conftest.py sets it)")
def test_interpreter_uses_the_first_candidate_only():
    for mod, name, k in _kernels():
        assert k.configs == k.all_configs[:1], (
            f"{mod}.{name}: {len(k.configs)} configurations under the interpreter"
        )


def test_tuning_configs_switch(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert tuning_configs([1, 2, 3]) == [1]
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    assert tuning_configs([1, 2, 3]) == [1, 2, 3]
    monkeypatch.delenv("TRITON_INTERPRET")
    assert tuning_configs((1, 2)) == [1, 2]
    with pytest.raises(ValueError, match="at least one"):
        tuning_configs([])


def test_tuned_builds_all_candidates_for_compiled_kernels(monkeypatch):
    @triton.jit
    def _k(x_ptr, D, BLOCK_M: triton.language.constexpr, BLOCK_N: triton.language.constexpr):
        pass

    monkeypatch.setenv("TRITON_INTERPRET", "0")
    tuner = _triton_common.tuned_rows(_k)
    assert isinstance(tuner, Autotuner)
    assert len(tuner.configs) == len(tuner.all_configs) == len(_triton_common.ROW_BLOCKS) * 3
    assert tuner.keys == ["D", "BLOCK_N"]
    assert tuner.early_config_prune is _triton_common.prune_row_blocks
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    tuner = _triton_common.tuned_warps(_k, ("D",), warps=(8, 4), stages=(3, 2))
    assert [(c.num_warps, c.num_stages) for c in tuner.all_configs] == [(8, 3), (8, 2), (4, 3), (4, 2)]
    assert tuner.configs == tuner.all_configs[:1]


def test_row_block_pruning():
    cands = _triton_common.configs(blocks=[{"BLOCK_M": m} for m in (1, 4, 16, 64)], warps=(8, 2))

    def kept(named, block_n):
        return [
            (c.kwargs["BLOCK_M"], c.num_warps)
            for c in _triton_common.prune_row_blocks(cands, named, BLOCK_N=block_n)
        ]

    # tiles of 256..8192 elements, 1..16 per thread: (16, 8) = 4096 / 256 threads; (16, 2) = 64 per thread
    assert kept({"R": 1000}, 256) == [(1, 8), (1, 2), (4, 8), (4, 2), (16, 8)]
    assert kept({"n_rows": 3}, 256) == [
        (1, 8),
        (1, 2),
        (4, 8),
        (4, 2),
    ]  # BLOCK_M <= next power of two of the rows
    assert kept({"R": 1}, 16) == [(1, 8)]  # nothing in range: the smallest BLOCK_M, the most warps


def test_common_has_no_triton_import():
    # the availability checks and tuning_configs work without importing triton at module import
    assert "triton" not in vars(_common)
