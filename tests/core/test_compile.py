"""One Inductor compile over a stack of gates (the per-gate tests use the faster aot_eager).

Inductor generates and compiles C++ on the CPU, which costs ~15-30 s once, so the gates are
stacked in one module and compiled together: outputs and gradients must match eager.
"""

from __future__ import annotations

import torch
from torch import nn

from gatelab.core import (
    FeatureGate,
    GatedCrossLayer,
    GatedResidualNetwork,
    GluMlp,
    OutputGatedAttention,
    SqueezeExcite,
    TokenwiseGate,
)


class _Stack(nn.Module):
    def __init__(self, d: int = 16) -> None:
        super().__init__()
        self.mlp = GluMlp(d, 24, act="silu")
        self.grn = GatedResidualNetwork(d, 12, d, context_dim=4)
        self.attn = OutputGatedAttention(d, 2, gate="headwise")
        self.fuse = TokenwiseGate(d, mode="vector")
        self.fg = FeatureGate(d, d, (8,))
        self.cross = GatedCrossLayer(d)
        self.se = SqueezeExcite(d, rd_channels=4)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        h = self.mlp(x)
        h = self.grn(h, c[:, None, :].expand(-1, x.shape[1], -1))
        a = self.attn(h, is_causal=True)
        h = self.fuse(h, a)
        h = self.fg(h, x)
        h = self.cross(x, h)
        return self.se(h.transpose(1, 2)).transpose(1, 2)


def test_gate_stack_compiles_with_inductor():
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = _Stack()
    x = torch.randn(2, 5, 16, requires_grad=True)
    c = torch.randn(2, 4)
    eager = model(x, c)
    eager.square().mean().backward()
    ref_grads = [p.grad.clone() for p in model.parameters()]
    ref_xgrad = x.grad.clone()
    model.zero_grad()
    x.grad = None

    compiled = torch.compile(model, fullgraph=True)
    out = compiled(x, c)
    out.square().mean().backward()
    torch.testing.assert_close(out, eager, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(x.grad, ref_xgrad, rtol=1e-4, atol=1e-5)
    for g, r in zip((p.grad for p in model.parameters()), ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-5)
