"""The evaluator pool under faults, on the session's Ray with real snapshots: a coordinator killed with jobs
in flight comes back and every job ends with its rows exactly once; a request submitted several times at
once is evaluated once. And the guidance search's ledger: a finished Optuna trial whose row the driver
did not write gets it from the study, once."""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import signal
from collections import Counter

import optuna
import pytest

from tests.sweeps.sweep_helpers import eval_keys
from tests.sweeps.test_reconcile import TRIAL, _train_and_die, _trial
from trainables.evaluator import EvalClient, coordinator_name, start_pool
from trainables.ledger import self_eval_request, snapshot_files
from trainables.results import read_table, search_row, write_search_row


@pytest.fixture(scope="module")
def snapshots(tiny_data_root, tmp_path_factory):
    """Three real snapshots (steps 10, 20, 30) of the tiny DQL trial, written once for this module."""
    run_dir = tmp_path_factory.mktemp("snapshots") / "run"
    _train_and_die(_trial(run_dir, tiny_data_root), evaluated=())
    return run_dir / "snapshots" / TRIAL


@pytest.fixture
def requests(snapshots, tiny_data_root, tmp_path):
    """A fresh run directory holding the snapshots, and their own-evaluation requests (4 episodes each)."""
    run_dir = tmp_path / "run"
    shutil.copytree(snapshots, run_dir / "snapshots" / TRIAL)
    spec = _trial(run_dir, tiny_data_root)
    spec = spec.replace(eval=dataclasses.replace(spec.eval, episodes=4, max_steps=100))
    files = snapshot_files(run_dir / "snapshots" / TRIAL)
    return run_dir, [self_eval_request(spec, TRIAL, step, path) for step, path in sorted(files.items())]


@pytest.mark.ray
def test_killed_coordinator_is_recreated_and_outstanding_jobs_finish_once(ray_session, requests):
    run_dir, reqs = requests
    coord = start_pool(run_dir, 1, 1, 0)
    try:
        before = ray_session.get(coord.where.remote())
        client = EvalClient(coordinator_name(run_dir))
        client.submit_background(reqs)
        os.kill(before["pid"], signal.SIGKILL)  # three jobs in flight or queued, one evaluator
        errors = client.drain_background()
        after = ray_session.get(coord.where.remote())
        stats = ray_session.get(coord.get_stats.remote())
    finally:
        ray_session.kill(coord)
    assert errors == {} and after["pid"] != before["pid"] and stats["evaluators"] == 1
    assert Counter(eval_keys(run_dir)) == Counter({(TRIAL, s, "self", ep): 1 for s in (10, 20, 30) for ep in range(4)})


@pytest.mark.ray
def test_same_request_in_flight_is_evaluated_once(ray_session, requests):
    run_dir, reqs = requests
    coord = start_pool(run_dir, 2, 1, 0)
    try:
        client = EvalClient(coordinator_name(run_dir))
        client.submit_background([reqs[0]] * 3)  # e.g. a restored trial and the driver's reconciliation
        assert client.drain_background() == {}
        stats = ray_session.get(coord.get_stats.remote())
    finally:
        ray_session.kill(coord)
    assert stats["jobs"] == 1 and stats["deduplicated"] == 2 and stats["skipped"] == 0
    assert Counter(eval_keys(run_dir)) == Counter({(TRIAL, 10, "self", ep): 1 for ep in range(4)})


def test_finished_search_trial_without_row_gets_it_once(tmp_path):
    from sweeps.guidance_search import reconcile_study

    study = optuna.create_study(study_name="s", direction="maximize")
    dist = {"scale": optuna.distributions.FloatDistribution(0.0, 30.0)}
    for scale, value in ((1.0, 12.5), (5.0, 20.0)):
        study.add_trial(optuna.trial.create_trial(params={"scale": scale}, distributions=dist, value=value,
                                                  user_attrs={"per_seed": {"0": value}}))
    study.add_trial(optuna.trial.create_trial(params={"scale": 9.0}, distributions=dist,
                                              state=optuna.trial.TrialState.FAIL))
    record = {"run_dir": str(tmp_path), "study": "s", "task": "hopper-medium", "algo": "swg", "train_guidance": "joint",
              "method": "swg", "inference": {"method": "swg", "scale": 1.0}, "infer_source": "search:s", "episodes": 2}
    write_search_row(tmp_path, search_row(record, 0, {"scale": 1.0}, "COMPLETE", 12.5, {"0": 12.5}, "", "tune_0"))

    assert reconcile_study(study, record, print) == 2  # trial 1 (told COMPLETE) and 2 (FAIL) lacked rows
    assert reconcile_study(study, record, print) == 0
    rows = {r["trial"]: r for r in read_table(tmp_path, "guidance_search").to_pylist()}
    assert sorted(rows) == [0, 1, 2] and rows[0]["tune_trial_id"] == "tune_0"  # trial 0's row untouched
    assert (rows[1]["state"], rows[1]["objective"], rows[1]["scale"]) == ("COMPLETE", 20.0, 5.0)
    assert rows[2]["state"] == "FAIL" and math.isnan(rows[2]["objective"])


@pytest.mark.ray
def test_no_evaluator_can_start_the_coordinator_evaluates_itself(ray_session, requests):
    """Every evaluator is unplaceable (as when the survivors' CPUs went to restarted trials after a node loss):
    a waiting job runs in the coordinator's process after ``fallback_after_s``, instead of never."""
    from trainables.evaluator import EvalCoordinator

    run_dir, reqs = requests
    coord = EvalCoordinator.options(name=coordinator_name(run_dir)).remote(1, 64.0, 0.0, fallback_after_s=1.0)
    try:
        client = EvalClient(coordinator_name(run_dir))
        client.submit_background(reqs[:2])
        assert client.drain_background() == {}
        stats = ray_session.get(coord.get_stats.remote())
    finally:
        ray_session.kill(coord)
    assert stats["fallback"] == 2 and stats["jobs"] == 2 and stats["evaluators"] == 1
    assert Counter(eval_keys(run_dir)) == Counter({(TRIAL, s, "self", ep): 1 for s in (10, 20) for ep in range(4)})
