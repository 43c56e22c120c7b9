"""``make_dataset`` / ``make_datasets`` / ``ensure_dataset``: tasks (env x level) rolled out from the env's
policy set into ``<root>/<task>/``, saved atomically with provenance, budget, reference scores and
reference lines; ``dataset_reference_lines``: a dataset's reference lines (stored, or measured now, plus the
computed ``no_progress`` bound).

Levels (the package docstring has the seeds): random = uniform actions; medium / expert = the policy
set's medium / expert policy with its action noise; medium-replay = each learning-process snapshot in
turn (round 0 up to the medium round), the budget's ``replay_transitions`` spread evenly over them;
medium-expert = the medium dataset followed by the expert dataset.
"""

from __future__ import annotations

import functools
import json
import math
import os
import time
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

import rl_core
from rl_core.data.dataset import FIELDS, OfflineDataset, compute_fingerprint
from rl_core.data.envs import ALIVE_BONUS, ENV_DIMS, TASK_ENVS
from rl_core.data.gen.budgets import Budget, get_budget
from rl_core.data.gen.collect import (ENV_STEP_LIMIT, N_ENVS, REFERENCE_POLICIES, Progress, reference_lines,
                                      rollout)
from rl_core.data.gen.policyset import PolicySet, load_policy_set
from rl_core.data.io import KNOWN_TASKS, META_FILE, data_root, load_dataset, save_dataset, split_task
from rl_core.errors import DatasetError

SEMANTICS = "D4RL v2: rewards[i] = r(s_i, a_i); terminals = true termination; timeouts = time limit"


def _collect(level: str, pset: PolicySet, budget: Budget, seed: int, n_envs: int,
             progress: Progress) -> tuple[dict, dict]:
    """Arrays and a provenance dict for one level (not medium-expert) of ``pset``'s env."""
    env_id, noise = pset.env_id, pset.action_noise
    actions = f"policy action + Gaussian noise std {noise}, clipped to [-1, 1]"
    if level == "medium-replay":
        rounds = pset.replay_rounds
        parts, per_round, collected = [], [], 0
        for i, r in enumerate(rounds):
            need = max(1, math.ceil((i + 1) * budget.replay_transitions / len(rounds)) - collected)
            ro = rollout(env_id, pset.policy(r), seed=seed, stream="replay", offset=10_000 * r, noise=noise,
                         min_steps=need, n_envs=n_envs)
            parts.append(ro.arrays)
            collected += len(ro)
            per_round.append({"round": r, "transitions": len(ro), "episodes": len(ro.returns),
                              "mean_return": float(ro.returns.mean()), "reset_seed_base": ro.reset_seed_base})
        progress(f"  medium-replay: {collected:,} transitions from {len(rounds)} snapshots")
        arrays = {k: np.concatenate([p[k] for p in parts]) for k in FIELDS}
        return arrays, {"policy": f"learning-process snapshots (DAgger rounds {rounds[0]}..{rounds[-1]}), in order",
                        "actions": actions, "rounds": per_round,
                        "reset_seeds": "round r's episode j (0-based, in file order within the round) reset with "
                                       "seed rounds[r].reset_seed_base + j"}
    if level == "random":
        policy, desc = None, {"policy": "uniform random actions in [-1, 1]"}
    else:
        policy = pset.policy(level)
        desc = {"policy": f"{level} policy of the policy set"
                          + (f" (DAgger round {pset.info['medium']['round']})" if level == "medium" else
                             f" ({pset.info['expert'].get('source', '')})"),
                "actions": actions}
    ro = rollout(env_id, policy, seed=seed, stream=level, noise=noise, min_steps=budget.transitions,
                 n_envs=n_envs, progress=progress, label=level)
    desc["reset_seeds"] = f"episode j (0-based, file order) reset with seed {ro.reset_seed_base} + j"
    desc["reset_seed_base"] = ro.reset_seed_base
    return ro.arrays, desc


def _is_current(directory: Path, budget: Budget, seed: int, pset: PolicySet) -> bool:
    """Whether ``directory`` holds a dataset made with this budget, seed and policy set."""
    try:
        meta = json.loads((directory / META_FILE).read_text())
    except (OSError, ValueError):
        return False
    return (meta.get("budget", {}).get("values") == json.loads(json.dumps(budget.to_dict()))
            and meta.get("seed") == seed and meta.get("behaviour", {}).get("policies_fingerprint") == pset.fingerprint)


def _level_arrays(task: str, level: str, pset: PolicySet, budget: Budget, seed: int, root: Path, n_envs: int,
                  say: Progress) -> tuple[dict, dict]:
    """A level's arrays, reused from ``root/<task>`` when it was made with the same budget, seed and policies."""
    directory = root / task
    if _is_current(directory, budget, seed, pset):
        ds = load_dataset(str(directory))
        say(f"  {level}: reusing {directory}")
        keep = ("policy", "actions", "reset_seeds", "reset_seed_base")
        return {k: getattr(ds, k) for k in FIELDS}, {k: v for k, v in ds.metadata["behaviour"].items() if k in keep}
    return _collect(level, pset, budget, seed, n_envs, say)


def make_dataset(task: str, budget: str = "quick", seed: int = 0, root: Path | None = None,
                 policies: Path | None = None, n_envs: int = N_ENVS, progress: Progress | None = print) -> Path:
    """Generate ``task`` (e.g. ``"hopper-medium"``) into ``root/<task>/`` atomically; returns that directory.

    ``policies`` is a policy-set directory (default: the shipped one of the task's env)."""
    env, level = split_task(task)
    cfg, say = get_budget(budget), progress or (lambda msg: None)
    root = Path(root or data_root())
    pset = load_policy_set(env, policies)
    t0, c0 = time.time(), time.process_time()
    say(f"[{task}] budget '{cfg.name}', seed {seed}, policies {pset.source} ({pset.fingerprint})")
    if level == "medium-expert":
        parts = [_level_arrays(f"{env}-{lv}", lv, pset, cfg, seed, root, n_envs, say) for lv in ("medium", "expert")]
        arrays = {k: np.concatenate([p[0][k] for p in parts]) for k in FIELDS}
        provenance = {"medium_part": parts[0][1], "expert_part": parts[1][1],
                      "policy": "medium dataset followed by expert dataset"}
    else:
        arrays, provenance = _collect(level, pset, cfg, seed, n_envs, say)
    ds = OfflineDataset(**arrays, metadata={})
    rets = ds.episode_returns()
    refs = pset.references
    info = pset.info
    ds.metadata = {
        "env_id": pset.env_id, "task": task, "level": level, "seed": seed, "format": "mdpt-parquet",
        "semantics": SEMANTICS, "budget": {"name": cfg.name, "values": cfg.to_dict()},
        "behaviour": {"policies": pset.source, "policies_fingerprint": pset.fingerprint,
                      "expert": info["expert"].get("source"), "medium_round": info["medium"]["round"],
                      "medium_band": info["medium"]["band"], "action_noise": pset.action_noise,
                      "learning_process": info["dagger"]["algorithm"], **provenance},
        "n_transitions": ds.n_transitions, "n_episodes": int(len(rets)),
        "return_mean": float(rets.mean()), "return_std": float(rets.std()),
        "return_min": float(rets.min()), "return_max": float(rets.max()),
        **{k: refs[k] for k in ("ref_min_score", "ref_max_score", "ref_min_source", "ref_max_source")},
        "ref_source": "mdpt: this env's policy set (random and expert returns)",
        "reference_lines": _env_lines(pset.env_id),  # random and stand-still policies (dataset_reference_lines)
        "fingerprint": compute_fingerprint(ds), "mdpt_version": rl_core.__version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "generation_seconds": round(time.time() - t0, 1), "generation_cpu_seconds": round(time.process_time() - c0, 1),
    }
    out = save_dataset(ds, root / task)
    say(f"[{task}] {ds.n_transitions:,} transitions, {len(rets)} episodes, mean return {rets.mean():.1f} "
        f"(normalized {ds.normalized_score(rets.mean()):.1f}), fingerprint {ds.metadata['fingerprint']}, "
        f"{time.time() - t0:.0f} s -> {out}")
    return out


@functools.lru_cache(maxsize=None)
def _env_lines(env_id: str) -> dict:
    """``reference_lines`` of ``env_id`` at the env's step limit (deterministic: measured once per process)."""
    return reference_lines(env_id)


def dataset_reference_lines(ds: OfflineDataset, max_episode_steps: int | None = None) -> dict:
    """The reference lines of ``ds`` for episodes capped at ``max_episode_steps`` (None = ``ENV_STEP_LIMIT``):
    the random and stand-still policies (``collect.reference_lines``) as stored in its metadata when the dataset
    was made with that cap, else (datasets imported or made before mdpt stored them, or another cap) measured now
    in its env with the same fixed seed and episodes, so the numbers are the same; plus ``dataset``: the
    behaviour data's own episodes (mean return, std and length); and ``no_progress`` (``no_progress_line``,
    computed, never stored) when the env's alive bonus is known. ``source`` says which. DatasetError when the
    dataset's env is unknown."""
    cap = int(max_episode_steps or ENV_STEP_LIMIT)
    if not ds.env_id:
        raise DatasetError(f"dataset '{ds.task}': no env_id in its metadata, so its reference lines cannot be measured")
    stored = ds.metadata.get("reference_lines")
    if stored and stored.get("max_episode_steps") == cap:
        lines = dict(stored, source="stored with the dataset (measured when it was made)")
    elif ds.env_id not in ENV_DIMS:
        raise DatasetError(f"dataset '{ds.task}': env_id '{ds.env_id}' is not an env mdpt runs "
                           f"({', '.join(ENV_DIMS)}), so its reference lines cannot be measured")
    else:
        lines = dict(reference_lines(ds.env_id, max_episode_steps=cap), source="measured from the env at run start")
    rets, ends = ds.episode_returns(), ds.episode_ends()
    lengths = np.diff(np.concatenate([[-1], ends]))
    lines["dataset"] = {"policy": "the behaviour data (the dataset's own episodes)",
                        "return_mean": float(rets.mean()), "return_std": float(rets.std()),
                        "length_mean": float(lengths.mean()), "episodes": int(len(rets))}
    if ds.env_id in ALIVE_BONUS:  # an env without a known alive bonus has no such line
        lines["no_progress"] = no_progress_line(ds.env_id, cap)
    return lines


def no_progress_line(env_id: str, max_episode_steps: int) -> dict:
    """The ``no_progress`` reference line of ``env_id``: the most an episode of ``max_episode_steps`` steps can
    return without moving forward, ``ALIVE_BONUS[env_id]`` x the cap (``rl_core.data.envs.ALIVE_BONUS`` cites the
    reward's source). Computed, not measured: std 0, length = the cap, 0 episodes, seed -1. A score above it
    proves forward motion; below it the score alone cannot tell (movement costs electricity)."""
    cap = int(max_episode_steps)
    return {"policy": REFERENCE_POLICIES["no_progress"], "return_mean": float(ALIVE_BONUS[env_id] * cap),
            "return_std": 0.0, "length_mean": float(cap), "episodes": 0, "seed": -1,
            "source": f"computed: alive bonus {ALIVE_BONUS[env_id]:g} x the {cap}-step cap (no episodes)"}


def _worker(task: str, budget: str, seed: int, root: str, policies: str | None, n_envs: int) -> tuple[str, float]:
    c0 = time.process_time()
    make_dataset(task, budget, seed, Path(root), Path(policies) if policies else None, n_envs, progress=None)
    return task, time.process_time() - c0


def make_datasets(tasks: Iterable[str], budget: str = "quick", seed: int = 0, root: Path | None = None,
                  policies: Path | None = None, jobs: int | None = None, force: bool = False,
                  progress: Progress = print) -> dict:
    """Make several tasks, ``jobs`` processes in parallel (default: the CPUs this process may use); tasks whose
    dataset exists with the same budget, seed and policies are skipped unless ``force``. medium-expert tasks
    run last and reuse their medium and expert datasets. ``policies`` (a set or a root of ``<env>/`` sets)
    replaces the shipped sets.
    Returns {"made": [...], "skipped": [...], "wall_s", "cpu_s"} (CPU time of all processes)."""
    from concurrent.futures import ProcessPoolExecutor, as_completed
    import multiprocessing

    cfg, root = get_budget(budget), Path(root or data_root())
    tasks = list(dict.fromkeys(tasks))
    for t in tasks:
        split_task(t)
    sets = {env: load_policy_set(env, policies)
            for env in {split_task(t)[0] for t in tasks}}
    todo = [t for t in tasks if force or not _is_current(root / t, cfg, seed, sets[split_task(t)[0]])]
    skipped = [t for t in tasks if t not in todo]
    if skipped:
        progress(f"[make] up to date, skipped: {', '.join(skipped)}")
    cost = {"ant": 4, "halfcheetah": 3, "walker2d": 2, "hopper": 1}  # longest first keeps the pool busy
    base = sorted([t for t in todo if not t.endswith("-medium-expert")],
                  key=lambda t: (-cost[split_task(t)[0]], split_task(t)[1] == "medium-replay"))
    mixed = [t for t in todo if t.endswith("-medium-expert")]
    for t in mixed:  # their parts first (when not already current), so they are made once and reused
        env = split_task(t)[0]
        base += [p for p in (f"{env}-medium", f"{env}-expert") if p not in base
                 and not _is_current(root / p, cfg, seed, sets[env])]
    jobs = max(1, min(jobs or len(os.sched_getaffinity(0)), len(base) or 1))
    t0, c0 = time.time(), time.process_time()
    cpu = 0.0
    pol = {e: str(s.directory) for e, s in sets.items()}  # workers load the same sets
    progress(f"[make] {len(base) + len(mixed)} dataset(s), budget '{budget}', seed {seed}, {jobs} process(es), "
             f"data root {root}")
    def done(n: int, task: str) -> None:
        meta = json.loads((root / task / META_FILE).read_text())
        progress(f"[make] {n}/{len(base) + len(mixed)} {task}: {meta['n_transitions']:,} transitions, "
                 f"mean return {meta['return_mean']:.1f}, {meta['generation_seconds']:.0f} s")

    if jobs == 1:  # in this process
        for n, t in enumerate(base, 1):
            make_dataset(t, budget, seed, root, Path(pol[split_task(t)[0]]), progress=None)
            done(n, t)
    elif base:
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futs = [pool.submit(_worker, t, budget, seed, str(root), pol[split_task(t)[0]], N_ENVS) for t in base]
            for n, fut in enumerate(as_completed(futs), 1):
                task, c = fut.result()
                cpu += c
                done(n, task)
    for t in mixed:
        make_dataset(t, budget, seed, root, Path(pol[split_task(t)[0]]), progress=None)
        progress(f"[make] {t}: medium + expert")
    wall, cpu = time.time() - t0, cpu + time.process_time() - c0
    progress(f"[make] done: {len(base) + len(mixed)} dataset(s) in {wall:.0f} s wall, {cpu:.0f} s CPU")
    return {"made": base + mixed, "skipped": skipped, "wall_s": wall, "cpu_s": cpu}


def is_current_policies(meta: dict) -> bool:
    """Whether a generated dataset's metadata names the shipped policy set of its env (as it is now)."""
    try:
        return meta["behaviour"]["policies_fingerprint"] == load_policy_set(meta["env_id"]).fingerprint
    except (KeyError, TypeError, DatasetError):
        return False


def ensure_dataset(task: str, root: Path | None = None, budget: str = "quick") -> OfflineDataset:
    """Load ``task`` from ``root`` (default ``data_root()``), generating it first if it does not exist."""
    split_task(task)
    directory = Path(root or data_root()) / task
    if not (directory / META_FILE).exists():
        make_dataset(task, budget=budget, root=root)
    return load_dataset(task, root=root)


def all_tasks(envs: Iterable[str] = tuple(TASK_ENVS)) -> list[str]:
    """Every known task of ``envs`` (default: all 20)."""
    return [t for t in KNOWN_TASKS if split_task(t)[0] in set(envs)]
