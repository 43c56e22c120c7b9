"""Minari for real: a small local dataset made with Minari's own DataCollector in a PyBullet env, loaded as
``minari:<id>``, then a few training steps and an evaluation through `mdpt train`."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

minari = pytest.importorskip("minari")

from rl_core.data.envs import make_env  # noqa: E402
from rl_core.data.io import load_dataset  # noqa: E402
from sweeps.cli import main as cli_main  # noqa: E402
from tests.rl_core.test_train import TINY_ALGO  # noqa: E402
from trainables.results import ResultStore  # noqa: E402

DATASET_ID = "mdpt-test/hopper/random-v0"


@pytest.fixture(scope="module")
def minari_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("minari")
    mp = pytest.MonkeyPatch()
    mp.setenv("MINARI_DATASETS_PATH", str(root))
    env = minari.DataCollector(make_env("hopper", max_episode_steps=12), record_infos=False)
    rng = np.random.default_rng(0)
    steps = []
    for ep in range(6):
        obs, _ = env.reset(seed=ep)
        done = False
        while not done:
            act = rng.uniform(-1, 1, 3).astype(np.float32)
            nxt, r, term, trunc, _ = env.step(act)
            steps.append((obs, act, r, nxt, term, trunc))
            obs, done = nxt, term or trunc
    env.create_dataset(dataset_id=DATASET_ID, algorithm_name="uniform random", author="mdpt tests", eval_env="HopperBulletEnv-v0",
                       author_email="mdpt@example.org", code_permalink="https://example.org/mdpt",
                       ref_min_score=0.0, ref_max_score=100.0, description="mdpt test dataset")
    yield root, steps
    mp.undo()


def test_minari_dataset_loads_as_transitions(minari_root):
    _, steps = minari_root
    ds = load_dataset(f"minari:{DATASET_ID}")
    assert ds.n_transitions == len(steps) and ds.env_id == "HopperBulletEnv-v0"
    for i, (obs, act, r, nxt, term, trunc) in enumerate(steps):
        np.testing.assert_array_equal(ds.observations[i], obs)
        np.testing.assert_array_equal(ds.next_observations[i], nxt)  # obs[:-1] / obs[1:] within each episode
        np.testing.assert_array_equal(ds.actions[i], act)
        assert ds.rewards[i] == np.float32(r) and ds.terminals[i] == term and ds.timeouts[i] == (trunc and not term)
    assert (ds.ref_min_score, ds.ref_max_score) == (0.0, 100.0) and ds.metadata["ref_source"] == "dataset metadata"
    assert ds.task == f"minari:{DATASET_ID}" and ds.timeouts.any()  # the 12-step limit: truncations


def test_train_a_few_steps_and_evaluate(minari_root, tmp_path, capsys):
    out = tmp_path / "run"
    rc = cli_main(["train", "--task", f"minari:{DATASET_ID}", "--algo", "dql", "--guidance", "joint", "--steps", "4",
                   "--eval-every", "4", "--log-every", "2", "--episodes", "2", "--batch-size", "16", "--threads", "1",
                   "--max-steps", "30", "--candidates", "4", "--algo-config", json.dumps(TINY_ALGO["dql"]),
                   "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    evals = ResultStore(out).read("evals").to_pylist()
    assert len(evals) == 2 and {r["task"] for r in evals} == {f"minari:{DATASET_ID}"}
    for r in evals:  # scored on the dataset's own reference scores (0, 100) and on D4RL's bullet scale
        assert r["normalized_score"] == pytest.approx(r["return"]) and math.isfinite(r["normalized_score_d4rl"])
