"""Sweeps on the session's embedded Ray: real Tune trials, real evaluator actors, tiny configs.

* a 2-trial sweep end to end (800 steps, evaluation every 400) with IQL guidance pretraining and both
  recombinations (double guidance from the other seed's joint critic, step-matched; cross-algorithm
  guidance from the pretrained IQL artifact, final): rows, reports, run directory, status;
* fault tolerance: one trial's process dies after its first checkpoint (os._exit on a marker file)
  and resumes from it, another diverges; every (trial, step, episode) row exists exactly once.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections import Counter
from pathlib import Path

import pytest

from sweeps.run import run_sweep, run_tune_stage, runtime, write_run_dir
from sweeps.expand import expand
from tests.sweeps.sweep_helpers import eval_keys, tiny_spec, trials, tune_results
from trainables.evaluator import start_pool
from trainables.results import read_table

pytestmark = pytest.mark.ray


def test_two_trial_sweep_end_to_end(ray_session, tiny_data_root, tmp_path, monkeypatch):
    from sweeps.cmd_sweep import status_text

    monkeypatch.setenv("MDPT_DATA", str(tiny_data_root))
    run_dir = tmp_path / "run"
    joint = {"algo": "dql", "train_guidance": "joint"}
    spec = tiny_spec(pretraining=[{"algo": "idql", "guidance_config": {"hidden": 32}}], recombination=[
        {"name": "double", "kind": "double_guidance", "diffusion": joint, "guidance": {"trained": joint},
         "match": "step"},
        {"name": "cross", "kind": "cross_algorithm", "diffusion": joint, "guidance": {"pretrained": "idql_iql"}}])
    summary = run_sweep(spec, run_dir, printer=lambda s: None)

    assert summary["stages"]["pretrain"]["trials"] == 2 and summary["stages"]["pretrain"]["errors"] == 0
    assert summary["stages"]["train"]["trials"] == 2 and summary["stages"]["train"]["errors"] == 0
    assert summary["stages"]["recombine"] == dict(summary["stages"]["recombine"], jobs=8, failed=0)
    keys = eval_keys(run_dir)
    # train trials x checkpoints (400, 800) x episodes, for each guidance source
    assert len(keys) == len(set(keys)) == 3 * 2 * 2 * 2
    assert Counter(k[2] for k in keys) == {"self": 8, "seed:+1": 8, "algo:idql-final": 8}
    assert {k[1] for k in keys} == {400, 800}
    evals = read_table(run_dir, "evals").to_pylist()
    assert {(r["diffusion_seed"], r["guidance_seed"]) for r in evals if r["infer_source"] == "seed:+1"} == {(0, 1), (1, 0)}
    paired = {(r["trial_id"], r["step"], r["episode"]): r["eval_seed"] for r in evals if r["infer_source"] == "self"}
    assert all(paired[(r["trial_id"], r["step"], r["episode"])] == r["eval_seed"] for r in evals)  # same episodes
    rows = {k: r for k, r in trials(run_dir).items() if r["stage"] == "train"}
    assert {r["status"] for r in trials(run_dir).values()} == {"TERMINATED"}
    assert {r["restored_from"] for r in rows.values()} == {-1}
    for trial_id, results in tune_results(run_dir, "train").items():
        assert [r["step"] for r in results] == [400.0, 800.0]
        assert all(math.isfinite(r["eval/score_mean"]) for r in results)  # first and final evals block
        assert results[-1]["eval/step"] == 800.0
        assert sorted(p.name for p in (run_dir / "snapshots" / trial_id).glob("step_*.pt")) == [
            "step_00000400.pt", "step_00000800.pt"]
    assert (run_dir / "spec.yaml").exists() and (run_dir / "run.json").exists()
    assert Path(summary["report"]).exists()
    assert summary["evaluators"]["jobs"] == 12 and summary["evaluators"]["replaced"] == 0
    assert "train: 2 trials: 2 TERMINATED" in status_text(run_dir)
    # reference lines of the task, measured at the spec's evaluation cap (20 steps), in the report
    refs = {r["reference"]: r for r in read_table(run_dir, "references").to_pylist()}
    assert set(refs) == {"random", "stand_still", "no_progress", "dataset"}
    assert {r["task"] for r in refs.values()} == {"hopper-medium"}
    assert refs["stand_still"]["max_episode_steps"] == 20 and refs["stand_still"]["length_mean"] <= 20
    assert "## Reference lines" in Path(summary["report"]).read_text()
    # live curves: Tune's TensorBoard event files of each training trial under RUN_DIR/tensorboard/train
    runs = {p.parent.name: tb_scalars(p) for p in (run_dir / "tensorboard" / "train").glob("*/events.out.tfevents.*")}
    assert len(runs) == 2 and all(name.startswith("hopper-medium_dql_joint_s") for name in runs)
    for scalars in runs.values():
        assert [step for step, _ in scalars["ray/tune/eval/score_mean"]] == [400, 800]  # x axis: gradient steps
        assert all(math.isfinite(v) for _, v in scalars["ray/tune/loss/bc"])
    assert not list((run_dir / "tune" / "train").glob("*/events.out.tfevents.*"))  # not also in Tune's directory


def tb_scalars(path: Path) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(step, value)] of a TensorBoard event file (TFRecord framing: length, crc, event, crc)."""
    import struct

    from tensorboardX.proto import event_pb2

    data, i, out = path.read_bytes(), 0, {}
    while i < len(data):
        (n,) = struct.unpack("<Q", data[i:i + 8])
        event = event_pb2.Event.FromString(data[i + 12:i + 12 + n])
        i += 12 + n + 4
        for v in event.summary.value:
            out.setdefault(v.tag, []).append((event.step, v.simple_value))
    return out


def crash_once_after_first_checkpoint(config: dict) -> None:
    """train_policy, but the process dies (os._exit) right after reporting its first checkpoint if the
    run directory holds the marker file (deleted first, so the retry runs through)."""
    from ray import tune

    from trainables import train

    marker = Path(config["trial"]["runtime"]["run_dir"]) / "crash_marker"
    report = tune.report

    def report_then_die(metrics, *, checkpoint=None):
        report(metrics, checkpoint=checkpoint)
        if marker.exists():
            marker.unlink()
            os._exit(1)

    train.tune.report = report_then_die
    train.train_policy(config)


def test_crash_recovery_and_divergence(ray_session, tiny_data_root, tmp_path):
    spec = tiny_spec(steps=1200)
    run_dir = tmp_path / "run"
    write_run_dir(spec, run_dir)
    items = expand(spec)[0].items  # train stage: seeds 0 and 1
    rt = runtime(spec, run_dir, str(tiny_data_root))
    good, bad = (t.replace(runtime=rt, eval=dataclasses.replace(t.eval, max_steps=20)) for t in items[:2])
    bad = bad.replace(train=dataclasses.replace(bad.train, algo_config=dict(bad.train.algo_config, lr=1e30)))  # NaN soon
    (run_dir / "crash_marker").write_text("")
    ev = spec["resources"]["evaluators"]
    coord = start_pool(run_dir, ev["count"], ev["cpu"], ev["gpu"])
    try:
        grid = run_tune_stage("train", crash_once_after_first_checkpoint, [good, bad], spec, run_dir,
                              printer=lambda s: None)
    finally:
        ray_session.kill(coord)

    assert not (run_dir / "crash_marker").exists() and grid.num_errors == 0
    rows = trials(run_dir)
    crashed = next(r for r in rows.values() if r["seed"] == 0)
    diverged = next(r for r in rows.values() if r["seed"] == 1)
    assert crashed["status"] == "TERMINATED" and crashed["num_failures"] == 1 and crashed["restored_from"] == 400
    assert diverged["status"] == "ERROR" and diverged["failure_reason"].startswith("DivergenceError")
    keys = eval_keys(run_dir)
    assert Counter(keys).most_common(1)[0][1] == 1  # no duplicate row
    expected = {(crashed["trial_id"], step, "self", ep) for step in (400, 800, 1200) for ep in range(2)}
    assert set(keys) == expected  # none missing; the diverged trial wrote no checkpoint rows
