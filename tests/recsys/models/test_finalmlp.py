"""FinalMLP against a hand-written computation (configs and their errors: test_configs.py)."""

from __future__ import annotations

import torch
from ctr_model_fixtures import SPEC, inputs, manual_embeddings, mlp_manual, randomize

from gatelab.core import capture_gates
from gatelab.recsys.models import FinalMLP


def test_finalmlp_matches_hand_computation():
    m = randomize(
        FinalMLP(
            feature_spec=SPEC,
            embedding_dim=2,
            mlp1_hidden_dims=[4],
            mlp1_batch_norm=True,
            mlp2_hidden_dims=[6],
            fs_hidden_dims=[3],
            fs1_context=["user", "ctx"],
            num_heads=2,
        )
    )
    x = inputs()
    e = torch.cat(manual_embeddings(m.embedding, x, [2] * 5), dim=1)
    c1 = torch.cat(
        [
            m.ctx1.field_table("user")[x["categorical"][:, 0]],
            m.ctx1.field_table("ctx")[x["categorical"][:, 2]],
        ],
        dim=1,
    )
    g1, g2 = m.gate1.mlp, m.gate2.mlp
    gate1 = torch.sigmoid(torch.relu(c1 @ g1[0].weight.T + g1[0].bias) @ g1[2].weight.T + g1[2].bias)
    ctx2 = m.gate2.context  # learned context (fs2_context empty)
    gate2 = torch.sigmoid(torch.relu(ctx2 @ g2[0].weight.T + g2[0].bias) @ g2[2].weight.T + g2[2].bias)
    o1 = mlp_manual(m.mlp1, e * 2 * gate1)
    o2 = mlp_manual(m.mlp2, e * 2 * gate2)
    f = m.fusion
    want = f.w_x(o1)[:, 0] + f.w_y(o2)[:, 0] + f.bias[0]
    for b in range(o1.shape[0]):
        for h in range(2):
            want[b] = want[b] + o1[b, 2 * h : 2 * h + 2] @ f.w_xy[h, 0] @ o2[b, 3 * h : 3 * h + 3]
    torch.testing.assert_close(m(**x), want)
    with capture_gates(m) as gates:
        m(**x)
    torch.testing.assert_close(gates["gate1"], gate1)
