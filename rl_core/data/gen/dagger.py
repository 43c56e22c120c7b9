"""DAgger (Ross et al., 2011): the learning process behind every env's medium and medium-replay policies.

A fresh MLP student is fit by MSE to the expert's actions on a small demonstration set; each round
trains ``grad_steps`` Adam steps on the aggregate, saves a snapshot (a numpy ``MLPPolicy``), rolls the
snapshot out with the datasets' action noise for ``rollout_steps`` steps -- these episodes are its
evaluation -- and adds the visited states, labelled by the expert, to the aggregate. Few steps per
round make the return climb gradually. Training runs in torch (its result depends on the machine);
the snapshots it writes are what the datasets are made from, so datasets do not.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rl_core.config import ConfigMixin
from rl_core.data.dataset import normalized_score
from rl_core.data.gen.collect import Progress, rollout
from rl_core.data.gen.policies import MLPPolicy


@dataclass(frozen=True)
class DaggerConfig(ConfigMixin):
    """Everything that shapes a DAgger run (``mdpt data train-policies``)."""

    demo_steps: int = 1000  # expert demonstration transitions (with action noise) that start the aggregate
    rollout_steps: int = 1250  # learner steps per round: its evaluation and its new training states
    grad_steps: int = 5  # Adam steps per round (few: the return climbs in small steps through the medium band)
    max_rounds: int = 400
    stop_score: float = 60.0  # stop once stop_rounds rounds in a row score this (past the medium band) ...
    stop_rounds: int = 3
    hidden: tuple[int, ...] = (64, 64)
    lr: float = 1e-3
    batch_size: int = 256
    action_noise: float = 0.1  # Gaussian std on the student's actions while rolling out (= the datasets')


def train_dagger(env_id: str, expert: MLPPolicy, refs: dict, cfg: DaggerConfig, seed: int, out: Path,
                 progress: Progress) -> dict[str, Any]:
    """Run DAgger from ``expert`` writing ``out/snapshots/round_*.npz``; returns the record (every round's
    evaluation return and normalized score on ``refs``), also written to ``out/record.json``."""
    import torch

    def score(ret: float) -> float:
        return float(normalized_score(ret, refs["ref_min_score"], refs["ref_max_score"]))

    demo = rollout(env_id, expert, seed=seed, stream="demo", noise=cfg.action_noise, min_steps=cfg.demo_steps)
    states = demo.arrays["observations"]
    labels = expert(states).astype(np.float32)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        dims = (states.shape[1], *cfg.hidden, labels.shape[1])
        mods: list[torch.nn.Module] = []
        for i in range(len(dims) - 1):
            mods += [torch.nn.Linear(dims[i], dims[i + 1]), torch.nn.ReLU()]
        net = torch.nn.Sequential(*mods[:-1])
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(seed)
    (out / "snapshots").mkdir(parents=True, exist_ok=True)
    progress(f"[dagger] imitating the expert until {cfg.stop_rounds} rounds in a row score {cfg.stop_score:.0f} "
             f"(max {cfg.max_rounds} rounds)")
    rounds: list[dict] = []
    for k in range(cfg.max_rounds):
        x, y = torch.as_tensor(states), torch.as_tensor(labels)
        for _ in range(cfg.grad_steps):
            idx = torch.randint(len(x), (cfg.batch_size,), generator=gen)
            loss = ((net(x[idx]) - y[idx]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        student = MLPPolicy([(m.weight.detach().numpy().T.copy(), m.bias.detach().numpy().copy())
                             for m in net if isinstance(m, torch.nn.Linear)])
        path = f"snapshots/round_{k:04d}.npz"
        student.save(out / path)
        student = MLPPolicy.load(out / path)  # act exactly as the saved (float32) weights do
        ro = rollout(env_id, student, seed=seed, stream="train", offset=10_000 * k, noise=cfg.action_noise,
                     min_steps=cfg.rollout_steps)
        ret = float(ro.returns.mean())
        rounds.append({"round": k, "grad_steps": (k + 1) * cfg.grad_steps, "train_loss": float(loss.item()),
                       "aggregate": len(states), "eval_return": ret, "eval_score": score(ret),
                       "eval_episodes": len(ro.returns), "eval_transitions": len(ro), "path": path})
        if progress is not None and (k % 10 == 0 or score(ret) >= 15):
            progress(f"  round {k}: loss {loss.item():.4f}, return {ret:.1f} (normalized {score(ret):.1f}) over "
                     f"{len(ro.returns)} episodes, aggregate {len(states):,}")
        last = rounds[-cfg.stop_rounds:]
        if len(last) == cfg.stop_rounds and all(r["eval_score"] >= cfg.stop_score for r in last):
            break
        states = np.concatenate([states, ro.arrays["observations"]])
        labels = np.concatenate([labels, expert(ro.arrays["observations"]).astype(np.float32)])
    record = {"algorithm": "DAgger (Ross et al. 2011) imitating the expert", "settings": cfg.to_dict(), "seed": seed,
              "student": f"MLP {'-'.join(map(str, cfg.hidden))} ReLU, output clipped to [-1, 1]; MSE to the "
                         "expert's action; Adam",
              "demo": {"transitions": len(demo), "episodes": len(demo.returns),
                       "mean_return": float(demo.returns.mean())},
              "rounds": rounds}
    (out / "record.json").write_text(json.dumps(record, indent=1))
    return record
