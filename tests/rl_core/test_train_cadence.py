"""The training loop's cadence (rl_core/train.py ``run_training``) with a counting fake update.

A real tiny DQL is built by the loop, but ``DQL.update`` is replaced by a fake that counts its calls,
advances the step counter and returns fixed metrics plus the step: what is checked is the loop's
bookkeeping (update calls, report windows, snapshot and checkpoint steps, files, resume), not
learning. Synthetic data built in code; no PyBullet.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from rl_core.algos.dql import DQL
from rl_core.snapshot import load_snapshot
from rl_core.train import TrainConfig, load_checkpoint, run_training
from tests.rl_core.algo_tester import TINY_CONFIGS, tiny_dataset


@pytest.fixture()
def calls(monkeypatch) -> list[int]:
    """DQL.update replaced: records each call's batch size; returns loss/bc = 1 and loss/actor = the step."""
    seen: list[int] = []

    def fake_update(self, batch, generator):
        assert isinstance(generator, torch.Generator)
        seen.append(len(batch.obs))
        self.step += 1  # what the real update does (so checkpoints carry it)
        return {"loss/bc": 1.0, "loss/actor": float(self.step)}

    monkeypatch.setattr(DQL, "update", fake_update)
    return seen


@pytest.fixture(autouse=True)
def _restore_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def cfg(**kw) -> TrainConfig:
    base = dict(task="toy-medium", algo="dql", algo_config=TINY_CONFIGS["dql"], train_guidance="bc", seed=1,
                steps=10, batch_size=8, log_every=3, eval_every=4, checkpoint_every=5, threads=1)
    return TrainConfig(**(base | kw))


def run(c: TrainConfig, workdir: Path, **kw) -> dict:
    """run_training recording every callback: reports, snapshots (step, path), checkpoints (step, path)."""
    out = {"reports": [], "snaps": [], "ckpts": []}
    out["result"] = run_training(c, tiny_dataset(), workdir=workdir, report=out["reports"].append,
                                 on_snapshot=lambda s, p: out["snaps"].append((s, p)),
                                 on_checkpoint=lambda s, p: out["ckpts"].append((s, p)), **kw)
    return out


def test_update_report_snapshot_and_checkpoint_cadence(calls, tmp_path):
    out = run(cfg(), tmp_path)
    assert calls == [8] * 10  # one update per step, batch_size rows each
    reports = out["reports"]
    assert [m["step"] for m in reports] == [3, 6, 9, 10]  # every log_every, and at the end
    # window means since the previous report: loss/actor = mean of the steps in the window
    assert [m["loss/actor"] for m in reports] == [2.0, 5.0, 8.0, 10.0]
    assert all(m["loss/bc"] == 1.0 and m["time/steps_per_s"] > 0 and m["mem/peak_mb"] > 0 for m in reports)
    assert out["result"]["step"] == 10 and out["result"]["restored_from"] == -1
    # snapshots every eval_every and at the end; each loadable and stamped with its step
    assert [s for s, _ in out["snaps"]] == [4, 8, 10]
    assert sorted(p.name for p in tmp_path.glob("step_*.pt")) == ["step_00000004.pt", "step_00000008.pt",
                                                                   "step_00000010.pt"]
    assert all(p.exists() and load_snapshot(p).step == s for s, p in out["snaps"])
    # checkpoints every checkpoint_every and at the end; only the latest stays on disk
    assert [s for s, _ in out["ckpts"]] == [5, 10]
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["step_00000010"]
    state = load_checkpoint(tmp_path / "checkpoints" / "step_00000010")
    assert state["step"] == 10 and state["algo"]["step"] == 10


@pytest.mark.parametrize("kw,reports,snaps,ckpts", [
    (dict(steps=7, log_every=7, eval_every=2, checkpoint_every=None), [7], [2, 4, 6, 7], [2, 4, 6, 7]),
    (dict(steps=5, log_every=10, eval_every=10, checkpoint_every=3), [5], [5], [3, 5]),
])
def test_cadence_edge_cases(calls, tmp_path, kw, reports, snaps, ckpts):
    """checkpoint_every None = eval_every; intervals longer than the run still report / save at the end."""
    out = run(cfg(**kw), tmp_path)
    assert len(calls) == kw["steps"]
    assert [m["step"] for m in out["reports"]] == reports
    assert [s for s, _ in out["snaps"]] == snaps and [s for s, _ in out["ckpts"]] == ckpts


def test_resume_calls_update_only_for_the_remaining_steps(calls, tmp_path):
    saved = tmp_path / "saved"

    def keep_step5(step: int, path: Path) -> None:  # what Ray does: copy the checkpoint away
        if step == 5:
            shutil.copytree(path, saved)

    full = run_training(cfg(), tiny_dataset(), workdir=tmp_path / "a", on_checkpoint=keep_step5)
    assert len(calls) == 10
    calls.clear()
    out = run(cfg(), tmp_path / "b", resume_from=saved)
    assert len(calls) == 5  # steps 6..10 only
    assert out["result"]["restored_from"] == 5
    # the window of steps 4, 5 came back with the checkpoint: the same reports as the uninterrupted run
    assert [(m["step"], m["loss/actor"]) for m in out["reports"]] == [(6, 5.0), (9, 8.0), (10, 10.0)]
    assert full["loss/actor"] == out["result"]["loss/actor"]
    assert [s for s, _ in out["snaps"]] == [8, 10] and [s for s, _ in out["ckpts"]] == [10]
    assert sorted(p.name for p in (tmp_path / "b").glob("step_*.pt")) == ["step_00000008.pt", "step_00000010.pt"]
    # resuming a finished run does nothing
    calls.clear()
    done = run(cfg(), tmp_path / "c", resume_from=tmp_path / "b" / "checkpoints" / "step_00000010")
    assert calls == [] and done["reports"] == [] and done["snaps"] == [] and done["ckpts"] == []
