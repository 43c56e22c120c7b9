"""Guidance modules (critics) and guidance artifacts.

"Guidance" is the critic an algorithm uses to steer its diffusion policy: the Q-gradient term of the
DQL / EDP actor loss, softmax(Q·w) or softmax((Q − V)·w) candidate resampling at inference, and the
advantage weights of SWG. It is a swappable component: trained jointly with the policy, pretrained
from the dataset alone and frozen (GFDT), replaced at inference by an independently seeded one
(double guidance) or by one trained with another algorithm (plug-and-play).

Kinds (``GuidanceConfig.kind``):

- ``"td"`` — :class:`TDCritic`, DQL / EDP (CleanDiffuser ``DQLCritic``), provides {"q"}:
  y = r + γ(1 − d)·min_i Q'_i(s', a'), a' ~ π(·|s') supplied by the caller;
  L_Q = Σ_i mean_B (Q_i(s, a) − y)².
- ``"iql"`` — :class:`IQLCritic`, IDQL / SWG (IQL, Kostrikov et al. 2021), provides {"q", "v"}:
  u = min_i Q'_i(s, a) − V(s);  L_V = mean_B ℓ(u)  (ℓ: expectile |τ − 1[u<0]|·u²,
  quantile |τ − 1[u<0]|·|u|, or exponential (sg(exp(min(β·u, log 6))) − 1)·u, IDQL §4.2);
  y = r + γ(1 − d)·V(s');  L_Q = Σ_i mean_B (Q_i(s, a) − y)².  In-sample and policy-free, so this
  is the kind to pretrain guidance with (algorithms.md §8.2).
- ``"random"`` — :class:`RandomCritic`, provides {"q"}: a seeded, randomly initialised twin Q that
  is never trained and always frozen. It is the random guidance signal of the ``noise``
  training-guidance mode, GFDT's random-critic control (``*_RAN*`` scripts, algorithms.md §8.6).

``q(obs_n, act)`` is the pessimistic min over the twin heads, (B,). Freezing uses
``requires_grad_(False)`` (not ``torch.no_grad``), so ∇_a Q still flows to the actions while the
critic's parameters never change.

Artifacts (:func:`save_artifact` / :func:`load_artifact`) are ``torch.save`` files
``{format_version, config, state_dict, meta}`` written atomically; loading checks the dataset
fingerprint, shapes and normaliser against the caller's and refuses a mismatch.

Deviations from the reference implementations:

- Target update defaults to the standard Polyak form τ = 0.005 every step (official DQL, IDQL, EDP
  and SWG). CleanDiffuser ``main`` (and GFDT, built on it) uses target ← 0.995·online +
  0.005·target every 5 steps — 99.5 % weight on the *online* net, i.e. almost no target network;
  it is kept as the switch ``target_update="cd_swapped"`` for reproducing those baselines.
- Critic learning rate is constant by default; ``lr_anneal_steps`` anneals it with a cosine schedule
  (CD / GFDT: over the run's horizon, ``gradient_steps``), one scheduler step per optimiser step.
- IQL critics are updated every call; CD IDQL trains its critic every 2nd step (the caller decides).
- Q-heads are read from the online nets by default; ``q(..., target=True)`` reads the target nets
  (CD resampling uses the target critic).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor, nn

from rl_core.config import GUIDANCE_KINDS, ConfigMixin
from rl_core.errors import (ArtifactError, ArtifactMismatchError, ConfigError, GuidanceCapabilityError,  # noqa: F401
                            GuidanceError)
from rl_core.fsutil import atomic_write
from rl_core.nets import ACTIVATIONS, TwinQ, ValueNet
from rl_core.types import Batch, Normalizer

__all__ = [
    "ArtifactError", "Guidance", "GuidanceCapabilityError", "GuidanceConfig", "GuidanceError",
    "IQLCritic", "RandomCritic", "TDCritic", "critic_loss", "load_artifact", "make_guidance",
    "save_artifact", "soft_update", "td_target", "value_loss",
]

FORMAT_VERSION = 1
KINDS = GUIDANCE_KINDS + ("random",)  # the pretrainable kinds + the noise mode's random critic
VARIANTS = ("auto", "dql", "iql")
TARGET_UPDATES = ("polyak", "cd_swapped")
V_LOSSES = ("expectile", "quantile", "exponential")
META_REQUIRED = ("algo", "seed", "steps", "dataset_fingerprint", "task", "normalizer")
RETRAIN_HINT = "retrain guidance on this dataset with `mdpt pretrain-guidance --task <task>`"


# ----- config ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class GuidanceConfig(ConfigMixin):
    """Hyperparameters of a guidance module. Defaults: CleanDiffuser critics, standard Polyak target.

    ``None`` / ``"auto"`` fields are resolved by :meth:`resolved` (done by :func:`make_guidance`, so
    artifacts record concrete values).
    """

    kind: Literal["td", "iql", "random"] = "iql"  # critic kind; see module docstring
    variant: Literal["auto", "dql", "iql"] = "auto"  # Q heads. "dql": CD DQLCritic, first layer Linear–LN–Tanh,
    #   then Linear–LN–activation; "iql": CD IQL TwinQ, Linear–LN–activation throughout (V always this form);
    #   "auto": "iql" for kind iql, "dql" for td / random
    hidden: int = 256  # width of every hidden layer
    n_layers: int | None = None  # hidden layers per head; None: 3 for variant dql, 2 for variant iql
    layer_norm: bool = True  # LayerNorm after each hidden Linear (CD); False = official DQL/IDQL nets
    activation: Literal["mish", "relu", "gelu", "silu", "tanh"] = "mish"
    gamma: float = 0.99  # discount γ
    lr: float = 3e-4  # Adam learning rate of Q (and V)
    lr_anneal_steps: int | None = None  # cosine annealing of that LR to 0 over this many updates (CD / GFDT: the
    #   run's gradient_steps horizon); None = constant (official DQL / IDQL / EDP / SWG)
    target_update: Literal["polyak", "cd_swapped"] = "polyak"  # see module docstring
    tau: float = 0.005  # polyak: target ← τ·online + (1 − τ)·target; cd_swapped: target ← (1 − τ)·online + τ·target
    target_every: int | None = None  # target update every k updates; None: 1 for polyak, 5 for cd_swapped (CD DQL/EDP)
    expectile: float = 0.7  # IQL τ of the expectile / quantile value loss (0.9 for AntMaze)
    v_loss: Literal["expectile", "quantile", "exponential"] = "expectile"
    beta: float = 0.7  # exponential value loss temperature β (IDQL passes its critic_hyperparam, 0.7)
    grad_clip: float | None = None  # max global grad norm of each critic optimiser step; None = no clipping (CD)

    def __post_init__(self) -> None:
        _choice("kind", self.kind, KINDS)
        _choice("variant", self.variant, VARIANTS)
        _choice("activation", self.activation, tuple(ACTIVATIONS))
        _choice("target_update", self.target_update, TARGET_UPDATES)
        _choice("v_loss", self.v_loss, V_LOSSES)
        checks = {"hidden": self.hidden >= 1, "n_layers": self.n_layers is None or self.n_layers >= 1,
                  "gamma": 0.0 <= self.gamma <= 1.0, "lr": self.lr > 0, "tau": 0.0 < self.tau < 1.0,
                  "target_every": self.target_every is None or self.target_every >= 1,
                  "expectile": 0.0 < self.expectile < 1.0, "beta": self.beta > 0,
                  "grad_clip": self.grad_clip is None or self.grad_clip > 0,
                  "lr_anneal_steps": self.lr_anneal_steps is None or (isinstance(self.lr_anneal_steps, int)
                                                                      and self.lr_anneal_steps >= 1)}
        allowed = {"hidden": "an integer >= 1", "n_layers": "null or an integer >= 1", "gamma": "in [0, 1]",
                   "lr": "> 0", "tau": "in (0, 1)", "target_every": "null or an integer >= 1",
                   "expectile": "in (0, 1)", "beta": "> 0", "grad_clip": "null or > 0",
                   "lr_anneal_steps": "null or an integer >= 1"}
        for name, ok in checks.items():
            if not ok:
                raise ConfigError(f"guidance.{name} = {getattr(self, name)!r} is invalid; allowed: {allowed[name]}")

    def resolved(self) -> GuidanceConfig:
        """This config with ``variant``, ``n_layers`` and ``target_every`` made concrete."""
        variant = self.variant if self.variant != "auto" else ("iql" if self.kind == "iql" else "dql")
        return replace(self, variant=variant,
                       n_layers=self.n_layers or (3 if variant == "dql" else 2),
                       target_every=self.target_every or (1 if self.target_update == "polyak" else 5))



def _choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"guidance.{name} = {value!r} is not allowed; allowed: {', '.join(allowed)}")


# ----- networks (rl_core.nets) and pure functions -----------------------------------------------

def _twin_q(obs_dim: int, act_dim: int, cfg: GuidanceConfig) -> TwinQ:
    """Twin Q of the config's variant (dql: first hidden layer Tanh, CD ``DQLCritic``)."""
    return TwinQ(obs_dim, act_dim, cfg.hidden, cfg.n_layers or 1, cfg.layer_norm, cfg.activation,
                 first_activation="tanh" if cfg.variant == "dql" else None)


def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """In place: θ_target ← τ·θ_source + (1 − τ)·θ_target for every parameter (the one shared utility)."""
    with torch.no_grad():
        t, s = list(target.parameters()), list(source.parameters())
        if len(t) != len(s):
            raise ValueError(f"soft_update: target has {len(t)} parameters, source {len(s)}")
        torch._foreach_lerp_(t, s, tau)  # element-wise: the same values as one lerp_ per tensor


def td_target(rew: Tensor, terminal: Tensor, next_value: Tensor, gamma: float) -> Tensor:
    """y = r + γ(1 − d)·next_value; all (B,)."""
    return rew + gamma * (1.0 - terminal) * next_value


def critic_loss(qs: Tensor, y: Tensor) -> Tensor:
    """L_Q = Σ_i mean_B (Q_i − y)² (CD convention: heads summed); qs (2, B), y (B,) → scalar."""
    return ((qs - y) ** 2).mean(dim=1).sum()


def value_loss(u: Tensor, kind: str, expectile: float, beta: float) -> Tensor:
    """Per-sample IQL value loss on u = min Q'(s, a) − V(s), (B,) → (B,) (IDQL ``ddpm_iql_learner``).

    expectile: |τ − 1[u<0]|·u²;  quantile: |τ − 1[u<0]|·|u|;
    exponential: (sg(exp(min(β·u, log 6))) − 1)·u (linex, exp clipped at log 6, weight not differentiated).
    """
    if kind == "exponential":
        return (torch.exp(torch.clamp(beta * u, max=math.log(6.0))).detach() - 1.0) * u
    w = torch.where(u > 0, expectile, 1.0 - expectile)
    return w * (u ** 2 if kind == "expectile" else u.abs())


# ----- critics --------------------------------------------------------------------------------

@runtime_checkable
class Guidance(Protocol):
    """What algorithms, inference and artifacts rely on (docs/interfaces.md)."""

    kind: str
    provides: frozenset[str]
    frozen: bool
    obs_dim: int
    act_dim: int
    cfg: GuidanceConfig

    def q_heads(self, obs_n: Tensor, act: Tensor, *, target: bool = False) -> Tensor: ...
    def q(self, obs_n: Tensor, act: Tensor, *, target: bool = False) -> Tensor: ...
    def v(self, obs_n: Tensor) -> Tensor: ...
    def update(self, batch: Batch, next_act: Tensor | None = None) -> dict[str, float]: ...
    def freeze(self) -> None: ...
    def unfreeze(self) -> None: ...
    def parameters(self) -> Iterator[nn.Parameter]: ...
    def state_dict(self) -> dict: ...
    def load_state_dict(self, d: dict) -> None: ...
    def to(self, device: torch.device | str) -> Guidance: ...


class _Critic:
    """Shared machinery: twin Q + target, freeze, optimiser steps, target updates, state."""

    kind: str = ""
    provides: frozenset[str] = frozenset({"q"})

    def __init__(self, cfg: GuidanceConfig, obs_dim: int, act_dim: int) -> None:
        self.cfg, self.obs_dim, self.act_dim = cfg.resolved(), obs_dim, act_dim
        self.nets = nn.ModuleDict({"q": _twin_q(obs_dim, act_dim, self.cfg)})
        self.optims: dict[str, torch.optim.Optimizer] = {}
        self.scheds: dict[str, torch.optim.lr_scheduler.LRScheduler] = {}  # cfg.lr_anneal_steps: cosine per optimiser
        self.steps = 0  # completed update() calls; drives target_every
        self.frozen = False

    def q_heads(self, obs_n: Tensor, act: Tensor, *, target: bool = False) -> Tensor:
        """Both heads Q_1, Q_2: obs_n (B, obs_dim), act (B, act_dim) → (2, B); target=True reads Q'."""
        return self.nets["q_target" if target and "q_target" in self.nets else "q"](obs_n, act)

    def q(self, obs_n: Tensor, act: Tensor, *, target: bool = False) -> Tensor:
        """Pessimistic min_i Q_i(s, a), (B,); differentiable in ``act`` even when frozen."""
        return self.q_heads(obs_n, act, target=target).min(dim=0).values

    def v(self, obs_n: Tensor) -> Tensor:
        raise GuidanceCapabilityError(
            f"guidance kind {self.kind!r} has no V(s) (provides {sorted(self.provides)}). V is needed by "
            "advantage-based inference (softmax over Q − V, IDQL-style) and by SWG's weights; use a critic "
            "of kind 'iql' (provides q and v), or a Q-only method (softmax / argmax over Q, gradient guidance).")

    def _trainable(self) -> list[nn.Module]:
        return [m for name, m in self.nets.items() if name != "q_target"]

    def parameters(self) -> Iterator[nn.Parameter]:
        """Trained (online) parameters: Q heads and V; target nets are excluded."""
        for m in self._trainable():
            yield from m.parameters()

    def freeze(self) -> None:
        """requires_grad_(False) + eval() on the critic (not no_grad: ∇_act q still flows)."""
        for m in self._trainable():
            m.requires_grad_(False).eval()
        self.frozen = True

    def unfreeze(self) -> None:
        for m in self._trainable():
            m.requires_grad_(True).train()
        self.frozen = False

    def to(self, device: torch.device | str) -> _Critic:
        """Move nets and optimiser state (reloading the state re-places it next to the parameters)."""
        self.nets.to(device)
        for o in self.optims.values():
            o.load_state_dict(o.state_dict())
        return self

    def state_dict(self) -> dict:
        """Weights (online and target), optimiser states and the step counter: resuming is exact."""
        return {"nets": self.nets.state_dict(), "optims": {k: o.state_dict() for k, o in self.optims.items()},
                "scheds": {k: sc.state_dict() for k, sc in self.scheds.items()}, "steps": self.steps}

    def load_state_dict(self, d: dict) -> None:
        self.nets.load_state_dict(d["nets"])
        for k, o in self.optims.items():  # (optimiser states of the former two-MLP TwinQ are converted)
            o.load_state_dict(self.nets["q"].upgrade_optimizer_state(d["optims"][k]) if k == "q" else d["optims"][k])
        for k, sc in self.scheds.items():
            sc.load_state_dict(d["scheds"][k])
        self.steps = int(d["steps"])

    def _optimiser(self, name: str) -> None:
        """Adam on nets[name] (and its cosine LR schedule when cfg.lr_anneal_steps is set)."""
        self.optims[name] = torch.optim.Adam(self.nets[name].parameters(), lr=self.cfg.lr, foreach=True)
        if self.cfg.lr_anneal_steps:
            self.scheds[name] = torch.optim.lr_scheduler.CosineAnnealingLR(self.optims[name],
                                                                           T_max=self.cfg.lr_anneal_steps)

    def _check_trainable(self) -> None:
        if self.frozen:
            raise GuidanceError(f"update() on a frozen {self.kind!r} critic; call unfreeze() first "
                                "(training-guidance mode 'unfrozen') or do not update it (mode 'frozen')")

    def _step(self, name: str, loss: Tensor) -> float:
        """One optimiser step on nets[name]; stale grads (e.g. leaked from an actor loss) are cleared first."""
        opt = self.optims[name]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        params = list(self.nets[name].parameters())
        norm = nn.utils.clip_grad_norm_(params, self.cfg.grad_clip if self.cfg.grad_clip else math.inf, foreach=True)
        opt.step()
        if name in self.scheds:
            self.scheds[name].step()
        return float(norm)

    def _update_target(self) -> None:
        """polyak: τ every step; cd_swapped: coefficient 1 − τ on the online net (CD), every k steps."""
        if self.steps % (self.cfg.target_every or 1) == 0:
            tau = self.cfg.tau if self.cfg.target_update == "polyak" else 1.0 - self.cfg.tau
            soft_update(self.nets["q_target"], self.nets["q"], tau)
        self.steps += 1

    def _q_step(self, batch: Batch, y: Tensor) -> dict[str, float]:
        qs = self.q_heads(batch.obs, batch.act)
        loss = critic_loss(qs, y)
        gn = self._step("q", loss)
        self._update_target()
        return {"loss/critic": loss.item(), "q/mean": qs.mean().item(), "q/max": qs.max().item(),
                "grad_norm/critic": gn}


class _TrainedCritic(_Critic):
    def __init__(self, cfg: GuidanceConfig, obs_dim: int, act_dim: int) -> None:
        super().__init__(cfg, obs_dim, act_dim)
        self.nets["q_target"] = copy.deepcopy(self.nets["q"]).requires_grad_(False)
        self._optimiser("q")


class TDCritic(_TrainedCritic):
    """DQL / EDP critic: TD regression with the caller's next actions. Provides {"q"}."""

    kind = "td"

    def update(self, batch: Batch, next_act: Tensor | None = None) -> dict[str, float]:
        """One TD step. batch: obs (B, obs_dim), act (B, act_dim), rew, terminal (B,);
        next_act (B, act_dim) = a' ~ π(·|s') from the policy; y = r + γ(1 − d)·min_i Q'_i(s', a')."""
        self._check_trainable()
        if next_act is None:
            raise GuidanceError(
                "TDCritic.update needs next_act (B, act_dim): the policy's actions a' ~ π(·|s') for the target "
                "y = r + γ(1 − d)·min Q'(s', a'). A TD critic cannot be trained without a policy; for "
                "policy-free guidance pretraining use guidance kind 'iql' (in-sample expectile critic).")
        with torch.no_grad():
            y = td_target(batch.rew, batch.terminal, self.q(batch.next_obs, next_act.detach(), target=True),
                          self.cfg.gamma)
        return self._q_step(batch, y)


class IQLCritic(_TrainedCritic):
    """IQL critic (IDQL / SWG): in-sample V and twin Q, no policy needed. Provides {"q", "v"}."""

    kind = "iql"
    provides = frozenset({"q", "v"})

    def __init__(self, cfg: GuidanceConfig, obs_dim: int, act_dim: int) -> None:
        super().__init__(cfg, obs_dim, act_dim)
        c = self.cfg
        self.nets["v"] = ValueNet(obs_dim, c.hidden, c.n_layers or 1, c.layer_norm, c.activation)
        self._optimiser("v")

    def v(self, obs_n: Tensor) -> Tensor:
        """V(s): (B, obs_dim) → (B,)."""
        return self.nets["v"](obs_n)

    def advantage(self, obs_n: Tensor, act: Tensor, *, target: bool = False) -> Tensor:
        """A(s, a) = min_i Q_i(s, a) − V(s), (B,)."""
        return self.q(obs_n, act, target=target) - self.v(obs_n)

    def update(self, batch: Batch, next_act: Tensor | None = None) -> dict[str, float]:
        """V step on u = min Q'(s, a) − V(s), then Q step to y = r + γ(1 − d)·V(s') with the new V
        (IDQL order); ``next_act`` is ignored. Shapes as in :meth:`TDCritic.update`."""
        self._check_trainable()
        with torch.no_grad():
            q_t = self.q(batch.obs, batch.act, target=True)
        v = self.v(batch.obs)
        loss_v = value_loss(q_t - v, self.cfg.v_loss, self.cfg.expectile, self.cfg.beta).mean()
        gn_v = self._step("v", loss_v)
        with torch.no_grad():
            y = td_target(batch.rew, batch.terminal, self.v(batch.next_obs), self.cfg.gamma)
        return {**self._q_step(batch, y), "loss/value": loss_v.item(), "v/mean": v.mean().item(),
                "grad_norm/value": gn_v}


class RandomCritic(_Critic):
    """Random guidance (mode ``noise``; GFDT's random-critic control): a seeded, randomly initialised
    twin Q, never trained and always frozen, so ∇_a q is a fixed but meaningless signal. Provides {"q"}."""

    kind = "random"

    def __init__(self, cfg: GuidanceConfig, obs_dim: int, act_dim: int) -> None:
        super().__init__(cfg, obs_dim, act_dim)
        self.freeze()

    def update(self, batch: Batch, next_act: Tensor | None = None) -> dict[str, float]:
        raise GuidanceError("a 'random' critic is the fixed random-guidance control and is never trained; "
                            "use kind 'td' or 'iql' for a trained critic")

    def unfreeze(self) -> None:
        raise GuidanceError("a 'random' critic is always frozen; use kind 'td' or 'iql' for a trainable critic")


_CLASSES: dict[str, type[_Critic]] = {"td": TDCritic, "iql": IQLCritic, "random": RandomCritic}


def make_guidance(cfg: GuidanceConfig, obs_dim: int, act_dim: int, seed: int | torch.Generator,
                  *, device: torch.device | str = "cpu") -> Guidance:
    """Build a critic of ``cfg.kind`` with weights initialised from ``seed`` (an int, or one draw from a
    generator), on CPU inside ``fork_rng`` (global RNG untouched, same weights on every device)."""
    if obs_dim < 1 or act_dim < 1:
        raise ConfigError(f"guidance needs obs_dim >= 1 and act_dim >= 1, got obs_dim={obs_dim}, act_dim={act_dim}")
    if isinstance(seed, torch.Generator):
        seed = int(torch.randint(0, 2**62, (), generator=seed))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        critic = _CLASSES[cfg.kind](cfg, obs_dim, act_dim)
    return critic.to(device)


# ----- artifacts ------------------------------------------------------------------------------

def save_artifact(path: str | Path, guidance: Guidance, meta: dict[str, Any]) -> Path:
    """Write ``{format_version, config, state_dict, meta}`` atomically (``rl_core.fsutil.atomic_write``).

    ``meta`` must carry algo (trained by), seed, steps, dataset_fingerprint, task and normalizer
    (a Normalizer or its dict); kind, obs_dim, act_dim, gamma, config and reward_scale are filled in
    from the guidance / normaliser (a conflicting value given by the caller raises).
    """
    missing = [k for k in META_REQUIRED if k not in meta]
    if missing:
        raise GuidanceError(f"save_artifact: meta lacks {missing}; required: {list(META_REQUIRED)}")
    norm = meta["normalizer"].to_dict() if isinstance(meta["normalizer"], Normalizer) else dict(meta["normalizer"])
    derived = {"kind": guidance.kind, "obs_dim": guidance.obs_dim, "act_dim": guidance.act_dim,
               "gamma": guidance.cfg.gamma, "reward_scale": norm["reward_scale"]}
    for k, val in derived.items():
        if k in meta and meta[k] != val:
            raise GuidanceError(f"save_artifact: meta[{k!r}] = {meta[k]!r} contradicts the guidance/normalizer ({val!r})")
    full = {**meta, **derived, "normalizer": norm, "config": guidance.cfg.to_dict()}
    payload = {"format_version": FORMAT_VERSION, "config": guidance.cfg.to_dict(),
               "state_dict": guidance.state_dict(), "meta": full}
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_artifact(path: str | Path, *, expect_fingerprint: str | None = None, obs_dim: int | None = None,
                  act_dim: int | None = None, normalizer: Normalizer | None = None,
                  device: torch.device | str = "cpu") -> tuple[Guidance, dict[str, Any]]:
    """Load a guidance artifact → (guidance, meta), checking each given expectation against ``meta``.

    Raises ArtifactError for a missing / corrupt file and ArtifactMismatchError naming the field that
    differs (dataset_fingerprint, obs_dim, act_dim, normalizer.*). The guidance comes back trainable
    (not frozen), with its optimiser state: call ``freeze()`` for GFDT-style frozen use.
    """
    from rl_core.filekind import ARTIFACT, load_expected

    path = Path(path)
    if not path.exists():
        raise ArtifactError(f"guidance artifact not found: {path}; check the path or create it with "
                            "`mdpt pretrain-guidance --task <task>`")
    payload = load_expected(path, ARTIFACT, ArtifactError, "guidance artifact")
    try:
        version, meta = payload["format_version"], payload["meta"]
    except KeyError as e:  # a torch file of unknown content
        raise ArtifactError(f"guidance artifact {path} is corrupt or not a guidance artifact (no {e}); delete "
                            f"it and {RETRAIN_HINT}") from e
    if version != FORMAT_VERSION:
        raise ArtifactError(f"guidance artifact {path} has format_version {version}, this mdpt reads {FORMAT_VERSION}")
    expected = {"dataset_fingerprint": expect_fingerprint, "obs_dim": obs_dim, "act_dim": act_dim}
    for field, want in expected.items():
        if want is not None and meta.get(field) != want:
            _mismatch(path, meta, field, want, meta.get(field))
    if normalizer is not None:
        _check_normalizer(path, meta, normalizer)
    try:
        guidance = make_guidance(GuidanceConfig.from_dict(payload["config"]), meta["obs_dim"], meta["act_dim"], 0)
        guidance.load_state_dict(payload["state_dict"])
    except (KeyError, RuntimeError, ValueError, TypeError, ConfigError) as e:
        raise ArtifactError(f"guidance artifact {path} does not rebuild ({type(e).__name__}: {e}); "
                            f"delete it and {RETRAIN_HINT}") from e
    return guidance.to(device), meta


def _mismatch(path: Path, meta: dict, field: str, expected: object, actual: object) -> None:
    raise ArtifactMismatchError(
        f"guidance artifact {path} does not match: {field} differs (expected {expected}, artifact has {actual}; "
        f"artifact trained on task {meta.get('task')!r} by {meta.get('algo')!r}). Use an artifact trained on "
        f"this dataset, or {RETRAIN_HINT}.")


def _check_normalizer(path: Path, meta: dict, normalizer: Normalizer) -> None:
    """Compare obs_mean, obs_std, reward_scale within float tolerance (rtol 1e-5)."""
    have = meta.get("normalizer") or {}
    for key, want in normalizer.to_dict().items():
        a, b = np.asarray(want, dtype=np.float64), np.asarray(have.get(key, np.nan), dtype=np.float64)
        if a.shape != b.shape or not np.allclose(a, b, rtol=1e-5, atol=1e-8):
            _mismatch(path, meta, f"normalizer.{key}", _short(a), _short(b))


def _short(x: np.ndarray) -> str:
    flat = np.atleast_1d(x).ravel()
    text = np.array2string(flat[:6], precision=5, separator=", ")
    return text if flat.size <= 6 else f"{text[:-1]}, ... ({flat.size} values)]"
