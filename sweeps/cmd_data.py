"""`mdpt data make | list | info`: generate, list and describe offline datasets."""

from __future__ import annotations

import argparse
from pathlib import Path

from rl_core.data.gen.budgets import BUDGETS  # cheap: dataclasses only (no torch, gymnasium or SB3)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="generate, list and describe offline datasets",
                       description="Offline datasets (Parquet + metadata.json) under the data root "
                                   "($MDPT_DATA, default ~/.cache/mdpt/data).")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION")
    mk = dsub.add_parser("make", help="generate a dataset with real behaviour policies in the PyBullet env")
    mk.add_argument("task", help="e.g. hopper-medium (see `mdpt data list`)")
    mk.add_argument("--budget", default="quick", choices=tuple(BUDGETS),
                    help="generation budget (default quick: minutes on a laptop; tiny is for tests)")
    mk.add_argument("--out", type=Path, default=None, help="data root to write <out>/<task>/ (default: data root)")
    mk.add_argument("--seed", type=int, default=0, help="seed of the behaviour-policy training and collection")
    mk.set_defaults(func=cmd_make)
    ls = dsub.add_parser("list", help="known tasks and which exist locally, with sizes")
    ls.add_argument("--root", type=Path, default=None, help="data root (default: $MDPT_DATA or the cache dir)")
    ls.set_defaults(func=cmd_list)
    info = dsub.add_parser("info", help="counts, returns, reference scores and provenance of a dataset")
    info.add_argument("dataset", help="a task name, a dataset directory or a .hdf5 file")
    info.add_argument("--root", type=Path, default=None, help="data root for task names")
    info.set_defaults(func=cmd_info)
    p.set_defaults(func=lambda args: p.print_help() or 2)


def cmd_make(args: argparse.Namespace) -> int:
    from rl_core.data.gen.make import make_dataset
    from rl_core.data.io import split_task

    split_task(args.task)
    make_dataset(args.task, budget=args.budget, seed=args.seed, root=args.out, progress=lambda m: print(m, flush=True))
    return 0


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def cmd_list(args: argparse.Namespace) -> int:
    import json

    from rl_core.data.io import KNOWN_TASKS, META_FILE, data_root

    root = Path(args.root or data_root())
    print(f"data root: {root}")
    print(f"{'task':<26} {'status':<8} {'transitions':>12} {'episodes':>9} {'size':>9}  budget")
    for task in KNOWN_TASKS:
        meta_path = root / task / META_FILE
        if not meta_path.exists():
            print(f"{task:<26} {'-':<8}")
            continue
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            print(f"{task:<26} {'corrupt':<8}")
            continue
        print(f"{task:<26} {'ok':<8} {meta.get('n_transitions', 0):>12,} {meta.get('n_episodes', 0):>9,} "
              f"{_size(root / task) / 2**20:>7.1f}MB  {meta.get('budget', {}).get('name', '?')}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from rl_core.data.io import load_dataset

    ds = load_dataset(args.dataset, root=args.root)
    m = ds.metadata
    rets = ds.episode_returns()
    print(f"dataset:      {m.get('task') or '?'} ({m.get('source')})")
    print(f"env:          {ds.env_id or '?'}   obs_dim {ds.obs_dim}, act_dim {ds.act_dim}")
    print(f"transitions:  {ds.n_transitions:,} in {len(rets):,} episodes; terminals {int(ds.terminals.sum()):,}, "
          f"timeouts {int(ds.timeouts.sum()):,}")
    print(f"returns:      mean {rets.mean():.1f}, std {rets.std():.1f}, min {rets.min():.1f}, max {rets.max():.1f}")
    print(f"fingerprint:  {ds.fingerprint}")
    if "ref_min_score" in m and "ref_max_score" in m:
        print(f"reference:    min {ds.ref_min_score:.1f} ({m.get('ref_min_source', '?')})")
        print(f"              max {ds.ref_max_score:.1f} ({m.get('ref_max_source', '?')})")
        print(f"normalized:   {float(ds.normalized_score(rets.mean())):.1f} (mean return, x100)")
    else:
        print("reference:    none (normalized scores unavailable)")
    b = m.get("behaviour")
    if b:
        print(f"behaviour:    {b.get('algorithm')}; {b.get('policy')}")
        if b.get("actions"):
            print(f"              actions: {b['actions']}")
        ms = b.get("medium_snapshot", {})
        print(f"              medium snapshot {ms.get('index')} (step {ms.get('step')}, eval return "
              f"{ms.get('eval_return', float('nan')):.1f}, fraction {b.get('fraction')}); process {b.get('process_dir')}")
    if m.get("budget"):
        print(f"generated:    budget {m['budget'].get('name')}, seed {m.get('seed')}, mdpt {m.get('mdpt_version')}, "
              f"{m.get('created')}, {m.get('generation_seconds')} s")
    return 0
