"""Gradient steps per second of each algorithm, and the fraction of the machine's matmul ceiling.

Default networks and hyperparameters of each algorithm (joint training with its default critic),
Hopper shapes (obs 15, act 3), batch 256, a synthetic minibatch (sampling is not the bottleneck).
Matmul FLOPs of one gradient step are counted with ``torch.utils.flop_counter.FlopCounterMode``
(mm / addmm / bmm, forward and backward, 2 FLOPs per multiply-add), the same way for every
algorithm. The ceiling is given (``--ceiling-gflops``, default 180 = 2 cores) and also measured
here as a large square matmul's throughput with the same thread count.

    .venv/bin/python benchmarks/bench_train.py [--algos dql idql edp swg] [--steps 20] [--threads 2]

Prints figures only; nothing is asserted. Timings on a shared machine vary by 2x or more.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from rl_core.algos import get_algorithm
from rl_core.types import Batch

OBS_DIM, ACT_DIM = 15, 3


def synthetic_batch(batch_size: int, generator: torch.Generator) -> Batch:
    """A Hopper-shaped normalised minibatch: obs (B, 15), act (B, 3) in [-1, 1], rew, next_obs, terminal (B,)."""
    r = lambda *s: torch.randn(*s, generator=generator)  # noqa: E731
    return Batch(r(batch_size, OBS_DIM), torch.rand(batch_size, ACT_DIM, generator=generator) * 2 - 1,
                 r(batch_size), r(batch_size, OBS_DIM), (torch.rand(batch_size, generator=generator) < 0.01).float())


def step_flops(algo, batch: Batch, generator: torch.Generator) -> int:
    """Matmul FLOPs of one ``update`` (forward + backward); averaged over 2 steps (IDQL trains its critic every 2nd)."""
    with FlopCounterMode(display=False) as counter:
        for _ in range(2):
            algo.update(batch, generator)
    return counter.get_total_flops() // 2


def measured_ceiling(n: int = 2048, reps: int = 5) -> float:
    """GFLOP/s of an n x n float32 matmul with the current thread count."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9


def bench(name: str, batch_size: int, steps: int, warmup: int) -> tuple[float, int]:
    """(steps/s, matmul FLOPs per step) of algorithm ``name`` with its default config."""
    cls = get_algorithm(name)
    algo = cls(cls.Config(), OBS_DIM, ACT_DIM, guidance=None, guidance_mode="joint", seed=0)
    gen = torch.Generator().manual_seed(0)
    batch = synthetic_batch(batch_size, gen)
    for _ in range(warmup):
        algo.update(batch, gen)
    flops = step_flops(algo, batch, gen)
    t0 = time.perf_counter()
    for _ in range(steps):
        algo.update(batch, gen)
    return steps / (time.perf_counter() - t0), flops


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--algos", nargs="+", default=["dql", "idql", "edp", "swg"])
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--steps", type=int, default=20, help="timed gradient steps per algorithm")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--ceiling-gflops", type=float, default=180.0, help="matmul ceiling of the machine, GFLOP/s")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    measured = measured_ceiling()
    print(f"torch {torch.__version__}, CPU threads {threads}, batch {args.batch_size}, Hopper shapes obs {OBS_DIM} act {ACT_DIM}")
    print(f"matmul ceiling: given {args.ceiling_gflops:.0f} GFLOP/s, measured now {measured:.0f} GFLOP/s (2048^2 float32)")
    print(f"{'algo':6} {'steps/s':>8} {'GFLOP/step':>11} {'GFLOP/s':>8} {'ceiling steps/s':>16} {'of ceiling':>11} {'of measured':>12}")
    for name in args.algos:
        sps, flops = bench(name, args.batch_size, args.steps, args.warmup)
        gflop = flops / 1e9
        print(f"{name:6} {sps:8.1f} {gflop:11.3f} {sps * gflop:8.1f} {args.ceiling_gflops / gflop:16.1f} "
              f"{sps * gflop / args.ceiling_gflops:11.1%} {sps * gflop / measured:12.1%}", flush=True)


if __name__ == "__main__":
    main()
