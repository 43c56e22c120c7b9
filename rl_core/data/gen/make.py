"""``make_dataset`` / ``ensure_dataset``: one task (env x level) generated into ``<root>/<task>/``.

Each level is collected from the env's behaviour-learning process (``process.behaviour_process``,
trained on first use) and saved atomically with its provenance, budget and reference scores in the
metadata; levels, seeds and semantics are described in the package docstring.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

import rl_core
from rl_core.data.dataset import FIELDS, OfflineDataset, compute_fingerprint
from rl_core.data.envs import TASK_ENVS, make_env
from rl_core.data.gen.budgets import Budget, get_budget
from rl_core.data.gen.collect import STREAMS, Progress, rollout, seed_base
from rl_core.data.gen.policies import uniform
from rl_core.data.gen.process import Process, behaviour_process
from rl_core.data.io import data_root, load_dataset, save_dataset, split_task


def _collect(level: str, proc: Process, budget: Budget, seed: int, progress: Progress) -> tuple[dict, dict]:
    """Arrays and a provenance dict for one level of ``proc``'s env."""
    env_id = proc.info["env_id"]
    rng = np.random.default_rng([seed, STREAMS.get(level, 0)])
    if level == "medium-replay":
        progress(f"[collect] medium-replay: training transitions up to the medium snapshot")
        return proc.replay(), {"policy": "training transitions of the learning process up to and including the "
                                         f"medium snapshot's evaluation (snapshot {proc.info['medium_index']})"}
    if level == "random":
        act, desc = uniform(make_env(env_id).action_space.shape[0], rng), {"policy": "uniform random actions"}
    else:
        act = proc.policy(level, stochastic=True, rng=rng, seed=seed)
        snap = proc.info["snapshots"][-1] if level == "expert" and proc.info["kind"] == "sac" else proc.medium
        desc = {"policy": proc.info["expert"]["source"]} if level == "expert" and proc.info["kind"] == "dagger" else \
            {"policy": f"{proc.info['kind']} snapshot {snap['index']} ({snap['path']}), step {snap['step']}",
             "snapshot_eval_return": snap["eval_return"]}
        desc["actions"] = (f"Gaussian noise std {budget.action_noise}, clipped" if proc.info["kind"] == "dagger"
                           else f"SAC stochastic policy, gSDE matrix resampled every {budget.sac.gsde_resample_every} steps")
    progress(f"[collect] {level}: {budget.transitions:,} transitions")
    ro = rollout(env_id, act, seed_base=seed_base(seed, level), min_steps=budget.transitions, progress=progress,
                 label=level)
    desc["reset_seeds"] = f"episode j (0-based, file order) reset with seed {ro.reset_seed_base} + j"
    desc["reset_seed_base"] = ro.reset_seed_base
    return ro.arrays, desc


def make_dataset(task: str, budget: str = "quick", seed: int = 0, root: Path | None = None,
                 progress: Progress | None = print) -> Path:
    """Generate ``task`` (e.g. ``"hopper-medium"``) into ``root/<task>/`` atomically; returns that directory."""
    env, level = split_task(task)
    env_id, cfg = TASK_ENVS[env], get_budget(budget)
    root = Path(root or data_root())
    with _torch_threads(1):
        return _make(task, env, level, env_id, cfg, seed, root, progress or (lambda msg: None))


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """Run with ``n`` torch threads: the networks here are tiny and per-step calls with 2+ threads are
    ~10x slower on a busy machine (threads spin waiting for each other)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _make(task: str, env: str, level: str, env_id: str, cfg: Budget, seed: int, root: Path, say: Progress) -> Path:
    t0 = time.time()
    say(f"[{task}] budget '{cfg.name}', seed {seed}, data root {root}")
    proc = behaviour_process(env_id, cfg, seed, root, say)
    if level == "medium-expert":
        parts = [_level_arrays(f"{env}-{lv}", lv, proc, cfg, seed, root, say) for lv in ("medium", "expert")]
        arrays = {k: np.concatenate([p[0][k] for p in parts]) for k in FIELDS}
        provenance = {"medium_part": parts[0][1], "expert_part": parts[1][1],
                      "policy": "medium dataset followed by expert dataset"}
    else:
        arrays, provenance = _collect(level, proc, cfg, seed, say)
    ds = OfflineDataset(**arrays, metadata={})
    rets = ds.episode_returns()
    refs = {k: proc.info[k] for k in ("ref_min_score", "ref_max_score", "ref_min_source", "ref_max_source",
                                      "ref_min_episodes", "ref_max_episodes")}
    ds.metadata = {
        "env_id": env_id, "task": task, "level": level, "seed": seed, "format": "mdpt-parquet",
        "semantics": "D4RL v2: rewards[i] = r(s_i, a_i); terminals = true termination; timeouts = time limit",
        "budget": {"name": cfg.name, "values": cfg.to_dict()},
        "behaviour": {"process": proc.info["kind"], "algorithm": proc.info["algorithm"], "process_seed": seed,
                      "process_dir": str(proc.directory), "expert": proc.info["expert"],
                      "fraction": cfg.fraction, "medium_snapshot": proc.medium,
                      "snapshots": len(proc.info["snapshots"]), **provenance},
        "n_transitions": ds.n_transitions, "n_episodes": int(len(rets)),
        "return_mean": float(rets.mean()), "return_std": float(rets.std()),
        "return_min": float(rets.min()), "return_max": float(rets.max()), **refs,
        "fingerprint": compute_fingerprint(ds), "mdpt_version": rl_core.__version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "generation_seconds": round(time.time() - t0, 1),
    }
    say(f"[save] {ds.n_transitions:,} transitions, {len(rets)} episodes, mean return {rets.mean():.1f} "
        f"(normalized {ds.normalized_score(rets.mean()):.1f})")
    out = save_dataset(ds, root / task)
    say(f"[{task}] done in {time.time() - t0:.0f} s -> {out}")
    return out


def _level_arrays(task: str, level: str, proc: Process, cfg: Budget, seed: int, root: Path,
                  say: Progress) -> tuple[dict, dict]:
    """A level's arrays, reused from ``root/<task>`` when it was made with the same budget and seed."""
    directory = root / task
    if (directory / "metadata.json").exists():
        meta = json.loads((directory / "metadata.json").read_text())
        if meta.get("budget", {}).get("values") == json.loads(json.dumps(cfg.to_dict())) and meta.get("seed") == seed:
            ds = load_dataset(str(directory))
            say(f"[collect] {level}: reusing {directory}")
            return {k: getattr(ds, k) for k in FIELDS}, {k: v for k, v in meta["behaviour"].items()
                                                         if k in ("policy", "actions", "reset_seeds", "reset_seed_base")}
    return _collect(level, proc, cfg, seed, say)


def ensure_dataset(task: str, root: Path | None = None, budget: str = "quick") -> OfflineDataset:
    """Load ``task`` from ``root`` (default ``data_root()``), generating it first if it does not exist."""
    split_task(task)
    directory = Path(root or data_root()) / task
    if not (directory / "metadata.json").exists():
        make_dataset(task, budget=budget, root=root)
    return load_dataset(task, root=root)
