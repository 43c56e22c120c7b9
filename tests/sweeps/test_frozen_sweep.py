"""A frozen (GFDT) arm run as a sweep on the session's Ray: a TD critic pretrained from the dataset alone,
then a DQL trial trained against it frozen. Checks that the trial got its seed's final artifact, that
the critic it acted with is exactly the artifact's (never updated), and what its rows say."""

from __future__ import annotations

import json

import pytest
import torch

from rl_core.guidance import load_artifact
from rl_core.snapshot import load_snapshot
from sweeps.run import run_sweep
from tests.sweeps.sweep_helpers import tiny_spec, trials
from trainables.results import read_table

pytestmark = pytest.mark.ray


def test_frozen_arm_sweep_trains_against_its_pretrained_artifact(ray_session, tiny_data_root, tmp_path, monkeypatch):
    monkeypatch.setenv("MDPT_DATA", str(tiny_data_root))
    budget = {"steps": 200, "eval_every": 200, "episodes": 2, "pretrain_steps": 200, "batch_size": 32,
              "log_every": 100}
    spec = tiny_spec(seeds=(0,), train_guidance=["frozen"], budgets={"smoke": budget, "paper": budget},
                     pretraining=[{"algo": "dql", "kind": "td", "guidance_config": {"hidden": 32}}])
    run_dir = tmp_path / "run"
    summary = run_sweep(spec, run_dir, printer=lambda s: None, report=False)

    assert summary["stages"]["pretrain"] == dict(summary["stages"]["pretrain"], trials=1, errors=0)
    assert summary["stages"]["train"] == dict(summary["stages"]["train"], trials=1, errors=0)
    rows = trials(run_dir)
    pre = next(r for r in rows.values() if r["stage"] == "pretrain")
    train = next(r for r in rows.values() if r["stage"] == "train")
    assert pre["status"] == train["status"] == "TERMINATED"
    assert (pre["train_guidance"], train["train_guidance"]) == ("pretrain:dql_td", "frozen")
    artifact = run_dir / "guidance" / pre["trial_id"] / "final.pt"
    assert json.loads(train["config_json"])["train"]["guidance_artifact"] == str(artifact)

    critic, meta = load_artifact(artifact)
    assert (meta["kind"], meta["seed"], meta["steps"]) == ("td", 0, 200)
    snap = load_snapshot(run_dir / "snapshots" / train["trial_id"] / "step_00000200.pt")
    assert snap.guidance_meta["artifact"] == str(artifact) and snap.guidance_meta["train_guidance"] == "frozen"
    saved, used = critic.state_dict()["nets"], snap.guidance.state_dict()["nets"]
    assert saved.keys() == used.keys() and all(torch.equal(saved[k], used[k]) for k in saved)  # never updated

    evals = read_table(run_dir, "evals").to_pylist()
    assert len(evals) == 2
    for r in evals:
        assert (r["trial_id"], r["train_guidance"], r["infer_source"], r["step"]) == (
            train["trial_id"], "frozen", "self", 200)
        assert r["guidance_seed"] == 0 and r["guidance_file"] == ""  # acted with the critic the snapshot carries
    train_metrics = {r["metric"] for r in read_table(run_dir, "train").to_pylist() if r["trial_id"] == train["trial_id"]}
    assert {"loss/bc", "loss/q_policy"} <= train_metrics and "loss/critic" not in train_metrics  # frozen: no TD step
