"""`mdpt pretrain-guidance`, `mdpt train`, `mdpt evaluate` through the real entry point (subprocesses)."""

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rl_core.data_io import save_dataset
from tests.rl_core.test_train import TINY_ALGO, tiny_hopper_dataset
from trainables.results import ResultStore


def mdpt(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "sweeps.cli", *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return save_dataset(tiny_hopper_dataset(), tmp_path_factory.mktemp("data") / "hopper-tiny")


def test_pretrain_then_frozen_train_writes_eval_rows_then_evaluate(data_dir, tmp_path):
    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "run"
    mdpt("pretrain-guidance", "--task", str(data_dir), "--kind", "td", "--seed", "1", "--steps", "6",
         "--save-every", "3", "--batch-size", "16", "--threads", "1", "--out", str(out), cwd=root)
    artifact = out / "guidance" / "guidance-td-s1" / "final.pt"
    assert artifact.exists() and (out / "guidance" / "guidance-td-s1" / "step_00000003.pt").exists()

    proc = mdpt("train", "--task", str(data_dir), "--algo", "dql", "--guidance", "frozen", "--guidance-artifact",
                str(artifact), "--seed", "2", "--steps", "8", "--eval-every", "4", "--log-every", "2", "--episodes", "2",
                "--batch-size", "16", "--threads", "1", "--max-steps", "50", "--candidates", "4",
                "--algo-config", json.dumps(TINY_ALGO["dql"]), "--out", str(out), cwd=root)
    assert re.search(r"step 8/8 \| .*loss/bc", proc.stdout) and "eval @ step 4" in proc.stdout

    store = ResultStore(out)
    evals = store.read("evals").to_pylist()
    assert sorted({r["step"] for r in evals}) == [4, 8] and len(evals) == 4
    for r in evals:
        assert r["trial_id"] == "dql-frozen-s2" and r["train_guidance"] == "frozen" and r["infer_source"] == "self"
        assert r["infer_method"] == "softmax" and r["diffusion_seed"] == 2 and r["guidance_seed"] == 1
        assert math.isfinite(r["normalized_score"]) and 1 <= r["length"] <= 50
    train = store.read("train").to_pylist()
    assert {r["step"] for r in train} == {2, 4, 6, 8} and {"loss/bc", "time/steps_per_s"} <= {r["metric"] for r in train}
    trials = {r["trial_id"]: r for r in store.read("trials").to_pylist()}
    assert trials["dql-frozen-s2"]["status"] == "TERMINATED" and trials["guidance-td-s1"]["stage"] == "pretrain"
    assert json.loads((out / "run.json").read_text())["sweep"] == "run"

    snapshot = out / "snapshots" / "dql-frozen-s2" / "step_00000008.pt"
    for extra in ([], ["--guidance-artifact", str(out / "guidance" / "guidance-td-s1" / "step_00000003.pt")]):
        proc = mdpt("evaluate", str(snapshot), *extra, "--episodes", "2", "--seed", "5", "--max-steps", "30",
                    "--candidates", "4", cwd=root)
        scores = [float(s) for s in re.findall(r"normalized score (-?[\d.]+)", proc.stdout)]
        assert len(scores) == 3 and all(math.isfinite(s) for s in scores)  # two episodes + the mean


def test_train_refuses_frozen_without_artifact(data_dir, tmp_path):
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-m", "sweeps.cli", "train", "--task", str(data_dir), "--guidance", "frozen",
                           "--steps", "2", "--out", str(tmp_path)], capture_output=True, text=True, cwd=root)
    assert proc.returncode == 2 and "guidance_artifact" in proc.stderr and "Traceback" not in proc.stderr
