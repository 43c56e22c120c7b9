"""Evaluation throughput: episodes/s in fp32 and bf16, lockstep vs one env at a time, same process.

The reference is today's evaluation loop in fp32 one env at a time (``evaluate(..., vectorized=False)``);
the other variants run all of a checkpoint's episodes in lockstep (one batched ``act`` per env step over
the running envs) in fp32 and in bf16 (``InferenceConfig.precision``). All variants use the same
snapshot, the same env seeds and envs from the evaluator's per-process pool (built once, before
timing). ``--rounds`` repeats the variants, alternating their order; figures are medians. Timed on the
process's CPU time with one thread on CPU (env stepping included: PyBullet runs in-process), else wall time.

Actors on HopperBulletEnv-v0:
- ``dql``: a DQL snapshot acting with the default inference (softmax over 50 candidates). Without
  ``--snapshot`` the networks are untrained (default sizes): the hopper falls within a few steps, so
  episodes are short and the batching gain is understated; pass a trained snapshot (e.g. one of
  ``bench_fidelity.py``'s, or ``mdpt train --out RUN``) for realistic episode lengths;
- ``linear``: a fixed linear policy (env-bound: stepping + Python overhead only), with ``--actors linear``.

Matmul FLOPs per observation (one ``act`` row: 50 candidates x the sampler's steps + Q of the 50) are
counted with ``FlopCounterMode``; achieved FLOP rate = that x env steps / time, shown as a fraction of
the measured matmul ceiling of the variant's precision (M = 2,500, ``sysinfo``).

    .venv/bin/python benchmarks/bench_eval.py [--episodes 10] [--max-steps 1000] [--snapshot PATH]
        [--threads 1] [--rounds 1] [--variants fp32-one fp32-lockstep bf16-lockstep] [--device cuda]

Prints figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sysinfo import clock, clock_name, describe_machine, measure_ceilings  # noqa: E402

from rl_core.evaluation import evaluate  # noqa: E402

ENV = "HopperBulletEnv-v0"
REF_MIN, REF_MAX = -20.272305, 3234.3  # only labels the score here
VARIANTS = ("fp32-one", "fp32-lockstep", "bf16-lockstep", "bf16-one")


class LinearActor:
    """a = tanh(W obs): deterministic, row-independent (so both modes roll out the same episodes)."""

    def __init__(self) -> None:
        self.w = np.random.default_rng(0).normal(size=(15, 3)).astype(np.float32) * 0.3

    def act(self, obs: np.ndarray, generator: torch.Generator) -> np.ndarray:
        return np.tanh(obs @ self.w)


def dql_snapshot(snapshot: str | None, device: str = "cpu"):
    """The snapshot to evaluate: ``snapshot``, or an untrained default-size DQL saved to a temporary file."""
    from rl_core.snapshot import load_snapshot

    if snapshot is None:
        from rl_core.algos import get_algorithm
        from rl_core.snapshot import save_snapshot
        from rl_core.types import Normalizer

        cls = get_algorithm("dql")
        algo = cls(cls.Config(), 15, 3, guidance=None, guidance_mode="joint", seed=0)
        snapshot = str(Path(tempfile.mkdtemp()) / "untrained.pt")
        meta = {"env_id": ENV, "task": "hopper-bench", "ref_min_score": REF_MIN, "ref_max_score": REF_MAX,
                "fingerprint": "untrained", "obs_dim": 15, "act_dim": 3}
        gmeta = {"kind": "td", "algo": "dql", "seed": 0, "train_guidance": "joint"}
        save_snapshot(snapshot, algo, step=0, config={"algo": "dql"}, normalizer=Normalizer.identity(15),
                      dataset_meta=meta, guidance_meta=gmeta)
    return load_snapshot(snapshot, device=device)


def dql_actor(snap, precision: str):
    from rl_core.inference import InferenceConfig
    from rl_core.snapshot import make_actor

    return make_actor(snap, InferenceConfig.defaults("dql", snap.algo_config, precision=precision))


def flops_per_obs(actor, obs_dim: int = 15, rows: int = 10) -> float:
    """Matmul FLOPs of one ``act`` row (its candidates, sampler steps and Q), counted on ``rows`` observations."""
    from torch.utils.flop_counter import FlopCounterMode

    obs = np.random.default_rng(0).normal(size=(rows, obs_dim)).astype(np.float32)
    with FlopCounterMode(display=False) as counter:
        actor.act(obs, torch.Generator().manual_seed(0))
    return counter.get_total_flops() / rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--max-steps", type=int, default=1000)
    p.add_argument("--snapshot", default=None, help="a trained snapshot for the dql actor")
    p.add_argument("--actors", nargs="+", default=["dql"], choices=["linear", "dql"])
    p.add_argument("--variants", nargs="+", default=list(VARIANTS[:3]), choices=VARIANTS)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu", help="cpu | cuda (the dql actor's networks)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    ceil = measure_ceilings(args.device)
    print(describe_machine(ceil))
    t0 = time.perf_counter()  # fill the evaluator's env pool once (reused by every later evaluation)
    evaluate(LinearActor(), ENV, episodes=args.episodes, seed=0, ref_min=REF_MIN, ref_max=REF_MAX, max_steps=1)
    print(f"{args.episodes} episodes, max_steps {args.max_steps}, rounds {args.rounds}; env pool built in "
          f"{time.perf_counter() - t0:.1f} s (once per process; not timed); timed on {clock_name(args.device)}")
    now = clock(args.device)
    print("| actor | variant | episodes/s (median) | env steps/s | mean length | mean score | ratio to fp32 one env "
          "| GFLOP per env step (lockstep: all envs) | of its matmul ceiling |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.actors:
        snap = dql_snapshot(args.snapshot, args.device) if name == "dql" else None
        env_id = snap.dataset_meta["env_id"] if snap is not None else ENV
        actors = {pr: (dql_actor(snap, pr) if snap is not None else LinearActor()) for pr in ("fp32", "bf16")}
        per_obs = {pr: flops_per_obs(a) if snap is not None else 0.0 for pr, a in actors.items()}
        rates: dict[str, list[float]] = {v: [] for v in args.variants}
        last: dict[str, tuple] = {}
        for r in range(args.rounds):
            for v in (args.variants if r % 2 == 0 else args.variants[::-1]):
                pr, mode = v.split("-")
                if args.device != "cpu":
                    torch.cuda.synchronize()
                t0 = now()
                res = evaluate(actors[pr], env_id, episodes=args.episodes, seed=0, ref_min=REF_MIN, ref_max=REF_MAX,
                               max_steps=args.max_steps, vectorized=mode == "lockstep")
                dt = now() - t0
                rates[v].append(args.episodes / dt)
                last[v] = (sum(x.length for x in res), dt, np.mean([x.normalized_score for x in res]))
        base = statistics.median(rates["fp32-one"]) if "fp32-one" in rates else float("nan")
        for v in args.variants:
            pr, mode = v.split("-")
            steps, dt, score = last[v]
            eps = statistics.median(rates[v])
            gflop_step = per_obs[pr] * (args.episodes if mode == "lockstep" else 1) / 1e9
            frac = per_obs[pr] * steps / dt / 1e9 / ceil.get(pr, 2500)
            print(f"| {name} | {pr} {'lockstep' if mode == 'lockstep' else 'one env at a time'} | {eps:.3f} | "
                  f"{steps / dt:.0f} | {steps / args.episodes:.0f} | {score:.1f} | {eps / base:.2f} | "
                  f"{gflop_step:.2f} | {frac:.0%} |", flush=True)


if __name__ == "__main__":
    main()
