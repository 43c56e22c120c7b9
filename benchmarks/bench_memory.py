"""Peak memory of diffusion training with a frozen pretrained critic (GFDT) vs joint training (and none).

The GFDT paper claims that decoupling guidance lowers peak memory and compute. Each (algorithm,
mode) runs ``run_training`` in its own subprocess on the same synthetic Hopper-shaped dataset
(obs 15, act 3, default networks, batch 256). Reported per run:

- ``base MB``: resident set size before ``run_training`` (interpreter, torch, dataset);
- ``peak MB``: peak RSS during ``run_training`` (the kernel's high-water mark is reset just before
  the call via /proc/self/clear_refs, Linux), ``+train MB`` = peak - base;
- ``state MB``: bytes of the training state in the final checkpoint (nets, EMA, optimiser moments,
  critic, its target and optimiser moments): the persistent part of the difference;
- ``saved MB/step``: bytes of the tensors autograd saves for backward, per gradient step (counted
  with ``torch.autograd.graph.saved_tensors_hooks``): the activation memory a GPU would hold;
- ``steps/s`` of the same run (the compute side of the claim).

    .venv/bin/python benchmarks/bench_memory.py [--algos dql edp] [--modes joint frozen none] [--steps 30]

Prints figures only; nothing is asserted. CPU RSS includes allocator caching, so differences of a
few MB are noise; on a GPU the same script reports torch.cuda.max_memory_allocated (``--device cuda``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from rl_core.modes import get_mode

OBS_DIM, ACT_DIM = 15, 3


def synthetic_dataset(n: int = 20_000, episode: int = 100, seed: int = 0):
    """Deterministic random transitions in episodes of ``episode`` steps (time-limit cut)."""
    from rl_core.data.dataset import OfflineDataset

    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n + 1, OBS_DIM)).astype(np.float32)
    timeouts = (np.arange(n) % episode) == episode - 1
    nxt = obs[1:].copy()
    return OfflineDataset(obs[:-1], rng.uniform(-1, 1, (n, ACT_DIM)).astype(np.float32), rng.normal(size=n).astype(np.float32),
                          nxt, np.zeros(n, dtype=bool), timeouts,
                          metadata={"env_id": "HopperBulletEnv-v0", "task": "synthetic", "ref_min_score": 0.0, "ref_max_score": 1.0})


def _rss_mb(key: str) -> float:
    line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith(key))
    return int(line.split()[1]) / 1024


def _state_mb(state: object) -> float:
    import torch

    if isinstance(state, torch.Tensor):
        return state.numel() * state.element_size() / 2**20
    if isinstance(state, dict):
        return sum(_state_mb(v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return sum(_state_mb(v) for v in state)
    return 0.0


def child(spec: dict) -> dict:
    """One measured run in this (fresh) process; returns the figures as a dict."""
    import torch

    from rl_core.train import TrainConfig, load_checkpoint, run_training

    torch.set_num_threads(spec["threads"])
    ds = synthetic_dataset()
    cfg = TrainConfig(task="synthetic", algo=spec["algo"], train_guidance=spec["mode"], guidance_artifact=spec["artifact"],
                      steps=spec["steps"], batch_size=spec["batch_size"], eval_every=10**9, log_every=spec["steps"],
                      device=spec["device"], threads=spec["threads"])
    work = Path(tempfile.mkdtemp())
    cuda = spec["device"].startswith("cuda")
    base = torch.cuda.memory_allocated() / 2**20 if cuda else _rss_mb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak-RSS high-water mark
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    saved = [0]

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved[0] += t.numel() * t.element_size()
        return t

    t0 = time.perf_counter()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = run_training(cfg, ds, workdir=work)
    wall = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else _rss_mb("VmHWM")
    state = load_checkpoint(next((work / "checkpoints").iterdir()))["algo"]
    return {"base_mb": base, "peak_mb": peak, "state_mb": _state_mb(state), "saved_mb": saved[0] / spec["steps"] / 2**20,
            "steps_per_s": out["time/steps_per_s"], "wall_s": wall}


def make_artifact(directory: Path, threads: int) -> str:
    """A TD critic pretrained for a few steps on the synthetic dataset (its weights do not matter here)."""
    from rl_core.train import PretrainConfig, run_pretraining

    cfg = PretrainConfig(task="synthetic", kind="td", steps=5, batch_size=256, threads=threads)
    return str(run_pretraining(cfg, synthetic_dataset(), workdir=directory))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--algos", nargs="+", default=["dql", "edp"])
    p.add_argument("--modes", nargs="+", default=["joint", "frozen", "none"])
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    unit = "peak CUDA alloc" if args.device.startswith("cuda") else "peak RSS"
    print(f"{args.steps} steps, batch {args.batch_size}, threads {args.threads}, device {args.device}; "
          f"each run in its own subprocess; peak = {unit}")
    print(f"{'algo':5} {'mode':7} {'base MB':>8} {'peak MB':>8} {'+train MB':>9} {'state MB':>9} {'saved MB/step':>13} {'steps/s':>8}")
    pretrained = [m for m in args.modes if get_mode(m).needs_artifact]
    artifact = make_artifact(Path(tempfile.mkdtemp()), args.threads) if pretrained else None
    for algo in args.algos:
        for mode in args.modes:
            spec = {"algo": algo, "mode": mode, "steps": args.steps, "batch_size": args.batch_size, "threads": args.threads,
                    "device": args.device, "artifact": artifact if mode in pretrained else None}
            proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"{algo:5} {mode:7} failed: {proc.stderr.strip().splitlines()[-1]}")
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"{algo:5} {mode:7} {r['base_mb']:8.0f} {r['peak_mb']:8.0f} {r['peak_mb'] - r['base_mb']:9.1f} "
                  f"{r['state_mb']:9.2f} {r['saved_mb']:13.1f} {r['steps_per_s']:8.2f}", flush=True)


if __name__ == "__main__":
    main()
