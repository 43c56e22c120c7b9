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

Gradients flow through the whole chain unless the caller runs under ``torch.no_grad`` (DQL
backpropagates its Q-loss through all steps); per-step coefficients are precomputed Python floats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal

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
    """Draw samples x_0 of ``shape`` = (B, d) conditioned on ``cond`` (B, c).

    x_T = temperature * N(0, I) from ``generator`` (on the generator's device, moved to cond's),
    or the given ``x_T`` (B, d). Visits the ``steps`` (default T) levels of :func:`step_indices`
    with the chosen ``solver`` (eqs. 3-5); at each level the prediction is turned into eps_hat,
    guided by (6) when ``guidance`` is given and ``guidance_scale`` != 0, and (``clip_x0``) clipped so
    that x0_hat lies in ``clip``. The result is clipped to ``clip`` (None: no clipping anywhere).
    ``guidance`` is called as guidance(x_k (B, d), k (B,) float); it must enable grad itself if it
    differentiates a critic while the caller samples under no_grad. Returns (B, d).
    """
    _check("solver", solver, SOLVERS)
    _check("predict", predict, PREDICTS)
    ks = step_indices(sched.T, sched.T if steps is None else steps)
    alphas, sigmas = sched.alphas.double().tolist(), sched.sigmas.double().tolist()
    levels = [(alphas[k], sigmas[k]) for k in ks] + [(1.0, 0.0)]  # the clean end point
    hs = [math.log(a1 / s1) - math.log(a / s) for (a, s), (a1, s1) in zip(levels[:-2], levels[1:-1])]  # h_i, eq. (5)
    if len(shape) != 2 or shape[0] != cond.shape[0]:
        raise ConfigError(f"sample shape must be (B, d) with B = cond.shape[0] = {cond.shape[0]}, got shape={tuple(shape)}")
    if x_T is None:
        x_T = temperature * torch.randn(shape, generator=generator, device=generator.device)
    elif tuple(x_T.shape) != tuple(shape):
        raise ConfigError(f"x_T has shape {tuple(x_T.shape)}, expected shape={tuple(shape)}")
    x = x_T.to(cond.device, cond.dtype)
    k_in = {k: torch.full((1,), float(k), device=x.device, dtype=x.dtype).expand(shape[0]) for k in ks}  # (B,), stride 0
    x0_prev = x  # x0_hat of the previous level (set before the first 2M use)
    for i, k in enumerate(ks):
        (a, s), (a1, s1) = levels[i], levels[i + 1]
        pred = model_fn(x, k_in[k], cond)
        eps = pred if predict == "eps" else (x - a * pred) / s
        if guidance is not None and guidance_scale != 0:
            eps = eps - guidance_scale * s * guidance(x, k_in[k])
        x0 = (x - s * eps) / a
        if clip_x0 and clip is not None:
            x0 = x0.clamp(*clip)
            eps = (x - a * x0) / s
        last = i == len(ks) - 1
        if solver == "ddpm":
            std = 0.0 if last else (s1 / s) * math.sqrt(max(1 - (a / a1) ** 2, 0.0))
            x = a1 * x0 + math.sqrt(max(s1**2 - std**2, 0.0)) * eps
            if std > 0:
                x = x + std * torch.randn(x.shape, generator=generator, device=generator.device, dtype=x.dtype).to(x.device)
        else:
            d = x0
            if solver == "dpm_solver_2m" and 0 < i < len(ks) - 2 and hs[i - 1] > 0 and hs[i] > 0:
                r = hs[i - 1] / hs[i]
                d = (1 + 0.5 / r) * x0 - (0.5 / r) * x0_prev
            x = (s1 / s) * x + (a1 - a * s1 / s) * d
            x0_prev = x0
    return x if clip is None else x.clamp(*clip)
