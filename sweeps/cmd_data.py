"""`mdpt data make | list | info | import | train-policies`: offline datasets and their behaviour policies."""

from __future__ import annotations

import argparse
from pathlib import Path

from rl_core.config import KNOWN_TASKS, TASK_ENVS
from rl_core.data.gen.budgets import BUDGETS  # cheap: dataclasses only (no torch, gymnasium or SB3)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="generate, import, list and describe offline datasets",
                       description="Offline datasets (Parquet + metadata.json) under the data root "
                                   "($MDPT_DATA, default ~/.cache/mdpt/data).")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION")
    mk = dsub.add_parser("make", help="roll out the shipped behaviour policies into datasets (deterministic)",
                         description="Roll out the env's shipped behaviour policies in the PyBullet env. The same "
                                     "(task, budget, seed) gives the same data (fingerprint) on any machine.")
    mk.add_argument("task", help="a task (e.g. hopper-medium, see `mdpt data list`), an env (all its levels) or all")
    mk.add_argument("--budget", default="quick", choices=tuple(BUDGETS),
                    help="dataset sizes (default quick: 100k transitions per level; tiny is for tests)")
    mk.add_argument("--out", type=Path, default=None, help="data root to write <out>/<task>/ (default: data root)")
    mk.add_argument("--seed", type=int, default=0, help="seed of the env resets and action noise")
    mk.add_argument("--policies", type=Path, default=None,
                    help="policy-set directory (one env) or a root of <env>/ directories (several) to use "
                         "instead of the shipped ones (see train-policies)")
    mk.add_argument("--jobs", type=int, default=None, help="processes for several tasks (default: the CPUs)")
    mk.add_argument("--force", action="store_true", help="remake datasets that are already up to date")
    mk.set_defaults(func=cmd_make)
    ls = dsub.add_parser("list", help="known tasks and imported datasets, which exist locally, with sizes")
    ls.add_argument("--root", type=Path, default=None, help="data root (default: $MDPT_DATA or the cache dir)")
    ls.set_defaults(func=cmd_list)
    info = dsub.add_parser("info", help="counts, returns, env, reference scores and provenance of a dataset",
                           description="Describe a dataset; for a foreign file, say what is missing (env, "
                                       "reference scores) and how to give it.")
    info.add_argument("dataset", help="a task or imported name, a dataset directory, a .hdf5/.parquet file or "
                                      "minari:<id>")
    info.add_argument("--root", type=Path, default=None, help="data root for task names")
    _env_args(info)
    info.set_defaults(func=cmd_info)
    imp = dsub.add_parser("import", help="bring your own data: write a file as a named dataset under the data root",
                          description="Read a D4RL / d4rl-pybullet HDF5 file, a Parquet file, a dataset directory or "
                                      "minari:<id> and write it as <root>/<NAME>/ with its env and reference "
                                      "scores; NAME is then a task name for `mdpt train --task` (and a spec's "
                                      "tasks, as the path <root>/<NAME>).")
    imp.add_argument("source", help="a .hdf5/.h5 or .parquet file, a dataset directory or minari:<dataset_id>")
    imp.add_argument("--name", required=True, help="dataset name (a directory name; not a generated task's name)")
    imp.add_argument("--root", type=Path, default=None, help="data root (default: $MDPT_DATA or the cache dir)")
    _env_args(imp)
    imp.set_defaults(func=cmd_import)
    tp = dsub.add_parser("train-policies", help="retrain an env's behaviour policies (expert, DAgger snapshots)",
                         description="Train the policy set that `mdpt data make` rolls out: the expert (the 2017 "
                                     "pybullet policy for hopper/ant, SAC for halfcheetah/walker2d; hours on 2 "
                                     "cores), reference scores, DAgger from the expert and the medium snapshot in "
                                     "the band. Use the result with `mdpt data make TASK --policies OUT`.")
    tp.add_argument("env", choices=tuple(TASK_ENVS), help="environment")
    tp.add_argument("--out", type=Path, default=None,
                    help="policy-set directory to write (default: <data root>/_policies/<env>); the shipped set "
                         "is rl_core/data/policies/<env>")
    tp.add_argument("--seed", type=int, default=0)
    tp.add_argument("--expert", type=Path, default=None,
                    help="reuse this expert .npz (e.g. the shipped rl_core/data/policies/<env>/expert.npz) "
                         "instead of training one")
    tp.add_argument("--sac-steps", type=int, default=None,
                    help="SAC steps for a trained expert (default 150000, SACConfig.steps); the shipped experts "
                         "used 300000 (halfcheetah) and 600000 (walker2d: 300000, then continued; "
                         "their provenance.json has the record)")
    tp.set_defaults(func=cmd_train_policies)
    p.set_defaults(func=lambda args: p.print_help() or 2)


def _env_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--env", default=None, help=f"environment of the data ({', '.join(TASK_ENVS)} or an env id) "
                                               "when the file does not say")
    p.add_argument("--ref-min", type=float, default=None, help="reference return scored 0 (with --ref-max)")
    p.add_argument("--ref-max", type=float, default=None, help="reference return scored 100 (with --ref-min)")


def _say(msg: str) -> None:
    print(msg, flush=True)


def cmd_make(args: argparse.Namespace) -> int:
    from rl_core.data.gen.make import all_tasks, make_dataset, make_datasets
    from rl_core.data.io import split_task

    if args.task == "all" or args.task in TASK_ENVS:
        envs = tuple(TASK_ENVS) if args.task == "all" else (args.task,)
        make_datasets(all_tasks(envs), budget=args.budget, seed=args.seed, root=args.out, policies=args.policies,
                      jobs=args.jobs, force=args.force, progress=_say)
        return 0
    split_task(args.task)
    make_dataset(args.task, budget=args.budget, seed=args.seed, root=args.out, policies=args.policies, progress=_say)
    return 0


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def cmd_list(args: argparse.Namespace) -> int:
    import json

    from rl_core.data.gen.make import is_current_policies
    from rl_core.data.io import META_FILE, data_root

    root = Path(args.root or data_root())
    print(f"data root: {root}")
    print(f"{'task':<26} {'status':<8} {'transitions':>12} {'episodes':>9} {'size':>9}  budget / source")
    imported = sorted(p.parent.name for p in root.glob(f"*/{META_FILE}") if p.parent.name not in KNOWN_TASKS)
    stale = 0
    for task in (*KNOWN_TASKS, *imported):
        meta_path = root / task / META_FILE
        if not meta_path.exists():
            print(f"{task:<26} {'-':<8}")
            continue
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            print(f"{task:<26} {'corrupt':<8}")
            continue
        if task in KNOWN_TASKS:
            status = "ok" if is_current_policies(meta) else "stale"
            stale += status == "stale"
            note = meta.get("budget", {}).get("name", "?")
        else:
            status, note = "imported", str(meta.get("imported_from", "?"))
        print(f"{task:<26} {status:<8} {meta.get('n_transitions', 0):>12,} {meta.get('n_episodes', 0):>9,} "
              f"{_size(root / task) / 2**20:>7.1f}MB  {note}")
    if stale:
        print("stale = made from other behaviour policies than the shipped ones (remake: `mdpt data make TASK`)")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    import warnings

    from rl_core.data.envs import ALIVE_BONUS
    from rl_core.data.gen.collect import ENV_STEP_LIMIT
    from rl_core.data.gen.make import no_progress_line
    from rl_core.data.io import ReferenceScoreWarning, load_dataset, missing_env_message, sidecar_path

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ReferenceScoreWarning)  # info says where the scores come from itself
        ds = load_dataset(args.dataset, root=args.root, env=args.env, ref_min=args.ref_min, ref_max=args.ref_max,
                          require_env=False)
    m = ds.metadata
    rets = ds.episode_returns()
    print(f"dataset:      {m.get('task') or '?'} ({m.get('source')}, format {m.get('format', '?')})")
    print(f"env:          {ds.env_id or 'MISSING'}   obs_dim {ds.obs_dim}, act_dim {ds.act_dim}"
          + (f"   (from {m['env_source']})" if m.get("env_source") not in (None, "metadata") else ""))
    print(f"transitions:  {ds.n_transitions:,} in {len(rets):,} episodes; terminals {int(ds.terminals.sum()):,}, "
          f"timeouts {int(ds.timeouts.sum()):,}")
    print(f"returns:      mean {rets.mean():.1f}, std {rets.std():.1f}, min {rets.min():.1f}, max {rets.max():.1f}")
    print(f"fingerprint:  {ds.fingerprint}")
    if not ds.env_id:
        print(f"missing:      {missing_env_message(str(m.get('source', args.dataset)))}")
        return 0
    print(f"reference:    min {ds.ref_min_score:.1f} ({m.get('ref_min_source', '')}), max {ds.ref_max_score:.1f} "
          f"({m.get('ref_max_source', '')})")
    print(f"              source: {m.get('ref_source', 'dataset metadata')}")
    if "none of its own" in str(m.get("ref_source", "")):
        side = sidecar_path(str(m.get("source", "")))
        print(f"              to use your own: --ref-min/--ref-max with `mdpt data import`"
              + (f", or \"ref_min_score\"/\"ref_max_score\" in {side}" if side else ""))
    print(f"normalized:   {float(ds.normalized_score(rets.mean())):.1f} (mean return, x100)")
    lines = m.get("reference_lines")
    if lines:
        print("lines:        " + ", ".join(
            f"{name} {lines[k]['return_mean']:.1f} ({float(ds.normalized_score(lines[k]['return_mean'])):.1f}"
            f" x100, mean length {lines[k]['length_mean']:.0f})"
            for k, name in (("random", "random"), ("stand_still", "zero-action (stand-still)")))
            + f"; seed {lines['seed']}, {lines['episodes']} episodes each")
    else:
        print("lines:        no stored random / zero-action reference lines (a sweep measures them when it starts)")
    if ds.env_id in ALIVE_BONUS:
        cap = int((lines or {}).get("max_episode_steps") or ENV_STEP_LIMIT)
        npl = no_progress_line(ds.env_id, cap)
        print(f"              no forward progress (upper bound) {npl['return_mean']:.1f} "
              f"({float(ds.normalized_score(npl['return_mean'])):.1f} x100): {npl['source']}; a score above it "
              f"proves forward motion")
    b = m.get("behaviour")
    if b:
        print(f"behaviour:    policies {b.get('policies')} ({b.get('policies_fingerprint')}); {b.get('policy')}")
        if b.get("actions"):
            print(f"              actions: {b['actions']}")
        print(f"              expert: {b.get('expert')}; medium = DAgger round {b.get('medium_round')} "
              f"(band {b.get('medium_band')})")
    if m.get("budget"):
        print(f"generated:    budget {m['budget'].get('name')}, seed {m.get('seed')}, mdpt {m.get('mdpt_version')}, "
              f"{m.get('created')}, {m.get('generation_seconds')} s")
    if m.get("imported_from"):
        print(f"imported:     from {m['imported_from']}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from rl_core.data.io import import_dataset, load_dataset

    out = import_dataset(args.source, args.name, args.root, env=args.env, ref_min=args.ref_min, ref_max=args.ref_max)
    ds = load_dataset(args.name, root=args.root)
    m = ds.metadata
    print(f"imported {args.source} as '{args.name}': {ds.n_transitions:,} transitions, env {ds.env_id} "
          f"(from {m.get('env_source')}), reference scores {ds.ref_min_score:.1f} / {ds.ref_max_score:.1f} "
          f"({m.get('ref_source')}) -> {out}")
    print(f"use it with `mdpt train --task {args.name}` or, in a spec, `tasks: [{out}]`")
    return 0


def cmd_train_policies(args: argparse.Namespace) -> int:
    from rl_core.data.gen.policyset import train_policies
    from rl_core.data.gen.sac import SACConfig
    from rl_core.data.io import data_root

    out = args.out or data_root() / "_policies" / args.env
    sac = SACConfig(steps=args.sac_steps) if args.sac_steps else None
    pset = train_policies(args.env, out, seed=args.seed, sac=sac, expert_file=args.expert, progress=_say)
    print(f"use them with `mdpt data make {args.env}-medium --policies {pset.directory}`")
    return 0
