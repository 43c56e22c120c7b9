"""Data throughput: collection steps/s (shipped expert + noise, uniform random) and Parquet save/load.

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

from rl_core.data.dataset import OfflineDataset
from rl_core.data.envs import TASK_ENVS
from rl_core.data.gen.collect import rollout
from rl_core.data.gen.policyset import load_policy_set
from rl_core.data.io import load_dataset, save_dataset


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20_000)
    ap.add_argument("--env", default="hopper", choices=list(TASK_ENVS))
    args = ap.parse_args()
    env_id, pset = TASK_ENVS[args.env], load_policy_set(args.env)
    runs = {}
    for name, stream, act in (("expert + noise", "expert", pset.policy("expert")), ("uniform random", "random", None)):
        ro, wall, cpu = timed(lambda: rollout(env_id, act, seed=0, stream=stream, noise=pset.action_noise,
                                              min_steps=args.steps))
        runs[name] = ro
        print(f"collect {name:<20} {len(ro):>8,} steps  {len(ro) / wall:>8,.0f} steps/s wall  "
              f"{len(ro) / cpu:>8,.0f} steps/s cpu  ({len(ro.returns)} episodes, mean return {ro.returns.mean():.1f})")
    ds = OfflineDataset(**runs["expert + noise"].arrays, metadata={"env_id": env_id, **{
        k: pset.references[k] for k in ("ref_min_score", "ref_max_score")}})
    with tempfile.TemporaryDirectory() as tmp:
        _, wall, cpu = timed(lambda: save_dataset(ds, Path(tmp) / "d"))
        size = sum(f.stat().st_size for f in (Path(tmp) / "d").iterdir())
        print(f"parquet save {ds.n_transitions:,} transitions: {wall * 1e3:.0f} ms wall, {cpu * 1e3:.0f} ms cpu, "
              f"{size / 2**20:.1f} MB")
        _, wall, cpu = timed(lambda: load_dataset(str(Path(tmp) / "d")))
        print(f"parquet load + validate + fingerprint: {wall * 1e3:.0f} ms wall, {cpu * 1e3:.0f} ms cpu")


if __name__ == "__main__":
    main()
