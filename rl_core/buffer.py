"""The training buffer: a dataset's transitions as normalised float32 tensors, sampled uniformly.

Normalisation (CleanDiffuser ``D4RLMuJoCoTDDataset``, algorithms.md section 1.1):

    obs_n = (obs - mean) / std            per dimension over the dataset's observations, std == 0 -> 1
    rew   = r * 1000 / (max_ep R - min_ep R)   episode returns from OfflineDataset.episode_returns()

Actions are stored as they are (already in [-1, 1]); ``terminal`` is true termination only.
"""

from __future__ import annotations

import numpy as np
import torch

from rl_core.data.dataset import OfflineDataset
from rl_core.errors import DatasetError, MdptError
from rl_core.types import Batch, Normalizer


def make_normalizer(
    ds: OfflineDataset, normalize_obs: bool = True, normalize_reward: bool = True, reward_range: float = 1000.0
) -> Normalizer:
    """Observation mean/std (population std, zero -> 1) and reward_scale = reward_range / (max - min episode return).

    With a flag off the corresponding part is the identity (mean 0, std 1 / scale 1).
    """
    if normalize_obs:
        obs = ds.observations.astype(np.float64)
        mean, std = obs.mean(0), obs.std(0)
        std[std == 0] = 1.0
    else:
        mean, std = np.zeros(ds.obs_dim), np.ones(ds.obs_dim)
    scale = 1.0
    if normalize_reward:
        returns = ds.episode_returns()
        spread = float(returns.max() - returns.min())
        if not spread > 0:
            raise DatasetError(
                f"dataset '{ds.task}': all {len(returns)} episode returns are equal ({returns.max():g}), so the "
                "reward scale 1000 / (max - min return) is undefined; pass normalize_reward=False"
            )
        scale = reward_range / spread
    return Normalizer(tuple(map(float, mean)), tuple(map(float, std)), scale)


class TensorBuffer:
    """Normalised transitions as float32 tensors on one device: obs, next_obs (N, obs_dim), act (N, act_dim),
    rew, terminal (N,)."""

    def __init__(self, obs: torch.Tensor, act: torch.Tensor, rew: torch.Tensor, next_obs: torch.Tensor, terminal: torch.Tensor) -> None:
        self.obs, self.act, self.rew, self.next_obs, self.terminal = obs, act, rew, next_obs, terminal

    @classmethod
    def from_dataset(cls, ds: OfflineDataset, normalizer: Normalizer, device: str | torch.device = "cpu") -> "TensorBuffer":
        """Apply ``normalizer`` to ``ds`` and hold the result on ``device``."""
        if len(normalizer.obs_mean) != ds.obs_dim:
            raise MdptError(f"normalizer has obs_dim {len(normalizer.obs_mean)}, dataset '{ds.task}' has obs_dim {ds.obs_dim}")
        t = lambda a: torch.tensor(np.asarray(a, dtype=np.float32), device=device)  # a copy: dataset arrays may be read-only
        return cls(
            t(normalizer.normalize_obs(ds.observations)),
            t(ds.actions),
            t(ds.rewards * np.float32(normalizer.reward_scale)),
            t(normalizer.normalize_obs(ds.next_observations)),
            t(ds.terminals),
        )

    def __len__(self) -> int:
        return len(self.obs)

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        """Uniform with replacement: idx = randint(0, N, (batch_size,), generator). Returns a Batch of batch_size rows."""
        if batch_size < 1:
            raise MdptError(f"batch_size must be >= 1, got {batch_size}")
        idx = torch.randint(0, len(self), (batch_size,), generator=generator, device=generator.device).to(self.obs.device)
        return Batch(self.obs[idx], self.act[idx], self.rew[idx], self.next_obs[idx], self.terminal[idx])
