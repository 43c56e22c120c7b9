"""Precision as configuration (fp32 | bf16 autocast) and the fused layers that must not change fp32 results.

Values, not mocks: the stacked TwinQ against two independent heads built from its own parameters, the
legacy (two-MLP) artifacts and snapshots written by the code before the change (fixtures made by
``data/make_legacy_fixtures.py``), bf16 training steps that keep their state in float32.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rl_core import guidance as G
from rl_core.algos import get_algorithm
from rl_core.config import PRECISIONS
from rl_core.errors import ConfigError
from rl_core.inference import InferenceConfig
from rl_core.nets import MLP, Mish, OutLinear, TimeEmbedding, TwinQ, autocast
from rl_core.snapshot import load_snapshot, make_actor, save_snapshot
from rl_core.train import TrainConfig
from rl_core.types import Batch, Normalizer

DATA = Path(__file__).parent / "data"
OBS, ACT = 4, 2
TINY_DQL = {"hidden": 16, "n_layers": 2, "emb_dim": 8, "T": 3, "sampling_steps": 3, "ema_start": 0}


def batch(seed: int, n: int = 16) -> tuple[Batch, torch.Tensor]:
    """The probe batches of the legacy fixtures (same generator draws): (Batch, next actions)."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    return Batch(r(n, OBS), torch.rand(n, ACT, generator=g) * 2 - 1, r(n), r(n, OBS), torch.zeros(n)), \
        torch.rand(n, ACT, generator=g) * 2 - 1


# ----- configuration -----------------------------------------------------------------------------
def test_precision_fields_default_fp32_validate_and_are_recorded():
    assert PRECISIONS == ("fp32", "bf16")
    cfg = TrainConfig(task="t", algo="dql", steps=1)
    assert cfg.precision == "fp32" and cfg.to_dict()["precision"] == "fp32" and cfg.to_dict()["compile"] is False
    assert TrainConfig.from_dict({**cfg.to_dict(), "precision": "bf16"}).precision == "bf16"
    with pytest.raises(ConfigError, match=r"TrainConfig.precision='fp16'.*\['fp32', 'bf16'\]"):
        TrainConfig(task="t", algo="dql", steps=1, precision="fp16")
    inf = InferenceConfig.defaults("dql")
    assert inf.precision == "fp32" and inf.to_dict()["precision"] == "fp32"
    assert InferenceConfig.from_dict({k: v for k, v in inf.to_dict().items() if k != "precision"}) == inf  # old dicts
    with pytest.raises(ConfigError, match="inference.precision"):
        InferenceConfig(precision="half")
    cls = get_algorithm("dql")
    with pytest.raises(ConfigError, match="precision"):
        cls(cls.Config(**TINY_DQL), OBS, ACT, guidance=None, guidance_mode="bc", seed=0, precision="int8")


def test_autocast_runs_hidden_layers_in_bf16_and_outputs_in_fp32():
    mlp = MLP(OBS, 3, hidden=16, n_layers=2)
    x = torch.randn(5, OBS)
    hidden = []
    mlp[0].register_forward_hook(lambda m, i, o: hidden.append(o.dtype))
    with autocast("fp32", "cpu"):
        assert mlp(x).dtype == torch.float32 and hidden[-1] == torch.float32
    with autocast("bf16", "cpu"):
        y = mlp(x)
    assert hidden[-1] == torch.bfloat16 and y.dtype == torch.float32 and isinstance(mlp[-1], OutLinear)
    assert torch.allclose(y, mlp(x), atol=0.05)  # bf16 hidden layers: close, not equal
    q = TwinQ(OBS, ACT, hidden=16)
    with autocast("bf16", "cpu"):
        assert q(x, torch.rand(5, ACT)).dtype == torch.float32


# ----- fp32: bit-identical to the reference layers -------------------------------------------------
@pytest.mark.parametrize("kw", [dict(n_layers=3, first_activation="tanh"), dict(n_layers=2),
                                dict(n_layers=2, layer_norm=False, activation="relu")])
def test_stacked_twin_q_equals_two_independent_heads_bit_for_bit(kw):
    torch.manual_seed(0)
    q = TwinQ(OBS, ACT, hidden=32, **kw)
    act_fn = {"tanh": torch.tanh, "mish": F.mish, "relu": F.relu}

    def head(h: int, x: torch.Tensor) -> torch.Tensor:  # one head with plain ops, as nn.Linear / nn.LayerNorm do
        for i, layer in enumerate(q.hidden):
            x = F.linear(x, layer.weight[h], layer.bias[h])
            if layer.layer_norm:
                x = F.layer_norm(x, (x.shape[-1],), layer.norm_weight[h], layer.norm_bias[h])
            name = kw.get("first_activation") if i == 0 and kw.get("first_activation") else kw.get("activation", "mish")
            x = Mish()(x) if name == "mish" else act_fn[name](x)
        return F.linear(x, q.out.weight[h], q.out.bias[h]).squeeze(-1)

    obs, act = torch.randn(64, OBS), (torch.rand(64, ACT) * 2 - 1).requires_grad_(True)
    got = q(obs, act)
    ref = torch.stack([head(0, torch.cat([obs, act], -1)), head(1, torch.cat([obs, act], -1))])
    assert torch.equal(got, ref)
    g = torch.randn(2, 64)
    params = [act, *q.parameters()]
    for a, b in zip(torch.autograd.grad(got, params, g), torch.autograd.grad(ref, params, g)):
        assert torch.equal(a, b)


def test_twin_q_initialisation_is_the_two_mlps_of_the_same_seed():
    torch.manual_seed(7)
    mlps = [MLP(OBS + ACT, 1, 32, 2, "mish", True) for _ in range(2)]
    torch.manual_seed(7)
    q = TwinQ(OBS, ACT, hidden=32, n_layers=2)
    assert torch.equal(q.hidden[0].weight, torch.stack([mlps[0][0].weight, mlps[1][0].weight]))
    assert torch.equal(q.out.weight, torch.stack([mlps[0][-1].weight, mlps[1][-1].weight]))


# ----- state written by the code before the stacked TwinQ ------------------------------------------
def test_legacy_guidance_artifact_loads_and_its_optimizer_continues_exactly():
    expected = torch.load(DATA / "legacy_expected.pt")
    critic, meta = G.load_artifact(DATA / "legacy_guidance.pt")
    probe, nxt = batch(100)
    assert torch.equal(critic.q_heads(probe.obs, probe.act), expected["q"])
    assert torch.equal(critic.q_heads(probe.obs, probe.act, target=True), expected["q_target"])
    critic.update(probe, nxt)  # Adam moments converted from the two-head layout
    assert torch.equal(critic.q_heads(probe.obs, probe.act), expected["q_after_update"])
    # and the new layout round-trips through a state dict
    again = G.make_guidance(critic.cfg, OBS, ACT, seed=1)
    again.load_state_dict(critic.state_dict())
    assert torch.equal(again.q_heads(probe.obs, probe.act), expected["q_after_update"])


def test_legacy_snapshot_loads_with_its_critic():
    expected = torch.load(DATA / "legacy_expected.pt")
    snap = load_snapshot(DATA / "legacy_snapshot.pt")
    probe, _ = batch(100)
    assert torch.equal(snap.guidance.q_heads(probe.obs, probe.act), expected["snapshot_q"])


def test_resume_accepts_a_checkpoint_config_without_the_precision_fields():
    from rl_core.train import _check_resume

    cfg = TrainConfig(task="t", algo="dql", steps=10)
    old = {k: v for k, v in cfg.to_dict().items() if k not in ("precision", "compile")}
    _check_resume({"config": old, "fingerprint": "f", "step": 5}, cfg, "f")
    with pytest.raises(ConfigError, match="precision"):
        _check_resume({"config": old, "fingerprint": "f", "step": 5},
                      TrainConfig(task="t", algo="dql", steps=10, precision="bf16"), "f")


# ----- bf16 training and acting ----------------------------------------------------------------------
@pytest.mark.parametrize("name", ["dql", "idql", "swg"])
def test_bf16_update_keeps_parameters_optimizer_ema_and_critic_in_fp32(name, one_thread):
    cls = get_algorithm(name)
    tiny = {"dql": TINY_DQL, "idql": {"hidden": 16, "n_blocks": 1, "emb_dim": 8, "T": 3, "sampling_steps": 3},
            "swg": {"hidden": 16, "n_blocks": 2, "emb_dim": 8, "T": 3, "sampling_steps": 3}}[name]
    mode = "unfrozen" if name == "swg" else "joint"
    guidance = G.make_guidance(G.GuidanceConfig(kind=cls.default_guidance_kind, hidden=16), OBS, ACT, 0) \
        if mode == "unfrozen" else None
    runs = {}
    for precision in ("fp32", "bf16"):
        algo = cls(cls.Config(**tiny), OBS, ACT, guidance=guidance if guidance is None else G.make_guidance(
            guidance.cfg, OBS, ACT, 0), guidance_mode=mode, seed=0, precision=precision)
        gen = torch.Generator().manual_seed(0)
        metrics = [algo.update(batch(s, 64)[0], gen) for s in range(3)]
        assert all(np.isfinite(v) for m in metrics for v in m.values())
        tensors = [*algo.net.parameters(), *algo.ema.parameters(), *algo.guidance.nets.parameters()]
        for opt in [algo.optimizer, *algo.guidance.optims.values()]:
            tensors += [v for st in opt.state.values() for v in st.values() if torch.is_tensor(v) and v.dim()]
        assert {t.dtype for t in tensors} == {torch.float32}
        runs[precision] = metrics[-1]
    assert runs["fp32"].keys() == runs["bf16"].keys() and runs["fp32"] != runs["bf16"]  # autocast did act


def test_bf16_actor_samples_in_bf16_and_scores_candidates_in_fp32(tmp_path):
    cls = get_algorithm("dql")
    algo = cls(cls.Config(**TINY_DQL), OBS, ACT, guidance=None, guidance_mode="joint", seed=0)
    path = save_snapshot(tmp_path / "s.pt", algo, step=0, config={}, normalizer=Normalizer.identity(OBS),
                         dataset_meta={"env_id": "x"}, guidance_meta={"kind": "td"})
    snap = load_snapshot(path)
    seen, critic_autocast = [], []
    snap.denoiser.mlp[0].register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    snap.guidance.nets["q_target"].register_forward_pre_hook(
        lambda m, i: critic_autocast.append(torch.is_autocast_enabled("cpu")))
    obs = np.random.default_rng(0).normal(size=(3, OBS)).astype(np.float32)
    out = {}
    for precision in PRECISIONS:
        actor = make_actor(snap, InferenceConfig.defaults("dql", TINY_DQL, n_candidates=8, precision=precision))
        a = actor.act(obs, torch.Generator().manual_seed(1))
        assert a.shape == (3, ACT) and a.dtype == np.float32 and np.abs(a).max() <= 1
        assert np.array_equal(a, actor.act(obs, torch.Generator().manual_seed(1)))  # deterministic given the seed
        out[precision] = seen[-1]
    assert out == {"fp32": torch.float32, "bf16": torch.bfloat16}
    assert critic_autocast and not any(critic_autocast)  # candidates are scored in float32 in both precisions


def test_bf16_mish_and_time_embedding_stay_close_to_fp32():
    x = torch.cat([torch.linspace(-30, 30, 601), torch.randn(4096, generator=torch.Generator().manual_seed(0)) * 3])
    with autocast("bf16", "cpu"):
        fast = Mish()(x)  # float32 input under autocast: the exp2 form, float32 output
        low = Mish()(x.bfloat16())
    ref = F.mish(x)
    assert fast.dtype == torch.float32 and torch.allclose(fast, ref, atol=1e-5, rtol=1e-5)
    assert low.dtype == torch.bfloat16 and torch.allclose(low.float(), ref, atol=0.02, rtol=0.01)
    emb = TimeEmbedding(16, 32)
    k = torch.randint(0, 5, (256,), generator=torch.Generator().manual_seed(0)).float()
    with autocast("bf16", "cpu"):
        grouped = emb(k)  # 5 distinct steps: embedded once each
    assert torch.allclose(grouped.float(), emb(k), atol=0.05)
    assert torch.equal(grouped[k == 3][0], grouped[k == 3][-1])
