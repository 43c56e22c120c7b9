"""SWG: Diffusion Self-Weighted Guidance (Tagle, Ruiz-del-Solar, Tobar; arXiv 2505.18345).

Target policy pi(a|s) ∝ w(s, a) mu(a|s), w ∈ (0, 1] a fixed function of the advantage of an IQL
critic (``rl_core/swg_weights.py``). One denoiser eps_theta(z_k, k, s) diffuses the joint
z = (a, w) ∈ R^{|A|+1} with one VP schedule (alpha_k = sqrt(alphabar_k), sigma_k = sqrt(1 - alphabar_k)):

    z_k = alpha_k z_0 + sigma_k eps,   k ~ U{0..T-1},  eps ~ N(0, I)                           (1)
    L   = E_b [ sum_d (eps_theta(z_k, k, s) - eps)_d^2 ]   (action and weight dims weighted equally)  (2)

Since the tilted joint w·p(z|s) has action marginal ∝ pi and both coordinates share the kernel,
for every k  ∇ log pi_k(z_k) = ∇ log p_k(z_k) + ∇_{z_k} log E[W_0 | z_k]  (algorithms.md §7.1).
The conditional mean comes from the same network by Tweedie's formula on the weight coordinate:

    w0_hat(z_k) = clip((z_k[w] - sigma_k eps_theta(z_k)[w]) / alpha_k, w_min, 1)                (3)
    g           = ∇_{z_k} log w0_hat(z_k)       (w.r.t. all of z_k; NaN -> 0; optional |g| clip)  (4)
    eps_tilde   = eps_theta - s · sigma_k · g                                                   (5)

followed by the DDPM step of SWG-J / IDQL (per-step beta_k = 1 - alphabar_k / alphabar_{k-1};
``diffusion.DDPMSampler(mean="eps", variance="beta", noise_scale=temp)``):

    z_{k-1} = (z_k - beta_k / sigma_k · eps_tilde) / sqrt(1 - beta_k) + 1[k > 0] sqrt(beta_k) · temp · xi   (6)

with the action coordinates clipped to [-1, 1] and the weight to [w_min, 1] after every step;
z_T = temp · N(0, I). s = 1 is exact guidance; s != 1 sharpens heuristically (p_k E[W_0|z_k]^s).
s and temp are inference parameters (``sample_with(self_guidance_scale=s)`` / ``self_guided_sample``),
searchable without retraining. SWG-R draws n samples per state and keeps the best: rl_core.inference
selects by Q (SWG-J) or, with ``sample_with(..., return_aux=True)`` returning the sampled weight
coordinate, by predicted weight (SWG-P ``select_better``).

Training-guidance modes (critic -> weights -> actor, guidance-first by construction):
- ``frozen``: a pretrained IQL artifact, frozen; w = weight_fn(Q(s,a) - V(s)) per minibatch. This is
  deterministic given the critic, so it equals the dataset column ``swg_weights.weight_column``.
  Every snapshot holds the critic and ``cfg.weights``, so the column is reproducible from it;
  ``swg_weights.save_weight_column`` writes it explicitly (``swg_weights.npy`` + ``.json``).
- ``joint``: the algorithm's own IQL critic is trained alone for ``critic_steps`` steps by the training
  loop's critic phase (the same code as guidance pretraining, ``rl_core.train``), then frozen; the
  ``steps`` of the run are diffusion steps that follow. A run resumed from a diffusion-phase
  checkpoint restores the trained critic and skips the phase.
- ``unfrozen``: a pretrained IQL critic keeps training alongside; weights follow the current critic.
- ``none``: w ≡ 1 (behaviour cloning of the joint; the no-guidance control), an IQL critic trained
  alongside (available for SWG-R selection at inference); ``bc``: w ≡ 1 and no critic.
- ``noise`` is refused: the random critic of that mode has no V, so no advantage weight exists.

Deviations from the reference implementation (SWG-J ``atagle123/SWG-JAX``, SWG-P ``SWG-pytorch``):
1. Tweedie factor 1/alpha_k = 1/sqrt(alphabar_k) on the weight coordinate (correct); SWG-J uses
   1/sqrt(alpha_k) of the single step, SWG-P 1 with no clip (algorithms.md §7.7, §10.7).
2. The sampler's ``temperature`` scales z_T and the injected noise of (6) (SWG-J); with temp = 0
   all n SWG-R samples coincide, so SWG-R needs temp > 0 (SWG-J evaluates it with temp 0).
3. Denoiser = ``nets.LNResNet(out_extra_head=True, final_act=True)``: sinusoidal float-step
   embedding + MLP and Mish activations instead of SWG-J's learnable Fourier features (128-d) and
   swish. The weight head MLP(hidden -> hidden -> 1) reads the output of the second-to-last
   residual block (block 2 of 3, as SWG-J).
4. Weights: exponential/linex divided by a fixed bound instead of dataset min-max (swg_weights.py).
5. No 95/5 train/validation split; optional elementwise clip of g (``guidance_clip``, default off).
   ``sample_variance="posterior"`` (off by default) replaces the beta_k noise of (6) by the DDPM
   posterior variance beta_k (1 - alphabar_{k-1}) / (1 - alphabar_k). On the 8-Gaussians toy
   (beta = 2, 3000 steps) it fitted mu no better and matched the target worse at s = 1
   (D^2 0.157 vs 0.039 with beta_k), so the reference beta_k stays the default.
6. LR: cosine annealing to 0 over ``lr_anneal_steps`` (SWG-J: 3M horizon, training stopped at 1M).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from rl_core import diffusion as D
from rl_core.algos.base import DiffusionAlgorithm, DiffusionConfig, check_choice, check_range, seeded_dropout
from rl_core.errors import ConfigError
from rl_core.modes import MODES
from rl_core.nets import LNResNet
from rl_core.swg_weights import WeightConfig, critic_weights
from rl_core.types import Batch


@dataclass(frozen=True)
class SWGConfig(DiffusionConfig):
    """SWG-J D4RL settings (algorithms.md §7.5-7.6) on top of the shared diffusion fields."""

    lr: float = 3e-4  # AdamW learning rate (SWG-J)
    weight_decay: float = 1e-4  # AdamW weight decay (SWG-J / SWG-P)
    lr_anneal_steps: int | None = 3_000_000  # cosine horizon of SWG-J
    T: int = 15  # diffusion steps (SWG)
    schedule: str = "vp"  # VP schedule (SWG)
    sampling_steps: int = 15  # SWG samples with its own DDPM over all T steps; must equal T
    ema_rate: float = 0.999  # SWG-J EMA step 0.001
    ema_every: int = 1
    ema_start: int = 0
    n_candidates: int = 1  # SWG = 1 sample; SWG-R = n_candidates > 1 samples, best kept
    eval_temperature: float = 0.0  # SWG evaluation: z_T = 0, deterministic given s
    select: str = "swg"  # inference default method: swg (self-guided; SWG-R by Q if n_candidates > 1) | none
    hidden: int = 256  # LN-ResNet width
    n_blocks: int = 3  # residual blocks; the weight head reads block n_blocks - 1
    dropout: float = 0.1  # residual-block dropout
    emb_dim: int = 64  # time-embedding width
    expand: int = 4  # residual-block expansion (256 -> 1024)
    critic_steps: int = 500_000  # joint mode only: IQL critic steps before the diffusion phase (SWG-J)
    critic_batch_size: int = 256  # joint mode only: minibatch of that critic phase (SWG-J critic_batch_size)
    guidance_clip: float | None = None  # elementwise clip of g = ∇ log w0_hat; None = off (exact)
    sample_variance: str = "beta"  # DDPM noise variance: beta (SWG-J / IDQL) | posterior (DDPM beta_tilde)
    weights: WeightConfig = field(default_factory=WeightConfig)  # advantage -> weight

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.schedule != "vp" or self.predict != "eps" or self.solver != "ddpm" or self.sampling_steps != self.T:
            raise ConfigError(f"SWG samples by eq. (6) over all T steps of a VP eps-model: need schedule='vp', "
                              f"predict='eps', solver='ddpm', sampling_steps=T={self.T}; got schedule={self.schedule!r}, "
                              f"predict={self.predict!r}, solver={self.solver!r}, sampling_steps={self.sampling_steps}")
        check_choice("select", self.select, ("swg", "none"))
        check_choice("sample_variance", self.sample_variance, ("beta", "posterior"))
        check_range("critic_steps", self.critic_steps, 0)
        check_range("critic_batch_size", self.critic_batch_size, 1)
        check_range("n_blocks", self.n_blocks, 2)
        if self.guidance_clip is not None:
            check_range("guidance_clip", self.guidance_clip, 0.0)
        if not isinstance(self.weights, WeightConfig):
            raise ConfigError(f"weights must be a WeightConfig, got {type(self.weights).__name__}")

    @classmethod
    def from_dict(cls, d: dict) -> "SWGConfig":
        d = dict(d)
        if isinstance(d.get("weights"), dict):
            d["weights"] = WeightConfig.from_dict(d["weights"])
        return super().from_dict(d)


def swg_loss(denoiser: nn.Module, obs_n: Tensor, act: Tensor, w: Tensor, sched: D.NoiseSchedule,
             generator: torch.Generator) -> tuple[Tensor, dict[str, float]]:
    """Eq. (2) on z_0 = [act, w]: obs_n (B, obs_dim), act (B, A), w (B,) -> (scalar loss, metrics)."""
    z0 = torch.cat([act, w[:, None]], dim=-1)
    k = torch.randint(0, sched.T, (len(z0),), generator=generator, device=generator.device).to(z0.device)
    eps = torch.randn(z0.shape, generator=generator, device=generator.device).to(z0)
    err = (denoiser(D.add_noise(z0, eps, k, sched), k.to(z0.dtype), obs_n) - eps) ** 2
    loss = err.sum(-1).mean()
    return loss, {"loss/actor": loss.item(), "loss/action": err[:, :-1].sum(-1).mean().item(),
                  "loss/weight": err[:, -1].mean().item()}


def swg_sample(denoiser: nn.Module, obs_n: Tensor, generator: torch.Generator, sched: D.NoiseSchedule, *,
               act_dim: int, temperature: float, scale: float, w_min: float, guidance_clip: float | None = None,
               variance: str = "beta",
               guidance_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
               guidance_scale: float = 0.0) -> tuple[Tensor, Tensor]:
    """Self-guided DDPM, eqs. (3)-(6): obs_n (M, obs_dim) -> (actions (M, act_dim), weights (M,)).

    A loop over ``diffusion.DDPMSampler(mean="eps")`` steps (eq. 6, all T levels, no prediction
    clip); the self-guidance (3)-(5) is this loop's modification of the model output. ``scale`` = s
    of eq. (5); s = 0 skips the gradient and is plain DDPM. ``guidance_fn(a_k (M, A), k (M,))`` ->
    d log h / d a_k, if given, adds ``guidance_scale`` times that to g on the action coordinates
    (critic-gradient guidance; 0 on the weight). ``variance`` of the injected noise: "beta" = beta_k
    (eq. 6), "posterior" = beta_k (1 - alphabar_{k-1}) / (1 - alphabar_k). Runs with grad only for
    g; returns detached tensors.
    """
    M, dev = len(obs_n), obs_n.device
    sampler = D.DDPMSampler(sched, predict="eps", clip=None, variance=variance, mean="eps", noise_scale=temperature)
    z = sampler.init_noise((M, act_dim + 1), generator, temperature).to(obs_n)
    lo = torch.tensor([-1.0] * act_dim + [w_min], device=dev)
    hi = torch.ones(act_dim + 1, device=dev)
    for i, k in enumerate(sampler.timesteps):
        kk = torch.full((M,), float(k), device=dev, dtype=obs_n.dtype)
        with torch.enable_grad():
            z_in = z.detach().requires_grad_(scale != 0)
            eps = denoiser(z_in, kk, obs_n)
            g = torch.zeros_like(z)
            if scale != 0:  # (3)-(4): g = grad log w0_hat, Tweedie on the weight coordinate
                w0 = ((z_in[:, -1] - sampler.sigma(i) * eps[:, -1]) / sampler.alpha(i)).clamp(w_min, 1.0)
                g = torch.nan_to_num(torch.autograd.grad(w0.log().sum(), z_in)[0], nan=0.0, posinf=0.0, neginf=0.0)
                g = scale * (g if guidance_clip is None else g.clamp(-guidance_clip, guidance_clip))
        if guidance_fn is not None and guidance_scale != 0:
            g[:, :-1] += guidance_scale * guidance_fn(z[:, :-1], kk)
        eps = sampler.guide(eps.detach(), i, g)  # (5)
        z = torch.minimum(torch.maximum(sampler.step(eps, i, z, generator=generator).prev_sample, lo), hi).detach()
    return z[:, :-1], z[:, -1]


class SWG(DiffusionAlgorithm):
    """SWG: joint (action, weight) diffusion with self-guidance; weights from an IQL critic."""

    name: ClassVar[str] = "swg"
    Config: ClassVar[type] = SWGConfig
    self_guided: ClassVar[bool] = True
    requires: ClassVar[frozenset[str]] = frozenset({"q", "v"})
    default_guidance_kind: ClassVar[str] = "iql"
    modes: ClassVar[tuple[str, ...]] = tuple(m for m, v in MODES.items() if v.critic != "random")  # a random critic has no V

    @property
    def critic_phase_steps(self) -> int:
        """Joint mode: the fresh IQL critic is trained alone for ``critic_steps`` steps first (SWG-J), by the
        training loop's critic phase (``rl_core.train``), then frozen; 0 in every other mode."""
        return self.cfg.critic_steps if self.mode.critic == "fresh" and self.mode.guides_actor else 0

    @property
    def trains_guidance(self) -> bool:
        """The critic is updated alongside the diffusion model (unfrozen, none) — not a joint critic, which
        the loop's critic phase trains first."""
        return super().trains_guidance and not self.critic_phase_steps

    def batch_weights(self, batch: Batch) -> Tensor:
        """w(s, a) of the batch rows (B,): from the critic (Q - V), or 1 when the mode does not guide the actor."""
        if not self.mode.guides_actor:
            return torch.ones(len(batch.act), device=batch.act.device)
        return critic_weights(self.guidance, batch.obs, batch.act, self.cfg.weights)

    def update(self, batch: Batch, generator: torch.Generator) -> dict[str, float]:
        """One diffusion step of eq. (2), preceded by an IQL step when the mode trains the critic alongside
        (unfrozen, none). batch: obs (B, obs_dim), act (B, A), ... Returns slash-keyed metrics."""
        with self.autocast():
            metrics = self.guidance.update(batch) if self.trains_guidance else {}
        w = self.batch_weights(batch)  # float32 in every precision: the stored weight column (frozen critic) is these
        with self.autocast():
            metrics = {**metrics, **self.diffusion_update(batch.obs, batch.act, w, generator)}
        return {**metrics, "swg/w_mean": w.mean().item(), "swg/w_std": w.std().item() if len(w) > 1 else 0.0}

    def diffusion_update(self, obs_n: Tensor, act: Tensor, w: Tensor, generator: torch.Generator) -> dict[str, float]:
        """One AdamW + EMA step of eq. (2) on given weights: obs_n (B, obs_dim), act (B, A), w (B,)."""
        self.net.train()
        with seeded_dropout(generator):
            loss, metrics = swg_loss(self.net, obs_n, act, w, D.make_schedule("vp", self.cfg.T), generator)
        return {**metrics, **self._actor_step(loss)}

    # ----- acting -----------------------------------------------------------------------------
    @classmethod
    def build_denoiser(cls, cfg: SWGConfig, obs_dim: int, act_dim: int) -> nn.Module:
        """LN-ResNet over z = (a, w): forward(z_k (B, A+1), k (B,) float, obs_n (B, obs_dim)) -> eps (B, A+1)."""
        net = LNResNet(obs_dim, act_dim, hidden=cfg.hidden, n_blocks=cfg.n_blocks, dropout=cfg.dropout,
                       out_extra_head=True, final_act=True, emb_dim=cfg.emb_dim, expand=cfg.expand)
        net.x_dim = act_dim + 1  # the sampled dimension (base.build_denoiser contract)
        return net

    @classmethod
    def sample_with(cls, cfg: SWGConfig, denoiser: nn.Module, obs_n: Tensor, generator: torch.Generator, *, n: int,
                    temperature: float, guidance_fn: Callable | None = None, guidance_scale: float = 0.0,
                    self_guidance_scale: float | None = None,
                    return_aux: bool = False) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
        """SWG / SWG-R samples: obs_n (B, obs_dim) -> actions (B, n, A) [, {"weight": sampled weights (B, n)}].

        ``self_guidance_scale`` = s of eq. (5) (None = 0: unguided samples of the action marginal),
        ``temperature`` of z_T and of the DDPM noise; ``guidance_fn`` adds critic-gradient guidance
        (``swg_sample``). The B·n chains run batched (obs repeated n times, row-major). Evaluation
        mode (dropout off) during sampling. ``return_aux``: also the sampled weight coordinate, for
        SWG-R selection by predicted weight (SWG-P ``select_better``).
        """
        was_training = denoiser.training
        denoiser.eval()
        try:
            B, act_dim = len(obs_n), int(denoiser.x_dim) - 1
            a, w = swg_sample(denoiser, obs_n.repeat_interleave(n, dim=0), generator, D.make_schedule("vp", cfg.T),
                              act_dim=act_dim, temperature=temperature, scale=self_guidance_scale or 0.0,
                              w_min=cfg.weights.w_min, guidance_clip=cfg.guidance_clip, variance=cfg.sample_variance,
                              guidance_fn=guidance_fn, guidance_scale=guidance_scale)
        finally:
            denoiser.train(was_training)
        a = a.reshape(B, n, act_dim)
        return (a, {"weight": w.reshape(B, n)}) if return_aux else a

    @classmethod
    def self_guided_sample(cls, cfg: SWGConfig, denoiser: nn.Module, obs_n: Tensor, generator: torch.Generator, *,
                           n: int, temperature: float, scale: float, return_weights: bool = False,
                           guidance_fn: Callable | None = None, guidance_scale: float = 0.0) -> Tensor | tuple[Tensor, Tensor]:
        """``sample_with`` at self-guidance scale ``scale``: actions (B, n, A) [, sampled weights (B, n)]."""
        out = cls.sample_with(cfg, denoiser, obs_n, generator, n=n, temperature=temperature, guidance_fn=guidance_fn,
                              guidance_scale=guidance_scale, self_guidance_scale=scale, return_aux=return_weights)
        return (out[0], out[1]["weight"]) if return_weights else out

    def guided_sample(self, obs_n: Tensor, generator: torch.Generator, *, n: int = 1, temperature: float,
                      scale: float, ema: bool = True) -> Tensor:
        """``self_guided_sample`` with this algorithm's (EMA) denoiser: (B, n, A)."""
        return self.self_guided_sample(self.cfg, self.denoiser(ema), obs_n, generator, n=n,
                                       temperature=temperature, scale=scale)
