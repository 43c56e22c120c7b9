"""Acting with a trained diffusion policy, with the inference guidance chosen independently of training.

An ``Actor`` maps raw observations to actions (algorithms.md §6, §8.4–8.5):

1. obs_n = (obs − μ) / σ with the snapshot's normaliser (the critic's own normaliser for a critic
   from another artifact: double guidance, cross-algorithm plug-and-play);
2. N candidates a_1..a_N ~ π_EMA(· | s) per observation, x_T = temperature · N(0, I), all B·N chains
   in ONE batched sampler call;
3. selection (``InferenceConfig.method``):
   - ``softmax``: i ~ Categorical(softmax(w · Q(s, a_i))), or softmax(w · (Q(s, a_i) − V(s))) with
     ``use_advantage`` (IDQL style; None = when the critic has V). Subtracting V(s) shifts all
     candidates of one state equally, so both give the same distribution; the flag is kept so a
     composition asking for V on a critic without V fails as it would in the reference code.
   - ``argmax``: i = argmax_i Q(s, a_i) (official IDQL).
   - ``gradient``: classifier-style guidance on every denoising step,
     ε̂ ← ε̂ − λ σ_k ∇_{a_k} Q(s, a_k) (the sampler's guidance term, λ = ``scale``); Q is evaluated
     on the noisy action a_k (DPS-style, not exact guidance, algorithms.md §9); then argmax Q over
     the N candidates (N = 1: the one sample).
   - ``swg``: the algorithm's own self-guided sampler (SWG) with scale s; with N > 1 (SWG-R) the
     candidate with the highest Q (``swg_select="q"``, SWG-J) or the highest sampled weight
     coordinate (``swg_select="weight"``, SWG-P; needs no critic) is kept.
   - ``none``: one unguided sample (N = 1).
   Q is the pessimistic min of the twin heads, read from the target nets when ``q_target`` (CD).
   With N = 1, softmax / argmax / swg return the single sample and need no critic.

Precision (``InferenceConfig.precision``): with ``"bf16"`` the candidates are sampled under bfloat16 autocast
(the denoiser's hidden layers; its output and the sampler's arithmetic stay float32) and the critic scores /
guides them in float32: softmax(w · Q) with w = 100 turns a bfloat16 rounding of Q (about 0.4 % of |Q|)
into logit changes of order one, which measurably changed the selected actions (README "Precision and speed").

Methods that need Q on a snapshot without a critic, or V on a critic without V, raise
``GuidanceCapabilityError`` when the actor is built (expected vs actual capabilities).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from rl_core.config import (INFERENCE_METHODS, PRECISIONS, SCALED_METHODS, ConfigMixin, check_choice, check_int,
                            check_range, infer_scale)
from rl_core.errors import ConfigError
from rl_core.errors import GuidanceCapabilityError
from rl_core.nets import autocast
from rl_core.types import Normalizer

METHODS = INFERENCE_METHODS


@dataclass(frozen=True)
class InferenceConfig(ConfigMixin):
    """How to act: candidate count, initial-noise temperature, selection method and its scale.

    The only home of inference defaults: specs, ``mdpt train``, ``mdpt evaluate``, recombination and
    ``tune-guidance`` all start from ``InferenceConfig.for_algorithm`` (the algorithm config's
    n_candidates, eval_temperature and default method) and override fields by name.
    """

    method: Literal["none", "softmax", "argmax", "gradient", "swg"] = "softmax"
    scale: float | None = None  # softmax: inverse temperature w on Q (or Q − V); gradient: λ; swg: s; None = SCALED_METHODS
    n_candidates: int = 50  # candidates per observation (forced to 1 for method none)
    temperature: float = 0.5  # initial-noise temperature of the sampler (CD eval 0.5)
    use_advantage: bool | None = None  # softmax over Q − V (IDQL); None = when the critic has V
    q_target: bool = True  # score with the critic's target nets (CD resampling) | online nets
    swg_select: Literal["q", "weight"] = "q"  # SWG-R (method swg, N > 1): argmax Q | argmax sampled weight
    # fp32 | bf16: autocast of the denoiser's passes while sampling candidates (the sampler's arithmetic, the
    # critic that scores or guides them, Q and V stay float32). fp32 by default: README "Precision and speed".
    precision: Literal["fp32", "bf16"] = "fp32"

    def __post_init__(self) -> None:
        check_choice("inference.method", self.method, METHODS)
        if self.scale is None:
            object.__setattr__(self, "scale", SCALED_METHODS.get(self.method, 100.0))
        check_range("inference.scale", self.scale, -math.inf)
        object.__setattr__(self, "scale", float(self.scale))
        check_int("inference.n_candidates", self.n_candidates, 1)
        check_range("inference.temperature", self.temperature, 0.0)
        check_choice("inference.use_advantage", self.use_advantage, (True, False, None))
        check_choice("inference.q_target", self.q_target, (True, False))
        check_choice("inference.swg_select", self.swg_select, ("q", "weight"))
        check_choice("inference.precision", self.precision, PRECISIONS)

    @property
    def infer_scale(self) -> float:
        """The ``infer_scale`` of result rows: the scale where the method has one, NaN for none / argmax.
        Part of the evaluation key, so the same evaluation gets the same key whichever command ran it."""
        return infer_scale(self.method, self.scale)

    @classmethod
    def for_algorithm(cls, algo_cfg: Any, **overrides: Any) -> InferenceConfig:
        """The algorithm config's inference defaults (n_candidates, eval_temperature, its default method:
        IDQL's ``select``, SWG's ``swg``) with ``overrides`` (InferenceConfig fields) on top."""
        base = {"n_candidates": algo_cfg.n_candidates, "temperature": algo_cfg.eval_temperature,
                "method": getattr(algo_cfg, "select", "softmax")}
        return cls.from_dict({**base, **overrides})

    @classmethod
    def defaults(cls, algo: str, algo_config: dict | None = None, **overrides: Any) -> InferenceConfig:
        """``for_algorithm`` from an algorithm name and its config overrides (as specs and trials hold them)."""
        from rl_core.algos import get_algorithm

        return cls.for_algorithm(get_algorithm(algo).Config.from_dict(dict(algo_config or {})), **overrides)


def needed_capabilities(inference: InferenceConfig, provides: frozenset[str]) -> frozenset[str]:
    """Critic capabilities ``inference`` needs, given what the critic ``provides``."""
    selects_by_q = ("softmax", "argmax") + (("swg",) if inference.swg_select == "q" else ())
    needs_q = inference.method == "gradient" or (inference.method in selects_by_q and inference.n_candidates > 1)
    if not needs_q:  # one candidate: nothing to select
        return frozenset()
    if inference.method == "softmax" and (inference.use_advantage or
                                          (inference.use_advantage is None and "v" in provides)):
        return frozenset({"q", "v"})
    return frozenset({"q"})


class Actor:
    """Raw observations (B, obs_dim) → actions (B, act_dim) in [−1, 1]; see the module docstring."""

    def __init__(self, algo_cls: type, algo_cfg: Any, denoiser: nn.Module, normalizer: Normalizer,
                 inference: InferenceConfig, guidance: Any | None = None,
                 guidance_normalizer: Normalizer | None = None, device: str | torch.device = "cpu") -> None:
        provides = guidance.provides if guidance is not None else frozenset()
        needed = needed_capabilities(inference, provides)
        if not needed <= provides:
            raise GuidanceCapabilityError(
                f"inference method {inference.method!r} (use_advantage={inference.use_advantage}) needs a critic "
                f"providing expected={sorted(needed)}, actual={sorted(provides)}"
                + (" (the snapshot has no critic: pass one with make_actor(..., guidance=...))" if guidance is None
                   else f" (kind {guidance.kind!r})"))
        if inference.method == "swg" and not algo_cls.self_guided:
            raise ConfigError(f"inference.method='swg' needs an SWG snapshot; this snapshot is {algo_cls.name!r}")
        self.algo_cls, self.algo_cfg, self.denoiser = algo_cls, algo_cfg, denoiser.eval()
        self.normalizer, self.inference, self.guidance = normalizer, inference, guidance
        self.guidance_normalizer = guidance_normalizer or normalizer
        self.use_v = "v" in needed
        self.n = 1 if inference.method == "none" else inference.n_candidates
        self.device = torch.device(device)

    @torch.no_grad()
    def act(self, obs: np.ndarray, generator: torch.Generator) -> np.ndarray:
        """obs (B, obs_dim) raw → (B, act_dim) float32; all randomness from ``generator``."""
        obs_t = torch.as_tensor(np.asarray(obs, dtype=np.float32), device=self.device)
        obs_n = self.normalizer.normalize_obs(obs_t)
        obs_g = self.guidance_normalizer.normalize_obs(obs_t) if self.guidance is not None else None
        with autocast(self.inference.precision, self.device):  # the sampler's network passes only
            cand, aux = self._candidates(obs_n, obs_g, generator)  # (B, N, act_dim), float32
        if self.n == 1:
            return cand[:, 0].cpu().numpy()
        if self.inference.method == "swg" and self.inference.swg_select == "weight":  # SWG-R by sampled weight
            return cand[torch.arange(len(cand), device=cand.device), aux["weight"].argmax(dim=1)].cpu().numpy()
        return self._select(obs_g, cand, generator).cpu().numpy()

    def _candidates(self, obs_n: Tensor, obs_g: Tensor | None,
                    generator: torch.Generator) -> tuple[Tensor, dict[str, Tensor]]:
        """(B, N, act_dim) candidates and the algorithm's aux (SWG: sampled weights) from one batched call."""
        inf, n = self.inference, self.n
        gradient = inf.method == "gradient"
        guidance_fn = self._q_gradient(obs_g.repeat_interleave(n, dim=0)) if gradient else None
        return self.algo_cls.sample_with(self.algo_cfg, self.denoiser, obs_n, generator, n=n,
                                         temperature=inf.temperature, guidance_fn=guidance_fn,
                                         guidance_scale=inf.scale if gradient else 0.0,
                                         self_guidance_scale=inf.scale if inf.method == "swg" else None,
                                         return_aux=True)

    def _q_gradient(self, obs_rep: Tensor):
        """guidance(x_k (B·N, d), k) = ∇_{x_k} Q(s, x_k[:, :act_dim]), evaluated with grad enabled."""
        act_dim = self.guidance.act_dim

        def grad_q(x: Tensor, k: Tensor) -> Tensor:  # the critic in float32 in every precision (see act)
            with torch.enable_grad(), torch.autocast(x.device.type, enabled=False):
                x = x.detach().requires_grad_(True)
                q = self.guidance.q(obs_rep, x[:, :act_dim], target=self.inference.q_target)
                return torch.autograd.grad(q.sum(), x)[0]

        return grad_q

    def _select(self, obs_g: Tensor, cand: Tensor, generator: torch.Generator) -> Tensor:
        """One action per observation from cand (B, N, act_dim) by softmax sampling or argmax Q."""
        B, N, A = cand.shape
        q = self.guidance.q(obs_g.repeat_interleave(N, dim=0), cand.reshape(B * N, A),
                            target=self.inference.q_target).reshape(B, N)
        if self.inference.method == "softmax":
            score = q - self.guidance.v(obs_g)[:, None] if self.use_v else q
            p = torch.softmax(self.inference.scale * score, dim=1).to(generator.device)
            idx = torch.multinomial(p, 1, generator=generator)[:, 0].to(cand.device)
        else:
            idx = q.argmax(dim=1)
        return cand[torch.arange(B, device=cand.device), idx]
