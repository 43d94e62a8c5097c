"""Every Triton kernel compiles for sm_90 (H100/H200) without a GPU, and without register spills.

Runs tools/check_kernels_compile.py in a fresh process (without TRITON_INTERPRET, which this test
session sets): the host wrappers run on CPU tensors and every launch is compiled to PTX and cubin
with its exact argument types and constexprs instead of being executed. Slow (a minute or more of
compilation on a cold Triton cache), hence ``slow``.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from gatelab.core.kernels.glu import triton_available


@pytest.mark.slow
@pytest.mark.skipif(
    __import__("importlib").util.find_spec("triton") is None, reason=f"needs triton ({triton_available()})"
)
def test_every_kernel_compiles_for_sm90_without_spills(repo_root):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = subprocess.run(
        [sys.executable, str(repo_root / "tools" / "check_kernels_compile.py"), "--arch", "90"],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
        check=False,
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    assert "0 failed" in out.stdout and "\n0 variants spill registers" in out.stdout, out.stdout[-4000:]
