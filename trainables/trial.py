"""The typed trial spec: what one Tune trial runs, in the one dict shape that travels through Tune.

``sweeps/expand.py`` expands a sweep YAML into ``TrialSpec`` objects; the driver fills in the
``runtime`` (run directory, data root, the evaluator pool's name, threads, GPU request) and the
pretrained artifact of frozen / unfrozen trials, and hands ``TrialSpec.to_dict()`` to Tune as the
trial's ``config["trial"]``; the trainable's first line is ``TrialSpec.from_dict(config["trial"])``.
The ``trials`` table's ``config_json`` is that same dict. Shape::

    {stage: "pretrain" | "train",
     identity: {task, algo, train_guidance, seed, guidance_seed, pretrained},
     train:    rl_core.train.TrainConfig dict        (stage train; else null)
     pretrain: rl_core.train.PretrainConfig dict     (stage pretrain; else null)
     eval:     {inference: InferenceConfig dict, episodes, max_steps}   (stage train; else null)
     runtime:  {sweep, run_dir, data_root, coordinator, threads, gpu}  (changes no result)}

Pretraining trials have ``train_guidance = "pretrain:<pretraining entry name>"`` and ``algo`` = the
algorithm the critic is pretrained for.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from rl_core.config import ConfigMixin, check_choice
from rl_core.train import PretrainConfig, TrainConfig

STAGES = ("pretrain", "train")


@dataclass(frozen=True, kw_only=True)
class TrialIdentity(ConfigMixin):
    """The columns that identify a trial in every result table."""

    task: str
    algo: str
    train_guidance: str  # a training-guidance mode, or pretrain:<name> for pretraining trials
    seed: int  # the diffusion seed (or the critic's, for pretraining)
    guidance_seed: int  # seed of the training critic; -1 without one (rl_core.modes.Mode.guidance_seed)
    pretrained: str | None = None  # pretrained modes: the pretraining entry whose artifact the trial uses


@dataclass(frozen=True, kw_only=True)
class EvalSpec(ConfigMixin):
    """How every snapshot of a training trial is evaluated."""

    inference: dict  # rl_core.inference.InferenceConfig as a dict (fully resolved)
    episodes: int
    max_steps: int = 1000


@dataclass(frozen=True, kw_only=True)
class Runtime(ConfigMixin):
    """Where and with what a trial runs; nothing here changes a result."""

    sweep: str
    run_dir: str
    data_root: str | None = None  # None = the worker's default data root
    coordinator: str = ""  # the evaluator pool's actor name
    threads: int = 1  # torch CPU threads
    gpu: float = 0.0  # the trial's GPU request (CUDA is used when > 0 and visible)


@dataclass(frozen=True, kw_only=True)
class TrialSpec:
    """One trial: identity + training (or pretraining) config + evaluation config + runtime."""

    stage: str
    identity: TrialIdentity
    train: TrainConfig | None = None
    pretrain: PretrainConfig | None = None
    eval: EvalSpec | None = None
    runtime: Runtime | None = None

    def __post_init__(self) -> None:
        check_choice("TrialSpec.stage", self.stage, STAGES)
        if (self.stage == "train") != (self.train is not None and self.eval is not None) or \
                (self.stage == "pretrain") != (self.pretrain is not None):
            raise ValueError(f"TrialSpec: stage {self.stage!r} needs exactly its own config (train + eval | pretrain)")

    @property
    def config(self) -> TrainConfig | PretrainConfig:
        return self.train if self.stage == "train" else self.pretrain  # type: ignore[return-value]

    @property
    def label(self) -> str:
        """A short human label: ``hopper-medium dql/frozen s0``."""
        i = self.identity
        return f"{i.task} {i.algo}/{i.train_guidance} s{i.seed}"

    def replace(self, **changes: Any) -> TrialSpec:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "identity": self.identity.to_dict(),
                "train": self.train.to_dict() if self.train else None,
                "pretrain": self.pretrain.to_dict() if self.pretrain else None,
                "eval": self.eval.to_dict() if self.eval else None,
                "runtime": self.runtime.to_dict() if self.runtime else None}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrialSpec:
        return cls(stage=d["stage"], identity=TrialIdentity.from_dict(d["identity"]),
                   train=TrainConfig.from_dict(d["train"]) if d.get("train") else None,
                   pretrain=PretrainConfig.from_dict(d["pretrain"]) if d.get("pretrain") else None,
                   eval=EvalSpec.from_dict(d["eval"]) if d.get("eval") else None,
                   runtime=Runtime.from_dict(d["runtime"]) if d.get("runtime") else None)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)
