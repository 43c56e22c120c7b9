"""Data throughput: collection steps/s (2017 expert, uniform random) and Parquet save/load.

    .venv/bin/python benchmarks/bench_data.py [--steps 20000] [--env hopper]

Collection runs ``rl_core.data.gen.collect.rollout`` (the code path of ``mdpt data make``); storage times a
dataset of the collected expert transitions. Prints figures only; nothing is asserted. Timings on a
shared machine vary by 2x or more: report the CPU time (``process_time``) beside the wall time.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from rl_core.data.dataset import OfflineDataset
from rl_core.data.envs import TASK_ENVS
from rl_core.data.gen.collect import rollout
from rl_core.data.gen.policies import EXPERTS_2017, load_2017_expert, noisy, uniform
from rl_core.data.io import load_dataset, save_dataset


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20_000)
    ap.add_argument("--env", default="hopper", choices=[e for e, i in TASK_ENVS.items() if i in EXPERTS_2017])
    args = ap.parse_args()
    env_id, rng = TASK_ENVS[args.env], np.random.default_rng(0)
    expert = load_2017_expert(env_id)
    runs = {}
    for name, act in (("2017 expert + noise", noisy(expert, 0.1, rng)),
                      ("uniform random", uniform(expert.layers[-1][1].shape[0], rng))):
        ro, wall, cpu = timed(lambda: rollout(env_id, act, seed_base=0, min_steps=args.steps))
        runs[name] = ro
        print(f"collect {name:<20} {len(ro):>8,} steps  {len(ro) / wall:>8,.0f} steps/s wall  "
              f"{len(ro) / cpu:>8,.0f} steps/s cpu  ({len(ro.returns)} episodes, mean return {ro.returns.mean():.1f})")
    ds = OfflineDataset(**runs["2017 expert + noise"].arrays, metadata={"env_id": env_id})
    with tempfile.TemporaryDirectory() as tmp:
        _, wall, cpu = timed(lambda: save_dataset(ds, Path(tmp) / "d"))
        size = sum(f.stat().st_size for f in (Path(tmp) / "d").iterdir())
        print(f"parquet save {ds.n_transitions:,} transitions: {wall * 1e3:.0f} ms wall, {cpu * 1e3:.0f} ms cpu, "
              f"{size / 2**20:.1f} MB")
        _, wall, cpu = timed(lambda: load_dataset(str(Path(tmp) / "d")))
        print(f"parquet load + validate + fingerprint: {wall * 1e3:.0f} ms wall, {cpu * 1e3:.0f} ms cpu")


if __name__ == "__main__":
    main()
