"""The evaluation ledger: which evaluations a run directory should hold, read from the disk.

Rows are idempotent on their key (``trainables/results.py``) and a request's rows file is that key on
disk (``trainables.evaluator.rows_path``), so the disk is the ledger: an evaluation is done exactly when
its rows file exists, and whatever a dead process (evaluator, coordinator, trial, driver, node) took
with it is found again as a snapshot without rows. Reconciling = resubmitting those requests, which
is always safe (an evaluator skips a request whose rows exist; the coordinator evaluates a request
once however many callers submit it at the same time).

Every snapshot ``RUN_DIR/snapshots/<trial_id>/step_XXXXXXXX.pt`` of a training trial in the ``trials``
table should have the rows of its own evaluation (``self_eval_request``, built from the trial's
``TrialSpec`` in ``config_json``, exactly as the trial built it when it wrote the snapshot). Who
reconciles:

- a trial, whenever it starts (``trainables.train.train_trial``): its snapshots on disk without rows
  that this run will not write again (steps up to the checkpoint it resumed from, and steps off its
  remaining evaluation grid); the ones it re-reaches it rewrites and submits anyway;
- the driver (``sweeps/run.py``): at start, the snapshots of finished training trials (a dead
  driver's lost jobs); when the training stage ends, every training trial's snapshots (waiting for
  them: the backstop); recombination submits only jobs without rows; the end summary names what is
  still missing and why;
- the guidance search (``sweeps.guidance_search.reconcile_study``): finished trials' rows;
- ``mdpt status RUN_DIR`` reports the snapshots without rows (``self_eval_ledger``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainables.evaluator import eval_request, has_rows
from trainables.results import EvalLabels, read_table
from trainables.trial import TrialSpec


def self_eval_request(spec: TrialSpec, trial_id: str, step: int, snapshot: str | Path,
                      run_dir: str | Path | None = None) -> dict[str, Any]:
    """The request evaluating snapshot ``step`` of training trial ``trial_id`` with its own inference settings
    (``infer_source = self``): the one builder, used when the snapshot is written and when it is reconciled.
    ``run_dir`` (default: the spec's) receives the rows."""
    from rl_core.evaluation import EvalJob, eval_seed_for

    ev, ident = spec.eval, spec.identity
    job = EvalJob(snapshot=str(snapshot), inference=ev.inference, episodes=ev.episodes,
                  eval_seed=eval_seed_for(ident.seed, step), max_steps=ev.max_steps)
    labels = EvalLabels(sweep=spec.runtime.sweep, trial_id=trial_id, task=ident.task, algo=ident.algo,
                        train_guidance=ident.train_guidance, infer_source="self", diffusion_seed=ident.seed,
                        guidance_seed=ident.guidance_seed, step=step)
    return eval_request(run_dir if run_dir is not None else spec.runtime.run_dir, job, labels)


def snapshot_files(directory: Path) -> dict[int, Path]:
    """step -> file for the ``step_XXXXXXXX.pt`` files of a snapshot or guidance-artifact directory."""
    return {int(p.stem.split("_")[1]): p for p in Path(directory).glob("step_*.pt")}


def trial_self_requests(spec: TrialSpec, trial_id: str, run_dir: str | Path | None = None,
                        skip: Callable[[int], bool] = lambda step: False) -> list[dict[str, Any]]:
    """The own-evaluation requests of every snapshot of ``trial_id`` on disk whose step is not ``skip``-ped,
    in step order."""
    root = Path(run_dir if run_dir is not None else spec.runtime.run_dir)
    files = snapshot_files(root / "snapshots" / trial_id)
    return [self_eval_request(spec, trial_id, step, path, root) for step, path in sorted(files.items())
            if not skip(step)]


def missing(requests: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The requests whose rows are not written."""
    return [r for r in requests if not has_rows(r)]


@dataclass(frozen=True)
class LedgerEntry:
    """One snapshot of a training trial and whether its own evaluation's rows exist."""

    trial_id: str
    status: str  # the trial's status in the trials table: RUNNING | TERMINATED | ERROR | PENDING
    step: int
    snapshot: str
    done: bool
    request: dict


def self_eval_ledger(run_dir: str | Path) -> list[LedgerEntry]:
    """Every snapshot on disk of the run's training trials (the ``trials`` table), with its rows' state."""
    run_dir = Path(run_dir)
    out = []
    for row in sorted(read_table(run_dir, "trials").to_pylist(), key=lambda r: r["trial_id"]):
        if row["stage"] != "train":
            continue
        spec = TrialSpec.from_dict(json.loads(row["config_json"]))
        if spec.eval is None:
            continue
        for r in trial_self_requests(spec, row["trial_id"], run_dir):
            out.append(LedgerEntry(row["trial_id"], row["status"], r["labels"]["step"], r["job"]["snapshot"],
                                   has_rows(r), r))
    return out


def missing_self_evals(run_dir: str | Path, statuses: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """Requests of the training trials' snapshots without rows (of trials in ``statuses``; None = all)."""
    return [e.request for e in self_eval_ledger(run_dir)
            if not e.done and (statuses is None or e.status in statuses)]
