"""Numpy behaviour policies (``MLPPolicy``, ``noisy``, ``uniform``) and the 2017 pybullet experts.

The pybullet wheel ships policies trained in 2017 (``pybullet_envs/examples/enjoy_TF_*_2017may.py``,
a 128-64 ReLU MLP); ``load_2017_expert`` parses their numpy literals with ``ast``, never importing
the file.
"""

from __future__ import annotations

import ast
import importlib.util
from collections.abc import Callable
from pathlib import Path

import numpy as np

from rl_core.errors import DatasetError

Act = Callable[[np.ndarray], np.ndarray]  # obs (obs_dim,) -> action (act_dim,) in [-1, 1]
EXPERTS_2017 = {"HopperBulletEnv-v0": "enjoy_TF_HopperBulletEnv_v0_2017may.py",
                "AntBulletEnv-v0": "enjoy_TF_AntBulletEnv_v0_2017may.py"}


class MLPPolicy:
    """Deterministic numpy MLP: ReLU hidden layers, linear output clipped to [-1, 1].

    ``layers`` = [(W (in, out), b (out,)), ...]; ``__call__(obs (obs_dim,)) -> (act_dim,)``.
    """

    def __init__(self, layers: list[tuple[np.ndarray, np.ndarray]]):
        self.layers = [(np.asarray(w, np.float64), np.asarray(b, np.float64)) for w, b in layers]

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        x = np.asarray(obs, np.float64)
        for i, (w, b) in enumerate(self.layers):
            x = x @ w + b
            if i < len(self.layers) - 1:
                x = np.maximum(x, 0.0)
        return np.clip(x, -1.0, 1.0)

    def save(self, path: Path) -> None:
        np.savez(path, **{f"{k}{i}": a for i, (w, b) in enumerate(self.layers) for k, a in (("w", w), ("b", b))})

    @classmethod
    def load(cls, path: Path) -> MLPPolicy:
        with np.load(path) as f:
            return cls([(f[f"w{i}"], f[f"b{i}"]) for i in range(len(f.files) // 2)])


def expert_2017_path(env_id: str) -> Path | None:
    spec = importlib.util.find_spec("pybullet_envs")
    if env_id not in EXPERTS_2017 or spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "examples" / EXPERTS_2017[env_id]
    return path if path.exists() else None


def load_2017_expert(env_id: str) -> MLPPolicy:
    """The 2017 policy for ``env_id``, parsed from the example file's literals (never imported)."""
    path = expert_2017_path(env_id)
    if path is None:
        raise DatasetError(f"no 2017 pybullet expert for {env_id} (available: {', '.join(EXPERTS_2017)})")
    arrays = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and node.value.args:
            name = getattr(node.targets[0], "id", "")
            if name.startswith("weights_"):
                arrays[name] = np.array(ast.literal_eval(node.value.args[0]))
    names = ("dense1", "dense2", "final")
    return MLPPolicy([(arrays[f"weights_{n}_w"], arrays[f"weights_{n}_b"]) for n in names])


def noisy(policy: Callable[[np.ndarray], np.ndarray], std: float, rng: np.random.Generator) -> Act:
    """``a = clip(policy(s) + std * N(0, I), -1, 1)``."""
    def act(obs: np.ndarray) -> np.ndarray:
        a = policy(obs)
        return np.clip(a + std * rng.standard_normal(a.shape), -1.0, 1.0)

    return act


def uniform(act_dim: int, rng: np.random.Generator) -> Act:
    return lambda obs: rng.uniform(-1.0, 1.0, act_dim)
