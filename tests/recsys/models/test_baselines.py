"""The baselines (DualMLP, DNN, LR, DCNv2, DeepFM) against hand-written computations."""

from __future__ import annotations

import torch
from ctr_model_fixtures import SPEC, inputs, manual_embeddings, mlp_manual, randomize

from gatelab.recsys.models import DNN, DCNv2, DeepFM, DualMLP, LogisticRegression


def test_dualmlp_and_dnn_and_lr_match_hand_computation():
    x = inputs()
    d = randomize(DualMLP(feature_spec=SPEC, embedding_dim=2, mlp1_hidden_dims=[4], mlp2_hidden_dims=[3, 2], mlp2_batch_norm=True))
    e = torch.cat(manual_embeddings(d.embedding, x, [2] * 5), dim=1)
    torch.testing.assert_close(d(**x), (mlp_manual(d.mlp1, e) + mlp_manual(d.mlp2, e))[:, 0])
    n = randomize(DNN(feature_spec=SPEC, embedding_dim=2, hidden_dims=[4, 4], batch_norm=True))
    e = torch.cat(manual_embeddings(n.embedding, x, [2] * 5), dim=1)
    torch.testing.assert_close(n(**x), mlp_manual(n.mlp, e)[:, 0])
    lr = randomize(LogisticRegression(feature_spec=SPEC))
    parts = manual_embeddings(lr.embedding, x, [1] * 5)
    torch.testing.assert_close(lr(**x), sum(p[:, 0] for p in parts) + lr.bias)


def test_dcnv2_and_deepfm_match_hand_computation():
    x = inputs()
    m = randomize(DCNv2(feature_spec=SPEC, embedding_dim=2, num_cross_layers=2, parallel_dnn_hidden_dims=[3]))
    e = torch.cat(manual_embeddings(m.embedding, x, [2] * 5), dim=1)
    c = e
    for layer in m.cross.layers:  # x_{l+1} = x0 * (W x_l + b) + x_l
        c = e * (c @ layer.weight.T + layer.bias) + c
    want = torch.cat([c, mlp_manual(m.parallel_dnn, e)], dim=1) @ m.fc.weight.T + m.fc.bias
    torch.testing.assert_close(m(**x), want[:, 0])
    fm = randomize(DeepFM(feature_spec=SPEC, embedding_dim=2, hidden_dims=[3]))
    parts = manual_embeddings(fm.embedding, x, [2] * 5)
    pair = sum((parts[i] * parts[j]).sum(1) for i in range(5) for j in range(i + 1, 5))
    first = sum(p[:, 0] for p in manual_embeddings(fm.lr.embedding, x, [1] * 5)) + fm.lr.bias
    deep = mlp_manual(fm.mlp, torch.cat(parts, dim=1))[:, 0]
    torch.testing.assert_close(fm(**x), first + pair + deep)
