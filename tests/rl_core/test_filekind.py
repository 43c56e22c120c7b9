"""The wrong kind of file for --guidance-artifact / `mdpt evaluate`: one line saying what it is and what was expected."""

from __future__ import annotations

import pytest

from rl_core.data.io import save_dataset
from rl_core.errors import ArtifactError, SnapshotError
from rl_core.filekind import ARTIFACT, CHECKPOINT, SNAPSHOT, describe
from rl_core.guidance import load_artifact
from rl_core.snapshot import load_snapshot
from rl_core.train import PretrainConfig, run_pretraining, run_training
from tests.rl_core.test_train import TINY_GUIDANCE, tiny_cfg, tiny_hopper_dataset


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    import torch

    threads = torch.get_num_threads()
    tmp = tmp_path_factory.mktemp("files")
    ds = tiny_hopper_dataset(n_episodes=4, cap=10)
    snaps: list = []
    run_training(tiny_cfg(steps=2, eval_every=2, log_every=2), ds, workdir=tmp / "train",
                 on_snapshot=lambda s, p: snaps.append(p))
    cfg = PretrainConfig(task="hopper-tiny", kind="td", guidance_config=TINY_GUIDANCE, seed=1, steps=2, batch_size=16,
                         save_every=2, log_every=2, threads=1)
    artifact = run_pretraining(cfg, ds, workdir=tmp / "guidance")
    torch.set_num_threads(threads)
    checkpoint = next((tmp / "train" / "checkpoints").iterdir())
    return {"snapshot": snaps[-1], "artifact": artifact, "checkpoint dir": checkpoint,
            "checkpoint": checkpoint / "state.pt", "dataset": save_dataset(ds, tmp / "hopper-tiny"),
            "parquet": tmp / "hopper-tiny" / "transitions.parquet"}


def test_describe_names_each_kind(files):
    assert describe(files["snapshot"]) == SNAPSHOT and describe(files["artifact"]) == ARTIFACT
    assert describe(files["checkpoint"]) == CHECKPOINT and "training checkpoint directory" in describe(
        files["checkpoint dir"])
    assert "dataset directory" in describe(files["dataset"]) and "PARQUET file" in describe(files["parquet"])


@pytest.mark.parametrize("given, says", [("snapshot", "policy snapshot"), ("checkpoint", "training checkpoint"),
                                         ("checkpoint dir", "training checkpoint directory"),
                                         ("dataset", "offline dataset"), ("parquet", "offline dataset")])
def test_guidance_artifact_given_another_file(files, given, says):
    with pytest.raises(ArtifactError) as e:
        load_artifact(files[given])
    msg = str(e.value)
    assert "\n" not in msg and f"{files[given]} is " in msg and says in msg
    assert msg.endswith(f"not {ARTIFACT}") and "weights_only" not in msg


@pytest.mark.parametrize("given, says", [("artifact", "guidance artifact"), ("checkpoint", "training checkpoint"),
                                         ("dataset", "offline dataset")])
def test_evaluate_given_another_file(files, given, says):
    with pytest.raises(SnapshotError) as e:
        load_snapshot(files[given])
    msg = str(e.value)
    assert "\n" not in msg and says in msg and msg.endswith(f"not {SNAPSHOT}") and "weights_only" not in msg


def test_the_right_files_still_load(files):
    assert load_snapshot(files["snapshot"]).step == 2
    assert load_artifact(files["artifact"])[1]["kind"] == "td"
