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


def test_missing_dataset_names_the_make_command(tmp_path):
    env = dict(os.environ, MDPT_DATA=str(tmp_path / "empty"))
    proc = _mdpt("sweep", "gfdt", "--out", str(tmp_path / "run"), env=env)
    assert proc.returncode == 2 and "mdpt data make halfcheetah-medium" in proc.stderr, proc.stderr


def test_resume_and_status_need_a_run_directory(tmp_path):
    proc = _mdpt("sweep", "--resume", str(tmp_path))
    assert proc.returncode == 2 and "no spec.yaml there" in proc.stderr
    proc = _mdpt("status", str(tmp_path))
    assert proc.returncode == 2 and "has no run.json" in proc.stderr
