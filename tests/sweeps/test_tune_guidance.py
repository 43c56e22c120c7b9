"""`mdpt tune-guidance` on the embedded Ray: a real search over tiny DQL snapshots with a known best scale,
resume of an interrupted study, and a failed evaluation ending as a FAIL Optuna trial.

The known-best case: a DQL policy trained (briefly, predicting x0) on Hopper transitions with small
actions outputs small actions, which keep the Hopper up for the 30-step episodes. Gradient guidance
with λ = 1e6 drives every action to ±1 (the clip), so the Hopper falls within ~10 steps: a much lower
score. Small λ leaves the policy's actions nearly unchanged.
"""

import json
import math
import shutil
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from sweeps.cli import main
from trainables.evaluator import start_pool
from trainables.results import read_table

pytestmark = pytest.mark.ray
TINY_DQL = {"hidden": 32, "n_layers": 2, "emb_dim": 16, "T": 3, "sampling_steps": 3, "ema_start": 0, "predict": "x0",
            "lr": 1e-3}
GOOD, BAD = 0.001, 1e6  # gradient-guidance scales: policy's own actions vs saturated actions


def small_action_dataset(directory: Path, n_episodes: int = 10, cap: int = 30) -> Path:
    """Real Hopper transitions under actions ~ N(0, 0.1^2), saved as a dataset directory."""
    from rl_core.data_io import save_dataset
    from rl_core.datasets import OfflineDataset
    from rl_core.envs import make_env

    rng, env = np.random.default_rng(0), make_env("HopperBulletEnv-v0")
    cols: dict[str, list] = {k: [] for k in ("observations", "actions", "rewards", "next_observations", "terminals",
                                             "timeouts")}
    for ep in range(n_episodes):
        obs, _ = env.reset(seed=ep)
        for t in range(cap):
            act = np.clip(rng.normal(0.0, 0.1, 3), -1, 1).astype(np.float32)
            nxt, rew, term, trunc, _ = env.step(act)
            for k, v in zip(cols, (obs, act, rew, nxt, term, (trunc or t == cap - 1) and not term)):
                cols[k].append(v)
            obs = nxt
            if term or trunc:
                break
    env.close()
    arrays = {k: np.asarray(v, dtype=bool if k in ("terminals", "timeouts") else np.float32) for k, v in cols.items()}
    meta = {"env_id": "HopperBulletEnv-v0", "task": "hopper-small", "ref_min_score": 0.0, "ref_max_score": 100.0}
    return save_dataset(OfflineDataset(**arrays, metadata=meta), directory)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, ray_session) -> Path:
    """Two seeds of a tiny DQL trained with `mdpt train` (the real run-directory layout), and an evaluator
    pool for it that every search here shares (as a search beside a running sweep would)."""
    root = tmp_path_factory.mktemp("tune_guidance")
    data = small_action_dataset(root / "hopper-small")
    for seed in (0, 1):
        assert main(["train", "--task", str(data), "--algo", "dql", "--steps", "40", "--batch-size", "32",
                     "--eval-every", "40", "--log-every", "40", "--algo-config", json.dumps(TINY_DQL), "--episodes", "1",
                     "--max-steps", "30", "--candidates", "1", "--seed", str(seed), "--threads", "1",
                     "--out", str(root / "run")]) == 0
    pool = start_pool(root / "run", count=2, cpu=1.0, gpu=0.0)
    yield root / "run"
    ray_session.kill(pool)


def search(run_dir: Path, study: str, trials: int) -> int:
    return main(["tune-guidance", str(run_dir), "--method", "gradient", "--scale-range", str(GOOD), str(BAD),
                 "--points", f"{GOOD},{BAD}", "--trials", str(trials), "--study", study, "--episodes", "2",
                 "--max-steps", "30", "--evaluators", "2"])


def load_study(run_dir: Path, name: str) -> optuna.Study:
    storage = JournalStorage(JournalFileBackend(str(run_dir / "guidance_search" / f"{name}.journal")))
    return optuna.load_study(study_name=name, storage=storage)


def search_rows(run_dir: Path, study: str) -> list[dict]:
    return sorted((r for r in read_table(run_dir, "guidance_search").to_pylist() if r["study"] == study),
                  key=lambda r: r["trial"])


def test_search_finds_the_known_best_scale(run_dir, capsys):
    assert search(run_dir, "known", trials=3) == 0
    out = capsys.readouterr().out
    best = json.loads((run_dir / "guidance_search" / "best.json").read_text())["known"]
    rows = search_rows(run_dir, "known")
    by_scale = {r["scale"]: r for r in rows}
    assert [r["state"] for r in rows] == ["COMPLETE"] * 3 and {GOOD, BAD} <= set(by_scale)
    assert best["params"]["scale"] < 1e3 and best["objective"] >= by_scale[GOOD]["objective"]
    assert by_scale[GOOD]["objective"] > by_scale[BAD]["objective"] + 10  # the known gap, not noise
    assert set(best["per_seed"]) == {"0", "1"} and best["n_trials"] == 3
    assert math.isclose(best["objective"], np.mean(list(best["per_seed"].values())))
    assert best["inference"]["method"] == "gradient" and best["inference"]["n_candidates"] == 1
    assert "mdpt evaluate" in out and f"--scale {best['params']['scale']:.6g}" in out and "per seed" in out
    # every trial's per-seed scores are in its row; the eval rows carry the method and scale
    assert all(set(json.loads(r["per_seed_json"])) == {"0", "1"} for r in rows)
    evals = [r for r in read_table(run_dir, "evals").to_pylist() if r["infer_source"] == "search:known"]
    assert {r["infer_method"] for r in evals} == {"gradient"} and {GOOD, BAD} <= {r["infer_scale"] for r in evals}
    assert len(evals) == 3 * 2 * 2  # trials x seeds x episodes
    study = load_study(run_dir, "known")
    assert study.best_trial.params == best["params"] and all(t.state == TrialState.COMPLETE for t in study.trials)


def test_rerun_resumes_an_interrupted_study_without_duplicating_evals(run_dir):
    assert search(run_dir, "resume", trials=1) == 0  # evaluates the first grid point; the second stays queued
    zombie = load_study(run_dir, "resume").ask({"scale": optuna.distributions.FloatDistribution(GOOD, BAD, log=True)})
    # ^ the state a killed driver leaves: the queued point asked by OptunaSearch, never told
    assert zombie.params == {"scale": BAD}
    assert search(run_dir, "resume", trials=3) == 0
    trials = load_study(run_dir, "resume").trials
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]
    assert trials[1].number == zombie.number and trials[1].user_attrs["interrupted"]
    assert trials[2].params == zombie.params  # the interrupted parameters were evaluated again
    rows = search_rows(run_dir, "resume")
    assert [(r["trial"], r["state"]) for r in rows] == [(0, "COMPLETE"), (1, "FAIL"), (2, "COMPLETE"), (3, "COMPLETE")]
    assert rows[1]["reason"].startswith("interrupted")
    evals = [r for r in read_table(run_dir, "evals").to_pylist() if r["infer_source"] == "search:resume"]
    keys = [(r["trial_id"], r["infer_scale"], r["episode"]) for r in evals]
    assert len(keys) == len(set(keys)) == 3 * 2 * 2  # distinct scales x seeds x episodes
    assert search(run_dir, "resume", trials=3) == 0  # nothing left to run: the count is reached
    assert len(load_study(run_dir, "resume").trials) == 4


def test_failed_evaluation_ends_as_a_failed_optuna_trial(run_dir, tmp_path):
    """A diverged checkpoint (NaN weights -> NaN actions, which the simulator rejects): FAIL, never RUNNING."""
    bad = tmp_path / "run"
    (bad / "results" / "trials").mkdir(parents=True)
    shutil.copy(run_dir / "results" / "trials" / "dql-joint-s0.parquet", bad / "results" / "trials")
    (src,) = (run_dir / "snapshots" / "dql-joint-s0").glob("step_*.pt")
    (bad / "snapshots" / "dql-joint-s0").mkdir(parents=True)
    payload = torch.load(src, weights_only=True)
    payload["denoiser"] = {k: torch.full_like(v, math.nan) if v.is_floating_point() else v
                           for k, v in payload["denoiser"].items()}
    torch.save(payload, bad / "snapshots" / "dql-joint-s0" / src.name)
    assert search(bad, "nan", trials=1) == 1  # no trial completed
    states = [t.state for t in load_study(bad, "nan").trials]
    assert states == [TrialState.FAIL, TrialState.WAITING]  # the second grid point stays queued for a re-run
    (row,) = search_rows(bad, "nan")
    assert row["state"] == "FAIL" and math.isnan(row["objective"]) and "errored" in row["reason"]
    assert not (bad / "guidance_search" / "best.json").exists()


def test_search_space_flags_need_a_method(tmp_path, capsys):
    assert main(["tune-guidance", str(tmp_path), "--scale-range", "1", "2"]) == 2
    assert "need --method" in capsys.readouterr().err
    assert main(["tune-guidance", str(tmp_path), "--method", "swg", "--points", "40"]) == 2
    assert "outside the scale space" in capsys.readouterr().err
    assert main(["tune-guidance", str(tmp_path)]) == 2
    assert "no finished training trials" in capsys.readouterr().err


@pytest.mark.slow
def test_killed_driver_process_resumes(run_dir):
    """A real interruption: `mdpt tune-guidance` (own embedded Ray) killed with SIGKILL after its first
    finished trial; the same command then completes the study with continued trial numbers."""
    import os
    import signal
    import subprocess
    import sys
    import time

    cmd = [sys.executable, "-m", "sweeps.cli", "tune-guidance", str(run_dir), "--method", "gradient", "--trials", "5",
           "--study", "killed", "--episodes", "2", "--max-steps", "30", "--concurrency", "1"]
    env = {**os.environ, "RAY_ADDRESS": "local"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while not search_rows(run_dir, "killed") and time.time() < deadline and proc.poll() is None:
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray processes it started
    proc.wait()
    before = load_study(run_dir, "killed").trials
    assert 1 <= len([t for t in before if t.state == TrialState.COMPLETE]) < 5
    assert subprocess.run(cmd, env=env, capture_output=True, timeout=600).returncode == 0
    after = load_study(run_dir, "killed").trials
    assert len([t for t in after if t.state == TrialState.COMPLETE]) == 5
    assert not [t for t in after if t.state == TrialState.RUNNING]
    assert [t.number for t in after[:len(before)]] == [t.number for t in before]  # numbering continued
