"""`mdpt status RUN_DIR --watch`: the status table printed again after each interval, showing what changed."""

from __future__ import annotations

import io
import json

import pytest

from sweeps.cli import main as cli_main
from sweeps.cmd_sweep import watch_status
from trainables.results import ResultStore, trial_row

IDENT = {"sweep": "w", "trial_id": "t0", "task": "hopper-medium", "algo": "dql", "train_guidance": "joint", "seed": 0}


@pytest.fixture(scope="module")
def config() -> dict:
    """A training trial's TrialSpec dict (the trials table's config_json)."""
    from sweeps.expand import expand
    from tests.sweeps.sweep_helpers import tiny_spec

    return next(s for s in expand(tiny_spec(seeds=(0,))) if s.name == "train").items[0].to_dict()


@pytest.fixture
def run_dir(tmp_path, config):
    (tmp_path / "run.json").write_text(json.dumps({"sweep": "w", "scale": "quick", "comparisons": []}))
    ResultStore(tmp_path).write_trial(trial_row(IDENT, stage="train", config=config, status="RUNNING"))
    return tmp_path


def test_watch_refreshes_the_status_after_each_interval(run_dir, config):
    out, waits = io.StringIO(), []

    def trial_finishes_while_waiting(seconds: float) -> None:
        waits.append(seconds)
        ResultStore(run_dir).write_trial(trial_row(IDENT, stage="train", config=config, status="TERMINATED"))

    (run_dir / "tensorboard").mkdir()
    watch_status(run_dir, 2.5, rounds=2, out=out, sleep=trial_finishes_while_waiting)
    text = out.getvalue()
    first, second = text.split("Ctrl-C to stop\n")[:2]
    assert "train: 1 trials: 1 RUNNING" in first and "train: 1 trials: 1 TERMINATED" in second
    assert waits == [2.5] and text.count("refreshing every 2.5 s") == 2
    assert "\033[" not in text  # not a terminal: no screen clearing
    assert f"live curves: tensorboard --logdir {run_dir / 'tensorboard'}" in first


def test_watch_interval_must_be_positive(run_dir, capsys):
    assert cli_main(["status", str(run_dir), "--watch", "--interval", "0"]) == 2
    assert "--interval 0: must be a positive number of seconds" in capsys.readouterr().err
