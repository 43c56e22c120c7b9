"""The project's vocabulary, validators and config mixin: one home, no torch, no Ray.

Every name that crosses a package boundary is defined here once: algorithm names, training-guidance
modes (their meaning: ``rl_core/modes.py``), inference methods, guidance kinds, task names and the
slash-namespaced metric keys. Specs (``sweeps/spec.py``), the CLI, the training loop, the evaluator
and the result tables read these tuples instead of keeping copies. Values that change results are
typed config dataclasses built on ``ConfigMixin``; their fields are validated with ``check_choice`` /
``check_range`` so that every bad value is one ``ConfigError`` line naming the field, the value and
what is allowed.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from rl_core.errors import ConfigError

# ----- vocabularies --------------------------------------------------------------------------------
ALGORITHMS = ("dql", "idql", "edp", "swg")
TRAIN_GUIDANCE_MODES = ("joint", "none", "bc", "noise", "frozen", "unfrozen")  # meanings: rl_core/modes.py
INFERENCE_METHODS = ("none", "softmax", "argmax", "gradient", "swg")
# Methods with a scale and its default: softmax inverse temperature on Q (or Q - V), gradient-guidance λ,
# SWG self-guidance s. none and argmax have no scale: their rows carry infer_scale = NaN.
SCALED_METHODS = {"softmax": 100.0, "gradient": 1.0, "swg": 1.0}
GUIDANCE_KINDS = ("td", "iql")  # trained critics (the "random" critic of the noise mode is not pretrainable)
DEFAULT_GUIDANCE_KIND = {"dql": "td", "edp": "td", "idql": "iql", "swg": "iql"}  # the algorithm's own critic
TASK_ENVS = ("hopper", "halfcheetah", "walker2d", "ant")
TASK_LEVELS = ("random", "medium", "medium-replay", "expert", "medium-expert")
KNOWN_TASKS = tuple(f"{e}-{lvl}" for e in TASK_ENVS for lvl in TASK_LEVELS)
DEVICES = ("cpu", "cuda")
# Numeric precision of training (TrainConfig.precision) and of evaluation (InferenceConfig.precision):
# fp32, or bf16 autocast of the forward passes (rl_core.nets.autocast; optimiser state, EMA, critic
# targets and network outputs stay float32). Default fp32 for both: see README "Precision".
PRECISIONS = ("fp32", "bf16")

# D4RL's bullet reference scores (d4rl/infos.py REF_MIN_SCORE / REF_MAX_SCORE of bullet-<env>-*-v0), keyed by
# the PyBullet env id our datasets record. The GFDT paper's tables are on this scale; mdpt's own scale
# (the dataset's metadata: random policy / expert) is the default. reference/datasets.md §3.2.
D4RL_BULLET_REF_SCORES: dict[str, tuple[float, float]] = {
    "HopperBulletEnv-v0": (20.058972, 1441.8059623430963),
    "HalfCheetahBulletEnv-v0": (-1275.766996, 2381.6725),
    "Walker2DBulletEnv-v0": (16.523877, 1623.6476303317536),
    "AntBulletEnv-v0": (373.705955, 2650.495),
}


class Metric:
    """Metric keys shared by the algorithms, the loop, the trainables and the report (CleanRL style)."""

    LOSS_BC = "loss/bc"
    LOSS_ACTOR = "loss/actor"
    LOSS_Q_POLICY = "loss/q_policy"
    LOSS_CRITIC = "loss/critic"
    LOSS_VALUE = "loss/value"
    STEPS_PER_S = "time/steps_per_s"
    PEAK_MB = "mem/peak_mb"
    EVAL_SCORE = "eval/score_mean"
    EVAL_RETURN = "eval/return_mean"
    EVAL_STEP = "eval/step"
    EVAL_WAIT_S = "time/eval_wait_s"


def infer_scale(method: str, scale: float) -> float:
    """The ``infer_scale`` column (part of the evaluation key): ``scale`` for methods that have one, else NaN."""
    return float(scale) if method in SCALED_METHODS else math.nan


# ----- validators ----------------------------------------------------------------------------------
def check_choice(field: str, value: Any, allowed: tuple) -> None:
    """Raise ConfigError naming ``field`` when ``value`` is not one of ``allowed``."""
    if value not in allowed:
        raise ConfigError(f"{field}={value!r} is not allowed; allowed values: {list(allowed)}")


def check_range(field: str, value: Any, lo: float, hi: float = math.inf) -> None:
    """Raise ConfigError naming ``field`` when ``value`` is not a number in [lo, hi]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise ConfigError(f"{field}={value!r} is out of range; allowed: [{lo}, {hi}]")


def check_int(field: str, value: Any, lo: int = 0, *, allow_none: bool = False) -> None:
    """Raise ConfigError naming ``field`` unless ``value`` is an integer >= lo (or None when allowed)."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise ConfigError(f"{field}={value!r} is not allowed; allowed: an integer >= {lo}"
                          + (" or None" if allow_none else ""))


class ConfigMixin:
    """``to_dict`` / ``from_dict`` for flat frozen config dataclasses (JSON is canonical).

    ``from_dict`` names unknown and missing required fields and turns JSON lists back into tuples,
    so ``from_dict(json.loads(json.dumps(c.to_dict()))) == c`` for every config."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, d: dict) -> Any:
        fields = dataclasses.fields(cls)  # type: ignore[arg-type]
        names = {f.name for f in fields}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"{cls.__name__}: unknown field(s) {unknown}; allowed: {sorted(names)}")
        missing = [f.name for f in fields if f.name not in d
                   and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        if missing:
            raise ConfigError(f"{cls.__name__}: missing required field(s) {missing}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]
