"""The evaluator pool: a named async ``EvalCoordinator`` in front of N ``Evaluator`` actors, and its
callers' side, ``EvalClient``.

The driver creates the coordinator (``start_pool``) before ``Tuner.fit`` so the evaluators hold
their (fractional) CPUs/GPUs for the whole run and are never captured into a trial's placement
group; ``get_if_exists=True`` makes a resumed driver reuse or recreate it idempotently. Trials,
the driver's reconciliation and the recombination stage only call ``evaluate`` on the coordinator
found by name, through an ``EvalClient``.

A request is a dict (``eval_request``)::

    run_dir     the run directory whose result tables receive the rows
    job         rl_core.evaluation.EvalJob as a dict: snapshot, critic (own | artifact | other snapshot),
                inference, episodes, eval_seed, max_steps
    labels      trainables.results.EvalLabels as a dict: what the rows say about their origin

Requests are idempotent: an evaluator skips one whose rows exist (``rows_path``) and writes all
episode rows of a job in one atomic file, so a retried or resubmitted job never duplicates or loses
rows. The disk is therefore the ledger (``trainables/ledger.py``): whatever a dead process took
with it is found again as a snapshot without rows and resubmitted.

What survives what:

- a dead evaluator (its process, or its node; the coordinator lives on the driver's node,
  ``start_pool``): its job is retried on another evaluator, up to ``MAX_ATTEMPTS`` attempts. An
  evaluator whose process died is replaced; one lost with its node is not, while another evaluator
  remains (the pool shrinks with the cluster: a replacement would take the surviving CPUs that the
  lost node's restarted trials need). A replacement takes jobs only once it is up, so one that
  cannot be placed yet never holds a job while the live evaluators idle; and when no evaluator at
  all is up for ``FALLBACK_AFTER_S`` while a job waits (the restarted trials took the CPUs the
  replacement needs, and wait on their evaluations), the coordinator evaluates the job in its own
  process, one at a time, rather than leave the run stuck;
- a dead coordinator (``max_restarts=-1``): Ray recreates it (same name, new evaluators) and retries
  the calls in flight (``max_task_retries=-1``); an ``EvalClient`` whose call still fails with the
  coordinator's death looks it up again and resubmits every outstanding request;
- the same request twice at once (a restored trial and the driver's reconciliation): evaluated once,
  both callers get its summary;
- the driver: it owns the pool, which dies with it; the resumed driver and every restored trial
  reconcile from the disk (``trainables/ledger.py``).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import ray
from ray.exceptions import ActorDiedError, RayActorError, RayTaskError

from rl_core.evaluation import EvalJob
from trainables.results import EvalLabels, ResultStore, eval_rows

MAX_ATTEMPTS = 3  # evaluators a job may outlive (coordinator) / coordinator deaths a wait may outlive (client)
REPLACE_DELAY_S = 1.0  # pause before replacing an evaluator that died while starting
FALLBACK_AFTER_S = 60.0  # a job that waited this long while no evaluator is up runs in the coordinator
NODE_DEATH_WAIT_S = 60.0  # how long an unreachable evaluator's node is watched for being declared dead


def eval_request(run_dir: str | Path, job: EvalJob, labels: EvalLabels) -> dict[str, Any]:
    """The one dict shape the pool evaluates (module docstring)."""
    return {"run_dir": str(run_dir), "job": job.to_dict(), "labels": labels.to_dict()}


def rows_path(request: dict[str, Any]) -> Path:
    """The file that holds (or will hold) the evals rows of ``request``: its idempotency key on disk."""
    return ResultStore(request["run_dir"]).eval_path_for(EvalLabels(**request["labels"]), request["job"]["inference"])


def has_rows(request: dict[str, Any]) -> bool:
    """Whether the rows of ``request`` are written."""
    return rows_path(request).exists()


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
    """Hands jobs to idle evaluators; replaces dead ones; one evaluation per request in flight.
    Async: many trials call it at once."""

    def __init__(self, count: int, cpu: float, gpu: float, fallback_after_s: float = FALLBACK_AFTER_S) -> None:
        self.cpu, self.gpu, self.fallback_after_s = cpu, gpu, fallback_after_s
        self.idle: asyncio.Queue | None = None  # created on the actor's event loop (``_start``)
        self.here: asyncio.Lock | None = None  # one fallback evaluation at a time
        self.evaluators: list = [self._spawn() for _ in range(count)]
        self.live: set = set()  # evaluators that came up and have not been replaced
        self.node_of: dict = {}  # evaluator -> the node it came up on
        self.inflight: dict[str, asyncio.Future] = {}  # rows path -> the evaluation of that request
        self.stats: dict[str, Any] = {"jobs": 0, "skipped": 0, "busy_s": 0.0, "replaced": 0, "deduplicated": 0,
                                      "lost_with_node": 0, "fallback": 0, "jobs_by_node": {}}

    def _spawn(self):
        return Evaluator.options(num_cpus=self.cpu, num_gpus=self.gpu, scheduling_strategy="SPREAD").remote(
            max(1, int(self.cpu)))

    def _start(self) -> None:
        """On first use (on the event loop): watch the initial evaluators come up."""
        if self.idle is None:
            self.idle, self.here = asyncio.Queue(), asyncio.Lock()
            for ev in self.evaluators:
                asyncio.ensure_future(self._admit(ev))

    async def _admit(self, ev, delay: float = 0.0) -> None:
        """Put ``ev`` into the idle queue once it is up; replace it if it dies while starting."""
        await asyncio.sleep(delay)
        try:
            where = await ev.where.remote()
        except RayActorError as exc:
            await self._lost(ev, exc, delay=REPLACE_DELAY_S)
            return
        self.node_of[ev] = where["node_id"]
        self.live.add(ev)
        self.idle.put_nowait(ev)

    async def _lost(self, ev, exc: RayActorError, delay: float = 0.0) -> None:
        """``ev`` failed with ``exc``: drop it; replace it unless its node died and another evaluator remains."""
        if ev in self.evaluators:
            self.evaluators.remove(ev)
        self.live.discard(ev)
        node = self.node_of.pop(ev, None)
        try:
            ray.kill(ev)  # frees its resources if it is only unreachable
        except Exception:  # noqa: BLE001 - already gone
            pass
        # a dead process on a live node is reported as died at once; a lost node first makes it unreachable
        wait = 0.0 if isinstance(exc, ActorDiedError) else NODE_DEATH_WAIT_S
        if node is not None and self.evaluators and not await self._node_alive(node, wait):
            self.stats["lost_with_node"] += 1
            return
        new = self._spawn()
        self.evaluators.append(new)
        self.stats["replaced"] += 1
        asyncio.ensure_future(self._admit(new, delay))

    async def _node_alive(self, node_id: str, wait_s: float) -> bool:
        """Whether the GCS still counts ``node_id`` alive after watching it up to ``wait_s`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while True:
            nodes = await loop.run_in_executor(None, ray.nodes)
            if not any(n["NodeID"] == node_id and n["Alive"] for n in nodes):
                return False
            if loop.time() >= deadline:
                return True
            await asyncio.sleep(2.0)

    async def ready(self) -> list[dict[str, Any]]:
        """Waits until every evaluator is up; returns where each runs (node id, pid)."""
        self._start()
        return list(await asyncio.gather(*[ev.where.remote() for ev in self.evaluators]))

    async def where(self) -> dict[str, Any]:
        """The coordinator's own node id and process id."""
        return {"node_id": ray.get_runtime_context().get_node_id(), "pid": os.getpid()}

    async def evaluate(self, job: dict) -> dict[str, Any]:
        """Run the request ``job`` (``eval_request``) on an idle evaluator, or join its evaluation in flight."""
        self._start()
        key = str(rows_path(job))
        running = self.inflight.get(key)
        if running is not None:
            self.stats["deduplicated"] += 1
            return await asyncio.shield(running)
        task = asyncio.ensure_future(self._evaluate(job))
        self.inflight[key] = task
        task.add_done_callback(lambda _: self.inflight.pop(key, None))
        return await asyncio.shield(task)

    async def _evaluate(self, job: dict) -> dict[str, Any]:
        """On evaluator death replace it and retry on another, up to ``MAX_ATTEMPTS`` attempts."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            ev = await self._next()
            if ev is None:
                return self._count(await self._evaluate_here(job))
            try:
                out = await ev.evaluate.remote(job)
            except RayActorError as exc:
                if isinstance(exc, RayTaskError):  # the job raised; the evaluator is fine
                    self.idle.put_nowait(ev)
                    raise
                asyncio.ensure_future(self._lost(ev, exc))  # the job does not wait for that decision
                if attempt == MAX_ATTEMPTS:
                    raise
                continue
            except BaseException:
                self.idle.put_nowait(ev)
                raise
            self.idle.put_nowait(ev)
            return self._count(out)
        raise AssertionError("unreachable")

    async def _next(self):
        """An idle evaluator, or None once this job waited ``fallback_after_s`` while none was up."""
        while True:
            try:
                return await asyncio.wait_for(self.idle.get(), timeout=self.fallback_after_s)
            except asyncio.TimeoutError:
                if not self.live:
                    return None

    async def _evaluate_here(self, job: dict) -> dict[str, Any]:
        """The fallback: evaluate ``job`` in this process (CPU, ``cpu`` threads), one job at a time."""
        def run() -> tuple[Path, bool]:
            import torch

            torch.set_num_threads(max(1, int(self.cpu)))
            return run_request(job)

        async with self.here:
            path, skipped = await asyncio.get_running_loop().run_in_executor(None, run)
        self.stats["fallback"] += 1
        return dict(summarize(pq.read_table(path).to_pylist()), skipped=skipped,
                    **(await self.where()))

    def _count(self, out: dict[str, Any]) -> dict[str, Any]:
        self.stats["jobs"] += 1
        self.stats["skipped"] += int(out["skipped"])
        self.stats["busy_s"] += 0.0 if out["skipped"] else out["wall_s"]
        by_node = self.stats["jobs_by_node"]
        by_node[out["node_id"]] = by_node.get(out["node_id"], 0) + 1
        return out

    async def evaluate_many(self, jobs: list[dict]) -> list[dict[str, Any]]:
        return list(await asyncio.gather(*[self.evaluate(j) for j in jobs]))

    async def get_stats(self) -> dict[str, Any]:
        return dict(self.stats, evaluators=len(self.evaluators), outstanding=len(self.inflight))


def coordinator_name(run_dir: str | Path) -> str:
    """One pool per run directory, so sweeps sharing a cluster do not share (or kill) each other's pool."""
    digest = hashlib.sha1(str(Path(run_dir).resolve()).encode()).hexdigest()[:12]
    return f"mdpt_eval_{digest}"


def start_pool(run_dir: str | Path, count: int, cpu: float, gpu: float):
    """Create (or find) the run's named coordinator and its evaluators; returns the handle once all are up.

    The coordinator is pinned to the caller's node (the driver's: if that node dies, so does the driver),
    also when Ray restarts it. Losing another node then costs only the evaluators on it, never the
    coordinator and with it every evaluator, whose replacements could find the survivors' CPUs taken by
    the restarted trials while those wait on them forever. (Soft node affinity is not enough: measured on
    Ray 2.60, a zero-CPU actor with ``soft=True`` lands on any node.)"""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=False)
    coord = EvalCoordinator.options(name=coordinator_name(run_dir), get_if_exists=True,
                                    scheduling_strategy=here).remote(count, cpu, gpu)
    ray.get(coord.ready.remote())
    return coord


def get_coordinator(name: str):
    """The coordinator created by the driver (called from inside trials, same namespace)."""
    return ray.get_actor(name)


def failure_text(exc: BaseException) -> str:
    """``ExcType: message`` of a failed evaluation: the last line of the (remote) error."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return (lines[-1] if lines else type(exc).__name__)[:500]


def _coordinator_died(exc: BaseException) -> bool:
    """The call failed because the coordinator died (not because the job raised inside it)."""
    return isinstance(exc, RayActorError) and not isinstance(exc, RayTaskError)


class EvalClient:
    """A caller's side of the pool (a trial, the driver): submits requests to the coordinator named ``name``.

    ``submit`` (a trial's own snapshots) keeps at most one request outstanding once a first result is
    known, and feeds ``latest`` (the score the trial reports); ``submit_background`` (reconciliation,
    recombination) only queues, and ``drain_background`` waits for those, recording each failure in
    ``errors`` (rows path -> reason) instead of raising. When the coordinator died under a wait, the
    client finds it again and resubmits every outstanding request (idempotent), up to ``MAX_ATTEMPTS``
    times per wait."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.coord = get_coordinator(name)
        self.pending: list[tuple[dict, Any]] = []
        self.background: list[tuple[dict, Any]] = []
        self.latest: dict[str, Any] | None = None
        self.wait_s = 0.0
        self.errors: dict[str, str] = {}

    def submit(self, request: dict, final: bool) -> None:
        self.pending.append((request, self.coord.evaluate.remote(request)))
        self.drain(0 if final or self.latest is None else 1)

    def submit_background(self, requests: list[dict]) -> None:
        self.background += [(r, self.coord.evaluate.remote(r)) for r in requests]

    def _resubmit(self, attempts: int, exc: BaseException) -> int:
        if attempts >= MAX_ATTEMPTS:
            raise exc
        self.coord = get_coordinator(self.name)
        self.pending = [(r, self.coord.evaluate.remote(r)) for r, _ in self.pending]
        self.background = [(r, self.coord.evaluate.remote(r)) for r, _ in self.background]
        return attempts + 1

    def drain(self, keep: int = 0) -> None:
        """Wait for the own requests until at most ``keep`` are outstanding (a failed evaluation raises)."""
        t0, attempts = time.perf_counter(), 0
        while len(self.pending) > keep:
            _, ref = self.pending[0]
            try:
                self.latest = ray.get(ref)
            except RayActorError as exc:
                if not _coordinator_died(exc):
                    raise
                attempts = self._resubmit(attempts, exc)
                continue
            self.pending.pop(0)
        self.wait_s += time.perf_counter() - t0

    def drain_background(self, on_done: Callable[[dict, str | None], None] | None = None) -> dict[str, str]:
        """Wait for every background request, in completion order; ``on_done(request, reason | None)`` after
        each. Returns ``errors``."""
        t0, attempts = time.perf_counter(), 0
        while self.background:
            refs = [ref for _, ref in self.background]
            [ready], _ = ray.wait(refs, num_returns=1)
            i = refs.index(ready)
            request = self.background[i][0]
            try:
                ray.get(ready)
                reason = None
            except Exception as exc:  # noqa: BLE001 - one bad job must not stop the others
                if _coordinator_died(exc):
                    attempts = self._resubmit(attempts, exc)
                    continue
                reason = failure_text(exc)
                self.errors[str(rows_path(request))] = reason
            self.background.pop(i)
            if on_done is not None:
                on_done(request, reason)
        self.wait_s += time.perf_counter() - t0
        return self.errors

    def metrics(self) -> dict[str, float]:
        import math

        out = self.latest or {}
        return {"eval/score_mean": float(out.get("score_mean", math.nan)),
                "eval/return_mean": float(out.get("return_mean", math.nan)),
                "eval/step": float(out.get("step", -1)), "time/eval_wait_s": self.wait_s}
