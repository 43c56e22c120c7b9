"""Schedules and samplers: table values, the Gaussian analytic oracle, DDIM agreement, guidance, gradients."""

from __future__ import annotations

import math

import pytest
import torch

from rl_core.diffusion import (PREDICTS, SOLVERS, add_noise, diffusion_loss, make_sampler, make_schedule, one_step_x0, sample,
                               step_indices)
from rl_core.errors import ConfigError, MdptError
from rl_core.nets import DQLMlp

M, S = 0.4, 0.3  # 1-D data N(M, S^2)


def oracle_eps(sched, m: float = M, s: float = S):
    """Optimal eps-predictor for N(m, s^2) data: eps* = sigma (x - alpha m) / (alpha^2 s^2 + sigma^2)."""

    def fn(x, k, cond):
        a, sg = sched.alphas[k.long()][:, None], sched.sigmas[k.long()][:, None]
        return sg * (x - a * m) / (a**2 * s**2 + sg**2)

    return fn


def oracle_x0(sched, m: float = M, s: float = S):
    """Optimal x0-predictor E[x0 | x_k] = m + alpha s^2 (x - alpha m) / (alpha^2 s^2 + sigma^2)."""

    def fn(x, k, cond):
        a, sg = sched.alphas[k.long()][:, None], sched.sigmas[k.long()][:, None]
        return m + a * s**2 * (x - a * m) / (a**2 * s**2 + sg**2)

    return fn


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_schedule_values_match_reference_tables():
    cos = make_schedule("cosine", 5)
    assert torch.allclose(cos.alphas, torch.tensor([1.000, 0.920, 0.702, 0.379, 0.008]), atol=2e-3)
    assert torch.allclose(cos.sigmas, torch.tensor([0.006, 0.392, 0.712, 0.925, 1.000]), atol=2e-3)
    vp = make_schedule("vp", 5)
    assert torch.allclose(vp.betas, torch.tensor([0.196, 0.459, 0.636, 0.755, 0.835]), atol=2e-3)
    assert torch.allclose(vp.alphabar, torch.tensor([0.804, 0.435, 0.159, 0.039, 0.0064]), atol=1e-3)
    vp15 = make_schedule("vp", 15).alphabar
    ref15 = [0.972, 0.904, 0.804, 0.685, 0.558, 0.435, 0.325, 0.232, 0.159, 0.104, 0.065, 0.039, 0.022, 0.012, 0.0064]
    assert torch.allclose(vp15, torch.tensor(ref15), atol=1.5e-3)
    lin = make_schedule("linear", 100)
    assert lin.betas[0].item() == pytest.approx(1e-3, rel=1e-4) and lin.betas[-1].item() == pytest.approx(0.2, rel=1e-4)
    for sch in (cos, vp, lin):
        assert torch.allclose(sch.alphas**2 + sch.sigmas**2, torch.ones(sch.T), atol=1e-6)
        assert bool((sch.alphas[1:] < sch.alphas[:-1]).all())  # k = 0 is the least noisy


def test_bad_arguments_raise_mdpt_errors_naming_allowed_values():
    with pytest.raises(ConfigError, match="cosine, vp, linear"):
        make_schedule("sigmoid", 5)
    with pytest.raises(ConfigError, match="T > 20"):
        make_schedule("linear", 5)
    sched = make_schedule("cosine", 5)
    with pytest.raises(ConfigError, match="ddpm, dpm_solver_1, dpm_solver_2m"):
        sample(oracle_eps(sched), torch.zeros(2, 1), (2, 1), sched, solver="euler", generator=gen())
    with pytest.raises(MdptError, match="steps"):
        sample(oracle_eps(sched), torch.zeros(2, 1), (2, 1), sched, steps=6, generator=gen())
    with pytest.raises(ConfigError, match="x_T has shape"):
        sample(oracle_eps(sched), torch.zeros(2, 1), (2, 1), sched, generator=gen(), x_T=torch.zeros(3, 1))
    with pytest.raises(ConfigError, match="cond.shape"):
        sample(oracle_eps(sched), torch.zeros(2, 1), (4, 1), sched, generator=gen())
    with pytest.raises(ConfigError, match="eps, x0"):
        diffusion_loss(oracle_eps(sched), torch.zeros(2, 1), torch.zeros(2, 1), sched, predict="v", generator=gen())


def test_step_indices_descend_to_zero():
    assert step_indices(5, 5) == [4, 3, 2, 1, 0]
    ks = step_indices(50, 15)
    assert len(ks) == 15 and ks[0] == 49 and ks[-1] == 0 and all(a > b for a, b in zip(ks, ks[1:]))
    assert step_indices(50, 1) == [49]


def test_add_noise_formula():
    sched = make_schedule("vp", 5)
    x0, eps, k = torch.randn(6, 2, generator=gen(1)), torch.randn(6, 2, generator=gen(2)), torch.tensor([0, 1, 2, 3, 4, 0])
    expected = sched.alphas[k][:, None] * x0 + sched.sigmas[k][:, None] * eps
    assert torch.allclose(add_noise(x0, eps, k, sched), expected)


@pytest.mark.parametrize(("solver", "kind", "T", "steps"), [("ddpm", "cosine", 200, None), ("dpm_solver_2m", "cosine", 200, 20)])
def test_sampler_recovers_gaussian_with_oracle(solver, kind, T, steps):
    sched = make_schedule(kind, T)
    n = 20_000
    x = sample(oracle_eps(sched), torch.zeros(n, 1), (n, 1), sched, solver=solver, steps=steps, generator=gen(), clip=None)
    assert x.mean().item() == pytest.approx(M, abs=0.02)
    assert x.std().item() == pytest.approx(S, abs=0.02)


def test_deterministic_solvers_follow_the_exact_probability_flow():
    """For N(m, s^2) the PF-ODE keeps u = (x - alpha m)/sqrt(alpha^2 s^2 + sigma^2) constant, so x_0 = m + s u(x_T)."""
    sched = make_schedule("cosine", 200)
    x_T = torch.linspace(-2, 2, 9)[:, None]
    a, sg = sched.alphas[-1].item(), sched.sigmas[-1].item()
    exact = M + S * (x_T - a * M) / math.sqrt(a**2 * S**2 + sg**2)
    kw = dict(generator=gen(), clip=None, x_T=x_T, steps=20)
    err1 = (sample(oracle_eps(sched), torch.zeros(9, 1), (9, 1), sched, solver="dpm_solver_1", **kw) - exact).abs().max()
    err2 = (sample(oracle_eps(sched), torch.zeros(9, 1), (9, 1), sched, solver="dpm_solver_2m", **kw) - exact).abs().max()
    assert err2 < 0.03 and err2 < err1 / 2  # second order beats first order at the same 20 steps
    # x0-prediction is the same model in another parametrisation -> same samples
    x0_pred = sample(oracle_x0(sched), torch.zeros(9, 1), (9, 1), sched, solver="dpm_solver_2m", predict="x0", **kw)
    assert torch.allclose(x0_pred, sample(oracle_eps(sched), torch.zeros(9, 1), (9, 1), sched, solver="dpm_solver_2m", **kw), atol=1e-4)


def test_first_order_dpm_solver_equals_independent_ddim():
    sched = make_schedule("cosine", 50)
    net = DQLMlp(3, 2, hidden=32, emb_dim=8).double()  # float64: x0_hat = (x - sigma eps)/alpha amplifies by 1/alpha_49 ~ 120
    obs, x_T = torch.randn(4, 3, generator=gen(1), dtype=torch.float64), torch.randn(4, 2, generator=gen(2), dtype=torch.float64)
    with torch.no_grad():
        got = sample(net, obs, (4, 2), sched, solver="dpm_solver_1", steps=7, generator=gen(), x_T=x_T, clip=None)
        x, ks = x_T.clone(), [49, 41, 33, 24, 16, 8, 0]  # round(linspace(49, 0, 7)), half to even
        for i, k in enumerate(ks):
            a, s = sched.alphas[k].item(), sched.sigmas[k].item()
            a1, s1 = (sched.alphas[ks[i + 1]].item(), sched.sigmas[ks[i + 1]].item()) if i + 1 < len(ks) else (1.0, 0.0)
            eps = net(x, torch.full((4,), float(k), dtype=torch.float64), obs)
            x = a1 * (x - s * eps) / a + s1 * eps  # DDIM (eta = 0)
    assert torch.allclose(got, x, rtol=1e-10, atol=1e-10)


def test_same_generator_same_samples_and_clip_to_bounds():
    sched = make_schedule("cosine", 5)
    net = DQLMlp(3, 2, hidden=32, emb_dim=8)
    obs = torch.randn(16, 3, generator=gen(1))
    with torch.no_grad():
        for solver in SOLVERS:
            a = sample(net, obs, (16, 2), sched, solver=solver, generator=gen(7), temperature=3.0)
            b = sample(net, obs, (16, 2), sched, solver=solver, generator=gen(7), temperature=3.0)
            c = sample(net, obs, (16, 2), sched, solver=solver, generator=gen(8), temperature=3.0)
            assert torch.equal(a, b) and not torch.equal(a, c)
            assert a.abs().max() <= 1.0
        half = sample(net, obs, (16, 2), sched, generator=gen(7), clip=(-0.5, 0.5))
        assert half.abs().max() <= 0.5


def test_temperature_zero_and_given_x_T():
    sched = make_schedule("cosine", 5)
    net = DQLMlp(3, 2, hidden=32, emb_dim=8)
    obs = torch.randn(4, 3, generator=gen(1))
    with torch.no_grad():
        t0 = sample(net, obs, (4, 2), sched, solver="dpm_solver_1", generator=gen(1), temperature=0.0)
        xz = sample(net, obs, (4, 2), sched, solver="dpm_solver_1", generator=gen(2), x_T=torch.zeros(4, 2))
    assert torch.equal(t0, xz)


def test_guidance_scale_zero_is_unguided_and_constant_guidance_shifts_up():
    sched = make_schedule("cosine", 20)
    n = 4000
    up = lambda x, k: torch.ones_like(x)  # d log h / dx = +1: prefer larger x
    base = sample(oracle_eps(sched), torch.zeros(n, 1), (n, 1), sched, generator=gen(3), clip=None)
    zero = sample(oracle_eps(sched), torch.zeros(n, 1), (n, 1), sched, generator=gen(3), clip=None, guidance=up, guidance_scale=0.0)
    assert torch.equal(base, zero)
    for scale, sign in ((0.5, 1), (-0.5, -1)):
        guided = sample(oracle_eps(sched), torch.zeros(n, 1), (n, 1), sched, generator=gen(3), clip=None, guidance=up, guidance_scale=scale)
        assert sign * (guided.mean() - base.mean()).item() > 0.05


def test_prediction_clip_is_switchable():
    sched = make_schedule("cosine", 5)
    far = lambda x, k, c: torch.full_like(x, 3.0)  # x0-model predicting outside the bounds
    kw = dict(predict="x0", generator=gen(), solver="dpm_solver_1", x_T=torch.zeros(2, 1))
    clipped = sample(far, torch.zeros(2, 1), (2, 1), sched, clip=(-1.0, 1.0), **kw)
    assert torch.allclose(clipped, torch.ones(2, 1))
    unclipped = sample(far, torch.zeros(2, 1), (2, 1), sched, clip=(-5.0, 5.0), clip_x0=False, **kw)
    assert torch.allclose(unclipped, torch.full((2, 1), 3.0), atol=1e-4)


def test_gradients_flow_through_the_chain_to_all_parameters():
    sched = make_schedule("cosine", 5)
    net = DQLMlp(3, 2, hidden=32, emb_dim=8)
    act = sample(net, torch.randn(32, 3, generator=gen(1)), (32, 2), sched, generator=gen(2), clip=None, clip_x0=False)
    act.pow(2).sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_diffusion_loss_targets_and_weights():
    sched = make_schedule("cosine", 5)
    x0 = torch.full((8, 2), 0.3)
    perfect_x0 = lambda x, k, c: torch.full_like(x, 0.3)
    assert diffusion_loss(perfect_x0, x0, torch.zeros(8, 1), sched, predict="x0", generator=gen()).item() == pytest.approx(0.0, abs=1e-12)
    zero = lambda x, k, c: torch.zeros_like(x)  # eps-MSE of a zero predictor = E[eps^2] ~ 1
    big = torch.zeros(4096, 2)
    assert diffusion_loss(zero, big, torch.zeros(4096, 1), sched, predict="eps", generator=gen()).item() == pytest.approx(1.0, abs=0.05)
    unweighted = diffusion_loss(zero, x0, torch.zeros(8, 1), sched, predict="eps", generator=gen(5))
    ones = diffusion_loss(zero, x0, torch.zeros(8, 1), sched, predict="eps", generator=gen(5), weights=torch.ones(8))
    zeros = diffusion_loss(zero, x0, torch.zeros(8, 1), sched, predict="eps", generator=gen(5), weights=torch.zeros(8))
    assert torch.allclose(unweighted, ones) and zeros.item() == 0.0


def test_one_step_x0_recovers_point_mass_and_clips():
    sched = make_schedule("cosine", 50)
    x0 = torch.full((64, 1), 0.7)
    x0_hat, k = one_step_x0(oracle_eps(sched, m=0.7, s=0.0), x0, torch.zeros(64, 1), sched, predict="eps", generator=gen())
    assert k.dtype == torch.long and k.shape == (64,) and int(k.min()) >= 0 and int(k.max()) <= 49 and len(k.unique()) > 10
    assert torch.allclose(x0_hat, x0, atol=1e-4)
    far, _ = one_step_x0(lambda x, k, c: torch.full_like(x, 2.0), x0, torch.zeros(64, 1), sched, predict="x0", generator=gen(), clip=(-1, 1))
    assert torch.equal(far, torch.ones(64, 1))


def test_batched_sampling_equals_per_sample_loop():
    sched = make_schedule("cosine", 50)
    net = DQLMlp(3, 2, hidden=32, emb_dim=8).double()
    obs, x_T = torch.randn(6, 3, generator=gen(1), dtype=torch.float64), torch.rand(6, 2, generator=gen(2), dtype=torch.float64)
    kw = dict(solver="dpm_solver_2m", steps=15, generator=gen())
    with torch.no_grad():
        batched = sample(net, obs, (6, 2), sched, x_T=x_T, **kw)
        rows = torch.cat([sample(net, obs[i : i + 1], (1, 2), sched, x_T=x_T[i : i + 1], **kw) for i in range(6)])
    assert torch.allclose(batched, rows, atol=1e-12)


def ddpm_moments(sched, steps: int, m: float = M, s: float = S) -> tuple[float, float]:
    """Exact mean and std of DDPM (posterior variance) output with the Gaussian oracle, x_T ~ N(0, 1).

    Every step is linear-Gaussian: x' = A x + b + std z, so mean' = A mean + b, var' = A^2 var + std^2.
    """
    ks = step_indices(sched.T, steps)
    levels = [(sched.alphas[k].item(), sched.sigmas[k].item()) for k in ks] + [(1.0, 0.0)]
    mean, var = 0.0, 1.0
    for (a, sg), (a1, s1) in zip(levels[:-1], levels[1:]):
        d = a**2 * s**2 + sg**2  # eps_hat = sg (x - a m) / d, x0_hat = (x - sg eps_hat) / a
        e1, e0 = sg / d, -sg * a * m / d
        x1, x0 = (1 - sg * e1) / a, -sg * e0 / a
        std = (s1 / sg) * math.sqrt(max(1 - (a / a1) ** 2, 0.0))
        c = math.sqrt(max(s1**2 - std**2, 0.0))
        A, b = a1 * x1 + c * e1, a1 * x0 + c * e0
        mean, var = A * mean + b, A**2 * var + std**2
    return mean, math.sqrt(var)


@pytest.mark.parametrize(("kind", "T", "steps"), [("vp", 100, 25), ("cosine", 5, 5), ("vp", 5, 5)])
def test_ddpm_matches_exact_linear_gaussian_moments(kind, T, steps):
    """With coarse steps DDPM's posterior ("fixed small") variance under-disperses (Analytic-DPM); the exact
    moments of the chain pin down every coefficient of the step, including the injected noise."""
    sched = make_schedule(kind, T)
    n = 40_000
    x = sample(oracle_eps(sched), torch.zeros(n, 1), (n, 1), sched, steps=steps, generator=gen(4), clip=None)
    mean, std = ddpm_moments(sched, steps)
    assert x.mean().item() == pytest.approx(mean, abs=0.01) and x.std().item() == pytest.approx(std, rel=0.02)


def test_full_ddpm_moments_approach_the_data():
    assert ddpm_moments(make_schedule("cosine", 200), 200) == pytest.approx((M, S), abs=0.01)
    assert ddpm_moments(make_schedule("vp", 100), 25)[1] < S - 0.04  # coarse steps under-disperse


# ----- the step API (Sampler.step) ------------------------------------------------------------------
def dummy_eps(x, k, cond):
    """diffusers' scheduler-test dummy model: sample * t / (t + 1)."""
    return x * k[:, None] / (k[:, None] + 1)


def dummy_x0(x, k, cond):
    """The dummy shifted by one level (an x0-model that does not return 0 at k = 0)."""
    return x * (k[:, None] + 1) / (k[:, None] + 2)


# Pinned before the sampler was rebuilt on Sampler.step (float64, cosine T = 50, 15 steps, clip (-1, 1),
# x_T and DDPM noise from seed 0), and the generator's next float64 draw (pins the number of draws).
GOLDEN = {
    ("ddpm", "eps"): ([-0.41966371671996294, -0.11353866455648186, 0.11187549084183307, 0.5686225832509432,
                       0.11831940202071899, 0.2547312950780187], -1.7786636657461636),
    ("ddpm", "x0"): ([-0.3232053527289483, -0.1842633842267048, -0.12830993242042504, 0.34448142325621073,
                      -0.07188407216420133, 0.291891793963937], -1.7786636657461636),
    ("dpm_solver_1", "eps"): ([0.901649275172082, -0.196222949708779, -1.0, 0.36306713521905937,
                               -0.648865519884393, -0.8227913619241973], 0.4033468476292993),
    ("dpm_solver_1", "x0"): ([0.5049134923641868, -0.2030985358244631, -0.5069625652269235, 0.3934430354354619,
                              -0.47994199371080204, -0.49845246283657313], 0.4033468476292993),
    ("dpm_solver_2m", "eps"): ([0.9351876221036616, -0.1972417739507645, -1.0, 0.36877210762356444,
                                -0.6693402607040133, -0.8522544124970023], 0.4033468476292993),
    ("dpm_solver_2m", "x0"): ([0.5049134923641868, -0.20498384380573542, -0.5069625652269235, 0.3970952591793278,
                               -0.47994199371080204, -0.498452462836573], 0.4033468476292993),
}


@pytest.mark.parametrize(("solver", "predict"), list(GOLDEN))
def test_dummy_model_full_loop_matches_pinned_values_bit_for_bit(solver, predict):
    sched, g = make_schedule("cosine", 50), gen(0)
    x = sample(dummy_eps if predict == "eps" else dummy_x0, torch.zeros(3, 1, dtype=torch.float64), (3, 2), sched,
               solver=solver, steps=15, predict=predict, generator=g)
    values, next_draw = GOLDEN[(solver, predict)]
    assert torch.equal(x, torch.tensor(values, dtype=torch.float64).reshape(3, 2))
    assert torch.randn((), generator=g, dtype=torch.float64).item() == next_draw


def test_dummy_model_guided_loop_matches_pinned_values_bit_for_bit():
    x = sample(dummy_eps, torch.zeros(3, 1, dtype=torch.float64), (3, 2), make_schedule("cosine", 50),
               solver="dpm_solver_2m", steps=15, generator=gen(0), guidance=lambda x, k: torch.ones_like(x) * 0.5,
               guidance_scale=0.3)
    pinned = [1.0, 0.09670321453286643, -0.9680218004437054, 0.5833964811353625, -0.35002803501629653,
              -0.527385411381742]
    assert torch.equal(x, torch.tensor(pinned, dtype=torch.float64).reshape(3, 2))


def step_loop(net, obs, sched, solver, steps, predict, g, temperature, clip, guidance=None, scale=0.0):
    """A hand-written loop over Sampler.step (the caller owns the loop and the guidance)."""
    sampler = make_sampler(solver, sched, steps, predict=predict, clip=clip)
    x = sampler.init_noise((len(obs), 2), g, temperature).to(obs)
    x0s = []
    for i, k in enumerate(sampler.timesteps):
        t = torch.full((1,), float(k), dtype=obs.dtype).expand(len(obs))  # as sample() (stride 0 changes matmul bits)
        out = net(x, t, obs)
        if guidance is None:
            res = sampler.step(out, i, x, generator=g)
        else:
            eps = sampler.guide(sampler.to_eps(out, i, x), i, guidance(x, t), scale)
            res = sampler.step(eps, i, x, generator=g, predict="eps")
        x = res.prev_sample
        x0s.append(res.x0_pred)
    return x, x0s


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("predict", PREDICTS)
def test_sample_equals_a_hand_written_loop_over_step(solver, predict):
    sched = make_schedule("cosine", 50)
    net = DQLMlp(3, 2, hidden=32, emb_dim=8)
    obs = torch.randn(8, 3, generator=gen(1))
    up = lambda x, k: torch.sin(3 * x)
    with torch.no_grad():
        for guidance, scale in ((None, 0.0), (up, 0.4)):
            g1, g2 = gen(5), gen(5)
            ref = sample(net, obs, (8, 2), sched, solver=solver, steps=12, predict=predict, generator=g1,
                         temperature=0.7, guidance=guidance, guidance_scale=scale)
            got, x0s = step_loop(net, obs, sched, solver, 12, predict, g2, 0.7, (-1.0, 1.0), guidance, scale)
            assert torch.equal(ref, got) and torch.equal(torch.randn(4, generator=g1), torch.randn(4, generator=g2))
            assert len(x0s) == 12 and all(bool(x0.abs().max() <= 1.0) for x0 in x0s)  # the prediction clip
            assert torch.equal(got, x0s[-1])  # the last move lands on the (clipped) x0 estimate


def test_step_api_refuses_misuse_with_one_line_errors():
    sched = make_schedule("cosine", 20)
    x = torch.zeros(2, 1)
    two_m = make_sampler("dpm_solver_2m", sched, 10)
    two_m.step(x, 0, x)
    with pytest.raises(ConfigError, match="in order"):
        two_m.step(x, 2, x)  # skipped step 1: no x0_hat of the previous level
    with pytest.raises(ConfigError, match="out of range"):
        two_m.step(x, 10, x)
    with pytest.raises(ConfigError, match="generator"):
        make_sampler("ddpm", sched, 10).step(x, 0, x)
    with pytest.raises(ConfigError, match="steps = T"):
        make_sampler("ddpm", sched, 10, mean="eps")
    with pytest.raises(ConfigError, match="posterior, beta"):
        make_sampler("ddpm", sched, variance="large")
    with pytest.raises(ConfigError, match="ddpm, dpm_solver_1, dpm_solver_2m"):
        make_sampler("euler", sched)


def beta_ddpm_moments(sched, m: float = M, s: float = S) -> tuple[float, float]:
    """Exact mean and std of full DDPM with the posterior mean and "beta" noise 1 - (alpha/alpha')^2
    (Gaussian oracle, x_T ~ N(0, 1)); ``ddpm_moments`` with the injected variance swapped."""
    levels = [(sched.alphas[k].item(), sched.sigmas[k].item()) for k in range(sched.T - 1, -1, -1)] + [(1.0, 0.0)]
    mean, var = 0.0, 1.0
    for i, ((a, sg), (a1, s1)) in enumerate(zip(levels[:-1], levels[1:])):
        d = a**2 * s**2 + sg**2
        e1, e0 = sg / d, -sg * a * m / d
        x1, x0 = (1 - sg * e1) / a, -sg * e0 / a
        post = (s1 / sg) * math.sqrt(max(1 - (a / a1) ** 2, 0.0))
        c = math.sqrt(max(s1**2 - post**2, 0.0))
        A, b = a1 * x1 + c * e1, a1 * x0 + c * e0
        noise_var = 0.0 if i == sched.T - 1 else 1 - (a / a1) ** 2
        mean, var = A * mean + b, A**2 * var + noise_var
    return mean, math.sqrt(var)


@pytest.mark.parametrize("variance", ["posterior", "beta"])
def test_ddpm_mean_forms_agree_and_match_the_exact_moments(variance):
    """mean='x0' (eq. 3) and mean='eps' (Ho et al.) are one posterior mean: the same draws give the same
    chain; its moments are the exact linear-Gaussian ones of the chosen noise variance."""
    sched = make_schedule("vp", 10)
    n = 20_000
    out = {}
    for mean in ("x0", "eps"):
        sampler = make_sampler("ddpm", sched, predict="eps", clip=None, variance=variance, mean=mean)
        g = gen(2)
        x = sampler.init_noise((n, 1), g)
        for i, k in enumerate(sampler.timesteps):
            x = sampler.step(oracle_eps(sched)(x, torch.full((n,), float(k)), None), i, x, generator=g).prev_sample
        out[mean] = x
    torch.testing.assert_close(out["x0"], out["eps"], atol=1e-4, rtol=1e-4)
    exact = ddpm_moments(sched, sched.T) if variance == "posterior" else beta_ddpm_moments(sched)
    assert out["x0"].mean().item() == pytest.approx(exact[0], abs=0.01)
    assert out["x0"].std().item() == pytest.approx(exact[1], rel=0.02)
    if variance == "posterior":
        assert torch.equal(out["x0"], sample(oracle_eps(sched), torch.zeros(n, 1), (n, 1), sched, generator=gen(2), clip=None))
    else:
        assert exact[1] > ddpm_moments(sched, sched.T)[1] + 0.02  # beta_k noise: wider than the posterior's
