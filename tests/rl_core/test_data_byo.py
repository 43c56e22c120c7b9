"""Bring your own data: HDF5 / Parquet inputs with and without an env, reference scores from the command line, a
sidecar JSON, D4RL's file names or D4RL's bullet scores; errors before any training, never after."""

from __future__ import annotations

import json
import math
import shutil
import warnings

import pytest

from rl_core.config import D4RL_BULLET_REF_SCORES
from rl_core.data.io import ReferenceScoreWarning, import_dataset, load_dataset, save_dataset
from rl_core.errors import DatasetError
from sweeps.cli import main as cli_main
from tests.rl_core.test_data_io import assert_same, write_d4rl, write_d4rl_pybullet
from tests.rl_core.test_train import TINY_ALGO, tiny_hopper_dataset
from trainables.results import ResultStore

HOPPER = "HopperBulletEnv-v0"


@pytest.fixture(scope="module")
def ds():
    return tiny_hopper_dataset(n_episodes=6, cap=15)


@pytest.fixture
def envless(ds, tmp_path):
    path = tmp_path / "medium-replay.hdf5"
    write_d4rl(path, ds)
    return path


def test_file_whose_env_cannot_be_known_fails_at_load_in_one_line(envless):
    with pytest.raises(DatasetError) as e:
        load_dataset(str(envless))
    msg = str(e.value)
    assert "\n" not in msg and "cannot tell which environment" in msg
    assert f"mdpt data import {envless} --env ENV --name NAME" in msg and f"{envless}.json" in msg


def test_train_on_such_a_file_fails_before_training(envless, tmp_path, capsys):
    out = tmp_path / "run"
    rc = cli_main(["train", "--task", str(envless), "--algo", "dql", "--steps", "2", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "cannot tell which environment" in err[0]
    assert not (out / "results").exists()  # nothing trained


def test_import_with_env_trains_and_evaluates_on_d4rl_bullet_scores(ds, envless, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MDPT_DATA", str(tmp_path / "data"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ReferenceScoreWarning)
        assert cli_main(["data", "import", str(envless), "--env", "hopper", "--name", "my-hopper"]) == 0
    said = capsys.readouterr().out
    assert "env HopperBulletEnv-v0 (from --env)" in said and "D4RL's bullet reference scores" in said
    back = load_dataset("my-hopper")
    assert_same(ds, back)
    lo, hi = D4RL_BULLET_REF_SCORES[HOPPER]
    assert (back.env_id, back.task, back.ref_min_score, back.ref_max_score) == (HOPPER, "my-hopper", lo, hi)
    assert cli_main(["data", "info", "my-hopper"]) == 0
    assert "none of its own" in capsys.readouterr().out
    out = tmp_path / "run"
    rc = cli_main(["train", "--task", "my-hopper", "--algo", "dql", "--guidance", "joint", "--steps", "4",
                   "--eval-every", "4", "--log-every", "2", "--episodes", "2", "--batch-size", "16", "--threads", "1",
                   "--max-steps", "30", "--candidates", "4", "--algo-config", json.dumps(TINY_ALGO["dql"]),
                   "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    evals = ResultStore(out).read("evals").to_pylist()
    assert len(evals) == 2 and {r["task"] for r in evals} == {"my-hopper"}
    for r in evals:
        assert r["normalized_score"] == pytest.approx(100 * (r["return"] - lo) / (hi - lo))
        assert r["normalized_score_d4rl"] == pytest.approx(r["normalized_score"])


def test_ref_scores_from_the_command_line_or_a_sidecar(ds, envless, tmp_path):
    imported = import_dataset(str(envless), "mine", tmp_path, env="HopperBulletEnv-v0", ref_min=-10.0, ref_max=90.0)
    back = load_dataset("mine", root=tmp_path)
    assert str(imported) == str(tmp_path / "mine") and (back.ref_min_score, back.ref_max_score) == (-10.0, 90.0)
    assert back.metadata["ref_source"] == "--ref-min/--ref-max"
    with pytest.raises(DatasetError, match="give both --ref-min and --ref-max"):
        load_dataset(str(envless), env="hopper", ref_min=1.0)
    sidecar = envless.with_name(envless.name + ".json")
    sidecar.write_text(json.dumps({"env_id": "hopper", "ref_min_score": 5.0, "ref_max_score": 55.0}))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ReferenceScoreWarning)
        side = load_dataset(str(envless))
    assert (side.env_id, side.ref_min_score, side.ref_max_score) == (HOPPER, 5.0, 55.0)
    assert side.metadata["env_source"] == str(sidecar)
    sidecar.write_text(json.dumps({"env": "hopper"}))
    with pytest.raises(DatasetError, match="sidecar must be a JSON object with keys"):
        load_dataset(str(envless))


def test_d4rl_file_names(ds, tmp_path):
    pybullet = tmp_path / "hopper-bullet-mixed-v0.hdf5"
    write_d4rl_pybullet(pybullet, ds)
    with pytest.warns(ReferenceScoreWarning, match="D4RL's bullet reference scores for HopperBulletEnv-v0"):
        got = load_dataset(str(pybullet))
    assert got.env_id == HOPPER and (got.ref_min_score, got.ref_max_score) == D4RL_BULLET_REF_SCORES[HOPPER]
    assert got.task == "hopper-bullet-mixed-v0"  # its own name, not the generated task's
    d4rl = tmp_path / "bullet-hopper-medium-v0.hdf5"
    write_d4rl(d4rl, ds)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ReferenceScoreWarning)  # D4RL's own dataset: its scores, no warning
        own = load_dataset(str(d4rl))
    assert own.env_id == HOPPER and "of this D4RL dataset" in own.metadata["ref_source"]


def test_env_that_does_not_fit_the_data_or_is_unknown(envless):
    with pytest.raises(DatasetError, match=r"sizes 15/3, but AntBulletEnv-v0 has 28/8 \(--env\); is --env right"):
        load_dataset(str(envless), env="ant")
    with pytest.raises(DatasetError, match="--env names unknown environment 'Hopper-v5'"):
        load_dataset(str(envless), env="Hopper-v5")


def test_parquet_file_with_env(ds, tmp_path):
    directory = save_dataset(ds, tmp_path / "d")
    bare = tmp_path / "walk.parquet"
    shutil.copyfile(directory / "transitions.parquet", bare)
    with pytest.raises(DatasetError, match="cannot tell which environment"):
        load_dataset(str(bare))
    got = load_dataset(str(bare), env="hopper", ref_min=0.0, ref_max=1.0)
    assert_same(ds, got)
    assert got.env_id == HOPPER and got.task == "walk"


def test_info_says_what_is_missing(envless, capsys):
    assert cli_main(["data", "info", str(envless)]) == 0
    out = capsys.readouterr().out
    assert "env:          MISSING" in out and "mdpt data import" in out and "--env ENV" in out
    assert math.isfinite(float(out.split("mean ")[1].split(",")[0]))  # returns are still shown


def test_import_refuses_generated_task_names(envless, tmp_path):
    with pytest.raises(DatasetError, match="generated task's name"):
        import_dataset(str(envless), "hopper-medium", tmp_path, env="hopper")
    with pytest.raises(DatasetError, match="directory name"):
        import_dataset(str(envless), "a/b", tmp_path, env="hopper")
