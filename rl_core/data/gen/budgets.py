"""Generation budgets: ``Budget`` (everything that sizes a run, one per ``--budget`` name) and ``SACConfig``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from rl_core.errors import DatasetError

@dataclass(frozen=True)
class SACConfig:
    """RL Zoo SAC settings for the PyBullet envs (``hyperparams/sac.yml``, ``&pybullet-defaults``)."""

    learning_rate: float = 7.3e-4
    linear_lr_envs: tuple[str, ...] = ("HopperBulletEnv-v0", "Walker2DBulletEnv-v0")  # zoo `lin_7.3e-4`
    buffer_size: int = 300_000
    batch_size: int = 256
    gamma: float = 0.98
    tau: float = 0.02
    train_freq: int = 8
    gradient_steps: int = 8
    learning_starts: int = 10_000
    use_sde: bool = True
    log_std_init: float = -3.0
    net_arch: tuple[int, ...] = (400, 300)
    gsde_resample_every: int = 8  # resample the gSDE matrix every k steps when collecting (= train_freq)


@dataclass(frozen=True)
class Budget:
    """Everything that sizes a generation run; one instance per ``--budget`` name."""

    name: str
    transitions: int  # per random / medium / expert dataset (whole episodes; may overshoot by < 1000)
    fraction: float  # medium = first snapshot with eval normalized score >= 100 * fraction
    action_noise: float  # Gaussian std on deterministic behaviour policies (2017 expert, DAgger student)
    ref_random_episodes: int  # episodes behind ref_min_score
    ref_expert_episodes: int  # episodes behind ref_max_score
    eval_episodes: int  # per SAC snapshot
    use_2017_experts: bool  # Hopper/Ant: 2017 expert + DAgger instead of SAC
    dagger_demo_steps: int  # expert demonstration transitions that start the aggregate
    dagger_rollout_steps: int  # learner steps per round (its evaluation and new training states)
    dagger_grad_steps: int  # Adam steps per round
    dagger_max_rounds: int
    dagger_hidden: tuple[int, ...]
    dagger_lr: float
    dagger_batch_size: int
    sac_steps: int  # SAC environment steps
    sac_snapshot_every: int
    sac: SACConfig = field(default_factory=SACConfig)

    def __post_init__(self) -> None:
        if not 0.0 <= self.fraction <= 1.0:
            raise DatasetError(f"budget '{self.name}': fraction must be in [0, 1], got {self.fraction}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Budget:
        sac = d.get("sac", {})
        return cls(**{**d, "dagger_hidden": tuple(d["dagger_hidden"]),
                      "sac": SACConfig(**{**sac, "linear_lr_envs": tuple(sac.get("linear_lr_envs", ())),
                                          "net_arch": tuple(sac.get("net_arch", (400, 300)))})})


_DAGGER = dict(dagger_demo_steps=1000, dagger_rollout_steps=5000, dagger_grad_steps=20, dagger_max_rounds=80,
               dagger_hidden=(64, 64), dagger_lr=1e-3, dagger_batch_size=256)
BUDGETS: dict[str, Budget] = {
    # tests only: seconds; medium is the first snapshot (fraction 0)
    "tiny": Budget("tiny", transitions=1500, fraction=0.0, action_noise=0.1, ref_random_episodes=3,
                   ref_expert_episodes=1, eval_episodes=1, use_2017_experts=True,
                   **{**_DAGGER, "dagger_demo_steps": 300, "dagger_rollout_steps": 300, "dagger_max_rounds": 2},
                   sac_steps=300, sac_snapshot_every=150,
                   sac=SACConfig(learning_starts=100, net_arch=(32, 32), buffer_size=1000, batch_size=64,
                                 gradient_steps=2)),
    # laptop default: hopper-medium in ~2-3 min on 2 cores; 100k transitions = 10 % of D4RL
    "quick": Budget("quick", transitions=100_000, fraction=0.4, action_noise=0.1, ref_random_episodes=100,
                    ref_expert_episodes=10, eval_episodes=5, use_2017_experts=True, **_DAGGER,
                    sac_steps=100_000, sac_snapshot_every=5_000),
    "standard": Budget("standard", transitions=300_000, fraction=0.4, action_noise=0.1, ref_random_episodes=100,
                       ref_expert_episodes=20, eval_episodes=5, use_2017_experts=False, **_DAGGER,
                       sac_steps=300_000, sac_snapshot_every=10_000),
    # D4RL sizes: 1M transitions, SAC trained 1M steps
    "paper": Budget("paper", transitions=1_000_000, fraction=0.4, action_noise=0.1, ref_random_episodes=100,
                    ref_expert_episodes=100, eval_episodes=10, use_2017_experts=False, **_DAGGER,
                    sac_steps=1_000_000, sac_snapshot_every=10_000),
}


def get_budget(name: str) -> Budget:
    if name not in BUDGETS:
        raise DatasetError(f"unknown budget '{name}'; allowed: {', '.join(BUDGETS)}")
    return BUDGETS[name]
