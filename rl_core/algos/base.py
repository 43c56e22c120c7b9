"""Shared machinery of the diffusion-policy algorithms (DQL, IDQL, EDP, SWG).

An algorithm owns one denoiser ε_θ(x_k, k, s) (or x̂₀_θ), its EMA copy, an AdamW optimiser with
cosine LR annealing, and (optionally) a guidance module (critic) passed in by the training loop.
Each algorithm file adds its losses and ``update``; this module holds what they share:

- ``DiffusionConfig``: the optimisation / diffusion / EMA / inference fields every algorithm has
  (CleanDiffuser ``main`` D4RL defaults; subclasses override defaults per algorithm).
- ``DiffusionAlgorithm``: construction, training-guidance modes, EMA, optimiser step, sampling,
  ``state_dict`` / ``load_state_dict`` and the two classmethods that act from a snapshot
  (``build_denoiser``, ``sample_with``: the one sampling entry point) without a training object.
- ``q_policy_loss``: the normalised Q term of DQL / EDP,
  L_q = −Q_i(s, a).mean() / stopgrad(|Q_j(s, a)|.mean()), i ≠ j drawn at random (CD ``main``).

Training-guidance modes (``guidance_mode``): what each means — critic source, trained or not,
in the actor loss or not — is ``rl_core.modes.MODES``; this class reads ``self.mode`` only. A critic
passed in is used as is; with ``guidance=None`` a mode that has a critic gets one from
``rl_core.modes.build_critic`` (the same builder the training loop uses).

Frozen = ``requires_grad_(False)`` (not ``no_grad``), so ∇_a Q still reaches the actions.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from rl_core import diffusion as D
from rl_core import guidance as G
from rl_core.config import PRECISIONS, TRAIN_GUIDANCE_MODES, ConfigMixin, check_choice, check_range  # noqa: F401 (re-exported)
from rl_core.errors import ConfigError
from rl_core.modes import Mode, build_critic, get_mode
from rl_core.nets import autocast
from rl_core.types import Batch

SCHEDULES = ("cosine", "vp", "linear")
PREDICTS = ("eps", "x0")
SOLVERS = ("ddpm", "dpm_solver_1", "dpm_solver_2m")
EMA_WARMUPS = ("hold", "copy")


@dataclass(frozen=True)
class DiffusionConfig(ConfigMixin):
    """Fields shared by every diffusion-policy algorithm (CleanDiffuser ``main`` D4RL defaults)."""

    lr: float = 3e-4  # AdamW learning rate of the denoiser
    weight_decay: float = 0.01  # AdamW decay: CD passes {"lr": 3e-4} only, so torch's default 0.01 applies
    lr_anneal_steps: int | None = 2_000_000  # cosine LR horizon T_max: the recipe's (CD 2M), never a run's length; None = constant
    grad_clip: float | None = None  # max global grad norm of the denoiser; None = no clipping (CD)
    T: int = 5  # diffusion steps of the training schedule
    schedule: str = "cosine"  # noise schedule: cosine | vp | linear
    predict: str = "eps"  # network target: eps | x0
    solver: str = "ddpm"  # sampler: ddpm | dpm_solver_1 | dpm_solver_2m
    sampling_steps: int = 5  # sampler steps S <= T
    ema_rate: float = 0.995  # p_ema <- r p_ema + (1 - r) p
    ema_every: int = 5  # EMA update interval (gradient steps)
    ema_start: int = 1000  # first step with an EMA update
    ema_warmup: str = "hold"  # before ema_start: hold = EMA stays at init (CD, official DQL); copy = EMA tracks the online net
    train_temperature: float = 1.0  # initial-noise temperature of training-time samples (a_new, target a')
    n_candidates: int = 50  # inference default: candidates per observation
    eval_temperature: float = 0.5  # inference default: initial-noise temperature x_T = temp * N(0, I)

    def __post_init__(self) -> None:
        check_choice("schedule", self.schedule, SCHEDULES)
        check_choice("predict", self.predict, PREDICTS)
        check_choice("solver", self.solver, SOLVERS)
        check_choice("ema_warmup", self.ema_warmup, EMA_WARMUPS)
        check_range("T", self.T, 1)
        check_range("sampling_steps", self.sampling_steps, 1, self.T)
        check_range("lr", self.lr, 0.0)
        check_range("weight_decay", self.weight_decay, 0.0)
        check_range("ema_rate", self.ema_rate, 0.0, 1.0)
        check_range("ema_every", self.ema_every, 1)
        check_range("ema_start", self.ema_start, 0)
        check_range("n_candidates", self.n_candidates, 1)
        check_range("eval_temperature", self.eval_temperature, 0.0)
        check_range("train_temperature", self.train_temperature, 0.0)
        if self.lr_anneal_steps is not None:
            check_range("lr_anneal_steps", self.lr_anneal_steps, 1)
        if self.grad_clip is not None:
            check_range("grad_clip", self.grad_clip, 0.0)


def bc_loss(net: nn.Module, batch: Batch, cfg: DiffusionConfig, generator: torch.Generator) -> Tensor:
    """L_bc = E_{k, ε} ‖ε_θ(α_k a + σ_k ε, k, s) − ε‖² (or the x₀-MSE when cfg.predict = "x0"). Scalar.

    batch.act (B, act_dim) are the dataset actions, batch.obs (B, obs_dim) the condition.
    """
    return D.diffusion_loss(net, batch.act, batch.obs, make_schedule(cfg.schedule, cfg.T), predict=cfg.predict,
                            generator=generator)


def q_policy_loss(q_heads: Tensor, i: int, j: int) -> Tensor:
    """Normalised Q term of DQL / EDP: L_q = −Q_i.mean() / stopgrad(|Q_j|.mean()).

    q_heads: (H, B) the critic heads at (s, a_new); CD uses j = 1 − i (the other head), official EDP
    j = i (and weight α = 2). Scalar output.
    """
    return -q_heads[i].mean() / q_heads[j].abs().mean().detach()


@contextlib.contextmanager
def seeded_dropout(generator: torch.Generator) -> Iterator[None]:
    """Run the block with the global torch RNG seeded from ``generator`` and restore it after.

    nn.Dropout draws from the global RNG; seeding it from the explicit generator makes an update a
    function of (state, batch, generator) only, so resumed runs replay exactly.
    """
    seed = int(torch.randint(2**62, (), generator=generator, device=generator.device))
    devices = [generator.device] if generator.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def pick_head(generator: torch.Generator) -> int:
    """i ∈ {0, 1} uniformly from ``generator`` (which twin head carries the gradient)."""
    return int(torch.randint(2, (), generator=generator, device=generator.device))


class DiffusionAlgorithm:
    """Base class: denoiser + EMA + optimiser + guidance handling. Subclasses define ``update``.

    Construct as ``cls(cfg, obs_dim, act_dim, guidance=..., guidance_mode=..., seed=...)``; the
    network initialisation depends on ``seed`` only (the global RNG is restored afterwards).
    """

    name: ClassVar[str]
    Config: ClassVar[type]
    requires: ClassVar[frozenset[str]]  # guidance capabilities needed in training
    default_guidance_kind: ClassVar[str]
    modes: ClassVar[tuple[str, ...]] = TRAIN_GUIDANCE_MODES  # training-guidance modes this algorithm supports
    self_guided: ClassVar[bool] = False  # sample_with takes self_guidance_scale (inference method "swg")

    def __init__(self, cfg: DiffusionConfig, obs_dim: int, act_dim: int, *, guidance: Any | None,
                 guidance_mode: str, seed: int, device: str | torch.device = "cpu", precision: str = "fp32",
                 compile: bool = False) -> None:
        if not isinstance(cfg, self.Config):
            raise ConfigError(f"{self.name}: config must be {self.Config.__name__}, got {type(cfg).__name__}")
        self.mode: Mode = get_mode(guidance_mode, "guidance_mode")
        check_choice(f"{self.name} guidance_mode", guidance_mode, self.modes)
        self.cfg, self.obs_dim, self.act_dim = cfg, obs_dim, act_dim
        self.guidance_mode, self.device, self.step = guidance_mode, torch.device(device), 0
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.net = self.build_denoiser(cfg, obs_dim, act_dim).to(self.device)
        self.ema = copy.deepcopy(self.net).requires_grad_(False).eval()
        self.optimizer = torch.optim.AdamW(self.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
        self.scheduler = (torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=cfg.lr_anneal_steps)
                          if cfg.lr_anneal_steps else None)
        self.guidance = self._attach_guidance(guidance, seed)
        # parameter lists walked every step, cached once (load_state_dict copies in place)
        self._net_params, self._ema_params = list(self.net.parameters()), list(self.ema.parameters())
        self._critic_params = list(self.guidance.parameters()) if self.guidance is not None else []
        check_choice(f"{self.name} precision", precision, PRECISIONS)
        self.precision, self.compiled = precision, bool(compile)
        if compile:  # in place (state-dict keys unchanged); compiled on first call
            for m in [self.net, self.ema, *getattr(self.guidance, "nets", {}).values()]:
                m.compile()

    def autocast(self) -> contextlib.AbstractContextManager:
        """The forward-pass context of ``self.precision`` (``rl_core.nets.autocast``): ``update`` runs in it;
        parameters, optimiser state, EMA and critic targets stay float32."""
        return autocast(self.precision, self.device)

    # ----- guidance ---------------------------------------------------------------------------
    @property
    def trains_guidance(self) -> bool:
        """Whether ``update`` trains the critic (``Mode.trained``)."""
        return self.guidance is not None and self.mode.trained

    @property
    def critic_phase_steps(self) -> int:
        """Steps the training loop trains a fresh critic alone before the diffusion model (0: none; SWG joint)."""
        return 0

    @property
    def guides_actor(self) -> bool:
        """Whether the critic enters the actor loss (``Mode.guides_actor``)."""
        return self.guidance is not None and self.mode.guides_actor

    def _attach_guidance(self, guidance: Any | None, seed: int) -> Any | None:
        """Check (and if needed build) the critic for the mode; freeze it where the mode says."""
        mode = self.mode
        if guidance is not None and not mode.has_critic:
            raise ConfigError(f"guidance_mode={mode.name!r} trains without a critic; got one (pass guidance=None)")
        if guidance is None:
            guidance, _ = build_critic(mode, default_kind=self.default_guidance_kind, obs_dim=self.obs_dim,
                                       act_dim=self.act_dim, seed=seed)
        if guidance is None:
            return None
        if (guidance.obs_dim, guidance.act_dim) != (self.obs_dim, self.act_dim):
            raise ConfigError(f"guidance shapes (obs_dim, act_dim): expected={(self.obs_dim, self.act_dim)}, "
                              f"actual={(guidance.obs_dim, guidance.act_dim)}")
        if (mode.critic == "random") != (guidance.kind == "random"):
            raise ConfigError(f"guidance_mode={mode.name!r}: expected a {'random' if mode.critic == 'random' else 'trained'} "
                              f"critic, actual kind={guidance.kind!r}")
        missing = self.requires - guidance.provides
        if missing:
            raise G.GuidanceCapabilityError(
                f"{self.name} in guidance_mode={mode.name!r} needs guidance providing {sorted(self.requires)}: "
                f"expected={sorted(self.requires)}, actual={sorted(guidance.provides)} (kind={guidance.kind!r})")
        guidance.unfreeze() if mode.trained and not self.critic_phase_steps else guidance.freeze()
        return guidance.to(self.device)

    def _critic_step(self, batch: Batch, generator: torch.Generator) -> dict[str, float]:
        """Update the critic; a TD critic gets a' ~ π_EMA(· | s') (no grad, ``train_temperature``)."""
        next_act = None
        if self.guidance.kind == "td":
            with torch.no_grad():
                next_act = self.sample(batch.next_obs, generator, temperature=self.cfg.train_temperature)[:, 0]
        return self.guidance.update(batch, next_act)

    def _q_heads(self, obs_n: Tensor, act: Tensor) -> Tensor:
        """(2, B) twin heads at (s, a) as a function of ``act``: ∇ reaches act, never the critic."""
        flags = [p.requires_grad for p in self._critic_params]
        for p in self._critic_params:
            p.requires_grad_(False)
        try:
            return self.guidance.q_heads(obs_n, act)
        finally:
            for p, f in zip(self._critic_params, flags):
                p.requires_grad_(f)

    # ----- optimisation -----------------------------------------------------------------------
    def _actor_step(self, loss: Tensor) -> dict[str, float]:
        """One AdamW step on the denoiser, LR schedule step, EMA update; returns grad norm and lr."""
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = nn.utils.clip_grad_norm_(self._net_params, self.cfg.grad_clip or math.inf, foreach=True)
        lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        self.step += 1
        self._ema_step()
        return {"actor/grad_norm": float(norm), "actor/lr": lr}

    @torch.no_grad()
    def _ema_step(self) -> None:
        """p_ema <- r p_ema + (1 - r) p every ``ema_every`` steps from ``ema_start`` (copy/hold before)."""
        cfg = self.cfg
        if self.step < cfg.ema_start:
            if cfg.ema_warmup == "copy":
                torch._foreach_copy_(self._ema_params, self._net_params)
        elif self.step % cfg.ema_every == 0:
            torch._foreach_lerp_(self._ema_params, self._net_params, 1.0 - cfg.ema_rate)

    # ----- acting -----------------------------------------------------------------------------
    def denoiser(self, ema: bool = True) -> nn.Module:
        """The EMA (default) or online denoiser: forward(x_t (B, act_dim), k (B,), obs_n (B, obs_dim))."""
        return self.ema if ema else self.net

    def sample(self, obs_n: Tensor, generator: torch.Generator, *, n: int = 1, temperature: float,
               ema: bool = True, guidance_fn: Callable | None = None, guidance_scale: float = 0.0,
               self_guidance_scale: float | None = None) -> Tensor:
        """n actions per observation: obs_n (B, obs_dim) -> (B, n, act_dim) in [-1, 1] (``sample_with``).

        Gradients flow through the chain unless called under ``torch.no_grad`` (DQL needs them).
        """
        return self.sample_with(self.cfg, self.denoiser(ema), obs_n, generator, n=n, temperature=temperature,
                                guidance_fn=guidance_fn, guidance_scale=guidance_scale,
                                self_guidance_scale=self_guidance_scale)

    @classmethod
    def build_denoiser(cls, cfg: Any, obs_dim: int, act_dim: int) -> nn.Module:
        """A fresh denoiser for ``cfg`` (used by training and by snapshot loading).

        Implementations set ``net.x_dim`` (the sampled dimension: act_dim, or act_dim + 1 for SWG).
        """
        raise NotImplementedError(f"{cls.__name__} must define build_denoiser")

    @classmethod
    def sample_with(cls, cfg: Any, denoiser: nn.Module, obs_n: Tensor, generator: torch.Generator, *, n: int,
                    temperature: float, guidance_fn: Callable | None = None, guidance_scale: float = 0.0,
                    self_guidance_scale: float | None = None,
                    return_aux: bool = False) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
        """The one sampling entry point (training targets, the Actor): obs_n (B, obs_dim) -> (B, n, act_dim).

        Samples with ``cfg``'s schedule and solver (``diffusion.sample``); all B·n chains run in one
        batched sampler call (obs repeated n times, row-major); ``denoiser.x_dim`` is the sampled
        dimension (see ``build_denoiser``). ``guidance_fn`` / ``guidance_scale``: critic-gradient
        guidance, eq. (6) of ``rl_core.diffusion``. ``self_guidance_scale``: only for ``self_guided``
        classes (SWG); others refuse a value. ``return_aux``: return (actions, aux) with the
        algorithm's per-sample extras, (B, n) tensors by name (none here; SWG: ``"weight"``).
        """
        if self_guidance_scale is not None and not cls.self_guided:
            raise ConfigError(f"{cls.name} has no self-guidance: self_guidance_scale must be None, "
                              f"got {self_guidance_scale!r}")
        B, x_dim = obs_n.shape[0], int(denoiser.x_dim)
        cond = obs_n.repeat_interleave(n, dim=0)
        x = D.sample(denoiser, cond, (B * n, x_dim), make_schedule(cfg.schedule, cfg.T), solver=cfg.solver,
                     steps=cfg.sampling_steps, predict=cfg.predict, generator=generator, temperature=temperature,
                     clip=(-1.0, 1.0), guidance=guidance_fn, guidance_scale=guidance_scale)
        x = x.reshape(B, n, x_dim)
        return (x, {}) if return_aux else x

    # ----- state ------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Full training state: step, online + EMA denoiser, optimiser, LR schedule, guidance."""
        return {"step": self.step, "net": self.net.state_dict(), "ema": self.ema.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
                "guidance": self.guidance.state_dict() if self.guidance is not None else None}

    def load_state_dict(self, d: dict) -> None:
        """Restore ``state_dict()`` output; training then continues bit-identically."""
        if (d["guidance"] is None) != (self.guidance is None):
            raise ConfigError(f"{self.name}: state has guidance={d['guidance'] is not None}, "
                              f"this algorithm has guidance={self.guidance is not None}")
        self.step = int(d["step"])
        self.net.load_state_dict(d["net"])
        self.ema.load_state_dict(d["ema"])
        self.optimizer.load_state_dict(d["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(d["scheduler"])
        if self.guidance is not None:
            self.guidance.load_state_dict(d["guidance"])



@functools.lru_cache(maxsize=None)
def make_schedule(kind: str, T: int) -> Any:
    """The (cached, CPU) NoiseSchedule of kind and T; the samplers move what they need."""
    return D.make_schedule(kind, T)  # type: ignore[arg-type]
