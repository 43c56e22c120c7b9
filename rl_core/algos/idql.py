"""Implicit Diffusion Q-learning (Hansen-Estruch et al., arXiv 2304.10573), CleanDiffuser ``main`` variant.

IDQL decouples the policy from the critic: the diffusion model is pure behaviour cloning and the
critic only reweights candidates at inference (algorithms.md §4.1).

Actor (every step):   L_bc = E_{k, ε} ‖ε_θ(α_k a + σ_k ε, k, s) − ε‖²;  EMA 0.9999 every step.
Critic (IQL, every ``critic_every``-th step; implemented by the guidance module, kind "iql"):
    L_V = E |τ − 1[u < 0]| u²,  u = min_j Q'_j(s, a) − V(s),  τ = 0.7
    L_Q = Σ_j E (Q_j(s, a) − r − γ (1 − d) V(s'))²
Inference: N = 256 candidates from the EMA actor at temperature 0.5, one drawn from
softmax(w · (Q(s, a_i) − V(s))) (``select = "softmax"``, CD) or the argmax of Q (``"argmax"``,
official IDQL HEAD); see ``rl_core.inference``.

Training-guidance modes: the actor never uses the critic in training, so the modes only decide
which critic is trained alongside and then used for selection: ``joint`` (a fresh IQL critic,
trained), ``unfrozen`` (a pretrained artifact, trained on), ``frozen`` (a pretrained artifact, never
updated), ``noise`` (a frozen random critic: the "guidance necessity" control), ``none`` (no critic
unless one is passed, which is then trained as in joint). A TD critic also works (it is given a'
from the EMA actor); IDQL requires no capability in training.

Deviations from the reference implementation (CD ``main`` ``pipelines/idql_d4rl_mujoco.py``):
- Sampler step schedule ends at the clean point (``rl_core.diffusion``); float time embedding
  (switch ``integer_time_emb``); ``final_act`` switches CD's missing activation before the output
  layer (issue #26 of CleanDiffuserTeam/CleanDiffuser; default False = CD).
- Dropout draws from a global RNG seeded from the update's ``generator`` (replayable updates).
- Selection temperature: per task in the inference config (CD's ``weight_temperature`` path bug,
  algorithms.md §4.1, does not arise).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from rl_core.algos.base import DiffusionAlgorithm, DiffusionConfig, bc_loss, check_choice, check_range, seeded_dropout
from rl_core.nets import LNResNet
from rl_core.types import Batch


@dataclass(frozen=True)
class IDQLConfig(DiffusionConfig):
    """IDQL; defaults = CleanDiffuser ``main`` D4RL MuJoCo (``configs/idql/mujoco``)."""

    ema_rate: float = 0.9999  # EMA decay, every step, no warm-up
    ema_every: int = 1
    ema_start: int = 0
    n_candidates: int = 256  # inference default: candidates per observation
    critic_every: int = 2  # the critic is updated on steps 0, k, 2k, ...
    select: str = "softmax"  # inference default selection: softmax (CD) | argmax (official IDQL)
    hidden: int = 256  # LNResNet width
    n_blocks: int = 3  # residual blocks
    dropout: float = 0.1  # dropout in each residual block
    emb_dim: int = 64  # time-embedding dimension
    final_act: bool = False  # Mish before the output layer (official IDQL); False = CD IDQLMlp
    integer_time_emb: bool = False  # True = CD's integer-truncated embedding frequencies

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("critic_every", self.critic_every, 1)
        check_choice("select", self.select, ("softmax", "argmax"))
        check_range("hidden", self.hidden, 1)
        check_range("n_blocks", self.n_blocks, 1)
        check_range("dropout", self.dropout, 0.0, 1.0)
        check_range("emb_dim", self.emb_dim, 2)


class IDQL(DiffusionAlgorithm):
    """IDQL: behaviour-cloning diffusion + an IQL critic used only to select among candidates."""

    name: ClassVar[str] = "idql"
    Config: ClassVar[type] = IDQLConfig
    requires: ClassVar[frozenset[str]] = frozenset()
    default_guidance_kind: ClassVar[str] = "iql"

    @classmethod
    def build_denoiser(cls, cfg: IDQLConfig, obs_dim: int, act_dim: int) -> nn.Module:
        net = LNResNet(obs_dim, act_dim, cfg.hidden, cfg.n_blocks, cfg.dropout, final_act=cfg.final_act,
                       emb_dim=cfg.emb_dim, integer_freqs=cfg.integer_time_emb)
        net.x_dim = act_dim
        return net

    def update(self, batch: Batch, generator: torch.Generator) -> dict[str, float]:
        """One gradient step on ``batch`` (B transitions, normalised obs). Returns slash-keyed metrics."""
        metrics: dict[str, float] = {}
        with self.autocast():
            if self.trains_guidance and self.step % self.cfg.critic_every == 0:
                metrics = self._critic_step(batch, generator)
            with seeded_dropout(generator):
                loss = bc_loss(self.net, batch, self.cfg, generator)
            metrics |= self._actor_step(loss)
        return metrics | {"loss/bc": loss.item(), "loss/actor": loss.item()}
