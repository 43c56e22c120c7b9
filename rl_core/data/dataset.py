"""D4RL-v2-style offline datasets: the container shared by every loader and generator.

Semantics (D4RL v2): ``rewards[i] = r(s_i, a_i)``; ``terminals[i]`` is True only when s_{i+1} is a
true termination (the agent fell); ``timeouts[i]`` is True when the time limit cut the episode after
transition i. ``next_observations[i]`` is s_{i+1} of the same episode.

Storage and the HDF5 / Minari loaders live in ``rl_core/data/io.py``, generation in
``rl_core/data/gen/``; this module holds the container and the normalised score.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rl_core.errors import DatasetError

FIELDS = ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts")


def normalized_score(returns: Any, ref_min: float, ref_max: float) -> np.ndarray:
    """D4RL normalised score x100: ``100 * (R - ref_min) / (ref_max - ref_min)``."""
    if not np.isfinite(ref_min) or not np.isfinite(ref_max) or ref_max == ref_min:
        raise DatasetError(f"invalid reference scores ref_min={ref_min}, ref_max={ref_max}")
    return 100.0 * (np.asarray(returns, dtype=np.float64) - ref_min) / (ref_max - ref_min)


@dataclass
class OfflineDataset:
    """Transitions of one offline dataset plus its metadata (see module docstring)."""

    observations: np.ndarray  # (N, obs_dim) float32
    actions: np.ndarray  # (N, act_dim) float32 in [-1, 1]
    rewards: np.ndarray  # (N,) float32
    next_observations: np.ndarray  # (N, obs_dim) float32
    terminals: np.ndarray  # (N,) bool
    timeouts: np.ndarray  # (N,) bool
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate(self.metadata.get("source", "<in memory>"))

    # ----- checks ---------------------------------------------------------------------------
    def validate(self, source: str) -> None:
        """Raise DatasetError naming the file and field on wrong shapes, lengths or non-finite values."""
        n = len(self.observations)
        for name in FIELDS:
            arr = getattr(self, name)
            if not isinstance(arr, np.ndarray):
                raise DatasetError(f"{source}: field '{name}' is not an array")
            if len(arr) != n:
                raise DatasetError(f"{source}: field '{name}' has {len(arr)} rows, 'observations' has {n}")
            if arr.dtype != bool and not np.all(np.isfinite(arr)):
                bad = int(np.flatnonzero(~np.isfinite(arr.reshape(len(arr), -1)).all(axis=1))[0])
                raise DatasetError(f"{source}: field '{name}' has NaN/inf values (first at row {bad})")
        if self.observations.ndim != 2 or self.next_observations.shape != self.observations.shape:
            raise DatasetError(f"{source}: 'observations' / 'next_observations' must both be (N, obs_dim)")
        if self.actions.ndim != 2:
            raise DatasetError(f"{source}: field 'actions' must be (N, act_dim), got shape {self.actions.shape}")
        for name in ("rewards", "terminals", "timeouts"):
            if getattr(self, name).ndim != 1:
                raise DatasetError(f"{source}: field '{name}' must be (N,), got shape {getattr(self, name).shape}")
        if n == 0:
            raise DatasetError(f"{source}: dataset is empty")

    # ----- properties -----------------------------------------------------------------------
    @property
    def obs_dim(self) -> int:
        return int(self.observations.shape[1])

    @property
    def act_dim(self) -> int:
        return int(self.actions.shape[1])

    @property
    def n_transitions(self) -> int:
        return int(len(self.observations))

    @property
    def env_id(self) -> str | None:
        return self.metadata.get("env_id")

    @property
    def task(self) -> str | None:
        return self.metadata.get("task")

    @property
    def ref_min_score(self) -> float:
        return float(self.metadata["ref_min_score"])

    @property
    def ref_max_score(self) -> float:
        return float(self.metadata["ref_max_score"])

    @property
    def fingerprint(self) -> str:
        """Content fingerprint (sha256 over the arrays); stored in metadata when known."""
        fp = self.metadata.get("fingerprint")
        if not fp:
            fp = compute_fingerprint(self)
            self.metadata["fingerprint"] = fp
        return fp

    # ----- scores ---------------------------------------------------------------------------
    def normalized_score(self, returns: Any) -> np.ndarray:
        if "ref_min_score" not in self.metadata or "ref_max_score" not in self.metadata:
            raise DatasetError(f"dataset '{self.task}' has no reference scores (ref_min_score/ref_max_score) in its metadata")
        return normalized_score(returns, self.ref_min_score, self.ref_max_score)

    def episode_ends(self) -> np.ndarray:
        """Indices i where an episode ends after transition i (terminal, timeout, or a break in continuity)."""
        ends = self.terminals | self.timeouts
        if self.n_transitions > 1:
            broken = np.any(self.next_observations[:-1] != self.observations[1:], axis=1)
            ends = ends.copy()
            ends[:-1] |= broken
        ends = ends.copy()
        ends[-1] = True
        return np.flatnonzero(ends)

    def episode_returns(self) -> np.ndarray:
        ends = self.episode_ends()
        csum = np.concatenate([[0.0], np.cumsum(self.rewards, dtype=np.float64)])
        starts = np.concatenate([[0], ends[:-1] + 1])
        return csum[ends + 1] - csum[starts]


def compute_fingerprint(ds: OfflineDataset) -> str:
    h = hashlib.sha256()
    for name in FIELDS:
        arr = np.ascontiguousarray(getattr(ds, name))
        h.update(name.encode())
        h.update(str(arr.dtype).encode() + str(arr.shape).encode())
        h.update(arr.tobytes())
    return h.hexdigest()[:16]
