"""The evaluator pool on the session's Ray: idempotent jobs, replacement of a dead evaluator."""

from __future__ import annotations

import os
import signal
import time

import pytest

from rl_core.evaluation import EvalJob, run_eval_job
from trainables.evaluator import eval_request, start_pool
from trainables.results import EvalLabels, read_table

pytestmark = pytest.mark.ray
TINY_DQL = {"hidden": 32, "n_layers": 2, "emb_dim": 8, "ema_start": 0}


@pytest.fixture(scope="module")
def snapshot(tiny_data_root, tmp_path_factory):
    """A real DQL snapshot after 20 gradient steps on the tiny hopper dataset."""
    from rl_core.data_io import load_dataset
    from rl_core.train import TrainConfig, run_training

    ds = load_dataset("hopper-medium", root=tiny_data_root)
    cfg = TrainConfig(task="hopper-medium", algo="dql", algo_config=TINY_DQL, guidance_config={"hidden": 32},
                      steps=20, batch_size=32, eval_every=20, log_every=20)
    work = tmp_path_factory.mktemp("snapshots")
    run_training(cfg, ds, workdir=work)
    return work / "step_00000020.pt"


def _eval_job(snapshot, episodes: int = 2) -> EvalJob:
    return EvalJob(snapshot=str(snapshot), episodes=episodes, eval_seed=123, max_steps=20,
                   inference={"method": "softmax", "scale": 10.0, "n_candidates": 4, "temperature": 0.5,
                              "use_advantage": None, "q_target": True, "swg_select": "q"})


def _job(run_dir, snapshot, episodes: int = 2) -> dict:
    labels = EvalLabels(sweep="t", trial_id="trial0", task="hopper-medium", algo="dql", train_guidance="joint",
                        infer_source="self", diffusion_seed=0, guidance_seed=0, step=20)
    return eval_request(run_dir, _eval_job(snapshot, episodes), labels)


def test_job_rows_are_written_once_and_skipped_when_present(ray_session, snapshot, tmp_path):
    coord = start_pool(tmp_path, 1, 1, 0)
    try:
        first = ray_session.get(coord.evaluate.remote(_job(tmp_path, snapshot)))
        again = ray_session.get(coord.evaluate.remote(_job(tmp_path, snapshot)))
        stats = ray_session.get(coord.get_stats.remote())
    finally:
        ray_session.kill(coord)
    assert not first["skipped"] and again["skipped"] and again["score_mean"] == first["score_mean"]
    assert stats["jobs"] == 2 and stats["skipped"] == 1
    rows = read_table(tmp_path, "evals").to_pylist()
    assert [(r["episode"], r["eval_seed"]) for r in rows] == [(0, 123), (1, 124)]
    assert {(r["infer_method"], r["infer_scale"], r["step"]) for r in rows} == {("softmax", 10.0, 20)}
    local = run_eval_job(_eval_job(snapshot))  # the actor and an in-process run agree (deterministic seeds)
    assert [r.ret for r in local] == [r["return"] for r in rows]


def test_dead_evaluator_is_replaced_and_its_job_retried(ray_session, snapshot, tmp_path):
    coord = start_pool(tmp_path, 1, 1, 0)
    try:
        [where] = ray_session.get(coord.ready.remote())
        os.kill(where["pid"], signal.SIGKILL)
        time.sleep(1.0)
        out = ray_session.get(coord.evaluate.remote(_job(tmp_path, snapshot, episodes=3)))
        stats = ray_session.get(coord.get_stats.remote())
        [now] = ray_session.get(coord.ready.remote())
    finally:
        ray_session.kill(coord)
    assert stats["replaced"] == 1 and stats["evaluators"] == 1 and now["pid"] != where["pid"]
    assert out["episodes"] == 3 and not out["skipped"]
    assert sorted(r["episode"] for r in read_table(tmp_path, "evals").to_pylist()) == [0, 1, 2]
