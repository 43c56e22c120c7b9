"""Evaluation throughput: episodes/s of lockstep (vectorized) vs one-env-at-a-time rollouts, same process.

Both modes draw their envs from the evaluator's per-process pool, built once before timing.
Two actors on HopperBulletEnv-v0:
- ``linear``: a fixed deterministic linear policy (env-bound: measures stepping + Python overhead);
- ``dql``: a DQL snapshot acting with softmax resampling over 50 candidates (the default eval actor).
  Without ``--snapshot`` the DQL networks are untrained (default sizes), so episodes are short
  (the hopper falls); pass a trained snapshot for realistic episode lengths.

    .venv/bin/python benchmarks/bench_eval.py [--episodes 10] [--max-steps 1000] [--snapshot PATH] [--threads 2]

Prints figures only; nothing is asserted. Timings on a shared machine vary by 2x or more.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from rl_core.evaluation import evaluate

ENV = "HopperBulletEnv-v0"
REF_MIN, REF_MAX = -20.272305, 3234.3  # only labels the score here


class LinearActor:
    """a = tanh(W obs): deterministic, row-independent (so both modes roll out the same episodes)."""

    def __init__(self) -> None:
        self.w = np.random.default_rng(0).normal(size=(15, 3)).astype(np.float32) * 0.3

    def act(self, obs: np.ndarray, generator: torch.Generator) -> np.ndarray:
        return np.tanh(obs @ self.w)


def dql_actor(snapshot: str | None):
    """The default DQL evaluation actor from ``snapshot``, or from an untrained default-size DQL."""
    from rl_core.algos import get_algorithm
    from rl_core.inference import InferenceConfig
    from rl_core.snapshot import load_snapshot, make_actor
    from rl_core.types import Normalizer

    if snapshot is None:
        cls = get_algorithm("dql")
        algo = cls(cls.Config(), 15, 3, guidance=None, guidance_mode="joint", seed=0)
        snapshot = str(Path(tempfile.mkdtemp()) / "untrained.pt")
        meta = {"env_id": ENV, "task": "hopper-bench", "ref_min_score": REF_MIN, "ref_max_score": REF_MAX,
                "fingerprint": "untrained", "obs_dim": 15, "act_dim": 3}
        gmeta = {"kind": "td", "algo": "dql", "seed": 0, "train_guidance": "joint"}
        from rl_core.snapshot import save_snapshot

        save_snapshot(snapshot, algo, step=0, config={"algo": "dql"}, normalizer=Normalizer.identity(15),
                      dataset_meta=meta, guidance_meta=gmeta)
    snap = load_snapshot(snapshot)
    return make_actor(snap, InferenceConfig(method="softmax", n_candidates=50)), snap.dataset_meta["env_id"]


def timed(actor, env_id: str, episodes: int, max_steps: int, vectorized: bool) -> tuple[float, list]:
    t0 = time.perf_counter()
    res = evaluate(actor, env_id, episodes=episodes, seed=0, ref_min=REF_MIN, ref_max=REF_MAX,
                   max_steps=max_steps, vectorized=vectorized)
    return time.perf_counter() - t0, res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--max-steps", type=int, default=1000)
    p.add_argument("--snapshot", default=None, help="a trained snapshot for the dql actor")
    p.add_argument("--actors", nargs="+", default=["linear", "dql"], choices=["linear", "dql"])
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"CPU threads {torch.get_num_threads()}, {args.episodes} episodes, max_steps {args.max_steps}")
    t0 = time.perf_counter()  # fill the evaluator's env pool once (reused by every later evaluation)
    evaluate(LinearActor(), ENV, episodes=args.episodes, seed=0, ref_min=REF_MIN, ref_max=REF_MAX, max_steps=1)
    print(f"env pool: {args.episodes} envs built in {time.perf_counter() - t0:.2f} s (once per process; not timed below)")
    print(f"{'actor':7} {'mode':12} {'episodes/s':>10} {'env steps/s':>11} {'mean length':>11} {'mean score':>10}")
    for name in args.actors:
        actor, env_id = (LinearActor(), ENV) if name == "linear" else dql_actor(args.snapshot)
        rates = {}
        for mode, vec in (("vectorized", True), ("one-at-a-time", False)):
            dt, res = timed(actor, env_id, args.episodes, args.max_steps, vec)
            steps = sum(r.length for r in res)
            rates[mode] = args.episodes / dt
            print(f"{name:7} {mode:12} {rates[mode]:10.2f} {steps / dt:11.0f} {steps / len(res):11.1f} "
                  f"{np.mean([r.normalized_score for r in res]):10.1f}", flush=True)
        print(f"{name:7} ratio vectorized / one-at-a-time = {rates['vectorized'] / rates['one-at-a-time']:.2f}x")


if __name__ == "__main__":
    main()
