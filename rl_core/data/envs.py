"""PyBullet locomotion environments (pybullet-envs-gymnasium 0.6.0) behind one constructor.

``make_env`` registers the ``*BulletEnv-v0`` ids on first use and hides pybullet's C-level stdout
chatter ("pybullet build time ...", "argv[0]=") printed when the module is imported and when an
env opens its physics client (at its first ``reset``). All envs use their own DIRECT client, so
several live in one process; an episode depends only on the ``reset`` seed and the actions.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from collections.abc import Iterator
from typing import Any

import gymnasium

from rl_core.errors import DatasetError

TASK_ENVS: dict[str, str] = {
    "hopper": "HopperBulletEnv-v0",
    "halfcheetah": "HalfCheetahBulletEnv-v0",
    "walker2d": "Walker2DBulletEnv-v0",
    "ant": "AntBulletEnv-v0",
}

# Observation / action sizes (pybullet_envs_gymnasium robot_locomotors.py), checked against foreign datasets
# without building an env.
ENV_DIMS: dict[str, tuple[int, int]] = {
    "HopperBulletEnv-v0": (15, 3),
    "HalfCheetahBulletEnv-v0": (26, 6),
    "Walker2DBulletEnv-v0": (22, 6),
    "AntBulletEnv-v0": (28, 8),
}

# The reward's per-step alive bonus while the robot is alive (pybullet_envs_gymnasium 0.6.0: robot_locomotors.py,
# ``alive_bonus`` of Hopper, Walker2D, HalfCheetah and Ant: +1 alive, -1 otherwise). With
# gym_locomotion_envs.py ``WalkerBaseBulletEnv.step``: reward = alive + progress + electricity_cost +
# joints_at_limit_cost + feet_collision_cost, progress = potential - potential_old, potential =
# -distance_to_target / dt (``WalkerBase.calc_potential``; the target is 1 km ahead on x, the potential is set at
# reset in env_bases.py) and every cost term <= 0. Summed over an episode, progress telescopes to the net distance
# moved towards the target / dt, so an episode that ends no closer to it returns at most ALIVE_BONUS x steps: the
# ``no_progress`` reference line (``rl_core.data.gen.make.dataset_reference_lines``).
ALIVE_BONUS: dict[str, float] = {
    "HopperBulletEnv-v0": 1.0,
    "HalfCheetahBulletEnv-v0": 1.0,
    "Walker2DBulletEnv-v0": 1.0,
    "AntBulletEnv-v0": 1.0,
}

_libc = ctypes.CDLL(None)


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Redirect the process-level stdout and stderr (fds 1, 2) to /dev/null, catching C-level prints.

    C stdio buffers its output when the stream is not a terminal, so it is flushed (``fflush(NULL)``)
    before the fds are restored; otherwise the text would appear later, at exit. Python exceptions
    raised inside still propagate and are reported after the fds are restored.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        yield
    finally:
        _libc.fflush(None)
        for fd, old in zip((1, 2), saved):
            os.dup2(old, fd)
            os.close(old)
        os.close(devnull)


def _register() -> None:
    if "HopperBulletEnv-v0" not in gymnasium.registry:
        with quiet_stdout():
            import pybullet_envs_gymnasium  # noqa: F401  (registers the *BulletEnv-v0 ids)


class QuietReset(gymnasium.Wrapper, gymnasium.utils.RecordConstructorArgs):
    """Silences the physics-client connection message printed during the first ``reset``. Records its (no)
    constructor arguments, so an env spec that includes it can be re-made (Minari does this)."""

    def __init__(self, env: gymnasium.Env):
        gymnasium.utils.RecordConstructorArgs.__init__(self)
        gymnasium.Wrapper.__init__(self, env)

    def reset(self, **kw: Any) -> tuple[Any, dict]:
        if getattr(self.env.unwrapped, "physicsClientId", 0) < 0:
            with quiet_stdout():
                return self.env.reset(**kw)
        return self.env.reset(**kw)


def env_id_for(name: str) -> str:
    """Env id for a task prefix ("hopper") or an env id itself; DatasetError otherwise."""
    if name in TASK_ENVS:
        return TASK_ENVS[name]
    if name in TASK_ENVS.values():
        return name
    raise DatasetError(f"unknown environment '{name}'; known: {', '.join(TASK_ENVS)} ({', '.join(TASK_ENVS.values())})")


def make_env(env_id: str, **kw: Any) -> gymnasium.Env:
    """``gymnasium.make(env_id, **kw)`` for a PyBullet env id (or task prefix), with a 1000-step TimeLimit."""
    _register()
    with quiet_stdout():  # the first make imports pybullet, which prints its build time
        env = gymnasium.make(env_id_for(env_id), **kw)
    return QuietReset(env)


def make_vector_env(env_id: str, n: int) -> gymnasium.vector.VectorEnv:
    """``n`` envs stepped in lockstep in this process (``SyncVectorEnv``, one DIRECT client each).

    ``reset(seed=s)`` seeds sub-env i with s + i. Observations (n, obs_dim), actions (n, act_dim).
    Finished sub-envs auto-reset on the next step (gymnasium's default NEXT_STEP mode).
    """
    if n < 1:
        raise DatasetError(f"make_vector_env: n must be >= 1, got {n}")
    return gymnasium.vector.SyncVectorEnv([lambda: make_env(env_id) for _ in range(n)])
