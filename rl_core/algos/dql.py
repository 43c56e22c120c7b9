"""Diffusion-QL (Wang, Hunt, Zhou, ICLR 2023, arXiv 2208.06193), CleanDiffuser ``main`` variant.

Policy: a conditional diffusion model π_θ(a | s) with T = 5 steps, ε-prediction, cosine schedule.
Per gradient step (algorithms.md §3.1):

1. Critic (when the training-guidance mode trains it; TD kind):
       a' ~ π_EMA(· | s')  (DDPM, initial-noise temperature 1, no grad)
       y  = r + γ (1 − d) min_j Q'_j(s', a')        L_Q = Σ_j MSE(Q_j(s, a), y)
   (implemented by the guidance module; policy-free kinds such as IQL ignore a').
2. Actor:
       L_bc = E_{k, ε} ‖ε_θ(α_k a + σ_k ε, k, s) − ε‖²
       a_new ~ π_θ(· | s)  (online net, temperature 1, gradients through all T denoising steps)
       L_q  = −Q_i(s, a_new).mean() / stopgrad(|Q_j(s, a_new)|.mean()),  i ≠ j drawn at random
       L    = L_bc + η L_q
   Q is used as a function: ∇ flows through Q to a_new, never into Q's parameters.
3. AdamW (weight decay 0.01), cosine LR annealing, EMA 0.995 every 5 steps from step 1000.

Training-guidance modes (``guidance_mode``): see ``rl_core.algos.base``; ``none`` sets η = 0.

Deviations from the reference implementation (CD ``main`` ``pipelines/dql_d4rl_mujoco.py``):
- Sampler step schedule: S = T levels visited, the last move goes to the clean end point
  (``rl_core.diffusion`` docstring); CD's T = S = 5 schedule ends with a 0 → 0 no-op.
- Time embedding on float steps with proper sinusoidal frequencies; ``integer_time_emb=True``
  replicates CD's integer-truncated frequencies (algorithms.md §1.3).
- The critic (its LR, LayerNorm, target-update direction ``cd_swapped`` | ``polyak``) lives in the
  guidance config (``rl_core.guidance.GuidanceConfig``), not here.
- All randomness (noise, k, the head i, a') comes from the ``generator`` passed to ``update``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from rl_core.algos.base import (DiffusionAlgorithm, DiffusionConfig, bc_loss, check_choice, check_range, pick_head,
                                q_policy_loss)
from rl_core.nets import DQLMlp
from rl_core.types import Batch


@dataclass(frozen=True)
class DQLConfig(DiffusionConfig):
    """Diffusion-QL; defaults = CleanDiffuser ``main`` D4RL MuJoCo (``configs/dql/mujoco``)."""

    eta: float = 1.0  # η: weight of the Q term, L = L_bc + η L_q
    q_norm_head: str = "other"  # normaliser of L_q: other = |Q_j|, j ≠ i (CD, official DQL) | same = |Q_i| (official EDP)
    hidden: int = 256  # DQLMlp width
    n_layers: int = 3  # DQLMlp hidden layers (Linear + Mish)
    emb_dim: int = 64  # time-embedding dimension
    integer_time_emb: bool = False  # True = CD's integer-truncated embedding frequencies

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("eta", self.eta, 0.0)
        check_choice("q_norm_head", self.q_norm_head, ("other", "same"))
        check_range("hidden", self.hidden, 1)
        check_range("n_layers", self.n_layers, 1)
        check_range("emb_dim", self.emb_dim, 2)


class DQL(DiffusionAlgorithm):
    """Diffusion-QL: BC diffusion loss + η · normalised Q of full-chain samples."""

    name: ClassVar[str] = "dql"
    Config: ClassVar[type] = DQLConfig
    requires: ClassVar[frozenset[str]] = frozenset({"q"})
    default_guidance_kind: ClassVar[str] = "td"

    @classmethod
    def build_denoiser(cls, cfg: DQLConfig, obs_dim: int, act_dim: int) -> nn.Module:
        net = DQLMlp(obs_dim, act_dim, cfg.hidden, cfg.emb_dim, cfg.n_layers, cfg.integer_time_emb)
        net.x_dim = act_dim
        return net

    def policy_actions(self, batch: Batch, generator: torch.Generator) -> Tensor:
        """a_new ~ π_θ(· | s) from the online net, differentiable through all denoising steps: (B, act_dim)."""
        return self.sample(batch.obs, generator, temperature=self.cfg.train_temperature, ema=False)[:, 0]

    def update(self, batch: Batch, generator: torch.Generator) -> dict[str, float]:
        """One gradient step on ``batch`` (B transitions, normalised obs). Returns slash-keyed metrics."""
        cfg = self.cfg
        with self.autocast():
            metrics = self._critic_step(batch, generator) if self.trains_guidance else {}
            loss_bc = bc_loss(self.net, batch, cfg, generator)
            loss = loss_bc
            if self.guides_actor and cfg.eta > 0:
                q_heads = self._q_heads(batch.obs, self.policy_actions(batch, generator))
                i = pick_head(generator)
                loss_q = q_policy_loss(q_heads, i, 1 - i if cfg.q_norm_head == "other" else i)
                loss = loss_bc + cfg.eta * loss_q
                metrics |= {"loss/q_policy": loss_q.item(), "actor/q_mean": q_heads.detach().min(0).values.mean().item()}
            metrics |= self._actor_step(loss)
        return metrics | {"loss/bc": loss_bc.item(), "loss/actor": loss.item()}
