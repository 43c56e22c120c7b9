"""The evaluator pool: a named async ``EvalCoordinator`` in front of N ``Evaluator`` actors.

The driver creates the coordinator (``start_pool``) before ``Tuner.fit`` so the evaluators hold
their (fractional) CPUs/GPUs for the whole run and are never captured into a trial's placement
group; ``get_if_exists=True`` makes a resumed driver reuse or recreate it idempotently. Trials
and the recombination stage only call ``evaluate`` on the coordinator found by name.

A job is a dict::

    run_dir             the run directory whose result tables receive the rows
    snapshot            path of an eval snapshot (rl_core/snapshot.py)
    guidance            None (the snapshot's own critic) or the path of another critic ...
    guidance_format     ... stored as a guidance "artifact" (rl_core/guidance.py) or in a "snapshot"
    inference           InferenceConfig as a dict
    episodes, eval_seed, max_steps
    sweep, trial_id, task, algo, train_guidance, infer_source, diffusion_seed, guidance_seed, step

Jobs are idempotent: an evaluator skips a job whose rows exist (``ResultStore.has_eval``) and
writes all episode rows of a job in one atomic file, so a retried or resubmitted job never
duplicates or loses rows. A dead evaluator is replaced and its job retried, up to
``MAX_ATTEMPTS`` attempts.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import ray
from ray.exceptions import RayActorError

from trainables.results import ResultStore

MAX_ATTEMPTS = 3
NO_SCALE_METHODS = ("none",)  # methods without a scale: infer_scale is NaN (as in `mdpt train`)


def infer_scale(inference: dict) -> float:
    """The ``infer_scale`` column of an inference config (NaN when the method has no scale)."""
    return math.nan if inference["method"] in NO_SCALE_METHODS else float(inference["scale"])


def _key(job: dict) -> tuple:
    inf = job["inference"]
    return job["trial_id"], job["step"], job["infer_source"], inf["method"], infer_scale(inf)


def summarize(rows: list[dict]) -> dict[str, float]:
    """Mean return / normalized score of one job's episode rows (what trials report to Tune)."""
    n = len(rows)
    return {"step": rows[0]["step"], "episodes": n, "wall_s": rows[0]["wall_s"],
            "return_mean": sum(r["return"] for r in rows) / n,
            "score_mean": sum(r["normalized_score"] for r in rows) / n}


def run_job(job: dict, device: str = "cpu") -> list[dict[str, Any]]:
    """Evaluate one job in this process and return its episode rows (EVALS_SCHEMA)."""
    from rl_core.evaluation import evaluate
    from rl_core.guidance import load_artifact
    from rl_core.inference import InferenceConfig
    from rl_core.snapshot import load_snapshot, make_actor
    from rl_core.types import Normalizer

    t0 = time.perf_counter()
    snap = load_snapshot(job["snapshot"], device=device)
    guidance, g_norm = None, None
    if job.get("guidance") and job.get("guidance_format", "artifact") == "snapshot":
        other = load_snapshot(job["guidance"], device=device)
        if other.dataset_meta.get("fingerprint") != snap.dataset_meta.get("fingerprint"):
            raise ValueError(f"guidance snapshot {job['guidance']} was trained on another dataset than {job['snapshot']}")
        guidance, g_norm = other.guidance, other.normalizer
    elif job.get("guidance"):
        guidance, meta = load_artifact(job["guidance"], expect_fingerprint=snap.dataset_meta.get("fingerprint"),
                                       obs_dim=snap.obs_dim, act_dim=snap.act_dim, device=device)
        g_norm = Normalizer.from_dict(meta["normalizer"])
    actor = make_actor(snap, InferenceConfig(**job["inference"]), guidance=guidance, guidance_normalizer=g_norm)
    meta = snap.dataset_meta
    results = evaluate(actor, meta["env_id"], episodes=job["episodes"], seed=job["eval_seed"],
                       ref_min=float(meta["ref_min_score"]), ref_max=float(meta["ref_max_score"]),
                       max_steps=job["max_steps"])
    wall = time.perf_counter() - t0
    ident = {k: job[k] for k in ("sweep", "trial_id", "task", "algo", "train_guidance", "infer_source",
                                 "diffusion_seed", "guidance_seed", "step")}
    return [dict(ident, infer_method=job["inference"]["method"], infer_scale=infer_scale(job["inference"]),
                 episode=r.episode, eval_seed=r.eval_seed, normalized_score=r.normalized_score, length=r.length,
                 wall_s=wall, **{"return": r.ret}) for r in results]


@ray.remote(max_restarts=0)
class Evaluator:
    """Rolls out snapshots; one job at a time. Device: CUDA when this process sees a GPU."""

    def __init__(self, threads: int) -> None:
        import torch

        torch.set_num_threads(max(1, threads))
        self.device = "cuda" if torch.cuda.is_available() else "cpu"

    def where(self) -> dict[str, Any]:
        """This evaluator's node id and process id."""
        return {"node_id": ray.get_runtime_context().get_node_id(), "pid": os.getpid()}

    def evaluate(self, job: dict) -> dict[str, Any]:
        """Evaluate ``job`` unless its rows exist; returns the summary of its rows."""
        store = ResultStore(job["run_dir"])
        path = store.eval_path(*_key(job))
        skipped = path.exists()
        if not skipped:
            path = store.write_eval_job(run_job(job, self.device))
        return dict(summarize(pq.read_table(path).to_pylist()), skipped=skipped, **self.where())


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class EvalCoordinator:
    """Hands jobs to idle evaluators; replaces dead ones. Async: many trials call it at once."""

    def __init__(self, count: int, cpu: float, gpu: float) -> None:
        self.cpu, self.gpu = cpu, gpu
        self.idle: asyncio.Queue = asyncio.Queue()
        self.evaluators = [self._new() for _ in range(count)]
        for ev in self.evaluators:
            self.idle.put_nowait(ev)
        self.stats: dict[str, Any] = {"jobs": 0, "skipped": 0, "busy_s": 0.0, "replaced": 0, "jobs_by_node": {}}

    def _new(self):
        return Evaluator.options(num_cpus=self.cpu, num_gpus=self.gpu, scheduling_strategy="SPREAD").remote(
            max(1, int(self.cpu)))

    async def ready(self) -> list[dict[str, Any]]:
        """Waits until every evaluator is up; returns where each runs (node id, pid)."""
        return list(await asyncio.gather(*[ev.where.remote() for ev in self.evaluators]))

    async def evaluate(self, job: dict) -> dict[str, Any]:
        """Run ``job`` on an idle evaluator; on evaluator death replace it and retry."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            ev = await self.idle.get()
            try:
                out = await ev.evaluate.remote(job)
            except RayActorError:
                self.evaluators.remove(ev)
                ev = self._new()
                self.evaluators.append(ev)
                self.stats["replaced"] += 1
                if attempt == MAX_ATTEMPTS:
                    raise
                continue
            finally:
                self.idle.put_nowait(ev)
            self.stats["jobs"] += 1
            self.stats["skipped"] += int(out["skipped"])
            self.stats["busy_s"] += 0.0 if out["skipped"] else out["wall_s"]
            by_node = self.stats["jobs_by_node"]
            by_node[out["node_id"]] = by_node.get(out["node_id"], 0) + 1
            return out
        raise AssertionError("unreachable")

    async def evaluate_many(self, jobs: list[dict]) -> list[dict[str, Any]]:
        return list(await asyncio.gather(*[self.evaluate(j) for j in jobs]))

    async def get_stats(self) -> dict[str, Any]:
        return dict(self.stats, evaluators=len(self.evaluators))


def coordinator_name(run_dir: str | Path) -> str:
    """One pool per run directory, so sweeps sharing a cluster do not share (or kill) each other's pool."""
    digest = hashlib.sha1(str(Path(run_dir).resolve()).encode()).hexdigest()[:12]
    return f"mdpt_eval_{digest}"


def start_pool(run_dir: str | Path, count: int, cpu: float, gpu: float):
    """Create (or find) the run's named coordinator and its evaluators; returns the handle once all are up."""
    coord = EvalCoordinator.options(name=coordinator_name(run_dir), get_if_exists=True).remote(count, cpu, gpu)
    ray.get(coord.ready.remote())
    return coord


def get_coordinator(name: str):
    """The coordinator created by the driver (called from inside trials, same namespace)."""
    return ray.get_actor(name)
