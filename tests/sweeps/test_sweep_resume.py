"""The driver dies mid-sweep (SIGKILL) and `mdpt sweep --resume RUN_DIR` finishes it: every trial
completes and every (trial, step, episode) eval row exists exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from sweeps.spec import dump_spec
from tests.sweeps.sweep_helpers import eval_keys, tiny_spec, trials

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def _mdpt(*args: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sweeps.cli", *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)


def test_killed_driver_resumes(tiny_data_root, tmp_path):
    spec = {k: v for k, v in tiny_spec(steps=1600).items() if k not in ("scale", "budget")}
    spec_file = tmp_path / "tiny.yaml"
    spec_file.write_text(dump_spec(spec))
    run_dir = tmp_path / "run"
    env = dict(os.environ, RAY_AUTH_MODE="disabled", MDPT_DATA=str(tiny_data_root), PYTHONPATH=str(ROOT))

    driver = _mdpt("sweep", str(spec_file), "--out", str(run_dir), "--no-report", env=env)
    deadline = time.time() + 300
    while not list((run_dir / "results" / "evals").glob("*/step00000400-*.parquet")):  # first eval landed
        assert driver.poll() is None and time.time() < deadline, driver.stdout.read()
        time.sleep(0.5)
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and everything it started (the embedded Ray)
    driver.wait()
    assert yaml.safe_load((run_dir / "spec.yaml").read_text())["scale"] == "smoke"

    resumed = _mdpt("sweep", "--resume", str(run_dir), "--no-report", env=env)
    out, _ = resumed.communicate(timeout=400)
    assert resumed.returncode == 0, out[-4000:]
    assert "[train] restoring" in out
    rows = trials(run_dir)
    assert len(rows) == 2 and {r["status"] for r in rows.values()} == {"TERMINATED"}
    keys = eval_keys(run_dir)
    expected = {(t, step, "self", ep) for t in rows for step in (400, 800, 1200, 1600) for ep in range(2)}
    assert len(keys) == len(set(keys)) and set(keys) == expected
