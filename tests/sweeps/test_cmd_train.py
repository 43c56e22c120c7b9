"""`mdpt pretrain-guidance`, `mdpt train`, `mdpt evaluate` through the real entry point (subprocesses)."""

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rl_core.data.io import save_dataset
from tests.rl_core.test_train import TINY_ALGO, tiny_hopper_dataset
from sweeps.cli import main as cli_main
from trainables.results import ResultStore

ROOT = Path(__file__).resolve().parents[2]


def mdpt(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "sweeps.cli", *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return save_dataset(tiny_hopper_dataset(), tmp_path_factory.mktemp("data") / "hopper-tiny")


TINY = ["--batch-size", "16", "--threads", "1", "--max-steps", "50", "--candidates", "4"]


def evaluate_scores(snapshot: Path, *extra: str) -> list[float]:
    proc = mdpt("evaluate", str(snapshot), *extra, "--episodes", "2", "--seed", "5", "--max-steps", "30",
                "--candidates", "4", cwd=ROOT)
    scores = [float(s) for s in re.findall(r"normalized score (-?[\d.]+)", proc.stdout)]
    assert len(scores) == 3 and all(math.isfinite(s) for s in scores), proc.stdout  # two episodes + the mean
    return scores


def test_train_writes_eval_rows_at_every_eval_step_then_evaluate(data_dir, tmp_path):
    out = tmp_path / "run"
    proc = mdpt("train", "--task", str(data_dir), "--algo", "dql", "--guidance", "joint", "--seed", "2", "--steps", "8",
                "--eval-every", "4", "--log-every", "2", "--episodes", "2", *TINY,
                "--algo-config", json.dumps(TINY_ALGO["dql"]), "--out", str(out), cwd=ROOT)
    assert re.search(r"step 8/8 \| .*loss/bc", proc.stdout) and "eval @ step 4" in proc.stdout

    store = ResultStore(out)
    evals = store.read("evals").to_pylist()
    assert sorted({r["step"] for r in evals}) == [4, 8] and len(evals) == 4
    for r in evals:
        assert r["trial_id"] == "dql-joint-s2" and r["train_guidance"] == "joint" and r["infer_source"] == "self"
        assert r["infer_method"] == "softmax" and r["infer_scale"] == 100.0 and r["inference_precision"] == "fp32"
        assert r["diffusion_seed"] == 2 and r["guidance_seed"] == 2
        assert math.isfinite(r["normalized_score"]) and 1 <= r["length"] <= 50
    train = store.read("train").to_pylist()
    assert {r["step"] for r in train} == {2, 4, 6, 8}
    assert {"loss/bc", "loss/critic", "time/steps_per_s", "mem/peak_mb"} <= {r["metric"] for r in train}
    trial = store.read("trials").to_pylist()[0]
    assert trial["status"] == "TERMINATED" and json.loads(trial["config_json"])["train"]["steps"] == 8
    assert json.loads((out / "run.json").read_text())["sweep"] == "run"
    refs = {r["reference"]: r for r in store.read("references").to_pylist()}  # the task's reference lines
    assert set(refs) == {"random", "stand_still", "no_progress", "dataset"}
    assert {r["task"] for r in refs.values()} == {evals[0]["task"]}
    assert refs["random"]["max_episode_steps"] == 50 and refs["random"]["source"].startswith("measured")
    evaluate_scores(out / "snapshots" / "dql-joint-s2" / "step_00000008.pt")


@pytest.mark.slow
def test_pretrain_then_frozen_train_then_evaluate_with_another_critic(data_dir, tmp_path):
    out = tmp_path / "run"
    mdpt("pretrain-guidance", "--task", str(data_dir), "--kind", "td", "--seed", "1", "--steps", "6",
         "--save-every", "3", "--batch-size", "16", "--threads", "1", "--out", str(out), cwd=ROOT)
    gdir = out / "guidance" / "guidance-td-s1"
    assert (gdir / "final.pt").exists() and (gdir / "step_00000003.pt").exists()
    mdpt("train", "--task", str(data_dir), "--algo", "dql", "--guidance", "frozen", "--guidance-artifact",
         str(gdir / "final.pt"), "--seed", "2", "--steps", "4", "--eval-every", "4", "--episodes", "2", *TINY,
         "--algo-config", json.dumps(TINY_ALGO["dql"]), "--out", str(out), cwd=ROOT)
    store = ResultStore(out)
    evals = store.read("evals").to_pylist()
    assert {(r["step"], r["train_guidance"], r["guidance_seed"]) for r in evals} == {(4, "frozen", 1)}
    trials = {r["trial_id"]: r for r in store.read("trials").to_pylist()}
    assert trials["guidance-td-s1"]["stage"] == "pretrain" and trials["dql-frozen-s2"]["status"] == "TERMINATED"
    evaluate_scores(out / "snapshots" / "dql-frozen-s2" / "step_00000004.pt", "--guidance-artifact",
                    str(gdir / "step_00000003.pt"))


def test_train_refuses_frozen_without_artifact(data_dir, tmp_path, capsys):
    code = cli_main(["train", "--task", str(data_dir), "--guidance", "frozen", "--steps", "2", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "guidance_artifact" in err and "frozen" in err


def test_precision_flags_reach_the_configs_and_the_rows(data_dir, tmp_path):
    """`mdpt train --precision bf16 --eval-precision bf16`: the trial trains in bf16 (TrainConfig, config_json),
    every snapshot is evaluated in bf16 (EvalSpec, the rows' inference_precision); `mdpt evaluate --precision`
    evaluates a snapshot in the precision asked for."""
    out = tmp_path / "run"
    proc = mdpt("train", "--task", str(data_dir), "--algo", "dql", "--seed", "1", "--steps", "4", "--eval-every", "4",
                "--log-every", "2", "--episodes", "2", *TINY, "--precision", "bf16", "--eval-precision", "bf16",
                "--algo-config", json.dumps(TINY_ALGO["dql"]), "--out", str(out), cwd=ROOT)
    assert "training precision bf16, inference softmax in bf16" in proc.stdout
    store = ResultStore(out)
    config = json.loads(store.read("trials").to_pylist()[0]["config_json"])
    assert (config["train"]["precision"], config["train"]["compile"]) == ("bf16", False)
    assert config["eval"]["inference"]["precision"] == "bf16"
    evals = store.read("evals").to_pylist()
    assert len(evals) == 2 and {r["inference_precision"] for r in evals} == {"bf16"}
    assert all(math.isfinite(r["normalized_score"]) for r in evals)
    snapshot = out / "snapshots" / "dql-joint-s1" / "step_00000004.pt"
    for precision in ("fp32", "bf16"):
        proc = mdpt("evaluate", str(snapshot), "--precision", precision, "--episodes", "1", "--max-steps", "20",
                    "--candidates", "4", cwd=ROOT)
        assert re.search(rf"dql step 4, softmax \(own critic, {precision}\): normalized score -?[\d.]+", proc.stdout)


def test_train_flags_build_the_train_and_inference_configs(data_dir):
    """Without the flags, TrainConfig's and InferenceConfig's defaults (fp32, no compile); with them, the values."""
    from rl_core.algos import get_algorithm
    from sweeps.cli import build_parser
    from sweeps.cmd_train import _inference, train_config

    base = ["train", "--task", str(data_dir), "--out", "x"]
    algo_cfg = get_algorithm("dql").Config()
    args = build_parser().parse_args(base)
    cfg, inference = train_config(args), _inference(args, algo_cfg, has_guidance=True)
    assert (cfg.precision, cfg.compile, inference.precision) == ("fp32", False, "fp32")
    args = build_parser().parse_args([*base, "--precision", "bf16", "--compile", "--eval-precision", "bf16"])
    cfg, inference = train_config(args), _inference(args, algo_cfg, has_guidance=True)
    assert (cfg.precision, cfg.compile, inference.precision) == ("bf16", True, "bf16")
    args = build_parser().parse_args([*base, "--guidance", "bc", "--eval-precision", "bf16"])  # no critic: method none
    inference = _inference(args, algo_cfg, has_guidance=False)
    assert (inference.method, inference.precision) == ("none", "bf16")
    args = build_parser().parse_args(["evaluate", "snap.pt", "--precision", "bf16"])
    assert _inference(args, algo_cfg, has_guidance=True).precision == "bf16"


@pytest.mark.parametrize("argv", [["train", "--task", "t", "--out", "x", "--precision", "fp16"],
                                  ["train", "--task", "t", "--out", "x", "--eval-precision", "fp16"],
                                  ["evaluate", "snap.pt", "--precision", "fp16"]])
def test_bad_precision_is_refused_with_the_allowed_values(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli_main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2, err
    assert re.search(r"argument --(eval-)?precision: invalid choice: 'fp16' \(choose from '?fp32'?, '?bf16'?\)", err)
