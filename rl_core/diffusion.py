"""Noise schedules and samplers for diffusion policies (the sampler never owns a network).

Forward process (discrete, k = 0..T-1, k = 0 the least noisy):

    x_k = alpha_k * x_0 + sigma_k * eps,   eps ~ N(0, I),   sigma_k = sqrt(1 - alpha_k^2)      (1)

alpha_k is the *signal scale* sqrt(alphabar_k). A model predicts eps (``predict="eps"``) or x_0
(``predict="x0"``); the two are interchangeable through (1):

    x0_hat = (x_k - sigma_k * eps_hat) / alpha_k,   eps_hat = (x_k - alpha_k * x0_hat) / sigma_k    (2)

Samplers (``solver``), each stepping from index k to the next index k' of the step schedule
(alpha' / sigma' at k'):

* ``"ddpm"``  ancestral sampling with the posterior variance (DDPM; CleanDiffuser's ``ddpm``):
      s   = (sigma'/sigma) * sqrt(1 - (alpha/alpha')^2)                                           (3)
      x'  = alpha' * x0_hat + sqrt(sigma'^2 - s^2) * eps_hat + s * z,   z ~ N(0, I)
* ``"dpm_solver_1"``  first-order DPM-Solver = deterministic DDIM:
      x'  = alpha' * x0_hat + sigma' * eps_hat                                                    (4)
* ``"dpm_solver_2m"``  DPM-Solver++(2M) (Lu et al. 2022, Alg. 2), lambda = log(alpha / sigma),
  h = lambda' - lambda, r = h_prev / h:
      D   = (1 + 1/(2r)) * x0_hat - 1/(2r) * x0_hat_prev
      x'  = (sigma'/sigma) * x + (alpha' - alpha * sigma'/sigma) * D                              (5)
  ((5) is x' = (sigma'/sigma) x - alpha' (e^{-h} - 1) D with e^{-h} = alpha sigma' / (sigma alpha').)
  D = x0_hat (first order) on the first move and on the last two (into the lowest level and to the
  clean point): diffusers' ``lower_order_final``. Deviation from CleanDiffuser, which extrapolates
  into its last level: with the cosine schedule the uniform index steps near k = 0 are huge in
  lambda (T = 50, S = 15: h = 2.8 after h_prev = 0.6, r = 0.23) and the second-order extrapolation
  overshoots. Measured on the Gaussian oracle (N(0, 0.5^2), x_T in [-2, 2], max error of the ODE
  end point): T = 50, S = 15: 0.164 (extrapolating) vs 0.028
  (lower order final) vs 0.106 (DDIM); T = 200, S = 20: 0.100 vs 0.0001 vs 0.078.

Step schedule (a deliberate choice, differing from CleanDiffuser): with ``steps`` = S <= T the
model is evaluated at the S indices round(linspace(T-1, 0, S)) and the last move goes to the
*clean* end point (alpha' = 1, sigma' = 0), where (3)-(5) all return x0_hat. So every one of the S
network evaluations moves the sample, and S = T is exactly DDPM over all T steps (the official
Diffusion-QL / IDQL convention). CleanDiffuser instead uses linspace(0, T-1, S+1) and stops at
index 0 returning x_0 itself; with T = S = 5 its last iteration is a 0 -> 0 no-op (algorithms.md
section 1.3), i.e. 4 effective moves ending at sigma_0 ~ 0.006 (cosine) and one wasted network
call. We do not replicate that: for the cosine schedule the difference is one extra, tiny
denoising move (sigma 0.006 -> 0); for VP it is the difference between ending at sigma_0 = 0.44
and ending at the clean sample.

Prediction clip (``clip_x0``, CleanDiffuser's ``clip_pred``): at every step the implied x0_hat is
clipped to the action bounds ``clip`` and eps_hat recomputed from (2). Guidance (classifier form,
CleanDiffuser ``classifier_guidance``) acts on eps before the clip:

      eps_hat <- eps_hat - guidance_scale * sigma_k * guidance(x_k, k)                            (6)

Step API (as diffusers' schedulers): ``make_sampler(solver, sched, steps, ...)`` returns a
``Sampler`` (``DDPMSampler``, ``DPMSolver1Sampler``, ``DPMSolver2MSampler``) with ``timesteps`` (the
levels the caller loops over), ``init_noise`` and ``step(model_output, i, x, generator=...) ->
StepOutput(prev_sample, x0_pred)``; the caller owns the loop and the guidance (``Sampler.guide``
applies (6) to eps_hat before ``step``). :func:`sample` is that loop. DDPM options beyond (3):
``variance="beta"`` injects 1 - (alpha/alpha')^2 (= beta_k, SWG-J / IDQL) instead of s^2,
``noise_scale`` multiplies the injected noise, and ``mean="eps"`` forms the same posterior mean as
(x - beta_k/sigma_k eps_hat)/sqrt(1 - beta_k) (adjacent levels only; SWG's sampler).

Gradients flow through the whole chain unless the caller runs under ``torch.no_grad`` (DQL
backpropagates its Q-loss through all steps); per-step coefficients are precomputed Python floats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Literal, NamedTuple

import torch
from torch import Tensor

from rl_core.errors import ConfigError

ModelFn = Callable[[Tensor, Tensor, Tensor], Tensor]  # model_fn(x_t (B, d), k float (B,), cond (B, c)) -> (B, d)
GuidanceFn = Callable[[Tensor, Tensor], Tensor]  # guidance(x_t (B, d), k float (B,)) -> d log h / d x_t (B, d)

SCHEDULES = ("cosine", "vp", "linear")
SOLVERS = ("ddpm", "dpm_solver_1", "dpm_solver_2m")
PREDICTS = ("eps", "x0")


# ----- schedules -----------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class NoiseSchedule:
    """Discrete noise schedule of T levels, k = 0..T-1 (k = 0 the least noisy).

    alphas: (T,) signal scale alpha_k = sqrt(alphabar_k); sigmas: (T,) sqrt(1 - alpha_k^2).
    Both float32 on CPU; the samplers move what they need to the data's device.
    """

    kind: str
    T: int
    alphas: Tensor
    sigmas: Tensor

    @property
    def alphabar(self) -> Tensor:
        """(T,) cumulative signal fraction alphabar_k = alpha_k^2."""
        return self.alphas**2

    @property
    def betas(self) -> Tensor:
        """(T,) per-step DDPM betas, beta_k = 1 - alphabar_k / alphabar_{k-1} (alphabar_{-1} = 1)."""
        ab = self.alphabar.double()
        prev = torch.cat([ab.new_ones(1), ab[:-1]])
        return (1 - ab / prev).float()


def make_schedule(
    kind: Literal["cosine", "vp", "linear"],
    T: int,
    *,
    cosine_s: float = 0.008,
    cosine_t_min: float = 1e-3,
    cosine_t_max: float = 0.9946,
    vp_beta_min: float = 0.1,
    vp_beta_max: float = 10.0,
    linear_beta_start: float = 1e-4,
    linear_beta_end: float = 0.02,
) -> NoiseSchedule:
    """Build a schedule of T levels.

    * ``"cosine"`` (CleanDiffuser default, ``cosine_noise_schedule``): t_k = linspace(t_min, 1, T),
      alpha(t) = cos(pi/2 (min(t, t_max) + s)/(1 + s)) / cos(pi/2 s/(1 + s)).
    * ``"vp"`` (official Diffusion-QL / IDQL / SWG): beta_t = 1 - exp(-b_min/T - (b_max - b_min)(2t - 1)/(2 T^2)),
      t = 1..T, alphabar = cumprod(1 - beta).
    * ``"linear"`` (official EDP): beta = linspace(beta_start, beta_end, T) * 1000 / T (needs T > 1000 * beta_end).
    """
    if kind not in SCHEDULES:
        raise ConfigError(f"unknown noise schedule kind={kind!r}; allowed: {', '.join(SCHEDULES)}")
    if not isinstance(T, int) or T < 1:
        raise ConfigError(f"noise schedule T must be a positive integer, got T={T!r}")
    if kind == "cosine":
        t = torch.linspace(cosine_t_min, 1.0, T, dtype=torch.float64).clamp(max=cosine_t_max)
        alphas = torch.cos(math.pi / 2 * (t + cosine_s) / (1 + cosine_s)) / math.cos(math.pi / 2 * cosine_s / (1 + cosine_s))
    else:
        if kind == "vp":
            t = torch.arange(1, T + 1, dtype=torch.float64)
            betas = 1 - torch.exp(-vp_beta_min / T - 0.5 * (vp_beta_max - vp_beta_min) * (2 * t - 1) / T**2)
        else:
            betas = torch.linspace(linear_beta_start, linear_beta_end, T, dtype=torch.float64) * 1000 / T
            if betas.max() >= 1:
                raise ConfigError(f"'linear' schedule needs T > {1000 * linear_beta_end:g} (beta_T = {float(betas.max()):.3f} >= 1), got T={T}")
        alphas = torch.cumprod(1 - betas, 0).sqrt()
    sigmas = (1 - alphas**2).clamp(min=0).sqrt()
    return NoiseSchedule(kind, T, alphas.float(), sigmas.float())


def _per_sample(v: Tensor, k: Tensor, like: Tensor) -> Tensor:
    """Gather v[k] (B,) and shape it to broadcast against `like` (B, ...)."""
    return v.to(like.device, like.dtype)[k].view(-1, *([1] * (like.dim() - 1)))


def add_noise(x0: Tensor, eps: Tensor, k: Tensor, sched: NoiseSchedule) -> Tensor:
    """x_k = alpha_k x0 + sigma_k eps, eq. (1). x0, eps: (B, d); k: (B,) long -> (B, d)."""
    return _per_sample(sched.alphas, k, x0) * x0 + _per_sample(sched.sigmas, k, x0) * eps


def _check(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"unknown {name}={value!r}; allowed: {', '.join(allowed)}")


def _noised(model_fn: ModelFn, x0: Tensor, cond: Tensor, sched: NoiseSchedule, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Draw k ~ U{0..T-1}, eps ~ N(0, I), form x_k (1), evaluate the model: (k, eps, x_k, prediction)."""
    k = torch.randint(0, sched.T, (x0.shape[0],), generator=generator, device=generator.device).to(x0.device)
    eps = torch.randn(x0.shape, generator=generator, device=generator.device, dtype=x0.dtype).to(x0.device)
    x_k = add_noise(x0, eps, k, sched)
    return k, eps, x_k, model_fn(x_k, k.to(x0.dtype), cond)


def diffusion_loss(
    model_fn: ModelFn,
    x0: Tensor,
    cond: Tensor,
    sched: NoiseSchedule,
    *,
    predict: Literal["eps", "x0"],
    generator: torch.Generator,
    weights: Tensor | None = None,
) -> Tensor:
    """Denoising loss: k ~ U{0..T-1}, MSE(eps_hat, eps) or MSE(x0_hat, x0), mean over batch and dims.

    x0: (B, d) clean samples; cond: (B, c); weights: optional (B,) per-sample weights (the loss is
    then mean_b(w_b * mean_d(err^2))). Returns a scalar.
    """
    _check("predict", predict, PREDICTS)
    _, eps, _, pred = _noised(model_fn, x0, cond, sched, generator)
    err = ((pred - (eps if predict == "eps" else x0)) ** 2).flatten(1).mean(1)
    return err.mean() if weights is None else (weights.to(err) * err).mean()


def one_step_x0(
    model_fn: ModelFn,
    x0: Tensor,
    cond: Tensor,
    sched: NoiseSchedule,
    *,
    predict: Literal["eps", "x0"],
    generator: torch.Generator,
    clip: tuple[float, float] | None = None,
) -> tuple[Tensor, Tensor]:
    """EDP action approximation: k ~ U{0..T-1}, x_k by (1), x0_hat from one model call via (2).

    x0: (B, d); cond: (B, c). Returns (x0_hat (B, d), k (B,) long). Gradients flow to the model.
    ``clip`` (e.g. (-1, 1), official EDP) clamps x0_hat; None keeps it unclipped (CleanDiffuser EDP).
    """
    _check("predict", predict, PREDICTS)
    k, _, x_k, pred = _noised(model_fn, x0, cond, sched, generator)
    x0_hat = pred if predict == "x0" else (x_k - _per_sample(sched.sigmas, k, x0) * pred) / _per_sample(sched.alphas, k, x0)
    return (x0_hat if clip is None else x0_hat.clamp(*clip)), k


# ----- sampling ------------------------------------------------------------------------------
def step_indices(T: int, steps: int) -> list[int]:
    """The S = ``steps`` noise levels the sampler visits, descending from T-1 to 0: round(linspace(T-1, 0, S)).

    After the last index the sampler moves to the clean end point (see the module docstring).
    """
    if not isinstance(steps, int) or not 1 <= steps <= T:
        raise ConfigError(f"sampling steps must be an integer in [1, T={T}], got steps={steps!r}")
    return torch.linspace(T - 1, 0, steps, dtype=torch.float64).round().long().tolist()


class StepOutput(NamedTuple):
    """One sampler step from level i to level i + 1 of the step schedule."""

    prev_sample: Tensor  # (B, d) the sample at the next level (the clean point after the last step, clipped to ``clip``)
    x0_pred: Tensor  # (B, d) x0_hat at the current level (after the prediction clip)


class Sampler:
    """The level sequence and the ``step`` of one solver; the caller owns the loop (as diffusers' schedulers).

    ``timesteps`` are the S = ``steps`` (default T) levels of :func:`step_indices`; step i moves the
    sample from level ``timesteps[i]`` to level ``timesteps[i + 1]`` (the clean point after the last).
    ``step`` takes the model output at the current level in the ``predict`` parametrisation, turns it
    into eps_hat (2), clips the implied x0_hat to ``clip`` (``clip_x0``; eps_hat recomputed by (2))
    and applies the solver's update; the last step clips its result to ``clip`` (None: no clipping
    anywhere). Guidance is the caller's: ``eps = sampler.guide(sampler.to_eps(out, i, x), i, grad,
    scale)`` (6) and then ``step(eps, i, x, predict="eps")``. Per-loop state (DPM-Solver++(2M)'s
    previous x0_hat) lives in the sampler, so one sampler runs one loop at a time, steps in order
    i = 0, 1, ... Coefficients are Python floats computed once (float64 from the schedule's float32
    values). A loop, as :func:`sample` runs it::

        sampler = make_sampler("dpm_solver_2m", sched, 15, predict="x0")
        x = sampler.init_noise((B, d), generator, temperature).to(cond)
        for i, k in enumerate(sampler.timesteps):
            x = sampler.step(model_fn(x, torch.full((B,), float(k)), cond), i, x, generator=generator).prev_sample
    """

    solver: ClassVar[str]

    def __init__(self, sched: NoiseSchedule, steps: int | None = None, *, predict: Literal["eps", "x0"] = "eps",
                 clip: tuple[float, float] | None = (-1.0, 1.0), clip_x0: bool = True) -> None:
        _check("predict", predict, PREDICTS)
        ks = step_indices(sched.T, sched.T if steps is None else steps)
        alphas, sigmas = sched.alphas.double().tolist(), sched.sigmas.double().tolist()
        self.sched, self.predict, self.clip, self.clip_x0 = sched, predict, clip, clip_x0
        self.timesteps: tuple[int, ...] = tuple(ks)
        # (alpha, sigma) of the visited levels, then the clean end point
        self.levels: tuple[tuple[float, float], ...] = tuple((alphas[k], sigmas[k]) for k in ks) + ((1.0, 0.0),)

    def __len__(self) -> int:
        return len(self.timesteps)

    def alpha(self, i: int) -> float:
        """alpha at level ``timesteps[i]``."""
        return self.levels[i][0]

    def sigma(self, i: int) -> float:
        """sigma at level ``timesteps[i]``."""
        return self.levels[i][1]

    @staticmethod
    def init_noise(shape: tuple[int, ...], generator: torch.Generator, temperature: float = 1.0) -> Tensor:
        """x_T = temperature * N(0, I) of ``shape``, drawn on the generator's device in the default dtype."""
        return temperature * torch.randn(shape, generator=generator, device=generator.device)

    def to_eps(self, model_output: Tensor, i: int, x: Tensor) -> Tensor:
        """eps_hat at level i from the model output in the ``predict`` parametrisation, eq. (2)."""
        if self.predict == "eps":
            return model_output
        a, s = self.levels[i]
        return (x - a * model_output) / s

    def guide(self, eps: Tensor, i: int, grad: Tensor, scale: float = 1.0) -> Tensor:
        """Classifier guidance (6): eps_hat - scale * sigma_i * grad, grad = d log h / d x_k (B, d)."""
        return eps - scale * self.levels[i][1] * grad

    def step(self, model_output: Tensor, i: int, x: Tensor, *, generator: torch.Generator | None = None,
             predict: Literal["eps", "x0"] | None = None) -> StepOutput:
        """Move x (B, d) at level ``timesteps[i]`` to the next level given the model output there.

        ``predict`` overrides the sampler's parametrisation of ``model_output`` (``"eps"`` after
        guidance). ``generator`` feeds the injected noise (DDPM only). Differentiable.
        """
        n = len(self.timesteps)
        if not 0 <= i < n:
            raise ConfigError(f"sampler step index i={i} is out of range; allowed: 0..{n - 1}")
        a, s = self.levels[i]
        predict = predict or self.predict
        if predict == "eps":
            eps = model_output
        elif predict == "x0":
            eps = (x - a * model_output) / s
        else:
            raise ConfigError(f"unknown predict={predict!r}; allowed: {', '.join(PREDICTS)}")
        x0 = (x - s * eps) / a
        if self.clip_x0 and self.clip is not None:
            x0 = x0.clamp(*self.clip)
            eps = (x - a * x0) / s
        x = self._update(i, x, x0, eps, generator)
        if i == n - 1 and self.clip is not None:
            x = x.clamp(*self.clip)
        return StepOutput(x, x0)

    def _update(self, i: int, x: Tensor, x0: Tensor, eps: Tensor, generator: torch.Generator | None) -> Tensor:
        raise NotImplementedError


class DDPMSampler(Sampler):
    """Ancestral sampling (``"ddpm"``): the posterior mean plus injected noise.

    ``variance`` of the noise: ``"posterior"`` s^2 of eq. (3) (beta_tilde; CleanDiffuser's ``ddpm``)
    or ``"beta"`` 1 - (alpha/alpha')^2 (= beta_k between adjacent levels; SWG-J / IDQL). The noise
    standard deviation is multiplied by ``noise_scale`` (SWG's temperature); noise is drawn whenever
    the unscaled one is > 0, so the draws do not depend on ``noise_scale``. ``mean`` is how the
    posterior mean is formed (equal in exact arithmetic, not in floats):

    * ``"x0"``  alpha' x0_hat + sqrt(sigma'^2 - s^2) eps_hat, eq. (3) with the posterior s, any ``steps``;
    * ``"eps"`` (x - beta_k / sigma_k eps_hat) / sqrt(1 - beta_k) with the schedule's betas (Ho et al.
      eq. 11, SWG-J / IDQL ``ddpm_sampler``): adjacent levels only, so ``steps`` must be T.
    """

    solver: ClassVar[str] = "ddpm"

    def __init__(self, sched: NoiseSchedule, steps: int | None = None, *, predict: Literal["eps", "x0"] = "eps",
                 clip: tuple[float, float] | None = (-1.0, 1.0), clip_x0: bool = True,
                 variance: Literal["posterior", "beta"] = "posterior", mean: Literal["x0", "eps"] = "x0",
                 noise_scale: float = 1.0) -> None:
        super().__init__(sched, steps, predict=predict, clip=clip, clip_x0=clip_x0)
        _check("variance", variance, ("posterior", "beta"))
        _check("mean", mean, ("x0", "eps"))
        self.variance, self.mean, self.noise_scale = variance, mean, noise_scale
        n = len(self.timesteps)
        if mean == "eps":
            if self.timesteps != tuple(range(sched.T - 1, -1, -1)):
                raise ConfigError(f"DDPM mean='eps' steps between adjacent levels: needs steps = T = {sched.T}, "
                                  f"got steps={steps}")
            sigmas, betas = sched.sigmas.tolist(), sched.betas.tolist()
            noise_var = [b * (sigmas[k - 1] ** 2 / sigmas[k] ** 2 if variance == "posterior" and k > 0 else 1.0)
                         for k, b in enumerate(betas)]
            self._coefs = [(betas[k] / sigmas[k], (1.0 - betas[k]) ** 0.5) for k in self.timesteps]
            self._std = [noise_var[k] ** 0.5 if k > 0 else 0.0 for k in self.timesteps]
        else:
            self._coefs, self._std = [], []
            for i in range(n):
                (a, s), (a1, s1) = self.levels[i], self.levels[i + 1]
                last = i == n - 1
                std = 0.0 if last else (s1 / s) * math.sqrt(max(1 - (a / a1) ** 2, 0.0))  # posterior, eq. (3)
                self._coefs.append((a1, math.sqrt(max(s1**2 - std**2, 0.0))))
                self._std.append(std if variance == "posterior" or last else math.sqrt(max(1 - (a / a1) ** 2, 0.0)))

    def _update(self, i: int, x: Tensor, x0: Tensor, eps: Tensor, generator: torch.Generator | None) -> Tensor:
        c0, c1 = self._coefs[i]
        x = (x - c0 * eps) / c1 if self.mean == "eps" else c0 * x0 + c1 * eps
        std = self._std[i]
        if std > 0:
            if generator is None:
                raise ConfigError("the DDPM step injects noise: pass generator=")
            x = x + self.noise_scale * std * torch.randn(x.shape, generator=generator, device=generator.device,
                                                         dtype=x.dtype).to(x.device)
        return x


class DPMSolver1Sampler(Sampler):
    """First-order DPM-Solver (``"dpm_solver_1"``) = deterministic DDIM, eq. (4)."""

    solver: ClassVar[str] = "dpm_solver_1"

    def __init__(self, sched: NoiseSchedule, steps: int | None = None, *, predict: Literal["eps", "x0"] = "eps",
                 clip: tuple[float, float] | None = (-1.0, 1.0), clip_x0: bool = True) -> None:
        super().__init__(sched, steps, predict=predict, clip=clip, clip_x0=clip_x0)
        # x' = (sigma'/sigma) x + (alpha' - alpha sigma'/sigma) D, eq. (5) with D = x0_hat
        self._coefs = [(s1 / s, a1 - a * s1 / s) for (a, s), (a1, s1) in zip(self.levels[:-1], self.levels[1:])]

    def _d(self, i: int, x0: Tensor) -> Tensor:
        return x0

    def _update(self, i: int, x: Tensor, x0: Tensor, eps: Tensor, generator: torch.Generator | None) -> Tensor:
        c0, c1 = self._coefs[i]
        return c0 * x + c1 * self._d(i, x0)


class DPMSolver2MSampler(DPMSolver1Sampler):
    """DPM-Solver++(2M) (``"dpm_solver_2m"``), eq. (5); first order on the first move and the last two.

    State: the previous step's x0_hat (``step`` must run i = 0, 1, ... in order).
    """

    solver: ClassVar[str] = "dpm_solver_2m"

    def __init__(self, sched: NoiseSchedule, steps: int | None = None, *, predict: Literal["eps", "x0"] = "eps",
                 clip: tuple[float, float] | None = (-1.0, 1.0), clip_x0: bool = True) -> None:
        super().__init__(sched, steps, predict=predict, clip=clip, clip_x0=clip_x0)
        lv = self.levels
        hs = [math.log(a1 / s1) - math.log(a / s) for (a, s), (a1, s1) in zip(lv[:-2], lv[1:-1])]  # h_i, eq. (5)
        n = len(self.timesteps)
        # r_i = h_{i-1} / h_i where the second-order update applies (lower_order_final: not the last two moves)
        self._r = [hs[i - 1] / hs[i] if 0 < i < n - 2 and hs[i - 1] > 0 and hs[i] > 0 else None for i in range(n)]
        self._x0_prev: tuple[int, Tensor] | None = None  # (i, x0_hat) of the last step taken

    def _d(self, i: int, x0: Tensor) -> Tensor:
        r, prev = self._r[i], self._x0_prev
        self._x0_prev = (i, x0)
        if r is None:
            return x0
        if prev is None or prev[0] != i - 1:
            raise ConfigError(f"DPM-Solver++(2M) steps run in order i = 0, 1, ...: step i={i} "
                              f"follows {'no step' if prev is None else f'step i={prev[0]}'}")
        return (1 + 0.5 / r) * x0 - (0.5 / r) * prev[1]


SAMPLERS: dict[str, type[Sampler]] = {c.solver: c for c in (DDPMSampler, DPMSolver1Sampler, DPMSolver2MSampler)}


def make_sampler(solver: Literal["ddpm", "dpm_solver_1", "dpm_solver_2m"], sched: NoiseSchedule,
                 steps: int | None = None, **kwargs: Any) -> Sampler:
    """A fresh sampler of ``solver`` over ``steps`` (default T) levels of ``sched``.

    kwargs: predict, clip, clip_x0 (all solvers); variance, mean, noise_scale (``"ddpm"``).
    """
    _check("solver", solver, SOLVERS)
    return SAMPLERS[solver](sched, steps, **kwargs)


def sample(
    model_fn: ModelFn,
    cond: Tensor,
    shape: tuple[int, ...],
    sched: NoiseSchedule,
    *,
    solver: Literal["ddpm", "dpm_solver_1", "dpm_solver_2m"] = "ddpm",
    steps: int | None = None,
    predict: Literal["eps", "x0"] = "eps",
    generator: torch.Generator,
    temperature: float = 1.0,
    clip: tuple[float, float] | None = (-1.0, 1.0),
    clip_x0: bool = True,
    guidance: GuidanceFn | None = None,
    guidance_scale: float = 0.0,
    x_T: Tensor | None = None,
) -> Tensor:
    """Draw samples x_0 of ``shape`` = (B, d) conditioned on ``cond`` (B, c): a loop over :meth:`Sampler.step`.

    x_T = temperature * N(0, I) from ``generator`` (on the generator's device, moved to cond's),
    or the given ``x_T`` (B, d). Visits the ``steps`` (default T) levels of :func:`step_indices`
    with the chosen ``solver`` (eqs. 3-5); at each level the prediction is turned into eps_hat,
    guided by (6) when ``guidance`` is given and ``guidance_scale`` != 0, and (``clip_x0``) clipped so
    that x0_hat lies in ``clip``. The result is clipped to ``clip`` (None: no clipping anywhere).
    ``guidance`` is called as guidance(x_k (B, d), k (B,) float); it must enable grad itself if it
    differentiates a critic while the caller samples under no_grad. Returns (B, d).
    """
    sampler = make_sampler(solver, sched, steps, predict=predict, clip=clip, clip_x0=clip_x0)
    if len(shape) != 2 or shape[0] != cond.shape[0]:
        raise ConfigError(f"sample shape must be (B, d) with B = cond.shape[0] = {cond.shape[0]}, got shape={tuple(shape)}")
    if x_T is None:
        x_T = sampler.init_noise(shape, generator, temperature)
    elif tuple(x_T.shape) != tuple(shape):
        raise ConfigError(f"x_T has shape {tuple(x_T.shape)}, expected shape={tuple(shape)}")
    x = x_T.to(cond.device, cond.dtype)
    guided = guidance is not None and guidance_scale != 0
    for i, k in enumerate(sampler.timesteps):
        k_in = torch.full((1,), float(k), device=x.device, dtype=x.dtype).expand(shape[0])  # (B,), stride 0
        eps = sampler.to_eps(model_fn(x, k_in, cond), i, x)
        if guided:
            eps = sampler.guide(eps, i, guidance(x, k_in), guidance_scale)
        x = sampler.step(eps, i, x, generator=generator, predict="eps").prev_sample
    return x
