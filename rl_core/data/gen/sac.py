"""SAC experts for the envs without a usable 2017 policy (HalfCheetah, Walker2D): stable-baselines3 SAC with
the RL Zoo PyBullet settings (the only module importing SB3). Every ``snapshot_every`` steps the actor is
converted to a numpy ``MLPPolicy`` (``tanh(clip(mean, -2, 2))``, SB3's deterministic gSDE action), saved and
evaluated deterministically; the expert is the snapshot with the best evaluation return."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rl_core.config import ConfigMixin
from rl_core.data.envs import make_env
from rl_core.data.gen.collect import Progress, rollout
from rl_core.data.gen.policies import MLPPolicy


@dataclass(frozen=True)
class SACConfig(ConfigMixin):
    """RL Zoo SAC settings for the PyBullet envs (``hyperparams/sac.yml``, ``&pybullet-defaults``; reference
    ``datasets.md`` §4.1) scaled down to train on a shared 2-core machine: ``net_arch`` 128-128 and
    ``batch_size`` 128 (zoo: 400-300, 256; measured on such a machine: 9 vs 24+ ms of CPU per update),
    half the updates per env step (``gradient_steps`` 4 per ``train_freq`` 8; zoo: 8) and ``steps``
    150k (zoo: 1M)."""

    steps: int = 150_000
    learning_rate: float = 7.3e-4
    linear_lr_envs: tuple[str, ...] = ("HopperBulletEnv-v0", "Walker2DBulletEnv-v0")  # zoo `lin_7.3e-4`
    buffer_size: int = 300_000
    batch_size: int = 128
    gamma: float = 0.98
    tau: float = 0.02
    train_freq: int = 8
    gradient_steps: int = 4
    learning_starts: int = 10_000
    use_sde: bool = True
    log_std_init: float = -3.0
    net_arch: tuple[int, ...] = (128, 128)
    snapshot_every: int = 10_000
    eval_episodes: int = 5  # deterministic episodes per snapshot (reset seeds of the "eval" stream)


def _make_sac(env: Any, cfg: SACConfig, env_id: str, seed: int) -> Any:
    from stable_baselines3 import SAC

    lr: Any = cfg.learning_rate
    if env_id in cfg.linear_lr_envs:
        lr = lambda progress_remaining: progress_remaining * cfg.learning_rate  # noqa: E731
    return SAC("MlpPolicy", env, learning_rate=lr, buffer_size=cfg.buffer_size, batch_size=cfg.batch_size,
               gamma=cfg.gamma, tau=cfg.tau, train_freq=cfg.train_freq, gradient_steps=cfg.gradient_steps,
               learning_starts=cfg.learning_starts, use_sde=cfg.use_sde, ent_coef="auto", seed=seed, device="cpu",
               policy_kwargs={"log_std_init": cfg.log_std_init, "net_arch": list(cfg.net_arch)}, verbose=0)


def actor_to_numpy(actor: Any) -> MLPPolicy:
    """SB3 SAC actor -> numpy policy computing its deterministic action ``tanh(clip(mu(latent), -c, c))``."""
    import torch

    linears = [m for m in actor.latent_pi if isinstance(m, torch.nn.Linear)]
    mu = actor.mu[0] if isinstance(actor.mu, torch.nn.Sequential) else actor.mu
    clip = float(actor.clip_mean) if actor.use_sde and isinstance(actor.mu, torch.nn.Sequential) else 0.0
    layers = [(m.weight.detach().numpy().T.astype(np.float32), m.bias.detach().numpy().astype(np.float32))
              for m in [*linears, mu]]
    return MLPPolicy(layers, output="tanh", mean_clip=clip)


def train_sac_expert(env_id: str, cfg: SACConfig, seed: int, out: Path, progress: Progress) -> dict:
    """Train SAC in ``out`` (``snapshots/step_*.npz``; ``sac_progress.json``, ``model.zip`` and
    ``replay.pkl`` after every snapshot, so an interrupted run continues from its last snapshot when called
    again with the same ``out``; called with more ``steps`` and otherwise the same settings, it continues
    to the new length and records ``extended_from`` -- a linear LR schedule then follows the new horizon
    from that step on); returns the record with every snapshot's evaluation and the expert (best)
    snapshot; ``out/expert.npz`` is that policy."""
    import torch
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import BaseCallback

    (out / "snapshots").mkdir(parents=True, exist_ok=True)
    snaps: list[dict] = []
    t0, c0 = time.time(), time.process_time()
    record: dict[str, Any] = {"algorithm": "stable-baselines3 SAC (RL Zoo PyBullet settings, gSDE)",
                              "settings": cfg.to_dict(), "seed": seed, "snapshots": snaps}
    resume = (out / "model.zip").exists() and (out / "sac_progress.json").exists()
    if resume:
        old = json.loads((out / "sac_progress.json").read_text())
        same = {**old["settings"], "steps": cfg.steps} == json.loads(json.dumps(cfg.to_dict()))
        if not same or old["seed"] != seed or cfg.steps < old["settings"]["steps"]:
            raise ValueError(f"{out}: holds a SAC run with other settings or seed; use another directory")
        extended = list(old.get("extended_from", []))
        if cfg.steps > old["settings"]["steps"]:  # a longer run: the LR schedule's horizon moves with it
            extended.append({"steps": old["settings"]["steps"], "at_step": old["snapshots"][-1]["step"]})
            progress(f"[sac] extending the run from {old['settings']['steps']:,} to {cfg.steps:,} steps")
        if extended:
            record["extended_from"] = extended
        snaps.extend(old["snapshots"])
        t0, c0 = t0 - old["snapshots"][-1]["wall_s"], c0 - old["snapshots"][-1]["cpu_s"]

    class Snapshots(BaseCallback):
        def _on_step(self) -> bool:
            step = self.num_timesteps
            if step % cfg.snapshot_every == 0 or step == cfg.steps:
                pol = actor_to_numpy(self.model.actor)
                path = f"snapshots/step_{step:08d}.npz"
                pol.save(out / path)
                ro = rollout(env_id, pol, seed=seed, stream="eval", offset=step, episodes=cfg.eval_episodes)
                snaps.append({"step": step, "eval_return": float(ro.returns.mean()),
                              "eval_return_std": float(ro.returns.std()), "eval_episodes": len(ro.returns),
                              "path": path, "wall_s": round(time.time() - t0, 1),
                              "cpu_s": round(time.process_time() - c0, 1)})
                self.model.save(out / "model.zip")
                self.model.save_replay_buffer(out / "replay.pkl")
                (out / "sac_progress.json").write_text(json.dumps(record, indent=1))
                progress(f"  step {step:,}: eval return {ro.returns.mean():.1f} +- {ro.returns.std():.1f} "
                         f"({time.time() - t0:.0f} s, cpu {time.process_time() - c0:.0f} s)")
            return True

    torch.manual_seed(seed)
    model = _make_sac(make_env(env_id), cfg, env_id, seed)
    done = 0
    if resume:
        model.set_parameters(str(out / "model.zip"))
        loaded = SAC.load(out / "model.zip", device="cpu")
        model.num_timesteps = done = loaded.num_timesteps
        model.load_replay_buffer(out / "replay.pkl")
        progress(f"[sac] continuing the run in {out} from step {done:,}")
    progress(f"[sac] training SAC for {cfg.steps:,} steps on {env_id} (seed {seed})")
    if cfg.steps > done:
        model.learn(total_timesteps=cfg.steps - done, callback=Snapshots(), reset_num_timesteps=not resume)
    best = max(snaps, key=lambda s: (s["eval_return"], s["step"]))
    MLPPolicy.load(out / best["path"]).save(out / "expert.npz")
    record.update(expert_step=best["step"], expert_eval_return=best["eval_return"],
                  wall_s=round(time.time() - t0, 1), cpu_s=round(time.process_time() - c0, 1))
    (out / "sac_progress.json").write_text(json.dumps(record, indent=1))
    progress(f"[sac] expert = snapshot at step {best['step']:,} (eval return {best['eval_return']:.1f})")
    return record
