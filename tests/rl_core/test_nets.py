"""Networks: shapes, dtypes, time embedding, architecture switches, critics."""

from __future__ import annotations

import pytest
import torch

from rl_core.errors import ConfigError
from rl_core.nets import MLP, DQLMlp, LNResNet, Mish, TimeEmbedding, TwinQ, ValueNet

B, OBS, ACT = 5, 7, 3


def inputs(x_dim: int = ACT):
    g = torch.Generator().manual_seed(0)
    return torch.randn(B, x_dim, generator=g), torch.arange(B, dtype=torch.float32), torch.randn(B, OBS, generator=g)


def test_time_embedding_distinct_for_float_steps():
    emb = TimeEmbedding(dim=16, hidden=32)
    k = torch.tensor([0.0, 0.5, 1.0, 4.0, 48.0])
    e = emb(k)
    assert e.shape == (5, 16) and e.dtype == torch.float32
    assert torch.cdist(e, e).add(torch.eye(5)).min() > 1e-4  # all pairwise distinct, including k = 0 vs 0.5
    # the raw sinusoids separate k and k + 44 (CleanDiffuser's integer-frequency quirk nearly aliases them)
    raw = lambda m, k: torch.cat([(k[:, None] * m.freqs).cos(), (k[:, None] * m.freqs).sin()], -1)
    pair = torch.tensor([3.0, 47.0])
    assert (raw(emb, pair)[0] - raw(emb, pair)[1]).norm() > 1.0
    quirk = TimeEmbedding(dim=16, hidden=32, integer_freqs=True)
    assert quirk.freqs.tolist() == [1.0] + [0.0] * 7
    assert (raw(quirk, pair)[0] - raw(quirk, pair)[1]).norm() < 0.05


@pytest.mark.parametrize("final_act", [False, True])
def test_denoisers_shapes_and_dtypes(final_act):
    x, k, obs = inputs()
    for net in (DQLMlp(OBS, ACT, hidden=32, emb_dim=8), LNResNet(OBS, ACT, hidden=32, emb_dim=8, final_act=final_act)):
        out = net(x, k, obs)
        assert out.shape == (B, ACT) and out.dtype == torch.float32 and torch.isfinite(out).all()
        assert not torch.equal(net(x, k + 1, obs), out)  # depends on the step
    resnet = LNResNet(OBS, ACT, hidden=32, emb_dim=8, final_act=final_act)
    assert isinstance(resnet.out[0], Mish) == final_act


def test_default_architectures_match_reference_sizes():
    dql = DQLMlp(OBS, ACT)
    linears = [m for m in dql.mlp if isinstance(m, torch.nn.Linear)]
    assert [(l.in_features, l.out_features) for l in linears] == [(ACT + 64 + OBS, 256), (256, 256), (256, 256), (256, ACT)]
    res = LNResNet(OBS, ACT)
    assert len(res.blocks) == 3 and res.blocks[0].net[2].out_features == 1024 and res.blocks[0].net[0].p == 0.1
    cd = TwinQ.cd_dql(OBS, ACT)  # per head: Linear-LN-Tanh, 2 x Linear-LN-Mish, Linear(1); heads stacked
    assert [type(m.act).__name__ for m in cd.hidden] == ["Tanh", "Mish", "Mish"] and all(m.layer_norm for m in cd.hidden)
    assert [tuple(m.weight.shape) for m in cd.hidden] == [(2, 256, OBS + ACT), (2, 256, 256), (2, 256, 256)]
    assert tuple(cd.out.weight.shape) == (2, 1, 256)


def test_lnresnet_extra_head_for_swg():
    x, k, obs = inputs(ACT + 1)
    net = LNResNet(OBS, ACT, hidden=32, emb_dim=8, out_extra_head=True)
    assert net(x, k, obs).shape == (B, ACT + 1)
    with pytest.raises(ConfigError, match="n_blocks"):
        LNResNet(OBS, ACT, n_blocks=1, out_extra_head=True)


def test_dropout_only_in_train_mode():
    x, k, obs = inputs()
    net = LNResNet(OBS, ACT, hidden=32, emb_dim=8, dropout=0.5).eval()
    assert torch.equal(net(x, k, obs), net(x, k, obs))
    net.train()
    assert not torch.equal(net(x, k, obs), net(x, k, obs))


def test_critics_shapes_heads_independent_and_min():
    _, _, obs = inputs()
    act = torch.rand(B, ACT) * 2 - 1
    q = TwinQ(OBS, ACT, hidden=32, n_layers=2)
    q1, q2 = q(obs, act)
    assert q1.shape == q2.shape == (B,) and not torch.equal(q1, q2)
    assert torch.equal(q.q_min(obs, act), torch.minimum(q1, q2))
    q2.sum().backward()
    assert all(not p.grad[0].any() and p.grad[1].any() for p in q.parameters())  # heads share nothing
    v = ValueNet(OBS, hidden=32, input_layer_norm=True)
    assert v(obs).shape == (B,) and isinstance(v.net[0], torch.nn.LayerNorm)


def test_mlp_options_and_bad_activation():
    m = MLP(4, 2, hidden=8, n_layers=3, activation="relu", layer_norm=True, first_activation="tanh")
    assert [type(x).__name__ for x in m][:3] == ["Linear", "LayerNorm", "Tanh"] and type(m[5]).__name__ == "ReLU"
    assert m(torch.zeros(6, 4)).shape == (6, 2)
    with pytest.raises(ConfigError, match="mish, relu"):
        MLP(4, 2, activation="swishy")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fast_mish_matches_torch_mish_and_its_gradient(dtype):
    x = torch.cat([torch.linspace(-60, 60, 241), torch.randn(1000, generator=torch.Generator().manual_seed(0)) * 3]).to(dtype)
    x1, x2 = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    y1, y2 = Mish()(x1), torch.nn.functional.mish(x2)
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    assert torch.allclose(y1, y2, atol=tol * 10, rtol=tol)
    g = torch.randn(x.shape, dtype=dtype, generator=torch.Generator().manual_seed(1))
    y1.backward(g), y2.backward(g)
    assert torch.allclose(x1.grad, x2.grad, atol=tol * 10, rtol=tol * 10)
    assert torch.autograd.gradcheck(Mish(), (torch.randn(6, 4, dtype=torch.float64, requires_grad=True),))


def test_time_embedding_of_a_broadcast_step_equals_the_full_batch():
    emb = TimeEmbedding(dim=16, hidden=32)
    full = emb(torch.full((6,), 3.0))
    shared = emb(torch.full((1,), 3.0).expand(6))  # how the samplers pass k
    assert torch.allclose(full, shared, atol=1e-6) and shared.shape == (6, 16)  # BLAS may tile 6 rows vs 1 differently
    shared.sum().backward()
    assert all(p.grad is not None for p in emb.parameters())
