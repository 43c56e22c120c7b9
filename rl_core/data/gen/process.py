"""A behaviour-learning process on disk, ``<root>/_policies/<env_id>/<budget>-seed<seed>/``: its record
(``Process``: snapshots, medium snapshot, reference scores, training transitions) and ``behaviour_process``,
which loads it or trains it (DAgger or SAC) atomically."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rl_core.data.dataset import FIELDS
from rl_core.data.gen.budgets import Budget
from rl_core.data.gen.collect import Progress
from rl_core.data.gen.dagger import train_dagger
from rl_core.data.gen.policies import Act, MLPPolicy, expert_2017_path, load_2017_expert, noisy
from rl_core.data.gen.sac import sac_actor, train_sac
from rl_core.errors import DatasetError
from rl_core.fsutil import atomic_dir


@dataclass
class Process:
    """A finished behaviour-learning process, as recorded in ``process.json``."""

    directory: Path
    info: dict  # kind, env_id, budget, seed, snapshots [{index, step, eval_return, eval_episodes, path}], ...

    @property
    def medium(self) -> dict:
        return self.info["snapshots"][self.info["medium_index"]]

    def policy(self, which: str, *, stochastic: bool, rng: np.random.Generator, seed: int) -> Act:
        """Acting function of the ``"expert"`` or ``"medium"`` policy (stochastic = as in the datasets)."""
        noise = self.info["budget"]["action_noise"] if stochastic else 0.0
        if self.info["kind"] == "dagger":
            pol = load_2017_expert(self.info["env_id"]) if which == "expert" else MLPPolicy.load(
                self.directory / self.medium["path"])
            return noisy(pol, noise, rng)
        path = self.info["snapshots"][-1 if which == "expert" else self.info["medium_index"]]["path"]
        return sac_actor(self.info, self.directory / path, stochastic=stochastic, seed=seed)

    def replay(self) -> dict[str, np.ndarray]:
        """Training transitions up to and including the medium snapshot's evaluation (package docstring)."""
        with np.load(self.directory / "replay.npz") as f:
            keep = f["snapshot"] <= self.info["medium_index"] if self.info["kind"] == "dagger" else \
                np.arange(len(f["rewards"])) < self.medium["step"]
            return {k: f[k][keep] for k in FIELDS}


def behaviour_process(env_id: str, budget: Budget, seed: int, root: Path, progress: Progress) -> Process:
    """Load the learning process for (env, budget, seed) from ``root/_policies``, training it if absent."""
    directory = root / "_policies" / env_id / f"{budget.name}-seed{seed}"
    if (directory / "process.json").exists():
        info = json.loads((directory / "process.json").read_text())
        if info["budget"] != json.loads(json.dumps(budget.to_dict())):
            raise DatasetError(f"{directory}: behaviour policies were made with different '{budget.name}' budget "
                               f"values; delete that directory to retrain them")
        progress(f"[policies] reusing {directory}")
        return Process(directory, info)
    with atomic_dir(directory) as tmp:
        t0 = time.time()
        use_dagger = budget.use_2017_experts and expert_2017_path(env_id) is not None
        info = (train_dagger if use_dagger else train_sac)(env_id, budget, seed, tmp, progress)
        info.update(env_id=env_id, seed=seed, budget=budget.to_dict(), seconds=round(time.time() - t0, 1))
        (tmp / "process.json").write_text(json.dumps(info, indent=1))
    return Process(directory, info)
