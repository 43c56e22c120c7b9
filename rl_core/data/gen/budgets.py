"""Generation budgets: ``Budget`` (how much data each level gets; one instance per ``--budget`` name).

A budget sizes datasets only: which policies act, and how (action noise), is fixed by the env's policy
set (``policyset.py``), so every budget's datasets come from the same shipped policies.
"""

from __future__ import annotations

from dataclasses import dataclass

from rl_core.config import ConfigMixin
from rl_core.errors import DatasetError


@dataclass(frozen=True)
class Budget(ConfigMixin):
    """Dataset sizes of one ``--budget`` name (whole episodes: a dataset overshoots by less than one episode)."""

    name: str
    transitions: int  # per random / medium / expert dataset (medium-expert holds medium + expert)
    replay_transitions: int  # medium-replay, spread evenly over the learning process's snapshots

    def __post_init__(self) -> None:
        if self.transitions < 1 or self.replay_transitions < 1:
            raise DatasetError(f"budget '{self.name}': transitions and replay_transitions must be >= 1")


BUDGETS: dict[str, Budget] = {
    "tiny": Budget("tiny", transitions=1500, replay_transitions=600),  # tests only: seconds
    "quick": Budget("quick", transitions=100_000, replay_transitions=30_000),  # laptop default: 10 % of D4RL
    "standard": Budget("standard", transitions=300_000, replay_transitions=100_000),
    "paper": Budget("paper", transitions=1_000_000, replay_transitions=300_000),  # D4RL sizes
}


def get_budget(name: str) -> Budget:
    if name not in BUDGETS:
        raise DatasetError(f"unknown budget '{name}'; allowed: {', '.join(BUDGETS)}")
    return BUDGETS[name]
