"""Fixtures: small run directories written in the result schema by trainables.results.ResultStore."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analysis.metrics import Curves
from trainables.results import ResultStore

# score(task, algo, train_guidance, infer_source, seed, step) -> mean normalized score (x100)
ScoreFn = Callable[[str, str, str, str, int, int], float]


def default_score(task: str, algo: str, tg: str, src: str, seed: int, step: int) -> float:
    """Rising curves; frozen guidance learns faster than joint."""
    rate = {"joint": 1.0, "frozen": 1.6, "none": 0.5}.get(tg, 1.0) * (1.2 if src != "self" else 1.0)
    return 80 * (1 - math.exp(-rate * step / 1200)) + 2 * seed


def write_run(run_dir: Path, *, tasks=("hopper-medium",), arms=(("dql", "joint", "self"), ("dql", "frozen", "self")),
              seeds=(0, 1, 2), steps=(400, 800, 1200, 1600), episodes=4, score: ScoreFn = default_score,
              noise: float = 3.0, infer=("softmax", 100.0), run_json: dict | None = None, rng_seed: int = 0,
              trial_status: dict[str, dict] | None = None, precision: str = "fp32") -> Path:
    """Write evals + trials for every (task, arm, seed, step); episodes ~ N(score, noise^2), evaluated in
    ``precision`` (the ``inference_precision`` column)."""
    rng = np.random.default_rng(rng_seed)
    store = ResultStore(run_dir)
    for task in tasks:
        for algo, tg, src in arms:
            for seed in seeds:
                trial = f"{task}_{algo}_{tg}_s{seed}"
                for step in steps:
                    mu = score(task, algo, tg, src, seed, step)
                    store.write_eval_job([
                        {"sweep": "test", "trial_id": trial, "task": task, "algo": algo, "train_guidance": tg,
                         "infer_source": src, "infer_method": infer[0], "infer_scale": infer[1],
                         "inference_precision": precision,
                         "diffusion_seed": seed, "guidance_seed": seed if src == "self" else seed + 100,
                         "step": step, "episode": e, "eval_seed": 1000 * step + e,
                         "return": 30 * (mu + noise * z), "normalized_score": mu + noise * z,
                         "normalized_score_d4rl": math.nan,
                         "length": 1000, "wall_s": 1.0,
                         "guidance_file": "" if src == "self" else f"guidance/{src}/final.pt"}
                        for e, z in enumerate(rng.standard_normal(episodes))])
                if src == "self":
                    row = {"sweep": "test", "trial_id": trial, "stage": "train", "task": task, "algo": algo,
                           "train_guidance": tg, "seed": seed, "config_json": "{}", "status": "TERMINATED",
                           "failure_reason": None, "restored_from": -1, "num_failures": 0, "updated_at": 0.0}
                    store.write_trial({**row, **(trial_status or {}).get(trial, {})})
    if run_json is not None:
        (run_dir / "run.json").write_text(json.dumps(run_json))
    return run_dir


def set_d4rl_scores(run_dir: Path, d4rl: Callable[[str, np.ndarray], np.ndarray] | None) -> None:
    """Rewrite every eval file of ``run_dir`` with ``normalized_score_d4rl = d4rl(task, normalized_score)``;
    ``d4rl=None`` drops the column instead (a table written before it existed)."""
    for path in sorted((run_dir / "results" / "evals").rglob("*.parquet")):
        table = pq.read_table(path)
        if "normalized_score_d4rl" in table.column_names:
            table = table.drop_columns(["normalized_score_d4rl"])
        if d4rl is not None:
            task = table.column("task")[0].as_py()
            score = d4rl(task, table.column("normalized_score").to_numpy())
            table = table.append_column("normalized_score_d4rl", pa.array(score, pa.float64()))
        pq.write_table(table, path)


def curves(mean, var=None, steps=None) -> Curves:
    """(num_runs x num_checkpoints) means -> Curves at steps 400, 800, ..."""
    mean = np.atleast_2d(np.asarray(mean, float))
    steps = np.asarray(steps if steps is not None else 400 * np.arange(1, mean.shape[1] + 1))
    var = np.zeros_like(mean) if var is None else np.atleast_2d(np.asarray(var, float))
    return Curves(steps, tuple(f"t{i}" for i in range(len(mean))), np.arange(len(mean)), mean, var,
                  np.full(mean.shape, 10))


@pytest.fixture
def small_run(tmp_path: Path) -> Path:
    """The quickstart shape: 1 task, DQL joint vs frozen, 3 seeds, 4 checkpoints, 4 episodes each."""
    return write_run(tmp_path / "run")
