"""2-D toy tasks for checking exact guidance (the CEP / SWG toy experiments), and the distance used.

Behaviour distribution mu(x) on R^2 (``8gaussians``: eight N(c_j, 0.5^2 I) on a circle of radius 4;
``spiral``: a noisy two-turn spiral of radius ~4). Energy E(x) = clip(<x, u> / 4, -1, 1) with
u = (1, 1)/sqrt(2), weight

    w_beta(x) = exp(beta (E(x) - 1)) ∈ [exp(-2 beta), 1],                                         (1)

so the exact guided target is pi_beta(x) ∝ w_beta(x) mu(x). Target samples are drawn by sampling
importance resampling: a fresh behaviour pool of ``pool_factor`` x n points, resampled n times with
probabilities ∝ w_beta (sampling with replacement).

Distance: the squared energy distance (Székely & Rizzo)

    D^2(X, Y) = 2 E|X - Y| - E|X - X'| - E|Y - Y'|,                                              (2)

with U-statistics for the within-sample terms (unbiased, so D^2 of two samples of one distribution
is ~0 and can be slightly negative). The noise floor is the distribution of D^2 between two
independent target samples of the same size (a parametric bootstrap): a model whose distance to
the target lies inside it is indistinguishable from the target at that sample size.

``run_toy`` fits an SWG model (rl_core.algos.swg) on (x, w_beta(x)) with no observation and
compares samples at s = 1 (exact guidance) and s = 0 (unguided, = behaviour) with the target; the
distance of the s = 0 samples to the behaviour (``d_fit``) tells how much of the remaining gap is
model fit rather than guidance.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import torch

from rl_core.errors import ConfigError

ToyTask = Literal["8gaussians", "spiral"]
TOY_TASKS = ("8gaussians", "spiral")
ENERGY_DIR = np.array([1.0, 1.0]) / np.sqrt(2.0)
ENERGY_SCALE = 4.0
DATA_SCALE = 6.0  # toy points are divided by this for the diffusion model (actions live in [-1, 1])


def behaviour_samples(task: ToyTask, n: int, rng: np.random.Generator) -> np.ndarray:
    """n points of the behaviour distribution mu: (n, 2) float64."""
    if task == "8gaussians":
        angle = rng.integers(0, 8, n) * (np.pi / 4)
        centers = 4.0 * np.stack([np.cos(angle), np.sin(angle)], axis=1)
        return centers + 0.5 * rng.standard_normal((n, 2))
    if task == "spiral":
        t = 4 * np.pi * np.sqrt(rng.random(n)) + 0.5
        curve = (4.0 / (4 * np.pi + 0.5)) * t[:, None] * np.stack([np.cos(t), np.sin(t)], axis=1)
        return curve + 0.15 * rng.standard_normal((n, 2))
    raise ConfigError(f"unknown toy task {task!r}; allowed: {list(TOY_TASKS)}")


def energy(x: np.ndarray) -> np.ndarray:
    """E(x) = clip(<x, u> / 4, -1, 1): (n, 2) -> (n,)."""
    return np.clip(x @ ENERGY_DIR / ENERGY_SCALE, -1.0, 1.0)


def toy_weights(x: np.ndarray, beta: float) -> np.ndarray:
    """Eq. (1): w = exp(beta (E(x) - 1)) ∈ [exp(-2 beta), 1]. (n, 2) -> (n,)."""
    return np.exp(beta * (energy(x) - 1.0))


def target_samples(task: ToyTask, beta: float, n: int, rng: np.random.Generator, pool_factor: int = 20) -> np.ndarray:
    """n samples of pi_beta ∝ w_beta mu by resampling a fresh behaviour pool: (n, 2)."""
    pool = behaviour_samples(task, pool_factor * n, rng)
    w = toy_weights(pool, beta)
    return pool[rng.choice(len(pool), size=n, p=w / w.sum())]


def energy_distance(x: np.ndarray, y: np.ndarray) -> float:
    """Eq. (2), squared energy distance with U-statistic within terms. x (n, d), y (m, d), n, m >= 2."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)

    def mean_dist(a: np.ndarray, b: np.ndarray, same: bool) -> float:
        d = np.sqrt(np.maximum(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1), 0.0))
        return d.sum() / (len(a) * (len(a) - 1)) if same else d.mean()

    return float(2 * mean_dist(x, y, False) - mean_dist(x, x, True) - mean_dist(y, y, True))


def noise_floor(task: ToyTask, beta: float, n: int, rng: np.random.Generator, n_boot: int = 20) -> tuple[float, float]:
    """(mean, 95th percentile) of D^2 between two independent target samples of size n."""
    d = [energy_distance(target_samples(task, beta, n, rng), target_samples(task, beta, n, rng)) for _ in range(n_boot)]
    return float(np.mean(d)), float(np.quantile(d, 0.95))


@dataclass(frozen=True)
class ToyConfig:
    """One toy experiment: data, a small SWG model, the measurement."""

    task: str = "8gaussians"  # 8gaussians | spiral
    beta: float = 2.0  # weight sharpness of eq. (1)
    n_data: int = 20_000  # behaviour samples the model is fitted on
    steps: int = 3000  # diffusion updates
    batch_size: int = 256
    hidden: int = 128  # SWG LN-ResNet width
    n_blocks: int = 2
    T: int = 15  # VP diffusion steps
    lr: float = 1e-3
    ema_rate: float = 0.99
    n_eval: int = 1000  # samples per compared set (model, target)
    n_boot: int = 20  # noise-floor repeats
    temperature: float = 1.0  # sampler temperature (1 = the model's distribution)
    sample_variance: str = "beta"  # SWG sampler noise: beta (SWG-J) | posterior (DDPM beta_tilde)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.task not in TOY_TASKS:
            raise ConfigError(f"toy.task: {self.task!r} is not one of {list(TOY_TASKS)}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ToyResult:
    """Distances (eq. 2) to the exact target; samples in the original toy coordinates (n_eval, 2)."""

    d_guided: float  # D^2(SWG at s = 1, target)
    d_unguided: float  # D^2(SWG at s = 0, target)
    floor_mean: float  # mean D^2 between two independent target samples
    floor_q95: float  # its 95th percentile
    d_fit: float  # D^2(SWG at s = 0, fresh behaviour sample): how well the model fits mu (reference)
    guided: np.ndarray
    unguided: np.ndarray
    target: np.ndarray
    behaviour: np.ndarray


def run_toy(cfg: ToyConfig) -> ToyResult:
    """Fit SWG on (x / DATA_SCALE, w_beta(x)) without observations; measure s = 1 and s = 0 against the target."""
    from rl_core.algos.swg import SWG, SWGConfig

    rng = np.random.default_rng(cfg.seed)
    x = behaviour_samples(cfg.task, cfg.n_data, rng)
    act = torch.as_tensor(x / DATA_SCALE, dtype=torch.float32).clamp(-1, 1)
    w = torch.as_tensor(toy_weights(x, cfg.beta), dtype=torch.float32)
    swg_cfg = SWGConfig(T=cfg.T, sampling_steps=cfg.T, hidden=cfg.hidden, n_blocks=cfg.n_blocks, dropout=0.0,
                        lr=cfg.lr, lr_anneal_steps=cfg.steps, ema_rate=cfg.ema_rate,
                        sample_variance=cfg.sample_variance)
    algo = SWG(swg_cfg, 0, 2, guidance=None, guidance_mode="bc", seed=cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    no_obs = torch.zeros(cfg.batch_size, 0)
    for _ in range(cfg.steps):
        idx = torch.randint(0, len(act), (cfg.batch_size,), generator=gen)
        algo.diffusion_update(no_obs, act[idx], w[idx], gen)
    with torch.no_grad():
        samples = {s: algo.guided_sample(torch.zeros(1, 0), gen, n=cfg.n_eval, temperature=cfg.temperature,
                                         scale=s)[0].numpy() * DATA_SCALE for s in (0.0, 1.0)}
    target = target_samples(cfg.task, cfg.beta, cfg.n_eval, rng)
    floor_mean, floor_q95 = noise_floor(cfg.task, cfg.beta, cfg.n_eval, rng, cfg.n_boot)
    fit = energy_distance(samples[0.0], behaviour_samples(cfg.task, cfg.n_eval, rng))
    return ToyResult(energy_distance(samples[1.0], target), energy_distance(samples[0.0], target), floor_mean,
                     floor_q95, fit, samples[1.0], samples[0.0], target, x[: cfg.n_eval])
