"""Tune function trainables: ``train_policy`` (diffusion training) and ``pretrain_guidance``.

Thin adapters over ``rl_core.train``: every full-state checkpoint of the loop is reported with
``tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(dir))`` (Tune copies it before
returning), and a restarted trial resumes from ``tune.get_checkpoint()`` with every RNG state.
``train_policy`` hands each eval snapshot (``RUN_DIR/snapshots/<trial_id>/step_X.pt``) to the
evaluator pool without waiting: at most one evaluation stays outstanding, and the trial blocks
only on the first and the final one, so every report carries a finite ``eval/score_mean``.
Whenever a trial starts (fresh or restored from a checkpoint) it first resubmits its snapshots on
disk that have no rows and that this run will not write again (``train_trial``; the evaluation
ledger, ``trainables/ledger.py``): a job lost with a dead process before the restored checkpoint
is evaluated again, and snapshots beyond the checkpoint are rewritten and submitted by the loop.
Training rows go to the ``train`` table, the trial's state (status, failure reason,
restored_from) to the ``trials`` table. An algorithm x training-guidance mode is a config.

Trial config: ``config["trial"]`` is a ``trainables.trial.TrialSpec`` dict (built by
``sweeps/expand.py`` + ``sweeps/run.py``); the trainable's first line turns it back into the typed object.

Episode seeds come from ``rl_core.evaluation.eval_seed_for(diffusion_seed, step)``, as in
``mdpt train``, and recombination evaluates a checkpoint on the same episodes (paired comparisons).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ray
from ray import tune

from rl_core.errors import DivergenceError
from trainables.evaluator import EvalClient
from trainables.ledger import missing, self_eval_request, trial_self_requests
from trainables.results import ResultStore, train_rows, trial_row
from trainables.trial import TrialSpec

STATE_FILE = "mdpt_trial.json"  # written into each reported checkpoint: the step it holds


class TrialRecord:
    """The trial's rows in the result tables (trials row, buffered train rows)."""

    def __init__(self, spec: TrialSpec, trial_id: str) -> None:
        self.spec, self.trial_id = spec, trial_id
        self.store = ResultStore(spec.runtime.run_dir)
        i = spec.identity
        self.ident = {"sweep": spec.runtime.sweep, "trial_id": trial_id, "task": i.task, "algo": i.algo,
                      "train_guidance": i.train_guidance, "seed": i.seed}
        self.rows: list[dict[str, Any]] = []

    def log(self, metrics: dict[str, float]) -> None:
        self.rows += train_rows(self.ident, metrics)

    def flush(self) -> None:
        self.store.write_train(self.rows)
        self.rows = []

    def mark(self, status: str, reason: str = "", restored_from: int | None = None) -> None:
        """Write the trials row; keeps num_failures / restored_from written earlier (by the driver callback)."""
        prev = self.store.read_trial(self.trial_id) or {}
        self.store.write_trial(trial_row(
            self.ident, stage=self.spec.stage, config=self.spec.to_dict(), status=status,
            failure_reason=reason or prev.get("failure_reason", ""),
            restored_from=prev.get("restored_from", -1) if restored_from is None else restored_from,
            num_failures=prev.get("num_failures", 0)))


def _restore() -> tuple[Path | None, int]:
    """(local copy of the checkpoint to resume from, its step) or (None, -1)."""
    ckpt = tune.get_checkpoint()
    if ckpt is None:
        return None, -1
    local = Path(tempfile.mkdtemp(prefix="mdpt_resume_"))
    ckpt.to_directory(str(local))
    return local, int(json.loads((local / STATE_FILE).read_text())["step"])


def _runtime(spec: TrialSpec) -> dict[str, Any]:
    """Device (CUDA when this worker sees a GPU and the trial asked for one) and thread count."""
    import torch

    gpu = spec.runtime.gpu > 0 and torch.cuda.is_available()
    return {"device": "cuda" if gpu else "cpu", "threads": spec.runtime.threads}


def _reporter(record: TrialRecord, latest: dict[str, float], restored_from: int, client: EvalClient | None = None):
    """on_checkpoint callback: flush train rows, then report metrics (and the latest eval) with the checkpoint."""

    def on_checkpoint(step: int, path: Path) -> None:
        (path / STATE_FILE).write_text(json.dumps({"step": step}))
        record.flush()
        metrics = {**latest, **(client.metrics() if client else {}), "step": float(step),
                   "restored_from": float(restored_from), "node_id": ray.get_runtime_context().get_node_id()}
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(str(path)))

    return on_checkpoint


def _logger(record: TrialRecord, latest: dict[str, float]):
    def report(metrics: dict[str, float]) -> None:
        record.log(metrics)
        latest.update(metrics)

    return report


def _run(config: dict, body) -> None:
    """Shared frame: trials row RUNNING -> TERMINATED; divergence ends the trial as ERROR, others re-raise."""
    from rl_core.data.io import load_dataset

    spec = TrialSpec.from_dict(config["trial"])
    record = TrialRecord(spec, tune.get_context().get_trial_id())
    resume_from, restored_from = _restore()
    record.mark("RUNNING", restored_from=restored_from)
    root = Path(spec.runtime.data_root) if spec.runtime.data_root else None
    try:
        body(spec, record, load_dataset(spec.identity.task, root=root), resume_from, restored_from)
    except DivergenceError as exc:  # deterministic: retrying from the checkpoint would diverge again
        record.flush()
        record.mark("ERROR", reason=f"DivergenceError: {exc}")
        return
    except Exception as exc:
        record.mark("ERROR", reason=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        if resume_from is not None:
            shutil.rmtree(resume_from, ignore_errors=True)
    record.mark("TERMINATED")


def train_trial(spec: TrialSpec, trial_id: str, dataset, client: EvalClient, *, resume_from: Path | None = None,
                restored_from: int = -1, report: Callable[[dict[str, float]], None] = lambda m: None,
                on_checkpoint: Callable[[int, Path], None] | None = None) -> None:
    """Train one diffusion policy into ``RUN_DIR/snapshots/<trial_id>``, evaluating every snapshot through
    ``client`` (``train_policy`` without Tune).

    First, the snapshots of this trial on disk without rows that this run will not write again are
    resubmitted in the background: those at or before ``restored_from`` (the checkpoint resumed from)
    and those off the remaining evaluation grid (every ``eval_every`` steps and the last step; e.g. a
    budget since lowered). Every submitted evaluation is waited for before returning, even on failure.
    """
    from rl_core.train import run_training

    cfg = dataclasses.replace(spec.train, **_runtime(spec))
    run_dir = Path(spec.runtime.run_dir)

    def rewritten(step: int) -> bool:  # rl_core.train writes a snapshot every eval_every steps and at the end
        return restored_from < step <= cfg.steps and (step % cfg.eval_every == 0 or step == cfg.steps)

    client.submit_background(missing(trial_self_requests(spec, trial_id, run_dir, skip=rewritten)))

    def on_snapshot(step: int, path: Path) -> None:
        client.submit(self_eval_request(spec, trial_id, step, path), final=step >= cfg.steps)

    try:
        run_training(cfg, dataset, workdir=run_dir / "snapshots" / trial_id, report=report,
                     on_snapshot=on_snapshot, on_checkpoint=on_checkpoint, resume_from=resume_from)
    finally:
        try:
            client.drain()  # snapshots written before a failure still get their rows
        finally:
            client.drain_background()  # failures are left to the driver's reconciliation, which reports them


def train_policy(config: dict) -> None:
    """Tune trainable: train one diffusion policy, evaluating every snapshot through the pool (``train_trial``)."""

    def body(spec: TrialSpec, record: TrialRecord, dataset, resume_from: Path | None, restored_from: int) -> None:
        client, latest = EvalClient(spec.runtime.coordinator), {}
        train_trial(spec, record.trial_id, dataset, client, resume_from=resume_from, restored_from=restored_from,
                    report=_logger(record, latest), on_checkpoint=_reporter(record, latest, restored_from, client))

    _run(config, body)


def pretrain_guidance(config: dict) -> None:
    """Tune trainable: pretrain one guidance module; artifacts under RUN_DIR/guidance/<trial_id>/."""
    from rl_core.train import run_pretraining

    def body(spec: TrialSpec, record: TrialRecord, dataset, resume_from: Path | None, restored_from: int) -> None:
        cfg = dataclasses.replace(spec.pretrain, **_runtime(spec))
        latest: dict[str, float] = {}
        workdir = Path(spec.runtime.run_dir) / "guidance" / record.trial_id
        run_pretraining(cfg, dataset, workdir=workdir, report=_logger(record, latest),
                        on_checkpoint=_reporter(record, latest, restored_from),
                        resume_from=resume_from)

    _run(config, body)
