"""Shared fixtures: the ONE embedded Ray of a pytest run (started only by tests that ask for it) and a
tiny real Hopper dataset for sweep tests.

Ray: one ``ray.init`` per session (ray_tune.md §6): token auth off, 4 logical CPUs and 1 logical
GPU on whatever cores the machine has (admission control only), no dashboard, a small object store.
Tests that build their own multi-node cluster run it in a subprocess instead.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

RAY_NAMESPACE = "mdpt_test"


@pytest.fixture(scope="session")
def ray_session():
    """The session's embedded Ray (4 logical CPUs, 1 logical GPU); shut down at the end of the run."""
    os.environ["RAY_AUTH_MODE"] = "disabled"
    os.environ["TUNE_GLOBAL_CHECKPOINT_S"] = "0"  # save experiment state at every step (restore tests)
    import ray

    ray.init(address="local", num_cpus=4, num_gpus=1, include_dashboard=False, object_store_memory=256 * 2**20,
             log_to_driver=False, configure_logging=False, namespace=RAY_NAMESPACE)
    yield ray
    ray.shutdown()


def write_tiny_hopper(root: Path, n: int = 1500, seed: int = 0) -> Path:
    """A small real dataset under ``root/hopper-medium``: random-policy rollouts of the PyBullet Hopper,
    with made-up reference scores. Enough for the loops and the evaluator to run for real."""
    from rl_core.data.dataset import OfflineDataset
    from rl_core.data.envs import TASK_ENVS, make_env
    from rl_core.data.io import save_dataset

    env_id = TASK_ENVS["hopper"]
    env, rng = make_env(env_id), np.random.default_rng(seed)
    cols: dict[str, list] = {k: [] for k in ("observations", "actions", "rewards", "next_observations",
                                             "terminals", "timeouts")}
    obs, _ = env.reset(seed=seed)
    t = 0
    for i in range(n):
        act = rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
        nxt, rew, term, trunc, _ = env.step(act)
        t += 1
        timeout = (trunc or t >= 100 or i == n - 1) and not term
        for k, v in zip(cols, (obs, act, rew, nxt, term, timeout)):
            cols[k].append(v)
        obs = nxt
        if term or timeout:
            obs, _ = env.reset(seed=seed + i + 1)
            t = 0
    env.close()
    arrays = {k: np.asarray(v, dtype=bool if k in ("terminals", "timeouts") else np.float32) for k, v in cols.items()}
    ds = OfflineDataset(**arrays, metadata={"env_id": env_id, "task": "hopper-medium", "ref_min_score": -20.0,
                                            "ref_max_score": 3000.0, "behavior_policy": "uniform random (test)"})
    return save_dataset(ds, root / "hopper-medium")


@pytest.fixture(scope="session")
def tiny_data_root(tmp_path_factory) -> Path:
    """A data root holding the tiny ``hopper-medium`` dataset."""
    root = tmp_path_factory.mktemp("mdpt_data")
    write_tiny_hopper(root)
    return root


@pytest.fixture
def one_thread():
    """torch on one thread for the test (tiny nets run fastest so, and the test machine is shared)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
