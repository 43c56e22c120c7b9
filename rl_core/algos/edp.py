"""Efficient Diffusion Policies (Kang et al., NeurIPS 2023, arXiv 2305.20081), CleanDiffuser ``main`` variant.

Diffusion-QL with two changes that make it cheap (algorithms.md §5.1):

1. Action approximation for the Q term: instead of sampling the whole chain,
       k ~ U{0..T−1},  a_k = α_k a + σ_k ε,  â₀ = x̂₀_θ(a_k, k, s)        (one network call, with grad)
       L_q = −Q_i(s, â₀).mean() / stopgrad(|Q_j(s, â₀)|.mean()),  i ≠ j random
       L   = L_bc + η L_q,   L_bc = E ‖x̂₀_θ(a_k, k, s) − a‖²   (x₀-prediction)
2. A fast ODE sampler: T = 50 training levels, DPM-Solver++(2M) with 15 steps for the critic
   target a' ~ π_EMA(· | s') and for evaluation.

Critic, EMA (0.995 every 5 steps from step 1000), AdamW and cosine LR as DQL (``rl_core.algos.dql``);
training-guidance modes as in ``rl_core.algos.base`` (``none`` = η 0).

Deviations from the reference implementation (CD ``main`` ``pipelines/edp_d4rl_mujoco.py``):
- The DPM-Solver step schedule visits round(linspace(49, 0, 15)) and ends at the clean point
  (``rl_core.diffusion``); CD uses linspace(0, 49, 16) and stops at index 0.
- ``approx_clip`` (default False = CD, â₀ unclipped; True = official EDP, â₀ clipped to [−1, 1]).
- ``q_norm_head = "same"`` with ``eta = 2`` gives official EDP's TD3 policy term (λ = α/|Q_k|, same head).
- As DQL: float time embedding (switch ``integer_time_emb``); critic settings in the guidance config.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from rl_core import diffusion as D
from rl_core.algos.base import make_schedule
from rl_core.algos.dql import DQL, DQLConfig
from rl_core.types import Batch


@dataclass(frozen=True)
class EDPConfig(DQLConfig):
    """EDP; defaults = CleanDiffuser ``main`` D4RL MuJoCo (``configs/edp/mujoco``)."""

    T: int = 50  # diffusion steps of the training schedule
    predict: str = "x0"  # the network predicts x₀ (CD ``predict_noise=False``)
    solver: str = "dpm_solver_2m"  # DPM-Solver++(2M) for a' and at evaluation
    sampling_steps: int = 15  # ODE solver steps
    approx_clip: bool = False  # clip â₀ to [−1, 1] before Q (official EDP); CD leaves it unclipped


class EDP(DQL):
    """EDP: DQL whose Q term uses the one-step action approximation â₀ instead of a full chain."""

    name: ClassVar[str] = "edp"
    Config: ClassVar[type] = EDPConfig

    def policy_actions(self, batch: Batch, generator: torch.Generator) -> Tensor:
        """â₀ from one noised copy of the dataset action (one network call, with grad): (B, act_dim)."""
        cfg = self.cfg
        x0_hat, _ = D.one_step_x0(self.net, batch.act, batch.obs, make_schedule(cfg.schedule, cfg.T),
                                  predict=cfg.predict, generator=generator,
                                  clip=(-1.0, 1.0) if cfg.approx_clip else None)
        return x0_hat
