"""The SAC learning process (stable-baselines3, RL Zoo PyBullet settings; the only module importing SB3):
training with every transition recorded, actor snapshots with their evaluation, and SAC acting functions."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from rl_core.data.dataset import FIELDS
from rl_core.data.envs import make_env
from rl_core.data.gen.budgets import Budget
from rl_core.data.gen.collect import Progress, medium_target, references, rollout, seed_base
from rl_core.data.gen.policies import Act


def _make_sac(env: Any, budget: Budget, env_id: str, seed: int) -> Any:
    from stable_baselines3 import SAC

    c = budget.sac
    lr: Any = c.learning_rate
    if env_id in c.linear_lr_envs:
        lr = lambda progress_remaining: progress_remaining * c.learning_rate  # noqa: E731
    return SAC("MlpPolicy", env, learning_rate=lr, buffer_size=c.buffer_size, batch_size=c.batch_size,
               gamma=c.gamma, tau=c.tau, train_freq=c.train_freq, gradient_steps=c.gradient_steps,
               learning_starts=c.learning_starts, use_sde=c.use_sde, ent_coef="auto", seed=seed, device="cpu",
               policy_kwargs={"log_std_init": c.log_std_init, "net_arch": list(c.net_arch)}, verbose=0)


def _sac_act(model: Any, *, stochastic: bool, every: int) -> Act:
    """SAC acting function (the actor called directly: SB3's ``predict`` costs ~10x more per step);
    with gSDE the exploration matrix is resampled every ``every`` steps."""
    import torch

    count = [0]

    def act(obs: np.ndarray) -> np.ndarray:
        if stochastic and model.use_sde and count[0] % every == 0:
            model.actor.reset_noise(1)
        count[0] += 1
        with torch.no_grad():
            a = model.actor(torch.as_tensor(obs, dtype=torch.float32)[None], deterministic=not stochastic)
        return np.clip(a[0].numpy(), -1.0, 1.0)

    return act


def sac_actor(info: dict, path: Path, *, stochastic: bool, seed: int) -> Act:
    """Acting function of the actor snapshot at ``path`` of the SAC process recorded in ``info``."""
    import torch

    budget = Budget.from_dict(info["budget"])
    model = _make_sac(make_env(info["env_id"]), budget, info["env_id"], seed)
    model.actor.load_state_dict(torch.load(path, weights_only=True))
    torch.manual_seed(seed)  # gSDE / Gaussian sampling draws from torch's global generator
    return _sac_act(model, stochastic=stochastic, every=budget.sac.gsde_resample_every)


def train_sac(env_id: str, budget: Budget, seed: int, out: Path, progress: Progress) -> dict:
    """Train SAC in ``out`` (snapshots, ``final_model.zip``, ``replay.npz``); returns the process record."""
    import torch
    from stable_baselines3.common.callbacks import BaseCallback

    (out / "snapshots").mkdir()
    buf: dict[str, list] = {k: [] for k in FIELDS}
    snaps: list[dict] = []
    every = budget.sac.gsde_resample_every
    t0 = time.time()

    class Recorder(BaseCallback):
        """Records every training transition (D4RL semantics) and snapshots + evaluates the actor."""

        def _on_step(self) -> bool:
            info, done = self.locals["infos"][0], bool(self.locals["dones"][0])
            trunc = bool(info.get("TimeLimit.truncated", False))
            nxt = info["terminal_observation"] if done else self.locals["new_obs"][0]
            values = (self.model._last_obs[0], self.locals["buffer_actions"][0], self.locals["rewards"][0], nxt,
                      done and not trunc, trunc)
            for k, v in zip(FIELDS, values):
                buf[k].append(v)
            step = self.num_timesteps
            if step % budget.sac_snapshot_every == 0 or step == budget.sac_steps:
                path = f"snapshots/step_{step:08d}.pt"
                torch.save(self.model.actor.state_dict(), out / path)
                with torch.random.fork_rng():
                    torch.manual_seed(seed + step)
                    ro = rollout(env_id, _sac_act(self.model, stochastic=True, every=every),
                                 seed_base=seed_base(seed, "eval") + step, episodes=budget.eval_episodes)
                snaps.append({"index": len(snaps), "step": step, "eval_return": float(ro.returns.mean()),
                              "eval_episodes": len(ro.returns), "path": path, "reset_seed_base": ro.reset_seed_base})
                progress(f"  step {step:,}: eval return {ro.returns.mean():.1f} over {len(ro.returns)} episodes "
                         f"({time.time() - t0:.0f} s)")
            return True

    progress(f"[sac] training SAC (RL Zoo PyBullet settings) for {budget.sac_steps:,} steps on {env_id}")
    model = _make_sac(make_env(env_id), budget, env_id, seed)
    model.learn(total_timesteps=budget.sac_steps, callback=Recorder())
    model.save(out / "final_model.zip")
    expert = _sac_act(model, stochastic=False, every=every)
    refs = references(env_id, budget, seed, expert, f"SAC final policy, {budget.sac_steps} steps", progress)
    target = medium_target(refs, budget.fraction)
    hits = [s["index"] for s in snaps if s["eval_return"] >= target]
    medium_index = hits[0] if hits else len(snaps) - 1
    progress(f"[sac] medium = snapshot at step {snaps[medium_index]['step']:,} "
             f"(return {snaps[medium_index]['eval_return']:.1f}, target {target:.1f})")
    dtypes = {"terminals": bool, "timeouts": bool}
    np.savez(out / "replay.npz", **{k: np.asarray(v, dtype=dtypes.get(k, np.float32)) for k, v in buf.items()})
    return {"kind": "sac", "algorithm": "stable-baselines3 SAC, RL Zoo PyBullet hyperparameters",
            "expert": {"source": f"SAC final policy after {budget.sac_steps} steps", "path": "final_model.zip"},
            "snapshots": snaps, "medium_index": medium_index, "medium_target_return": target, **refs}
