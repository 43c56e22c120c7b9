"""Gradient steps per second of each algorithm in fp32 and bf16, and the fraction of the matmul ceilings.

Default networks and hyperparameters of each algorithm (joint training with its default critic),
Hopper shapes (obs 15, act 3), batch 256, a synthetic minibatch (sampling is not the bottleneck).
Each variant (algorithm x precision [x torch.compile] [x a baseline checkout]) runs in its own worker
process, built and warmed up once; the main process then times ``--rounds`` rounds of ``--steps``
updates, visiting the variants in turn within every round (alternating, so a change in the
machine's load hits all of them alike). Reported: the median steps/s over rounds and, per variant,
the median over rounds of its ratio to the reference variant timed in the same round (fp32 of the
same algorithm; the baseline's fp32 when ``--baseline-src`` is given).

Timing: CPU time of the worker with one thread on CPU (the machines these run on are shared: wall-clock
figures vary by 2-5x with the other jobs, CPU time far less), wall time otherwise (``sysinfo.clock``).

Matmul FLOPs of one gradient step are counted with ``torch.utils.flop_counter.FlopCounterMode`` (mm /
addmm / bmm / baddbmm, forward and backward, 2 FLOPs per multiply-add) in float32; the fraction of the
ceiling divides the achieved matmul FLOP rate by the measured 256-wide matmul ceiling of the same
precision (``sysinfo``), measured in this process before the runs.

    .venv/bin/python benchmarks/bench_train.py [--algos dql idql edp swg] [--precisions fp32 bf16]
        [--threads 1] [--steps 10] [--rounds 5] [--compile] [--baseline-src /path/to/older/checkout] [--device cuda]

Peak memory: ``torch.cuda.max_memory_allocated`` on ``--device cuda`` (one trial's training), the worker's
peak resident set size on CPU. ``--baseline-src DIR`` adds an fp32 variant of each algorithm run with ``DIR`` first on the import path
(e.g. ``git archive <commit> | tar -x -C DIR``): "today's" code, for before/after ratios. ``--compile``
adds bf16 and fp32 variants with ``compile=True`` and reports their compile time (the first update).
Prints figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OBS_DIM, ACT_DIM = 15, 3


def synthetic_batch(batch_size: int, generator):
    """A Hopper-shaped normalised minibatch: obs (B, 15), act (B, 3) in [-1, 1], rew, next_obs, terminal (B,)."""
    import torch

    from rl_core.types import Batch

    r = lambda *s: torch.randn(*s, generator=generator)  # noqa: E731
    return Batch(r(batch_size, OBS_DIM), torch.rand(batch_size, ACT_DIM, generator=generator) * 2 - 1,
                 r(batch_size), r(batch_size, OBS_DIM), (torch.rand(batch_size, generator=generator) < 0.01).float())


def make_algo(name: str, precision: str, compile: bool, device: str = "cpu"):
    """The algorithm with default config in joint mode (older checkouts: no precision / compile arguments)."""
    from rl_core.algos import get_algorithm

    cls = get_algorithm(name)
    extra = {} if precision == "fp32" and not compile else {"precision": precision, "compile": compile}
    return cls(cls.Config(), OBS_DIM, ACT_DIM, guidance=None, guidance_mode="joint", seed=0, device=device, **extra)


def step_flops(algo, batch, generator) -> int:
    """Matmul FLOPs of one ``update`` (forward + backward); averaged over 2 steps (IDQL trains its critic every 2nd)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        for _ in range(2):
            algo.update(batch, generator)
    return counter.get_total_flops() // 2


def worker(args: argparse.Namespace) -> None:
    """Build one variant, warm it up, then time ``N`` updates for every line ``N`` read from stdin."""
    import torch

    import resource

    sys.path.insert(0, str(HERE))
    from sysinfo import clock

    torch.set_num_threads(args.threads)
    cuda = args.device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    algo = make_algo(args.algo, args.precision, args.compile, args.device)
    gen = torch.Generator(args.device).manual_seed(0)
    batch = synthetic_batch(args.batch_size, torch.Generator().manual_seed(0))
    batch = batch.to(args.device)
    t0 = time.perf_counter()
    algo.update(batch, gen)  # with compile=True: compiles the networks
    sync()
    first = time.perf_counter() - t0
    for _ in range(args.warmup):
        algo.update(batch, gen)
    flops = step_flops(make_algo(args.algo, "fp32", False, args.device), batch, gen) if args.count_flops else 0
    print(json.dumps({"ready": True, "first_s": first, "flops": flops}), flush=True)
    now = clock(args.device)
    for line in sys.stdin:
        n = int(line)
        sync()
        t0 = now()
        for _ in range(n):
            algo.update(batch, gen)
        sync()
        peak = (torch.cuda.max_memory_allocated() if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
        print(json.dumps({"steps_per_s": n / (now() - t0), "peak_mb": peak / 2**20}), flush=True)


class Variant:
    def __init__(self, algo: str, precision: str, compile: bool, src: str | None, args: argparse.Namespace) -> None:
        self.algo, self.precision, self.compile, self.src = algo, precision, compile, src
        self.label = f"{precision}{' compile' if compile else ''}{' (baseline)' if src else ''}"
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (src or os.getcwd(), os.environ.get("PYTHONPATH", "")) if p))
        cmd = [sys.executable, __file__, "--worker", "--algo", algo, "--precision", precision, "--threads", str(args.threads),
               "--batch-size", str(args.batch_size), "--warmup", str(args.warmup), "--device", args.device]
        if compile:
            cmd.append("--compile")
        if precision == "fp32" and not compile and not src:
            cmd.append("--count-flops")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.rates: list[float] = []
        self.peak_mb = 0.0

    def ready(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {self.algo} {self.label} failed (see its stderr above)")
        return json.loads(line)

    def time(self, steps: int) -> float:
        self.proc.stdin.write(f"{steps}\n")
        self.proc.stdin.flush()
        out = json.loads(self.proc.stdout.readline())
        self.rates.append(out["steps_per_s"])
        self.peak_mb = out["peak_mb"]
        return out["steps_per_s"]

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--algos", nargs="+", default=["dql", "idql", "edp", "swg"])
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--steps", type=int, default=10, help="timed gradient steps per variant and round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch threads of every worker")
    p.add_argument("--device", default="cpu", help="cpu | cuda")
    p.add_argument("--compile", action="store_true", help="add torch.compile variants (compile time reported)")
    p.add_argument("--baseline-src", default=None, help="an older checkout: adds its fp32 variant as the reference")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--algo", help=argparse.SUPPRESS)
    p.add_argument("--precision", default="fp32", help=argparse.SUPPRESS)
    p.add_argument("--count-flops", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args)
    import torch

    sys.path.insert(0, str(HERE))
    from sysinfo import clock_name, describe_machine, measure_ceilings

    torch.set_num_threads(args.threads)
    ceil = measure_ceilings(args.device)
    print(describe_machine(ceil))
    print(f"batch {args.batch_size}, Hopper shapes obs {OBS_DIM} act {ACT_DIM}; {args.rounds} rounds x {args.steps} steps "
          f"per variant, variants alternating within each round, each in its own process; timed on "
          f"{clock_name(args.device)}", flush=True)
    print(f"| algo | variant | steps/s (median) | ratio to {'baseline ' if args.baseline_src else ''}fp32 (median [min, max]) "
          f"| GFLOP/step | of its matmul ceiling | first step s | peak memory MB |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.algos:
        specs = ([("fp32", False, args.baseline_src)] if args.baseline_src else []) + \
                [(pr, False, None) for pr in args.precisions] + \
                ([(pr, True, None) for pr in args.precisions] if args.compile else [])
        variants = [Variant(name, pr, c, src, args) for pr, c, src in specs]
        info = [v.ready() for v in variants]
        flops = max(i["flops"] for i in info)
        ref = variants[0]
        ratios: dict[int, list[float]] = {i: [] for i in range(len(variants))}
        for r in range(args.rounds):
            order = variants if r % 2 == 0 else variants[::-1]
            for v in order:
                v.time(args.steps)
            for i, v in enumerate(variants):
                ratios[i].append(v.rates[-1] / ref.rates[-1])
        for i, v in enumerate(variants):
            med = statistics.median(v.rates)
            rr = ratios[i]
            frac = med * flops / 1e9 / ceil.get(v.precision) if flops else float("nan")
            print(f"| {name} | {v.label} | {med:.1f} | {statistics.median(rr):.2f} [{min(rr):.2f}, {max(rr):.2f}] | "
                  f"{flops / 1e9:.2f} | {frac:.0%} | {info[i]['first_s']:.1f} | {v.peak_mb:.0f} |", flush=True)
            v.close()


if __name__ == "__main__":
    main()
