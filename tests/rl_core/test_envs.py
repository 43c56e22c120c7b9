"""PyBullet envs: ids and shapes, seed determinism across clients, lockstep vector env, quiet output."""

import subprocess
import sys

import numpy as np
import pytest

from rl_core.data.envs import TASK_ENVS, make_env, make_vector_env
from rl_core.errors import DatasetError

DIMS = {"hopper": (15, 3), "walker2d": (22, 6), "halfcheetah": (26, 6), "ant": (28, 8)}


def trajectory(env, seed: int, steps: int = 40) -> np.ndarray:
    obs, _ = env.reset(seed=seed)
    out = [obs]
    for t in range(steps):
        obs, *_ = env.step(np.full(env.action_space.shape, np.sin(t), np.float32))
        out.append(obs)
    return np.stack(out)


@pytest.mark.parametrize("task", list(TASK_ENVS))
def test_make_env_ids_and_shapes(task):
    env = make_env(task)
    assert env.spec.id == TASK_ENVS[task] and env.spec.max_episode_steps == 1000
    obs, _ = env.reset(seed=0)
    assert obs.shape == (DIMS[task][0],) and obs.dtype == np.float32
    assert env.action_space.shape == (DIMS[task][1],)
    env.close()


def test_same_seed_same_episode_across_clients_and_resets():
    a, b = make_env("HopperBulletEnv-v0"), make_env("HopperBulletEnv-v0")
    first = trajectory(a, seed=7)
    trajectory(a, seed=8)  # another episode in between must not leak state
    np.testing.assert_array_equal(first, trajectory(b, seed=7))
    np.testing.assert_array_equal(first, trajectory(a, seed=7))
    assert not np.array_equal(first[0], trajectory(b, seed=9)[0])


def test_vector_env_matches_single_envs_in_lockstep():
    venv = make_vector_env("hopper", 3)
    obs, _ = venv.reset(seed=5)
    singles = [make_env("hopper") for _ in range(3)]
    single_obs = np.stack([e.reset(seed=5 + i)[0] for i, e in enumerate(singles)])
    np.testing.assert_array_equal(obs, single_obs)
    act = np.tile(np.array([0.3, -0.2, 0.1], np.float32), (3, 1))
    vobs, vrew, *_ = venv.step(act)
    for i, e in enumerate(singles):
        o, r, *_ = e.step(act[i])
        np.testing.assert_array_equal(vobs[i], o)
        assert vrew[i] == pytest.approx(r)
    venv.close()


def test_no_pybullet_output_on_stdout_or_stderr():
    code = "from rl_core.data.envs import make_env; e = make_env('ant'); e.reset(seed=0); e.step(e.action_space.sample())"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "" and res.stderr == ""


def test_unknown_env_lists_known():
    with pytest.raises(DatasetError, match="hopper.*HopperBulletEnv-v0"):
        make_env("humanoid")
