"""The DAgger learning process (Hopper, Ant in the ``quick``/``tiny`` budgets): a student MLP imitating the
2017 pybullet expert, one snapshot per round (see the package docstring)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rl_core.data.gen.budgets import Budget
from rl_core.data.gen.collect import STREAMS, Progress, medium_target, references, rollout, seed_base
from rl_core.data.gen.policies import EXPERTS_2017, MLPPolicy, expert_2017_path, load_2017_expert, noisy
from rl_core.errors import DatasetError


def train_dagger(env_id: str, budget: Budget, seed: int, out: Path, progress: Progress) -> dict:
    """Run DAgger from the 2017 expert in ``out`` (snapshots, ``replay.npz``); returns the process record."""
    import torch

    expert = load_2017_expert(env_id)
    desc = f"pybullet 2017 policy {EXPERTS_2017[env_id]}"
    refs = references(env_id, budget, seed, expert, desc, progress)
    target = medium_target(refs, budget.fraction)
    rng = np.random.default_rng([seed, STREAMS["train"]])
    progress(f"[dagger] imitating the expert until a snapshot's return reaches {target:.1f} "
             f"(normalized {100 * budget.fraction:.0f})")
    demo = rollout(env_id, noisy(expert, budget.action_noise, rng), seed_base=seed_base(seed, "demo"),
                   min_steps=budget.dagger_demo_steps)
    states = demo.arrays["observations"]
    labels = np.stack([expert(s) for s in states]).astype(np.float32)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        dims = (states.shape[1], *budget.dagger_hidden, labels.shape[1])
        mods: list[torch.nn.Module] = []
        for i in range(len(dims) - 1):
            mods += [torch.nn.Linear(dims[i], dims[i + 1]), torch.nn.ReLU()]
        net = torch.nn.Sequential(*mods[:-1])
    opt = torch.optim.Adam(net.parameters(), lr=budget.dagger_lr)
    gen = torch.Generator().manual_seed(seed)
    (out / "snapshots").mkdir()
    snaps, replay, medium_index = [], [], None
    for k in range(budget.dagger_max_rounds):
        x, y = torch.as_tensor(states), torch.as_tensor(labels)
        for _ in range(budget.dagger_grad_steps):
            idx = torch.randint(len(x), (budget.dagger_batch_size,), generator=gen)
            loss = ((net(x[idx]) - y[idx]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        student = MLPPolicy([(m.weight.detach().numpy().T, m.bias.detach().numpy())
                             for m in net if isinstance(m, torch.nn.Linear)])
        path = f"snapshots/round_{k:04d}.npz"
        student.save(out / path)
        ro = rollout(env_id, noisy(student, budget.action_noise, rng),
                     seed_base=seed_base(seed, "train") + 10_000 * k, min_steps=budget.dagger_rollout_steps)
        snaps.append({"index": k, "step": (k + 1) * budget.dagger_grad_steps, "eval_return": float(ro.returns.mean()),
                      "eval_episodes": len(ro.returns), "train_loss": loss.item(), "path": path,
                      "reset_seed_base": ro.reset_seed_base})
        replay.append({**ro.arrays, "snapshot": np.full(len(ro), k, np.int32)})
        progress(f"  round {k}: {(k + 1) * budget.dagger_grad_steps} grad steps, loss {loss.item():.4f}, "
                 f"return {ro.returns.mean():.1f} over {len(ro.returns)} episodes, aggregate {len(states):,}")
        if ro.returns.mean() >= target:
            medium_index = k
            break
        states = np.concatenate([states, ro.arrays["observations"]])
        labels = np.concatenate([labels, np.stack([expert(s) for s in ro.arrays["observations"]]).astype(np.float32)])
    if medium_index is None:
        raise DatasetError(f"{env_id}: DAgger did not reach {target:.1f} in {budget.dagger_max_rounds} rounds; "
                           f"raise dagger_max_rounds or lower fraction in budget '{budget.name}'")
    np.savez(out / "replay.npz", **{k: np.concatenate([r[k] for r in replay]) for k in replay[0]})
    progress(f"[dagger] medium = round {medium_index} (return {snaps[medium_index]['eval_return']:.1f})")
    return {"kind": "dagger", "algorithm": "DAgger (Ross et al. 2011) imitating the 2017 pybullet expert",
            "expert": {"source": desc, "path": str(expert_2017_path(env_id)), "architecture": "MLP 128-64 ReLU"},
            "student": {"architecture": f"MLP {'-'.join(map(str, budget.dagger_hidden))} ReLU, linear output",
                        "loss": "MSE to the expert's clipped action", "optimizer": "Adam"},
            "demo": {"transitions": len(demo), "episodes": len(demo.returns), "mean_return": float(demo.returns.mean())},
            "snapshots": snaps, "medium_index": medium_index, "medium_target_return": target, **refs}
