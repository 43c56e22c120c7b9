"""Seeded whole-episode rollouts of a behaviour policy (D4RL-v2 arrays), reset-seed streams, reference scores."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rl_core.data.dataset import FIELDS
from rl_core.data.envs import make_env
from rl_core.data.gen.budgets import Budget
from rl_core.data.gen.policies import Act, uniform

Progress = Callable[[str], None]
STREAMS = {"random": 1, "medium": 2, "expert": 3, "ref-random": 4, "ref-expert": 5, "demo": 6, "train": 7,
           "eval": 8}


@dataclass
class Rollouts:
    """Whole episodes in D4RL-v2 layout (``arrays`` keyed by FIELDS) plus per-episode returns/lengths."""

    arrays: dict[str, np.ndarray]
    returns: np.ndarray  # (episodes,)
    lengths: np.ndarray  # (episodes,)
    reset_seed_base: int

    def __len__(self) -> int:
        return len(self.arrays["rewards"])


def rollout(env_id: str, act: Act, *, seed_base: int, min_steps: int = 0, episodes: int = 0,
            progress: Progress | None = None, label: str = "", on_episode: Callable[[], None] | None = None) -> Rollouts:
    """Run whole episodes (episode j reset with seed ``seed_base + j``) until both ``episodes`` episodes
    and ``min_steps`` transitions are reached. Prints progress every ~20k steps when ``progress``."""
    env = make_env(env_id)
    buf: dict[str, list] = {k: [] for k in FIELDS}
    rets, lens, n, next_report = [], [], 0, 20_000
    try:
        while len(rets) < episodes or n < min_steps:
            if on_episode:
                on_episode()
            obs, _ = env.reset(seed=seed_base + len(rets))
            ret, length, done = 0.0, 0, False
            while not done:
                a = np.asarray(act(obs), np.float32)
                nxt, r, term, trunc, _ = env.step(a)
                for k, v in zip(FIELDS, (obs, a, r, nxt, term, trunc and not term)):
                    buf[k].append(v)
                obs, ret, length, done = nxt, ret + float(r), length + 1, term or trunc
            rets.append(ret)
            lens.append(length)
            n += length
            if progress and n >= next_report:
                progress(f"  {label}: {n:,} transitions, {len(rets)} episodes, mean return {np.mean(rets):.1f}")
                next_report += 20_000
    finally:
        env.close()
    dtypes = {"terminals": bool, "timeouts": bool}
    arrays = {k: np.asarray(v, dtype=dtypes.get(k, np.float32)) for k, v in buf.items()}
    return Rollouts(arrays, np.asarray(rets), np.asarray(lens), seed_base)


def seed_base(seed: int, stream: str) -> int:
    """Disjoint reset-seed ranges per (seed, stream): (16 * seed + stream) * 10^6."""
    return (16 * seed + STREAMS[stream]) * 1_000_000


def references(env_id: str, budget: Budget, seed: int, expert: Act, expert_desc: str, progress: Progress) -> dict:
    """Reference scores of ``env_id``: ref_min = mean return of uniform random actions, ref_max = that of
    ``expert`` (acting deterministically), with their sources and episode counts."""
    rng = np.random.default_rng([seed, STREAMS["ref-random"]])
    act_dim = make_env(env_id).action_space.shape[0]
    rand = rollout(env_id, uniform(act_dim, rng), seed_base=seed_base(seed, "ref-random"),
                   episodes=budget.ref_random_episodes)
    progress(f"[reference] random policy: mean return {rand.returns.mean():.1f} over {len(rand.returns)} episodes")
    exp = rollout(env_id, expert, seed_base=seed_base(seed, "ref-expert"), episodes=budget.ref_expert_episodes)
    progress(f"[reference] expert ({expert_desc}, deterministic): mean return {exp.returns.mean():.1f} "
             f"over {len(exp.returns)} episodes")
    return {"ref_min_score": float(rand.returns.mean()), "ref_max_score": float(exp.returns.mean()),
            "ref_min_source": f"uniform random actions, mean over {len(rand.returns)} episodes",
            "ref_max_source": f"expert ({expert_desc}) acting deterministically, mean over {len(exp.returns)} episodes",
            "ref_min_episodes": len(rand.returns), "ref_max_episodes": len(exp.returns)}


def medium_target(refs: dict, fraction: float) -> float:
    """Return at normalised score 100 * fraction: ref_min + fraction * (ref_max - ref_min)."""
    return refs["ref_min_score"] + fraction * (refs["ref_max_score"] - refs["ref_min_score"])
