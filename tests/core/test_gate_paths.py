"""Every gate exported by gatelab.core: one math on every path (issue 14 point 4).

For each gate (tiny shapes, CPU):

* ``capture_gates`` does not change the output (bit for bit) and records at least one gate;
* forward hooks on every sub-module fire (a fused path may not skip a module someone hooks);
* a LoRA-style wrapper (base layer + low-rank ``B(A(x))``) put in place of each ``nn.Linear`` /
  conv sub-module changes the output and its ``A``, ``B`` receive non-zero gradients (a fused path
  may not read the replaced module's old weight);
* under the Triton interpreter, an explicitly requested ``triton`` backend still serves capture
  (the op's reference returns the gate) and agrees with the fused output.

``test_every_exported_gate_is_covered`` fails when a new ``nn.Module`` is exported without a spec here.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable

import pytest
import torch
from gate_checks import output_tensors
from torch import nn

import gatelab.core as core
from gatelab.core import capture_gates
from gatelab.core.kernels import use_backend
from gatelab.core.layers import conv as _fast_conv


@dataclasses.dataclass(frozen=True)
class Spec:
    make: Callable[[], nn.Module]
    inputs: Callable[[], tuple]
    kwargs: Callable[[], dict] = dict


def _x(*shape: int) -> Callable[[], tuple]:
    return lambda: (torch.randn(*shape),)


def _xy(a: tuple[int, ...], b: tuple[int, ...]) -> Callable[[], tuple]:
    return lambda: (torch.randn(*a), torch.randn(*b))


def _EDGES() -> torch.Tensor:
    """A 5-node directed graph, 6 edges (row 0 source, row 1 target)."""
    return torch.tensor([[0, 1, 2, 3, 4, 0], [1, 2, 0, 1, 3, 4]])


SPECS: dict[str, Spec] = {
    "GluMlp": Spec(lambda: core.GluMlp(4, 6, 3), _x(2, 3, 4)),
    "GluMlp-geglu": Spec(lambda: core.GluMlp(4, 6, act="gelu"), _x(2, 3, 4)),
    "GluMlp-reglu": Spec(lambda: core.GluMlp(4, 6, act="relu"), _x(2, 3, 4)),
    "GatedLinearUnit": Spec(lambda: core.GatedLinearUnit(4, 3, dropout=0.1), _x(2, 3, 4)),
    "GateAddNorm": Spec(
        lambda: core.GateAddNorm(4, 3, skip_dim=5, trainable_add=True, dropout=0.1), _xy((2, 3, 4), (2, 3, 5))
    ),
    "GateAddNorm-tanh": Spec(lambda: core.GateAddNorm(4, gate_act="tanh"), _xy((2, 3, 4), (2, 3, 4))),
    "GatedResidualNetwork": Spec(
        lambda: core.GatedResidualNetwork(4, 5, 3, context_dim=2, dropout=0.1), _xy((2, 3, 4), (2, 1, 2))
    ),
    "VariableSelectionNetwork": Spec(
        lambda: core.VariableSelectionNetwork(
            {"a": 2, "b": 4, "c": 1}, 4, context_dim=2, prescale=["c"], dropout=0.1
        ),
        lambda: ({"a": torch.randn(2, 3, 2), "b": torch.randn(2, 3, 4), "c": torch.randn(2, 3, 1)},),
        lambda: {"context": torch.randn(2, 1, 2)},
    ),
    "FeatureGate": Spec(lambda: core.FeatureGate(6, 3, (4,), feature_mask=True), _xy((2, 6), (2, 3))),
    "FeatureGate-hardsigmoid": Spec(
        lambda: core.FeatureGate(6, 3, (4,), gate_act=nn.Hardsigmoid, dropout=0.1), _xy((2, 6), (2, 3))
    ),
    "GatedCrossLayer": Spec(lambda: core.GatedCrossLayer(5), _xy((2, 5), (2, 5))),
    "GatedCrossNetwork": Spec(lambda: core.GatedCrossNetwork(5, 2), _x(2, 5)),
    "AttentionGate": Spec(lambda: core.AttentionGate(2, 3, 4, 2), _xy((2, 3, 8, 8), (2, 4, 4, 4))),
    "SameGridAttentionGate": Spec(lambda: core.SameGridAttentionGate(2, 3, 4, 2), _xy((2, 3, 8, 8), (2, 4, 8, 8))),
    "SpatialGatingUnit": Spec(lambda: core.SpatialGatingUnit(6, 4, gate_act="sigmoid"), _x(2, 4, 6)),
    "MultiAxisGatedMLP": Spec(lambda: core.MultiAxisGatedMLP(4, 2, 2, dropout=0.1), _x(1, 4, 4, 4)),
    "CrossGatingBlock": Spec(
        lambda: core.CrossGatingBlock(3, 5, 4, 2, 2, dropout=0.1), _xy((1, 4, 4, 3), (1, 2, 2, 5))
    ),
    "SqueezeExcite": Spec(lambda: core.SqueezeExcite(4, rd_channels=2), _x(2, 4, 3, 3)),
    "CBAM": Spec(lambda: core.CBAM(2, 4, 2, kernel_size=3), _x(2, 4, 5, 5)),
    "OutputGatedAttention": Spec(lambda: core.OutputGatedAttention(8, 2, dropout=0.1), _x(2, 3, 8)),
    "OutputGatedAttention-headwise": Spec(
        lambda: core.OutputGatedAttention(8, 2, gate="headwise", kv_dim=6), _xy((2, 3, 8), (2, 4, 6))
    ),
    "GatedLinearAttention": Spec(
        lambda: core.GatedLinearAttention(8, 2, gate_low_rank_dim=4, chunk_size=2), _x(2, 4, 8)
    ),
    "TopKRouter": Spec(lambda: core.TopKRouter(4, 3, k=2), _x(5, 4)),
    "SparseMoE": Spec(lambda: core.SparseMoE(4, 6, 3, k=2, dropout=0.1), _x(5, 4)),
    "TokenwiseGate": Spec(lambda: core.TokenwiseGate(4), _xy((2, 3, 4), (2, 3, 4))),
    "TokenwiseGate-vector": Spec(lambda: core.TokenwiseGate(4, mode="vector"), _xy((2, 3, 4), (2, 3, 4))),
    "TokenwiseGate-3streams": Spec(
        lambda: core.TokenwiseGate(4, num_streams=3, mode="vector"),
        lambda: (torch.randn(2, 3, 4), torch.randn(2, 3, 4), torch.randn(2, 3, 4)),
    ),
    "HighwayGate": Spec(lambda: core.HighwayGate(4, dropout=0.1), _x(2, 4)),
    "ResidualGate": Spec(lambda: core.ResidualGate(4, mode="input"), _xy((2, 4), (2, 4))),
    "GatedConv1d": Spec(lambda: core.GatedConv1d(3, 3, 3, dropout=0.1), _x(2, 3, 6)),
    "GatedAttentionUnit": Spec(lambda: core.GatedAttentionUnit(8, 8, 4, dropout=0.1), _x(2, 5, 8)),
    "GatedAttentionUnit-softmax": Spec(
        lambda: core.GatedAttentionUnit(8, 8, 4, attention="softmax", max_rel_pos=None), _x(2, 5, 8)
    ),
    "BilinearFusion": Spec(lambda: core.BilinearFusion(4, 6, 2, num_heads=2), _xy((3, 4), (3, 6))),
    "ResidualGatedGraphConv": Spec(
        lambda: core.ResidualGatedGraphConv(4, 3, edge_dim=2),
        lambda: (torch.randn(5, 4), _EDGES()),
        lambda: {"edge_attr": torch.randn(6, 2)},
    ),
    "GatedGCNConv": Spec(
        lambda: core.GatedGCNConv(4, dropout=0.1), lambda: (torch.randn(5, 4), _EDGES(), torch.randn(6, 4))
    ),
    "GatedGraphPropagation": Spec(lambda: core.GatedGraphPropagation(4, 2), lambda: (torch.randn(5, 3), _EDGES())),
    "GatedGraphPropagation-typed": Spec(
        lambda: core.GatedGraphPropagation(4, 2, num_node_types=5, residual=True),
        lambda: (torch.randn(1, 5, 4),),
        lambda: {"adj": torch.rand(1, 5, 5)},
    ),
}

# sub-modules a forward pass legitimately does not call (module class, attribute path) -> why
_UNUSED: dict[tuple[str, str], str] = {
    # PyG's aggregation module: the dense (adj) path sums neighbours with a batched matmul
    ("GatedGraphPropagation", "aggr_module"): "dense path",
}


def _run(m: nn.Module, spec: Spec, seed: int = 0):
    torch.manual_seed(seed)  # same inputs (and dropout / router noise draws) on every call
    args, kwargs = spec.inputs(), spec.kwargs()
    torch.manual_seed(seed + 1)
    return m(*args, **kwargs)


def _build(name: str) -> nn.Module:
    """The gate with every parameter perturbed (no zero-initialised weight hides a path)."""
    torch.manual_seed(123)
    m = SPECS[name].make()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return m


def test_every_exported_gate_is_covered():
    exported = {
        n
        for n in core.__all__
        if inspect.isclass(getattr(core, n)) and issubclass(getattr(core, n), nn.Module)
    }
    covered = {name.split("-")[0] for name in SPECS}
    assert exported == covered, (
        f"missing specs: {sorted(exported - covered)}, stale: {sorted(covered - exported)}"
    )


@pytest.mark.parametrize("name", sorted(SPECS))
@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_capture_does_not_change_the_output(name, training):
    m = _build(name).train(training)
    spec = SPECS[name]
    plain = output_tensors(_run(m, spec))
    with capture_gates(m) as gates:
        captured = output_tensors(_run(m, spec))
    assert len(gates) > 0, f"{name}: nothing recorded"
    assert len(plain) == len(captured)
    for a, b in zip(plain, captured):
        assert torch.equal(a, b), f"{name}: capture changed the output (max diff {(a - b).abs().max()})"


@pytest.mark.parametrize("name", sorted(SPECS))
def test_forward_hooks_on_every_sub_module_fire(name):
    m = _build(name).train()  # train: the router's noise projection and dropouts run
    containers = (nn.ModuleList, nn.ModuleDict)  # hold modules, are never called themselves
    calls = {n: 0 for n, sub in m.named_modules() if n and not isinstance(sub, containers)}

    def hook(key):
        def count(*_):
            calls[key] += 1

        return count

    for n in calls:
        m.get_submodule(n).register_forward_hook(hook(n))
    _run(m, SPECS[name])
    silent = sorted(n for n, c in calls.items() if c == 0 and (type(m).__name__, n) not in _UNUSED)
    assert not silent, f"{name}: hooks never fired on {silent}"


class LoRA(nn.Module):
    """``base(x) + B(A(x))``: a low-rank update around a Linear or conv layer (rank 2)."""

    def __init__(self, base: nn.Module, rank: int = 2) -> None:
        super().__init__()
        self.base = base
        if isinstance(base, nn.Linear):
            self.A = nn.Linear(base.in_features, rank, bias=False)
            self.B = nn.Linear(rank, base.out_features, bias=False)
        else:  # ConvNd / ConvTransposeNd: A has the base's geometry, B is a 1x1 conv
            conv = type(base)
            self.A = conv(
                base.in_channels,
                rank,
                base.kernel_size,
                stride=base.stride,
                padding=base.padding,
                dilation=base.dilation,
                bias=False,
            )
            pointwise = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[len(base.kernel_size)]
            self.B = pointwise(rank, base.out_channels, 1, bias=False)
        nn.init.normal_(self.A.weight, 0.0, 0.5)
        nn.init.normal_(self.B.weight, 0.0, 0.5)  # non-zero: the update must show in the output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.B(self.A(x))


_PROJECTIONS = (
    nn.Linear,
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
    _fast_conv.Conv2d,  # nn.Conv2d / nn.Conv3d with a one-GEMM 1x1 path (core.layers.conv)
    _fast_conv.Conv3d,
)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_lora_wrapped_projections_change_the_output_and_get_gradients(name):
    m = _build(name).train()  # train: the router's noise projection runs too (draws seeded in _run)
    spec = SPECS[name]
    before = output_tensors(_run(m, spec))
    targets = [(n, sub) for n, sub in m.named_modules() if type(sub) in _PROJECTIONS]
    assert targets, f"{name}: no Linear/conv projection to wrap"
    wrappers = {}
    torch.manual_seed(7)
    for n, sub in targets:
        parent_name, _, attr = n.rpartition(".")
        parent = m.get_submodule(parent_name)
        wrappers[n] = LoRA(sub)
        setattr(parent, attr, wrappers[n])
    after = output_tensors(_run(m, spec))
    assert any(not torch.allclose(a, b) for a, b in zip(before, after)), (
        f"{name}: the LoRA update was ignored"
    )
    torch.manual_seed(3)
    loss = sum((t * torch.randn_like(t)).sum() for t in after if t.is_floating_point() and t.requires_grad)
    loss.backward()
    for n, w in wrappers.items():
        for part in ("A", "B"):
            g = getattr(w, part).weight.grad
            assert g is not None and g.abs().sum() > 0, f"{name}: {n}.{part} got no gradient"


# ops with a Triton backend, through the gates that call them (interpreter: tiny shapes)
_TRITON_GATES = (
    "GluMlp",
    "GateAddNorm",
    "FeatureGate",
    "GatedCrossLayer",
    "OutputGatedAttention",
    "TokenwiseGate-vector",
)


@pytest.mark.parametrize("name", _TRITON_GATES)
def test_capture_under_an_explicit_triton_backend(name):
    pytest.importorskip("triton")
    m = _build(name).eval()
    spec = SPECS[name]
    with use_backend("triton"):
        fused = output_tensors(_run(m, spec))
        with capture_gates(m) as gates:  # served by the op's reference, not a BackendError
            captured = output_tensors(_run(m, spec))
    assert len(gates) > 0
    for a, b in zip(fused, captured):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
