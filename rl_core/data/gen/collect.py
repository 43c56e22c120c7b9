"""Seeded, reproducible whole-episode rollouts of numpy policies (D4RL-v2 arrays) and reference scores.

An episode is a pure function of (env, policy, seed, stream, episode index j): its env is reset with
seed ``seed_base(seed, stream) + offset + j`` and its action noise (or uniform random actions) is
drawn from its own generator ``np.random.default_rng([seed, STREAMS[stream], offset + j])``. Several
envs are stepped in lockstep so the policy runs on a batch (``policies.MLPPolicy`` computes each row
independently and reproducibly), and every env is reset once before its first seeded reset (PyBullet
builds the scene on the first reset, whose episode differs from later ones with the same seed;
``rl_core/evaluation.py``). So the episodes, and the dataset -- the first whole episodes in index
order that reach the requested size -- do not depend on ``n_envs``, the thread count or the machine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rl_core.data.dataset import FIELDS
from rl_core.data.envs import make_env

Progress = Callable[[str], None]
Policy = Callable[[np.ndarray], np.ndarray]  # obs (B, obs_dim) -> actions (B, act_dim) in [-1, 1]
STREAMS = {"random": 1, "medium": 2, "expert": 3, "ref-random": 4, "ref-expert": 5, "demo": 6, "train": 7,
           "eval": 8, "replay": 9, "line-random": 10, "line-still": 11}
N_ENVS = 8  # envs stepped in lockstep (speed only; results do not depend on it)
ENV_STEP_LIMIT = 1000  # the envs' TimeLimit (``envs.make_env``): an episode's step cap unless shortened
# Reference lines (``reference_lines``): fixed, so a dataset's lines are the same wherever it is made or measured
REFERENCE_SEED = 0
REFERENCE_EPISODES = 10
REFERENCE_POLICIES = {"random": "uniform random actions in [-1, 1]", "stand_still": "the zero action at every step",
                      "no_progress": "none (computed): the alive bonus at every step of the cap, no forward progress "
                                     "-- the most an episode can return without moving forward"}


@dataclass
class Rollouts:
    """Whole episodes in D4RL-v2 layout (``arrays`` keyed by FIELDS) plus per-episode returns/lengths."""

    arrays: dict[str, np.ndarray]
    returns: np.ndarray  # (episodes,)
    lengths: np.ndarray  # (episodes,)
    reset_seed_base: int  # episode j (file order) was reset with seed reset_seed_base + j

    def __len__(self) -> int:
        return len(self.arrays["rewards"])


def seed_base(seed: int, stream: str) -> int:
    """Disjoint reset-seed ranges per (seed, stream): (16 * seed + stream) * 10^6."""
    return (16 * seed + STREAMS[stream]) * 1_000_000


def rollout(env_id: str, policy: Policy | None, *, seed: int, stream: str, offset: int = 0, noise: float = 0.0,
            min_steps: int = 0, episodes: int = 0, n_envs: int = N_ENVS, max_episode_steps: int | None = None,
            progress: Progress | None = None, label: str = "") -> Rollouts:
    """The first whole episodes j = 0, 1, ... (module docstring) until both ``episodes`` episodes and
    ``min_steps`` transitions are reached. ``policy=None`` acts uniformly at random in [-1, 1]; otherwise
    ``a = clip(policy(s) + noise * N(0, I), -1, 1)``. ``max_episode_steps`` shortens the env's 1000-step time
    limit (tests). Reports progress every ~20k steps when ``progress``."""
    base = seed_base(seed, stream) + offset
    kw = {} if max_episode_steps is None else {"max_episode_steps": max_episode_steps}
    n_envs = max(1, min(n_envs, max(episodes, -(-min_steps // 2000))))  # no more envs than small runs need
    envs = [make_env(env_id, **kw) for _ in range(n_envs)]
    act_dim = envs[0].action_space.shape[0]
    for env in envs:
        env.reset()  # build the scene (module docstring)
    done: dict[int, dict] = {}
    slots: list[dict | None] = [None] * len(envs)
    started = steps = 0
    next_report = 20_000
    try:
        while True:
            for s in range(len(slots)):
                if slots[s] is None and (started < episodes or steps < min_steps):
                    obs, _ = envs[s].reset(seed=base + started)
                    slots[s] = {"j": started, "obs": obs, "rng": np.random.default_rng([seed, STREAMS[stream],
                                                                                        offset + started]),
                                "buf": {k: [] for k in FIELDS}, "ret": 0.0}
                    started += 1
            running = [s for s in range(len(slots)) if slots[s] is not None]
            if not running:
                break
            mean = policy(np.stack([slots[s]["obs"] for s in running])) if policy is not None else None
            for i, s in enumerate(running):
                slot = slots[s]
                if mean is None:
                    a = slot["rng"].uniform(-1.0, 1.0, act_dim)
                elif noise > 0:
                    a = np.clip(mean[i] + noise * slot["rng"].standard_normal(act_dim), -1.0, 1.0)
                else:
                    a = mean[i]
                a = np.asarray(a, np.float32)
                nxt, r, term, trunc, _ = envs[s].step(a)
                for k, v in zip(FIELDS, (slot["obs"], a, r, nxt, term, trunc and not term)):
                    slot["buf"][k].append(v)
                slot["obs"], slot["ret"] = nxt, slot["ret"] + float(r)
                steps += 1
                if term or trunc:
                    done[slot["j"]] = slot
                    slots[s] = None
            if progress and steps >= next_report:
                progress(f"  {label}: {steps:,} steps, {len(done)} episodes done")
                next_report += 20_000
    finally:
        for env in envs:
            env.close()
    keep, total = 0, 0
    while keep < len(done) and (keep < episodes or total < min_steps):  # the first whole episodes that suffice
        total += len(done[keep]["buf"]["rewards"])
        keep += 1
    dtypes = {"terminals": bool, "timeouts": bool}
    eps = [done[j]["buf"] for j in range(keep)]
    arrays = {k: np.asarray([v for ep in eps for v in ep[k]], dtype=dtypes.get(k, np.float32)) for k in FIELDS}
    if not keep:
        arrays = {k: np.zeros((0,), dtypes.get(k, np.float32)) for k in FIELDS}
    return Rollouts(arrays, np.asarray([done[j]["ret"] for j in range(keep)]),
                    np.asarray([len(done[j]["buf"]["rewards"]) for j in range(keep)]), base)


def references(env_id: str, expert: Policy, *, seed: int, random_episodes: int, expert_episodes: int,
               progress: Progress) -> dict:
    """Reference scores of ``env_id``: ref_min = mean return of uniform random actions, ref_max = that of
    ``expert`` acting deterministically, with their sources and episode counts."""
    rand = rollout(env_id, None, seed=seed, stream="ref-random", episodes=random_episodes)
    progress(f"[reference] random policy: mean return {rand.returns.mean():.1f} over {len(rand.returns)} episodes")
    exp = rollout(env_id, expert, seed=seed, stream="ref-expert", episodes=expert_episodes)
    progress(f"[reference] expert (deterministic): mean return {exp.returns.mean():.1f} over {len(exp.returns)} "
             f"episodes")
    return {"ref_min_score": float(rand.returns.mean()), "ref_max_score": float(exp.returns.mean()),
            "ref_min_source": f"uniform random actions, mean over {len(rand.returns)} episodes",
            "ref_max_source": f"the expert acting deterministically, mean over {len(exp.returns)} episodes",
            "ref_min_episodes": len(rand.returns), "ref_max_episodes": len(exp.returns)}


def reference_lines(env_id: str, *, seed: int = REFERENCE_SEED, episodes: int = REFERENCE_EPISODES,
                    max_episode_steps: int | None = None) -> dict:
    """The reference lines' policies measured in ``env_id`` (``REFERENCE_POLICIES``): uniform random actions
    (stream ``line-random``) and the zero action, "stand still" (stream ``line-still``), ``episodes`` seeded
    episodes each (module docstring), each episode capped at ``max_episode_steps`` (None = ``ENV_STEP_LIMIT``).
    Deterministic. Returns ``{"seed", "episodes", "max_episode_steps", "random": {...}, "stand_still": {...}}``,
    each policy ``{"policy", "return_mean", "return_std", "length_mean", "episodes"}`` (returns undiscounted)."""
    from rl_core.data.envs import ENV_DIMS

    cap = int(max_episode_steps or ENV_STEP_LIMIT)
    act_dim = ENV_DIMS[env_id][1]
    still = lambda obs: np.zeros((len(obs), act_dim), np.float32)  # noqa: E731
    out: dict = {"seed": int(seed), "episodes": int(episodes), "max_episode_steps": cap}
    for name, policy, stream in (("random", None, "line-random"), ("stand_still", still, "line-still")):
        ro = rollout(env_id, policy, seed=seed, stream=stream, episodes=episodes,
                     max_episode_steps=None if cap == ENV_STEP_LIMIT else cap)
        out[name] = {"policy": REFERENCE_POLICIES[name], "return_mean": float(ro.returns.mean()),
                     "return_std": float(ro.returns.std()), "length_mean": float(ro.lengths.mean()),
                     "episodes": int(len(ro.returns))}
    return out
