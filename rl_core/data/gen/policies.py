"""Numpy behaviour policies with bit-reproducible inference, and the 2017 pybullet experts.

``MLPPolicy`` is a ReLU MLP whose output is either clipped to [-1, 1] (``output="clip"``: the 2017
experts, DAgger students) or squashed SAC-style (``output="tanh"``: ``tanh(clip(mean, -c, c))``,
stable-baselines3's gSDE actor). Inference is float64 built only from IEEE basic operations in a
fixed order -- each dense layer accumulates ``b + x_0 W_0 + x_1 W_1 + ...`` term by term and tanh is
a fixed continued fraction -- never BLAS (whose kernels, and so whose rounding, depend on the CPU
and the thread count) nor a libm/SIMD transcendental. So the same weights and observations give the
same actions bit for bit on any x86-64 machine, with any number of threads, whatever the batch size.

Weight files (``.npz``): ``w0, b0, w1, b1, ...`` (W as (in, out)), ``output`` ("clip" | "tanh") and
``mean_clip`` (tanh output only). The pybullet wheel ships policies trained in 2017
(``pybullet_envs/examples/enjoy_TF_*_2017may.py``, a 128-64 ReLU MLP); ``load_2017_expert`` parses
their numpy literals with ``ast``, never importing the file.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import numpy as np

from rl_core.errors import DatasetError

EXPERTS_2017 = {"HopperBulletEnv-v0": "enjoy_TF_HopperBulletEnv_v0_2017may.py",
                "AntBulletEnv-v0": "enjoy_TF_AntBulletEnv_v0_2017may.py"}
# The wheel also ships HalfCheetah and Walker2D 2017 policies, but they fail in pybullet-envs-gymnasium 0.6.0
# (measured, 3 seeded episodes: Walker2D falls within 14-17 steps, return ~20; HalfCheetah 809 / 695 / -64
# deterministic and -440 to -1110 with 0.1 action noise), so those two envs get SAC experts instead.
OUTPUTS = ("clip", "tanh")
_TANH_HALVINGS = 6  # tanh(x) from tanh(x / 2^6) by the doubling formula; |x / 64| <= 20 / 64 keeps the fraction short
_TANH_TERMS = 12


def dense(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``x @ w + b`` for x (B, in), accumulated term by term in input order (reproducible; see module doc)."""
    out = np.empty((x.shape[0], w.shape[1]), np.float64)
    out[:] = b
    for i in range(w.shape[0]):
        out += x[:, i, None] * w[i]
    return out


def tanh(x: np.ndarray) -> np.ndarray:
    """Reproducible float64 tanh (abs. error < 1e-15): Lambert's continued fraction on x / 64, then six
    doublings ``tanh(2y) = 2 tanh(y) / (1 + tanh(y)^2)``; inputs beyond +-20 saturate (tanh(20) = 1 - 8e-18)."""
    y = np.clip(np.asarray(x, np.float64), -20.0, 20.0) / float(2 ** _TANH_HALVINGS)
    y2 = y * y
    frac = np.full_like(y, 2.0 * _TANH_TERMS + 1.0)
    for k in range(_TANH_TERMS - 1, -1, -1):
        frac = (2.0 * k + 1.0) + y2 / frac
    t = y / frac
    for _ in range(_TANH_HALVINGS):
        t = 2.0 * t / (1.0 + t * t)
    return t


class MLPPolicy:
    """Deterministic numpy MLP (module docstring). ``layers`` = [(W (in, out), b (out,)), ...].

    ``__call__(obs)`` takes (obs_dim,) or (B, obs_dim) and returns actions of the same rank in [-1, 1].
    """

    def __init__(self, layers: list[tuple[np.ndarray, np.ndarray]], output: str = "clip", mean_clip: float = 0.0):
        if output not in OUTPUTS:
            raise DatasetError(f"MLPPolicy output={output!r} is not allowed; allowed values: {list(OUTPUTS)}")
        self.layers = [(np.asarray(w, np.float64), np.asarray(b, np.float64)) for w, b in layers]
        self.output, self.mean_clip = output, float(mean_clip)

    @property
    def obs_dim(self) -> int:
        return int(self.layers[0][0].shape[0])

    @property
    def act_dim(self) -> int:
        return int(self.layers[-1][0].shape[1])

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        x = np.asarray(obs, np.float64)
        single = x.ndim == 1
        x = x[None] if single else x
        for i, (w, b) in enumerate(self.layers):
            x = dense(x, w, b)
            if i < len(self.layers) - 1:
                x = np.maximum(x, 0.0)
        if self.output == "tanh":
            x = tanh(np.clip(x, -self.mean_clip, self.mean_clip) if self.mean_clip > 0 else x)
        x = np.clip(x, -1.0, 1.0)
        return x[0] if single else x

    def save(self, path: Path, dtype: type = np.float32) -> None:
        """Write the weights (as ``dtype``; inference is float64 either way) with the output transform."""
        arrays = {f"{k}{i}": a.astype(dtype) for i, (w, b) in enumerate(self.layers) for k, a in (("w", w), ("b", b))}
        np.savez(path, output=np.array(self.output), mean_clip=np.array(self.mean_clip), **arrays)

    @classmethod
    def load(cls, path: Path) -> MLPPolicy:
        try:
            with np.load(path) as f:
                n = sum(1 for k in f.files if k.startswith("w"))
                output = str(f["output"]) if "output" in f.files else "clip"
                mean_clip = float(f["mean_clip"]) if "mean_clip" in f.files else 0.0
                return cls([(f[f"w{i}"], f[f"b{i}"]) for i in range(n)], output, mean_clip)
        except (OSError, KeyError, ValueError) as exc:
            raise DatasetError(f"{path}: not a policy weight file (expected w0, b0, ... in an .npz): {exc}") from None


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
