"""Roll out a policy in the real simulator and return one result per episode (no logging side effects).

``evaluate`` runs ``episodes`` environments in lockstep: at every env step it makes ONE batched
``actor.act`` call over the observations of the envs still running, so a diffusion actor samples
all its candidates for all episodes in one forward pass per denoising step. Env ``i`` is reset
with seed ``seed + i``; the actor draws its noise from one ``torch.Generator`` seeded with
``seed``, so a call is deterministic given ``seed``. ``vectorized=False`` is the naive baseline:
one env, one episode after the other (same seeds), one ``act`` call per env step.

PyBullet quirk: the first ``reset`` of a fresh env builds the scene and its rollout differs from
every later reset with the same seed (measured: Hopper, seed 1, 35.487 vs 35.589). Every env here
is therefore reset once before the seeded reset, so an episode depends only on its seed and the
actions, whichever mode ran it and whatever ran before it in that env. That makes envs reusable:
they are kept in a per-process pool (``_ENV_POOL``, one list per env id, not thread-safe), so
repeated evaluations (every snapshot of a run, an evaluator actor's jobs) do not rebuild the scenes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import gymnasium
import numpy as np
import torch

from rl_core.config import D4RL_BULLET_REF_SCORES, ConfigMixin, check_choice, check_int
from rl_core.datasets import normalized_score
from rl_core.envs import make_env
from rl_core.errors import ArtifactMismatchError


class ActorLike(Protocol):
    def act(self, obs: np.ndarray, generator: torch.Generator) -> np.ndarray:
        """Raw observations (B, obs_dim) -> actions (B, act_dim) in [-1, 1]."""
        ...


@dataclass(frozen=True)
class EpisodeResult:
    episode: int  # index 0..episodes-1
    eval_seed: int  # the env reset seed: seed + episode
    ret: float  # undiscounted return
    normalized_score: float  # 100 * (ret - ref_min) / (ref_max - ref_min), the dataset's reference scores
    length: int  # env steps until termination, truncation or max_steps
    normalized_score_d4rl: float = math.nan  # the same on D4RL's bullet reference scores; NaN for other envs


def eval_seed_for(trial_seed: int, step: int) -> int:
    """Env seed of episode 0 when evaluating snapshot ``step`` of a trial seeded ``trial_seed``.

    Distinct per (trial seed, step) and reproducible, so checkpoints are scored on fresh episodes.
    """
    return int(np.random.SeedSequence([trial_seed, step]).generate_state(1)[0] % 2**31)


_ENV_POOL: dict[str, list[gymnasium.Env]] = {}


def _pooled_envs(env_id: str, n: int) -> list[gymnasium.Env]:
    """``n`` scene-built envs of ``env_id`` from the process pool (created and reset once on first use)."""
    pool = _ENV_POOL.setdefault(env_id, [])
    while len(pool) < n:
        env = make_env(env_id)
        env.reset()  # build the scene (see module docstring)
        pool.append(env)
    return pool[:n]


def evaluate(actor: ActorLike, env_id: str, *, episodes: int, seed: int, ref_min: float, ref_max: float,
             max_steps: int = 1000, vectorized: bool = True) -> list[EpisodeResult]:
    """Run ``episodes`` episodes of ``actor`` in ``env_id``; results are ordered by episode index."""
    if episodes < 1 or max_steps < 1:
        raise ValueError(f"episodes and max_steps must be >= 1, got {episodes}, {max_steps}")
    generator = torch.Generator().manual_seed(seed)
    if vectorized:
        rets, lengths = _rollout_lockstep(actor, _pooled_envs(env_id, episodes), seed, max_steps, generator)
    else:
        rets, lengths = np.zeros(episodes), np.zeros(episodes, dtype=np.int64)
        for i in range(episodes):
            r, n = _rollout_lockstep(actor, _pooled_envs(env_id, 1), seed + i, max_steps, generator)
            rets[i], lengths[i] = r[0], n[0]
    scores = normalized_score(rets, ref_min, ref_max)
    d4rl = D4RL_BULLET_REF_SCORES.get(env_id)
    d4rl_scores = normalized_score(rets, *d4rl) if d4rl else np.full(episodes, math.nan)
    return [EpisodeResult(i, seed + i, float(rets[i]), float(scores[i]), int(lengths[i]), float(d4rl_scores[i]))
            for i in range(episodes)]


def _rollout_lockstep(actor: ActorLike, envs: list[gymnasium.Env], seed: int, max_steps: int,
                      generator: torch.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Step ``envs`` (env i reset with seed + i) together until each terminates, truncates or hits ``max_steps``.

    Returns (returns (n,) float64, lengths (n,) int64).
    """
    n = len(envs)
    low, high = envs[0].action_space.low, envs[0].action_space.high
    obs = np.stack([env.reset(seed=seed + i)[0] for i, env in enumerate(envs)]).astype(np.float32)
    rets, lengths = np.zeros(n), np.zeros(n, dtype=np.int64)
    running = np.arange(n)
    while running.size:
        actions = np.clip(np.asarray(actor.act(obs[running], generator), dtype=np.float32), low, high)
        still = []
        for a, i in zip(actions, running):
            o, r, terminated, truncated, _ = envs[i].step(a)
            obs[i] = o
            rets[i] += r
            lengths[i] += 1
            if not (terminated or truncated or lengths[i] >= max_steps):
                still.append(i)
        running = np.asarray(still, dtype=np.int64)
    return rets, lengths


GUIDANCE_FORMATS = ("artifact", "snapshot")


@dataclass(frozen=True)
class EvalJob(ConfigMixin):
    """One evaluation: a snapshot, the critic to act with, how to act, and which episodes.

    The same job evaluated by the sweep's evaluator pool, by ``mdpt train`` / ``mdpt evaluate``, by
    recombination or by the guidance search gives the same episodes (``run_eval_job``)."""

    snapshot: str  # path of an eval snapshot (rl_core/snapshot.py)
    inference: dict  # InferenceConfig as a dict
    episodes: int  # episode i resets its env with eval_seed + i
    eval_seed: int
    max_steps: int = 1000  # episode step cap
    guidance: str | None = None  # None = the snapshot's own critic; else the path of another critic ...
    guidance_format: str = "artifact"  # ... stored as a guidance artifact or inside another snapshot

    def __post_init__(self) -> None:
        check_int("EvalJob.episodes", self.episodes, 1)
        check_int("EvalJob.max_steps", self.max_steps, 1)
        check_choice("EvalJob.guidance_format", self.guidance_format, GUIDANCE_FORMATS)

    @property
    def inference_config(self) -> Any:
        from rl_core.inference import InferenceConfig

        return InferenceConfig.from_dict(self.inference)


def _plugged_critic(job: EvalJob, snap: Any, device: str) -> tuple[Any, Any]:
    """(critic, its normaliser) of ``job.guidance``, checked against the snapshot's dataset; (None, None) if none."""
    from rl_core.guidance import load_artifact
    from rl_core.snapshot import load_snapshot
    from rl_core.types import Normalizer

    if job.guidance is None:
        return None, None
    if job.guidance_format == "snapshot":
        other = load_snapshot(job.guidance, device=device)
        if other.dataset_meta.get("fingerprint") != snap.dataset_meta.get("fingerprint"):
            raise ArtifactMismatchError(f"guidance snapshot {job.guidance} was trained on another dataset than "
                                        f"{job.snapshot}")
        return other.guidance, other.normalizer
    guidance, meta = load_artifact(job.guidance, expect_fingerprint=snap.dataset_meta.get("fingerprint"),
                                   obs_dim=snap.obs_dim, act_dim=snap.act_dim, device=device)
    return guidance, Normalizer.from_dict(meta["normalizer"])


def run_eval_job(job: EvalJob, device: str = "cpu", *, vectorized: bool = True) -> list[EpisodeResult]:
    """Evaluate ``job``: the snapshot with its own or the plugged-in critic, in its dataset's env.

    The env id and reference scores come from the snapshot's dataset metadata.
    """
    from rl_core.snapshot import load_snapshot, make_actor

    snap = load_snapshot(job.snapshot, device=device)
    guidance, guidance_normalizer = _plugged_critic(job, snap, device)
    actor = make_actor(snap, job.inference_config, guidance=guidance, guidance_normalizer=guidance_normalizer)
    meta = snap.dataset_meta
    return evaluate(actor, meta["env_id"], episodes=job.episodes, seed=job.eval_seed,
                    ref_min=float(meta["ref_min_score"]), ref_max=float(meta["ref_max_score"]),
                    max_steps=job.max_steps, vectorized=vectorized)
