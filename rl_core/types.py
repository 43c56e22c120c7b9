"""Shared types of rl_core: the training batch and the normalisation bundled with every model."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch


@dataclass(frozen=True)
class Batch:
    """A minibatch of transitions, already normalised (observations) and scaled (rewards).

    Shapes: obs (B, obs_dim), act (B, act_dim), rew (B,), next_obs (B, obs_dim),
    terminal (B,) float in {0, 1} (true termination only; timeouts are not terminal).
    """

    obs: torch.Tensor
    act: torch.Tensor
    rew: torch.Tensor
    next_obs: torch.Tensor
    terminal: torch.Tensor

    def to(self, device: torch.device | str) -> "Batch":
        return Batch(*(t.to(device) for t in (self.obs, self.act, self.rew, self.next_obs, self.terminal)))


@dataclass(frozen=True)
class Normalizer:
    """Observation normalisation and reward scaling fixed from a dataset.

    obs_n = (obs - obs_mean) / obs_std ; rew_scaled = rew * reward_scale.
    Stored inside every guidance artifact and snapshot so a model always sees the inputs it was
    trained on. Lists (not arrays) so it round-trips through JSON.
    """

    obs_mean: tuple[float, ...]
    obs_std: tuple[float, ...]
    reward_scale: float = 1.0

    def normalize_obs(self, obs: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        if isinstance(obs, torch.Tensor):
            mean = torch.as_tensor(self.obs_mean, dtype=obs.dtype, device=obs.device)
            std = torch.as_tensor(self.obs_std, dtype=obs.dtype, device=obs.device)
            return (obs - mean) / std
        mean = np.asarray(self.obs_mean, dtype=np.float32)
        std = np.asarray(self.obs_std, dtype=np.float32)
        return ((np.asarray(obs, dtype=np.float32) - mean) / std).astype(np.float32)

    def to_dict(self) -> dict:
        return {"obs_mean": list(self.obs_mean), "obs_std": list(self.obs_std), "reward_scale": self.reward_scale}

    @classmethod
    def from_dict(cls, d: dict) -> "Normalizer":
        return cls(tuple(float(x) for x in d["obs_mean"]), tuple(float(x) for x in d["obs_std"]), float(d["reward_scale"]))

    @classmethod
    def identity(cls, obs_dim: int) -> "Normalizer":
        return cls((0.0,) * obs_dim, (1.0,) * obs_dim, 1.0)
