"""The evaluation ledger on real files: a run directory's snapshots without rows are found and resubmitted
exactly once, and a trial restored from a checkpoint older than its last snapshot ends with every
snapshot evaluated (real tiny DQL snapshots, real evaluations)."""

from __future__ import annotations

import dataclasses
import shutil
from collections import Counter
from pathlib import Path

import pytest

from sweeps.cmd_sweep import status_text
from sweeps.run import write_run_dir
from sweeps.expand import expand
from tests.sweeps.sweep_helpers import eval_keys, tiny_spec
from trainables.evaluator import EvalClient, coordinator_name, has_rows, run_request, start_pool
from trainables.ledger import missing_self_evals, self_eval_ledger, self_eval_request
from trainables.results import ResultStore, trial_row
from trainables.trial import Runtime, TrialSpec

TRIAL = "trial_0"


def _trial(run_dir: Path, data_root: Path) -> TrialSpec:
    """The sweep's first training trial (tiny DQL), 30 steps: snapshots at 10, 20, 30, checkpoints at 20, 30."""
    spec = next(s for s in expand(tiny_spec()) if s.name == "train").items[0]
    train = dataclasses.replace(spec.train, steps=30, eval_every=10, checkpoint_every=20, log_every=10)
    return spec.replace(train=train, runtime=Runtime(sweep="tiny", run_dir=str(run_dir), data_root=str(data_root),
                                                     coordinator=coordinator_name(run_dir)))


def _record(spec: TrialSpec, status: str) -> None:
    i = spec.identity
    ident = {"sweep": "tiny", "trial_id": TRIAL, "task": i.task, "algo": i.algo, "train_guidance": i.train_guidance,
             "seed": i.seed}
    ResultStore(spec.runtime.run_dir).write_trial(trial_row(ident, stage="train", config=spec.to_dict(), status=status))


def _train_and_die(spec: TrialSpec, evaluated: tuple[int, ...], keep_checkpoint: Path | None = None) -> None:
    """A first attempt of the trial: writes its three snapshots, evaluates only ``evaluated`` (the others'
    jobs died with it), and copies its step-20 checkpoint to ``keep_checkpoint``."""
    from rl_core.data.io import load_dataset
    from rl_core.train import run_training

    def on_snapshot(step: int, path: Path) -> None:
        if step in evaluated:
            run_request(self_eval_request(spec, TRIAL, step, path))

    def on_checkpoint(step: int, path: Path) -> None:
        if step == 20 and keep_checkpoint is not None:
            shutil.copytree(path, keep_checkpoint)

    ds = load_dataset(spec.identity.task, root=Path(spec.runtime.data_root))
    run_training(spec.train, ds, workdir=Path(spec.runtime.run_dir) / "snapshots" / TRIAL, on_snapshot=on_snapshot,
                 on_checkpoint=on_checkpoint)


def test_three_snapshots_rows_for_two_resubmit_exactly_one(tiny_data_root, tmp_path):
    run_dir = tmp_path / "run"
    spec = _trial(run_dir, tiny_data_root)
    _record(spec, "TERMINATED")
    _train_and_die(spec, evaluated=(10, 20))
    assert sorted(e.step for e in self_eval_ledger(run_dir)) == [10, 20, 30]

    write_run_dir(tiny_spec(), run_dir)
    assert "ledger: 3 snapshots of training trials, 1 without rows: 0 outstanding" in status_text(run_dir)
    assert f"  missing: trial {TRIAL} step 30 (trial TERMINATED)" in status_text(run_dir)
    [lost] = missing_self_evals(run_dir)
    assert lost == self_eval_request(spec, TRIAL, 30, run_dir / "snapshots" / TRIAL / "step_00000030.pt")
    assert missing_self_evals(run_dir, statuses=("RUNNING",)) == []  # a running trial's: outstanding, not lost
    _, skipped = run_request(lost)
    assert not skipped and has_rows(lost) and missing_self_evals(run_dir) == []
    assert "3 snapshots of training trials, 0 without rows" in status_text(run_dir)
    keys = eval_keys(run_dir)
    assert Counter(keys) == Counter({(TRIAL, s, "self", ep): 1 for s in (10, 20, 30) for ep in range(2)})


@pytest.mark.ray
def test_restored_trial_evaluates_the_snapshots_its_checkpoint_predates(ray_session, tiny_data_root, tmp_path):
    """Attempt 1 died after writing snapshot 30 with the jobs of snapshots 20 (still outstanding when checkpoint
    20 was reported) and 30 in flight; attempt 2 resumes from checkpoint 20."""
    from rl_core.data.io import load_dataset
    from trainables.train import train_trial

    run_dir = tmp_path / "run"
    spec = _trial(run_dir, tiny_data_root)
    _record(spec, "RUNNING")
    _train_and_die(spec, evaluated=(10,), keep_checkpoint=tmp_path / "ckpt20")
    snap20 = run_dir / "snapshots" / TRIAL / "step_00000020.pt"
    written = snap20.stat().st_mtime_ns
    assert [e.step for e in self_eval_ledger(run_dir) if not e.done] == [20, 30]

    coord = start_pool(run_dir, 1, 1, 0)
    try:
        client = EvalClient(coordinator_name(run_dir))
        ds = load_dataset(spec.identity.task, root=tiny_data_root)
        train_trial(spec, TRIAL, ds, client, resume_from=tmp_path / "ckpt20", restored_from=20)
        stats = ray_session.get(coord.get_stats.remote())
    finally:
        ray_session.kill(coord)
    assert snap20.stat().st_mtime_ns == written  # not rewritten: the restore's reconciliation evaluated it
    assert client.errors == {} and stats["jobs"] == 2 and stats["skipped"] == 0  # 20 (reconciled), 30 (re-reached)
    assert Counter(eval_keys(run_dir)) == Counter({(TRIAL, s, "self", ep): 1 for s in (10, 20, 30) for ep in range(2)})
    assert missing_self_evals(run_dir) == []
