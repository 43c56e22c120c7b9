"""SWG: weight functions, the joint (action, weight) model, self-guided sampling, and SWG-specific
training / state. The shared algorithm contract (metrics, parameter updates, frozen critic,
determinism, save/load, snapshot) runs on SWG in test_algos_contract.py (tests/rl_core/algo_tester.py)."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import torch

from rl_core import diffusion as D
from rl_core.algos import get_algorithm
from rl_core.algos.swg import SWG, SWGConfig, swg_loss, swg_sample
from rl_core.errors import ArtifactMismatchError, ConfigError
from rl_core.guidance import GuidanceCapabilityError, GuidanceConfig, make_guidance
from rl_core.swg_weights import (WeightConfig, compute_weights, critic_weights, load_weight_column,
                                 save_weight_column, weight_column)
from rl_core.types import Batch

OBS, ACT = 3, 2
TINY = SWGConfig(T=5, sampling_steps=5, hidden=16, n_blocks=2, emb_dim=8, critic_steps=2)
GCFG = GuidanceConfig(kind="iql", hidden=16)


@pytest.fixture(autouse=True)
def one_thread():
    """One thread, and a fixed global RNG: tests that build nets / draw inputs without a generator are
    deterministic (they were flaky when an unlucky random init saturated the tiny network)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(old)


def make_batch(seed: int = 0, B: int = 32) -> Batch:
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(B, OBS, generator=g)
    return Batch(obs, torch.rand(B, ACT, generator=g) * 2 - 1, torch.randn(B, generator=g),
                 torch.randn(B, OBS, generator=g), torch.zeros(B))


def critic(seed: int = 1):
    return make_guidance(GCFG, OBS, ACT, seed)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ----- weight functions ------------------------------------------------------------------------
@pytest.mark.parametrize("fn, adv, expected", [
    ("expectile", [-1.0, 0.0, 2.0], [0.3, 0.3, 0.7]),
    # sigmoid(3) = 0.952574: 0.952574 * 0.7 + 0.047426 * 0.3 = 0.681030
    ("smooth_expectile", [0.0, 1.0, -1.0], [0.5, 0.681030, 0.318970]),
    # exp(0)/10, exp(ln 5)/10, exp(4 -> clip 10)/10, exp(clip(-10) = -6)/10 = 2.4788e-4
    ("exponential", [0.0, math.log(5.0), 10.0, -10.0], [0.1, 0.5, 1.0, 2.4788e-4]),
    # tau = 0.7: f(A) = (e^{0.7 A} - 1)/A, f(0) = 0.7, f(4) = (e^{2.8} - 1)/4 = 3.861161, f(-2) = 0.376702
    ("linex", [0.0, 4.0, -2.0, 9.0], [0.7 / 3.861161, 1.0, 0.376702 / 3.861161, 1.0]),
])
def test_weight_functions_match_hand_computed_values(fn, adv, expected):
    w = compute_weights(torch.tensor(adv, dtype=torch.float64), WeightConfig(fn=fn))
    np.testing.assert_allclose(w.numpy(), expected, rtol=1e-4)


def test_weights_are_floored_and_nan_safe():
    cfg = WeightConfig(fn="exponential", beta=2.0, exp_clip=(1e-6, 10.0))
    w = compute_weights(torch.tensor([-6.0, float("nan")]), cfg)
    assert w.tolist() == pytest.approx([1e-4, 1e-4])  # exp(-12)/10 = 6e-7 -> floor; NaN -> floor


def test_weight_config_rejects_bad_values_and_round_trips():
    with pytest.raises(ConfigError, match="fn"):
        WeightConfig(fn="softmax")
    with pytest.raises(ConfigError, match="tau"):
        WeightConfig(tau=1.5)
    cfg = WeightConfig(fn="linex", adv_clip=(-3.0, 2.0))
    assert WeightConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_weight_column_equals_batch_weights_and_round_trips(tmp_path):
    batch, q = make_batch(B=50), critic()
    cfg = WeightConfig(fn="smooth_expectile")
    col = weight_column(q, batch.obs.numpy(), batch.act.numpy(), cfg, batch_size=16)
    assert col.shape == (50,) and col.dtype == np.float32
    adv = q.q(batch.obs, batch.act, target=True) - q.v(batch.obs)
    np.testing.assert_allclose(col, compute_weights(adv, cfg).detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(col[10:20], critic_weights(q, batch.obs[10:20], batch.act[10:20], cfg).numpy())
    save_weight_column(tmp_path, col, {"dataset_fingerprint": "abc", "weights": cfg.to_dict()})
    loaded, meta = load_weight_column(tmp_path, expect_fingerprint="abc")
    np.testing.assert_array_equal(loaded, col)
    assert meta["summary"]["n"] == 50
    with pytest.raises(ArtifactMismatchError, match="fingerprint"):
        load_weight_column(tmp_path, expect_fingerprint="other")


def test_weights_need_a_critic_with_v():
    td = make_guidance(GuidanceConfig(kind="td", hidden=16), OBS, ACT, 0)
    with pytest.raises(GuidanceCapabilityError, match="iql"):
        critic_weights(td, torch.zeros(2, OBS), torch.zeros(2, ACT), WeightConfig())


# ----- model and sampling ----------------------------------------------------------------------
def test_loss_reaches_the_weight_head_only_through_the_weight_coordinate():
    net = SWG.build_denoiser(TINY, OBS, ACT)
    batch = make_batch()
    sched = D.make_schedule("vp", TINY.T)
    loss, metrics = swg_loss(net, batch.obs, batch.act, torch.rand(32), sched, gen())
    assert metrics["loss/actor"] == pytest.approx(metrics["loss/action"] + metrics["loss/weight"], rel=1e-5)
    loss.backward()
    head = list(net.extra.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head)
    # the action part of the output does not depend on the weight head
    net.zero_grad()
    out = net(torch.randn(4, ACT + 1), torch.zeros(4), torch.randn(4, OBS))
    out[:, :ACT].sum().backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in head)


def _oracle_ddpm(net, obs, z_T, noises, sched, variance):
    """Independent plain DDPM (IDQL ddpm_sampler; noise variance beta_k or the posterior beta_tilde_k)
    on z = (a, w), clipping a to [-1, 1], w to [w_min, 1]."""
    ab = sched.alphas.double() ** 2
    z = z_T
    for k in range(sched.T - 1, -1, -1):
        alpha_k = ab[k] / (ab[k - 1] if k > 0 else 1.0)
        eps = net(z, torch.full((len(z),), float(k)), obs)
        z = (z - (1 - alpha_k) / (1 - ab[k]).sqrt() * eps) / alpha_k.sqrt()
        if k > 0:
            var = (1 - alpha_k) * ((1 - ab[k - 1]) / (1 - ab[k]) if variance == "posterior" else 1.0)
            z = z + var.sqrt() * noises[k]
        z = torch.cat([z[:, :-1].clamp(-1, 1), z[:, -1:].clamp(1e-4, 1)], dim=1).float()
    return z


@pytest.mark.parametrize("variance", ["beta", "posterior"])
def test_scale_zero_is_plain_ddpm_and_tiny_scale_is_continuous(variance):
    net = SWG.build_denoiser(TINY, OBS, ACT).eval()
    obs, sched = torch.randn(6, OBS), D.make_schedule("vp", TINY.T)
    with torch.no_grad():
        a0, w0 = swg_sample(net, obs, gen(3), sched, act_dim=ACT, temperature=1.0, scale=0.0, w_min=1e-4,
                            variance=variance)
        g = gen(3)  # the same draws, in the sampler's order: z_T, then one noise per step k = T-1..1
        z_T = torch.randn(6, ACT + 1, generator=g)
        noises = {k: torch.randn(6, ACT + 1, generator=g) for k in range(TINY.T - 1, 0, -1)}
        z = _oracle_ddpm(net, obs, z_T, noises, sched, variance)
        a_tiny, _ = swg_sample(net, obs, gen(3), sched, act_dim=ACT, temperature=1.0, scale=1e-6, w_min=1e-4,
                               variance=variance)
        a5, _ = swg_sample(net, obs, gen(3), sched, act_dim=ACT, temperature=1.0, scale=5.0, w_min=1e-4,
                           variance=variance)
    torch.testing.assert_close(torch.cat([a0, w0[:, None]], 1), z, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a_tiny, a0, atol=1e-4, rtol=0)
    assert not torch.allclose(a5, a0, atol=1e-3)


def test_guidance_raises_the_predicted_weight():
    """Analytic oracle: a ~ N(0, 0.3^2 I), w = exp(a_0 - 1). The exact eps of a and a Tweedie weight
    exp(E[a_0 | a_k] - 1) (log-gradient of the exact E[W_0 | a_k]) must give the tilted target
    pi ∝ N(0, 0.09 I) e^{a_0} = N((0.09, 0), 0.09 I) at s = 1 and the behaviour at s = 0."""

    class Oracle(torch.nn.Module):
        def forward(self, z, k, obs):
            ab = sched.alphas[k.long()] ** 2
            a0_hat = z[:, :-1] * ab.sqrt()[:, None] * 0.09 / (ab[:, None] * 0.09 + 1 - ab[:, None])
            eps_a = (z[:, :-1] - ab.sqrt()[:, None] * a0_hat) / (1 - ab[:, None]).sqrt()
            w_hat = torch.exp(a0_hat[:, :1] - 1.0)
            eps_w = (z[:, -1:] - ab.sqrt()[:, None] * w_hat) / (1 - ab[:, None]).sqrt()
            return torch.cat([eps_a, eps_w], 1)

    sched = D.make_schedule("vp", 15)
    obs = torch.zeros(2000, 0)
    out = {s: swg_sample(Oracle(), obs, gen(0), sched, act_dim=ACT, temperature=1.0, scale=s, w_min=1e-4)
           for s in (0.0, 1.0)}
    # unguided: mean of a_0 ~ 0; target ∝ N(0, 0.09) e^{a_0} has mean 0.09 along a_0, unchanged a_1
    assert abs(out[0.0][0][:, 0].mean().item()) < 0.03
    assert out[1.0][0][:, 0].mean().item() == pytest.approx(0.09, abs=0.02)  # T = 15 DDPM gives ~0.084
    assert abs(out[1.0][0][:, 1].mean().item()) < 0.03
    assert out[1.0][1].mean() > out[0.0][1].mean()


def test_self_guided_sample_shapes_ranges_and_swg_r_weights():
    algo = SWG(TINY, OBS, ACT, guidance=None, guidance_mode="bc", seed=0)
    obs = torch.randn(3, OBS)
    a, w = SWG.self_guided_sample(TINY, algo.denoiser(), obs, gen(), n=4, temperature=1.0, scale=5.0,
                                  return_weights=True)
    assert a.shape == (3, 4, ACT) and w.shape == (3, 4)
    assert a.abs().max() <= 1 and w.min() >= 1e-4 and w.max() <= 1
    # temperature 0: deterministic and all n samples identical (why SWG-R needs temperature > 0)
    a0 = SWG.self_guided_sample(TINY, algo.denoiser(), obs, gen(1), n=4, temperature=0.0, scale=5.0)
    assert torch.equal(a0, SWG.self_guided_sample(TINY, algo.denoiser(), obs, gen(2), n=4, temperature=0.0, scale=5.0))
    assert torch.allclose(a0[:, :1].expand_as(a0), a0)
    assert SWG.sample_with(TINY, algo.denoiser(), obs, gen(), n=2, temperature=1.0).shape == (3, 2, ACT)


# ----- config ----------------------------------------------------------------------------------
def test_config_validation_and_json_round_trip():
    cfg = SWGConfig(weights=WeightConfig(fn="exponential", beta=3.0), guidance_clip=10.0)
    assert SWGConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ConfigError, match="schedule"):
        SWGConfig(schedule="cosine")
    with pytest.raises(ConfigError, match="sampling_steps"):
        SWGConfig(T=15, sampling_steps=5)
    assert get_algorithm("swg") is SWG and SWG.requires == {"q", "v"}


def test_noise_mode_is_refused_with_a_clear_message():
    with pytest.raises(ConfigError, match="none"):
        SWG(TINY, OBS, ACT, guidance=None, guidance_mode="noise", seed=0)


# ----- SWG-specific training and state (the shared contract: test_algos_contract.py) ---------------
def _swg_joint_cfg(steps: int = 6, **kw):
    from rl_core.train import TrainConfig

    algo_config = {k: v for k, v in TINY.to_dict().items() if k != "weights"} | {"critic_steps": 5,
                                                                                 "critic_batch_size": 16}
    return TrainConfig(task="toy-medium", algo="swg", algo_config=algo_config, train_guidance="joint", seed=0,
                       steps=steps, batch_size=16, eval_every=3, log_every=1, guidance_config={"hidden": 32}, **kw)


def test_joint_mode_trains_the_critic_first_in_the_loop_then_freezes_it(tmp_path):
    """SWG joint: the loop's critic phase (guidance pretraining's code) trains the fresh IQL critic for
    critic_steps steps, then it is frozen and the diffusion model trains for ``steps`` steps."""
    from rl_core.guidance import make_guidance
    from rl_core.snapshot import load_snapshot
    from rl_core.train import run_training
    from tests.rl_core.algo_tester import tiny_dataset

    reports: list[dict] = []
    cfg = _swg_joint_cfg()
    run_training(cfg, tiny_dataset(), workdir=tmp_path, report=reports.append)
    phase = [r for r in reports if any(k.startswith("critic_phase/") for k in r)]
    assert [int(r["step"]) for r in phase] == [1, 2, 3, 4, 5] and all("critic_phase/loss/value" in r for r in phase)
    diffusion = [r for r in reports if r not in phase]
    assert [int(r["step"]) for r in diffusion] == list(range(1, 7))
    assert all("loss/actor" in r and "loss/critic" not in r for r in diffusion)  # the critic no longer trains
    fresh = make_guidance(GuidanceConfig(kind="iql", hidden=32), OBS, ACT, 0)
    s3, s6 = load_snapshot(tmp_path / "step_00000003.pt"), load_snapshot(tmp_path / "step_00000006.pt")
    g3, g6 = s3.guidance.nets.state_dict(), s6.guidance.nets.state_dict()
    assert all(torch.equal(g3[k], g6[k]) for k in g3)  # frozen through the diffusion phase
    assert not torch.equal(g3["v.net.0.weight"], fresh.nets.state_dict()["v.net.0.weight"])  # but trained first


def test_joint_mode_resumed_from_a_diffusion_checkpoint_skips_the_phase_and_matches(tmp_path):
    import shutil

    from rl_core.snapshot import load_snapshot
    from rl_core.train import run_training
    from tests.rl_core.algo_tester import tiny_dataset

    saved = tmp_path / "saved"
    keep = lambda step, path: shutil.copytree(path, saved) if step == 3 else None  # noqa: E731
    run_training(_swg_joint_cfg(checkpoint_every=3), tiny_dataset(), workdir=tmp_path / "a", on_checkpoint=keep)
    reports: list[dict] = []
    run_training(_swg_joint_cfg(checkpoint_every=3), tiny_dataset(), workdir=tmp_path / "b", resume_from=saved,
                 report=reports.append)
    assert not any(k.startswith("critic_phase/") for r in reports for k in r)
    a, b = load_snapshot(tmp_path / "a" / "step_00000006.pt"), load_snapshot(tmp_path / "b" / "step_00000006.pt")
    sa, sb = a.denoiser.state_dict(), b.denoiser.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_load_state_dict_restores_self_guided_sampling():
    """Self-guided samples (s > 0) are identical after a load and through ``build_denoiser``."""
    a1 = SWG(TINY, OBS, ACT, guidance=critic(3), guidance_mode="frozen", seed=7)
    for i in range(4):
        a1.update(make_batch(i), gen(i))
    obs = torch.randn(5, OBS)
    act1 = a1.guided_sample(obs, gen(5), n=3, temperature=0.5, scale=2.0)
    b = SWG(TINY, OBS, ACT, guidance=critic(4), guidance_mode="frozen", seed=123)
    b.load_state_dict(a1.state_dict())
    assert torch.equal(act1, b.guided_sample(obs, gen(5), n=3, temperature=0.5, scale=2.0))
    net = SWG.build_denoiser(TINY, OBS, ACT)
    net.load_state_dict(a1.denoiser(ema=True).state_dict())
    assert torch.equal(act1, SWG.self_guided_sample(TINY, net, obs, gen(5), n=3, temperature=0.5, scale=2.0))


def test_snapshot_actor_uses_self_guidance_at_the_requested_scale(tmp_path):
    from rl_core.inference import InferenceConfig
    from rl_core.snapshot import load_snapshot, make_actor, save_snapshot
    from rl_core.types import Normalizer

    algo = SWG(TINY, OBS, ACT, guidance=critic(), guidance_mode="frozen", seed=0)
    for i in range(3):
        algo.update(make_batch(i), gen(i))
    norm = Normalizer.identity(OBS)
    path = save_snapshot(tmp_path / "step_00000003.pt", algo, step=3, config={}, normalizer=norm,
                         dataset_meta={}, guidance_meta=None)
    snap = load_snapshot(path)
    obs = torch.randn(4, OBS)
    acts = {}
    for s in (1.0, 5.0):
        actor = make_actor(snap, InferenceConfig(method="swg", scale=s, n_candidates=1, temperature=0.5))
        acts[s] = actor.act(obs.numpy(), gen(1))
        direct = algo.guided_sample(obs, gen(1), n=1, temperature=0.5, scale=s)[:, 0]
        np.testing.assert_allclose(acts[s], direct.numpy(), atol=1e-6)
    assert not np.allclose(acts[1.0], acts[5.0])
    swg_r = make_actor(snap, InferenceConfig(method="swg", scale=1.0, n_candidates=3, temperature=0.5))
    assert swg_r.act(obs.numpy(), gen(2)).shape == (4, ACT)
    # SWG-R by sampled weight (SWG-P): no critic needed; picks the candidate with the largest weight
    snap.guidance = None
    by_w = make_actor(snap, InferenceConfig(method="swg", scale=1.0, n_candidates=3, temperature=0.5,
                                            swg_select="weight"))
    cand, w = SWG.self_guided_sample(TINY, snap.denoiser, obs, gen(3), n=3, temperature=0.5, scale=1.0,
                                     return_weights=True)
    expected = cand[torch.arange(4), w.argmax(dim=1)].numpy()
    np.testing.assert_allclose(by_w.act(obs.numpy(), gen(3)), expected, atol=1e-6)
    with pytest.raises(GuidanceCapabilityError):  # by Q without a critic: refused
        make_actor(snap, InferenceConfig(method="swg", scale=1.0, n_candidates=3, swg_select="q"))


# ----- self-guided sampling on diffusion.DDPMSampler: pinned values --------------------------------
class _Dummy(torch.nn.Module):
    """diffusers' scheduler-test dummy model, eps = z * k / (k + 1) (elementwise: bit-stable across machines)."""

    def forward(self, z, k, obs):
        return z * k[:, None] / (k[:, None] + 1)


# Pinned before swg_sample was rebuilt on DDPMSampler.step: T = 15 VP, temperature 0.5, s = 1, critic-gradient
# guidance 0.2 * 1, z = (a, w) of 3 chains; and the generator's next draw (pins the number of draws).
SWG_GOLDEN = {
    "beta": ([0.10867159068584442, 0.5895770192146301, 0.9646547436714172, -0.20872053503990173, 0.5627754926681519,
              0.9742879271507263, 0.2905191481113434, 0.29010748863220215, 1.0], 0.4631114900112152),
    "posterior": ([0.1661101132631302, 0.47329461574554443, 0.9803279638290405, -0.11145423352718353,
                   0.5567099452018738, 1.0, 0.36415308713912964, 0.227814719080925, 1.0], 0.4631114900112152),
}


@pytest.mark.parametrize("variance", list(SWG_GOLDEN))
def test_self_guided_dummy_loop_matches_pinned_values_bit_for_bit(variance):
    g = gen(0)
    a, w = swg_sample(_Dummy(), torch.zeros(3, 0), g, D.make_schedule("vp", 15), act_dim=2, temperature=0.5,
                      scale=1.0, w_min=1e-4, variance=variance, guidance_fn=lambda a, k: torch.ones_like(a),
                      guidance_scale=0.2)
    values, next_draw = SWG_GOLDEN[variance]
    assert torch.equal(torch.cat([a, w[:, None]], 1), torch.tensor(values).reshape(3, 3))
    assert torch.randn((), generator=g).item() == next_draw


def test_sample_with_is_the_one_entry_point_and_declares_self_guidance():
    algo = SWG(TINY, OBS, ACT, guidance=None, guidance_mode="bc", seed=0)
    obs = torch.randn(3, OBS)
    a, aux = SWG.sample_with(TINY, algo.denoiser(), obs, gen(4), n=2, temperature=0.5, self_guidance_scale=3.0,
                             return_aux=True)
    ref_a, ref_w = SWG.self_guided_sample(TINY, algo.denoiser(), obs, gen(4), n=2, temperature=0.5, scale=3.0,
                                          return_weights=True)
    assert torch.equal(a, ref_a) and torch.equal(aux["weight"], ref_w)
    assert torch.equal(algo.sample(obs, gen(4), n=2, temperature=0.5, self_guidance_scale=3.0), ref_a)
    unguided = SWG.sample_with(TINY, algo.denoiser(), obs, gen(4), n=2, temperature=0.5)
    assert torch.equal(unguided, SWG.self_guided_sample(TINY, algo.denoiser(), obs, gen(4), n=2, temperature=0.5,
                                                        scale=0.0))
    dql = get_algorithm("dql")
    assert SWG.self_guided and not dql.self_guided
    with pytest.raises(ConfigError, match="self_guidance_scale"):
        dql.sample_with(dql.Config(), dql.build_denoiser(dql.Config(), OBS, ACT), obs, gen(), n=1, temperature=0.5,
                        self_guidance_scale=1.0)
    x, aux = dql.sample_with(dql.Config(), dql.build_denoiser(dql.Config(), OBS, ACT), obs, gen(), n=2,
                             temperature=0.5, return_aux=True)
    assert x.shape == (3, 2, ACT) and aux == {}
