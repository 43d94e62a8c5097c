"""SpatialGatingUnit (gMLP), MultiAxisGatedMLP and CrossGatingBlock (MAXIM) against hand-written math.

The MAXIM references partition the image into blocks / grid cells with explicit Python loops over
pixel coordinates (test only), then apply each step with elementary tensor ops.
"""

from __future__ import annotations

import math

import pytest
import torch
from gate_checks import check_capture, check_compile, check_grads, check_half_finite
from tolerances import assert_close

from gatelab.core import CrossGatingBlock, MultiAxisGatedMLP, SpatialGatingUnit, capture_gates

# ----------------------------------------------------------------------------- elementary helpers


def _ln(t: torch.Tensor, norm: torch.nn.LayerNorm) -> torch.Tensor:
    mean = t.mean(-1, keepdim=True)
    var = ((t - mean) ** 2).mean(-1, keepdim=True)
    return (t - mean) / torch.sqrt(var + norm.eps) * norm.weight + norm.bias


def _dense(t: torch.Tensor, lin: torch.nn.Linear) -> torch.Tensor:
    out = t @ lin.weight.T
    return out if lin.bias is None else out + lin.bias


def _gelu_tanh(t: torch.Tensor) -> torch.Tensor:
    return 0.5 * t * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (t + 0.044715 * t**3)))


def _randomise(module: torch.nn.Module) -> None:
    """Non-trivial LayerNorm affines and biases, so the references must use them."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.dim() == 1:
                p.add_(0.3 * torch.randn_like(p))
            elif name.endswith("proj.weight"):
                p.add_(0.3 * torch.randn_like(p))  # token-mixing matrices away from ~0


# ----------------------------------------------------------------------------- SpatialGatingUnit


def _hand_sgu(sgu: SpatialGatingUnit, x: torch.Tensor, causal: bool, gate=lambda t: t) -> torch.Tensor:
    """Loops over tokens and channels: out[n, c] = u[n, c] * gate(b[n] + sum_m W[n, m] vn[m, c])."""
    N, two_d = x.shape[-2:]
    d = two_d // 2
    W = sgu.proj.weight
    b = sgu.proj.bias
    out = torch.empty(*x.shape[:-1], d, dtype=x.dtype)
    for idx in range(x.shape[0]):
        u, v = x[idx, :, :d], x[idx, :, d:]
        vn = _ln(v, sgu.norm)
        for n in range(N):
            for c in range(d):
                acc = b[n].clone() if b is not None else torch.tensor(1.0, dtype=x.dtype)
                for m in range(N):
                    if causal and m > n:
                        continue
                    acc = acc + W[n, m] * vn[m, c]
                out[idx, n, c] = u[n, c] * gate(acc)
    return out


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_sgu_matches_explicit_loops(causal, bias):
    sgu = SpatialGatingUnit(6, 5, causal=causal, bias=bias, init_std=0.5).double()
    _randomise(sgu)
    x = torch.randn(2, 5, 6, dtype=torch.float64)
    with capture_gates(sgu) as gates:
        out = sgu(x)
    assert out.shape == (2, 5, 3)
    assert_close(out, _hand_sgu(sgu, x, causal))
    assert gates["SpatialGatingUnit"].shape == (2, 5, 3)


def test_sgu_gate_act_and_leading_dims():
    sgu = SpatialGatingUnit(4, 3, gate_act="sigmoid", init_std=0.5).double()
    x = torch.randn(2, 3, 3, 4, dtype=torch.float64)  # two leading dims
    ref = _hand_sgu(sgu, x.reshape(6, 3, 4), False, gate=lambda t: 1.0 / (1.0 + torch.exp(-t)))
    assert_close(sgu(x), ref.reshape(2, 3, 3, 2))


def test_sgu_causal_never_looks_ahead_and_init_is_identity():
    sgu = SpatialGatingUnit(4, 6, causal=True, init_std=0.5)
    x = torch.randn(1, 6, 4)
    x2 = x.clone()
    x2[:, 4:] = torch.randn(1, 2, 4)  # change the future
    torch.testing.assert_close(sgu(x)[:, :4], sgu(x2)[:, :4])
    fresh = SpatialGatingUnit(8, 5)  # W ~ 0, b = 1: out ~= u
    assert torch.all(fresh.proj.bias == 1) and fresh.proj.weight.abs().max() < 1e-4
    x = torch.randn(3, 5, 8)
    torch.testing.assert_close(fresh(x), x[..., :4], atol=1e-4, rtol=0)


def test_sgu_errors():
    with pytest.raises(ValueError, match="even"):
        SpatialGatingUnit(5, 4)
    with pytest.raises(ValueError, match=r"shape \(2, 3, 6\)"):
        SpatialGatingUnit(6, 4)(torch.randn(2, 3, 6))
    with pytest.raises(TypeError):
        SpatialGatingUnit(6, 4, seq_dim=1)


def test_sgu_checks():
    x = torch.randn(2, 5, 8)
    check_compile(SpatialGatingUnit(8, 5, causal=True, init_std=0.1), x)
    check_capture(SpatialGatingUnit(8, 5), x)
    check_grads(SpatialGatingUnit(8, 5, causal=True), x)

    def inputs(dtype):
        # v (normalised) at +-1e4; u at +-100, since dL/dW = sum u * LayerNorm(v) is the true gradient
        # and exceeds the fp16 range for |u| ~ 1e4 whatever the implementation
        u, v = 100.0 * torch.randn(2, 5, 4), 1e4 * torch.randn(2, 5, 4)
        return (torch.cat([u, v], -1).to(dtype),)

    check_half_finite(lambda: SpatialGatingUnit(8, 5, gate_act="sigmoid", init_std=30.0), inputs)
    check_half_finite(lambda: SpatialGatingUnit(8, 5, causal=True), inputs)


# ----------------------------------------------------------------------------- MAXIM references


def _blocks(H: int, W: int, fh: int, fw: int) -> list[list[tuple[int, int]]]:
    """Pixel coordinates of every fh x fw block (row-major), each block's pixels row-major."""
    return [
        [(bi * fh + a, bj * fw + c) for a in range(fh) for c in range(fw)]
        for bi in range(H // fh)
        for bj in range(W // fw)
    ]


def _grids(H: int, W: int, gh: int, gw: int) -> list[list[tuple[int, int]]]:
    """For every offset inside a cell of the gh x gw grid: the gh*gw pixels at that offset (row-major)."""
    fh, fw = H // gh, W // gw
    return [
        [(i * fh + a, j * fw + c) for i in range(gh) for j in range(gw)] for a in range(fh) for c in range(fw)
    ]


def _apply_on_groups(x: torch.Tensor, groups, fn) -> torch.Tensor:
    """out[b, pixels of group] = fn(x[b, pixels of group]) for each group of pixel coordinates."""
    rows: dict[tuple[int, int, int], torch.Tensor] = {}
    for b in range(x.shape[0]):
        for group in groups:
            tokens = torch.stack([x[b, i, j] for i, j in group])  # [N, C]
            res = fn(tokens[None])[0]
            for n, (i, j) in enumerate(group):
                rows[(b, i, j)] = res[n]
    B, H, W = x.shape[:3]
    assert len(rows) == B * H * W  # the groups tile the image
    return torch.stack(
        [torch.stack([torch.stack([rows[(b, i, j)] for j in range(W)]) for i in range(H)]) for b in range(B)]
    )


def _hand_gmlp_branch(layer, x: torch.Tensor, groups) -> torch.Tensor:
    """MAXIM Block/GridGmlpLayer: t + W_o SGU(gelu(W_i LN(t))) on each group of pixels."""

    def fn(t):  # [1, N, C]
        y = _gelu_tanh(_dense(_ln(t, layer.norm), layer.in_project))
        y = _hand_sgu(layer.gating, y, causal=False)
        return t + _dense(y, layer.out_project)

    return _apply_on_groups(x, groups, fn)


def _hand_mab(m: MultiAxisGatedMLP, x: torch.Tensor) -> torch.Tensor:
    H, W = x.shape[1:3]
    z = _gelu_tanh(_dense(_ln(x, m.norm), m.in_project))
    half = z.shape[-1] // 2
    u, v = z[..., :half], z[..., half:]
    u = _hand_gmlp_branch(m.grid, u, _grids(H, W, *m.grid_size))
    v = _hand_gmlp_branch(m.block, v, _blocks(H, W, *m.block_size))
    return x + _dense(torch.cat([u, v], -1), m.out_project)


@pytest.mark.parametrize(
    ("H", "W", "block", "grid"),
    [
        (4, 6, (2, 3), (2, 3)),  # same token counts: swapping the branches would still be caught
        (4, 6, (2, 2), (4, 3)),
        (6, 4, 2, 2),
    ],
)
def test_multi_axis_gmlp_matches_hand_partition(H, W, block, grid):
    m = MultiAxisGatedMLP(4, block, grid).double()
    _randomise(m)
    x = torch.randn(2, H, W, 4, dtype=torch.float64)
    with capture_gates(m) as gates:
        y = m(x)
    assert_close(y, _hand_mab(m, x), kind="reduction")
    fh, fw = m.block_size
    gh, gw = m.grid_size
    assert gates["block.gating"].shape == (2, (H // fh) * (W // fw), fh * fw, 4)
    assert gates["grid.gating"].shape == (2, (H // gh) * (W // gw), gh * gw, 4)


def test_multi_axis_gmlp_parameter_shapes_match_official():
    """Shapes of ResidualSplitHeadMultiAxisGmlpLayer(block (2,2), grid (4,4), factors 2) for C = 8,
    written out from the official Flax module (kernel [in, out] there, Linear weight [out, in] here)."""
    C, G, P = 8, 16, 4
    m = MultiAxisGatedMLP(C, (2, 2), (4, 4))
    got = {n: tuple(p.shape) for n, p in m.named_parameters()}

    def branch(prefix, c, n):  # GridGmlpLayer / BlockGmlpLayer on c channels, n tokens, factor 2
        return {
            f"{prefix}.norm.weight": (c,),  # LayerNorm/scale
            f"{prefix}.norm.bias": (c,),  # LayerNorm/bias
            f"{prefix}.in_project.weight": (2 * c, c),  # in_project/kernel [c, 2c]
            f"{prefix}.in_project.bias": (2 * c,),
            f"{prefix}.gating.norm.weight": (c,),  # GatingUnit/intermediate_layernorm
            f"{prefix}.gating.norm.bias": (c,),
            f"{prefix}.gating.proj.weight": (n, n),  # GatingUnit/Dense_0/kernel [n, n]
            f"{prefix}.gating.proj.bias": (n,),
            f"{prefix}.out_project.weight": (c, c),  # out_project/kernel [c, c]
            f"{prefix}.out_project.bias": (c,),
        }

    want = {
        "norm.weight": (C,),  # LayerNorm_in
        "norm.bias": (C,),
        "in_project.weight": (2 * C, C),
        "in_project.bias": (2 * C,),
        **branch("grid", C, G),
        **branch("block", C, P),
        "out_project.weight": (C, 2 * C),
        "out_project.bias": (C,),
    }
    assert got == want
    # the closed form: 2C + 2C^2+2C + 2*(2C + 2C^2+2C + 2C + C^2+C) + G^2+G + P^2+P + 2C^2+C
    total = 2 * C + (2 * C * C + 2 * C) + 2 * (7 * C + 3 * C * C) + G * G + G + P * P + P + 2 * C * C + C
    assert sum(p.numel() for p in m.parameters()) == total
    # the token-mixing layers do not depend on the image size
    assert m(torch.randn(1, 8, 8, C)).shape == (1, 8, 8, C)
    assert m(torch.randn(1, 16, 4, C)).shape == (1, 16, 4, C)


def test_multi_axis_gmlp_options_and_errors():
    m = MultiAxisGatedMLP(6, 2, 2, bias=False, input_proj_factor=3, block_gmlp_factor=4, grid_gmlp_factor=2)
    assert all(p.dim() > 1 or "norm" in n for n, p in m.named_parameters())  # no bias parameters
    assert m.in_project.weight.shape == (18, 6)
    assert m.block.in_project.weight.shape == (36, 9) and m.grid.in_project.weight.shape == (18, 9)
    assert m.block.out_project.weight.shape == (9, 18) and m.grid.out_project.weight.shape == (9, 9)
    with pytest.raises(ValueError, match="grid branch width 9 \\* grid_gmlp_factor 1 must be even"):
        MultiAxisGatedMLP(6, 2, 2, input_proj_factor=3, grid_gmlp_factor=1)
    with pytest.raises(ValueError, match="input_proj_factor 1 must be even"):
        MultiAxisGatedMLP(5, 2, 2, input_proj_factor=1)
    x = torch.randn(1, 6, 6, 6)
    assert m(x).shape == x.shape
    m = MultiAxisGatedMLP(4, (2, 2), (4, 4))
    with pytest.raises(ValueError, match=r"x\.shape=\(1, 6, 8, 4\).*grid_size=\(4, 4\)"):
        m(torch.randn(1, 6, 8, 4))
    with pytest.raises(ValueError, match=r"x\.shape=\(1, 4, 5, 4\).*block_size=\(2, 2\)"):
        MultiAxisGatedMLP(4, (2, 2), (1, 1))(torch.randn(1, 4, 5, 4))
    with pytest.raises(ValueError, match=r"NHWC.*x\.shape=\(1, 4, 8, 8\)"):
        m(torch.randn(1, 4, 8, 8))
    with pytest.raises(TypeError):
        MultiAxisGatedMLP(4, 2, 2, dropout_rate=0.1)


def test_multi_axis_gmlp_checks():
    x = torch.randn(2, 4, 4, 4)
    make = lambda: MultiAxisGatedMLP(4, 2, 2, dropout=0.1)  # noqa: E731
    check_compile(make(), x)
    check_capture(make(), x, expect=("grid.gating", "block.gating"))
    check_grads(make(), x)

    def inputs(dtype):
        return ((1e4 * torch.randn(2, 4, 4, 4)).to(dtype),)  # LayerNorm sees +-1e4; the residual keeps it

    check_half_finite(make, inputs)


# ----------------------------------------------------------------------------- CrossGatingBlock


def _hand_sgw(s, t: torch.Tensor) -> torch.Tensor:
    """GetSpatialGatingWeights with explicit block/grid loops."""
    H, W = t.shape[1:3]
    z = _gelu_tanh(_dense(_ln(t, s.norm), s.in_project))
    half = z.shape[-1] // 2
    u, v = z[..., :half], z[..., half:]

    def mixer(proj):
        def fn(tok):  # [1, N, c]: out[n] = b[n] + sum_m W[n, m] tok[m]
            N = tok.shape[1]
            rows = []
            for n in range(N):
                acc = proj.bias[n] + sum(proj.weight[n, mm] * tok[0, mm] for mm in range(N))
                rows.append(acc)
            return torch.stack(rows)[None]

        return fn

    u = _apply_on_groups(u, _grids(H, W, *s.grid_size), mixer(s.grid_proj))
    v = _apply_on_groups(v, _blocks(H, W, *s.block_size), mixer(s.block_proj))
    return _dense(torch.cat([u, v], -1), s.out_project)


def _hand_cgb(m: CrossGatingBlock, x: torch.Tensor, y: torch.Tensor):
    if m.upsample_y:  # 2x2 stride-2 transposed conv: every input pixel paints its own 2x2 patch
        w, bias = m.up_y.weight, m.up_y.bias  # [C_in, F, 2, 2]
        B, h, wd, _ = y.shape
        up = torch.empty(B, 2 * h, 2 * wd, w.shape[1], dtype=y.dtype)
        for i in range(h):
            for j in range(wd):
                for a in range(2):
                    for c in range(2):
                        up[:, 2 * i + a, 2 * j + c] = y[:, i, j] @ w[:, :, a, c] + bias
        y = up
    x = _dense(x, m.proj_x)
    y = _dense(y, m.proj_y)
    sx, sy = x, y
    x = _gelu_tanh(_dense(_ln(x, m.norm_x), m.in_project_x))
    gx = _hand_sgw(m.gating_x, x)
    y = _gelu_tanh(_dense(_ln(y, m.norm_y), m.in_project_y))
    gy = _hand_sgw(m.gating_y, y)
    y = _dense(y * gx, m.out_project_y) + sy
    x = _dense(x * gy, m.out_project_x) + y + sx
    return x, y, gx, gy


@pytest.mark.parametrize("upsample_y", [True, False])
def test_cross_gating_matches_hand_partition(upsample_y):
    H, W = 4, 6
    m = CrossGatingBlock(3, 5, 4, (2, 3), (4, 2), upsample_y=upsample_y).double()
    _randomise(m)
    x = torch.randn(2, H, W, 3, dtype=torch.float64)
    y = (
        torch.randn(2, H // 2, W // 2, 5, dtype=torch.float64)
        if upsample_y
        else torch.randn(2, H, W, 5).double()
    )
    with capture_gates(m) as gates:
        xo, yo = m(x, y)
    xr, yr, gx, gy = _hand_cgb(m, x, y)
    assert_close(xo, xr, kind="reduction")
    assert_close(yo, yr, kind="reduction")
    assert_close(gates["CrossGatingBlock:gate_x"], gx, kind="reduction")
    assert_close(gates["CrossGatingBlock:gate_y"], gy, kind="reduction")


def test_cross_gating_parameter_shapes_match_official():
    """Official CrossGatingBlock(features=F, upsample_y=True) on x with Cx and y with Cy channels."""
    Cx, Cy, F, G, P = 3, 5, 8, 4, 16
    m = CrossGatingBlock(Cx, Cy, F, (4, 4), (2, 2))
    got = {n: tuple(p.shape) for n, p in m.named_parameters()}

    def sgw(prefix):  # GetSpatialGatingWeights(features=F), input_proj_factor 2
        return {
            f"{prefix}.norm.weight": (F,),
            f"{prefix}.norm.bias": (F,),
            f"{prefix}.in_project.weight": (2 * F, F),
            f"{prefix}.in_project.bias": (2 * F,),
            f"{prefix}.grid_proj.weight": (G, G),
            f"{prefix}.grid_proj.bias": (G,),
            f"{prefix}.block_proj.weight": (P, P),
            f"{prefix}.block_proj.bias": (P,),
            f"{prefix}.out_project.weight": (F, 2 * F),
            f"{prefix}.out_project.bias": (F,),
        }

    want = {
        "up_y.weight": (Cy, F, 2, 2),  # ConvTranspose_0/kernel [2, 2, Cy, F]
        "up_y.bias": (F,),
        "proj_x.weight": (F, Cx),  # Conv_0/kernel [1, 1, Cx, F]
        "proj_x.bias": (F,),
        "proj_y.weight": (F, F),  # Conv_1/kernel [1, 1, F, F]
        "proj_y.bias": (F,),
        "norm_x.weight": (F,),
        "norm_x.bias": (F,),
        "norm_y.weight": (F,),
        "norm_y.bias": (F,),
        "in_project_x.weight": (F, F),
        "in_project_x.bias": (F,),
        "in_project_y.weight": (F, F),
        "in_project_y.bias": (F,),
        **sgw("gating_x"),
        **sgw("gating_y"),
        "out_project_y.weight": (F, F),
        "out_project_y.bias": (F,),
        "out_project_x.weight": (F, F),
        "out_project_x.bias": (F,),
    }
    assert got == want
    sgw_count = 2 * F + 2 * F * F + 2 * F + G * G + G + P * P + P + 2 * F * F + F
    total = (
        (4 * Cy * F + F)
        + (Cx * F + F)
        + (F * F + F)
        + 2 * (2 * F + F * F + F)
        + 2 * sgw_count
        + 2 * (F * F + F)
    )
    assert sum(p.numel() for p in m.parameters()) == total
    assert CrossGatingBlock(Cx, Cy, F, 4, 2, upsample_y=False).proj_y.weight.shape == (F, Cy)


def test_cross_gating_errors():
    m = CrossGatingBlock(3, 5, 4, 2, 2)
    x = torch.randn(1, 4, 4, 3)
    with pytest.raises(
        ValueError,
        match=r"x\.shape=\(1, 4, 4, 3\) and y\.shape=\(1, 3, 3, 5\) \(upsampled to \(1, 6, 6, 4\)\)",
    ):
        m(x, torch.randn(1, 3, 3, 5))
    with pytest.raises(ValueError, match=r"y\.shape=\(1, 2, 2, 4\)"):
        m(x, torch.randn(1, 2, 2, 4))
    with pytest.raises(ValueError, match=r"x and y must share.*y\.shape=\(1, 2, 2, 5\)"):
        CrossGatingBlock(3, 5, 4, 2, 2, upsample_y=False)(x, torch.randn(1, 2, 2, 5))
    with pytest.raises(ValueError, match=r"x\.shape=\(1, 4, 4, 3\).*grid_size=\(3, 3\)"):
        CrossGatingBlock(3, 5, 4, 2, 3)(x, torch.randn(1, 2, 2, 5))
    with pytest.raises(ValueError, match="even"):
        CrossGatingBlock(3, 5, 3, 2, 2, input_proj_factor=1)
    with pytest.raises(TypeError):
        CrossGatingBlock(3, 5, 4, 2, 2, use_bias=False)


def test_cross_gating_checks():
    x, y = torch.randn(2, 4, 4, 3), torch.randn(2, 2, 2, 5)
    make = lambda: CrossGatingBlock(3, 5, 4, 2, 2, dropout=0.1)  # noqa: E731
    check_compile(make(), x, y)
    gates = check_capture(make(), x, y, expect=(":gate_x", ":gate_y"))
    assert gates["CrossGatingBlock:gate_x"].shape == (2, 4, 4, 4)
    check_grads(make(), x, y)

    def inputs(dtype):
        # +-1e3: the true gradients of the input projections (a sum over all pixels of |x|) exceed
        # the fp16 range near 1e4, whatever the implementation
        return (1e3 * torch.randn(2, 4, 4, 3)).to(dtype), (1e3 * torch.randn(2, 2, 2, 5)).to(dtype)

    check_half_finite(make, inputs)
