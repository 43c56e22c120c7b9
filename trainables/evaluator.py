"""The evaluator pool: a named async ``EvalCoordinator`` in front of N ``Evaluator`` actors.

The driver creates the coordinator (``start_pool``) before ``Tuner.fit`` so the evaluators hold
their (fractional) CPUs/GPUs for the whole run and are never captured into a trial's placement
group; ``get_if_exists=True`` makes a resumed driver reuse or recreate it idempotently. Trials
and the recombination stage only call ``evaluate`` on the coordinator found by name.

A request is a dict (``eval_request``)::

    run_dir     the run directory whose result tables receive the rows
    job         rl_core.evaluation.EvalJob as a dict: snapshot, critic (own | artifact | other snapshot),
                inference, episodes, eval_seed, max_steps
    labels      trainables.results.EvalLabels as a dict: what the rows say about their origin

Requests are idempotent: an evaluator skips one whose rows exist (``ResultStore.eval_path_for``) and
writes all episode rows of a job in one atomic file, so a retried or resubmitted job never
duplicates or loses rows. A dead evaluator is replaced and its job retried, up to
``MAX_ATTEMPTS`` attempts.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import ray
from ray.exceptions import RayActorError

from rl_core.evaluation import EvalJob
from trainables.results import EvalLabels, ResultStore, eval_rows

MAX_ATTEMPTS = 3


def eval_request(run_dir: str | Path, job: EvalJob, labels: EvalLabels) -> dict[str, Any]:
    """The one dict shape the pool evaluates (module docstring)."""
    return {"run_dir": str(run_dir), "job": job.to_dict(), "labels": labels.to_dict()}


def summarize(rows: list[dict]) -> dict[str, float]:
    """Mean return / normalized score of one job's episode rows (what trials report to Tune)."""
    n = len(rows)
    return {"step": rows[0]["step"], "episodes": n, "wall_s": rows[0]["wall_s"],
            "return_mean": sum(r["return"] for r in rows) / n,
            "score_mean": sum(r["normalized_score"] for r in rows) / n}


def run_request(request: dict[str, Any], device: str = "cpu") -> tuple[Path, bool]:
    """Evaluate ``request`` in this process unless its rows exist; returns (rows file, skipped).

    The single evaluation path of the project: the pool's evaluators, `mdpt train` and the tests call it."""
    from rl_core.evaluation import run_eval_job

    job, labels = EvalJob.from_dict(request["job"]), EvalLabels(**request["labels"])
    store = ResultStore(request["run_dir"])
    path = store.eval_path_for(labels, job.inference)
    if path.exists():
        return path, True
    t0 = time.perf_counter()
    results = run_eval_job(job, device)
    rows = eval_rows(labels, job.inference, results, time.perf_counter() - t0, guidance=job.guidance,
                     run_dir=request["run_dir"])
    return store.write_eval_job(rows), False


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

    def evaluate(self, request: dict) -> dict[str, Any]:
        """Evaluate ``request`` unless its rows exist; returns the summary of its rows."""
        path, skipped = run_request(request, self.device)
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
        """Run the request ``job`` (``eval_request``) on an idle evaluator; on evaluator death replace it and retry."""
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
