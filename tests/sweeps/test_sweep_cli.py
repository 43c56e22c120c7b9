"""`mdpt sweep` / `mdpt status` input errors: one clear message naming what to do, no traceback, no Ray."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.sweeps.test_spec import _with

ROOT = Path(__file__).resolve().parents[2]


def _mdpt(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sweeps.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          env=env, timeout=120)


def test_bad_spec_names_the_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(_with("algorithms", ["dql", "sac"])))
    proc = _mdpt("sweep", str(bad))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "mdpt: error: spec field `algorithms[1]`: bad value 'sac'" in proc.stderr


def test_a_spec_this_machine_cannot_run_fails_before_making_its_data(tmp_path):
    """gfdt's smoke budget asks for GPU evaluators: one line naming the --set that fits, and no dataset made
    (a sweep makes its missing generated datasets only once it can run)."""
    env = dict(os.environ, MDPT_DATA=str(tmp_path / "empty"))
    proc = _mdpt("sweep", "gfdt", "--out", str(tmp_path / "run"), env=env)
    assert proc.returncode == 2 and "--set 'resources=" in proc.stderr, proc.stderr
    assert not (tmp_path / "empty").exists() and not (tmp_path / "run").exists()


def test_resume_and_status_need_a_run_directory(tmp_path):
    proc = _mdpt("sweep", "--resume", str(tmp_path))
    assert proc.returncode == 2 and "no spec.yaml there" in proc.stderr
    proc = _mdpt("status", str(tmp_path))
    assert proc.returncode == 2 and "has no run.json" in proc.stderr


def test_dry_run_names_the_budget_and_what_it_can_show_and_quick_warns_once():
    proc = _mdpt("sweep", "quickstart", "--dry-run", "--scale", "quick")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == [
        "mdpt: warning: --scale: the budget name `quick` is deprecated and will be removed in the next release; "
        "it is now called `smoke` (same budget)"]
    head = proc.stdout.splitlines()
    assert head[0].startswith("sweep 'quickstart', scale smoke:")
    assert head[1] == ("budget smoke (1 task, 3 seeds, 1200 steps, a checkpoint every 400 steps with 5 episodes): "
                       "checks the pipeline; policies are not trained; statistics are not evidence")
    proc = _mdpt("sweep", "double_guidance", "--dry-run", "--scale", "cpu")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    head = proc.stdout.splitlines()
    assert head[0].startswith("sweep 'double_guidance', scale cpu: 1 task(s), 1 algorithm(s), modes ['joint', "
                              "'frozen'], seeds [0, 1, 2, 3, 4]")
    assert head[1].startswith("budget cpu (1 task, 5 seeds, 8000 steps, a checkpoint every 400 steps with 10 episodes)")
    assert head[1].endswith("smallest attainable p = 0.0079 (5 vs 5 seeds, two-sided)")
    assert '"ema_warmup": "copy"' in proc.stdout and "stage recombine: 3 item(s)" in proc.stdout


def test_reuse_errors_are_one_line_before_any_work(tmp_path):
    """--reuse with --resume, a missing directory, a directory that is not a sweep's: one line, nothing made."""
    proc = _mdpt("sweep", "--resume", str(tmp_path), "--reuse", str(tmp_path / "a"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == ("mdpt: error: --reuse cannot be combined with --resume (a resumed sweep keeps the "
                                   "trials it reused)")
    env = dict(os.environ, MDPT_DATA=str(tmp_path / "empty"))
    proc = _mdpt("sweep", "quickstart", "--reuse", str(tmp_path / "a"), "--out", str(tmp_path / "run"), env=env)
    assert proc.returncode == 2 and f"mdpt: error: --reuse {tmp_path / 'a'}: no such directory" in proc.stderr
    assert not (tmp_path / "empty").exists() and not (tmp_path / "run").exists()
    (tmp_path / "a").mkdir()
    proc = _mdpt("sweep", "quickstart", "--dry-run", "--reuse", str(tmp_path / "a"))
    assert proc.returncode == 2 and "not a sweep run directory: no spec.yaml there" in proc.stderr


def test_resume_refuses_other_data_under_the_same_name(tiny_data_root, tmp_path):
    """run.json records each dataset's fingerprint and size; --resume with another dataset of the same name
    (another machine's data root) stops in one line before Ray starts, and the run directory is unchanged."""
    from sweeps.run import check_datasets, write_run_dir
    from tests.conftest import write_tiny_hopper
    from tests.sweeps.sweep_helpers import tiny_spec

    spec = tiny_spec()
    datasets = check_datasets(spec, str(tiny_data_root))
    assert datasets["hopper-medium"]["transitions"] == 1500 and len(datasets["hopper-medium"]["fingerprint"]) >= 12
    run_dir = tmp_path / "run"
    write_run_dir(spec, run_dir, datasets)
    before = (run_dir / "run.json").read_text()
    assert yaml.safe_load(before)["datasets"] == datasets
    other = tmp_path / "other_data"
    write_tiny_hopper(other, n=1200, seed=1)
    proc = _mdpt("sweep", "--resume", str(run_dir), env=dict(os.environ, MDPT_DATA=str(other)))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    err = proc.stderr.strip()
    assert err.startswith(f"mdpt: error: --resume {run_dir}: dataset 'hopper-medium' under {other} is not the one "
                          "this run trained on (found fingerprint") and "1200 transitions; the run's:" in err, err
    assert "1500 transitions" in err and len(err.splitlines()) == 1 and (run_dir / "run.json").read_text() == before
    assert not (run_dir / "results").exists()
    empty = tmp_path / "empty_data"  # the run's dataset is not there: refused before a dataset is made
    proc = _mdpt("sweep", "--resume", str(run_dir), env=dict(os.environ, MDPT_DATA=str(empty)))
    assert proc.returncode == 2 and f"dataset 'hopper-medium' under {empty} is not the one this run trained on " \
        "(not there; the run's: fingerprint" in proc.stderr, proc.stderr
    assert not empty.exists() and not (run_dir / "results").exists()
