"""Tiny sweep specs and result checks shared by the sweep tests (real Ray, real loops, tiny nets)."""

from __future__ import annotations

import json
from pathlib import Path

from sweeps.spec import resolve, validate_spec
from trainables.results import read_table


def tiny_spec(steps: int = 800, seeds: tuple[int, ...] = (0, 1), **over) -> dict:
    """DQL joint on the tiny hopper dataset: 2x32 nets, batch 32, 2 episodes of <= 20 env steps per eval."""
    budget = {"steps": steps, "eval_every": 400, "episodes": 2, "pretrain_steps": 400, "batch_size": 32,
              "log_every": 200}
    raw = {"name": "tiny", "tasks": ["hopper-medium"], "algorithms": ["dql"], "train_guidance": ["joint"],
           "seeds": list(seeds), "budgets": {"smoke": budget, "paper": budget},
           "eval": {"max_episode_steps": 20, "inference": {"dql": {"n_candidates": 4}}},
           "algo_config": {"dql": {"hidden": 32, "n_layers": 2, "emb_dim": 8, "ema_start": 0}},
           "guidance_config": {"dql": {"hidden": 32}},
           "resources": {"trial": {"cpu": 1}, "evaluators": {"count": 1, "cpu": 1}}, "max_failures": 1}
    raw.update(over)
    return resolve(validate_spec(raw), "smoke")


def eval_keys(run_dir: Path) -> list[tuple]:
    """(trial_id, step, infer_source, episode) of every eval row (duplicates kept, to be counted)."""
    rows = read_table(run_dir, "evals").to_pylist()
    return [(r["trial_id"], r["step"], r["infer_source"], r["episode"]) for r in rows]


def trials(run_dir: Path) -> dict[str, dict]:
    return {r["trial_id"]: r for r in read_table(run_dir, "trials").to_pylist()}


def tune_results(run_dir: Path, stage: str) -> dict[str, list[dict]]:
    """trial_id -> every result Tune recorded (result.json lines)."""
    out = {}
    for f in (run_dir / "tune" / stage).glob("*/result.json"):
        out[f.parent.name] = [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
    return out
